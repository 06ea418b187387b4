"""``python -m sim.verify --build DIR``: run a build's Verilog in Verilator and compare every
output beat with the golden model; what to run after every build.

The build directory (``python -m generators.build``) holds everything needed: the Verilog,
``network.json`` and the quantized weights the hardware was built from (``frozen.npz``,
``trainable.npz``). Frames are random (``--frames``, ``--seed``) or given (``--input``, a
``.npz`` with ``frames``, uint8 ``(N, H, W, C)``); inputs and outputs stall at random; with
a core shuffle, both settings run. The build directory is only read.

``--per-layer`` checks every convolution instead, each on its own (``--layers`` picks some by
name pattern): the layer's module and what it instantiates, cut out of the build's Verilog,
simulated on random frames of its real input size (every row and column, so both borders
and the line buffer's wrap), against the golden layer with the build's parameters;
``--jobs`` layers at a time. What a build too big to simulate whole can still be checked by.

Exit codes: 0 every beat matched; 1 a mismatch or a raised error flag (the first wrong beat
is named); 2 bad input (one line).
"""

import contextlib
import dataclasses
import fnmatch
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from common.cli import Parser, run_command
from common.files import OutputError
from common.parallel import cpu_jobs, fork_map
from common.verilog import module_tree
from spec import names
from spec.names import is_module_name, part_module
from spec.network import Network, network_from_dict
from spec.stream import MARKER_BITS, frames_to_beats
from weights.files import load_frames, load_weights, trainable_arrays
from weights.io import WeightFileError, read_json
from weights.synthetic import retrained

from .backbone import (
    param_image,
    param_writes,
    random_frames,
    run_backbone,
    run_backbone_swaps,
)
from .errors import SimulationMismatch
from .golden.backbone import int_conv
from .lanes import Lanes

__all__ = [
    "VerifyError",
    "input_frames",
    "load_build",
    "main",
    "read_build",
    "read_param_writes",
    "verify",
    "verify_layers",
]


#: At most this many input pixels per run (the golden model holds them all in memory).
MAX_PIXELS = 10_000_000
#: Stalls beyond this make a run hundreds of times longer and test nothing new.
MAX_STALL = 0.9


class VerifyError(Exception):
    """A build directory or argument that cannot be verified."""


def read_build(build: Path) -> tuple[dict, Network, str, Path, str]:
    """What a build directory says about its hardware: the report, the network, the top
    module's name, the Verilog file and its text. Raises :class:`VerifyError` (one line)
    for a directory that is not a build or lacks one of them."""
    if not (build / "report.json").is_file():
        raise VerifyError(
            f"{build}: not a build directory (no report.json); build it with "
            f"python -m generators.build"
        )
    report = read_json(build / "report.json")
    try:
        net = network_from_dict(read_json(build / "network.json"))
    except ValueError as e:
        raise VerifyError(f"{build / 'network.json'}: {e}") from None
    top = report.get("top") if isinstance(report, dict) else None
    # The name becomes a directory under --work that is replaced: nothing but a module name.
    if not isinstance(top, str) or not is_module_name(top):
        raise VerifyError(f"{build / 'report.json'}: 'top' is not a module name")
    verilog = build / f"{top}.v"
    if not verilog.is_file():
        raise VerifyError(f"{build}: {verilog.name} is missing")
    try:
        text = verilog.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise VerifyError(f"{verilog}: unreadable ({e})") from None
    return report, net, top, verilog, text


def read_param_writes(path: Path) -> list[tuple[int, int]]:
    """The ``(address, value)`` pairs of a build's ``param_writes.hex`` (values signed)."""
    out = []
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise VerifyError(f"{path}: {e.strerror or e}") from None
    for n, line in enumerate(lines, 1):
        try:
            a, v = (int(f, 16) for f in line.split())
        except ValueError:
            raise VerifyError(f"{path}:{n}: not two hexadecimal words") from None
        out.append((a, v - (1 << 32) if v >> 31 else v))
    return out


def load_build(build: Path):
    """A build directory's network, parameters, top module name, Verilog path and text, and
    its report."""
    report, net, top, verilog, text = read_build(build)
    weights = load_weights(
        build / "frozen.npz", build / "trainable.npz", net, str(build / "network.json")
    )
    return net, weights.params, top, verilog, text, report


def input_frames(args, net):
    """The frames a run sends: ``--input`` (uint8, shifted to int8) or ``--frames`` random ones."""
    if args.input is None:
        most = max(1, MAX_PIXELS // (net.height * net.width))
        if args.frames > most:
            raise VerifyError(
                f"--frames: at most {most} for {net.width}x{net.height} frames "
                f"({MAX_PIXELS:,} pixels in all)"
            )
        return random_frames(net, np.random.default_rng(args.seed), args.frames)
    return [fr.astype(np.int64) - 128 for fr in load_frames(args.input, net, "--input")]


def verify(args, log) -> list[str]:
    """Build the simulation, run it, return the summary lines; raises
    :class:`~sim.errors.SimulationMismatch` when the design disagrees with the golden model."""
    build = Path(args.build)
    net, params, top, verilog, text, _report = load_build(build)
    frames = input_frames(args, net)
    # A build with two parameter sets is also checked swapping sets mid-stream; one with a
    # repeated head group or repeated blocks, with every pass count.
    swap = read_json(build / "report.json").get("parameter_sets") == 2
    repeated = any(g.repeats > 1 for g in net.head) or net.trainable_repeats > 1
    regions, image = _image(build, net, params) if swap or repeated else (None, None)
    with _work(args) as work:
        t0 = time.perf_counter()
        design = _design(top, verilog, text, work, log)
        lines = _simulate(args, net, params, design, frames, log, t0)
        if swap:
            lines.append(_swap(args, net, params, regions, image, design, log))
        if repeated:
            lines.append(_repeats(args, net, params, regions, design, swap, log))
        return lines


@contextlib.contextmanager
def _work(args):
    """The simulation builds' folder: ``--work`` (made if missing) or a temporary one."""
    if args.work is None:
        with tempfile.TemporaryDirectory(prefix="semifreddo-verify-") as work:
            yield Path(work)
        return
    try:
        Path(args.work).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VerifyError(f"--work {args.work}: {e.strerror or e}") from None
    yield Path(args.work)


def verify_layers(args, log) -> list[str]:
    """``--per-layer``: every convolution of the build (``--layers``: those whose name
    matches) simulated alone against the golden layer; returns one line per layer, or
    raises :class:`~sim.errors.SimulationMismatch` with how many failed and the first."""
    from .rtl import VerilatorDesign  # cocotb and Verilator (test extra): only to simulate

    net, params, top, verilog, text, report = load_build(Path(args.build))
    layers = report["layers"]
    convs = [c for c in net.convs() if fnmatch.fnmatchcase(c.name, args.layers)]
    if not convs:
        raise VerifyError(f"--layers {args.layers!r}: no convolution of {net.name} matches")
    golden = int_conv(net, params)
    log(f"[per-layer] {len(convs)} convolution(s) of {verilog}, {args.jobs} at a time")

    def one(conv, work) -> tuple[str | None, str | None]:
        """``(summary line, None)`` or ``(None, what went wrong)``."""
        t0 = time.perf_counter()
        rng = np.random.default_rng([args.seed, zlib.crc32(conv.name.encode())])
        frames = random_frames(net, rng, args.frames, (conv.height, conv.width, conv.c_in))
        x, xs = frames_to_beats(frames)
        y, ys = frames_to_beats([golden(conv.name, f) for f in frames])
        module = part_module(top, conv.name)
        try:
            design = VerilatorDesign.from_verilog(
                module_tree(text, module), module, work, optimize=True
            )
            stats = design.run_streams(
                {"i": (x, xs, Lanes(conv.c_in, 8, side_width=MARKER_BITS), args.stall)},
                {"o": (y, ys, Lanes(conv.c_out, 8, side_width=MARKER_BITS), args.stall)},
                flags=("framing_error",),
                seed=zlib.crc32(f"{args.seed}{conv.name}".encode()),
                test_name="layer",
                beat_cycles=beat_cycles(layers[conv.name]),
            )
        except (SimulationMismatch, RuntimeError, ValueError) as e:
            return None, f"{conv.name}: {str(e).splitlines()[0]}"
        size = f"{conv.width}x{conv.height}x{conv.c_in} -> {conv.c_out}"
        return (
            f"{conv.name}: {size}, {len(frames)} frame(s), every one of {len(y)} output "
            f"beats matched, {stats['cycles']} cycles, {time.perf_counter() - t0:.0f} s"
        ), None

    with _work(args) as work:
        results = fork_map(
            lambda conv: one(conv, work),
            convs,
            args.jobs,
            progress=lambda done, total: log(f"[per-layer] {done}/{total} done"),
        )
    failed = [err for _line, err in results if err is not None]
    if failed:
        raise SimulationMismatch(f"{len(failed)} of {len(convs)} layer(s) failed: {failed[0]}")
    return [line for line, _err in results]


def beat_cycles(layer: dict) -> int:
    """The most cycles a layer of a build's report may take per beat (for a run's hang
    limit): a folded layer's fold, a digit-serial one's digits, a spaced product's latency
    (it takes a beat only once the last has left)."""
    spaced = layer["latency_cycles"] + 1 if layer.get("spaced") else 1
    return max(layer.get("fold", 1), layer.get("digits", 1), spaced)


def _image(build, net, params):
    """``address_map.json`` and the parameter image of ``trainable.npz`` by it, which
    ``param_writes.hex`` must be (:class:`VerifyError` if not)."""
    regions = read_json(build / "address_map.json")
    try:
        image = param_image(regions, trainable_arrays(net, params))
    except (KeyError, ValueError, TypeError, IndexError) as e:
        raise VerifyError(f"{build / 'address_map.json'}: does not fit the weights ({e})") from None
    words = read_param_writes(build / "param_writes.hex")
    if words != image:
        bad = next((a for (a, v), w in zip(image, words, strict=False) if (a, v) != w), None)
        raise VerifyError(
            f"{build / 'param_writes.hex'}: not the image of trainable.npz by address_map.json"
            + (f" (first difference at address {bad:#x})" if bad is not None else " (length)")
        )
    return regions, image


def _swap(args, net, params, regions, image, design, log) -> str:
    """While frames stream, the writes of another parameter set (fresh trainable weights,
    scales, biases, alphas) go to the shadow set and a swap switches to it: every output
    frame must equal the golden model under the set its frame started with."""
    new = retrained(net, params, np.random.default_rng(args.seed + 1))
    old = dict(image)
    writes = [(a, v) for a, v in param_image(regions, trainable_arrays(net, new)) if old[a] != v]
    # The writes start with the first frame, and the swap follows them: the frames after
    # the one that starts after the swap show the new set.
    count = 2 + -(-len(writes) // (net.width * net.height))
    frames = random_frames(net, np.random.default_rng(args.seed + 2), count)
    payloads = param_writes(regions, writes)
    log(f"[+] parameter swap: {len(writes)} writes while {count} frames stream")
    stats = run_backbone_swaps(
        design,
        net,
        [params, new],
        frames,
        [(0, payloads)],
        test_name="verify_swap",
        seed=args.seed,
        in_stall=args.stall,
        out_stall=args.stall,
    )
    sets = stats["frame_sets"]
    if sets[-1] != 1:
        raise SimulationMismatch(f"parameter swap: the new set never reached a frame ({sets})")
    return (
        f"parameter swap: param_writes.hex is the image of trainable.npz; {len(writes)} "
        f"writes of another set into the shadow set while {count} frames streamed, swapped "
        f"in from frame {sets.index(1)}: every output beat matched, busy until cycle "
        f"{stats['busy_low'][0]}"
    )


def _design(top, verilog, text, work, log):
    """The build's Verilog compiled by Verilator under ``work``."""
    from .rtl import VerilatorDesign  # cocotb and Verilator (test extra): only to simulate

    log(f"[1/2] Verilator build of {verilog} in {work} (minutes for a whole backbone)")
    try:
        return VerilatorDesign.from_verilog(text, top, work, optimize=True)
    except RuntimeError as e:  # the build directory's Verilog, not this tool, is at fault
        raise VerifyError(f"{verilog}: {str(e).splitlines()[0]}") from None
    except (OSError, OutputError) as e:  # --work holds something else there
        raise VerifyError(f"--work {work}: {e}") from None


def _repeats(args, net, params, regions, design, swap, log) -> str:
    """Every pass count of the repeated head groups and blocks (count ``n`` in each, or its
    most; the second trainable core's block one fewer, so that the cores' counts differ):
    the counts written through ``param_write`` at their ``address_map.json`` addresses
    (into the shadow set and swapped in, on a build with two sets), frames streamed under
    stalls, every output beat compared with the golden model under those counts."""
    top = max([g.repeats for g in net.head] + [net.trainable_repeats])
    base = {r["entry"]: r["base"] for r in regions}
    frames = random_frames(net, np.random.default_rng(args.seed + 3), 3 if swap else 1)
    counts = []
    for n in range(1, top + 1):
        new, entries = dict(params), {}
        for k, g in enumerate(net.head):
            name = names.head_group(k)
            if g.repeats > 1:
                count = entries[f"{name}.repeat"] = min(n, g.repeats)
                new[name] = dataclasses.replace(params[name], repeat=count)
        for j, name in enumerate(net.repeat_counts()):
            new[name] = entries[name] = max(1, min(n, net.trainable_repeats) - j)
        writes = param_writes(regions, [(base[e], v) for e, v in entries.items()])
        log(f"[+] repeat count {n}: {len(writes)} write(s), {len(frames)} frame(s)")
        kw = dict(seed=args.seed + n, in_stall=args.stall, out_stall=args.stall)
        if swap:
            stats = run_backbone_swaps(
                design, net, [params, new], frames, [(0, writes)], test_name=f"verify_n{n}", **kw
            )
            if stats["frame_sets"][-1] != 1:
                raise SimulationMismatch(f"repeat count {n}: the count never reached a frame")
        else:
            run_backbone(design, net, new, frames, writes=writes, test_name=f"verify_n{n}", **kw)
        counts.append(n)
    return (
        f"repeated {_repeated(net)}: pass counts {counts[0]}..{counts[-1]} written through "
        f"param_write{' and swapped in' if swap else ''}: every output beat matched"
    )


def _repeated(net) -> str:
    """What repeats in ``net``, for the summary."""
    what = ["head groups"] if any(g.repeats > 1 for g in net.head) else []
    return " and ".join(what + (["blocks"] if net.trainable_repeats > 1 else []))


def _simulate(args, net, params, design, frames, log, t0) -> list[str]:
    settings = [False, True] if net.core_shuffle else [False]
    lines = []
    for shuffle in settings:
        name = f"verify_shuffle{int(shuffle)}"
        log(
            f"[2/2] {len(frames)} frame(s), shuffle {'on' if shuffle else 'off'} "
            f"({time.perf_counter() - t0:.0f} s)"
        )
        stats = run_backbone(
            design,
            net,
            params,
            frames,
            shuffle=shuffle,
            test_name=name,
            seed=zlib.crc32(f"{args.seed}{name}".encode()),
            in_stall=args.stall,
            out_stall=args.stall,
        )
        beats = ", ".join(f"{p} {n}" for p, n in sorted(stats["received"].items()))
        lines.append(
            f"shuffle {'on ' if shuffle else 'off'}: {len(frames)} frame(s), "
            f"every output beat matched ({beats} beats), {stats['cycles']} cycles "
            f"under stalls, error flags low"
        )
    log(f"[2/2] timing: {len(frames)} frame(s) without stalls ({time.perf_counter() - t0:.0f} s)")
    stats = run_backbone(
        design,
        net,
        params,
        frames,
        test_name="verify_timing",
        seed=args.seed,
        in_stall=0.0,
        out_stall=0.0,
    )
    lines += timing_lines(stats, len(frames) * net.height * net.width)
    return lines


def timing_lines(stats: dict, pixels: int) -> list[str]:
    """What a stall-free run measured: the input rate (pixels taken per clock between the
    first and the last) and, per output, the cycles from the first input pixel to its first
    beat and from the last input pixel to its last beat."""
    first_in, last_in = stats["input_cycles"]["i"]
    rate = pixels / (last_in - first_in + 1)
    lines = [
        f"timing without stalls: {pixels} input pixels in {last_in - first_in + 1} "
        f"cycles ({rate:.3f} pixel/clock)"
    ]
    for port in sorted(stats["first_output_cycle"]):
        first, last = stats["first_output_cycle"][port], stats["last_output_cycle"][port]
        lines.append(
            f"  {port}: first beat {first - first_in} cycles after the first pixel, "
            f"last beat {last - last_in} cycles after the last pixel"
        )
    return lines


def _parser() -> Parser:
    p = Parser(prog="python -m sim.verify", description=__doc__.split("\n")[0])
    p.add_argument(
        "--build",
        required=True,
        metavar="DIR",
        help="a build directory written by python -m generators.build",
    )
    p.add_argument("--frames", type=int, default=2, help="random frames (default 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--input",
        metavar="FILE",
        help="frames to run instead: .npz with 'frames' uint8 (N, H, W, C)",
    )
    p.add_argument(
        "--stall",
        type=float,
        default=0.3,
        help="probability per cycle that an input or output stalls, at most "
        f"{MAX_STALL} (default 0.3)",
    )
    p.add_argument(
        "--work", metavar="DIR", help="simulation build directory (default: a fresh temporary one)"
    )
    p.add_argument(
        "--per-layer",
        action="store_true",
        help="check every convolution alone, on random frames of its own input size",
    )
    p.add_argument(
        "--layers",
        default="*",
        metavar="PATTERN",
        help="with --per-layer: only the convolutions whose name matches (shell pattern, "
        "e.g. 'frozen.m4.*'; default all)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="with --per-layer: layers simulated at a time (default: the CPUs available)",
    )
    return p


def _run(args, log) -> int:
    if args.frames < 1 or args.seed < 0 or not 0 <= args.stall <= MAX_STALL:
        raise VerifyError(f"--frames must be >= 1, --seed >= 0 and --stall in [0, {MAX_STALL}]")
    if args.jobs is None:
        args.jobs = cpu_jobs()
    if args.jobs < 1:
        raise VerifyError("--jobs must be >= 1")
    if args.per_layer and args.input is not None:
        raise VerifyError("--input: frames of the whole network; --per-layer draws its own")
    if not args.per_layer and args.layers != "*":
        raise VerifyError("--layers goes with --per-layer")
    try:
        lines = (verify_layers if args.per_layer else verify)(args, log)
    except SimulationMismatch as e:
        print(f"FAIL {args.build}: {str(e).splitlines()[0]}")
        return 1
    print(f"PASS {args.build}")
    for line in lines:
        print(f"  {line}")
    return 0


def main(argv=None) -> int:
    return run_command(_parser(), _run, (VerifyError, WeightFileError), argv)


if __name__ == "__main__":
    sys.exit(main())
