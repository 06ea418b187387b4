"""Golden twin of the model head (paper §3.3, ``docs/head.md``): per group, the chosen input
lanes, a pointwise convolution, its requantizer (no ReLU), the piecewise-linear activation,
and the global average pool when the group's switch is on."""

import numpy as np

from spec.formats import pool_constants

from .layers import pointwise
from .primitives import global_avg_pool, pwl, requantize

__all__ = ["head_group"]


def head_group(frame, sources, p, passes=()):
    """Group output for one ``frame`` ``(height, width, channels)`` (the head's input lanes):
    ``sources`` are the first input lanes of the group's choices, ``p`` its
    :class:`spec.params.HeadGroupParams`, ``passes`` a repeated group's
    :class:`spec.params.HeadPassParams` for its passes after the first. Returns
    ``(height, width, c_out)``, or ``(c_out,)`` with ``p.pool`` on (a source index past the
    last reads source 0). A frame takes ``p.repeat`` passes through the convolution and
    activation, pass ``j + 1`` reading pass ``j``'s output; a count below 1 runs one pass, a
    count past the last pass built (``1 + len(passes)``) runs them all, as the hardware."""
    f = np.asarray(frame, dtype=np.int64)
    c_in = np.asarray(p.weight).shape[1]
    first = sources[p.source] if 0 <= p.source < len(sources) else sources[0]
    y = f[..., first : first + c_in]
    for q in [p, *passes][: max(1, min(int(p.repeat), 1 + len(passes)))]:
        acc = pointwise(y, q.weight)
        y = requantize(acc, q.scale, q.bias, p.shift, relu=False)
        y = pwl(y, *q.table(), p.pwl_shift)
    if p.pool:
        h, w = f.shape[:2]
        return global_avg_pool(y, *pool_constants(h * w))
    return y
