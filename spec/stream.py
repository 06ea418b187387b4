"""The pixel-stream format: one beat per pixel (all its channels), raster order, frames back
to back; each beat's ``side`` bits mark the last pixel of a row (:data:`EOL`) and of the
frame (:data:`EOF`), and :data:`EPOCH` names the run-time parameter set the beat is
computed with (0 or 1: a design built with two sets switches between them at a frame
boundary; its input's epoch bit is ignored, the design sets it). Every stream between
layers, and the design's input and outputs, follow it; :func:`frames_to_beats` gives the
beats of numpy frames ``(height, width, channels)``.
"""

import numpy as np

__all__ = [
    "EOL_BIT",
    "EOF_BIT",
    "EPOCH_BIT",
    "EOL",
    "EOF",
    "EPOCH",
    "MARKER_BITS",
    "frame_to_beats",
    "frames_to_beats",
]

#: Bit positions of the markers in a beat's ``side`` field, and their values.
EOL_BIT, EOF_BIT, EPOCH_BIT = 0, 1, 2
EOL, EOF, EPOCH = 1 << EOL_BIT, 1 << EOF_BIT, 1 << EPOCH_BIT
MARKER_BITS = 3


def frame_to_beats(frame, epoch: int = 0) -> tuple[list, list[int]]:
    """(lanes per beat, side bits per beat) for one frame, computed with parameter set
    ``epoch``."""
    if epoch not in (0, 1):
        raise ValueError(f"epoch must be 0 or 1, not {epoch!r}")
    f = np.asarray(frame)
    if f.ndim != 3:
        raise ValueError(f"a frame has shape (height, width, channels), not {f.shape}")
    h, w, _ = f.shape
    lanes = f.reshape(h * w, -1).tolist()
    sides = [
        (EOL if x == w - 1 else 0)
        | (EOF if (x == w - 1 and y == h - 1) else 0)
        | (EPOCH if epoch else 0)
        for y in range(h)
        for x in range(w)
    ]
    return lanes, sides


def frames_to_beats(frames, epochs=None) -> tuple[list, list[int]]:
    """The beats of several frames, back to back (frame ``k`` of parameter set
    ``epochs[k]``; default all 0)."""
    frames = list(frames)
    epochs = [0] * len(frames) if epochs is None else list(epochs)
    if len(epochs) != len(frames):
        raise ValueError(f"{len(epochs)} epochs for {len(frames)} frames")
    lanes, sides = [], []
    for f, e in zip(frames, epochs, strict=True):
        a, b = frame_to_beats(f, e)
        lanes += a
        sides += b
    return lanes, sides
