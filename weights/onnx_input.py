"""Input normalisation in an ONNX graph, folded into the stems (:mod:`weights.onnx_import`).

Exporters often put the image normalisation in the graph: a ``Cast`` from uint8, then
``Sub``/``Add``/``Mul``/``Div`` by constants (scalars or one value per channel) or a
``BatchNormalization``, in front of the stems. Each is affine per channel, so the whole
chain is ``s = S * t + O`` (``t`` the graph input, ``s`` what the stem convolves).

A graph with such a chain (or a uint8 input) takes raw pixels ``t = p`` in [0, 255]; a
graph without one takes the project's convention ``x = (p - 128) / 128`` directly. The
network's stems read ``x``, so with ``p = 128 x + 128``: ``s = a x + c``, ``a = 128 S``,
``c = 128 S + O``. The stem's zero padding pads ``s`` with 0, that is ``x`` with
``q = -c / a``; so, exactly (no approximation, borders included)::

    conv_W(s, padded with 0) = conv_{W a}(x, padded with q) + sum(W c)

The scale ``a`` folds into the stem's weights, ``sum(W c)`` into its bias (the batch norm's
mean), and ``q`` is the input padding value of the float model (``spec.names.INPUT_PAD``).
"""

import dataclasses

import numpy as np
import onnx

from .floatnet import FloatConv
from .onnx_graph import F32_MAX, Graph, OnnxImportError, label

__all__ = ["InputNorm", "input_norm", "fold_input"]

_FLOAT_TYPES = {
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.DOUBLE,
    onnx.TensorProto.FLOAT16,
    onnx.TensorProto.BFLOAT16,
}


@dataclasses.dataclass(frozen=True)
class InputNorm:
    """What a stem's input chain does, per input channel: the stem reads
    ``scale * x + offset`` of ``x = (p - 128) / 128``; ``pad`` is ``x`` where that is 0.
    ``steps`` names the folded nodes, in graph order."""

    scale: np.ndarray
    offset: np.ndarray
    steps: tuple[str, ...]

    @property
    def pad(self) -> np.ndarray:
        return -self.offset / self.scale

    def describe(self) -> str:
        def vec(a):
            return "[" + ", ".join(f"{v:.6g}" for v in a) + "]"

        return (
            f"{' -> '.join(self.steps)}: stems read {vec(self.scale)} * x + {vec(self.offset)} "
            f"of x = (p - 128) / 128, padded with x = {vec(self.pad)}"
        )


def _per_channel(g: Graph, name, channels, what, vector=False) -> np.ndarray:
    """The constant ``name`` as one value per channel of an NCHW tensor (broadcast by
    numpy's rules; a ``vector`` of ``channels`` values where the operator says so, as
    BatchNormalization does)."""
    a = g.floats(name, what)
    if a.size == 1:
        return np.full(channels, float(a.reshape(-1)[0]))
    if a.shape in ((channels, 1, 1), (1, channels, 1, 1)) or (vector and a.shape == (channels,)):
        return a.reshape(channels)
    raise OnnxImportError(
        f"{what}: shape {a.shape} is not one value per channel (a scalar, ({channels}, 1, 1) or "
        f"(1, {channels}, 1, 1))"
    )


def input_norm(g: Graph, tensor, channels: int) -> InputNorm:
    """Walk back from ``tensor`` (a stem's input) to the graph input through per-channel
    affine nodes; anything else is an error naming the node."""
    scale, offset = np.ones(channels), np.zeros(channels)  # tensor = scale * t + offset
    steps = []
    t = g.source(tensor)
    while t != g.inputs[0]:
        node = g.node(t, "the model input or a normalisation (Sub, Add, Mul, Div, Cast, ...)")
        what = f"input normalisation {node.op_type} {label(node)}"
        if node.op_type == "Cast":
            to = g.attrs(node).get("to")
            if to not in _FLOAT_TYPES:
                raise OnnxImportError(f"{what}: casts to type {to}, expected a float type")
            t = node.input[0]
        elif node.op_type == "BatchNormalization":
            gamma, beta, mean, var = (
                _per_channel(g, i, channels, f"{what} {f}", vector=True)
                for i, f in zip(node.input[1:5], ("scale", "B", "mean", "var"), strict=True)
            )
            eps = float(g.attrs(node).get("epsilon", 1e-5))
            if not (var + eps > 0).all():
                raise OnnxImportError(f"{what}: variance + epsilon must be > 0")
            k = gamma / np.sqrt(var + eps)
            scale, offset = scale * k, offset + scale * (beta - mean * k)
            t = node.input[0]
        elif node.op_type in ("Add", "Sub", "Mul", "Div"):
            consts = [g.source(i) in g.tensors for i in node.input]
            if consts.count(True) != 1:
                raise OnnxImportError(
                    f"{what}: expected one constant operand and the image as the other"
                )
            k_pos = consts.index(True)
            k = _per_channel(g, node.input[k_pos], channels, what)
            if node.op_type == "Add":
                offset = offset + scale * k
            elif node.op_type == "Sub":  # x - k, or k - x
                offset = offset - scale * k if k_pos == 1 else offset + scale * k
                scale = scale if k_pos == 1 else -scale
            elif node.op_type == "Mul":
                scale = scale * k
            else:
                if k_pos == 0:
                    raise OnnxImportError(f"{what}: divides a constant by the image (not affine)")
                if (k == 0).any():
                    raise OnnxImportError(f"{what}: divides by zero")
                scale = scale / k
            t = node.input[1 - k_pos]
        else:
            raise OnnxImportError(
                f"node {label(node)} ({node.op_type}): expected the model input, or an input "
                f"normalisation (Cast, Sub, Add, Mul, Div by constants, BatchNormalization)"
            )
        steps.append(f"{node.op_type} {label(node)}")
        t = g.source(t)
    raw = bool(steps) or g.input_type == onnx.TensorProto.UINT8
    if raw:  # t = p = 128 x + 128
        scale, offset = 128 * scale, 128 * scale + offset
    if not (np.isfinite(scale).all() and np.isfinite(offset).all()):
        raise OnnxImportError("the input normalisation overflows (scale or offset not finite)")
    if (scale == 0).any():
        raise OnnxImportError(
            f"the input normalisation multiplies channel {int(np.flatnonzero(scale == 0)[0])} "
            f"by 0: the stems would not see it"
        )
    return InputNorm(scale, offset, tuple(reversed(steps)))


def fold_input(p: FloatConv, norm: InputNorm) -> FloatConv:
    """The stem ``p`` (weight ``(c_out, c_in, 3, 3)``) on ``x`` padded with ``norm.pad``
    instead of on the normalised image: the scale in the weights, the offset's sum in the
    batch norm's mean (``mean - sum(W c)``: the norm subtracts the mean from the conv)."""
    if not norm.steps and (norm.scale == 1).all() and (norm.offset == 0).all():
        return p
    w = np.asarray(p.weight, float)
    weight = w * norm.scale[None, :, None, None]
    mean = p.mean - (w * norm.offset[None, :, None, None]).sum(axis=(1, 2, 3))
    if not ((np.abs(weight) <= F32_MAX).all() and (np.abs(mean) <= F32_MAX).all()):
        raise OnnxImportError(
            "the input normalisation folded into the stem leaves the float32 range"
        )
    return dataclasses.replace(p, weight=weight, mean=mean)
