# amaranth: UnusedElaboratable=no
"""FrozenMatVec in Verilator: every output beat bit-exact against the golden model.

Designs are emitted as the backbone's parts are, by the block's own ``verilog`` text; one
case is also built from Amaranth's Verilog, so that both stay checked.
"""

import functools

import numpy as np
import pytest

from semifreddo_hw.verilog_text import frozen_matvec
from sim.errors import SimulationMismatch
from sim.golden.primitives import matvec
from sim.rtl import Lanes, VerilatorDesign
from tests.matvec_cases import frozen
from tests.rtl_helpers import int8_stimulus
from weights.synthetic import gaussian_int8


def _extremes(rng, n_out, n_in):
    return rng.choice([-128, 127, -127], size=(n_out, n_in))


def _with_zero_lines(rng, n_out, n_in):
    w = gaussian_int8(rng, n_out, n_in, 0.3)
    w[rng.integers(n_out)] = 0
    w[:, rng.integers(n_in)] = 0
    return w


# name: (weights maker, solver, adder levels per register stage, side-band bits)
CASES = {
    "1x1": (lambda r: np.array([[-128]]), "da4ml", 2, 0),
    "1x64": (lambda r: gaussian_int8(r, 1, 64), "da4ml", 1, 0),
    "64x1": (lambda r: gaussian_int8(r, 64, 1, 0.3), "da4ml", 2, 1),
    "5x3_extremes": (lambda r: _extremes(r, 5, 3), "da4ml", 2, 0),
    "16x16_zero_lines": (lambda r: _with_zero_lines(r, 16, 16), "da4ml", 3, 2),
    "13x7_csd": (lambda r: gaussian_int8(r, 13, 7, 0.5), "csd", 1, 3),
    "4x4_all_zero": (lambda r: np.zeros((4, 4), int), "da4ml", 2, 0),
    "64x64_z90": (lambda r: gaussian_int8(r, 64, 64, 0.9), "da4ml", 2, 0),
    "64x64_z50": (lambda r: gaussian_int8(r, 64, 64, 0.5), "da4ml", 3, 0),
    "64x64_dense": (lambda r: gaussian_int8(r, 64, 64), "da4ml", 2, 0),
    "24x20_deep": (lambda r: gaussian_int8(r, 24, 20, 0.1), "da4ml", 1, 1),
}


#: The case also built from Amaranth's Verilog.
AMARANTH_CASE = "16x16_zero_lines"


@pytest.fixture(scope="module")
def designs(rtl_build_dir):
    @functools.cache
    def get(name, emitter="text"):
        dut = frozen(name, CASES)  # weights seeded by the name: stable across runs
        w = dut.weights
        module = f"fmv_{name}_{emitter}"
        if emitter == "amaranth":
            return w, dut, VerilatorDesign.build(dut, module, rtl_build_dir)
        return (
            w,
            dut,
            VerilatorDesign.from_verilog(frozen_matvec(dut, module), module, rtl_build_dir),
        )

    return get


@pytest.mark.parametrize(
    "name, emitter", [(name, "text") for name in CASES] + [(AMARANTH_CASE, "amaranth")]
)
def test_frozen_matvec_bit_exact_under_stalls(designs, name, emitter):
    w, dut, design = designs(name, emitter)
    rng = np.random.default_rng(1)
    x = int8_stimulus(rng, 150, w.shape[1])
    y = matvec(w, x)
    side_bits = dut.side_width
    sides = rng.integers(0, 1 << side_bits, size=len(x)).tolist() if side_bits else None
    n_out, n_in = w.shape
    for k, (p_in, p_out) in enumerate([(0.3, 0.3), (0.7, 0.1), (0.1, 0.7)]):
        design.run_stream(
            x.tolist(),
            y.tolist(),
            in_sides=sides,
            out_sides=sides,
            in_lanes=Lanes(n_in, 8, side_width=side_bits),
            out_lanes=Lanes(n_out, dut.out_width, side_width=side_bits),
            in_stall=p_in,
            out_stall=p_out,
            seed=k,
            test_name=f"stall{k}",
        )


@pytest.mark.parametrize("name", ["1x1", "16x16_zero_lines", "64x64_dense"])
def test_frozen_matvec_one_beat_per_clock(designs, name):
    w, dut, design = designs(name)
    x = int8_stimulus(np.random.default_rng(2), 300, w.shape[1])
    stats = design.run_stream(
        x.tolist(),
        matvec(w, x).tolist(),
        in_lanes=Lanes(w.shape[1], 8),
        out_lanes=Lanes(w.shape[0], dut.out_width),
        in_stall=0,
        out_stall=0,
        test_name="throughput",
    )
    assert stats["first_output_cycle"] == dut.latency
    assert stats["cycles"] == len(x) + dut.latency


def test_a_wrong_expectation_fails(designs):
    """The harness itself can fail: one flipped expected bit must be reported by beat/lane."""
    w, dut, design = designs("16x16_zero_lines")
    x = int8_stimulus(np.random.default_rng(3), 20, w.shape[1])
    y = matvec(w, x)
    y[11, 5] ^= 1
    with pytest.raises(SimulationMismatch, match=r"output beat 11: 1 of 16 lanes differ; lane 5"):
        design.run_stream(
            x.tolist(),
            y.tolist(),
            in_lanes=Lanes(16, 8, side_width=2),
            out_lanes=Lanes(16, dut.out_width, side_width=2),
            test_name="negative",
        )
