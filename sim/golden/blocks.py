"""Golden twins of the ShuffleNetV2-style blocks (DESIGN.md §2), numpy only."""

import numpy as np

from .layers import depthwise3x3, pointwise
from .primitives import requantize

__all__ = ["channel_shuffle", "regular_block", "downsampling_block"]


def channel_shuffle(frame):
    """Two groups: ``out[..., 2k] = in[..., k]``, ``out[..., 2k+1] = in[..., C/2 + k]``."""
    f = np.asarray(frame)
    c = f.shape[-1]
    if c % 2:
        raise ValueError("channel shuffle needs an even channel count")
    out = np.empty_like(f)
    out[..., 0::2] = f[..., : c // 2]
    out[..., 1::2] = f[..., c // 2:]
    return out


def _requant(acc, q, relu):
    return requantize(acc, q["scale"], q["bias"], q["shift"], relu)


def _branch(x, dw, dw_quant, pw, pw_quant, stride):
    y = _requant(depthwise3x3(x, dw, stride), dw_quant, relu=False)
    return _requant(pointwise(y, pw), pw_quant, relu=True)


def regular_block(frame, *, dw, dw_quant, pw, pw_quant):
    f = np.asarray(frame, dtype=np.int64)
    half = f.shape[-1] // 2
    conv = _branch(f[..., half:], dw, dw_quant, pw, pw_quant, 1)
    return channel_shuffle(np.concatenate([f[..., :half], conv], axis=-1))


def downsampling_block(frame, *, branches):
    f = np.asarray(frame, dtype=np.int64)
    outs = [_branch(f, b["dw"], b["dw_quant"], b["pw"], b["pw_quant"], 2) for b in branches]
    return channel_shuffle(np.concatenate(outs, axis=-1))
