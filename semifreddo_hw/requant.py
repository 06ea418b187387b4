# amaranth: UnusedElaboratable=no
"""Requantization: wide accumulators back to int8, per channel, as ``docs/numerics.md`` §4.

``y = clamp((acc * scale + bias + round) >> shift, lo, 127)`` with ``round = 2**(shift-1)``
(round half up; none when ``shift == 0``), ``lo = 0`` with ReLU and ``-128`` without. ``scale``
and ``bias`` are per channel and configurable at run time (the frozen core's batch norm stays
trainable); ``shift`` and ReLU are build-time constants.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spec.formats import BIAS_BITS, INT8_MAX, INT8_MIN, SCALE_BITS, SHIFT_MAX, signed_range

from .adder_graph import signed_width
from .dsp import DSP_OPERAND_BITS, dsp_target
from .fold import PhaseCounter
from .param_bank import ParamBank, PhaseBank, per_set
from .pipeline import Pipeline, Stages
from .streams import forward, vector_layout

__all__ = ["Requantizer"]


def _times(x: tuple[int, int], y: tuple[int, int]) -> tuple[int, int]:
    """The range of ``a * b`` for ``a`` in range ``x`` and ``b`` in range ``y``."""
    corners = [a * b for a in x for b in y]
    return min(corners), max(corners)


#: The low part's bits, where an accumulator wider than a DSP block's signed operand is
#: multiplied in two parts (unsigned: one bit less than the DSP operand).
SPLIT_BITS = DSP_OPERAND_BITS - 1


class Requantizer(Stages, wiring.Component):
    """Per-channel scale, bias, shift, round half up, saturate to int8, optional ReLU.

    Exact: every intermediate is as wide as its range, so nothing wraps.

    Spatial (``fold`` 1): every channel in every beat, one multiplier each, parameters read
    from a :class:`ParamBank`; four pipeline stages (operand and scale registered; multiply,
    the bias registered; add and shift; clamp).

    Folded (``fold`` F > 1, :mod:`.fold`): each beat is F sub-beats of ``channels / F``
    lanes, channel group after channel group, one multiplier per lane,
    parameters read a group at a time from :class:`PhaseBank`\\ s (block RAM); five stages
    (the scale read; the scale registered; multiply, the bias registered; add and shift;
    clamp). Neither a memory read nor a multiply shares a stage with other arithmetic, so a
    DSP block has registers on both sides and the wide add and the saturation get a stage
    each: measured, these layers went from about 58 MHz to 125-135 MHz on the ECP5
    (``bench/fmax.py``). A sum wider than a DSP operand (:data:`DSP_OPERAND_BITS`) is
    multiplied in two parts, each registered, and they are added with the bias.

    Parameters
    ----------
    channels : int
        Channels per beat.
    acc_width : int
        Width of the signed input lanes.
    shift : int
        Right shift after scaling, 0..62 (:data:`spec.formats.SHIFT_MAX`).
    relu : bool
        Clamp at 0 instead of -128.
    scale_bits, bias_bits : int
        Widths of the signed per-channel scale and bias (defaults: :mod:`spec.formats`).
    scale_init, bias_init : list of int
        Power-up values (default scale 1, bias 0).
    fold : int
        Sub-beats per beat (default 1: spatial).
    sets : int
        Parameter sets (default 1); every set starts with ``scale_init`` and ``bias_init``,
        unless they give a row per set (:func:`~.param_bank.per_set`).
    buffered : bool
        The stages never stall; a queue follows them (:class:`~.pipeline.Pipeline`'s
        ``buffered``): ``i.ready`` from a register, no enable fanned out to the stages and
        the banks' reads, two cycles more latency.

    Ports: ``i`` (``signed(acc_width)`` lanes), ``o`` (``signed(8)`` lanes), ``channels /
    fold`` lanes each; ``scale_write`` and ``bias_write`` (bank writes ``{set, index,
    value}``: channel ``c`` at the bank's ``address(c)``); ``select``: the set the (sub-)beat
    at ``i`` in the same cycle is computed with (each stage reads its parameters with the
    set its beat came in with). Change a set only while no beat computed with it is inside.
    """

    def __init__(
        self,
        channels: int,
        acc_width: int,
        *,
        shift: int,
        relu: bool = False,
        scale_bits: int = SCALE_BITS,
        bias_bits: int = BIAS_BITS,
        scale_init=None,
        bias_init=None,
        side_width: int = 0,
        fold: int = 1,
        sets: int = 1,
        buffered: bool = False,
    ):
        for name, v, lo in (
            ("channels", channels, 1),
            ("acc_width", acc_width, 1),
            ("scale_bits", scale_bits, 2),
            ("bias_bits", bias_bits, 2),
            ("fold", fold, 1),
            ("sets", sets, 1),
        ):
            if not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, not {v!r}")
        if not isinstance(shift, int) or not 0 <= shift <= SHIFT_MAX:
            raise ValueError(f"shift must be an integer in 0..{SHIFT_MAX}, not {shift!r}")
        lanes = channels // fold
        if channels % fold:
            raise ValueError(f"fold {fold} must divide the {channels} channels")
        self.channels, self.acc_width, self.shift, self.relu = channels, acc_width, shift, relu
        self.scale_bits, self.bias_bits = scale_bits, bias_bits
        self.side_width, self.fold, self.lanes = side_width, fold, lanes
        self.sets = sets
        self.buffered = bool(buffered)
        inits = (
            per_set(scale_init, [1] * channels, sets),
            per_set(bias_init, [0] * channels, sets),
        )
        if fold == 1:
            self.scales = ParamBank(signed(scale_bits), channels, sets=sets, init=inits[0])
            self.biases = ParamBank(signed(bias_bits), channels, sets=sets, init=inits[1])
        else:
            bank = dict(sets=sets)
            self.scales = PhaseBank(signed(scale_bits), channels, lanes, init=inits[0], **bank)
            self.biases = PhaseBank(signed(bias_bits), channels, lanes, init=inits[1], **bank)
        super().__init__(
            {
                "i": In(stream.Signature(vector_layout(signed(acc_width), lanes, side_width))),
                "o": Out(stream.Signature(vector_layout(signed(8), lanes, side_width))),
                "scale_write": self.scales.signature.members["write"],
                "bias_write": self.biases.signature.members["write"],
                "select": In(range(sets)),
            }
        )

    @property
    def stages(self) -> int:
        """Pipeline stages."""
        return 4 if self.fold == 1 else 5

    @property
    def register_bits(self) -> int:
        """Data register bits (operands, products, results, side bits; valid bits and the
        phase counters excluded)."""
        # Per lane: the operand (twice, folded: it waits for the row), product, shifted sum
        # and result; the scale and bias as read (a memory's read register, folded or with
        # two sets, where synthesis makes the first register after a memory its read port;
        # flip-flops with one spatial set), and folded once more registered.
        product = sum(signed_width(*r) for r in self._partial_ranges)
        per_lane = self.acc_width + product + max(1, self._sum_width - self.shift) + 8
        operands = self.scale_bits + self.bias_bits
        if self.fold > 1:
            per_lane += self.acc_width + operands
        elif self.sets == 1:
            per_lane += operands
        return self.lanes * per_lane + self.stages * self.side_width + self.queue_bits

    @property
    def _product_range(self) -> tuple[int, int]:
        """Range of ``acc * scale`` over all signed inputs and scales."""
        return _times(signed_range(self.acc_width), signed_range(self.scale_bits))

    @property
    def _partial_ranges(self) -> list[tuple[int, int]]:
        """Ranges of the registered partial products (:meth:`_product`): ``acc * scale``
        whole, or its low (:data:`SPLIT_BITS` unsigned bits) and high parts."""
        if self.acc_width <= DSP_OPERAND_BITS:
            return [self._product_range]
        scale = signed_range(self.scale_bits)
        return [
            _times((0, (1 << SPLIT_BITS) - 1), scale),
            _times(signed_range(self.acc_width - SPLIT_BITS), scale),
        ]

    def _product(self, pipe, acc, scale, c):
        """``acc * scale``, registered, ``acc`` (a value) registered first and ``scale`` (a
        register) as it is, so that a DSP block's registers can hold both operands and the
        product (:meth:`.pipeline.Pipeline.product`): as one product where ``acc`` fits the
        block's operand, else as two (the low bits, unsigned, in the block; the few high bits
        beside it) added in the next stage (:meth:`_output`). Added in the same stage, the
        block's product ran through a carry chain, and the placer puts DSP blocks where their
        columns are: far from that chain on a full part."""
        ranges = self._partial_ranges
        if len(ranges) == 1:
            a = pipe.stage(acc, name=f"a{c}")
            return pipe.product(a, scale, signed(signed_width(*ranges[0])), name=f"prod{c}")
        low = pipe.stage(acc.as_unsigned()[:SPLIT_BITS], name=f"a{c}_lo")
        high = pipe.stage(acc[SPLIT_BITS:].as_signed(), name=f"a{c}_hi")
        p_lo = pipe.product(low, scale, signed(signed_width(*ranges[0])), name=f"prod{c}_lo")
        p_hi = pipe.product(high, scale, signed(signed_width(*ranges[1])), name=f"prod{c}_hi")
        return p_lo + (p_hi << SPLIT_BITS)

    @property
    def _sum_width(self) -> int:
        """Width of ``prod + bias + round``."""
        b_lo, b_hi = -(1 << (self.bias_bits - 1)), (1 << (self.bias_bits - 1)) - 1
        p_lo, p_hi = self._product_range
        rnd = (1 << self.shift) >> 1
        return signed_width(p_lo + b_lo + rnd, p_hi + b_hi + rnd)

    def _output(self, m, pipe, prod, bias, c):
        """``clamp((prod + bias + round) >> shift)`` for channel (lane) ``c``, registered."""
        rnd = (1 << self.shift) >> 1
        t_width = self._sum_width
        lo = 0 if self.relu else INT8_MIN
        # The sum registered, then shifted and clamped: a wide add behind a memory read and
        # a saturation behind it were one stage too long for an FPGA's 100 MHz.
        # (only the bits the shift keeps are registered)
        t = Signal(signed(t_width), name=f"t{c}")
        m.d.comb += t.eq(prod + bias + rnd)
        r = pipe.stage(t >> self.shift, signed(max(1, t_width - self.shift)), name=f"r{c}")
        # Saturation from r's top bits, not by magnitude compares (which Yosys makes carry
        # chains, two per lane): r fits int8 where bits 7 and up all equal its sign.
        if len(r) <= 8:
            return pipe.stage(Mux(r < lo, lo, r), signed(8), name=f"y{c}")
        sign, top = r[-1], r[7:]
        over = ~sign & top.any()
        under = sign if self.relu else sign & ~top.all()
        y = Mux(over, INT8_MAX, Mux(under, lo, r[:8].as_signed()))
        return pipe.stage(y, signed(8), name=f"y{c}")

    def elaborate(self, platform):
        m = Module()
        m.submodules.scales = scales = self.scales
        m.submodules.biases = biases = self.biases
        for bank, port in ((scales, self.scale_write), (biases, self.bias_write)):
            forward(m, port, bank.write)

        pipe = Pipeline(self.stages, name="rq", dsp=dsp_target(platform), buffered=self.buffered)
        o = pipe.connect(m, self.i, self.o)
        # The scale is read with the beat at the input, the bias a stage later (beside the
        # multiply); each read is registered before its arithmetic (a memory read, then a
        # DSP block or a wide add, in one stage was too long for an FPGA's 100 MHz).
        if self.sets > 1:
            m.d.comb += [
                scales.select.eq(self.select),
                biases.select.eq(pipe.stage(self.select, name="select1")),
            ]
        if self.fold == 1:
            for c in range(self.channels):
                s_ = pipe.stage(scales.element(c), name=f"s{c}")
                prod = self._product(pipe, self.i.payload.data[c], s_, c)
                # the bias read beside the multiply
                bias = pipe.stage(biases.element(c), name=f"b{c}", reset_less=True)
                y = self._output(m, pipe, prod, bias, c)
                m.d.comb += o.payload.data[c].eq(y)
        else:
            # Stage 1 holds the operands while the scale bank reads the group's row; stage
            # 2 the products while the bias bank reads it (banks advance with the pipeline).
            phase = PhaseCounter(m, self.i, self.fold, name="rq")
            m.d.comb += [
                scales.phase.eq(phase.value),
                scales.en.eq(pipe.en),
                biases.phase.eq(pipe.stage(phase.value, name="phase1")),
                biases.en.eq(pipe.en),
            ]
            for c in range(self.lanes):
                acc = pipe.stage(self.i.payload.data[c], name=f"acc{c}")
                s_ = pipe.stage(scales.data[c], name=f"s{c}", reset_less=True)  # the read
                prod = self._product(pipe, acc, s_, c)
                bias = pipe.stage(biases.data[c], name=f"b{c}", reset_less=True)
                y = self._output(m, pipe, prod, bias, c)
                m.d.comb += o.payload.data[c].eq(y)
        m.d.comb += o.payload.side.eq(pipe.delay(self.i.payload.side, self.stages, name="side"))
        pipe.finish(m)
        return m
