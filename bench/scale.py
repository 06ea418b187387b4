"""What a whole backbone costs to build and what it contains.

    python bench/scale.py --preset paper --json bench/scale_paper.json
    python bench/scale.py --preset paper --head-only --json bench/scale_paper_head.json

``--head-only`` measures the model head alone at its largest (``docs/head.md``): groups of
``C -> C`` over the preset's ``C`` output channels, as many as 131,072 weights allow (two
at ``paper`` size), rate-folded to the beat period of the preset's outputs (one pixel per
clock in), elaborated and emitted in parts (a module per group's convolution).

For each mode (``cold``: empty caches; ``warm``: the plan and Verilog-part caches the cold
run filled), a fresh process plans every frozen layer (``--jobs`` workers), builds the
:class:`Backbone`, and emits its Verilog in parts (``--jobs`` workers). Reported: frozen,
configurable and pruned weights, adders, multipliers, memory bits (parameters, line buffers,
balancing FIFOs), Verilog size, and per step the wall time and the peak memory of the whole
process tree (the sum of the resident sizes of this process and its workers, sampled every
0.1 s).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from common.parallel import cpu_jobs  # noqa: E402 (after the path set-up)


class TreeMemory:
    """Peak summed resident memory of this process and all its descendants (Linux /proc)."""

    def __init__(self, interval=0.1):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    @staticmethod
    def _tree_rss() -> int:
        parents, rss = {}, {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{entry}/statm") as f:
                    pages = int(f.read().split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents[int(entry)] = int(stat[1])
            rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE")
        me = os.getpid()
        total = 0
        for pid, size in rss.items():
            p = pid
            while p in parents and p != me:
                p = parents[p]
            if p == me:
                total += size
        return total

    def _run(self, interval):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._tree_rss())
            self._stop.wait(interval)

    def __enter__(self):
        self.peak = self._tree_rss()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._tree_rss())


def timed(steps: dict, label: str, name: str, fn):
    """``fn()``, its wall time and the peak memory of the process tree in ``steps[name]``
    (printed as ``label`` on stderr)."""
    t = time.perf_counter()
    with TreeMemory() as mem:
        result = fn()
    steps[name] = {
        "seconds": round(time.perf_counter() - t, 1),
        "peak_memory_mb": round(mem.peak / 2**20),
    }
    print(f"  {label}: {steps[name]}", file=sys.stderr, flush=True)
    return result


def measure(preset_name: str, jobs: int, seed: int) -> dict:
    """One build in this process: plan, construct, emit. Returns counts and costs."""
    import numpy as np

    from generators import steps as build_steps
    from generators.backbone_build import BackboneDesign
    from generators.design import BuildConfig
    from spec.network import preset
    from weights.files import Weights
    from weights.synthetic import random_params

    net = preset(preset_name)
    params = random_params(net, np.random.default_rng(seed))
    design = BackboneDesign(Weights(net, "int8", params=params), params=params)
    b = build_steps.Build(
        BuildConfig(freeze=Path("-"), top="semifreddo_backbone", jobs=jobs),
        log=lambda _: None,
        design=design,
    )
    steps = {}

    def step(name, fn):
        return timed(steps, f"{preset_name} {name}", name, fn)

    for s in build_steps.STEPS:  # the build's own steps, on synthetic weights
        if s.name in ("plan", "elaborate", "emit"):
            step(s.name, lambda s=s: s.run(b))
    text = b.files["semifreddo_backbone.v"]
    r = design.hardware.report()
    return {
        "preset": preset_name,
        "jobs": jobs,
        "frozen_weights": r["frozen_weights"],
        "frozen_pruned_weights": r["frozen_weights"] - r["frozen_nonzero_weights"],
        "configurable_weights": r["configurable_weights"],
        "alpha_codes": r["alpha_codes"],
        "adders": r["adders"],
        "multipliers": r["multipliers"],
        "parameter_memory_bits": r["parameter_memory_bits"],
        "line_buffer_bits": r["line_buffer_bits"],
        "balance_fifo_bits": r["balance_fifo_bits"],
        "verilog_lines": text.count("\n"),
        "verilog_mb": round(len(text) / 2**20, 1),
        "steps": steps,
        "total_seconds": round(sum(s["seconds"] for s in steps.values()), 1),
        "peak_memory_mb": max(s["peak_memory_mb"] for s in steps.values()),
    }


def measure_head(preset_name: str, jobs: int, seed: int) -> dict:
    """The largest head of ``preset_name`` (see the module docstring), in this process:
    construct, emit. Returns counts and costs."""
    import dataclasses

    import numpy as np

    from generators.backbone_build import rate_folds, rate_periods
    from semifreddo_hw.emit import to_verilog_parts
    from semifreddo_hw.head import Head, HeadGroup
    from spec import names
    from spec.network import HEAD_MAX_WEIGHTS, HeadGroupSpec, preset
    from weights.synthetic import random_head_group

    base = preset(preset_name)
    c = base.channels_after(len(base.stages))
    spec = HeadGroupSpec(c, c, tuple((core, 0) for core in base.cores))
    net = dataclasses.replace(base, head=(spec,) * min(8, HEAD_MAX_WEIGHTS // (c * c)))
    folds, periods = rate_folds(net), rate_periods(net)
    rng = np.random.default_rng(seed)
    steps, built = {}, {}

    def step(name, fn):
        return timed(steps, f"{preset_name} head {name}", name, fn)

    def elaborate():
        built["head"] = Head(
            [
                HeadGroup.of_network(
                    net,
                    k,
                    random_head_group(rng, g),
                    fold=folds[names.head_group(k)],
                    period=periods[names.head_group(k)],
                    sets=2,
                )
                for k, g in enumerate(net.head)
            ]
        )

    step("elaborate", elaborate)
    head = built["head"]
    parts = {f"head__g{k}": g.conv for k, g in enumerate(head.groups)}
    text = step("emit", lambda: to_verilog_parts(head, "head", parts, jobs=jobs))
    reports = [g.conv.report() for g in head.groups]
    return {
        "preset": preset_name,
        "part": "head",
        "jobs": jobs,
        "groups": len(head.groups),
        "c_in": c,
        "c_out": c,
        "head_weights": sum(g.weights for g in net.head),
        "fold": folds[names.head_group(0)],
        "multipliers": sum(r["multipliers"] for r in reports)
        + sum(g.pwl.lanes for g in head.groups),
        "parameter_memory_bits": sum(bank.bits for g in head.groups for _, bank, _ in g.banks()),
        "parameter_sets": 2,
        "verilog_lines": text.count("\n"),
        "verilog_mb": round(len(text) / 2**20, 1),
        "steps": steps,
        "total_seconds": round(sum(s["seconds"] for s in steps.values()), 1),
        "peak_memory_mb": max(s["peak_memory_mb"] for s in steps.values()),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--jobs", type=int, default=cpu_jobs())
    ap.add_argument("--modes", nargs="+", default=["cold", "warm"], choices=["cold", "warm"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--head-only", action="store_true", help="the largest model head alone (docstring)"
    )
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child run
    args = ap.parse_args(argv)
    if args.one:
        fn = measure_head if args.head_only else measure
        print(json.dumps(fn(args.preset, args.jobs, args.seed)))
        return 0
    if args.head_only:
        with tempfile.TemporaryDirectory(prefix="semifreddo-scale-") as cache:
            env = dict(os.environ, SEMIFREDDO_CACHE_DIR=cache)
            cmd = [sys.executable, __file__, "--one", "--head-only", "--preset", args.preset]
            cmd += ["--jobs", str(args.jobs), "--seed", str(args.seed)]
            out = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"preset {args.preset} head: {r['groups']} groups of {r['c_in']} -> {r['c_out']}, "
            f"{r['head_weights']:,} weights, fold {r['fold']}, {r['multipliers']:,} "
            f"multipliers, parameter memory {r['parameter_memory_bits']:,} bits (2 sets); "
            f"Verilog {r['verilog_lines']:,} lines ({r['verilog_mb']} MB)"
        )
        s = r["steps"]
        print(
            f"elaborate {s['elaborate']['seconds']} s, emit {s['emit']['seconds']} s, "
            f"peak {r['peak_memory_mb']} MB (jobs {args.jobs})"
        )
        if args.json:
            args.json.write_text(json.dumps(r, indent=2) + "\n")
        return 0

    rows = []
    with tempfile.TemporaryDirectory(prefix="semifreddo-scale-") as cache:
        for mode in args.modes:  # a cold run first fills the cache a warm run reads
            env = dict(os.environ, SEMIFREDDO_CACHE_DIR=cache)
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    "--preset",
                    args.preset,
                    "--jobs",
                    str(args.jobs),
                    "--seed",
                    str(args.seed),
                ],
                env=env,
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            ).stdout  # progress: stderr
            rows.append({"mode": mode, **json.loads(out.strip().splitlines()[-1])})
    first = rows[0]
    print(
        f"preset {args.preset}: frozen weights {first['frozen_weights']:,} "
        f"({first['frozen_pruned_weights']:,} pruned), configurable weights "
        f"{first['configurable_weights']:,}, alpha codes {first['alpha_codes']:,}"
    )
    print(
        f"adders {first['adders']:,}, multipliers {first['multipliers']:,}, memory bits: "
        f"parameters {first['parameter_memory_bits']:,}, line buffers "
        f"{first['line_buffer_bits']:,}, balancing FIFOs {first['balance_fifo_bits']:,}; "
        f"Verilog {first['verilog_lines']:,} lines ({first['verilog_mb']} MB)"
    )
    print(
        f"{'mode':6} {'plan s':>8} {'elab s':>8} {'emit s':>8} {'total s':>8} "
        f"{'peak MB':>8}   (jobs {args.jobs})"
    )
    for r in rows:
        s = r["steps"]
        print(
            f"{r['mode']:6} {s['plan']['seconds']:8.1f} {s['elaborate']['seconds']:8.1f} "
            f"{s['emit']['seconds']:8.1f} {r['total_seconds']:8.1f} {r['peak_memory_mb']:8}"
        )
    if args.json:
        args.json.write_text(json.dumps({"preset": args.preset, "runs": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
