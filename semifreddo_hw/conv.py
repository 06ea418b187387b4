"""Frozen convolution layers on pixel streams: window, shift-add product, requantizer.

Three kinds, all with int8 pixel streams in and out (``side`` = :data:`~.window.EOL` /
:data:`~.window.EOF` markers):

* ``pointwise``: 1x1, ``weights`` ``(C_out, C_in)``;
* ``depthwise``: 3x3 per channel, ``weights`` ``(C, 3, 3)``, stride 1 or 2;
* ``full``: 3x3 over all input channels (the stem), ``weights`` ``(C_out, C_in, 3, 3)``.

The weights are constants (a :class:`~.matvec.FrozenMatVec`); the requantizer's scale and
bias stay configurable at run time.
"""

import numpy as np
from amaranth.hdl import Module, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .adder_graph import plan_cmvm, plan_depthwise
from .matvec import INT8_MAX, INT8_MIN, FrozenMatVec
from .requant import Requantizer
from .streams import vector_layout
from .window import MARKER_BITS, SlidingWindow

__all__ = ["FrozenConv", "KINDS"]

KINDS = ("pointwise", "depthwise", "full")


class FrozenConv(wiring.Component):
    """One frozen convolution layer: [3x3 window ->] constant product -> requantizer.

    Parameters
    ----------
    kind : "pointwise", "depthwise" or "full"
    weights : int8 array shaped for ``kind`` (see the module docstring)
    width, height : frame size at the layer input (3x3 kinds only need them)
    stride : 1 or 2 (3x3 kinds)
    shift, relu, scale_init, bias_init : the requantizer's (``docs/numerics.md`` §4)

    Ports: ``i``, ``o`` (int8 pixel streams), ``scale_write``, ``bias_write``,
    ``framing_error`` (3x3 kinds: the window saw markers that disagree with the frame size).
    """

    def __init__(self, kind: str, weights, *, width: int = 1, height: int = 1,
                 stride: int = 1, shift: int = 0, relu: bool = False, scale_init=None,
                 bias_init=None, solver: str = "da4ml", levels_per_stage: int = 2):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        w = np.asarray(weights)
        if not np.issubdtype(w.dtype, np.integer):
            raise TypeError(f"weights must be an integer array, not {w.dtype}")
        if w.size and (w.min() < INT8_MIN or w.max() > INT8_MAX):
            raise ValueError("weights must lie in int8 [-128, 127]")
        shapes = {"pointwise": "(C_out, C_in)", "depthwise": "(C, 3, 3)",
                  "full": "(C_out, C_in, 3, 3)"}
        if w.ndim != shapes[kind].count(",") + 1 or \
                (kind != "pointwise" and w.shape[-2:] != (3, 3)):
            raise ValueError(f"{kind} weights must have shape {shapes[kind]}, not {w.shape}")
        if kind == "pointwise" and stride != 1:
            raise ValueError("a pointwise layer has stride 1")
        self.kind, self.weights, self.stride = kind, w.astype(np.int64), stride
        if kind == "pointwise":
            c_in, c_out = w.shape[1], w.shape[0]
            matrix = self.weights
            graph = plan_cmvm(matrix, solver)
            self.window = None
        else:
            c_out = w.shape[0]
            c_in = c_out if kind == "depthwise" else w.shape[1]
            self.window = SlidingWindow(c_in, width, height, stride=stride)
            if kind == "depthwise":
                taps = self.weights.reshape(c_out, 9)
                graph = plan_depthwise(taps, solver)
                matrix = np.zeros((c_out, 9 * c_out), dtype=np.int64)
                for k in range(9):
                    matrix[np.arange(c_out), k * c_out + np.arange(c_out)] = taps[:, k]
            else:  # window lane (ky * 3 + kx) * C_in + ci  <->  weights[co, ci, ky, kx]
                matrix = self.weights.transpose(0, 2, 3, 1).reshape(c_out, 9 * c_in)
                graph = plan_cmvm(matrix, solver)
        self.c_in, self.c_out = c_in, c_out
        self.product = FrozenMatVec(matrix, graph=graph, levels_per_stage=levels_per_stage,
                                    side_width=MARKER_BITS)
        self.requant = Requantizer(c_out, self.product.out_width, shift=shift, relu=relu,
                                   scale_init=scale_init, bias_init=bias_init,
                                   side_width=MARKER_BITS)
        super().__init__({
            "i": In(stream.Signature(vector_layout(signed(8), c_in, MARKER_BITS))),
            "o": Out(stream.Signature(vector_layout(signed(8), c_out, MARKER_BITS))),
            "scale_write": In(self.requant.signature.members["scale_write"].signature),
            "bias_write": In(self.requant.signature.members["bias_write"].signature),
            "framing_error": Out(1),
        })

    def report(self) -> dict:
        r = {"kind": self.kind, "stride": self.stride, **self.product.report()}
        r["weights"] = int(self.weights.size)  # not the depthwise block matrix's size
        r["latency_cycles"] += self.requant.latency  # plus, for 3x3 kinds, the window's lag
        r["memory_bits"] += self.requant.scales.bits + self.requant.biases.bits
        r["register_bits"] += self.requant.register_bits
        if self.window is not None:
            r["line_buffer_bits"] = self.window.memory_bits
            r["frame_cycles"] = self.window.frame_cycles
            r["register_bits"] += self.window.register_bits
        return r

    def elaborate(self, platform):
        m = Module()
        m.submodules.product = product = self.product
        m.submodules.requant = requant = self.requant
        if self.window is not None:
            m.submodules.window = window = self.window
            wiring.connect(m, wiring.flipped(self.i), window.i)
            wiring.connect(m, window.o, product.i)
            m.d.comb += self.framing_error.eq(window.framing_error)
        else:
            wiring.connect(m, wiring.flipped(self.i), product.i)
        wiring.connect(m, product.o, requant.i)
        wiring.connect(m, requant.o, wiring.flipped(self.o))
        for port in ("scale_write", "bias_write"):
            src, dst = getattr(self, port), getattr(requant, port)
            m.d.comb += [dst.valid.eq(src.valid), dst.payload.eq(src.payload)]
        return m
