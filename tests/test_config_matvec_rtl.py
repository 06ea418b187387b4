"""ConfigurableMatVec in Verilator: SRAM weights, initial image and run-time writes."""

import functools

import numpy as np
import pytest

from semifreddo_hw.matvec import ConfigurableMatVec
from sim.golden.primitives import matvec
from sim.rtl import Lanes, VerilatorDesign
from tests.rtl_helpers import int8_stimulus, writes_for


@pytest.fixture(scope="module")
def designs(rtl_build_dir):
    @functools.cache
    def get(n_out, n_in, levels=2, side=0):
        rng = np.random.default_rng(n_out * 1000 + n_in)
        init = rng.integers(-128, 128, size=(n_out, n_in))
        dut = ConfigurableMatVec(n_in, n_out, init=init, levels_per_stage=levels,
                                 side_width=side)
        design = VerilatorDesign.build(dut, f"cmv_{n_out}x{n_in}_l{levels}", rtl_build_dir)
        return init, dut, design
    return get


def _run(design, dut, w, x, writes=(), seed=0, name="t", stalls=(0.3, 0.3)):
    n_out, n_in = w.shape
    sides = None
    if dut.side_width:
        sides = np.random.default_rng(seed).integers(0, 1 << dut.side_width, len(x)).tolist()
    return design.run_stream(x.tolist(), matvec(w, x).tolist(), writes=writes,
                             in_sides=sides, out_sides=sides,
                             in_lanes=Lanes(n_in, 8, side_width=dut.side_width),
                             out_lanes=Lanes(n_out, dut.out_width, side_width=dut.side_width),
                             in_stall=stalls[0], out_stall=stalls[1], seed=seed, test_name=name)


@pytest.mark.parametrize("shape", [(1, 1), (9, 13), (64, 64)])
def test_initial_image_then_written_weights(designs, shape):
    init, dut, design = designs(*shape, side=2 if shape == (9, 13) else 0)
    rng = np.random.default_rng(5)
    x = int8_stimulus(rng, 120, shape[1])
    _run(design, dut, init, x, name="init")
    # Load a new matrix through the write port, zeros and extremes included.
    w = rng.integers(-128, 128, size=shape)
    w[rng.random(shape) < 0.3] = 0
    w.flat[0] = -128
    _run(design, dut, w, x, writes=writes_for(dut, "write", w), seed=1, name="written")


def test_extremes_and_partial_writes(designs):
    init, dut, design = designs(9, 13, side=2)
    x = np.full((30, 13), -128)
    x[1::2] = 127
    w = np.full((9, 13), -128)  # -128 * -128 summed 13 times: the top of the range
    _run(design, dut, w, x, writes=writes_for(dut, "write", w), name="extreme")
    # A few single writes, one out of range (ignored), over the initial image.
    w = init.copy()
    writes = []
    layout_writes = writes_for(dut, "write", np.arange(9 * 13 + 1) % 256 - 128)
    for k in (0, 17, 9 * 13 - 1):
        w.flat[k] = (k % 256) - 128
        writes.append(layout_writes[k])
    writes.append(layout_writes[9 * 13])  # index == count: must not write anything
    _run(design, dut, w, int8_stimulus(np.random.default_rng(2), 40, 13), writes=writes,
         name="partial")


def test_deep_tree_one_beat_per_clock(designs):
    init, dut, design = designs(5, 30, levels=1)
    x = int8_stimulus(np.random.default_rng(3), 200, 30)
    _run(design, dut, init, x, stalls=(0.5, 0.5), name="stalls")
    stats = _run(design, dut, init, x, stalls=(0, 0), name="throughput")
    assert stats["cycles"] == len(x) + dut.latency
