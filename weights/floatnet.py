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

__all__ = ["FloatConv", "conv_float", "float_forward", "sigmoid"]


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
    """The float network on ``x`` (real-valued input, (..., H, W, C)): ``{core: output}``.
    With ``record`` (a dict), every convolution's output is stored under its name. The stems
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

    return forward(net, np.asarray(x, float), conv, blend, shuffle=shuffle)


def sigmoid(logits) -> np.ndarray:
    """The blend weight of a logit, without overflow for any finite logit."""
    return 0.5 * (1 + np.tanh(np.asarray(logits, float) / 2))
