"""Stream plumbing (semifreddo_hw.streams): the half-rate register slice under random
valid/ready, its rate and its occupancy."""

import numpy as np
import pytest
from amaranth.hdl import signed

from semifreddo_hw.streams import HalfRateSlice, vector_layout
from sim.pysim import run_stream_pysim


@pytest.mark.parametrize("in_stall, out_stall", [(0.3, 0.3), (0.0, 0.6), (0.6, 0.0), (0, 0)])
def test_half_rate_slice_passes_every_beat(in_stall, out_stall):
    x = np.random.default_rng(1).integers(-128, 128, size=(40, 3)).tolist()
    dut = HalfRateSlice(vector_layout(signed(8), 3, 2))
    cycles = run_stream_pysim(dut, x, x, in_stall=in_stall, out_stall=out_stall, seed=7)
    if in_stall == out_stall == 0:  # a beat every other cycle, and never faster
        assert cycles == 2 * len(x)


def test_half_rate_slice_keeps_up_with_beats_two_cycles_apart():
    x = np.random.default_rng(2).integers(-128, 128, size=(30, 2)).tolist()
    dut = HalfRateSlice(vector_layout(signed(8), 2))
    # Offered every other cycle, each beat leaves the cycle after it is taken.
    assert run_stream_pysim(dut, x, x, in_stall=0, out_stall=0, in_period=2) == 2 * len(x)
    assert dut.beats == 1
