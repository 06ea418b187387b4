# amaranth: UnusedElaboratable=no
"""ConfigurableMatVec in Verilator: SRAM weights, initial image, run-time writes, weight sets.

Designs are emitted as the backbone's parts are, as text (``semifreddo_hw.verilog_text``); the
9x13 block with three weight sets is also built from Amaranth's Verilog, so that both stay
checked (and the expectations below are Amaranth's behaviour, not just the text's).
"""

import functools

import numpy as np
import pytest

from semifreddo_hw.matvec import ConfigurableMatVec
from semifreddo_hw.verilog_text import configurable_matvec
from sim.golden.primitives import matvec
from sim.rtl import Lanes, VerilatorDesign
from tests.rtl_helpers import int8_stimulus, writes_for


@pytest.fixture(scope="module")
def designs(rtl_build_dir):
    @functools.cache
    def get(n_out, n_in, levels=2, side=0, sets=1, emitter="text"):
        """Power-up images (``sets`` matrices), the block and its Verilator build."""
        rng = np.random.default_rng(n_out * 1000 + n_in)
        images = rng.integers(-128, 128, size=(sets, n_out, n_in))
        dut = ConfigurableMatVec(
            n_in, n_out, init=images, sets=sets, levels_per_stage=levels, side_width=side
        )
        module = f"cmv_{n_out}x{n_in}_l{levels}_s{sets}_{emitter}"
        if emitter == "amaranth":
            design = VerilatorDesign.build(dut, module, rtl_build_dir)
        else:
            design = VerilatorDesign.from_verilog(
                configurable_matvec(dut, module), module, rtl_build_dir
            )
        return images, dut, design

    return get


def _run(design, dut, w, x, writes=(), seed=0, name="t", stalls=(0.3, 0.3), select=None):
    n_out, n_in = w.shape
    sides = None
    if dut.side_width:
        sides = np.random.default_rng(seed).integers(0, 1 << dut.side_width, len(x)).tolist()
    return design.run_stream(
        x.tolist(),
        matvec(w, x).tolist(),
        writes=writes,
        statics=[] if select is None else [("select", select)],
        in_sides=sides,
        out_sides=sides,
        in_lanes=Lanes(n_in, 8, side_width=dut.side_width),
        out_lanes=Lanes(n_out, dut.out_width, side_width=dut.side_width),
        in_stall=stalls[0],
        out_stall=stalls[1],
        seed=seed,
        test_name=name,
    )


#: The 9x13 block: side bits and three weight sets, built by both emitters.
SETS_BLOCK = {"side": 2, "sets": 3}


@pytest.mark.parametrize(
    "shape, emitter",
    [((1, 1), "text"), ((9, 13), "text"), ((64, 64), "text"), ((9, 13), "amaranth")],
)
def test_initial_image_then_written_weights(designs, shape, emitter):
    images, dut, design = designs(
        *shape, **(SETS_BLOCK if shape == (9, 13) else {}), emitter=emitter
    )
    rng = np.random.default_rng(5)
    x = int8_stimulus(rng, 120, shape[1])
    _run(design, dut, images[0], x, name="init")
    # Load a new matrix through the write port, zeros and extremes included.
    w = rng.integers(-128, 128, size=shape)
    w[rng.random(shape) < 0.3] = 0
    w.flat[0] = -128
    _run(design, dut, w, x, writes=writes_for(dut, "write", w), seed=1, name="written")


def test_extremes_and_partial_writes(designs):
    images, dut, design = designs(9, 13, **SETS_BLOCK)
    x = np.full((30, 13), -128)
    x[1::2] = 127
    w = np.full((9, 13), -128)  # -128 * -128 summed 13 times: the top of the range
    _run(design, dut, w, x, writes=writes_for(dut, "write", w), name="extreme")
    # A few single writes, one out of range (ignored), over the initial image.
    w = images[0].copy()
    writes = []
    layout_writes = writes_for(dut, "write", np.arange(9 * 13 + 1) % 256 - 128)
    for k in (0, 17, 9 * 13 - 1):
        w.flat[k] = (k % 256) - 128
        writes.append(layout_writes[k])
    writes.append(layout_writes[9 * 13])  # index == count: must not write anything
    _run(
        design,
        dut,
        w,
        int8_stimulus(np.random.default_rng(2), 40, 13),
        writes=writes,
        name="partial",
    )


@pytest.mark.parametrize("emitter", ["text", "amaranth"])
def test_weight_sets_and_select(designs, emitter):
    images, dut, design = designs(9, 13, **SETS_BLOCK, emitter=emitter)
    rng = np.random.default_rng(7)
    x = int8_stimulus(rng, 40, 13)
    _run(design, dut, images[2], x, select=2, name="set2")
    # Writes to set 1, and to set 3 (past the last set: ignored); select 3, past the last
    # set too, shows set 0, which neither write touched.
    w = rng.integers(-128, 128, size=(9, 13))
    writes = writes_for(dut, "write", w, set_=1) + writes_for(dut, "write", -w - 1, set_=3)
    _run(design, dut, images[0], x, writes=writes, select=3, seed=1, name="past_last")
    _run(design, dut, w, x, writes=writes, select=1, seed=2, name="written_set1")


def test_deep_tree_one_beat_per_clock(designs):
    images, dut, design = designs(5, 30, levels=1)
    x = int8_stimulus(np.random.default_rng(3), 200, 30)
    _run(design, dut, images[0], x, stalls=(0.5, 0.5), name="stalls")
    stats = _run(design, dut, images[0], x, stalls=(0, 0), name="throughput")
    assert stats["cycles"] == len(x) + dut.latency
