# amaranth: UnusedElaboratable=no
"""A repeated block (:class:`semifreddo_hw.repeat.RepeatLoop`, paper §3.4) against its golden
twin, the regular block applied pass after pass (:func:`sim.golden.blocks.regular_block`):
every count, spatial and folded, odd frame sizes, extreme pixels, random stalls, counts
written at run time, two parameter sets switching counts frame by frame."""

import functools

import numpy as np
import pytest
from amaranth.sim import Simulator

from semifreddo_hw.blocks import RegularBlock
from semifreddo_hw.repeat import RepeatLoop
from sim.errors import SimulationMismatch
from sim.golden.blocks import regular_block
from sim.pysim import run_stream_pysim
from sim.rtl import VerilatorDesign
from spec.stream import MARKER_BITS, frames_to_beats
from tests.rtl_helpers import bank_writes, run_pixels, writes_for
from tests.test_blocks import branch, vectors


def make(rng, c, w, h, passes, count, **kw):
    """A loop over a configurable regular block built for ``passes`` passes, power-up count
    ``count``; returns it, every pass's parameters and the golden twin."""
    ps = [branch(rng, c // 2) for _ in range(passes)]
    block = RegularBlock(
        c, w, h, **ps[0], configurable=True, passes=passes, pass_init=ps[1:], frame_bits=1, **kw
    )
    return RepeatLoop(block, repeat_init=count, sets=kw.get("sets", 1)), ps


def golden(ps, count):
    def ref(f):
        for p in ps[: max(1, min(count, len(ps)))]:
            f = regular_block(f, **p)
        return f

    return ref


@pytest.mark.parametrize(
    "c,w,h,passes,count", [(4, 5, 3, 3, 3), (4, 5, 3, 3, 1), (2, 3, 4, 4, 2), (4, 1, 1, 2, 2)]
)
def test_repeat_loop_pysim(c, w, h, passes, count):
    rng = np.random.default_rng([c, w, h, passes, count])
    dut, ps = make(rng, c, w, h, passes, count)
    x, xs, y, ys = vectors(rng, golden(ps, count), c, w, h, 3)
    run_stream_pysim(dut, x, y, in_sides=xs, out_sides=ys, in_stall=0.4, out_stall=0.4)


#: name: channels, width, height, passes, fold, sets
RTL = {
    "spatial_7x5_c8": (8, 7, 5, 4, 1, 1),
    "folded_6x4_c8": (8, 6, 4, 4, 2, 1),
    "two_sets_5x3_c4": (4, 5, 3, 3, 1, 2),
    "two_sets_1x1_c4": (4, 1, 1, 3, 1, 2),
    "one_row_6x1_c4": (4, 6, 1, 3, 1, 1),
}


@pytest.fixture(scope="module")
def loops(rtl_build_dir):
    @functools.cache
    def get(name):
        c, w, h, passes, fold, sets = RTL[name]
        rng = np.random.default_rng(len(name))
        options = {"layer_options": {"dw": {"fold": fold}, "pw": {"fold": fold}}}
        dut, ps = make(rng, c, w, h, passes, 2, sets=sets, **(options if fold > 1 else {}))
        return dut, ps, VerilatorDesign.build(dut, f"repeat_{name}", rtl_build_dir)

    return get


def pass_writes(dut, ps, count, set_=0):
    """Writes loading every pass's parameters ``ps`` and the count into set ``set_``."""
    writes = writes_for(dut, "repeat_write", [count], set_=set_)
    for p, q in enumerate(ps):
        for name in ("dw", "pw"):
            layer = dut.layers[name]
            at = p * layer.sets + set_
            bank = layer.product.bank
            weights = np.zeros(bank.count, dtype=np.int64)
            for idx in np.ndindex(q[name].shape):
                weights[layer.weight_element(*idx)] = q[name][idx]
            writes += bank_writes(dut, f"{name}_weight_write", bank, weights, set_=at)
            for field, bank in (("scale", layer.requant.scales), ("bias", layer.requant.biases)):
                values = q[f"{name}_quant"][field]
                writes += bank_writes(dut, f"{name}_{field}_write", bank, values, set_=at)
    return writes


@pytest.mark.parametrize(
    "name,count",
    [(n, k) for n, v in RTL.items() if not n.startswith("two_sets") for k in range(1, v[3] + 1)],
)
def test_repeat_loop_rtl_every_count(loops, name, count):
    """Every pass's parameters and the count written over the power-up image (count 2),
    three frames through under stalls and without: every output beat as the golden twin."""
    c, w, h, passes, _, _ = RTL[name]
    dut, _, design = loops(name)
    rng = np.random.default_rng(31 * count + len(name))
    ps = [branch(rng, c // 2) for _ in range(passes)]
    x, xs, y, ys = vectors(rng, golden(ps, count), c, w, h, 3)
    run_pixels(
        design,
        (x, xs),
        (y, ys),
        c,
        c,
        writes=pass_writes(dut, ps, count),
        stalls=[(0.3, 0.3), (0.0, 0.0), (0.1, 0.6)],
        name=f"n{count}_",
    )


@pytest.mark.parametrize("name", ["two_sets_5x3_c4", "two_sets_1x1_c4"])
def test_repeat_loop_two_sets_switch_the_count_per_frame(loops, name):
    """Two parameter sets, counts 3 and 1 (each with its own passes), frames alternating
    between them by their epoch marker; one-pixel frames too (a frame of one pass must not
    enter while one of three is still going round: their outputs would swap)."""
    c, w, h, passes, _, _ = RTL[name]
    dut, _, design = loops(name)
    rng = np.random.default_rng(3)
    sets = [[branch(rng, c // 2) for _ in range(passes)] for _ in range(2)]
    counts, epochs = (3, 1), [0, 1, 1, 0, 1]
    frames = [rng.integers(-128, 128, size=(h, w, c)) for _ in epochs]
    frames[0][0, 0], frames[-1][-1] = -128, 127
    x, xs = frames_to_beats(frames, epochs)
    y, ys = frames_to_beats(
        [golden(sets[e], counts[e])(f) for f, e in zip(frames, epochs, strict=True)], epochs
    )
    writes = [w for e in (0, 1) for w in pass_writes(dut, sets[e], counts[e], set_=e)]
    run_pixels(design, (x, xs), (y, ys), c, c, writes=writes, stalls=[(0.3, 0.3), (0, 0)])


def test_repeat_loop_keeps_a_frames_count_while_it_goes_round():
    """Count 4 at power-up; count 1 written once the frame's second pass has begun: the
    frame still takes its four passes (the count is read when its first beat enters)."""
    c, w, h, passes = 4, 5, 3, 4
    rng = np.random.default_rng(0)
    dut, ps = make(rng, c, w, h, passes, 4)
    frame = rng.integers(-128, 128, size=(h, w, c))
    x, xs = frames_to_beats([frame])
    got, written = [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        k = 0
        for _ in range(400):
            ctx.set(dut.i.valid, k < len(x))
            if k < len(x):
                ctx.set(dut.i.payload.data, [int(v) for v in x[k]])
                ctx.set(dut.i.payload.side, xs[k])
            ctx.set(dut.repeat_write.valid, 0)
            await ctx.delay(1e-9)
            side = ctx.get(dut.block.i.payload.side)
            entering = ctx.get(dut.block.i.valid) and ctx.get(dut.block.i.ready)
            if not written and entering and (side >> MARKER_BITS) & 3 == 1:
                ctx.set(dut.repeat_write.valid, 1)
                ctx.set(dut.repeat_write.payload.value, 1)
                written.append(1)
            if k < len(x) and ctx.get(dut.i.ready):
                k += 1
            if ctx.get(dut.o.valid):
                got.append([int(v) for v in ctx.get(dut.o.payload.data)])
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert written and len(got) == w * h
    assert np.array_equal(np.array(got).reshape(h, w, c), golden(ps, 4)(frame))


def test_repeat_loop_detects_a_wrong_count(loops):
    """The check can fail: the hardware runs 3 passes, the reference 2."""
    c, w, h, passes, _, _ = RTL["spatial_7x5_c8"]
    dut, _, design = loops("spatial_7x5_c8")
    rng = np.random.default_rng(5)
    ps = [branch(rng, c // 2) for _ in range(passes)]
    x, xs, y, ys = vectors(rng, golden(ps, 2), c, w, h, 1)
    with pytest.raises(SimulationMismatch):
        run_pixels(design, (x, xs), (y, ys), c, c, writes=pass_writes(dut, ps, 3), name="wrong")


def test_repeat_loop_checks_its_parameters():
    rng = np.random.default_rng(0)
    p = branch(rng, 2)
    with pytest.raises(ValueError, match="two or more passes"):
        RepeatLoop(RegularBlock(4, 3, 3, **p, configurable=True))
    with pytest.raises(ValueError, match="frame_bits=1"):
        RepeatLoop(RegularBlock(4, 3, 3, **p, configurable=True, passes=2, pass_init=[p]))
    block = RegularBlock(4, 3, 3, **p, configurable=True, passes=2, pass_init=[p], frame_bits=1)
    with pytest.raises(ValueError, match="repeat_init"):
        RepeatLoop(block, repeat_init=3)
    with pytest.raises(ValueError, match="pass_init must give 1"):
        RegularBlock(4, 3, 3, **p, configurable=True, passes=2)
    with pytest.raises(ValueError, match="only a configurable layer"):
        RegularBlock(4, 3, 3, **p, passes=2, pass_init=[p], frame_bits=1)
