"""Stimulus and expected streams for a whole backbone, from the golden model (numpy only: the
hardware's address map arrives as plain ``(addr, value)`` writes).

Shared by the end-to-end tests and the post-build check."""

import numpy as np

from spec.stream import MARKER_BITS, frames_to_beats

from .golden.backbone import backbone
from .lanes import Lanes

__all__ = ["random_frames", "backbone_streams", "run_backbone", "PARAM_PORT", "FLAGS"]

PARAM_PORT = "param_write"
FLAGS = ("framing_error", "marker_mismatch")  # the backbone's sticky error outputs


def random_frames(net, rng, count, shape=None):
    """``count`` random int8 frames for ``net`` (or of ``shape``, (height, width, channels):
    a layer's input), the first starting with a row of -128 and the last ending with a row
    of 127 (extremes through every layer)."""
    shape = (net.height, net.width, net.channels_in) if shape is None else shape
    frames = [rng.integers(-128, 128, size=shape) for _ in range(count)]
    frames[0][0] = -128
    frames[-1][-1] = 127
    return frames


def backbone_streams(net, params, frames, *, shuffle=False, in_stall=0.3, out_stall=0.3):
    """``(inputs, outputs)`` for :meth:`sim.rtl.VerilatorDesign.run_streams`: the frames on
    ``i`` and, per core, the golden model's feature maps on ``o_<core>``."""
    x, xs = frames_to_beats(frames)
    inputs = {"i": (x, xs, Lanes(net.channels_in, 8, side_width=MARKER_BITS), in_stall)}
    golden = [backbone(net, params, f, shuffle=shuffle) for f in frames]
    outputs = {}
    for core in net.cores:
        y, ys = frames_to_beats([g[core] for g in golden])
        lanes = Lanes(int(np.shape(golden[0][core])[-1]), 8, side_width=MARKER_BITS)
        outputs[f"o_{core}"] = (y, ys, lanes, out_stall)
    return inputs, outputs


def run_backbone(
    design, net, params, frames, *, shuffle=False, writes=(), test_name, seed, **stalls
) -> dict:
    """Run ``frames`` through a Verilator build of the backbone of ``net`` (``design``, a
    :class:`sim.rtl.VerilatorDesign`) after the ``writes`` (``(PARAM_PORT, payload)``), and
    compare every beat of every output with the golden model under ``params``; both sticky
    error flags must stay low. Raises :class:`~sim.errors.SimulationMismatch` naming the first
    wrong beat."""
    inputs, outputs = backbone_streams(net, params, frames, shuffle=shuffle, **stalls)
    statics = [("shuffle", int(shuffle))] if net.core_shuffle else []
    return design.run_streams(
        inputs, outputs, writes=writes, statics=statics, flags=FLAGS, test_name=test_name, seed=seed
    )
