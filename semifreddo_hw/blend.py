# amaranth: UnusedElaboratable=no
"""Vertical-freezing glue between cores: per-channel alpha blend and the cross-core shuffle.

* :class:`AlphaBlend` (paper eq. 1, ``docs/numerics.md`` §5): per channel ``c``,
  ``y = (a[c] * x_f + (128 - a[c]) * x_t + 64) >> 7`` with a run-time 8-bit code ``a`` in
  0..128 (alpha = a / 128; 0, 0.5 and 1 exact).
* :class:`CoreShuffle`: when ``enable`` is high, the two trainable cores swap the second
  half of their channels (``a' = [a[:C/2], b[C/2:]]``, ``b' = [b[:C/2], a[C/2:]]``); when low,
  both pass unchanged. Wiring plus one 2:1 multiplexer per swapped lane.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spec.formats import ALPHA_BITS, ALPHA_ONE
from spec.stream import MARKER_BITS

from .param_bank import ParamBank
from .pipeline import Pipeline
from .streams import fork, forward, join, vector_layout

__all__ = ["AlphaBlend", "CoreShuffle"]


class AlphaBlend(wiring.Component):
    """Blend a frozen-core stream ``f`` and a trainable-core stream ``t`` per channel.

    Beats of ``f`` and ``t`` are taken together (same pixel); the output carries ``f``'s
    markers, and a beat whose two markers differ sets the sticky ``marker_mismatch``. Codes
    above 128 written to ``alpha_write`` act as 128, so the output is always a convex
    combination and always int8. Two pipeline stages (:attr:`latency`).
    """

    latency = 2

    def __init__(self, channels: int, *, alpha_init=None):
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, not {channels!r}")
        init = [0] * channels if alpha_init is None else [int(a) for a in alpha_init]
        if len(init) != channels or any(not 0 <= a <= ALPHA_ONE for a in init):
            raise ValueError(f"alpha_init must be {channels} codes in 0..{ALPHA_ONE}")
        self.channels = channels
        self.alphas = ParamBank(unsigned(ALPHA_BITS), channels, init=[init])
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

    def elaborate(self, platform):
        m = Module()
        m.submodules.alphas = alphas = self.alphas
        forward(m, self.alpha_write, alphas.write)
        both = stream.Signature(self.f.payload.shape()).create()
        join(m, [self.f, self.t], both)
        pipe = Pipeline(self.latency, name="blend")
        pipe.connect(m, both, self.o)
        xf, xt = self.f.payload.data, self.t.payload.data
        for c in range(self.channels):
            code = alphas.element(c)
            a = Signal(range(ALPHA_ONE + 1), name=f"a{c}")
            m.d.comb += a.eq(Mux(code > ALPHA_ONE, ALPHA_ONE, code))
            # a * x_f + (128 - a) * x_t = 128 * x_t + a * (x_f - x_t): one multiplier per
            # channel, not two. |a * (x_f - x_t)| <= 128 * 255 fits signed(17).
            p = pipe.stage((xf[c] - xt[c]) * a, signed(17), name=f"p{c}")
            t = pipe.stage(xt[c], name=f"xt{c}")
            total = Signal(signed(17), name=f"sum{c}")
            m.d.comb += total.eq((t << 7) + p + 64)
            y = pipe.stage(total >> 7, signed(8), name=f"y{c}")
            m.d.comb += self.o.payload.data[c].eq(y)
        m.d.comb += self.o.payload.side.eq(
            pipe.delay(self.f.payload.side, self.latency, name="side")
        )
        with m.If(both.valid & both.ready & (self.f.payload.side != self.t.payload.side)):
            m.d.sync += self.marker_mismatch.eq(1)
        pipe.finish(m)
        return m


class CoreShuffle(wiring.Component):
    """Swap the second half of the channels between streams ``a`` and ``b`` when ``enable``.

    Beats of ``a`` and ``b`` are taken together (a join) and given to ``a_o`` and ``b_o``
    (a fork): each output takes the pair's beat when it is ready, possibly in different
    cycles, and the next pair is taken once both have. No registers (latency 0), no valid
    that depends on a ready. ``enable`` is a run-time setting; change it only between
    frames.
    """

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
        fork(m, both, self.a_o, self.b_o)
        half = self.channels // 2
        a, b = self.a.payload.data, self.b.payload.data
        for c in range(self.channels):
            if c < half:
                m.d.comb += [self.a_o.payload.data[c].eq(a[c]), self.b_o.payload.data[c].eq(b[c])]
            else:
                m.d.comb += [
                    self.a_o.payload.data[c].eq(Mux(self.enable, b[c], a[c])),
                    self.b_o.payload.data[c].eq(Mux(self.enable, a[c], b[c])),
                ]
        m.d.comb += [
            self.a_o.payload.side.eq(self.a.payload.side),
            self.b_o.payload.side.eq(self.b.payload.side),
        ]
        return m
