"""Frames (numpy ``(height, width, channels)``) to stream beats and back.

A beat is one pixel, all channels, in raster order; its side bits carry end-of-line (1) and
end-of-frame (2), as ``semifreddo_hw.window`` defines them.
"""

import numpy as np

__all__ = ["frame_to_beats", "frames_to_beats", "beats_to_frame", "EOL", "EOF"]

EOL, EOF = 1, 2  # the same values as semifreddo_hw.window; sim must not import it


def frame_to_beats(frame):
    """(lanes per beat, side bits per beat) for one frame."""
    f = np.asarray(frame)
    if f.ndim != 3:
        raise ValueError(f"a frame has shape (height, width, channels), not {f.shape}")
    h, w, _ = f.shape
    lanes = f.reshape(h * w, -1).tolist()
    sides = [(EOL if x == w - 1 else 0) | (EOF if (x == w - 1 and y == h - 1) else 0)
             for y in range(h) for x in range(w)]
    return lanes, sides


def frames_to_beats(frames):
    lanes, sides = [], []
    for f in frames:
        a, b = frame_to_beats(f)
        lanes += a
        sides += b
    return lanes, sides


def beats_to_frame(lanes, height, width):
    """Inverse of :func:`frame_to_beats` for the lanes of one frame."""
    a = np.asarray(lanes)
    if a.shape[0] != height * width:
        raise ValueError(f"{a.shape[0]} beats do not make a {width}x{height} frame")
    return a.reshape(height, width, -1)
