"""The pixel-stream format: one beat per pixel (all its channels), raster order, frames back
to back; each beat's ``side`` bits mark the last pixel of a row (:data:`EOL`) and of the
frame (:data:`EOF`). Every stream between layers, and the design's input and outputs, follow
it; :func:`frames_to_beats` gives the beats of numpy frames ``(height, width, channels)``.
"""

import numpy as np

__all__ = ["EOL_BIT", "EOF_BIT", "EOL", "EOF", "MARKER_BITS", "frame_to_beats", "frames_to_beats"]

#: Bit positions of the markers in a beat's ``side`` field, and their values.
EOL_BIT, EOF_BIT = 0, 1
EOL, EOF = 1 << EOL_BIT, 1 << EOF_BIT
MARKER_BITS = 2


def frame_to_beats(frame) -> tuple[list, list[int]]:
    """(lanes per beat, side bits per beat) for one frame."""
    f = np.asarray(frame)
    if f.ndim != 3:
        raise ValueError(f"a frame has shape (height, width, channels), not {f.shape}")
    h, w, _ = f.shape
    lanes = f.reshape(h * w, -1).tolist()
    sides = [
        (EOL if x == w - 1 else 0) | (EOF if (x == w - 1 and y == h - 1) else 0)
        for y in range(h)
        for x in range(w)
    ]
    return lanes, sides


def frames_to_beats(frames) -> tuple[list, list[int]]:
    """The beats of several frames, back to back."""
    lanes, sides = [], []
    for f in frames:
        a, b = frame_to_beats(f)
        lanes += a
        sides += b
    return lanes, sides
