# amaranth: UnusedElaboratable=no
"""A requantizer's logic on the ECP5, synthesized alone as the board build synthesizes the
design (``generators.board.synth_overrides``: multiplies of 8 bits or more in DSP blocks,
the LUTs mapped by ``abc -lut 4``), at the accumulator widths a board build gives them.

    python bench/requant_area.py --jobs 2 --json FILE

Each case is one :class:`~semifreddo_hw.requant.Requantizer` of 16 channels folded to one
lane (16 sub-beats), shift 12, ReLU, with one or two parameter sets (the frozen core's
requantizers, the trainable cores'): what every folded layer of ``small`` has. Columns: Yosys's
LUT4, CCU2C (carry cells), TRELLIS_DPR16X4 (LUT RAM), flip-flops and DSP blocks, and LUT4
equivalents (LUT4 + 2 x CCU2C + 4 x DPR16X4, as ``bench/netlist_logic.py`` counts them).
A board build of ``small`` has 69 requantizers, all folded to one lane, with accumulators
of 19 to 20 bits in 43 of them; run at two commits to compare. Seconds.
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.parallel import fork_map  # noqa: E402
from generators.board import synth_overrides  # noqa: E402
from generators.synth import yosys_command  # noqa: E402
from semifreddo_hw.emit import to_verilog  # noqa: E402
from semifreddo_hw.requant import Requantizer  # noqa: E402

#: The board build's DSP operand width for ``small`` (``dsp_min_width`` in its board.json).
DSP_MIN_WIDTH = 8
CELLS = ("LUT4", "CCU2C", "TRELLIS_DPR16X4", "TRELLIS_FF", "MULT18X18D")
WEIGHTS = {"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 4}


def synthesize(case: tuple[int, int]) -> dict:
    """One requantizer (accumulator width, parameter sets) through the board's Yosys flow."""
    acc_width, sets = case
    dut = Requantizer(16, acc_width, shift=12, relu=True, fold=16, sets=sets, side_width=3)
    over = synth_overrides("auto", DSP_MIN_WIDTH)
    script = "\n".join(
        [
            "read_verilog -defer design.v",
            "hierarchy -top top",
            over["script_after_read"],
            f"synth_ecp5 -top top {over['synth_opts']}",
            over["script_after_synth"],
            "tee -q -o stat.txt stat",
        ]
    )
    with tempfile.TemporaryDirectory(prefix="requant-area-") as work:
        (Path(work) / "design.v").write_text(to_verilog(dut, "top"))
        (Path(work) / "s.ys").write_text(script + "\n")
        # the project's Yosys (YoWASP sees the working directory only: relative paths)
        subprocess.run(yosys_command("s.ys"), cwd=work, check=True, capture_output=True)
        stat = (Path(work) / "stat.txt").read_text()
    counts = {c: 0 for c in CELLS}
    for n, cell in re.findall(r"^\s+(\d+)\s+(?:\S+\s+)?(\w+)\s*$", stat, re.M):
        if cell in counts:
            counts[cell] = int(n)
    return {
        "acc_width": acc_width,
        "sets": sets,
        **counts,
        "lut4_equivalents": sum(counts[c] * w for c, w in WEIGHTS.items()),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--widths", type=int, nargs="+", default=[16, 18, 19, 20, 22, 26])
    p.add_argument("--sets", type=int, nargs="+", default=[1, 2])
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--json", type=Path, help="write the records here")
    args = p.parse_args(argv)
    cases = [(w, s) for s in args.sets for w in args.widths]
    rows = fork_map(synthesize, cases, args.jobs)
    head = ("acc", "sets", *CELLS, "LUT4 eq")
    print(" ".join(f"{h:>15}" for h in head))
    for r in rows:
        cols = (r["acc_width"], r["sets"], *(r[c] for c in CELLS), r["lut4_equivalents"])
        print(" ".join(f"{v:>15}" for v in cols))
    if args.json:
        args.json.write_text(
            json.dumps({"dsp_min_width": DSP_MIN_WIDTH, "cases": rows}, indent=1) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
