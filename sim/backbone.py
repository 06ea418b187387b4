"""Stimulus and expected streams for a whole backbone, from the golden model (numpy only: the
hardware's address map arrives as plain ``(addr, value)`` writes).

Shared by the end-to-end tests and the post-build check."""

import numpy as np

from spec import names
from spec.formats import param_word
from spec.stream import EOF, EOL, EPOCH, MARKER_BITS, frames_to_beats

from .golden.backbone import backbone
from .lanes import Lanes

__all__ = [
    "random_frames",
    "output_beats",
    "backbone_streams",
    "run_backbone",
    "run_backbone_swaps",
    "param_image",
    "param_writes",
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


def output_beats(outputs, epochs=None) -> tuple[list, list[int]]:
    """``(lanes, sides)`` of one output stream over several frames: ``outputs`` are its
    golden results, a feature map ``(h, w, c)`` per frame, or a vector ``(c,)`` where a head
    group pools (one beat with the frame's last markers); frame ``k`` computed with set
    ``epochs[k]`` (default 0)."""
    epochs = [0] * len(outputs) if epochs is None else list(epochs)
    lanes, sides = [], []
    for y, e in zip(outputs, epochs, strict=True):
        y = np.asarray(y)
        if y.ndim == 1:
            lanes.append(y.tolist())
            sides.append(EOL | EOF | (EPOCH if e else 0))
        else:
            a, b = frames_to_beats([y], [e])
            lanes += a
            sides += b
    return lanes, sides


def _outputs(net) -> list[str]:
    """Every output of ``net``'s backbone: the cores, then the head's groups."""
    return list(net.cores) + [names.head_group(k) for k in range(len(net.head))]


def backbone_streams(net, params, frames, *, shuffle=False, in_stall=0.3, out_stall=0.3):
    """``(inputs, outputs)`` for :meth:`sim.rtl.VerilatorDesign.run_streams`: the frames on
    ``i`` and, per core and head group, the golden model's results on its output port
    (:func:`spec.names.output_port`)."""
    x, xs = frames_to_beats(frames)
    inputs = {"i": (x, xs, Lanes(net.channels_in, 8, side_width=MARKER_BITS), in_stall)}
    golden = [backbone(net, params, f, shuffle=shuffle) for f in frames]
    outputs = {}
    for out in _outputs(net):
        y, ys = output_beats([g[out] for g in golden])
        lanes = Lanes(int(np.shape(golden[0][out])[-1]), 8, side_width=MARKER_BITS)
        outputs[names.output_port(out)] = (y, ys, lanes, out_stall)
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


def param_writes(regions, addr_values) -> list[tuple[str, int]]:
    """``(PARAM_PORT, word)`` for the ``(address, value)`` writes, packed as the port of the
    build whose ``address_map.json`` records are ``regions`` takes them: its ``addr`` field
    spans the addresses up to the end of the last region, gaps between regions included
    (not as many as the regions hold)."""
    addresses = max(r["base"] + r["count"] for r in regions)
    return [(PARAM_PORT, param_word(a, v, addresses)) for a, v in addr_values]


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
    expected_sets = {names.output_port(out): [] for out in _outputs(net)}
    frame_beats = {"i": net.width * net.height}
    for k, params in enumerate(param_sets):
        golden = [backbone(net, params, f, shuffle=shuffle) for f in frames]
        for out in _outputs(net):
            beats = output_beats([g[out] for g in golden], [k % 2] * len(frames))
            expected_sets[names.output_port(out)].append(beats)
            # the testbench counts a frame's beats per output: a pool switch stays put
            n = len(beats[0]) // len(frames)
            if frame_beats.setdefault(names.output_port(out), n) != n:
                raise ValueError(f"{out}: the sets must agree on pooling")
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
        frame_beats=frame_beats,
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
