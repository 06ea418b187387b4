"""Move block RAM read registers into the block RAM: a netlist pass between Yosys and nextpnr
for the ECP5.

An ECP5 block RAM (``DP16KD``) gives its read data 5.8 ns after the clock (nextpnr's timing
model, speed grade 6) unless its own output register is used (``REGMODE_A``/``REGMODE_B`` =
``OUTREG``). The design registers each memory read it cares about in the fabric, to split that
delay from what follows, but Yosys never uses the block's output register: the register stays
a flip-flop beside the block (several thousand on the ``small`` preset, ``docs/bringup.md``).
This pass finds, in Yosys's JSON netlist, each read port whose every used data bit drives one
flip-flop and nothing else, and moves those flip-flops into the block: the port's output
register takes over (the flip-flops' clock enable becomes the port's ``OCE``, inverted by
its ``OCE`` mux where theirs was) and the
flip-flops' outputs are driven by the block. Only flip-flops without a reset qualify (the
block's reset pin is shared with its read latch), on the port's clock, not inverted, with
the same enable; anything else is left as it is. In the 36-bit (pseudo dual port) mode the
read port is port B and its data comes out on both ``DOA`` and ``DOB``: all 36 bits move
together and both ``REGMODE`` parameters are set, as nextpnr does for ``PDPW16KD``.

The cycle-level behaviour is the same: the output register takes the read latch's value on
the clock edges where the flip-flops did. Used by ``generators.board`` as a wrapper around
nextpnr (``python -m generators.ecp5_outreg NEXTPNR ARGS...`` rewrites the ``--json`` file in
place, then runs ``NEXTPNR ARGS...``); run twice, it finds nothing more to move.
"""

import collections
import json
import os
import sys
from pathlib import Path

#: Read ports of a ``DP16KD``: (data pins, clock, clock's mux parameter, output enable, reset
#: pins, ``REGMODE`` parameters). True dual port: A and B; 36-bit mode: one, port B's.
_DP = (
    ([f"DOA{k}" for k in range(18)], "CLKA", "CLKAMUX", "OCEA", ("RSTA",), ("REGMODE_A",)),
    ([f"DOB{k}" for k in range(18)], "CLKB", "CLKBMUX", "OCEB", ("RSTB",), ("REGMODE_B",)),
)
_PDP = (
    (
        [f"DOA{k}" for k in range(18)] + [f"DOB{k}" for k in range(18)],
        "CLKB",
        "CLKBMUX",
        "OCEB",
        ("RSTA", "RSTB"),
        ("REGMODE_A", "REGMODE_B"),
    ),
)


def _param(cell, name, default=None):
    """A cell parameter as Yosys writes it (strings of bits for integers) -> int or str."""
    v = cell["parameters"].get(name, default)
    if isinstance(v, str) and v and set(v) <= {"0", "1"} and len(v) >= 8:
        return int(v, 2)
    return v.strip() if isinstance(v, str) else v


def _sinks(module) -> dict:
    """Net bit -> the (cell, port) inputs it drives; a module output counts as a sink."""
    sinks = collections.defaultdict(list)
    for name, cell in module["cells"].items():
        dirs = cell.get("port_directions", {})
        for port, bits in cell["connections"].items():
            if dirs.get(port) != "output":
                for b in bits:
                    if isinstance(b, int):
                        sinks[b].append((name, port))
    for port, info in module["ports"].items():
        if info["direction"] != "input":
            for b in info["bits"]:
                if isinstance(b, int):
                    sinks[b].append(("", port))
    return sinks


def _register(cells, sinks, bit, clock):
    """The flip-flop ``bit`` drives, alone, that the block's output register can replace:
    (name, (enable, inverted)), the enable a net bit or ``"1"`` (``inverted`` None); None if
    there is none."""
    loads = sinks.get(bit, [])
    if len(loads) != 1 or loads[0][1] != "DI":
        return None
    name = loads[0][0]
    ff = cells.get(name)
    if ff is None or ff["type"] != "TRELLIS_FF":
        return None
    con = ff["connections"]
    if (
        con.get("CLK") != [clock]
        or _param(ff, "CLKMUX", "CLK") != "CLK"
        or _param(ff, "GSR", "DISABLED") != "DISABLED"
        or _param(ff, "REGSET", "RESET") != "RESET"
        or _param(ff, "LSRMUX", "LSR") != "LSR"
        or con.get("LSR", ["0"]) != ["0"]
        or con.get("M", ["x"]) not in (["x"], ["0"], ["z"])
    ):
        return None
    cemux = _param(ff, "CEMUX", "1")
    ce = con.get("CE", [])
    if cemux in ("CE", "INV") and len(ce) == 1 and isinstance(ce[0], int):
        return name, (ce[0], cemux == "INV")
    # A constant enable, through the mux or on the pin (nextpnr drops a block RAM's mux
    # inversion for a constant pin, so it is resolved here): only always-on is taken.
    on = cemux == "1" or (
        cemux in ("CE", "INV") and ce in (["1"], ["0"]) and ((ce == ["1"]) != (cemux == "INV"))
    )
    return (name, ("1", None)) if on else None


def absorb(netlist: dict, top: str = "top") -> dict:
    """Move the qualifying read registers of every ``DP16KD`` of ``netlist[top]`` into the
    block (in place). Returns counts: ``ports`` changed, ``flip_flops`` moved."""
    module = netlist["modules"][top]
    cells = module["cells"]
    sinks = _sinks(module)
    moved_ports = moved_ffs = 0
    for name in sorted(n for n, c in cells.items() if c["type"] == "DP16KD"):
        ram = cells[name]
        con = ram["connections"]
        if _param(ram, "GSR", "DISABLED") != "DISABLED":
            continue  # the global reset would reach the output register
        pdp = _param(ram, "DATA_WIDTH_A", 18) == 36
        if pdp and (con.get("CLKA") != con.get("CLKB") or _param(ram, "CLKAMUX", "CLKA") != "CLKA"):
            continue  # both halves' output registers on the read clock, below
        ports = _PDP if pdp else _DP
        for pins, clk, clkmux, oce, rsts, regmodes in ports:
            if any(_param(ram, r, "NOREG") != "NOREG" for r in regmodes):
                continue
            if any(con.get(r, ["0"]) != ["0"] for r in rsts):
                continue
            if _param(ram, clkmux, clk) != clk or len(con.get(clk, [])) != 1:
                continue
            clock = con[clk][0]
            found, ok = [], True
            for pin in pins:
                bits = con.get(pin, [])
                if len(bits) != 1 or not isinstance(bits[0], int) or not sinks.get(bits[0]):
                    continue  # unused data bit
                reg = _register(cells, sinks, bits[0], clock)
                if reg is None:
                    ok = False
                    break
                found.append((pin, *reg))
            if not ok or not found or len({enable for _, _, enable in found}) != 1:
                continue
            for pin, ff_name, _ in found:
                con[pin] = list(cells[ff_name]["connections"]["Q"])
                del cells[ff_name]
            enable, inverted = found[0][2]
            # 36 bits: port B's OCE is the read port's; port A's is given the same, in case
            # the half on DOA follows it (Yosys ties it to 0 there).
            for pin in ("OCEA", "OCEB") if pdp else (oce,):
                con[pin] = [enable]
                if inverted is not None:  # the block's mux inverts as the flip-flops' did
                    ram["parameters"][f"{pin}MUX"] = "INV" if inverted else pin
            for r in regmodes:
                ram["parameters"][r] = "OUTREG"
            moved_ports += 1
            moved_ffs += len(found)
    return {"ports": moved_ports, "flip_flops": moved_ffs}


def _json_path(args, pass_name: str = "ecp5_outreg") -> Path:
    for k, a in enumerate(args):
        if a == "--json" and k + 1 < len(args):
            return Path(args[k + 1])
        if a.startswith("--json="):
            return Path(a.split("=", 1)[1])
    raise SystemExit(f"{pass_name}: no --json NETLIST among nextpnr's arguments")


def main(argv=None) -> int:
    """``NEXTPNR ARGS...``: absorb in the ``--json`` netlist (rewritten whole, atomically),
    then run nextpnr with the same arguments and return its status."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        raise SystemExit("usage: python -m generators.ecp5_outreg NEXTPNR [ARGS...]")

    def said(counts):
        moved, ports = counts["flip_flops"], counts["ports"]
        return f"{moved} flip-flops moved into {ports} block RAM read ports"

    rewrite_then_run("ecp5_outreg", argv, absorb, said, "nothing moved")


def rewrite_then_run(pass_name: str, argv, change, said, unchanged: str) -> None:
    """Rewrite the ``--json`` netlist among nextpnr's ``argv[1:]`` with ``change(netlist,
    top)`` (whole, atomically) and print ``said`` of its result, then run ``argv`` (it
    replaces this process). A netlist that cannot be read or changed goes to nextpnr as it
    was, with a line saying why (``unchanged``): nextpnr says what is wrong with it, if
    anything."""
    path = _json_path(argv[1:], pass_name)
    try:
        netlist = json.loads(path.read_text(encoding="utf-8"))
        result = change(netlist, _top(netlist))
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"{pass_name}: {path}: {e}; {unchanged}", file=sys.stderr)
    else:
        tmp = path.with_name(f"{path.name}.{pass_name}")
        tmp.write_text(json.dumps(netlist), encoding="utf-8")
        os.replace(tmp, path)
        print(f"{pass_name}: {said(result)}", file=sys.stderr)
        del netlist  # (the exec below frees it anyway)
    sys.stderr.flush()
    os.execvp(argv[0], argv)


def _top(netlist: dict) -> str:
    """The netlist's top module: the one Yosys marks ``top``, else the only one."""
    modules = netlist["modules"]
    tops = [
        n for n, m in modules.items() if str(m.get("attributes", {}).get("top", "0")).strip("0")
    ]
    if len(tops) == 1:
        return tops[0]
    if len(modules) == 1:
        return next(iter(modules))
    raise KeyError("no single top module")


if __name__ == "__main__":
    sys.exit(main())
