"""Control for fixed-latency streaming pipelines.

Every arithmetic block here is a function of one input beat, computed over a fixed number of
register stages. :class:`Pipeline` supplies the handshake for such a block: all stages advance
together on one enable, which holds whenever the last stage has a beat the consumer does not
take. Nothing is lost or duplicated under any valid/ready pattern, and with ``o.ready`` held
high the block accepts one beat per clock.
"""

from amaranth.hdl import Module, Signal, Value

from .dsp import ECP5DSP

__all__ = ["Pipeline"]


class Pipeline:
    """Lock-step handshake for a stream function of ``latency`` register stages.

    Call :meth:`connect` once from ``elaborate``; then register every stage value with
    :meth:`stage` (or :meth:`delay`), which clocks it only while :attr:`en` is high.

    Attributes
    ----------
    en : Signal
        High in cycles where every stage register advances by one beat.

    ``dsp``: the elaboration's :class:`~.dsp.ECP5DSP` target, if any (:meth:`product`).
    """

    def __init__(self, latency: int, *, name: str = "pipe", dsp: ECP5DSP | None = None):
        if not isinstance(latency, int) or latency < 0:
            raise ValueError(f"latency must be a non-negative integer, not {latency!r}")
        self.latency = latency
        self.name = name
        self.en = Signal(name=f"{name}_en")
        self.dsp = dsp
        self._regs: list[tuple[Signal, Value]] = []
        self._blocks: list[tuple[Signal, Value, Value]] = []
        self._finished = False

    def connect(self, m: Module, i, o) -> None:
        """Drive ``i.ready``, ``o.valid`` and the enable; ``i``/``o`` are stream interfaces."""
        if self.latency == 0:
            m.d.comb += [o.valid.eq(i.valid), i.ready.eq(o.ready), self.en.eq(1)]
        else:
            valid = [Signal(name=f"{self.name}_valid{k + 1}") for k in range(self.latency)]
            m.d.comb += [
                self.en.eq(~valid[-1] | o.ready),
                i.ready.eq(self.en),
                o.valid.eq(valid[-1]),
            ]
            with m.If(self.en):
                m.d.sync += valid[0].eq(i.valid)
                m.d.sync += [valid[k].eq(valid[k - 1]) for k in range(1, self.latency)]

    def stage(self, value: Value, shape=None, *, name: str) -> Signal:
        """A register that takes ``value`` whenever the pipeline advances."""
        if self._finished:
            raise RuntimeError("Pipeline.stage() after finish(): the register would be undriven")
        reg = Signal(value.shape() if shape is None else shape, name=name)
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

    def delay(self, value: Value, cycles: int, *, name: str) -> Value:
        """``value`` delayed by ``cycles`` pipeline advances (a chain of stage registers)."""
        for k in range(cycles):
            value = self.stage(value, name=f"{name}_d{k + 1}")
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
