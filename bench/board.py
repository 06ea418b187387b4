"""A preset on a board, measured: the bitstream build of ``python -m generators.board`` (rate
folded, YoWASP Yosys / nextpnr / ecppack from pip) and what nextpnr says of it.

    python bench/board.py --board ulx3s-85f --preset small --json bench/board_small.json
    python bench/board.py --preset two_cores_shuffle --fps 8000 --json FILE  # a slower input

``--fps`` folds as the build's option does (a pixel every ``clock / (fps * width * height)``
clocks), ``--dsp`` and ``--placer`` as the board command's (``auto``, ``heap`` by default).

Weights: the shipped examples where the preset has them (``weights/examples``), else float
weights made the same way as those (seeded, deterministic). Records per run: ``fits`` (every
resource within the part and the design routed), ``fmax_mhz`` (after routing), ``target_mhz``,
``lut4`` / ``ff`` / ``dsp`` / ``bram`` and their ``*_pct`` of the part, ``input_period`` and
the frame rates the folds keep up with, the DSP choice, the build's wall time.
Minutes to hours on two cores; not part of the test run.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from generators.board import BRAM_FILL, PLACERS, ROUTERS, TIMING_WEIGHT  # noqa: E402
from spec.network import PRESETS, preset  # noqa: E402
from weights.files import save_frozen, save_trainable  # noqa: E402
from weights.quantize import calibration_frames  # noqa: E402
from weights.synthetic import random_float_params  # noqa: E402

FIELDS = ("fits", "fmax_mhz", "target_mhz", "lut4", "ff", "dsp", "bram")


def weight_files(name: str, tmp: Path) -> tuple[Path, Path]:
    shipped = _REPO / "weights" / "examples"
    frozen, trainable = shipped / f"{name}_frozen.npz", shipped / f"{name}_trainable.npz"
    if frozen.is_file() and trainable.is_file():
        return frozen, trainable
    net = preset(name)
    fp = random_float_params(net, np.random.default_rng(2020), calibration_frames(net, 8))
    frozen, trainable = tmp / "frozen.npz", tmp / "trainable.npz"
    save_frozen(frozen, net, fp)
    save_trainable(trainable, net, fp)
    return frozen, trainable


def run(
    board: str,
    name: str,
    clock_mhz: float,
    fold: str,
    jobs: int,
    dsp: str,
    fps: float | None,
    keep: Path | None = None,
    placer: str = "heap",
    timing_weight: int = TIMING_WEIGHT,
    router: str = "router2",
    bram_fill: float = BRAM_FILL,
    seed: int | None = None,
    floorplan: bool = True,
) -> dict:
    with tempfile.TemporaryDirectory(prefix="semifreddo-bench-board-") as tmp:
        frozen, trainable = weight_files(name, Path(tmp))
        out = Path(tmp) / "out" if keep is None else keep / f"{name}_{fold}"
        cmd = [
            sys.executable,
            "-m",
            "generators.board",
            "--board",
            board,
            "--freeze",
            str(frozen),
            "--trainable",
            str(trainable),
            "--out",
            str(out),
            "--clock-mhz",
            str(clock_mhz),
            "--fold",
            fold,
            "--dsp",
            dsp,
            "--jobs",
            str(jobs),
            "--quiet",
            *(["--fps", str(fps)] if fps is not None else []),
            "--placer",
            placer,
            "--timing-weight",
            str(timing_weight),
            "--router",
            router,
            *(["--tool-dir", str(keep / f"{name}_{fold}_tools")] if keep is not None else []),
            "--bram-fill",
            str(bram_fill),
            *(["--seed", str(seed)] if seed is not None else []),
            *([] if floorplan else ["--no-floorplan"]),
        ]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=_REPO, capture_output=True, text=True)
        seconds = round(time.perf_counter() - t0, 1)
        report = out / "board" / "board.json"
        if proc.returncode not in (0, 3) or not report.is_file():
            raise RuntimeError(
                f"generators.board failed ({proc.returncode}): {proc.stderr.strip()[-500:]}"
            )
        r = json.loads(report.read_text())
    net = preset(name)
    return {
        "board": board,
        "preset": name,
        "size": [net.width, net.height, net.channels_in],
        "fold": fold,
        "fps_target": fps,
        "input_period": r.get("input_period", 1),
        "dsp_mode": dsp,
        "placer": placer,
        **({"timing_weight": timing_weight} if placer == "heap" else {}),
        "router": router,
        "bram_fill": bram_fill,
        "floorplan": floorplan,
        **({"seed": seed} if seed is not None else {}),
        **({k: r[k] for k in ("dsp_min_width", "multiplies", "relays") if k in r}),
        **{k: r[k] for k in FIELDS},
        **{k: r[k] for k in r if k.endswith("_pct")},
        "carry": r["carry"],
        "comb": r["comb"],
        "timing_met": r["timing_met"],
        "fps_preset": r["fps_preset"],
        "fps_vga": r["fps_vga"],
        "tool_seconds": r["seconds"],
        "seconds": seconds,
        **({"tool_error": r["tool_error"]} if "tool_error" in r else {}),
    }


def print_table(records) -> None:
    head = f"{'preset':18} {'fold':8} {'fits':5} {'Fmax':>7} {'LUT4':>14} {'FF':>14} "
    head += f"{'DSP':>10} {'BRAM':>10} {'s':>6}"
    print(head)
    for r in records:
        fmax = f"{r['fmax_mhz']:.1f}" if r["fmax_mhz"] else "-"
        print(
            f"{r['preset']:18} {r['fold']:8} {str(r['fits']):5} {fmax:>7} "
            f"{r['comb']:>7,} {r['lut4_pct']:>5}% {r['ff']:>7,} {r['ff_pct']:>5}% "
            f"{r['dsp']:>4} {r['dsp_pct']:>4}% {r['bram']:>4} {r['bram_pct']:>4}% "
            f"{r['seconds']:>6}"
        )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", default="ulx3s-85f")
    ap.add_argument("--preset", nargs="+", default=["small"], choices=sorted(PRESETS))
    ap.add_argument("--fold", nargs="+", default=["rate"], choices=["rate", "spatial"])
    ap.add_argument("--clock-mhz", type=float, default=100.0)
    ap.add_argument("--dsp", default="auto", choices=["auto", "wide", "all", "none"])
    ap.add_argument("--placer", default="heap", choices=PLACERS, help="nextpnr's placer")
    ap.add_argument(
        "--timing-weight",
        type=int,
        default=TIMING_WEIGHT,
        help=f"the heap placer's timing weight (the build's; default {TIMING_WEIGHT})",
    )
    ap.add_argument("--router", default="router2", choices=ROUTERS, help="nextpnr's router")
    ap.add_argument(
        "--fps",
        type=float,
        help="with --fold rate: fold as far as this frame rate allows (the build's --fps)",
    )
    ap.add_argument(
        "--keep",
        type=Path,
        help="keep each build (tool logs included) in KEEP/<preset>_<fold> and the tools' "
        "working files (netlist, scripts) in KEEP/<preset>_<fold>_tools (default: discarded)",
    )
    ap.add_argument(
        "--bram-fill",
        type=float,
        default=BRAM_FILL,
        help=f"the build's --bram-fill (default {BRAM_FILL})",
    )
    ap.add_argument("--seed", type=int, help="nextpnr's seed (the build's --seed)")
    ap.add_argument(
        "--no-floorplan",
        action="store_true",
        help="the build's --no-floorplan: nextpnr places the block RAMs and DSP blocks",
    )
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--json", type=Path, help="write the records here")
    args = ap.parse_args(argv)
    records = []
    for name in args.preset:
        for fold in args.fold:
            records.append(
                run(
                    args.board,
                    name,
                    args.clock_mhz,
                    fold,
                    args.jobs,
                    args.dsp,
                    args.fps,
                    args.keep,
                    placer=args.placer,
                    timing_weight=args.timing_weight,
                    router=args.router,
                    bram_fill=args.bram_fill,
                    seed=args.seed,
                    floorplan=not args.no_floorplan,
                )
            )
            print_table(records[-1:])
    print()
    print_table(records)
    if args.json:
        args.json.write_text(json.dumps(records, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
