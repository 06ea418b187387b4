"""Counting what a component is built of, in its RTLIL netlist (Amaranth's own, before any
synthesis): cells by type, named registers, memory bits. Tests compare these counts with
the plan estimates the components report."""

import collections
import re

from amaranth.back import rtlil

from semifreddo_hw.ports import ports_of

__all__ = ["netlist", "rtlil_cells", "adder_cells", "registers", "memory_bits"]

_CELL = re.compile(r"^\s*cell \\?(\$\w+) \S+\n(.*?)^\s*end$", re.M | re.S)


def netlist(dut, platform=None) -> str:
    return rtlil.convert(dut, platform=platform, ports=ports_of(dut), emit_src=False)


def rtlil_cells(dut, platform=None) -> dict:
    """Cell type -> [count, total WIDTH parameter] in the component's netlist (elaborated
    for ``platform``)."""
    cells = collections.defaultdict(lambda: [0, 0])
    for kind, body in _CELL.findall(netlist(dut, platform)):
        cells[kind][0] += 1
        width = re.search(r"parameter \\WIDTH (\d+)", body)
        cells[kind][1] += int(width.group(1)) if width else 0
    return cells


def adder_cells(cells) -> int:
    return sum(cells[k][0] for k in ("$add", "$sub", "$neg"))


def registers(dut) -> list[tuple[str, int]]:
    """(name of the register's output wire, width) of every ``$dff`` cell."""
    out = []
    for kind, body in _CELL.findall(netlist(dut)):
        if kind == "$dff":
            width = int(re.search(r"parameter \\WIDTH (\d+)", body).group(1))
            out.append((re.search(r"connect \\Q (\S+)", body).group(1).lstrip("\\"), width))
    return out


def memory_bits(dut) -> int:
    """Bits of every memory (``memory width W size N``) in the component's netlist."""
    return sum(
        int(w) * int(n)
        for w, n in re.findall(r"^\s*memory width (\d+) size (\d+) ", netlist(dut), re.M)
    )
