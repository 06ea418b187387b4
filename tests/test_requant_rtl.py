"""Requantizer in Verilator at its rounding and saturation edges."""

import functools

import numpy as np
import pytest

from semifreddo_hw.requant import Requantizer
from sim.golden.primitives import requantize
from sim.rtl import Lanes, VerilatorDesign
from tests.rtl_helpers import writes_for

CASES = {  # name: (channels, acc_width, shift, relu, scale_bits, bias_bits)
    "c6_a20_s7": (6, 20, 7, False, 16, 32),
    "c5_a12_s0_relu": (5, 12, 0, True, 16, 32),
    "c3_a30_s24_relu": (3, 30, 24, True, 12, 20),
    "c4_a5_s4": (4, 5, 4, False, 5, 6),  # a shifted sum of 8 bits or fewer: no top to test
}


@pytest.fixture(scope="module")
def designs(rtl_build_dir):
    @functools.cache
    def get(name):
        c, a, s, r, sb, bb = CASES[name]
        dut = Requantizer(c, a, shift=s, relu=r, scale_bits=sb, bias_bits=bb, side_width=1)
        return dut, VerilatorDesign.build(dut, f"rq_{name}", rtl_build_dir)

    return get


def edge_accumulators(rng, channels, acc_width, shift, scale, bias, beats=200):
    """Random accumulators plus values landing exactly on, just below and just above each
    rounding half and each saturation bound (given the channel's scale and bias)."""
    lo, hi = -(1 << (acc_width - 1)), (1 << (acc_width - 1)) - 1
    acc = rng.integers(lo, hi + 1, size=(beats, channels))
    acc[0], acc[1] = lo, hi
    row = 2
    for c in range(channels):
        if scale[c] == 0:
            continue
        for target in (-129, -128, -1, 0, 1, 126, 127, 128):
            # acc * scale + bias == (target + 1/2) * 2**shift, the rounding half above target
            num = ((2 * target + 1) << shift) // 2 - bias[c] if shift else target * 1 - bias[c]
            base = num // scale[c]
            for d in (-1, 0, 1):
                if row < beats and lo <= base + d <= hi:
                    acc[row, c] = base + d
                    row += 1
    return acc


@pytest.mark.parametrize("name", list(CASES))
def test_requantizer_bit_exact(designs, name):
    c, a, s, relu, sb, bb = CASES[name]
    dut, design = designs(name)
    rng = np.random.default_rng(len(name))
    for trial in range(3):
        scale = rng.integers(-(1 << (sb - 1)), 1 << (sb - 1), size=c)
        bias = rng.integers(-(1 << (bb - 1)), 1 << (bb - 1), size=c) >> rng.integers(0, bb)
        if trial == 0:  # the representable extremes
            scale[0], bias[0] = -(1 << (sb - 1)), (1 << (bb - 1)) - 1
            scale[-1], bias[-1] = (1 << (sb - 1)) - 1, -(1 << (bb - 1))
        acc = edge_accumulators(rng, c, a, s, scale.tolist(), bias.tolist())
        side = rng.integers(0, 2, size=len(acc)).tolist()
        y = requantize(acc, scale, bias, s, relu)
        writes = writes_for(dut, "scale_write", scale) + writes_for(dut, "bias_write", bias)
        design.run_stream(
            acc.tolist(),
            y.tolist(),
            writes=writes,
            in_sides=side,
            out_sides=side,
            in_lanes=Lanes(c, a, side_width=1),
            out_lanes=Lanes(c, 8, side_width=1),
            seed=trial,
            test_name=f"trial{trial}",
        )


def test_power_up_defaults_pass_values_through(designs):
    """Scale 1, bias 0 from the initial image: only rounding and saturation act."""
    dut, design = designs("c5_a12_s0_relu")
    acc = np.arange(-300, 300).reshape(-1, 5)
    design.run_stream(
        acc.tolist(),
        np.clip(acc, 0, 127).tolist(),
        in_lanes=Lanes(5, 12, side_width=1),
        out_lanes=Lanes(5, 8, side_width=1),
        test_name="defaults",
    )
