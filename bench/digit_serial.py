# amaranth: UnusedElaboratable=no
"""Digit-serial frozen products, measured: one frozen layer's product word-parallel
(``FrozenMatVec``) and digit-serial (``DigitSerialMatVec``) at several digit counts, each
synthesized with Yosys's ECP5 mapping (``generators.synth``, YoWASP from pip), side by side.

    python bench/digit_serial.py --json bench/digit_serial.json

Per layer and digit count: the plan's adders and digit width, the netlist's LUT4, CCU2C and
flip-flops, ``comb`` (the logic cells nextpnr places: a LUT4 each, two per CCU2C) and its
ratio to the word-parallel product. ``digits`` 1 is the word-parallel product; a layer
seeing a beat every ``P`` cycles can use up to ``P`` digits (``--fold rate``); the product
uses the fewest digits of the same width (``digits_used``, ``fewest_digits``). About ten
minutes on two cores; not part of the test run (``tests/test_bench.py`` runs one tiny case).
"""

import argparse
import json
import sys
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_REPO))

import numpy as np  # noqa: E402

from generators.synth import synthesize  # noqa: E402
from semifreddo_hw.conv import plan_conv, product_matrix  # noqa: E402
from semifreddo_hw.digit_serial import DigitSerialMatVec, fewest_digits  # noqa: E402
from semifreddo_hw.emit import part_text  # noqa: E402
from semifreddo_hw.matvec import FrozenMatVec  # noqa: E402
from weights.synthetic import trained_like_int8  # noqa: E402

#: name: (kind, c_in, c_out) of a layer with trained-like int8 weights (30 % pruned).
LAYERS = {
    "pointwise 32->32": ("pointwise", 32, 32),
    "depthwise 3x3, 64 channels": ("depthwise", 64, 64),
    "pointwise 64->64": ("pointwise", 64, 64),
    "pointwise 6->5": ("pointwise", 6, 5),  # the tests' tiny case
}
DEFAULT = list(LAYERS)[:3]
DIGITS = (1, 2, 4, 8, 16)


def layer_weights(kind: str, c_in: int, c_out: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "pointwise":
        return trained_like_int8(rng, c_out, c_in, pruned=0.3)
    return trained_like_int8(rng, c_in, 9, pruned=0.3).reshape(c_in, 3, 3)


def measure(kind, c_in, c_out, digits=DIGITS, timeout=1800) -> list[dict]:
    w = layer_weights(kind, c_in, c_out)
    matrix, graph = product_matrix(kind, w)[0], plan_conv(kind, w)
    rows = []
    for d in digits:
        dut = FrozenMatVec(matrix, graph=graph)
        if d > 1:
            dut = DigitSerialMatVec(matrix, graph=graph, digits=fewest_digits(dut.out_width, d))
        r = synthesize(part_text(dut, "top"), "top", "ecp5", timeout=timeout)
        plan = dut.report()
        rows.append(
            {
                "kind": kind,
                "shape": f"{matrix.shape[0]}x{matrix.shape[1]}",
                "digits": d,
                "digits_used": getattr(dut, "digits", 1),
                "digit_width": plan.get("digit_width", plan["out_width"]),
                "adders": plan["adders"],
                "ecp5_lut4": r["ecp5_lut4"],
                "ecp5_ccu2": r["ecp5_ccu2"],
                "ecp5_ff": r["ecp5_ff"],
                "comb": r["ecp5_lut4"] + 2 * r["ecp5_ccu2"],
                "seconds": r["seconds"],
            }
        )
    base = rows[0]
    for row in rows:
        row["comb_ratio"] = round(row["comb"] / base["comb"], 3)
        row["ff_ratio"] = round(row["ecp5_ff"] / base["ecp5_ff"], 3)
    return rows


def print_table(records: list[dict]) -> None:
    print(
        "| layer | digits (used) | digit bits | adders | LUT4 | CCU2C | comb | FF "
        "| comb / parallel | FF / parallel |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in records:
        print(
            f"| {r['layer']} | {r['digits']} ({r['digits_used']}) | {r['digit_width']} "
            f"| {r['adders']:,} "
            f"| {r['ecp5_lut4']:,} | {r['ecp5_ccu2']:,} | {r['comb']:,} | {r['ecp5_ff']:,} "
            f"| {r['comb_ratio']} | {r['ff_ratio']} |"
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path, help="write the records here")
    p.add_argument(
        "--layers", nargs="*", choices=list(LAYERS), help=f"default: {', '.join(DEFAULT)}"
    )
    p.add_argument("--digits", nargs="*", type=int, default=list(DIGITS))
    args = p.parse_args(argv)
    if 1 not in args.digits:
        p.error("--digits must include 1 (the word-parallel product the ratios are to)")
    t0 = time.perf_counter()
    records = []
    for name in args.layers or DEFAULT:
        for row in measure(*LAYERS[name], digits=sorted(set(args.digits))):
            records.append({"layer": name, **row})
            print(f"  {name}, {row['digits']} digit(s): comb {row['comb']:,}", file=sys.stderr)
    print_table(records)
    print(f"\n{time.perf_counter() - t0:.0f} s in all", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(records, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
