"""Pin an ECP5 design's block RAMs and DSP blocks in the order its streams flow: a netlist
pass between Yosys and nextpnr.

Why: the ECP5's block RAMs (``DP16KD``) and multipliers (``MULT18X18D``) sit in rows across
the die, and a rate-folded backbone uses nearly all of them (``small`` at ``--fps 8000``:
206 of 208 block RAMs, 123 of 156 DSPs). Left to itself nextpnr's placer puts a layer's
memories and multipliers wherever a site was free, and the layer's fabric follows them: on
that build every frozen block of stages 2 to 4 spanned the whole die, and its handshakes
crossed it every cycle (``docs/bringup.md``, "Placed again").

How: the die is walked as a snake of four bands, each holding a row of block RAMs, from the
bottom left: left to right, right to left, left to right, right to left, so that it ends on
the side it starts (where the board link sits, between the backbone's input and its
outputs). Each block (the board link's receive queue and byte slice, then every backbone
submodule in the order of :meth:`semifreddo_hw.backbone.Backbone.placement_order`, then the
link's send queue) gets a stretch of the snake as long as its share of the ordered blocks'
cells. Its block RAMs and DSP blocks go to free sites of their kind near its stretch's
middle: of all ways to give every such cell a site of its own, the one with the least sum
of squared distances (tiles, x plus y, on the die: a site one band up may be nearer than
one further along the band) from each cell's block's middle to its site
(:func:`min_cost_assignment`). nextpnr binds cells with a ``BEL`` attribute before it
places anything else, and its placer then pulls each block's fabric logic towards its
pinned sites. Cells outside the ordered blocks stay free, for the sites left over, and a
cell already bound keeps its site.

Used by ``generators.board`` as a wrapper around nextpnr, like :mod:`.ecp5_outreg`:
``python -m generators.ecp5_floorplan ORDER NEXTPNR ARGS...`` reads the block order (JSON
written by the board flow: instance paths from the top, dot-separated), rewrites the
``--json`` netlist in place, then runs ``NEXTPNR ARGS...``, and writes what it pinned to
``floorplan_pinned.json`` beside the order (for the board report). Only the 85k die's sites
are known (``--85k``, ``--um-85k``, ``--um5g-85k``: both boards' parts); for any other part
the netlist is left as it is.
"""

import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

__all__ = [
    "DEVICES",
    "PINNED",
    "SITES",
    "block_of",
    "middles",
    "main",
    "min_cost_assignment",
    "pin",
    "snake_point",
]

#: The first column of each group of four block RAM or DSP columns on the LFE5U-85F: block
#: RAMs at +0, +2, +4, +6 (``EBR0``-``EBR3``), multipliers at +0, +1, +4, +5
#: (``MULT18_0``, ``_1``, ``_4``, ``_5``). Read from nextpnr's placements of the ``small``
#: board build; every one of the 364 sites checked by binding a cell to it
#: (``tests/test_ecp5_floorplan.py``, slow).
_GROUPS_85K = (4, 13, 22, 31, 40, 49, 58, 69, 78, 87, 96, 105, 114)
EBR_ROWS_85K = (22, 46, 70, 82)
DSP_ROWS_85K = (10, 34, 58)

#: Per die: the columns, the snake's bands in snake order (rows ``[y0, y1)``, each with a
#: block RAM row), and the sites of each hard cell type.
SITES = {
    "85k": {
        "columns": 126,
        "bands": ((76, 95), (52, 76), (28, 52), (0, 28)),
        "DP16KD": tuple(
            (g + 2 * k, y, f"X{g + 2 * k}/Y{y}/EBR{k}")
            for y in EBR_ROWS_85K
            for g in _GROUPS_85K
            for k in range(4)
        ),
        "MULT18X18D": tuple(
            (g + dx, y, f"X{g + dx}/Y{y}/MULT18_{dx}")
            for y in DSP_ROWS_85K
            for g in _GROUPS_85K
            for dx in (0, 1, 4, 5)
        ),
    },
}

#: nextpnr's device options of each die in :data:`SITES`: the LFE5U-85F (ULX3S-85F) and
#: the LFE5UM5G-85F (ECPIX-5-85) share one (the 364 sites checked with each option).
DEVICES = {"85k": "85k", "um-85k": "85k", "um5g-85k": "85k"}

#: The cell types pinned.
HARD = ("DP16KD", "MULT18X18D")

#: What the pass pinned (its counts), written beside the order for the board report.
PINNED = "floorplan_pinned.json"


def block_of(cells: dict, order: list[str]) -> dict:
    """The innermost block of ``order`` (instance paths) each cell of ``cells`` lies in, by
    the cell's flattened name; cells in none are left out."""
    blocks, found = set(order), {}
    for name in cells:
        parts = name.lstrip("\\$").split(".")
        for k in range(len(parts) - 1, 0, -1):
            path = ".".join(parts[:k])
            if path in blocks:
                found[name] = path
                break
    return found


def middles(found: dict, order: list[str], die: dict) -> dict:
    """Each block of ``order`` that holds cells (``found``: :func:`block_of`'s map): the
    middle of its stretch of the snake (a tile), the stretches as long as the blocks'
    shares of their cells, in order."""
    weight = Counter(found.values())
    total = sum(weight.values())
    length = sum(die["columns"] * (y1 - y0) for y0, y1 in die["bands"])
    point, done = {}, 0
    for b in (b for b in order if weight[b]):
        point[b] = snake_point(die, (done + weight[b] / 2) / max(total, 1) * length)
        done += weight[b]
    return point


def snake_point(die: dict, u: float) -> tuple[float, float]:
    """The tile at position ``u`` along the snake (tiles of fabric before it: band by band,
    alternately left to right and right to left, a column of a band counting its height),
    on the middle row of its band."""
    width = die["columns"]
    for k, (y0, y1) in enumerate(die["bands"]):
        if u < width * (y1 - y0) or k == len(die["bands"]) - 1:
            column = min(u / (y1 - y0), width)
            return (width - column if k % 2 else column), (y0 + y1) / 2
        u -= width * (y1 - y0)
    raise ValueError("a die without bands")


def min_cost_assignment(cost: np.ndarray) -> list[int]:
    """For an ``n x m`` cost matrix (``n <= m``), the column of each row such that no
    column serves two rows and the total cost is least: the Hungarian method with row and
    column potentials (one shortest augmenting path per row, ``O(n^2 m)``), each step over
    all columns at once. Deterministic: the same matrix, the same answer."""
    n, m = cost.shape
    if n > m:
        raise ValueError(f"{n} rows, but only {m} columns")
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    match = np.zeros(m + 1, dtype=np.int64)  # match[j]: the row (from 1) column j serves
    way = np.zeros(m + 1, dtype=np.int64)  # the column before j on the path
    for i in range(1, n + 1):
        match[0], j0 = i, 0
        least = np.full(m + 1, np.inf)  # least reduced cost reaching each column
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            reduced = cost[match[j0] - 1] - u[match[j0]] - v[1:]
            better = ~used[1:] & (reduced < least[1:])
            least[1:][better] = reduced[better]
            way[1:][better] = j0
            open_ = np.where(used[1:], np.inf, least[1:])
            j1 = int(np.argmin(open_)) + 1
            delta = open_[j1 - 1]
            u[match[used]] += delta
            v[used] -= delta
            least[~used] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:  # the path back to the new row, each column taking its predecessor's row
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    rows = [0] * n
    for j in range(1, m + 1):
        if match[j]:
            rows[match[j] - 1] = j - 1
    return rows


def pin(netlist: dict, top: str, order: list[str], device: str) -> dict:
    """Give the hard cells of the blocks in ``order`` (instance paths) a ``BEL`` attribute
    each (see the module's docstring); returns counts: cells pinned per type, blocks
    placed."""
    die = SITES[DEVICES[device]]
    cells = netlist["modules"][top]["cells"]
    found = block_of(cells, order)
    point = middles(found, order, die)
    rank = {b: k for k, b in enumerate(order)}
    hard = defaultdict(list)
    bound = {c["attributes"]["BEL"] for c in cells.values() if "BEL" in c.get("attributes", {})}
    for name, b in found.items():
        if cells[name]["type"] in HARD and "BEL" not in cells[name].get("attributes", {}):
            hard[cells[name]["type"]].append((rank[b], name, b))
    counts = {"blocks": len(point)}
    for kind in HARD:
        # The sites not taken by a cell bound before (it keeps its own).
        free = [s for s in die[kind] if s[2] not in bound]
        wanted = sorted(hard[kind])
        if len(wanted) > len(free):
            n = len(free)
            raise ValueError(f"{len(wanted)} {kind} cells, but the part has {n} free sites")
        counts[kind] = len(wanted)
        if not wanted:
            continue
        to = np.array([point[b] for _, _, b in wanted])
        at = np.array([(x, y) for x, y, _ in free], dtype=float)
        # The distance (tiles, x plus y) from each cell's block's middle to each site,
        # squared: a few cells far away cost more than many a little off (on ``small``,
        # the farthest block RAM from its block 104 tiles with the plain distance, 59 so).
        cost = np.abs(to[:, None, :] - at[None, :, :]).sum(axis=2) ** 2
        for (_, name, _), k in zip(wanted, min_cost_assignment(cost), strict=True):
            cells[name].setdefault("attributes", {})["BEL"] = free[k][2]
    return counts


def _device(args) -> str | None:
    """nextpnr's device option among ``args`` (``--85k`` -> ``"85k"``, ``--um5g-45k`` ->
    ``"um5g-45k"``), or None."""
    return next((a[2:] for a in args if re.fullmatch(r"--(um5g-|um-)?\d+k", a)), None)


def main(argv=None) -> int:
    """``ORDER NEXTPNR ARGS...``: pin the hard cells of the ``--json`` netlist (rewritten
    whole, atomically), then run nextpnr with the same arguments."""
    from .ecp5_outreg import rewrite_then_run

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        raise SystemExit("usage: python -m generators.ecp5_floorplan ORDER NEXTPNR [ARGS...]")
    order_path, nextpnr = Path(argv[0]), argv[1:]
    device = _device(nextpnr[1:])

    def change(netlist, top):
        if device not in DEVICES:
            raise ValueError(f"no site table for {'--' + device if device else 'this part'}")
        spec = json.loads(order_path.read_text(encoding="utf-8"))
        counts = pin(netlist, top, spec["order"], device)
        # What was pinned, for the board flow's report (written before the netlist is).
        result = order_path.with_name(PINNED)
        result.write_text(json.dumps(counts, sort_keys=True) + "\n", encoding="utf-8")
        return counts

    def said(counts):
        return (
            f"{counts['DP16KD']} block RAMs and {counts['MULT18X18D']} DSP blocks of "
            f"{counts['blocks']} blocks pinned in stream order"
        )

    # Nothing pinned: nextpnr places the netlist as Yosys left it.
    rewrite_then_run("ecp5_floorplan", nextpnr, change, said, "nothing pinned")


if __name__ == "__main__":
    main()
