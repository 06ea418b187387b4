"""Control for fixed-latency streaming pipelines.

Every arithmetic block here is a function of one input beat, computed over a fixed number of
register stages. :class:`Pipeline` supplies the handshake for such a block: all stages advance
together on one enable, which holds whenever the last stage has a beat the consumer does not
take. Nothing is lost or duplicated under any valid/ready pattern, and with ``o.ready`` held
high the block accepts one beat per clock.

Built ``buffered``, the stages never hold: a queue behind them takes every beat, and a beat is
accepted only while the queue has room for it and for every beat inside (a credit count). On
an FPGA the enable of a large pipeline is a net to every stage register (and memory read
enable) of the block, and in a chain of pipelines each enable is the next one's ``ready``: a
combinational path back through all of them, crossing the chip. Buffered, there is no enable,
``i.ready`` is a compare on one register, and ``o`` comes from the queue's flip-flops.
"""

from amaranth.hdl import Module, Shape, Signal, Value
from amaranth.lib import stream, wiring

from .dsp import ECP5DSP
from .streams import StreamFIFO

__all__ = ["Pipeline", "Stages"]


class Pipeline:
    """Lock-step handshake for a stream function of ``latency`` register stages.

    Call :meth:`connect` once from ``elaborate``; then register every stage value with
    :meth:`stage` (or :meth:`delay`), which clocks it only while :attr:`en` is high.

    Attributes
    ----------
    en : Signal
        High in cycles where every stage register advances by one beat.

    ``dsp``: the elaboration's :class:`~.dsp.ECP5DSP` target, if any (:meth:`product`).
    ``buffered``: the stages never hold (``en`` is 1) and a queue of :attr:`queue_depth`
    beats follows them (see the module's description; :class:`Stages` counts its latency).
    """

    #: Cycles from a beat's write into the queue to its being offered at ``o``.
    QUEUE_LATENCY = 2

    def __init__(
        self,
        latency: int,
        *,
        name: str = "pipe",
        dsp: ECP5DSP | None = None,
        buffered: bool = False,
    ):
        if not isinstance(latency, int) or latency < 0:
            raise ValueError(f"latency must be a non-negative integer, not {latency!r}")
        if not isinstance(buffered, bool):
            raise TypeError(f"buffered must be a bool, not {type(buffered).__name__}")
        if buffered and latency == 0:
            raise ValueError("a buffered pipeline needs at least one stage")
        self.latency = latency
        self.buffered = buffered
        self.name = name
        self.en = Signal(name=f"{name}_en")
        self.dsp = dsp
        self._regs: list[tuple[Signal, Value]] = []
        self._blocks: list[tuple[Signal, Value, Value]] = []
        self._finished = False

    @property
    def queue_depth(self) -> int:
        """Beats the queue of a ``buffered`` pipeline holds (0 without): its stages, its own
        latency, the cycle a given beat's credit takes to return and one more, so that with
        ``o`` always ready a beat enters every clock."""
        return _queue_depth(self.latency, self.buffered)

    def connect(self, m: Module, i, o):
        """Drive ``i.ready``, ``o.valid`` and the enable; ``i``/``o`` are stream interfaces.
        Returns the stream whose ``payload`` the block drives with its last stage's results:
        ``o`` itself, or (``buffered``) the queue's input."""
        if self.latency == 0:
            m.d.comb += [o.valid.eq(i.valid), i.ready.eq(o.ready), self.en.eq(1)]
            return o
        valid = [Signal(name=f"{self.name}_valid{k + 1}") for k in range(self.latency)]
        if self.buffered:
            out = self._queue(m, i, o)
            first = i.valid & i.ready
        else:
            out, first = o, i.valid
            m.d.comb += [self.en.eq(~valid[-1] | o.ready), i.ready.eq(self.en)]
        m.d.comb += out.valid.eq(valid[-1])
        with m.If(self.en):
            m.d.sync += valid[0].eq(first)
            m.d.sync += [valid[k].eq(valid[k - 1]) for k in range(1, self.latency)]
        return out

    def _queue(self, m: Module, i, o):
        """The queue behind a buffered pipeline's stages, feeding ``o``, and the credit count
        that drives ``i.ready``; the enable is 1. Returns the queue's input."""
        depth = self.queue_depth
        m.submodules[f"{self.name}_queue"] = queue = StreamFIFO(o.payload.shape(), depth)
        # (by hand: `o` may be this block's own output or a sub-block's input)
        m.d.comb += [o.valid.eq(queue.o.valid), o.payload.eq(queue.o.payload)]
        m.d.comb += queue.o.ready.eq(o.ready)
        last = stream.Signature(o.payload.shape()).create(path=(f"{self.name}_last",))
        wiring.connect(m, last, queue.i)
        # Beats taken and not yet given at `o`: in the stages or the queue, never more than
        # it holds, so the queue always has room for the last stage's beat. A beat given
        # returns its credit a cycle later (`gave`, a register): `o.ready` is the
        # consumer's, which on a placed board build sat 40-50 tiles from the count (a
        # layer's deserializer pulled towards the next block), and the path from the
        # queue's valid through that ready and back into the count was the longest of
        # the placement. The queue holds a beat more for that cycle.
        space = Signal(range(depth + 1), init=depth, name=f"{self.name}_space")
        gave = Signal(name=f"{self.name}_gave")
        take = i.valid & i.ready
        m.d.sync += [gave.eq(o.valid & o.ready), space.eq(space - take + gave)]
        m.d.comb += [self.en.eq(1), i.ready.eq(space != 0)]
        return last

    def stage(self, value: Value, shape=None, *, name: str, reset_less: bool = False) -> Signal:
        """A register that takes ``value`` whenever the pipeline advances. ``reset_less`` for
        data read only beside its valid bit (a memory's read, registered: on an ECP5 the
        board flow moves such a register into the block RAM, ``generators.ecp5_outreg``)."""
        if self._finished:
            raise RuntimeError("Pipeline.stage() after finish(): the register would be undriven")
        reg = Signal(value.shape() if shape is None else shape, name=name, reset_less=reset_less)
        self._regs.append((reg, value))
        return reg

    def product(self, a: Signal, b: Signal, shape, *, name: str) -> Signal:
        """``a * b`` in a register of ``shape`` that takes it whenever the pipeline advances,
        where ``a`` and ``b`` are registers of this pipeline (:meth:`stage`). With a
        :attr:`dsp` target that takes the operands, one DSP block holds all three: its input
        registers take what ``a`` and ``b`` take, its output register is the product's (the
        fabric registers ``a`` and ``b`` are then left to what else reads them)."""
        if self._finished:
            raise RuntimeError("Pipeline.product() after finish(): the register would be undriven")
        values = {id(reg): value for reg, value in self._regs}
        for operand in (a, b):
            if id(operand) not in values:
                raise ValueError(f"{name}: an operand is not a register of pipeline {self.name}")
        if self.dsp is None or not self.dsp.takes(a.shape(), b.shape()):
            return self.stage(a * b, shape, name=name)
        p = Signal(shape, name=name)
        self._blocks.append((p, values[id(a)], values[id(b)]))
        return p

    def delay(self, value: Value, cycles: int, *, name: str, reset_less: bool = False) -> Value:
        """``value`` delayed by ``cycles`` pipeline advances (a chain of stage registers)."""
        for k in range(cycles):
            value = self.stage(value, name=f"{name}_d{k + 1}", reset_less=reset_less)
        return value

    def finish(self, m: Module) -> None:
        """Emit all stage registers under the enable; call once at the end of ``elaborate``."""
        if self._finished:
            raise RuntimeError("Pipeline.finish() called twice")
        if self._regs:
            with m.If(self.en):
                m.d.sync += [reg.eq(value) for reg, value in self._regs]
        for p, a, b in self._blocks:
            self.dsp.product(m, a, b, p, self.en, name=f"{p.name}_dsp")
        self._regs, self._blocks = [], []
        self._finished = True


def _queue_depth(stages: int, buffered: bool) -> int:
    return stages + Pipeline.QUEUE_LATENCY + 2 if buffered else 0


class Stages:
    """What a block run by one :class:`Pipeline` of :attr:`stages` registers (``buffered``
    or not, its attribute) promises about time and room, from those two alone."""

    stages: int
    buffered: bool

    @property
    def latency(self) -> int:
        """Cycles from an accepted input (sub-)beat to its output: the stages, and
        buffered, the queue's."""
        return self.stages + (Pipeline.QUEUE_LATENCY if self.buffered else 0)

    @property
    def queue_depth(self) -> int:
        """(Sub-)beats the queue behind the stages holds (``buffered``; 0 without)."""
        return _queue_depth(self.stages, self.buffered)

    @property
    def beats_held(self) -> int:
        """Most (sub-)beats inside: one per stage, or (buffered) what the queue has room
        for, stages included."""
        return self.queue_depth if self.buffered else self.stages

    @property
    def queue_bits(self) -> int:
        """Storage of the queue (0 without): its depth times an output beat's bits."""
        return self.queue_depth * Shape.cast(self.o.payload.shape()).width
