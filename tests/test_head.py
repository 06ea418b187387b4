# amaranth: UnusedElaboratable=no
"""The model head against its golden twin: the piecewise-linear activation and the global
average pool on their own (Amaranth's simulator), and whole heads in Verilator (two group
layouts, pooling on and off, identity / ReLU / random tables, parameters written at run
time, two parameter sets switched per frame), every output beat compared under random
stalls."""

import functools
import math
from fractions import Fraction

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from semifreddo_hw.head import (
    GlobalAvgPool,
    Head,
    HeadGroup,
    PiecewiseLinear,
)
from sim.errors import SimulationMismatch
from sim.golden.head import head_group
from sim.golden.primitives import global_avg_pool, pwl
from sim.pysim import run_streams_pysim
from sim.rtl import Lanes, VerilatorDesign, struct_word
from spec.formats import pool_constants
from spec.params import HeadGroupParams, pwl_identity, pwl_relu
from spec.stream import EOF, EOL, EPOCH, MARKER_BITS, frame_to_beats, frames_to_beats


def random_table(rng, segments, shift):
    """A random activation table: distinct sorted breakpoints, slopes and intercepts over
    their whole ranges (scaled so that not every output saturates)."""
    bp = np.sort(rng.choice(np.arange(-128, 128), size=segments - 1, replace=False))
    slopes = rng.integers(-(1 << 15), 1 << 15, size=segments) >> rng.integers(0, 16, size=segments)
    icepts = rng.integers(-(1 << 31), 1 << 31, size=segments) >> rng.integers(8, 32, size=segments)
    slopes[0], icepts[-1] = -(1 << 15), (1 << 31) - 1  # the extremes
    return bp.tolist(), slopes.tolist(), icepts.tolist()


def _pwl_sides(n, rng):
    return [int(v) for v in rng.integers(0, 1 << MARKER_BITS, size=n)]


@pytest.mark.parametrize("fold", [1, 4])
@pytest.mark.parametrize(
    "table, segments, shift",
    [
        ("identity", 8, 5),
        ("relu", 8, 0),
        ("random", 8, 9),
        ("random", 2, 0),
        ("random", 4, 31),  # about the widest shift whose outputs are not all 0
        ("random", 5, 62),  # every output 0: nothing wraps at the widest shift
    ],
)
def test_pwl_every_input(table, segments, shift, fold):
    """All 256 inputs through the table (power-up image, then rewritten), under stalls;
    markers pass unchanged."""
    rng = np.random.default_rng(segments * 100 + shift)
    tab = {"identity": pwl_identity, "relu": pwl_relu}.get(table)
    init = tab(segments, min(shift, 14)) if tab else random_table(rng, segments, shift)
    c = 4
    x = np.arange(-128, 128).reshape(-1, c)
    dut = PiecewiseLinear(c, shift=shift, segments=segments, init=init, fold=fold)
    y = pwl(x, *init, shift)
    if table == "identity":
        assert np.array_equal(y, x)
    if table == "relu":
        assert np.array_equal(y, np.maximum(x, 0))
    sides = _pwl_sides(len(x), rng)
    run_streams_pysim(dut, {"i": (x.tolist(), sides)}, {"o": (y.tolist(), sides)}, seed=fold)
    # The same table written at run time over a zero power-up image.
    blank = PiecewiseLinear(c, shift=shift, segments=segments, fold=fold)
    writes = [
        (port, {"index": k, "value": int(v)})
        for port, values in zip(
            ("breakpoint_write", "slope_write", "intercept_write"), init, strict=True
        )
        for k, v in enumerate(values)
    ]
    run_streams_pysim(
        blank, {"i": (x.tolist(), sides)}, {"o": (y.tolist(), sides)}, writes=writes, seed=3
    )


def test_pwl_rejects_bad_tables():
    with pytest.raises(ValueError, match="breakpoints"):
        PiecewiseLinear(2, shift=0, segments=4, init=([0], [0] * 4, [0] * 4))
    with pytest.raises(ValueError, match="segments"):
        PiecewiseLinear(2, shift=0, segments=1)
    with pytest.raises(ValueError, match="fold"):
        PiecewiseLinear(6, shift=0, fold=4)
    with pytest.raises(ValueError, match="shift"):
        PiecewiseLinear(2, shift=63)


def _pool_frames(rng, h, w, c, n=3):
    frames = [rng.integers(-128, 128, size=(h, w, c)) for _ in range(n)]
    frames[0][...] = -128  # the extreme sums
    frames[1][...] = 127
    return frames


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (5, 7)])
@pytest.mark.parametrize("enable", [0, 1])
def test_global_avg_pool(size, enable):
    """Back-to-back frames, averaged (one beat each, the frame's last markers) or passed."""
    h, w = size
    c = 3
    rng = np.random.default_rng(h * 10 + w)
    frames = _pool_frames(rng, h, w, c)
    epochs = [0, 1, 1]
    x, xs = frames_to_beats(frames, epochs)
    if enable:
        mult, shift = pool_constants(h * w)
        y = [global_avg_pool(f, mult, shift).tolist() for f in frames]
        ys = [EOL | EOF | (EPOCH if e else 0) for e in epochs]
        assert y[0] == [-128] * c and y[1] == [127] * c
    else:
        y, ys = x, xs
    dut = GlobalAvgPool(c, w, h)
    for stall in (0.0, 0.4):
        run_streams_pysim(
            dut,
            {"i": (x, xs)},
            {"o": (y, ys)},
            statics=[("enable", enable)],
            in_stall=stall,
            out_stall=stall,
            seed=enable,
        )


def test_pool_constants_are_close():
    """``mult`` is ``2**shift / pixels`` rounded half up, with 16 significant bits at the
    smallest such shift."""
    for pixels in (1, 2, 3, 35, 300, 4800, 307200):
        mult, shift = pool_constants(pixels)
        assert mult == math.floor(Fraction(2**shift, pixels) + Fraction(1, 2))
        assert mult >= 1 << 15
        assert math.floor(Fraction(2 ** (shift - 1), pixels) + Fraction(1, 2)) < 1 << 15
        assert abs(mult / 2**shift * pixels - 1) < 2**-15
    assert pool_constants(1) == (1 << 15, 15)


class _EnableInSide(wiring.Component):
    """A :class:`GlobalAvgPool` whose ``enable`` is each beat's epoch bit (set per beat by
    the bench), so the pool can switch between frames, or in the middle of one."""

    def __init__(self, pool):
        self.pool = pool
        super().__init__({"i": In(pool.i.signature.flip()), "o": Out(pool.o.signature)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.pool = self.pool
        wiring.connect(m, wiring.flipped(self.i), self.pool.i)
        wiring.connect(m, self.pool.o, wiring.flipped(self.o))
        m.d.comb += self.pool.enable.eq(self.i.payload.side[2])
        return m


def test_global_avg_pool_switched_per_frame_and_mid_frame():
    """Pooled, passed, pooled with the pool turned off half way (its beats from there on
    pass; no answer), pooled again: the last answer is its own frame's average only (a cut
    frame leaves no partial sums)."""
    h, w, c = 3, 4, 2
    rng = np.random.default_rng(8)
    frames = [rng.integers(-128, 128, size=(h, w, c)) for _ in range(4)]
    frames[3][...] = 127
    x, xs = frames_to_beats(frames, [1, 0, 1, 1])
    n = h * w
    cut = n + n + n // 2  # frame 2 pooled up to here, then passed
    xs[cut : cut + n - n // 2] = [v & ~EPOCH for v in xs[cut : cut + n - n // 2]]
    mult, shift = pool_constants(n)
    y, ys = [global_avg_pool(frames[0], mult, shift).tolist()], [xs[n - 1]]
    y += x[n : 2 * n] + x[cut : 3 * n]
    ys += xs[n : 2 * n] + xs[cut : 3 * n]
    y.append(global_avg_pool(frames[3], mult, shift).tolist())
    ys.append(xs[-1])
    assert y[-1] == [127] * c
    for stall in (0.0, 0.4):
        run_streams_pysim(
            _EnableInSide(GlobalAvgPool(c, w, h)),
            {"i": (x, xs)},
            {"o": (y, ys)},
            in_stall=stall,
            out_stall=stall,
            seed=2,
        )


# -- whole heads in Verilator ------------------------------------------------------------

CHANNELS, WIDTH, HEIGHT = 12, 5, 3  # three "cores" of four channels, an odd frame

#: name: per group (c_in, c_out, sources, fold, segments)
LAYOUTS = {
    "two_groups": [(4, 6, (0, 4, 8), 1, 8), (8, 4, (0, 4), 2, 4)],
    "one_wide_group": [(12, 5, (0,), 10, 8)],
}


def random_group(rng, c_in, c_out, sources, segments, *, table, pool, shift=None):
    """Random parameters of a group with activation ``table`` and pool switch ``pool``."""
    weight = rng.integers(-128, 128, size=(c_out, c_in))
    weight[0, :] = -128  # the largest products
    shift = 14 + c_in.bit_length() if shift is None else shift
    pwl_shift = 6
    tab = {"identity": pwl_identity, "relu": pwl_relu}.get(table)
    return HeadGroupParams(
        weight,
        rng.integers(-(1 << 12), 1 << 12, size=c_out),
        rng.integers(-(1 << (shift + 6)), 1 << (shift + 6), size=c_out),
        shift,
        *(tab(segments, pwl_shift) if tab else random_table(rng, segments, pwl_shift)),
        pwl_shift,
        pool,
        int(rng.integers(len(sources))),
    )


def build_group(layout, p, sets, **kw):
    """The group of ``layout`` powered up with ``p`` (``kw``: more :class:`HeadGroup`
    arguments)."""
    c_in, c_out, sources, fold, segments = layout[:5]
    return HeadGroup(
        CHANNELS,
        sources,
        p.weight,
        width=WIDTH,
        height=HEIGHT,
        shift=p.shift,
        scale_init=p.scale,
        bias_init=p.bias,
        pwl_shift=p.pwl_shift,
        segments=segments,
        pwl_init=p.table(),
        pool_init=p.pool,
        source_init=p.source,
        fold=fold,
        sets=sets,
        **kw,
    )


def group_writes(head, k, p, set_=0):
    """``(port, fields)`` writes loading ``p`` into group ``k`` of ``head``, set ``set_``."""
    g = head.groups[k]
    out = [
        (f"g{k}_weight_write", {"index": g.conv.weight_index(co, ci), "value": int(v)})
        for (co, ci), v in np.ndenumerate(p.weight)
    ]
    for field, bank, values in (
        ("scale", g.conv.requant.scales, p.scale),
        ("bias", g.conv.requant.biases, p.bias),
        ("breakpoint", g.pwl.breakpoints, p.breakpoints),
        ("slope", g.pwl.slopes, p.slopes),
        ("intercept", g.pwl.intercepts, p.intercepts),
        ("pool", g.pool_bank, [p.pool]),
        ("source", g.source_bank, [p.source]),
    ):
        out += [
            (f"g{k}_{field}_write", {"index": bank.address(c), "value": int(v)})
            for c, v in enumerate(values)
        ]
    if g.sets > 1:
        out = [(port, dict(f, set=set_)) for port, f in out]
    return out


def expected_output(group_layout, frames, epochs, sets_params):
    """The group's beats for ``frames`` (frame ``k`` computed with
    ``sets_params[epochs[k]]``: its parameters, or a repeated group's ``(params,
    later passes)``)."""
    sources = group_layout[2]
    lanes, sides = [], []
    for f, e in zip(frames, epochs, strict=True):
        p, passes = sets_params[e] if isinstance(sets_params[e], tuple) else (sets_params[e], ())
        y = head_group(f, sources, p, passes)
        if p.pool:
            lanes.append(y.tolist())
            sides.append(EOL | EOF | (EPOCH if e else 0))
        else:
            a, b = frame_to_beats(y, e)
            lanes += a
            sides += b
    return lanes, sides


@pytest.fixture(scope="module")
def heads(rtl_build_dir):
    @functools.cache
    def get(name, sets):
        rng = np.random.default_rng(7)
        layout = LAYOUTS[name]
        # The power-up image: every group pooled with the identity, to be overwritten.
        boot = [
            random_group(rng, c_in, c_out, src, seg, table="identity", pool=1)
            for c_in, c_out, src, _, seg in layout
        ]
        head = Head([build_group(g, p, sets) for g, p in zip(layout, boot, strict=True)])
        return head, VerilatorDesign.build(head, f"head_{name}_s{sets}", rtl_build_dir)

    return get


def _run(design, head, layout, frames, epochs, sets_params, writes, stall, seed):
    x, xs = frames_to_beats(frames, epochs)
    outputs = {}
    for k, g in enumerate(layout):
        y, ys = expected_output(g, frames, epochs, [s[k] for s in sets_params])
        outputs[f"o{k}"] = (y, ys, Lanes(g[1], 8, side_width=MARKER_BITS), stall)
    words = []
    for port, fields in writes:
        layout_ = head.signature.members[port].signature.members["payload"].shape
        words.append((port, struct_word(layout_, **fields)))
    stats = design.run_streams(
        {"i": (x, xs, Lanes(CHANNELS, 8, side_width=MARKER_BITS), stall)},
        outputs,
        writes=words,
        seed=seed,
        test_name=f"run{seed}",
    )
    assert stats["received"] == {port: len(o[0]) for port, o in outputs.items()}
    return stats


def _frames(rng, n):
    frames = [rng.integers(-128, 128, size=(HEIGHT, WIDTH, CHANNELS)) for _ in range(n)]
    frames[0][0, 0] = -128
    frames[-1][-1, -1] = 127
    return frames


@pytest.mark.parametrize("name", list(LAYOUTS))
@pytest.mark.parametrize(
    "tables, pooled",
    [(("random", "relu"), 1), (("identity", "random"), 0), (("relu", "identity"), 1)],
)
def test_head_rtl_written(heads, name, tables, pooled):
    """Every run-time parameter written over the power-up image (new weights, scales,
    biases, tables, switches: groups pooled in turn, starting with ``pooled``), then frames
    streamed with stalls and without."""
    head, design = heads(name, 1)
    layout = LAYOUTS[name]
    rng = np.random.default_rng(len(name) + 3 * len(tables[0]))
    params = [
        random_group(rng, c_in, c_out, src, seg, table=tables[k % 2], pool=(k + pooled) % 2)
        for k, (c_in, c_out, src, _, seg) in enumerate(layout)
    ]
    writes = [w for k, p in enumerate(params) for w in group_writes(head, k, p)]
    frames = _frames(rng, 3)
    for seed, stall in enumerate((0.3, 0.0)):
        _run(design, head, layout, frames, [0] * 3, [params], writes, stall, seed)


def test_head_rtl_two_sets_switch_per_frame(heads):
    """Two parameter sets, one per frame as the epoch markers say: set 0 per pixel with a
    random table, set 1 pooled with ReLU and other weights and source."""
    name = "two_groups"
    head, design = heads(name, 2)
    layout = LAYOUTS[name]
    rng = np.random.default_rng(11)
    sets_params = [
        [
            random_group(rng, c_in, c_out, src, seg, table=table, pool=pool)
            for c_in, c_out, src, _, seg in layout
        ]
        for table, pool in (("random", 0), ("relu", 1))
    ]
    writes = [
        w
        for s, ps in enumerate(sets_params)
        for k, p in enumerate(ps)
        for w in group_writes(head, k, p, s)
    ]
    frames = _frames(rng, 5)
    _run(design, head, layout, frames, [0, 1, 1, 0, 1], sets_params, writes, 0.3, 5)


def test_head_rtl_detects_a_wrong_expectation(heads):
    """The check can fail: the same run expecting the other set's answers fails."""
    name = "one_wide_group"
    head, design = heads(name, 1)
    layout = LAYOUTS[name]
    rng = np.random.default_rng(2)
    good, other = ([random_group(rng, 12, 5, (0,), 8, table="random", pool=0)] for _ in range(2))
    writes = group_writes(head, 0, good[0])
    frames = _frames(rng, 2)
    with pytest.raises(SimulationMismatch, match="o0: output beat"):
        _run(design, head, layout, frames, [0, 0], [other], writes, 0.0, 9)


def test_head_group_checks_its_parameters():
    w = np.zeros((2, 4), int)
    with pytest.raises(ValueError, match="sources"):
        HeadGroup(6, (0, 3), w, width=2, height=2, shift=0)
    with pytest.raises(ValueError, match="source_init"):
        HeadGroup(6, (0, 2), w, width=2, height=2, shift=0, source_init=2)
    with pytest.raises(TypeError):
        Head([])
    g = HeadGroup(6, (0,), w, width=2, height=2, shift=0)
    with pytest.raises(ValueError, match="same input"):
        Head([g, HeadGroup(8, (0,), w, width=2, height=2, shift=0)])


def test_golden_head_group_matches_the_primitives():
    """The golden group is the primitives in order, on the chosen lanes (pinned against
    a direct computation)."""
    rng = np.random.default_rng(4)
    f = rng.integers(-128, 128, size=(3, 4, 8))
    p = random_group(rng, 4, 3, (0, 4), 4, table="random", pool=0)
    p = HeadGroupParams(p.weight, p.scale, p.bias, p.shift, *p.table(), p.pwl_shift, 0, 1)
    acc = f[..., 4:8] @ p.weight.T
    t = (acc * p.scale + p.bias + (1 << (p.shift - 1))) >> p.shift
    y = pwl(np.clip(t, -128, 127), *p.table(), p.pwl_shift)
    assert np.array_equal(head_group(f, (0, 4), p), y)
    pooled = HeadGroupParams(p.weight, p.scale, p.bias, p.shift, *p.table(), p.pwl_shift, 1, 1)
    assert np.array_equal(head_group(f, (0, 4), pooled), global_avg_pool(y, *pool_constants(12)))
    unsorted = HeadGroupParams(
        p.weight, p.scale, p.bias, p.shift, [3, 3, 1], *p.table()[1:], p.pwl_shift
    )
    with pytest.raises(ValueError, match="increase"):
        head_group(f, (0, 4), unsorted)
