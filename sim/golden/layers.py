"""Golden twins of the streaming layers (numpy only, independent of the hardware code)."""

import numpy as np

__all__ = ["window3x3"]


def window3x3(frame, stride=1):
    """3x3 neighbourhoods with zero padding: shape ``(ceil(H/s), ceil(W/s), 9 * C)``, lane
    ``(ky * 3 + kx) * C + c`` holding channel ``c`` at offset ``(ky - 1, kx - 1)`` from the
    centre; centres on every ``stride``-th row and column starting at 0."""
    f = np.asarray(frame)
    if f.ndim != 3:
        raise ValueError(f"a frame has shape (height, width, channels), not {f.shape}")
    if stride not in (1, 2):
        raise ValueError("stride must be 1 or 2")
    h, w, c = f.shape
    p = np.zeros((h + 2, w + 2, c), dtype=np.int64)
    p[1:-1, 1:-1] = f
    rows, cols = range(0, h, stride), range(0, w, stride)
    out = np.zeros((len(rows), len(cols), 9 * c), dtype=np.int64)
    for i, cy in enumerate(rows):
        for j, cx in enumerate(cols):
            out[i, j] = p[cy:cy + 3, cx:cx + 3].reshape(-1)
    return out
