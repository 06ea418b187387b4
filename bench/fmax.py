"""Each layer's own Fmax on the ECP5 (LFE5U-85F), placed and routed out of context: a fast
loop for timing work, where a whole board build takes an hour.

    python bench/fmax.py --build DIR [--layer GLOB ...] [--module NAME ...] [--freq 100] \
        --json FILE

``DIR`` is a build directory (``python -m generators.build``, any ``--fold``). Each layer's
Verilog module (:func:`spec.names.part_module`, with everything it instantiates) goes through
the board flow's Yosys script (``generators.board.synth_overrides``: ``--dsp`` as the board
build's; memories placed as the board build places them: ``generators.board.place_memories``
over the whole design with ``--blocks`` block RAMs, so that a layer's memory sits in block
RAM here only where the board build puts it there) and YoWASP nextpnr-ecp5 with
``--out-of-context`` (no IO buffers: the layer's ports are free), then its timing report is
read: the achieved Fmax and the critical path (its start and end cells, and how much of it
is logic and how much routing). A layer meets the board's clock here or not at all; a
whole design adds the paths between layers (register slices cut most) and congestion.
``--module`` runs any module of the design the same way, by its name in the Verilog (a
backbone block such as ``semifreddo.frozen_m4_0``, a balancing FIFO, a core's blend): the
paths between a block's layers, out of context, in minutes.
"""

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from common.parallel import fork_map  # noqa: E402
from common.verilog import module_token, module_tree, verilog_modules  # noqa: E402
from generators.board import place_memories, synth_overrides, yowasp_env  # noqa: E402
from spec.names import part_module  # noqa: E402
from weights.io import read_json  # noqa: E402

#: The block RAMs the ULX3S-85F board build gives the backbone's memories on ``small``
#: (``generators.board``: the part's 208, less 4 spare and the host link's two queues).
BOARD_BLOCKS = 202


def _yosys_script(top: str, dsp: str) -> str:
    o = synth_overrides(dsp, 8)
    top = module_token(top).strip()
    return "\n".join(
        [
            "read_verilog -defer design.v",
            f"hierarchy -top {top}",  # elaborated, so that the DSP mapping sees the multiplies
            o.get("script_after_read", ""),
            f"synth_ecp5 -top {top} {o['synth_opts']}",
            o["script_after_synth"],
            "write_json netlist.json",
        ]
    )


def _critical(report: dict) -> dict:
    """The first critical path of nextpnr's JSON report: ends, delays by kind."""
    paths = report.get("critical_paths") or []
    if not paths:
        return {}
    p = paths[0]
    logic = sum(s["delay"] for s in p["path"] if s["type"] != "routing")
    routing = sum(s["delay"] for s in p["path"] if s["type"] == "routing")
    return {
        "from": p["path"][0]["from"]["cell"] if p["path"] else None,
        "to": p["path"][-1]["to"]["cell"] if p["path"] else None,
        "logic_ns": round(logic, 2),
        "routing_ns": round(routing, 2),
        "steps": len(p["path"]),
    }


def designs(text: str, modules, blocks: int) -> dict[str, str]:
    """Each of ``modules`` with every module it instantiates, its memories placed as
    :func:`~generators.board.place_memories` places them over the whole design ``text``
    with ``blocks`` block RAMs: the board build's choice, not the one a module alone with
    every block RAM of the part would get (on ``small`` every trainable layer's queue and
    the frozen stages' line memories would then sit in block RAM, whose late read data made
    those layers look slower than on the board)."""
    placed, _ = place_memories(text, blocks)
    return {m: module_tree(placed, m) for m in modules}


def measure(layer: str, design: str, module: str, args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="semifreddo-fmax-"))
    try:
        (work / "design.v").write_text(design)
        (work / "synth.ys").write_text(_yosys_script(module, args.dsp) + "\n")
        env = os.environ | yowasp_env()
        t0 = time.perf_counter()
        subprocess.run(
            [env["YOSYS"], "-q", "-l", "yosys.log", "synth.ys"],
            cwd=work,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        t1 = time.perf_counter()
        pnr = [
            env["NEXTPNR_ECP5"],
            "--85k",
            "--package",
            "CABGA381",
            "--json",
            "netlist.json",
            "--out-of-context",
            "--freq",
            str(args.freq),
            "--timing-allow-fail",
            "--report",
            "report.json",
            "--log",
            "nextpnr.log",
            "--quiet",
        ]
        subprocess.run(
            pnr, cwd=work, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        t2 = time.perf_counter()
        report = json.loads((work / "report.json").read_text())
        fmax = next(iter(report.get("fmax", {}).values()), {})
        util = report.get("utilization", {})
        out = {
            "layer": layer,
            "module": module,
            "fmax_mhz": round(fmax.get("achieved", 0.0), 2),
            "target_mhz": args.freq,
            "meets": fmax.get("achieved", 0.0) >= args.freq,
            "comb": util.get("TRELLIS_COMB", {}).get("used"),
            "ff": util.get("TRELLIS_FF", {}).get("used"),
            "dsp": util.get("MULT18X18D", {}).get("used"),
            "bram": util.get("DP16KD", {}).get("used"),
            "critical_path": _critical(report),
            "yosys_seconds": round(t1 - t0, 1),
            "nextpnr_seconds": round(t2 - t1, 1),
        }
        if args.keep:
            dst = Path(args.keep) / layer
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(work, dst)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", required=True, metavar="DIR")
    p.add_argument("--layer", action="append", metavar="GLOB", help="layers to run (default all)")
    p.add_argument(
        "--module",
        action="append",
        default=[],
        metavar="NAME",
        help="modules to run by their Verilog name (then no layer unless --layer)",
    )
    p.add_argument("--freq", type=float, default=100.0, help="target MHz (default 100)")
    p.add_argument("--dsp", default="auto", choices=["auto", "wide", "all", "none"])
    p.add_argument(
        "--blocks",
        type=int,
        default=BOARD_BLOCKS,
        help=f"block RAMs for the whole design's memories (default {BOARD_BLOCKS}: the "
        "ULX3S-85F board build's for small)",
    )
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--keep", metavar="DIR", help="keep each layer's netlist and logs here")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    build = Path(args.build)
    report = read_json(build / "report.json")
    top = report.get("top", "semifreddo")
    text = (build / f"{top}.v").read_text()
    globs = args.layer or ([] if args.module else ["*"])
    layers = [n for n in report["layers"] if any(fnmatch.fnmatch(n, g) for g in globs)]
    if args.layer and not layers:
        p.error("no layer matches --layer")
    missing = set(args.module) - set(verilog_modules(text)) if args.module else set()
    if missing:
        p.error(f"--module {sorted(missing)[0]}: no such module in {build / (top + '.v')}")
    jobs = [(n, part_module(top, n)) for n in layers] + [(m, m) for m in args.module]
    trees = designs(text, sorted({m for _, m in jobs}), args.blocks)
    results = fork_map(lambda j: measure(j[0], trees[j[1]], j[1], args), jobs, args.jobs)
    print(f"{'layer':<28} {'Fmax':>7} {'COMB':>6} {'FF':>6} {'DSP':>4}  critical path")
    for r in results:
        c = r["critical_path"]
        print(
            f"{r['layer']:<28} {r['fmax_mhz']:>7.1f} {r['comb'] or 0:>6} {r['ff'] or 0:>6} "
            f"{r['dsp'] or 0:>4}  {c.get('from')} -> {c.get('to')} "
            f"({c.get('logic_ns')} ns logic, {c.get('routing_ns')} ns routing)"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"build": str(build), "target_mhz": args.freq, "layers": results}, indent=2)
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
