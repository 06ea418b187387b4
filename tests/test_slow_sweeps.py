"""Long sweeps, deselected by default: run with ``pytest -m slow``."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from semifreddo_hw.matvec import FrozenMatVec
from sim.golden.primitives import matvec
from sim.pysim import run_stream_pysim
from sim.rtl import Lanes, VerilatorDesign
from tests.rtl_helpers import int8_stimulus
from weights.synthetic import gaussian_int8, trained_like_int8

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("zeros", [0.0, 0.5])
def test_frozen_128x128_in_verilator(rtl_build_dir, zeros):
    """The largest pointwise layer of the paper network (one solve takes about a minute)."""
    w = gaussian_int8(np.random.default_rng(128), 128, 128, zeros)
    dut = FrozenMatVec(w)
    design = VerilatorDesign.build(dut, f"fmv128_z{int(zeros * 100)}", rtl_build_dir)
    x = int8_stimulus(np.random.default_rng(0), 200, 128)
    design.run_stream(
        x.tolist(),
        matvec(w, x).tolist(),
        in_lanes=Lanes(128, 8),
        out_lanes=Lanes(128, dut.out_width),
    )


@pytest.mark.parametrize("seed", range(200))
def test_frozen_matvec_long_random_sweep(seed):
    rng = np.random.default_rng(10_000 + seed)
    n_out, n_in = (int(v) for v in rng.integers(1, 33, size=2))
    w = trained_like_int8(rng, n_out, n_in, float(rng.uniform(0, 0.9)))
    dut = FrozenMatVec(
        w, solver=["csd", "da4ml"][seed % 2], levels_per_stage=int(rng.integers(1, 6))
    )
    x = int8_stimulus(rng, 30, n_in)
    run_stream_pysim(
        dut, x, matvec(w, x), seed=seed, in_stall=rng.uniform(0, 0.9), out_stall=rng.uniform(0, 0.9)
    )


def test_paper_preset_elaborates_to_verilog(tmp_path):
    """The paper network (Table 1, 640x480x3) plans, builds and emits (260 s on two cores
    with an empty plan cache in ``bench/scale_paper.json``; ``bench/scale.py`` times it)."""
    out = tmp_path / "scale.json"
    r = subprocess.run(
        [
            sys.executable,
            "bench/scale.py",
            "--preset",
            "paper",
            "--modes",
            "cold",
            "--json",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    (run,) = json.loads(out.read_text())["runs"]
    assert run["frozen_weights"] == 137152 and run["configurable_weights"] == 2 * 52576
    assert run["multipliers"] == run["configurable_weights"] and run["verilog_lines"] > 0
