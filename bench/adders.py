"""Adders per nonzero weight: naive signed digits vs the project's planner.

For seeded Gaussian, per-channel-quantized int8 matrices (dense and with 50 % of the
weights zeroed), plan y = W @ x with the unshared CSD baseline and with the planner
(da4ml), print a side-by-side table and write the records as JSON.

    python bench/adders.py --json bench/adders.json [--sizes 16 64 128] [--cache]

``planner_seconds`` is the solver's wall time for this matrix. By default the plan cache is
bypassed so that the time is a real solve; ``--cache`` reports cached solve times instead.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from semifreddo_hw.cmvm import plan_cmvm  # noqa: E402
from weights.synthetic import gaussian_int8  # noqa: E402


def run(sizes, seed, cache):
    records = []
    for n in sizes:
        for zeros in (0.0, 0.5):
            rng = np.random.default_rng([seed, n, int(zeros * 100)])
            w = gaussian_int8(rng, n, n, zeros)
            nz = int(np.count_nonzero(w))
            naive = plan_cmvm(w, "csd")
            t0 = time.perf_counter()
            planned = plan_cmvm(w, "da4ml", use_cache=cache)
            wall = time.perf_counter() - t0
            records.append(
                {
                    "name": f"gauss{n}x{n}" + ("_zeros50" if zeros else ""),
                    "shape": [n, n],
                    "seed": seed,
                    "zeros_fraction": zeros,
                    "nonzero": nz,
                    "naive_adders": naive.adders,
                    "planner_adders": planned.adders,
                    "naive_per_nonzero": round(naive.adders / nz, 4),
                    "planner_per_nonzero": round(planned.adders / nz, 4),
                    "ratio_planner_to_naive": round(planned.adders / naive.adders, 4),
                    "naive_depth": naive.depth,
                    "planner_depth": planned.depth,
                    "planner": planned.solver,
                    "planner_seconds": round(planned.solve_seconds if cache else wall, 3),
                }
            )
            print(_row(records[-1]), flush=True)
    return records


_HEAD = (
    f"{'matrix':<20} {'nonzero':>7} {'naive':>7} {'/nz':>6} {'planner':>7} {'/nz':>6} "
    f"{'ratio':>6} {'depth n/p':>9} {'seconds':>8}"
)


def _row(r):
    return (
        f"{r['name']:<20} {r['nonzero']:>7} {r['naive_adders']:>7} "
        f"{r['naive_per_nonzero']:>6.3f} {r['planner_adders']:>7} "
        f"{r['planner_per_nonzero']:>6.3f} {r['ratio_planner_to_naive']:>6.3f} "
        f"{r['naive_depth']:>4}/{r['planner_depth']:<4} {r['planner_seconds']:>8.2f}"
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", metavar="FILE", help="write the records here")
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 128])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", action="store_true", help="use the plan cache")
    args = p.parse_args(argv)
    print(_HEAD)
    records = run(args.sizes, args.seed, args.cache)
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
