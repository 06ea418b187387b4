"""Where a board build's logic is: the LUTs of a synthesized netlist (Yosys's ``top.json``,
as ``python -m generators.board --tool-dir DIR`` leaves it) in LUT4 equivalents (a
``LUT4`` one, a ``CCU2C`` carry cell two, a ``TRELLIS_DPR16X4`` LUT RAM cell four: the four
LUTs nextpnr packs it into; the slice of write logic beside them is not counted), counted
by the backbone block and the kind of component they sit in, as ``bench/netlist_ffs.py``
names them. Every figure is in LUT4 equivalents, ``by_type`` too (not cells).

    python -m generators.board --board ulx3s-85f --freeze F --trainable T --fps 8000 \\
        --out OUT --tool-dir TOOLS
    python bench/netlist_logic.py --netlist TOOLS/top.json --json FILE

A design that routes slowly at a high LUT utilisation needs to know what to thin; this
says which components hold the logic. Seconds.
"""

import collections
import sys

from netlist_ffs import netlist_command, place, tables

#: LUT4 equivalents of each logic cell type.
WEIGHTS = {"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 4}


def count(netlist: dict, top: str = "top") -> dict:
    """The logic cells of module ``top`` in LUT4 equivalents (:data:`WEIGHTS`): in all,
    outside the backbone, per cell type, per backbone block and per component kind (the
    kind's last part: window, product, requant, ...; a memory's cells by the memory's
    name, ``lines.#``)."""
    cells = netlist["modules"][top]["cells"]
    types, blocks, parts = (collections.Counter() for _ in range(3))
    total = outside = 0
    for name, cell in cells.items():
        weight = WEIGHTS.get(cell["type"], 0)
        if not weight:
            continue
        total += weight
        types[cell["type"]] += weight
        where = place(name)
        if where is None:
            outside += weight
            continue
        block, kind, _ = where
        blocks[block] += weight
        path = kind.split(".")
        # a memory's cells (``lines.#``) keep their memory's name
        parts[".".join(path[-2:]) if path[-1] == "#" else path[-1]] += weight
    return {
        "lut4_equivalents": total,
        "outside_backbone": outside,
        "by_type": dict(types.most_common()),
        "by_block": dict(blocks.most_common()),
        "by_part": dict(parts.most_common()),
    }


def table(result: dict, rows: int) -> str:
    total = result["lut4_equivalents"]
    out = [f"LUT4 equivalents: {total:,} ({result['outside_backbone']:,} outside the backbone)"]
    sections = (("by_type", "cell type"), ("by_part", "part"), ("by_block", "block"))
    return "\n".join(out + tables(result, sections, rows, "LUT4 eq", total))


def main(argv=None) -> int:
    return netlist_command("netlist_logic", __doc__, count, table, argv, rows=20)


if __name__ == "__main__":
    sys.exit(main())
