"""The float network a training framework exports: conv weights with batch norms, blend
logits (:class:`FloatConv` per convolution, a logit array per blend), and its forward pass
(:func:`float_forward`) along the same dataflow as the integer golden model
(:func:`spec.dataflow.forward`). What :mod:`weights.quantize` turns into integers, and what
its error report measures against.
"""

import dataclasses

import numpy as np

from spec import names
from spec.dataflow import forward
from spec.network import Network

__all__ = [
    "FloatConv",
    "FloatHeadGroup",
    "ACTIVATIONS",
    "conv_float",
    "float_forward",
    "float_head_group",
    "sigmoid",
]

#: The activations a float head group may name (each an exact piecewise-linear table).
ACTIVATIONS = ("identity", "relu")


@dataclasses.dataclass(frozen=True, eq=False)
class FloatConv:
    """One float convolution followed by batch norm: ``weight`` shaped as
    :attr:`spec.network.ConvSpec.weight_shape`, per-output-channel ``gamma``, ``beta``,
    ``mean``, ``var`` and the norm's ``eps``."""

    weight: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-5

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """Per channel ``(gain, offset)``: the norm as ``y = gain * conv + offset``."""
        gain = self.gamma / np.sqrt(self.var + self.eps)
        return gain, self.beta - self.mean * gain


@dataclasses.dataclass(frozen=True, eq=False)
class FloatHeadGroup:
    """One float head group (``docs/head.md``): a pointwise :class:`FloatConv` ``(c_out,
    c_in)`` with its batch norm, an ``activation`` of :data:`ACTIVATIONS`, the run-time
    ``pool`` switch (0/1) and ``source`` (an index into the group's sources)."""

    conv: FloatConv
    activation: str = "identity"
    pool: int = 0
    source: int = 0


def float_head_group(x, sources, p: FloatHeadGroup, record=None, name=None):
    """Float twin of :func:`sim.golden.head.head_group`: ``x`` the cores' outputs side by
    side ``(..., H, W, C)``; returns the group's ``(..., H, W, c_out)`` or, pooled, the
    frame means ``(..., c_out)``. With ``record``, the activation's output (before the
    pool) is stored under ``name``."""
    w = np.asarray(p.conv.weight, float)
    first = sources[p.source] if 0 <= p.source < len(sources) else sources[0]
    gain, offset = p.conv.folded()
    y = x[..., first : first + w.shape[1]] @ w.T * gain + offset
    y = np.maximum(y, 0) if p.activation == "relu" else y
    if record is not None:
        record[name] = y
    return y.mean(axis=(-3, -2)) if p.pool else y


def conv_float(kind, x, w, stride):
    """Float convolution of ``x`` (..., H, W, C), zero padding 1 for the 3x3 kinds."""
    if kind == "pointwise":
        return x @ w.T
    h, wd = x.shape[-3:-1]
    p = np.zeros(x.shape[:-3] + (h + 2, wd + 2, x.shape[-1]))
    p[..., 1:-1, 1:-1, :] = x
    ho, wo = -(-h // stride), -(-wd // stride)
    out = np.zeros(x.shape[:-3] + (ho, wo, w.shape[0]))
    for ky in range(3):
        for kx in range(3):
            patch = p[
                ...,
                ky : ky + stride * (ho - 1) + 1 : stride,
                kx : kx + stride * (wo - 1) + 1 : stride,
                :,
            ]
            out += patch * w[:, ky, kx] if kind == "depthwise" else patch @ w[:, :, ky, kx].T
    return out


def float_forward(net: Network, fparams: dict, x, *, shuffle=False, record=None) -> dict:
    """The float network on ``x`` (real-valued input, (..., H, W, C)): ``{core: output}``,
    and each head group's output by its name. With ``record`` (a dict), every convolution's
    output (a head group's activation output) is stored under its name. The stems
    pad ``x`` with ``fparams[INPUT_PAD]`` per channel where it is given (an input
    normalisation folded into them, ``weights/onnx_input.py``), with zeros otherwise."""
    specs = {c.name: c for c in net.convs()}
    pad = np.asarray(fparams.get(names.INPUT_PAD, np.zeros(net.channels_in)), float)
    stems = {names.stem(core) for core in net.cores}

    def conv(name, v):
        spec, p = specs[name], fparams[name]
        gain, offset = p.folded()
        w = np.asarray(p.weight, float)
        if name in stems and pad.any():  # padded with q = padded with 0 after subtracting q
            z = conv_float(spec.kind, v - pad, w, spec.stride) + np.einsum("oiyx,i->o", w, pad)
        else:
            z = conv_float(spec.kind, v, w, spec.stride)
        y = z * gain + offset
        y = np.maximum(y, 0) if spec.relu else y
        if record is not None:
            record[name] = y
        return y

    def blend(name, xf, xt):
        a = sigmoid(fparams[name])
        return a * xf + (1 - a) * xt

    out = forward(net, np.asarray(x, float), conv, blend, shuffle=shuffle)
    if net.head:
        feats = np.concatenate([out[core] for core in net.cores], axis=-1)
        for k, g in enumerate(net.head):
            name = names.head_group(k)
            sources = [net.head_lane(core, first) for core, first in g.sources]
            out[name] = float_head_group(feats, sources, fparams[name], record, name)
    return out


def sigmoid(logits) -> np.ndarray:
    """The blend weight of a logit, without overflow for any finite logit."""
    return 0.5 * (1 + np.tanh(np.asarray(logits, float) / 2))
