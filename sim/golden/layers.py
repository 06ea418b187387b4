"""Golden twins of the streaming layers (numpy only, independent of the hardware code)."""

import numpy as np

__all__ = ["window3x3", "conv3x3", "depthwise3x3", "pointwise"]


def window3x3(frame, stride=1):
    """3x3 neighbourhoods with zero padding: shape ``(ceil(H/s), ceil(W/s), 9 * C)``, lane
    ``(ky * 3 + kx) * C + c`` holding channel ``c`` at offset ``(ky - 1, kx - 1)`` from the
    centre; centres on every ``stride``-th row and column starting at 0."""
    if stride not in (1, 2):
        raise ValueError("stride must be 1 or 2")
    p, h, w = _padded(frame)
    c = p.shape[-1]
    rows, cols = range(0, h, stride), range(0, w, stride)
    out = np.zeros((len(rows), len(cols), 9 * c), dtype=np.int64)
    for i, cy in enumerate(rows):
        for j, cx in enumerate(cols):
            out[i, j] = p[cy : cy + 3, cx : cx + 3].reshape(-1)
    return out


def _padded(frame):
    f = np.asarray(frame, dtype=np.int64)
    if f.ndim != 3:
        raise ValueError(f"a frame has shape (height, width, channels), not {f.shape}")
    h, w, c = f.shape
    p = np.zeros((h + 2, w + 2, c), dtype=np.int64)
    p[1:-1, 1:-1] = f
    return p, h, w


def conv3x3(frame, weights, stride=1):
    """Full 3x3 convolution, zero padding 1: ``weights`` is ``(C_out, C_in, 3, 3)``; returns
    the exact accumulators, shape ``(ceil(H/s), ceil(W/s), C_out)``."""
    p, h, w = _padded(frame)
    wt = np.asarray(weights, dtype=np.int64)
    ho, wo = -(-h // stride), -(-w // stride)
    acc = np.zeros((ho, wo, wt.shape[0]), dtype=np.int64)
    for ky in range(3):
        for kx in range(3):
            patch = p[
                ky : ky + stride * (ho - 1) + 1 : stride, kx : kx + stride * (wo - 1) + 1 : stride
            ]
            acc += patch @ wt[:, :, ky, kx].T
    return acc


def depthwise3x3(frame, kernels, stride=1):
    """Depthwise 3x3 convolution, zero padding 1: ``kernels`` is ``(C, 3, 3)``; exact
    accumulators of shape ``(ceil(H/s), ceil(W/s), C)``."""
    k = np.asarray(kernels, dtype=np.int64)
    c = k.shape[0]
    full = np.zeros((c, c, 3, 3), dtype=np.int64)
    full[np.arange(c), np.arange(c)] = k
    return conv3x3(frame, full, stride)


def pointwise(frame, weights):
    """1x1 convolution: ``weights`` is ``(C_out, C_in)``; exact accumulators."""
    return np.asarray(frame, dtype=np.int64) @ np.asarray(weights, dtype=np.int64).T
