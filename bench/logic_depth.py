"""Where a board build's long logic is: the deepest chains of LUTs between registers in a
synthesized ECP5 netlist (Yosys's ``top.json``, as ``python -m generators.board --tool-dir
DIR`` leaves it), and the nets with the most loads, by the backbone block and component
kind they belong to (``bench/netlist_ffs.py``'s names).

    python bench/logic_depth.py --netlist TOOLS/top.json --json FILE

Depth counts cells, not nanoseconds: a LUT4 is one level, a CCU2C a quarter (a carry
cell's hop), a LUT RAM read one and a half; nextpnr prints no critical path before
routing, and this needs no placement. Seconds.
"""

import collections
import sys

from netlist_ffs import netlist_command, place, tables

#: Combinational cells and the levels each adds.
LEVELS = {"LUT4": 1.0, "CCU2C": 0.25, "TRELLIS_DPR16X4": 1.5, "PFUMX": 0.25, "L6MUX21": 0.25}
#: A LUT RAM's inputs that reach its data output in the same cycle (its read address).
_ASYNC_RAM_INPUTS = ("RAD0", "RAD1", "RAD2", "RAD3")


def _where(name: str) -> str:
    """A cell's block and component kind, or outside the backbone its first two names."""
    hit = place(name)
    if hit is None:
        return ".".join(name.lstrip("\\$").split("_TRELLIS")[0].split(".")[:2])
    return f"{hit[0]}.{hit[1]}"


def count(netlist: dict, top: str = "top", deepest: int = 40) -> dict:
    """The ``deepest`` register-to-register chains (grouped by where they start and end,
    the deepest of each group) and the 40 nets with the most loads."""
    cells = netlist["modules"][top]["cells"]
    driver, loads = {}, collections.Counter()
    for name, cell in cells.items():
        dirs = cell.get("port_directions", {})
        for port, bits in cell["connections"].items():
            for bit in bits:
                if not isinstance(bit, int):
                    continue
                if dirs.get(port) == "output":
                    driver[bit] = name
                else:
                    loads[bit] += 1

    def comb_inputs(name):
        cell = cells[name]
        dirs = cell.get("port_directions", {})
        for port, bits in cell["connections"].items():
            if dirs.get(port) != "input":
                continue
            if cell["type"] == "TRELLIS_DPR16X4" and port not in _ASYNC_RAM_INPUTS:
                continue
            for bit in bits:
                src = driver.get(bit) if isinstance(bit, int) else None
                if src is not None and cells[src]["type"] in LEVELS:
                    yield src

    def first_register(name):
        """The sequential cell (else the cell itself) driving a chain's first cell."""
        cell = cells[name]
        dirs = cell.get("port_directions", {})
        for port, bits in sorted(cell["connections"].items()):
            if dirs.get(port) == "input":
                for bit in bits:
                    src = driver.get(bit) if isinstance(bit, int) else None
                    if src is not None and cells[src]["type"] not in LEVELS:
                        return src
        return name

    # Longest path to each combinational cell's output, from a register (iteratively:
    # chains are thousands of cells long at most, but recursion would be deep).
    depth, start = {}, {}
    for root in (n for n, c in cells.items() if c["type"] in LEVELS):
        stack, open_ = [root], {root}
        while stack:
            name = stack[-1]
            todo = [s for s in comb_inputs(name) if s not in depth and s not in open_]
            if todo:
                stack.extend(todo)
                open_.update(todo)
                continue
            stack.pop()
            open_.discard(name)
            if name in depth:
                continue
            best = max((s for s in comb_inputs(name) if s in depth), key=depth.get, default=None)
            depth[name] = LEVELS[cells[name]["type"]] + (depth[best] if best else 0)
            start[name] = start[best] if best else first_register(name)
    groups = {}
    for name, cell in cells.items():
        if cell["type"] in LEVELS:
            continue
        for src in set(comb_inputs(name)):
            key = f"{_where(start[src])} -> {_where(name)}"
            if depth[src] > groups.get(key, 0):
                groups[key] = depth[src]
    ranked = sorted(groups.items(), key=lambda kv: (-kv[1], kv[0]))[:deepest]
    names = {}  # a net bit's shortest name, with its index in a wider net
    for name, net in netlist["modules"][top].get("netnames", {}).items():
        bits = net["bits"]
        for k, bit in enumerate(bits):
            label = f"{name}[{k}]" if len(bits) > 1 else name
            if isinstance(bit, int) and (bit not in names or len(label) < len(names[bit])):
                names[bit] = label
    fanout = sorted(loads.items(), key=lambda kv: (-kv[1], kv[0]))[:40]
    return {
        "deepest_levels": ranked[0][1] if ranked else 0,
        "deepest": dict(ranked),
        "most_loads": {names.get(bit, str(bit)): n for bit, n in fanout},
    }


def table(result: dict, rows: int) -> str:
    out = [f"deepest logic between registers: {result['deepest_levels']} levels"]
    sections = (("deepest", "from -> to (levels)"), ("most_loads", "net (loads)"))
    return "\n".join(out + tables(result, sections, rows, "", 0, width=90))


def main(argv=None) -> int:
    return netlist_command("logic_depth", __doc__, count, table, argv, rows=15)


if __name__ == "__main__":
    sys.exit(main())
