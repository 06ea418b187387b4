"""Golden twins of the backbone glue (numpy only): the cross-core shuffle. The alpha blend
itself is :func:`sim.golden.primitives.alpha_blend`."""

import numpy as np

__all__ = ["core_shuffle"]


def core_shuffle(a, b, enable):
    """Swap the second half of the channels (last axis) of ``a`` and ``b`` when ``enable``."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.shape[-1] % 2:
        raise ValueError("core shuffle needs two streams of the same even channel count")
    if not enable:
        return a, b
    h = a.shape[-1] // 2
    return (np.concatenate([a[..., :h], b[..., h:]], axis=-1),
            np.concatenate([b[..., :h], a[..., h:]], axis=-1))
