"""The layer order of docs/architecture.md and the style rules, as CI checks them: the
import contracts hold (and catch a wrong import), ruff finds nothing, and the code is
formatted."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PACKAGES = ("spec", "common", "sim", "weights", "semifreddo_hw", "generators")


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache", "--no-logo"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": str(BIN), "PYTHONPATH": str(root)},
    )


def test_import_contracts_hold():
    r = _lint_imports(REPO)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize(
    "module, line, contract",
    [
        ("sim/golden/layers.py", "import amaranth", "sim.golden is not allowed to import amaranth"),
        (
            "semifreddo_hw/conv.py",
            "from sim.golden import layers",
            "semifreddo_hw is not allowed to import sim",
        ),
        ("spec/network.py", "import weights.files", "spec is not allowed to import weights"),
        (
            "weights/files.py",
            "import generators.build",
            "weights is not allowed to import generators",
        ),
    ],
)
def test_a_wrong_import_breaks_a_contract(tmp_path, module, line, contract):
    """A copy of the packages with one import that goes the wrong way."""
    for package in PACKAGES:
        shutil.copytree(
            REPO / package,
            tmp_path / package,
            ignore=shutil.ignore_patterns("__pycache__", "examples"),
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    path = tmp_path / module
    path.write_text(f"{line}  # noqa\n" + path.read_text())
    r = _lint_imports(tmp_path)
    assert r.returncode != 0 and "BROKEN" in r.stdout.upper() and contract in r.stdout, (
        r.stdout + r.stderr
    )


def test_ruff_finds_nothing():
    r = subprocess.run(
        [str(BIN / "ruff"), "check", "--no-cache", "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_code_is_formatted():
    r = subprocess.run(
        [str(BIN / "ruff"), "format", "--check", "--no-cache", "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
