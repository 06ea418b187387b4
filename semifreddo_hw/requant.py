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

from spec.formats import BIAS_BITS, INT8_MAX, INT8_MIN, SCALE_BITS, SHIFT_MAX

from .adder_graph import signed_width
from .param_bank import ParamBank
from .pipeline import Pipeline
from .streams import forward, vector_layout

__all__ = ["Requantizer"]


class Requantizer(wiring.Component):
    """Per-channel scale, bias, shift, round half up, saturate to int8, optional ReLU.

    Exact: every intermediate is as wide as its range, so nothing wraps. Two pipeline stages
    (multiply; add, shift, clamp): :attr:`latency` is 2.

    Parameters
    ----------
    channels : int
        Lanes per beat.
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

    Ports: ``i`` (``signed(acc_width)`` lanes), ``o`` (``signed(8)`` lanes), ``scale_write``
    and ``bias_write`` (:class:`ParamBank` writes, element index = channel). A beat reads its
    scale in stage 1 and its bias in stage 2: change them only while the block is idle.
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
    ):
        for name, v, lo in (
            ("channels", channels, 1),
            ("acc_width", acc_width, 1),
            ("scale_bits", scale_bits, 2),
            ("bias_bits", bias_bits, 2),
        ):
            if not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, not {v!r}")
        if not isinstance(shift, int) or not 0 <= shift <= SHIFT_MAX:
            raise ValueError(f"shift must be an integer in 0..{SHIFT_MAX}, not {shift!r}")
        self.channels, self.acc_width, self.shift, self.relu = channels, acc_width, shift, relu
        self.scale_bits, self.bias_bits = scale_bits, bias_bits
        self.side_width = side_width
        self.scales = ParamBank(
            signed(scale_bits),
            channels,
            init=[scale_init if scale_init is not None else [1] * channels],
        )
        self.biases = ParamBank(
            signed(bias_bits),
            channels,
            init=[bias_init if bias_init is not None else [0] * channels],
        )
        super().__init__(
            {
                "i": In(stream.Signature(vector_layout(signed(acc_width), channels, side_width))),
                "o": Out(stream.Signature(vector_layout(signed(8), channels, side_width))),
                "scale_write": self.scales.signature.members["write"],
                "bias_write": self.biases.signature.members["write"],
            }
        )

    latency = 2

    @property
    def register_bits(self) -> int:
        """Data register bits (products, results, side bits; valid bits excluded)."""
        return self.channels * (self._product_width + 8) + 2 * self.side_width

    @property
    def _product_range(self) -> tuple[int, int]:
        """Range of ``acc * scale`` over all signed inputs and scales."""
        a, s = self.acc_width, self.scale_bits
        a_lo, a_hi, s_lo, s_hi = (
            -(1 << (a - 1)),
            (1 << (a - 1)) - 1,
            -(1 << (s - 1)),
            (1 << (s - 1)) - 1,
        )
        return min(a_lo * s_hi, a_hi * s_lo), a_lo * s_lo

    @property
    def _product_width(self) -> int:
        return signed_width(*self._product_range)

    def elaborate(self, platform):
        m = Module()
        m.submodules.scales = scales = self.scales
        m.submodules.biases = biases = self.biases
        for bank, port in ((scales, self.scale_write), (biases, self.bias_write)):
            forward(m, port, bank.write)

        pipe = Pipeline(self.latency, name="rq")
        pipe.connect(m, self.i, self.o)
        b_lo, b_hi = -(1 << (self.bias_bits - 1)), (1 << (self.bias_bits - 1)) - 1
        p_lo, p_hi = self._product_range
        rnd = (1 << self.shift) >> 1
        t_width = signed_width(p_lo + b_lo + rnd, p_hi + b_hi + rnd)
        lo = 0 if self.relu else INT8_MIN
        for c in range(self.channels):
            prod = pipe.stage(
                self.i.payload.data[c] * scales.element(c),
                signed(self._product_width),
                name=f"prod{c}",
            )
            t = Signal(signed(t_width), name=f"t{c}")
            r = Signal(signed(max(1, t_width - self.shift)), name=f"r{c}")
            # The bias is read straight from its bank: it only changes between frames.
            m.d.comb += [t.eq(prod + biases.element(c) + rnd), r.eq(t >> self.shift)]
            y = pipe.stage(Mux(r > INT8_MAX, INT8_MAX, Mux(r < lo, lo, r)), signed(8), name=f"y{c}")
            m.d.comb += self.o.payload.data[c].eq(y)
        m.d.comb += self.o.payload.side.eq(
            pipe.delay(self.i.payload.side, self.latency, name="side")
        )
        pipe.finish(m)
        return m
