"""What a whole build costs to simulate in Verilator: build time and memory, simulated cycles
per second, and (``--frame``) one frame run bit-exact against the golden model.

    python bench/rtl_sim.py --build DIR --json FILE [--cycles 2000 20000] [--frame]

``DIR`` is a build directory (``python -m generators.build``). The Verilog is compiled as
``python -m sim.verify`` compiles it (Verilator's optimisations on, g++ flags from ``--opt``,
default the project's ``OPT_FAST=-O0 OPT_SLOW=-O0``), timed, with the peak memory of the
process tree (this process, Verilator and the compilers, summed, sampled every 0.1 s). Then
the stream testbench runs a random frame for each of ``--cycles`` clock cycles (stopping
there, before the frame is through); the slope between the runs is the simulated cycles
per second, the intercept the start-up (loading the model and the expected beats), and
their sum at the frame's cycles the estimate of a whole frame. ``--frame`` then runs the
whole frame, every output beat compared with the golden model, where the estimate is
within ``--frame-limit`` seconds (default an hour).
"""

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from bench.scale import TreeMemory  # noqa: E402 (after the path set-up)

DEFAULT_OPT = "OPT_FAST=-O0 OPT_SLOW=-O0"


def _verilator_report(log: Path) -> dict:
    """Verilator's own wall time and allocation, from the build log."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    wall = re.search(r"Verilator: Walltime ([\d.]+) s", text)
    alloc = re.search(r"allocated ([\d.]+) MB", text)
    return {
        "verilate_seconds": float(wall.group(1)) if wall else None,
        "verilator_allocated_mb": round(float(alloc.group(1))) if alloc else None,
    }


def measure(args) -> dict:
    # sim.rtl reads the make flags and extra Verilator arguments when imported
    os.environ["SEMIFREDDO_VERILATOR_OPT"] = args.opt
    os.environ["SEMIFREDDO_VERILATOR_ARGS"] = args.verilator_args
    import numpy as np

    from sim.backbone import FLAGS, backbone_streams, random_frames
    from sim.errors import SimulationMismatch
    from sim.rtl import VerilatorDesign
    from sim.verify import load_build

    net, params, top, verilog, text, _report = load_build(Path(args.build))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    stamp = work / top / ".semifreddo-stamp"
    before = stamp.stat().st_mtime_ns if stamp.is_file() else None
    t = time.perf_counter()
    with TreeMemory() as mem:
        design = VerilatorDesign.from_verilog(text, top, work, optimize=True)
    build = {
        # an earlier build of the same text and options, reused (its log still read)
        "build_reused": stamp.stat().st_mtime_ns == before,
        "build_seconds": round(time.perf_counter() - t, 1),
        "build_peak_memory_mb": round(mem.peak / 2**20),
        **_verilator_report(design.build_dir / "build.log"),
    }
    print(f"build: {build}", file=sys.stderr, flush=True)
    shuffle = net.core_shuffle
    statics = [("shuffle", int(shuffle))] if shuffle else []
    frame_cycles = net.width * net.height
    rng = np.random.default_rng(args.seed)
    # The capped runs get frames enough that they stop at the cap; the whole run one frame.
    streams = {
        count: backbone_streams(
            net,
            params,
            random_frames(net, rng, count),
            shuffle=shuffle,
            in_stall=0.0,
            out_stall=0.0,
        )
        for count in {1, args.cycles[-1] // frame_cycles + 1}
    }

    def run(cycles, name):
        inputs, outputs = streams[1 if cycles is None else args.cycles[-1] // frame_cycles + 1]
        t = time.perf_counter()
        try:
            stats = design.run_streams(
                inputs,
                outputs,
                statics=statics,
                flags=FLAGS,
                test_name=name,
                seed=args.seed,
                max_cycles=cycles,
            )
        except SimulationMismatch as e:
            if not str(e).startswith("timeout"):
                raise
            stats = None  # stopped at `cycles`, as asked
        return stats, round(time.perf_counter() - t, 2)

    runs = []
    for n in args.cycles:
        _, wall = run(n, f"bench_{n}")
        runs.append({"cycles": n, "wall_seconds": wall})
        print(f"{n} cycles: {wall} s", file=sys.stderr, flush=True)
    (c0, w0), (c1, w1) = [(r["cycles"], r["wall_seconds"]) for r in (runs[0], runs[-1])]
    rate = (c1 - c0) / (w1 - w0) if w1 > w0 else None
    startup = w0 - c0 / rate if rate else None
    result = {
        "build": str(args.build),
        "network": net.name,
        "frame": [net.width, net.height],
        "verilog_mb": round(len(text) / 2**20, 1),
        "make_opt": args.opt,
        "verilator_args": args.verilator_args,
        **build,
        "runs": runs,
        "cycles_per_second": round(rate, 1) if rate else None,
        "startup_seconds": round(startup, 1) if rate else None,
        "frame_cycles_at_least": frame_cycles,
        "frame_estimate_seconds": round(startup + frame_cycles / rate) if rate else None,
        "whole_frame": None,
    }
    if args.frame and rate and result["frame_estimate_seconds"] <= args.frame_limit:
        stats, wall = run(None, "bench_frame")
        result["whole_frame"] = {
            "wall_seconds": wall,
            "cycles": stats["cycles"],
            "received": stats["received"],
            "bit_exact": True,  # run_streams raises on the first wrong beat
        }
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, metavar="DIR")
    ap.add_argument("--work", default="build/rtl_sim", metavar="DIR", help="simulation build")
    ap.add_argument("--cycles", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--frame", action="store_true", help="also run one whole frame")
    ap.add_argument(
        "--frame-limit",
        type=float,
        default=3600,
        metavar="S",
        help="run the frame only if estimated to take at most S seconds (default 3600)",
    )
    ap.add_argument("--opt", default=DEFAULT_OPT, help=f"make flags (default {DEFAULT_OPT!r})")
    ap.add_argument("--verilator-args", default="", help="extra Verilator arguments")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if len(args.cycles) < 2 or sorted(args.cycles) != args.cycles:
        ap.error("--cycles: two or more counts, increasing")
    r = measure(args)
    print(
        f"{r['network']} {r['frame'][0]}x{r['frame'][1]}: Verilog {r['verilog_mb']} MB; "
        f"build {r['build_seconds']} s{' (reused)' if r['build_reused'] else ''} "
        f"(Verilator {r['verilate_seconds']} s, "
        f"{r['verilator_allocated_mb']} MB), peak memory {r['build_peak_memory_mb']} MB "
        f"({r['make_opt']}{' ' + r['verilator_args'] if r['verilator_args'] else ''})"
    )
    print(f"{'cycles':>10} {'wall s':>10}")
    for run in r["runs"]:
        print(f"{run['cycles']:>10,} {run['wall_seconds']:>10.1f}")
    print(
        f"{r['cycles_per_second']} cycles/s after {r['startup_seconds']} s of start-up: a "
        f"frame ({r['frame_cycles_at_least']:,} cycles or more) in about "
        f"{r['frame_estimate_seconds']} s"
    )
    if r["whole_frame"]:
        f = r["whole_frame"]
        print(f"whole frame: {f['cycles']:,} cycles in {f['wall_seconds']} s, bit-exact")
    if args.json:
        args.json.write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
