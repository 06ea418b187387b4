"""Multipliers against the input rate: a preset rate-folded (``--fold rate``) for an input
that takes a pixel every ``P`` clocks (what ``--fps`` gives), counted on the built backbone.

    python bench/fold_rates.py --preset two_cores_shuffle small --json bench/fold_rates.json

Per preset and period: the trainable weight multipliers, the alpha blend multipliers and the
requantizer lanes (``generators.board.dsp_multiplies``: one multiply each), their sum against
the LFE5U-85F's 156 DSP blocks, and the frame rate the folds keep up with at 100 MHz. Plan
counts from the elaborated design's structure, not synthesis; seconds per preset.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from generators.backbone_build import rate_digits, rate_folds  # noqa: E402
from generators.board import BOARDS, dsp_multiplies  # noqa: E402
from semifreddo_hw.backbone import Backbone  # noqa: E402
from spec.network import PRESETS, preset  # noqa: E402
from weights.synthetic import random_params  # noqa: E402

PERIODS = (1, 2, 4, 8, 16, 32)
DSPS = BOARDS["ulx3s-85f"].device["dsp"]


def measure(name: str, periods) -> list[dict]:
    net = preset(name)
    params = random_params(net, np.random.default_rng(2020))
    out = []
    for p in periods:
        dut = Backbone(net, params, folds=rate_folds(net, p), digits=rate_digits(net, p))
        n = dsp_multiplies(dut)
        out.append(
            {
                "preset": name,
                "input_period": p,
                **n,
                "multiplies": sum(n.values()),
                "fit_dsp_blocks": sum(n.values()) <= DSPS,
                "fps_at_100mhz": round(100e6 / (p * net.width * net.height), 1),
            }
        )
    return out


def print_table(records) -> None:
    print(
        f"{'preset':18} {'P':>3} {'weights':>8} {'blends':>7} {'requant':>8} "
        f"{'sum':>5} {'<=156':>6} {'fps@100MHz':>11}"
    )
    for r in records:
        print(
            f"{r['preset']:18} {r['input_period']:>3} {r['weights']:>8} {r['blends']:>7} "
            f"{r['requantizers']:>8} {r['multiplies']:>5} {str(r['fit_dsp_blocks']):>6} "
            f"{r['fps_at_100mhz']:>11,}"
        )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", nargs="+", default=["two_cores_shuffle"], choices=sorted(PRESETS))
    ap.add_argument("--periods", nargs="+", type=int, default=list(PERIODS))
    ap.add_argument("--json", type=Path, help="write the records here")
    args = ap.parse_args(argv)
    if any(p < 1 for p in args.periods):
        ap.error("--periods must be positive")
    records = [r for name in args.preset for r in measure(name, args.periods)]
    print_table(records)
    if args.json:
        args.json.write_text(json.dumps(records, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
