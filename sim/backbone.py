"""Stimulus and expected streams for a whole backbone, from the golden model (numpy only: the
hardware's address map arrives as plain ``(addr, value)`` writes).

Shared by the end-to-end tests and the post-build check."""

import numpy as np

from spec.stream import MARKER_BITS, frames_to_beats

from .golden.backbone import backbone
from .lanes import Lanes

__all__ = [
    "random_frames",
    "backbone_streams",
    "run_backbone",
    "run_backbone_swaps",
    "param_image",
    "PARAM_PORT",
    "FLAGS",
]

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


def param_image(regions, entries) -> list[tuple[int, int]]:
    """``(address, value)`` for every address of ``regions`` (the records of a build's
    ``address_map.json``), loaded from a trainable file's ``entries`` as ``docs/backbone.md``
    ("The address map") says: in address order, values signed 32-bit, gaps 0. For the
    build's own parameters, what ``param_writes.hex`` holds."""
    image = {}
    for r in regions:
        image.update(dict.fromkeys(range(r["base"], r["base"] + r["count"]), 0))
        a = np.asarray(entries[r["entry"]])
        a = a.transpose([r["entry_axes"].index(x) for x in r["axes"]])
        if list(a.shape) != r["shape"]:
            raise ValueError(f"{r['entry']}: shape {list(a.shape)}, the map says {r['shape']}")
        k = np.arange(a.size)
        addr = r["base"] + k // r["row"] * r["row_stride"] + k % r["row"]
        image.update(zip(addr.tolist(), a.reshape(-1).astype(np.int64).tolist(), strict=True))
    return sorted(image.items())


def run_backbone_swaps(
    design, net, param_sets, frames, swaps, *, shuffle=False, test_name, seed, **stalls
) -> dict:
    """Run ``frames`` back to back through a Verilator build of a backbone built with two
    parameter sets (``swap``), powered up with ``param_sets[0]``, while ``swaps`` (``(after,
    writes)``: after the input's first ``after`` beats, the ``(PARAM_PORT, payload)`` writes
    and a pulse of ``param_swap``) load the next sets mid-stream. Every output frame must
    equal the golden model under the set of its frame (the swaps pulsed before its first
    input beat; its epoch marker the set's parity). Returns the testbench's statistics
    (``frame_sets``, ``swap_pulses``, ``busy_low``, ``output_frame_first``)."""
    if len(param_sets) != len(swaps) + 1:
        raise ValueError(f"{len(swaps)} swaps need {len(swaps) + 1} parameter sets")
    inputs, outputs = backbone_streams(net, param_sets[0], frames, shuffle=shuffle, **stalls)
    out_w, out_h = net.output_size()
    expected_sets = {f"o_{core}": [] for core in net.cores}
    for k, params in enumerate(param_sets):
        golden = [backbone(net, params, f, shuffle=shuffle) for f in frames]
        for core in net.cores:
            beats = frames_to_beats([g[core] for g in golden], [k % 2] * len(frames))
            expected_sets[f"o_{core}"].append(beats)
    statics = [("shuffle", int(shuffle))] if net.core_shuffle else []
    return design.run_streams(
        inputs,
        outputs,
        statics=statics,
        flags=FLAGS,
        test_name=test_name,
        seed=seed,
        swaps=[(after, [p for _, p in writes]) for after, writes in swaps],
        swap_ports={"write": PARAM_PORT, "swap": "param_swap", "busy": "param_busy"},
        frame_beats={"i": net.width * net.height, **{o: out_w * out_h for o in expected_sets}},
        expected_sets=expected_sets,
    )


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
