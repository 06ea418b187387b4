"""Stimulus and expected streams for a whole backbone, from the golden model (numpy only: the
hardware's address map arrives as plain ``(addr, value)`` writes).

Shared by the end-to-end tests and the post-build check."""

import numpy as np

from sim.frames import frames_to_beats
from sim.golden.backbone import backbone
from sim.lanes import Lanes

__all__ = ["random_frames", "backbone_streams", "PARAM_PORT"]

PARAM_PORT = "param_write"
_MARKER_BITS = 2


def random_frames(net, rng, count):
    """``count`` random int8 frames for ``net``, the first starting with a row of -128 and
    the last ending with a row of 127 (extremes through every layer)."""
    frames = [rng.integers(-128, 128, size=(net.height, net.width, net.channels_in))
              for _ in range(count)]
    frames[0][0] = -128
    frames[-1][-1] = 127
    return frames


def backbone_streams(net, params, frames, *, shuffle=False, in_stall=0.3, out_stall=0.3):
    """``(inputs, outputs)`` for :meth:`sim.rtl.VerilatorDesign.run_streams`: the frames on
    ``i`` and, per core, the golden model's feature maps on ``o_<core>``."""
    x, xs = frames_to_beats(frames)
    inputs = {"i": (x, xs, Lanes(net.channels_in, 8, side_width=_MARKER_BITS), in_stall)}
    golden = [backbone(net, params, f, shuffle=shuffle) for f in frames]
    outputs = {}
    for core in net.cores:
        y, ys = frames_to_beats([g[core] for g in golden])
        lanes = Lanes(int(np.shape(golden[0][core])[-1]), 8, side_width=_MARKER_BITS)
        outputs[f"o_{core}"] = (y, ys, lanes, out_stall)
    return inputs, outputs
