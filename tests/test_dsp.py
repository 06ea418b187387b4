# amaranth: UnusedElaboratable=no
"""Products in the ECP5's DSP blocks (semifreddo_hw.dsp): every multiply that the target
takes becomes a MULT18X18D holding its operand and product registers, and the design is
bit-exact in Verilator (with the block's model) against the golden model under stalls:
alpha blends, requantizers (whole and split sums, spatial and folded) and folded
configurable products. Without the target nothing changes."""

import re

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned

from semifreddo_hw.blend import AlphaBlend
from semifreddo_hw.dsp import ECP5DSP, dsp_platform, dsp_width, with_model
from semifreddo_hw.emit import to_verilog
from semifreddo_hw.pipeline import Pipeline
from semifreddo_hw.requant import Requantizer
from sim.golden.primitives import alpha_blend, matvec, requantize
from sim.rtl import Lanes, VerilatorDesign, struct_word
from spec.stream import frames_to_beats
from tests.netlist import rtlil_cells
from tests.rtl_helpers import int8_stimulus, writes_for
from tests.test_blend import _frames, _PairHarness
from tests.test_fold import _folded_requant, _matvec_case, _requant_case
from tests.test_requant_rtl import edge_accumulators

_BLOCK = re.compile(r"^\s*MULT18X18D #\(", re.M)


def _blocks(text: str) -> int:
    return len(_BLOCK.findall(text))


def test_target_checks_and_takes():
    with pytest.raises(ValueError, match="min_width must be an integer in 2..18, not 1"):
        ECP5DSP(1)
    dsp = ECP5DSP(9)
    assert dsp.takes(signed(9), unsigned(8))  # a blend: the code is 9 bits signed
    assert not dsp.takes(signed(8), signed(8))  # weights: below 9
    assert ECP5DSP(8).takes(signed(8), signed(8))
    assert ECP5DSP(2).takes(unsigned(17), signed(18))
    assert not ECP5DSP(2).takes(unsigned(18), signed(16))  # 19 bits signed
    assert not ECP5DSP(2).takes(signed(19), signed(2))
    assert dsp_width("wide", {}, 0) == 9 and dsp_width("all", {}, 0) == 2
    assert dsp_width("none", {}, 0) is None and dsp_platform(None, None, 156) is None
    with pytest.raises(ValueError, match="--dsp must be one of"):
        dsp_width("most", {}, 0)


def test_the_model_goes_where_the_block_is_used():
    """Beside Verilog that instantiates the block, once; nowhere else (a simulation of a
    board build's ``semifreddo.v``, ``sim.verify`` included, gets it from here)."""
    blocks = to_verilog(Requantizer(2, 12, shift=3), "m", ECP5DSP())
    plain = to_verilog(Requantizer(2, 12, shift=3), "m")
    assert with_model(plain) == plain
    once = with_model(blocks)
    assert once.count("module MULT18X18D(") == 1 and with_model(once) == once


def test_product_takes_only_its_own_registers():
    pipe = Pipeline(2, name="p", dsp=ECP5DSP())
    a = pipe.stage(Signal(signed(8)), name="a")
    with pytest.raises(ValueError, match="an operand is not a register of pipeline p"):
        pipe.product(a, Signal(signed(8)), signed(16), name="x")
    pipe.finish(Module())
    with pytest.raises(RuntimeError, match="after finish"):
        pipe.product(a, a, signed(16), name="x")


@pytest.mark.parametrize(
    "make, blocks",
    [
        (lambda: AlphaBlend(6, fold=3), 2),
        (lambda: Requantizer(5, 18, shift=7), 5),  # whole sums
        (lambda: Requantizer(4, 22, shift=7, fold=2), 2 * 2),  # split: top and low part
    ],
)
def test_every_multiply_is_a_block_and_nothing_else_changes(make, blocks):
    """With the target, each multiply is a block in place of its ``$mul`` cell; without
    it, no block."""
    muls = rtlil_cells(make())["$mul"][0]
    assert muls - rtlil_cells(make(), ECP5DSP())["$mul"][0] == blocks
    assert _blocks(to_verilog(make(), "m", ECP5DSP())) == blocks
    assert _blocks(to_verilog(make(), "m")) == 0


def test_narrow_operands_stay_in_the_fabric():
    """A split sum's low part (22 - 18 = 4 bits, unsigned: 5 signed) is narrower than
    ``min_width`` 10: multiplied in LUTs beside the bias, as without a target."""
    dut = Requantizer(4, 22, shift=7, fold=2)
    assert _blocks(to_verilog(dut, "m", ECP5DSP(10))) == 2
    assert rtlil_cells(dut, ECP5DSP(10))["$mul"][0] == 2


@pytest.mark.parametrize("fold", [1, 8])
def test_blend_in_blocks(rtl_build_dir, fold):
    rng = np.random.default_rng(fold)
    c = 16
    codes = rng.integers(0, 129, size=c)
    codes[:4] = [0, 1, 64, 128]
    fa, fb = _frames(rng, c, n=2, h=5, w=7), _frames(rng, c, n=2, h=5, w=7)
    fa[0][0, 0], fb[0][0, 0] = -128, 127  # the widest difference
    a, sides = frames_to_beats(fa)
    b, _ = frames_to_beats(fb)
    dut = _PairHarness(AlphaBlend(c, alpha_init=codes.tolist(), fold=fold), c, c)
    design = VerilatorDesign.build(dut, f"dsp_blend{fold}", rtl_build_dir, platform=ECP5DSP())
    assert _blocks(design.verilog.read_text()) == c // fold
    y = [alpha_blend(codes, p, q).tolist() for p, q in zip(a, b, strict=True)]
    for k, stalls in enumerate([(0.3, 0.3), (0.0, 0.0), (0.6, 0.2)]):
        design.run_stream(
            [p + q for p, q in zip(a, b, strict=True)],
            y,
            in_sides=sides,
            out_sides=sides,
            in_lanes=Lanes(2 * c, 8, side_width=2),
            out_lanes=Lanes(c, 8, side_width=2),
            in_stall=stalls[0],
            out_stall=stalls[1],
            seed=k,
            test_name=f"run{k}",
        )


@pytest.mark.parametrize("acc_width, min_width, parts", [(12, 2, 1), (30, 2, 2), (20, 8, 1)])
def test_spatial_requantizer_in_blocks(rtl_build_dir, acc_width, min_width, parts):
    """A sum that fits the block's operand, one split in two (both parts in blocks), one
    whose 2 low bits the target leaves to LUTs (added to the bias, read early for them)."""
    c, shift = 3, 11
    dut = Requantizer(c, acc_width, shift=shift, relu=False, side_width=1)
    name = f"dsp_rq_{acc_width}_{min_width}"
    design = VerilatorDesign.build(dut, name, rtl_build_dir, platform=ECP5DSP(min_width))
    assert _blocks(design.verilog.read_text()) == c * parts
    rng = np.random.default_rng(acc_width)
    scale = rng.integers(-(1 << 15), 1 << 15, size=c)
    bias = rng.integers(-(1 << 31), 1 << 31, size=c) >> rng.integers(0, 32)
    scale[0], bias[0] = -(1 << 15), (1 << 31) - 1
    acc = edge_accumulators(rng, c, acc_width, shift, scale.tolist(), bias.tolist())
    side = rng.integers(0, 2, size=len(acc)).tolist()
    design.run_stream(
        acc.tolist(),
        requantize(acc, scale, bias, shift, False).tolist(),
        writes=writes_for(dut, "scale_write", scale) + writes_for(dut, "bias_write", bias),
        in_sides=side,
        out_sides=side,
        in_lanes=Lanes(c, acc_width, side_width=1),
        out_lanes=Lanes(c, 8, side_width=1),
        in_stall=0.4,
        out_stall=0.4,
    )


@pytest.mark.parametrize("buffered", [False, True])
def test_folded_requantizer_in_blocks(rtl_build_dir, buffered):
    dut = _folded_requant(8, 4, 24, 13, False, buffered)
    name = "dsp_frq" + ("_buffered" if buffered else "")
    design = VerilatorDesign.build(dut, name, rtl_build_dir, platform=ECP5DSP())
    # two lanes, each a block for its accumulator's top 18 bits and one for the low 6
    assert _blocks(design.verilog.read_text()) == 2 * 2
    acc, y, writes = _requant_case(np.random.default_rng(3), dut, 8, 24, 13, False)
    design.run_stream(
        acc.tolist(),
        y.tolist(),
        writes=writes,
        in_sides=[0] * len(acc),
        out_sides=[0] * len(acc),
        in_lanes=Lanes(8, 24, side_width=2),
        out_lanes=Lanes(8, 8, side_width=2),
        in_stall=0.3,
        out_stall=0.5,
    )


@pytest.mark.parametrize(
    "kind, channels, fold, buffered",
    [("pointwise", 6, 3, False), ("depthwise", 8, 2, False), ("pointwise", 6, 3, True)],
)
def test_folded_configurable_product_in_blocks(rtl_build_dir, kind, channels, fold, buffered):
    """The power-up image, then every weight written (each phase) and the same input."""
    rng = np.random.default_rng(channels * fold)
    w, dut, images, mv = _matvec_case(kind, channels, fold, rng, buffered)
    name = f"dsp_mv_{kind}" + ("_buffered" if buffered else "")
    design = VerilatorDesign.build(dut, name, rtl_build_dir, platform=ECP5DSP())
    assert _blocks(design.verilog.read_text()) == mv.report()["multipliers"]
    x = int8_stimulus(rng, 30, w.shape[1])
    lanes = dict(
        in_lanes=Lanes(w.shape[1], 8, side_width=2),
        out_lanes=Lanes(w.shape[0], mv.out_width, side_width=2),
    )
    design.run_stream(x.tolist(), matvec(w, x).tolist(), seed=1, test_name="image", **lanes)
    w2, _, images2, _ = _matvec_case(kind, channels, fold, np.random.default_rng(99))
    images2[0, 0, np.flatnonzero(mv.mask[0])[0]] = -128  # the extremes
    w2 = _weights(kind, channels, fold, images2, mv)
    layout = dut.signature.members["write"].signature.members["payload"].shape
    writes = [
        (
            "write",
            struct_word(
                layout, index=mv.bank.address(mv.index(j, i, p)), value=int(images2[p, j, i])
            ),
        )
        for p in range(fold)
        for j, i in zip(*np.nonzero(mv.mask), strict=True)
    ]
    design.run_stream(
        x.tolist(), matvec(w2, x).tolist(), writes=writes, seed=2, test_name="written", **lanes
    )


def _weights(kind, channels, fold, images, mv):
    """The whole layer's matrix from the per-phase images (the inverse of ``_matvec_case``)."""
    group = channels // fold
    if kind == "pointwise":
        return images.reshape(channels, channels)
    w = np.zeros((channels, 9 * channels), np.int64)
    for p in range(fold):
        for t in range(9):
            for c in range(group):
                w[p * group + c, t * channels + p * group + c] = images[p, c, t * group + c]
    return w
