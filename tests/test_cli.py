"""The build CLI on the shipped example: it builds, is deterministic, refuses bad input
cleanly, and what it writes simulates bit-exactly."""

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sim.golden.primitives import matvec
from sim.rtl import Lanes, VerilatorDesign
from tests.cli_helpers import run_module
from tests.rtl_helpers import int8_stimulus

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "weights" / "examples" / "frozen_pointwise.npz"


def run_cli(*args, cwd=REPO):
    return run_module("generators.build", *args, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def example_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "example"
    r = run_cli("--freeze", EXAMPLE, "--out", out)
    assert r.returncode == 0, r.stderr
    return out


def test_example_builds_with_report(example_build):
    names = sorted(p.name for p in example_build.iterdir())
    assert names == [
        ".semifreddo-build",
        "report.json",
        "report.md",
        "semifreddo_stage1_proj.v",
        "semifreddo_stage1_pw.v",
        "timing.json",
    ]
    rep = json.loads((example_build / "report.json").read_text())
    assert [r["layer"] for r in rep["layers"]] == ["stage1_proj", "stage1_pw"]
    assert rep["total"]["multipliers"] == 0 and rep["total"]["adders"] > 0


def test_builds_are_byte_identical(example_build, tmp_path):
    again = tmp_path / "again"
    assert run_cli("--freeze", EXAMPLE, "--out", again, "--quiet").returncode == 0
    for p in example_build.iterdir():
        if p.name != "timing.json":  # the build's own timings differ run to run
            assert (again / p.name).read_bytes() == p.read_bytes(), p.name


def test_emitted_verilog_is_bit_exact(example_build, tmp_path):
    with np.load(EXAMPLE) as f:
        w = f["stage1_proj.weight"].astype(np.int64)
    name = "semifreddo_stage1_proj"
    design = VerilatorDesign.from_verilog((example_build / f"{name}.v").read_text(), name, tmp_path)
    x = int8_stimulus(np.random.default_rng(0), 100, w.shape[1])
    y = matvec(w, x)
    rep = json.loads((example_build / "report.json").read_text())
    width = rep["layers"][0]["out_width"]
    design.run_stream(
        x.tolist(), y.tolist(), in_lanes=Lanes(w.shape[1], 8), out_lanes=Lanes(w.shape[0], width)
    )


def _save(path, **arrays):
    np.savez(path, **arrays)
    return path


def _good(**extra):
    base = {
        "format": np.array("semifreddo-frozen"),
        "version": np.array(1),
        "a.weight": np.ones((3, 4), np.int8),
    }
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def bad_files(tmp):
    yield "no such file", tmp / "missing.npz"
    (tmp / "text.npz").write_text("hello")
    yield "not a readable .npz", tmp / "text.npz"
    good = _save(tmp / "good.npz", **_good())
    (tmp / "trunc.npz").write_bytes(good.read_bytes()[:100])
    yield "not a readable .npz", tmp / "trunc.npz"
    yield (
        "holds Python objects",
        _save(tmp / "pickle.npz", **_good(**{"a.weight": np.array([{"x": 1}], dtype=object)})),
    )
    yield "dtype float", _save(tmp / "float.npz", **_good(**{"a.weight": np.ones((3, 4))}))
    yield (
        r"a.weight\[1, 2\] = 128 is outside",
        _save(
            tmp / "range.npz",
            **_good(**{"a.weight": np.where(np.arange(12).reshape(3, 4) == 6, 128, 0)}),
        ),
    )
    yield (
        "has shape \\(3, 4, 2\\)",
        _save(tmp / "shape.npz", **_good(**{"a.weight": np.ones((3, 4, 2), np.int8)})),
    )
    yield "'format' must be", _save(tmp / "fmt.npz", **_good(format=np.array("other")))
    yield "version 7 is not supported", _save(tmp / "ver.npz", **_good(version=np.array(7)))
    yield (
        "unexpected entry 'a.bias'",
        _save(tmp / "extra.npz", **_good(**{"a.bias": np.zeros(3, np.int32)})),
    )
    yield "no '<layer>.weight'", _save(tmp / "empty.npz", **_good(**{"a.weight": None}))
    with zipfile.ZipFile(tmp / "evil.npz", "w") as z:
        z.writestr("../evil.npy", good.read_bytes())
    yield "not a valid name|not a readable", tmp / "evil.npz"
    with zipfile.ZipFile(tmp / "raw.npz", "w") as z:
        z.writestr("format", b"semifreddo-frozen")
    yield "'format' is not a NumPy array", tmp / "raw.npz"
    yield (
        "differ only in case",
        _save(tmp / "case.npz", **_good(**{"A.weight": np.ones((3, 4), np.int8)})),
    )


def test_bad_input_exits_2_with_one_line_and_no_output(tmp_path):
    cases = list(bad_files(tmp_path))
    assert len(cases) >= 14
    for expect, path in cases:
        out = tmp_path / f"out_{path.stem}"
        r = run_cli("--freeze", path, "--out", out, "--quiet")
        assert r.returncode == 2, (path.name, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (path.name, r.stderr)
        assert re.search(expect, lines[0]), (path.name, lines[0])
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out_")]


def test_out_never_replaces_what_it_did_not_write(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    r = run_cli("--freeze", EXAMPLE, "--out", precious, "--quiet")
    assert r.returncode == 2 and "refusing to replace it" in r.stderr
    assert (precious / "notes.txt").read_text() == "keep me"
    afile = tmp_path / "afile"
    afile.write_text("keep me too")
    r = run_cli("--freeze", EXAMPLE, "--out", afile, "--quiet")
    assert r.returncode == 2 and "not a directory" in r.stderr
    assert afile.read_text() == "keep me too"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "precious"]


def test_rebuild_replaces_an_earlier_build(tmp_path):
    out = tmp_path / "o"
    for _ in range(2):
        assert run_cli("--freeze", EXAMPLE, "--out", out, "--quiet").returncode == 0
    assert (out / "report.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_bad_arguments_exit_2(tmp_path):
    r = run_cli("--freeze", EXAMPLE, "--out", tmp_path / "o", "--top", "9bad")
    assert r.returncode == 2 and "not a Verilog identifier" in r.stderr
    assert run_cli("--out", tmp_path / "o").returncode == 2  # --freeze missing
