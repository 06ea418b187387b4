"""Golden twins of the simplified ShuffleNetV2 blocks (paper Fig. 4, ``docs/layers.md``) on
their own, for the block tests; the backbone's golden twin walks the same blocks through
:func:`spec.dataflow.forward`."""

import numpy as np

from spec.dataflow import channel_shuffle

from .layers import depthwise3x3, pointwise
from .primitives import requantize

__all__ = ["regular_block", "downsampling_block"]


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
