"""Rate folding, measured: the same preset and weights built spatial and ``--fold rate``, each
synthesized part by part (``python -m generators.synth --build DIR --flows ecp5``: Yosys's
ECP5 mapping, every multiply in LUTs), summed per core, side by side.

    python bench/folding.py --preset two_cores_shuffle --json bench/folding.json
    python bench/folding.py --preset small --fps 8000 --json FILE  # the board build's folds

Per core and fold: the plan's multipliers and adders, and the netlist's LUT4, CCU2C and
flip-flops; the ratio spatial / folded beside. Tens of minutes on two cores (the spatial
build's parts dominate); not part of the test run.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parent
sys.path[:0] = [str(_REPO), str(_HERE)]

from board import weight_files  # noqa: E402 (bench/board.py)

from spec.network import PRESETS  # noqa: E402

MEASURED = ("ecp5_lut4", "ecp5_ccu2", "ecp5_ff")
PLANNED = ("multipliers", "adders")


def _run(*cmd):
    proc = subprocess.run(
        [sys.executable, *map(str, cmd)], cwd=_REPO, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[1]} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")


def per_core(synth: dict) -> dict:
    """Sums per core (the layer name's first field) of the measured and planned counts."""
    out = {}
    for name, layer in synth["layers"].items():
        core = out.setdefault(name.split(".")[0], dict.fromkeys(MEASURED + PLANNED, 0))
        for k in MEASURED:
            core[k] += layer["measured"].get(k, 0)
        for k in PLANNED:
            core[k] += layer["plan"].get(k, 0)
    return out


def measure(name: str, jobs: int, fps: float | None = None) -> dict:
    folds = {}
    with tempfile.TemporaryDirectory(prefix="semifreddo-bench-folding-") as tmp:
        frozen, trainable = weight_files(name, Path(tmp))
        for fold in ("spatial", "rate"):
            out = Path(tmp) / fold
            t0 = time.perf_counter()
            _run(
                "-m",
                "generators.build",
                "--freeze",
                frozen,
                "--trainable",
                trainable,
                "--out",
                out,
                "--fold",
                fold,
                *(["--fps", fps] if fps is not None and fold == "rate" else []),
                "--jobs",
                jobs,
                "--quiet",
            )
            _run(
                "-m",
                "generators.synth",
                "--build",
                out,
                "--flows",
                "ecp5",
                "--jobs",
                jobs,
                "--quiet",
            )
            synth = json.loads((out / "synth.json").read_text())
            folds[fold] = {
                "cores": per_core(synth),
                "total": {k: synth["total"][k] for k in MEASURED},
                "seconds": round(time.perf_counter() - t0, 1),
            }
    return {"preset": name, "fps": fps, "yosys": synth["yosys"], "folds": folds}


def print_table(r: dict) -> None:
    sp, fo = r["folds"]["spatial"]["cores"], r["folds"]["rate"]["cores"]
    keys = PLANNED + MEASURED
    rate = "rate-folded" if r.get("fps") is None else f"rate-folded at --fps {r['fps']:g}"
    print(f"{r['preset']}: spatial / {rate} (ratio), {r['yosys']}")
    print(f"{'core':8}" + "".join(f"{k:>28}" for k in keys))
    for core in sp:
        cells = [
            f"{sp[core][k]:>9,} /{fo[core][k]:>8,} ({sp[core][k] / max(fo[core][k], 1):4.1f}x)"
            for k in keys
        ]
        print(f"{core:8}" + "".join(f"{c:>28}" for c in cells))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="two_cores_shuffle", choices=sorted(PRESETS))
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--fps", type=float, help="fold as the build's --fps does")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    r = measure(args.preset, args.jobs, args.fps)
    print_table(r)
    if args.json:
        args.json.write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
