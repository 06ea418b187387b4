# amaranth: UnusedElaboratable=no
"""Requantization: wide accumulators back to int8, per channel, as ``docs/numerics.md`` §4.

``y = clamp((acc * scale + bias + round) >> shift, lo, 127)`` with ``round = 2**(shift-1)``
(round half up; none when ``shift == 0``), ``lo = 0`` with ReLU and ``-128`` without. ``scale``
and ``bias`` are per channel and configurable at run time (the frozen core's batch norm stays
trainable); ``shift`` and ReLU are build-time constants.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
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

#: Low accumulator bits (beyond a DSP block's operand) multiplied in LUTs, their product
#: added to the bias a stage before the sum, where a product of its own would make the wide
#: sum a three-operand one (a row of full adders before its carry chain). Up to 6 bits (7
#: signed): narrower than the operands a board build gives DSP blocks (8 bits for `small`),
#: so in LUTs either way. Measured alone (``bench/requant_area.py --widths 22 24 --sets 1``,
#: here and with this constant set to 3), 297 against 340 LUT4 equivalents at 4 low bits,
#: 382 against 433 at 6.
LUT_LOW_BITS = 6


def _times(x: tuple[int, int], y: tuple[int, int]) -> tuple[int, int]:
    """The range of ``a * b`` for ``a`` in range ``x`` and ``b`` in range ``y``."""
    corners = [a * b for a in x for b in y]
    return min(corners), max(corners)


class Requantizer(Stages, wiring.Component):
    """Per-channel scale, bias, shift, round half up, saturate to int8, optional ReLU.

    Exact: every intermediate is as wide as its range, so nothing wraps.

    Spatial (``fold`` 1): every channel in every beat, one multiplier each, parameters read
    from a :class:`ParamBank`; four pipeline stages (operand and scale registered; multiply,
    the bias registered; add and shift; round and clamp).

    Folded (``fold`` F > 1, :mod:`.fold`): each beat is F sub-beats of ``channels / F``
    lanes, channel group after channel group, one multiplier per lane,
    parameters read a group at a time from :class:`PhaseBank`\\ s (block RAM); five stages
    (the scale read; the scale registered; multiply, the bias registered; add and shift;
    round and clamp). Neither a memory read nor a multiply shares a stage with other
    arithmetic, so a DSP block has registers on both sides and the wide add and the
    saturation get a stage each: measured, these layers went from about 58 MHz to 125-135
    MHz on the ECP5 (``bench/fmax.py``).

    An accumulator wider than a DSP operand (:data:`DSP_OPERAND_BITS`) is multiplied in two
    parts: its top 18 bits in the block, the low ones apart. Up to :data:`LUT_LOW_BITS` low
    bits whose product the DSP target would not take are multiplied in LUTs in the
    multiply's stage and added to the bias there (the bias read and registered a stage
    earlier, with the scale), so the wide add has two operands; more get a product of their
    own beside the block's and the bias is a third operand. The round bit is added after
    the shift, to the low bits that survive it, and the saturation reads the top bits: no
    compare is a carry chain.

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
        # Per lane: the operand (twice, folded: it waits for the row), product terms,
        # shifted sum and result; the scale and bias as read (a memory's read register,
        # folded or with two sets, where synthesis makes the first register after a memory
        # its read port; flip-flops with one spatial set), and folded once more registered.
        product = sum(signed_width(*r) for r, _, bias in self._terms_ranges() if not bias)
        per_lane = self.acc_width + product + self._kept_width + 8
        operands = self.scale_bits + self.bias_bits
        if self.fold > 1:
            per_lane += self.acc_width + operands
        elif self.sets == 1:
            per_lane += operands
        return self.lanes * per_lane + self.stages * self.side_width + self.queue_bits

    @property
    def _low_bits(self) -> int:
        """Low accumulator bits multiplied apart from the top ones (0: the whole product in
        one DSP block's operand)."""
        return max(0, self.acc_width - DSP_OPERAND_BITS)

    def _early_bias(self, dsp=None) -> bool:
        """Whether the bias is read with the scale, to join the low bits' product: up to
        :data:`LUT_LOW_BITS` of them, and not where the elaboration's DSP target ``dsp``
        takes their product (a block with its registers, not a multiply beside an add)."""
        k = self._low_bits
        if not 0 < k <= LUT_LOW_BITS:
            return False
        return dsp is None or not dsp.takes(unsigned(k), signed(self.scale_bits))

    def _terms_ranges(self, early=None) -> list[tuple[tuple[int, int], int, bool]]:
        """The registered terms of ``acc * scale + bias`` (:meth:`_terms`): each one's range,
        the left shift it is added with, whether it is the bias as read (an operand).
        ``early``: :meth:`_early_bias`, without a DSP target if None."""
        scale, bias = signed_range(self.scale_bits), signed_range(self.bias_bits)
        k = self._low_bits
        if k == 0:
            return [(_times(signed_range(self.acc_width), scale), 0, False), (bias, 0, True)]
        high = (_times(signed_range(self.acc_width - k), scale), k, False)
        low = _times((0, (1 << k) - 1), scale)
        if self._early_bias() if early is None else early:
            return [high, ((bias[0] + low[0], bias[1] + low[1]), 0, False)]
        return [high, (low, 0, False), (bias, 0, True)]

    def _terms(self, pipe, acc, scale, bias, c, early) -> list:
        """The terms of ``acc * scale + bias``, registered, as :attr:`_terms_ranges` lists
        them. The product's operands (``acc`` a value, ``scale`` a register) are registered
        first so that a DSP block's registers can hold both and the product
        (:meth:`.pipeline.Pipeline.product`); ``bias`` (as read) is registered for the
        product's stage. Where ``acc`` is wider than the block's operand, its top bits are
        multiplied there and the low ones apart: up to :data:`LUT_LOW_BITS` of them in LUTs,
        their product added to the bias (read a stage earlier for it), else in a block of
        their own and the bias a third term. Added in one stage with the bias, two parts of
        the product made the sum a three-operand one: a row of full adders (LUTs) before its
        carry chain."""
        ranges = self._terms_ranges(early)
        bias = pipe.stage(bias, name=f"b{c}", reset_less=True)
        k = self._low_bits
        if k == 0:
            a = pipe.stage(acc, name=f"a{c}")
            return [
                pipe.product(a, scale, signed(signed_width(*ranges[0][0])), name=f"prod{c}"),
                bias,
            ]
        high = pipe.stage(acc[k:].as_signed(), name=f"a{c}_hi")
        low = pipe.stage(acc.as_unsigned()[:k], name=f"a{c}_lo")
        shape = signed(signed_width(*ranges[0][0]))
        terms = [pipe.product(high, scale, shape, name=f"prod{c}_hi") << k]
        shape = signed(signed_width(*ranges[1][0]))
        if early:
            return [*terms, pipe.stage(bias + low * scale, shape, name=f"q{c}")]
        return [*terms, pipe.product(low, scale, shape, name=f"prod{c}_lo"), bias]

    @property
    def _sum_width(self) -> int:
        """Width of ``acc * scale + bias``."""
        terms = self._terms_ranges()
        lo = sum(r[0] << k for r, k, _ in terms)
        hi = sum(r[1] << k for r, k, _ in terms)
        return signed_width(lo, hi)

    @property
    def _kept_width(self) -> int:
        """Width of the registered shifted sum: the bits the shift keeps, and (``shift`` > 0)
        the one below them, at least 10 (:meth:`_output`)."""
        if self.shift == 0:
            return self._sum_width
        return max(10, self._sum_width - self.shift + 1)

    def _output(self, m, pipe, terms, c):
        """``clamp((sum(terms) + round) >> shift)`` for channel (lane) ``c``, registered."""
        lo = 0 if self.relu else INT8_MIN
        # The sum registered, then clamped: a wide add behind a memory read and a saturation
        # behind it were one stage too long for an FPGA's 100 MHz. Only the bits the shift
        # keeps are registered, and the one below them: the round bit added there
        # ((t + 2**(s-1)) >> s == ((t >> (s-1)) + 1) >> 1) touches only the 9 bits the result
        # and its saturation need, not the whole sum.
        t = Signal(signed(self._sum_width), name=f"t{c}")
        m.d.comb += t.eq(sum(terms[1:], terms[0]))
        if self.shift == 0:
            r = pipe.stage(t, name=f"r{c}")
            if len(r) <= 8:
                return pipe.stage(Mux(r < lo, lo, r), signed(8), name=f"y{c}")
            # r fits int8 where bits 7 and up all equal its sign
            sign, top = r[-1], r[7:]
            over = ~sign & top.any()
            under = sign if self.relu else sign & ~top.all()
            value = r[:8]
        else:
            u = pipe.stage(t >> (self.shift - 1), signed(self._kept_width), name=f"u{c}")
            sign = u[-1]
            # the result is (u + 1) >> 1: above 127 where u >= 255; below 0 where u <= -2;
            # below -128 where u <= -258 (-257 is bits 9 and up all ones over 0b011111111)
            over = ~sign & (u[8:].any() | u[:8].all())
            under = sign & ~(u.all() if self.relu else u[9:].all() & (u[8] | u[:8].all()))
            rounded = Signal(9, name=f"rounded{c}")
            m.d.comb += rounded.eq(u[:9] + 1)
            value = rounded[1:]
        y = Mux(over, INT8_MAX, Mux(under, lo, value.as_signed()))
        return pipe.stage(y, signed(8), name=f"y{c}")

    def elaborate(self, platform):
        m = Module()
        m.submodules.scales = scales = self.scales
        m.submodules.biases = biases = self.biases
        for bank, port in ((scales, self.scale_write), (biases, self.bias_write)):
            forward(m, port, bank.write)

        dsp = dsp_target(platform)
        pipe = Pipeline(self.stages, name="rq", dsp=dsp, buffered=self.buffered)
        o = pipe.connect(m, self.i, self.o)
        # The scale is read with the beat at the input, the bias a stage later (beside the
        # multiply), or with the scale where the low bits' product joins it (:meth:`_terms`);
        # each read is registered before its arithmetic (a memory read, then a DSP block or
        # a wide add, in one stage was too long for an FPGA's 100 MHz).
        early = self._early_bias(dsp)
        if self.sets > 1:
            late = self.select if early else pipe.stage(self.select, name="select1")
            m.d.comb += [scales.select.eq(self.select), biases.select.eq(late)]
        if self.fold == 1:
            for c in range(self.channels):
                s_ = pipe.stage(scales.element(c), name=f"s{c}")
                terms = self._terms(pipe, self.i.payload.data[c], s_, biases.element(c), c, early)
                m.d.comb += o.payload.data[c].eq(self._output(m, pipe, terms, c))
        else:
            # Stage 1 holds the operands while the scale bank reads the group's row; stage
            # 2 the product's operands while the bias bank reads it (registered beside the
            # product, stage 3), or, read early, the bias registered beside them (added to
            # the low bits' product into stage 3). The banks advance with the pipeline.
            phase = PhaseCounter(m, self.i, self.fold, name="rq")
            late = phase.value if early else pipe.stage(phase.value, name="phase1")
            m.d.comb += [
                scales.phase.eq(phase.value),
                scales.en.eq(pipe.en),
                biases.phase.eq(late),
                biases.en.eq(pipe.en),
            ]
            for c in range(self.lanes):
                acc = pipe.stage(self.i.payload.data[c], name=f"acc{c}")
                s_ = pipe.stage(scales.data[c], name=f"s{c}", reset_less=True)  # the read
                terms = self._terms(pipe, acc, s_, biases.data[c], c, early)
                m.d.comb += o.payload.data[c].eq(self._output(m, pipe, terms, c))
        m.d.comb += o.payload.side.eq(pipe.delay(self.i.payload.side, self.stages, name="side"))
        pipe.finish(m)
        return m
