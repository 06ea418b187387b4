"""How far the board flow's floorplan put each pinned block RAM and DSP block from its block:
per cell type the count, the mean and largest distance (tiles, x plus y) from the middle
of the block's stretch of the snake (``generators.ecp5_floorplan.middles``) to the cell's
site (its ``BEL`` attribute), how many lie over 30 tiles away, and the farthest cells.

    python -m generators.board --board ulx3s-85f --freeze F --trainable T --fps 8000 \\
        --out OUT --tool-dir TOOLS                          # Yosys, then nextpnr
    python bench/floorplan_distance.py --netlist TOOLS/top.json --json FILE

(``TOOLS/top.json`` carries the ``BEL`` attributes once the floorplan pass has run, that
is once nextpnr has started; ``--order`` defaults to ``floorplan_order.json`` beside it).
A distance is where a block's fabric logic must reach to its memory or multiplier: the
sites the pass chooses trade one cell's distance against another's. Seconds.
"""

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netlist_ffs import run  # noqa: E402 - the netlist benches' ending

from generators.ecp5_floorplan import HARD, SITES, block_of, middles  # noqa: E402

#: A cell counted as far.
FAR = 30
_XY = re.compile(r"X(\d+)/Y(\d+)/")


def count(netlist: dict, order: list[str], top: str = "top", die: str = "85k") -> dict:
    """Per hard cell type, the distances from each pinned cell's block's middle to its
    site: ``cells``, ``mean``, ``max``, ``over_30``; and the ``farthest`` 10 cells."""
    cells = netlist["modules"][top]["cells"]
    found = block_of(cells, order)
    point = middles(found, order, SITES[die])
    rows = []
    for name, b in sorted(found.items()):
        bel = cells[name].get("attributes", {}).get("BEL")
        if cells[name]["type"] not in HARD or not bel:
            continue
        x, y = (int(v) for v in _XY.match(bel).groups())
        far = abs(x - point[b][0]) + abs(y - point[b][1])
        rows.append((round(far, 1), cells[name]["type"], b, bel))
    out = {}
    for kind in HARD:
        d = [r[0] for r in rows if r[1] == kind]
        out[kind] = {
            "cells": len(d),
            "mean": round(sum(d) / len(d), 1) if d else None,
            "max": max(d, default=None),
            f"over_{FAR}": sum(x > FAR for x in d),
        }
    rows.sort(key=lambda r: (-r[0], r[3]))
    keys = ("tiles", "type", "block", "site")
    out["farthest"] = [dict(zip(keys, r, strict=True)) for r in rows[:10]]
    return out


def table(result: dict) -> str:
    lines = [f"{'type':12} {'cells':>6} {'mean':>6} {'max':>6} {'> ' + str(FAR):>6}"]
    for kind in HARD:
        r = result[kind]
        lines.append(
            f"{kind:12} {r['cells']:>6} {r['mean'] or '-':>6} {r['max'] or '-':>6} "
            f"{r[f'over_{FAR}']:>6}"
        )
    lines += ["", "farthest (tiles from the block's middle):"]
    lines += [
        f"    {r['tiles']:6.1f}  {r['type']:11} {r['site']:18} {r['block']}"
        for r in result["farthest"]
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--netlist", required=True, type=Path, help="the tool directory's top.json")
    p.add_argument("--order", type=Path, help="default: floorplan_order.json beside it")
    p.add_argument("--top", default="top", help="the top module (default top)")
    p.add_argument("--json", type=Path, help="write the result here")
    args = p.parse_args(argv)
    order = args.order or args.netlist.with_name("floorplan_order.json")

    def compute():
        spec = json.loads(order.read_text())
        return count(json.loads(args.netlist.read_text()), spec["order"], args.top)

    return run("floorplan_distance", args.netlist, compute, table, args.json)


if __name__ == "__main__":
    sys.exit(main())
