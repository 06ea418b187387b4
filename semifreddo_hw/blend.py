# amaranth: UnusedElaboratable=no
"""Vertical-freezing glue between cores: per-channel alpha blend and the cross-core shuffle.

* :class:`AlphaBlend` (paper eq. 1, ``docs/numerics.md`` §5): per channel ``c``,
  ``y = (a[c] * x_f + (128 - a[c]) * x_t + 64) >> 7`` with a run-time 8-bit code ``a`` in
  0..128 (alpha = a / 128; 0, 0.5 and 1 exact).
* :class:`CoreShuffle`: when ``enable`` is high, the two trainable cores swap the second
  half of their channels (``a' = [a[:C/2], b[C/2:]]``, ``b' = [b[:C/2], a[C/2:]]``); when low,
  both pass unchanged. One 2:1 multiplexer per swapped lane into a pair of output
  registers.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spec.formats import ALPHA_BITS, ALPHA_ONE
from spec.stream import EPOCH_BIT, MARKER_BITS

from .dsp import dsp_target
from .fold import Deserializer, PhaseCounter, Serializer
from .param_bank import ParamBank, PhaseBank
from .pipeline import Pipeline, Stages
from .streams import forward, join, vector_layout

__all__ = ["AlphaBlend", "CoreShuffle"]


class AlphaBlend(Stages, wiring.Component):
    """Blend a frozen-core stream ``f`` and a trainable-core stream ``t`` per channel.

    Beats of ``f`` and ``t`` are taken together (same pixel); the output carries ``f``'s
    markers, and a beat whose two markers differ sets the sticky ``marker_mismatch``. Codes
    above 128 written to ``alpha_write`` act as 128, so the output is always a convex
    combination and always int8.

    Spatial (``fold`` 1): one multiplier per channel, codes in a :class:`ParamBank`; three
    pipeline stages (:attr:`latency`: difference, product, sum). Folded (``fold`` F dividing
    the channels, for beats that come every F cycles or rarer, :mod:`.fold`): each beat as F
    sub-beats of a channel group, one multiplier per group lane, the codes in a
    :class:`PhaseBank` read a group per cycle; four stages per sub-beat (operands while the
    codes are read, difference, product, sum).

    ``sets`` 2: two sets of codes (both starting as ``alpha_init``); each beat is blended
    with the set its epoch marker (:data:`spec.stream.EPOCH`) names, and ``alpha_write``
    names the set it writes.

    ``period``: the fewest cycles between two beats (a rate build's). Folded, where the
    beats leave a cycle to spare (``period`` > ``fold``), the output beat comes from
    flip-flops (:attr:`registered_output`): neither ``o.ready`` nor ``o.valid`` runs
    through the pipeline's enable into the streams that feed it, which on a placed board
    build crossed the chip from the blend through the core shuffle into its own input FIFOs.
    Folded with a period given, the stages never stall either (:attr:`buffered`: a queue
    behind them, :class:`~.pipeline.Pipeline`'s ``buffered``): the deserializer's ``ready``
    stops at the queue instead of running through the stages' enable into the code bank
    and the input FIFOs.
    """

    def __init__(
        self,
        channels: int,
        *,
        alpha_init=None,
        fold: int = 1,
        sets: int = 1,
        period: int | None = None,
    ):
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, not {channels!r}")
        if not isinstance(fold, int) or fold < 1 or channels % fold:
            raise ValueError(f"fold must be a positive divisor of {channels}, not {fold!r}")
        init = [0] * channels if alpha_init is None else [int(a) for a in alpha_init]
        if len(init) != channels or any(not 0 <= a <= ALPHA_ONE for a in init):
            raise ValueError(f"alpha_init must be {channels} codes in 0..{ALPHA_ONE}")
        if sets not in (1, 2):
            raise ValueError(f"sets must be 1 or 2, not {sets!r}")
        self.channels, self.fold, self.lanes = channels, fold, channels // fold
        self.sets = sets
        self.registered_output = fold > 1 and period is not None and period >= fold + 1
        self.buffered = fold > 1 and period is not None
        self.alphas = (
            ParamBank(unsigned(ALPHA_BITS), channels, sets=sets, init=[init] * sets)
            if fold == 1
            else PhaseBank(
                unsigned(ALPHA_BITS), channels, self.lanes, sets=sets, init=[init] * sets
            )
        )
        layout = vector_layout(signed(8), channels, MARKER_BITS)
        super().__init__(
            {
                "f": In(stream.Signature(layout)),
                "t": In(stream.Signature(layout)),
                "o": Out(stream.Signature(layout)),
                "alpha_write": self.alphas.signature.members["write"],
                "marker_mismatch": Out(1),
            }
        )

    @property
    def stages(self) -> int:
        """Pipeline stages."""
        return 3 if self.fold == 1 else 4

    def _pipeline(self, dsp) -> Pipeline:
        return Pipeline(self.stages, name="blend", dsp=dsp, buffered=self.buffered)

    @property
    def pipe_beats(self) -> int:
        """Most beats inside at once: one per stage; folded, a beat's sub-beats spread over
        ``fold`` stages, one more beat is partly in flight and one in the deserializer (one
        more where it is registered)."""
        if self.fold == 1:
            return self.stages
        return -(-self.beats_held // self.fold) + 2 + int(self.registered_output)

    def elaborate(self, platform):
        m = Module()
        m.submodules.alphas = alphas = self.alphas
        forward(m, self.alpha_write, alphas.write)
        if self.fold == 1:
            both = stream.Signature(self.f.payload.shape()).create()
            join(m, [self.f, self.t], both)
            pipe = self._pipeline(dsp_target(platform))
            dst = pipe.connect(m, both, self.o)
            xf, xt = self.f.payload.data, self.t.payload.data
            codes = [alphas.element(c) for c in range(self.channels)]
            src = self.f
        else:
            both, pipe, src, dst = self._folded(m, dsp_target(platform))
            xf, xt = src.payload.data[: self.lanes], src.payload.data[self.lanes :]
            # Stage 1 holds the operands while the bank reads the group's codes.
            phase = PhaseCounter(m, src, self.fold, name="blend")
            m.d.comb += [alphas.phase.eq(phase.value), alphas.en.eq(pipe.en)]
            xf = [pipe.stage(x, name=f"xf{c}") for c, x in enumerate(xf)]
            xt = [pipe.stage(x, name=f"xt{c}_0") for c, x in enumerate(xt)]
            codes = list(alphas.data)
        if self.sets > 1:  # the codes are read with the (sub-)beat at the pipeline's input
            m.d.comb += alphas.select.eq(src.payload.side[EPOCH_BIT])
        for c in range(self.lanes):
            # a * x_f + (128 - a) * x_t = 128 * x_t + a * (x_f - x_t): one multiplier per
            # channel, not two. |a * (x_f - x_t)| <= 128 * 255 fits signed(17). The
            # difference and the clamped code get a stage of their own: a subtraction's carry
            # chain in front of a DSP block's multiply was, with the route to the product's
            # register, the longest path of a placed board build (bench/placed_paths.py).
            a = pipe.stage(Mux(codes[c] > ALPHA_ONE, ALPHA_ONE, codes[c]), name=f"a{c}")
            d = pipe.stage(xf[c] - xt[c], signed(9), name=f"d{c}")
            p = pipe.product(d, a, signed(17), name=f"p{c}")
            t = pipe.delay(xt[c], 2, name=f"xt{c}")
            total = Signal(signed(17), name=f"sum{c}")
            m.d.comb += total.eq((t << 7) + p + 64)
            y = pipe.stage(total >> 7, signed(8), name=f"y{c}")
            m.d.comb += dst.payload.data[c].eq(y)
        m.d.comb += dst.payload.side.eq(pipe.delay(src.payload.side, self.stages, name="side"))
        with m.If(both.valid & both.ready & (self.f.payload.side != self.t.payload.side)):
            m.d.sync += self.marker_mismatch.eq(1)
        pipe.finish(m)
        return m

    def _folded(self, m, dsp):
        """The two streams joined into one of both beats' lanes (``x_f`` then ``x_t``),
        serialized into channel groups (a group's ``x_f`` lanes, then its ``x_t`` lanes) and
        put back together behind the pipeline: ``(joined, pipeline, sub-beats in, sub-beats
        out)``."""
        n, g = self.channels, self.lanes
        both = stream.Signature(vector_layout(signed(8), 2 * n, MARKER_BITS)).create()
        join(m, [self.f, self.t], both)
        m.d.comb += both.payload.side.eq(self.f.payload.side)
        for c in range(n):
            m.d.comb += [
                both.payload.data[c].eq(self.f.payload.data[c]),
                both.payload.data[n + c].eq(self.t.payload.data[c]),
            ]
        groups = [
            [p * g + c for c in range(g)] + [n + p * g + c for c in range(g)]
            for p in range(self.fold)
        ]
        # The serializer takes the joined beat with its first sub-beat and shifts the rest
        # out of its own registers (2 * (channels - lanes) bytes): its hold mode, which
        # reads the beat in place by phase, put a 16:1 multiplexer between the phase and
        # the first stage, the routed critical path of three board builds of ``small``.
        # The input slices (``_f``, ``_t``) are free again after the first sub-beat.
        m.submodules.serializer = ser = Serializer(signed(8), 2 * n, groups, MARKER_BITS)
        m.submodules.deserializer = des = Deserializer(
            signed(8), g, self.fold, MARKER_BITS, registered=self.registered_output
        )
        wiring.connect(m, both, ser.i)
        wiring.connect(m, des.o, wiring.flipped(self.o))
        pipe = self._pipeline(dsp)
        return both, pipe, ser.o, pipe.connect(m, ser.o, des.i)


class CoreShuffle(wiring.Component):
    """Swap the second half of the channels between streams ``a`` and ``b`` when ``enable``.

    Beats of ``a`` and ``b`` are taken together (a join) into output registers: ``a_o`` and
    ``b_o`` come from flip-flops, each given when its consumer is ready (possibly in
    different cycles), and the next pair is taken once both have gone. So no output's
    ``ready`` reaches the inputs: the join's handshake stays between the inputs and the
    shuffle's own flip-flops. Holds one pair (:attr:`beats`) and takes at most one every
    other cycle, the rate of every stream past a stride-2 stem, where the shuffles sit.
    ``enable`` is a run-time setting; change it only between frames.

    Why registered: on the placed board build of ``small`` the join and a fork into the
    trainable stages' input slices ran from one blend's slice to the stages 43 tiles away
    and back (12.8 ns), the consumers' ``ready`` in the inputs' ``ready``.
    """

    #: Pairs held: the output registers.
    beats = 1

    def __init__(self, channels: int):
        if not isinstance(channels, int) or channels < 2 or channels % 2:
            raise ValueError(f"channels must be an even integer >= 2, not {channels!r}")
        self.channels = channels
        layout = vector_layout(signed(8), channels, MARKER_BITS)
        super().__init__(
            {
                "a": In(stream.Signature(layout)),
                "b": In(stream.Signature(layout)),
                "a_o": Out(stream.Signature(layout)),
                "b_o": Out(stream.Signature(layout)),
                "enable": In(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        both = stream.Signature(self.a.payload.shape()).create()
        join(m, [self.a, self.b], both)
        outs = (self.a_o, self.b_o)
        m.d.comb += both.ready.eq(~self.a_o.valid & ~self.b_o.valid)
        # Payload registers without a reset: read only beside their valid bit.
        held = [
            Signal.like(o.payload, name=f"{n}_payload", reset_less=True)
            for n, o in zip(("a_o", "b_o"), outs, strict=True)
        ]
        for o, h in zip(outs, held, strict=True):
            m.d.comb += o.payload.eq(h)
            with m.If(o.ready):
                m.d.sync += o.valid.eq(0)
        half = self.channels // 2
        a, b = self.a.payload.data, self.b.payload.data
        with m.If(both.valid & both.ready):
            m.d.sync += [o.valid.eq(1) for o in outs]
            for c in range(self.channels):
                if c < half:
                    m.d.sync += [held[0].data[c].eq(a[c]), held[1].data[c].eq(b[c])]
                else:
                    m.d.sync += [
                        held[0].data[c].eq(Mux(self.enable, b[c], a[c])),
                        held[1].data[c].eq(Mux(self.enable, a[c], b[c])),
                    ]
            m.d.sync += [
                held[0].side.eq(self.a.payload.side),
                held[1].side.eq(self.b.payload.side),
            ]
        return m
