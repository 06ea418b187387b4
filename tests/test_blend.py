# amaranth: UnusedElaboratable=no
"""Alpha blend and cross-core shuffle against the golden model, with independent random
stalls on every stream."""

import re

import numpy as np
import pytest
from amaranth.hdl import Cat, Module, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from semifreddo_hw.blend import AlphaBlend, CoreShuffle
from semifreddo_hw.streams import fork, join, vector_layout
from sim.errors import SimulationMismatch
from sim.golden.primitives import alpha_blend
from sim.pysim import run_streams_pysim
from sim.rtl import Lanes, VerilatorDesign
from spec.dataflow import core_shuffle
from spec.stream import MARKER_BITS, frames_to_beats
from tests.netlist import netlist


def _frames(rng, c, n=2, h=3, w=5):
    fr = [rng.integers(-128, 128, size=(h, w, c)) for _ in range(n)]
    fr[0][0] = -128
    fr[-1][-1] = 127
    return fr


@pytest.mark.parametrize(
    "fold, period", [(1, None), (2, None), (3, None), (6, None), (2, 3), (6, 7), (3, 3)]
)
@pytest.mark.parametrize("case", ["zero", "one", "half", "random", "written"])
def test_alpha_blend(case, fold, period):
    """Spatial and folded (a channel group per cycle, the codes read from a phase bank),
    codes from the power-up image or written (at the bank's write index); folded with a
    period, stages that never stall (a queue behind them), and with a cycle to spare, the
    output beat from flip-flops."""
    rng = np.random.default_rng(len(case))
    c = 6
    codes = {"zero": [0] * c, "one": [128] * c, "half": [64] * c}.get(
        case, rng.integers(0, 129, size=c).tolist()
    )
    init = codes if case != "written" else None
    dut = AlphaBlend(c, alpha_init=init, fold=fold, period=period)
    assert dut.registered_output == (period is not None and period > fold)
    assert dut.buffered == (period is not None)
    if dut.registered_output:  # o.valid a flip-flop's output itself
        assert re.search(r"connect \\Q \\o__valid$", netlist(dut), re.M)
    writes = []
    if case == "written":  # codes above 128 act as 128
        codes = [0, 128, 200, 255, 1, 127]
        writes = [
            ("alpha_write", {"index": dut.alphas.address(k), "value": v})
            for k, v in enumerate(codes)
        ]
    ff, ft = _frames(rng, c), _frames(rng, c)
    xf, sides = frames_to_beats(ff)
    xt, _ = frames_to_beats(ft)
    eff = np.minimum(codes, 128)
    y = [alpha_blend(eff, f, t).tolist() for f, t in zip(xf, xt, strict=True)]
    if case == "zero":
        assert y == xt
    if case == "one":
        assert y == xf
    run_streams_pysim(
        dut,
        {"f": (xf, sides), "t": (xt, sides)},
        {"o": (y, sides)},
        writes=writes,
        in_stall=0.4,
        out_stall=0.4,
        seed=len(case) + fold,
    )


@pytest.mark.parametrize("fold", [1, 5])
def test_alpha_blend_extremes(fold):
    """Every pair of extreme pixels (the widest difference, 127 - -128, included) under
    the extreme codes."""
    codes = [0, 1, 64, 127, 128]
    values = [-128, -127, -1, 0, 1, 126, 127]
    pairs = [(f, t) for f in values for t in values]
    xf = [[f] * len(codes) for f, _ in pairs]
    xt = [[t] * len(codes) for _, t in pairs]
    sides = [0] * len(pairs)
    y = [alpha_blend(np.array(codes), f, t).tolist() for f, t in zip(xf, xt, strict=True)]
    dut = AlphaBlend(len(codes), alpha_init=codes, fold=fold)
    run_streams_pysim(
        dut, {"f": (xf, sides), "t": (xt, sides)}, {"o": (y, sides)}, in_stall=0.2, out_stall=0.2
    )


@pytest.mark.parametrize("fold", [1, 2])
def test_alpha_blend_flags_mismatched_markers(fold):
    from amaranth.sim import Simulator

    dut = AlphaBlend(2, fold=fold)
    seen = {}

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for side_f, side_t in ((0, 0), (1, 1), (1, 0)):
            ctx.set(dut.f.valid, 1)
            ctx.set(dut.t.valid, 1)
            ctx.set(dut.f.payload.side, side_f)
            ctx.set(dut.t.payload.side, side_t)
            await ctx.tick().until(dut.f.ready)
            seen[(side_f, side_t)] = ctx.get(dut.marker_mismatch)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == {(0, 0): 0, (1, 1): 0, (1, 0): 1}


@pytest.mark.parametrize("enable", [0, 1])
@pytest.mark.parametrize("c", [2, 8])
def test_core_shuffle(enable, c):
    rng = np.random.default_rng(c + enable)
    fa, fb = _frames(rng, c), _frames(rng, c)
    a, sa = frames_to_beats(fa)
    b, _ = frames_to_beats(fb)
    ya, yb = core_shuffle(np.array(a), np.array(b), enable)
    if not enable:
        assert ya.tolist() == a
    run_streams_pysim(
        CoreShuffle(c),
        {"a": (a, sa), "b": (b, sa)},
        {"a_o": (ya.tolist(), sa), "b_o": (yb.tolist(), sa)},
        statics=[("enable", enable)],
        in_stall=0.4,
        out_stall=0.4,
        seed=c,
    )


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="0..128"):
        AlphaBlend(2, alpha_init=[0, 129])
    with pytest.raises(ValueError, match="fold must be a positive divisor of 6, not 4"):
        AlphaBlend(6, fold=4)
    with pytest.raises(ValueError, match="even"):
        CoreShuffle(3)


class _PairHarness(wiring.Component):
    """For Verilator: one stream of 2C lanes (first C for one input, last C for the other)
    forked into a two-input block, and its output(s) joined back into one stream."""

    def __init__(self, block, c, out_lanes):
        self.block, self.c = block, c
        super().__init__(
            {
                "i": In(stream.Signature(vector_layout(signed(8), 2 * c, MARKER_BITS))),
                "o": Out(stream.Signature(vector_layout(signed(8), out_lanes, MARKER_BITS))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.block = blk = self.block
        ins = [blk.f, blk.t] if isinstance(blk, AlphaBlend) else [blk.a, blk.b]
        outs = [blk.o] if isinstance(blk, AlphaBlend) else [blk.a_o, blk.b_o]
        fork(m, self.i, *ins)
        x = self.i.payload.data.as_value()
        for k, s in enumerate(ins):
            m.d.comb += [
                s.payload.data.eq(x[k * 8 * self.c : (k + 1) * 8 * self.c]),
                s.payload.side.eq(self.i.payload.side),
            ]
        join(m, outs, self.o)
        m.d.comb += [
            self.o.payload.data.eq(Cat(*(s.payload.data.as_value() for s in outs))),
            self.o.payload.side.eq(outs[0].payload.side),
        ]
        return m


def test_blend_and_shuffle_in_verilator(rtl_build_dir):
    rng = np.random.default_rng(11)
    c = 16
    codes = rng.integers(0, 129, size=c)
    codes[:3] = [0, 64, 128]
    fa, fb = _frames(rng, c, n=3, h=5, w=7), _frames(rng, c, n=3, h=5, w=7)
    a, sides = frames_to_beats(fa)
    b, _ = frames_to_beats(fb)
    x = [p + q for p, q in zip(a, b, strict=True)]
    cases = {
        "blend": (
            _PairHarness(AlphaBlend(c, alpha_init=codes.tolist()), c, c),
            [alpha_blend(codes, p, q).tolist() for p, q in zip(a, b, strict=True)],
        ),
        "blend_fold8": (
            _PairHarness(AlphaBlend(c, alpha_init=codes.tolist(), fold=8), c, c),
            [alpha_blend(codes, p, q).tolist() for p, q in zip(a, b, strict=True)],
        ),
        "blend_fold8_registered": (
            _PairHarness(AlphaBlend(c, alpha_init=codes.tolist(), fold=8, period=9), c, c),
            [alpha_blend(codes, p, q).tolist() for p, q in zip(a, b, strict=True)],
        ),
        "shuffle": (
            _PairHarness(CoreShuffle(c), c, 2 * c),
            np.concatenate(core_shuffle(np.array(a), np.array(b), 0), axis=-1),
        ),
    }
    for name, (dut, y) in cases.items():
        design = VerilatorDesign.build(dut, f"pair_{name}", rtl_build_dir)
        design.run_stream(
            x,
            np.asarray(y).tolist(),
            in_sides=sides,
            out_sides=sides,
            in_lanes=Lanes(2 * c, 8, side_width=2),
            out_lanes=Lanes(len(y[0]), 8, side_width=2),
        )


def test_shuffle_multi_stream_testbench_catches_a_wrong_beat(rtl_build_dir):
    """The cocotb testbench drives two inputs and checks two outputs, each with its own
    random stalls, with ``enable`` held as a static input; a wrong expected beat on one
    output fails the run, naming the port and the beat."""
    rng = np.random.default_rng(12)
    c = 8
    fa, fb = _frames(rng, c, n=2, h=3, w=5), _frames(rng, c, n=2, h=3, w=5)
    a, sides = frames_to_beats(fa)
    b, _ = frames_to_beats(fb)
    ya, yb = core_shuffle(np.array(a), np.array(b), 1)
    lanes = Lanes(c, 8, side_width=2)
    design = VerilatorDesign.build(CoreShuffle(c), "shuffle_streams", rtl_build_dir)

    def run(yb, name):
        return design.run_streams(
            {"a": (a, sides, lanes, 0.3), "b": (b, sides, lanes, 0.5)},
            {"a_o": (ya.tolist(), sides, lanes, 0.4), "b_o": (yb.tolist(), sides, lanes, 0.2)},
            statics=[("enable", 1)],
            test_name=name,
            seed=3,
        )

    stats = run(yb, "ok")
    assert stats["received"] == {"a_o": len(a), "b_o": len(b)}
    bad = yb.copy()
    bad[17, 5] = (bad[17, 5] + 1) % 128
    with pytest.raises(SimulationMismatch, match="b_o: output beat 17: 1 of 8 lanes differ"):
        run(bad, "wrong")
    # A fault of the bench (here a port the design does not have) is not a mismatch.
    with pytest.raises(RuntimeError, match="test bench failed"):
        design.run_streams({}, {}, statics=[("no_such_port", 1)], test_name="bench_fault")
