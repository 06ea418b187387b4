# amaranth: UnusedElaboratable=no
"""SlidingWindow (3x3 line buffer): golden twin, pysim sweep, Verilator with stalls."""

import functools

import numpy as np
import pytest
from amaranth.hdl import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from semifreddo_hw.fold import group_lanes, slice_lanes
from semifreddo_hw.window import MemoryWindow, SlidingWindow
from sim.errors import SimulationMismatch
from sim.golden.layers import window3x3
from sim.pysim import run_stream_pysim
from sim.rtl import VerilatorDesign
from spec.stream import frames_to_beats
from tests.netlist import memory_bits, netlist, registers
from tests.rtl_helpers import run_pixels


def _frames(rng, n, h, w, c, extremes=True):
    frames = [rng.integers(-128, 128, size=(h, w, c)) for _ in range(n)]
    if extremes:
        frames[0][::2, ::2] = -128
        frames[-1][1::2] = 127
    return frames


def _vectors(frames, stride, pad=None):
    """Input and expected output beats; the frames' epoch markers 0, 1, 1, 0, ... (a
    window's outputs carry their frame's, whether the next frame's differs or not)."""
    epochs = [k * (k + 1) // 2 % 2 for k in range(len(frames))]
    x, xs = frames_to_beats(frames, epochs)
    y, ys = frames_to_beats([window3x3(f, stride, pad) for f in frames], epochs)
    return x, xs, y, ys


def test_golden_window_small_case():
    f = np.arange(1, 7).reshape(2, 3, 1)  # [[1 2 3] [4 5 6]]
    w = window3x3(f)
    assert w.shape == (2, 3, 9)
    assert w[0, 0].tolist() == [0, 0, 0, 0, 1, 2, 0, 4, 5]
    assert w[1, 2].tolist() == [2, 3, 0, 5, 6, 0, 0, 0, 0]
    assert window3x3(f, 2).shape == (1, 2, 9)


# (width, height, channels, stride): odd and even sizes, 1-pixel-high and 1-pixel-wide
SIZES = [
    (5, 3, 2, 1),
    (5, 3, 2, 2),
    (13, 7, 3, 1),
    (13, 7, 3, 2),
    (1, 1, 1, 1),
    (1, 1, 2, 2),
    (1, 5, 1, 1),
    (1, 5, 2, 2),
    (6, 1, 1, 1),
    (7, 1, 2, 2),
    (8, 6, 1, 2),
    (2, 2, 4, 1),
    (1, 2, 3, 1),
    (3, 2, 1, 2),
    # deeper than a LUT RAM cell: the line memory read into its own register
    (19, 4, 2, 1),
    (18, 5, 1, 2),
]


#: The window's front: none, the register slice (``sliced``), the slice and the late load.
FRONTS = {"plain": {}, "sliced": {"sliced": True}, "late": {"sliced": True, "late": True}}


@pytest.mark.parametrize("front", list(FRONTS))
@pytest.mark.parametrize("w,h,c,s", SIZES)
def test_window_pysim(w, h, c, s, front):
    rng = np.random.default_rng(w * 100 + h * 10 + c + s)
    dut = SlidingWindow(c, w, h, stride=s, **FRONTS[front])
    x, xs, y, ys = _vectors(_frames(rng, 3, h, w, c), s)
    run_stream_pysim(dut, x, y, in_sides=xs, out_sides=ys, seed=w + h, in_stall=0.4, out_stall=0.4)


RTL_CASES = {
    "13x7_c3_s1": (13, 7, 3, 1),
    "13x7_c3_s2": (13, 7, 3, 2),
    "5x3_c64_s1": (5, 3, 64, 1),
    "1x1_c2_s1": (1, 1, 2, 1),
    "9x1_c1_s2": (9, 1, 1, 2),
    "1x6_c5_s2": (1, 6, 5, 2),
    "10x4_c8_s2": (10, 4, 8, 2),
    "19x4_c3_s1": (19, 4, 3, 1),  # a line memory deeper than a LUT RAM cell
    "18x5_c2_s2": (18, 5, 2, 2),
    # with the register slice in front (a rate build's, for pixels two or more cycles apart)
    "13x7_c3_s1_sliced": (13, 7, 3, 1),
    "10x4_c8_s2_sliced": (10, 4, 8, 2),
    # and loading the window a cycle after the step (``late``)
    "13x7_c3_s1_late": (13, 7, 3, 1),
    "10x4_c8_s2_late": (10, 4, 8, 2),
    "19x4_c3_s1_late": (19, 4, 3, 1),
    "1x6_c5_s2_late": (1, 6, 5, 2),
    "2x3_c2_s1_late": (2, 3, 2, 1),
}


@pytest.fixture(scope="module")
def designs(rtl_build_dir):
    @functools.cache
    def get(name):
        w, h, c, s = RTL_CASES[name]
        dut = SlidingWindow(c, w, h, stride=s, **FRONTS.get(name.rsplit("_", 1)[-1], {}))
        return dut, VerilatorDesign.build(dut, f"win_{name}", rtl_build_dir)

    return get


@pytest.mark.parametrize("name", list(RTL_CASES))
def test_window_rtl_bit_exact(designs, name):
    w, h, c, s = RTL_CASES[name]
    dut, design = designs(name)
    rng = np.random.default_rng(len(name))
    x, xs, y, ys = _vectors(_frames(rng, 3, h, w, c), s)
    run_pixels(
        design,
        (x, xs),
        (y, ys),
        c,
        9 * c,
        name="stall",
        stalls=[(0.3, 0.3), (0.0, 0.6), (0.6, 0.0)],
    )


def test_window_throughput(designs):
    """No stalls: one pixel per clock across back-to-back frames, then one flush."""
    dut, design = designs("13x7_c3_s1")
    rng = np.random.default_rng(9)
    frames = _frames(rng, 4, 7, 13, 3, extremes=False)
    x, xs, y, ys = _vectors(frames, 1)
    (stats,) = run_pixels(design, (x, xs), (y, ys), 3, 27, stalls=[(0, 0)], name="throughput")
    assert dut.frame_cycles == 13 * 7 and dut.flush_cycles == 14
    # The last window leaves one cycle after the last flush step.
    assert stats["cycles"] == len(frames) * dut.frame_cycles + dut.flush_cycles + 1


def test_late_window_throughput(designs):
    """``late``: a pixel every other clock across back-to-back frames (the slice's pace),
    then a flush with a step every other clock."""
    dut, design = designs("13x7_c3_s1_late")
    frames = _frames(np.random.default_rng(10), 4, 7, 13, 3, extremes=False)
    x, xs, y, ys = _vectors(frames, 1)
    (stats,) = run_pixels(design, (x, xs), (y, ys), 3, 27, stalls=[(0, 0)], name="throughput")
    assert dut.flush_cycles == 28
    # The last window leaves two cycles after the last flush step (its load, and the slice
    # adds a cycle ahead of the first step).
    assert stats["cycles"] == 2 * len(frames) * dut.frame_cycles + dut.flush_cycles + 2


def test_window_reports_what_its_netlist_holds_for_640_wide_frames():
    """Line buffer and register bits as reported, counted in the netlist (the frame
    counters and the error flag are not part of ``register_bits``)."""
    dut = SlidingWindow(32, 640, 480)
    assert memory_bits(dut) == dut.memory_bits
    counters = {"x", "y", "pending", "framing_error"}
    regs = registers(dut)
    assert counters <= {name for name, _ in regs}
    assert sum(w for name, w in regs if name not in counters) == dut.register_bits


@pytest.mark.parametrize("w", [1, 40])
def test_late_window_reports_what_its_netlist_holds(w):
    """As above, with the slice in front and the late load (its step, emission and the
    written-back column's second register)."""
    dut = SlidingWindow(5, w, 6, stride=2, sliced=True, late=True)
    counters = {"x", "y", "pending", "framing_error"}
    regs = registers(dut)
    assert {"load", "emit"} <= {name for name, _ in regs}
    assert sum(w for name, w in regs if name not in counters) == dut.register_bits


@pytest.mark.parametrize("corrupt", [None, "eol", "eof"])
def test_window_flags_markers_that_disagree_with_the_frame_size(corrupt):
    from amaranth.sim import Simulator

    dut = SlidingWindow(1, 3, 2)
    x, xs = frames_to_beats([np.zeros((2, 3, 1), int)])
    if corrupt == "eol":
        xs[1] |= 1  # end of line one pixel early
    elif corrupt == "eof":
        xs[2] |= 2  # end of frame on the first line
    seen = {}

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for lanes, side in zip(x, xs, strict=True):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload.data, lanes)
            ctx.set(dut.i.payload.side, side)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)
        await ctx.tick()
        seen["error"] = ctx.get(dut.framing_error)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen["error"] == (corrupt is not None)


@pytest.mark.parametrize("w,h", [(1, 1), (1, 2), (2, 1), (3, 2), (2, 3), (4, 4)])
def test_window_raises_no_error_on_good_frames(w, h):
    """Frames whose markers agree with the size, back to back and with the flush between:
    the flag stays low (the position's registered comparisons from power-up on)."""
    from amaranth.sim import Simulator

    dut = SlidingWindow(1, w, h)
    x, xs = frames_to_beats([np.zeros((h, w, 1), int)] * 3)
    seen = {}

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for k, (lanes, side) in enumerate(zip(x, xs, strict=True)):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload.data, lanes)
            ctx.set(dut.i.payload.side, side)
            await ctx.tick().until(dut.i.ready)
            if k == w * h - 1:  # a pause after the first frame: the flush runs alone
                ctx.set(dut.i.valid, 0)
                await ctx.tick().repeat(3 * w + 4)
        ctx.set(dut.i.valid, 0)
        await ctx.tick().repeat(3 * w + 4)
        seen["error"] = ctx.get(dut.framing_error)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen["error"] == 0


@pytest.mark.parametrize("w,h,c,s", [(5, 3, 3, 1), (6, 5, 3, 2), (1, 1, 3, 2), (4, 1, 3, 1)])
def test_window_pads_with_constants(w, h, c, s):
    """The stems' input padding: each channel its own int8 constant outside the frame
    (extremes included), against the golden window padded the same way."""
    pad = [-128, 127, 37]
    dut = SlidingWindow(c, w, h, stride=s, pad=pad)
    x, xs, y, ys = _vectors(_frames(np.random.default_rng(w + h), 3, h, w, c), s, pad)
    run_stream_pysim(dut, x, y, in_sides=xs, out_sides=ys, seed=w * h, in_stall=0.4, out_stall=0.4)
    # the golden window's padding: every out-of-frame lane holds the channel's constant
    corner = window3x3(np.zeros((h, w, c), int), s, pad)[0, 0].reshape(3, 3, c)
    assert corner[0].tolist() == [pad] * 3 and corner[:, 0].tolist() == [pad] * 3


class _PadAfter(wiring.Component):
    """A ``defer_pad`` window whose consumer pads every lane: the plain window again."""

    def __init__(self, window):
        self.window = window
        super().__init__({"i": In(window.i.signature.flip()), "o": Out(window.o.signature)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = w = self.window
        wiring.connect(m, wiring.flipped(self.i), w.i)
        wiring.connect(m, w.o, wiring.flipped(self.o))
        for k, v in enumerate(w.lane_pad):
            m.d.comb += self.o.payload.data[k].eq(Mux(w.outside[k], v, w.o.payload.data[k]))
        return m


@pytest.mark.parametrize("w,h,c,s", [(5, 3, 3, 1), (6, 5, 3, 2), (1, 1, 3, 2), (7, 1, 3, 2)])
def test_window_defers_its_padding(w, h, c, s):
    """``defer_pad``: the raw lanes and the ``outside`` bits, padded by the consumer, are
    the padded window (zeros or constants); the raw lanes alone are not at the borders."""
    for pad, front in ((None, "plain"), ([-128, 127, 37], "plain"), ([-128, 127, 37], "late")):
        dut = SlidingWindow(c, w, h, stride=s, pad=pad, defer_pad=True, **FRONTS[front])
        assert dut.lane_pad == (0,) * 9 * c if pad is None else tuple(pad) * 9
        x, xs, y, ys = _vectors(_frames(np.random.default_rng(w * h), 3, h, w, c), s, pad)
        run_stream_pysim(
            _PadAfter(dut), x, y, in_sides=xs, out_sides=ys, in_stall=0.4, out_stall=0.4
        )
        with pytest.raises(SimulationMismatch):
            run_stream_pysim(dut, x, y, in_sides=xs, out_sides=ys)


def test_window_parameters_are_checked():
    with pytest.raises(ValueError, match="stride"):
        SlidingWindow(1, 4, 4, stride=3)
    with pytest.raises(ValueError, match="width"):
        SlidingWindow(1, 0, 4)
    with pytest.raises(ValueError, match="pad must be 2 int8 values"):
        SlidingWindow(2, 4, 4, pad=[0, 128])
    with pytest.raises(ValueError, match="pad must be 2 int8 values"):
        SlidingWindow(2, 4, 4, pad=[0])
    with pytest.raises(ValueError, match="late needs sliced"):
        SlidingWindow(2, 4, 4, late=True)
    with pytest.raises(TypeError, match="late must be a bool"):
        SlidingWindow(2, 4, 4, sliced=True, late=1)


def _one_tap_groups(c, kind):
    """Sub-beat lane groups that read one tap each: a lane per sub-beat (a depthwise layer
    folded to a channel's slice per cycle), or a tap's channels in two halves."""
    if kind == "lane":
        return slice_lanes(group_lanes(c, c, taps=9), 9)
    half = c // 2
    return [[t * c + h * half + k for k in range(half)] for t in range(9) for h in range(2)]


@pytest.mark.parametrize(
    "w,h,c,s,kind",
    [
        (5, 3, 2, 1, "lane"),
        (6, 5, 4, 2, "half"),
        (3, 1, 2, 1, "half"),
        (7, 4, 1, 2, "lane"),
        (3, 3, 2, 2, "lane"),
        (4, 2, 4, 1, "half"),
        (5, 3, 16, 2, "lane"),
        (5, 3, 8, 1, "lane"),
        (22, 3, 3, 1, "lane"),
        (23, 2, 4, 2, "half"),
    ],
)
def test_memory_window_gives_the_windows_sub_beat_by_sub_beat(w, h, c, s, kind):
    """MemoryWindow: every sub-beat equals the padded golden window's lanes of its group
    (zeros and int8 constants, extremes at the borders; with and without the input slice),
    under stalls; without stalls a window every ``fold + 1`` cycles at most."""
    groups = _one_tap_groups(c, kind)
    pads = ([-128, 127, 37, -1, 0, 5] * 3)[:c]
    for pad, sliced in ((None, False), (pads, False), (pads, True)):
        dut = MemoryWindow(c, w, h, stride=s, pad=pad, groups=groups, sliced=sliced)
        frames = _frames(np.random.default_rng(w * h + c), 3, h, w, c)
        x, xs, y, ys = _vectors(frames, s, pad)
        sub = [[beat[k] for k in g] for beat in y for g in groups]
        sides = [side for side in ys for _ in groups]
        run_stream_pysim(dut, x, sub, in_sides=xs, out_sides=sides, in_stall=0.4, out_stall=0.4)
        cycles = run_stream_pysim(
            dut, x, sub, in_sides=xs, out_sides=sides, in_stall=0, out_stall=0
        )
        # (sliced, a pixel whose step gives no window still takes two cycles)
        assert cycles <= len(y) * dut.interval + (1 + sliced) * len(x) + 2 * (w + 2), cycles


@pytest.mark.parametrize(
    "c,w,s,sliced,kind",
    [
        (4, 13, 1, False, "lane"),
        (16, 40, 2, True, "lane"),
        (1, 7, 2, False, "lane"),
        (4, 6, 2, True, "half"),
        (8, 9, 1, False, "half"),
        (16, 5, 1, True, "lane"),
        (2, 30, 2, False, "half"),
    ],
)
def test_memory_window_reports_what_its_netlist_holds(c, w, s, sliced, kind):
    """Line memory and register bits as reported, counted in the netlist: the registers
    beside the counters, the row bank and the error flag, and the memory's read register
    (a pixel, inside the memory cell). Odd widths (the column and address widths), one
    channel (no group register), the input slice, the regular and the table sub-beats."""
    dut = MemoryWindow(c, w, 5, stride=s, groups=_one_tap_groups(c, kind), sliced=sliced)
    assert memory_bits(dut) == dut.memory_bits
    # lanes picked early (and the memory kept in LUT RAM) for more than 4 groups, 64 words
    early = 3 * w <= 64 and (kind == "half" or c > 4)
    assert dut.preselect == early
    assert ('attribute \\ram_style "distributed"' in netlist(dut)) == early
    counters = {"x", "y", "pending", "count", "group", "bank", "framing_error"}
    regs = registers(dut)
    assert {"rd__addr", "pos_cx"} <= {name for name, _ in regs}  # the address is registered
    built = sum(width for name, width in regs if name not in counters) + 8 * c
    assert built == dut.register_bits


def test_memory_window_parameters_are_checked():
    with pytest.raises(ValueError, match="span several taps"):
        MemoryWindow(2, 4, 4, groups=[[0, 2]] * 9)
    with pytest.raises(ValueError, match="3 or more wide"):
        MemoryWindow(1, 2, 4, groups=[[k] for k in range(9)])
    with pytest.raises(ValueError, match="same number of lanes"):
        MemoryWindow(2, 4, 4, groups=[[0, 1], [2]])
