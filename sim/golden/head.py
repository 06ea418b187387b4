"""Golden twin of the model head (paper §3.3, ``docs/head.md``): per group, the chosen input
lanes, a pointwise convolution, its requantizer (no ReLU), the piecewise-linear activation,
and the global average pool when the group's switch is on."""

import numpy as np

from spec.formats import pool_constants

from .layers import pointwise
from .primitives import global_avg_pool, pwl, requantize

__all__ = ["head_group"]


def head_group(frame, sources, p):
    """Group output for one ``frame`` ``(height, width, channels)`` (the head's input lanes):
    ``sources`` are the first input lanes of the group's choices, ``p`` its
    :class:`spec.params.HeadGroupParams`. Returns ``(height, width, c_out)``, or ``(c_out,)``
    with ``p.pool`` on (a source index past the last reads source 0)."""
    f = np.asarray(frame, dtype=np.int64)
    c_in = np.asarray(p.weight).shape[1]
    first = sources[p.source] if 0 <= p.source < len(sources) else sources[0]
    acc = pointwise(f[..., first : first + c_in], p.weight)
    y = requantize(acc, p.scale, p.bias, p.shift, relu=False)
    y = pwl(y, *p.table(), p.pwl_shift)
    if p.pool:
        h, w = f.shape[:2]
        return global_avg_pool(y, *pool_constants(h * w))
    return y
