# amaranth: UnusedElaboratable=no
"""Regular and downsampling blocks (frozen) against the golden model."""

import functools

import numpy as np
import pytest

from semifreddo_hw.blocks import DownsamplingBlock, RegularBlock
from sim.golden.blocks import downsampling_block, regular_block
from sim.pysim import run_stream_pysim
from sim.rtl import VerilatorDesign
from spec import dataflow
from spec.dataflow import channel_shuffle
from spec.stream import frames_to_beats
from tests.rtl_helpers import extra_frame_cycles, run_pixels, writes_for
from weights.synthetic import trained_like_int8


def quant(rng, n):
    return {
        "scale": rng.integers(1, 1 << 11, size=n).tolist(),
        "bias": rng.integers(-(1 << 16), 1 << 16, size=n).tolist(),
        "shift": 10,
    }


def branch(rng, c):
    return dict(
        dw=trained_like_int8(rng, c, 9).reshape(c, 3, 3),
        dw_quant=quant(rng, c),
        pw=trained_like_int8(rng, c, c),
        pw_quant=quant(rng, c),
    )


def regular(rng, c, w, h, configurable=False):
    p = branch(rng, c // 2)
    return RegularBlock(c, w, h, **p, configurable=configurable), lambda f: regular_block(f, **p)


def downsampling(rng, c, w, h, configurable=False):
    br = [branch(rng, c), branch(rng, c)]
    return DownsamplingBlock(
        c, w, h, branches=br, configurable=configurable
    ), lambda f: downsampling_block(f, branches=br)


def vectors(rng, ref, c, w, h, frames):
    fr = [rng.integers(-128, 128, size=(h, w, c)) for _ in range(frames)]
    fr[0][0, 0] = -128
    fr[-1][-1] = 127
    x, xs = frames_to_beats(fr)
    y, ys = frames_to_beats([ref(f) for f in fr])
    return x, xs, y, ys


def test_golden_channel_shuffle():
    f = np.arange(6).reshape(1, 1, 6)
    assert channel_shuffle(f).ravel().tolist() == [0, 3, 1, 4, 2, 5]


def test_block_join_is_concatenation_then_shuffle():
    # forward joins a block's two halves and shuffles them in one pass.
    rng = np.random.default_rng(0)
    for a, b in [
        (rng.integers(-128, 128, size=(3, 5, 4)), rng.integers(-128, 128, size=(3, 5, 4))),
        (rng.normal(size=(2, 3, 1, 6)), rng.normal(size=(2, 3, 1, 6))),  # float, batched
        (rng.integers(-128, 128, size=(2, 2, 3)), rng.normal(size=(2, 2, 3))),  # mixed types
    ]:
        want = channel_shuffle(np.concatenate([a, b], axis=-1))
        got = dataflow._join_shuffled([a, b])
        assert got.dtype == want.dtype and np.array_equal(got, want)
    parts = [rng.integers(9, size=(2, 1, 2)) for _ in range(3)]  # three: the general way
    want = channel_shuffle(np.concatenate(parts, axis=-1))
    assert np.array_equal(dataflow._join_shuffled(parts), want)
    with pytest.raises(ValueError, match="even"):  # odd widths: as channel_shuffle refuses
        dataflow._join_shuffled([np.zeros((1, 1, 1)), np.zeros((1, 1, 2))])


@pytest.mark.parametrize("make", [regular, downsampling])
@pytest.mark.parametrize(
    "c,w,h,configurable",
    [
        (2, 5, 3, False),
        (4, 13, 7, False),
        (6, 1, 4, True),
        (8, 6, 1, False),
        (2, 1, 1, True),
        (4, 7, 5, True),
    ],
)
def test_block_pysim(make, c, w, h, configurable):
    rng = np.random.default_rng([c, w, h])
    dut, ref = make(rng, c, w, h, configurable)
    x, xs, y, ys = vectors(rng, ref, c, w, h, 2)
    run_stream_pysim(dut, x, y, in_sides=xs, out_sides=ys, in_stall=0.4, out_stall=0.4)


RTL = {
    "regular_13x7_c16": (regular, 16, 13, 7),
    "down_13x7_c8": (downsampling, 8, 13, 7),
    "regular_6x1_c4": (regular, 4, 6, 1),
    "cfg_regular_9x5_c8": (regular, 8, 9, 5),
}


@pytest.fixture(scope="module")
def designs(rtl_build_dir):
    @functools.cache
    def get(name):
        make, c, w, h = RTL[name]
        rng = np.random.default_rng(len(name))
        dut, ref = make(rng, c, w, h, name.startswith("cfg_"))
        return dut, ref, VerilatorDesign.build(dut, f"blk_{name}", rtl_build_dir)

    return get


@pytest.mark.parametrize("name", list(RTL))
def test_block_rtl_bit_exact(designs, name):
    _, c, w, h = RTL[name]
    dut, ref, design = designs(name)
    x, xs, y, ys = vectors(np.random.default_rng(1), ref, c, w, h, 3)
    c_out = len(y[0])
    run_pixels(design, (x, xs), (y, ys), c, c_out, stalls=[(0.3, 0.3), (0.6, 0.1), (0.1, 0.6)])


def test_configurable_block_takes_new_weights(designs):
    """Overwrite the power-up weights of both layers through the write ports."""
    _, c, w, h = RTL["cfg_regular_9x5_c8"]
    dut, _, design = designs("cfg_regular_9x5_c8")
    rng = np.random.default_rng(7)
    p = branch(rng, c // 2)
    writes = []
    for name in ("dw", "pw"):
        layer = dut.layers[name]
        order = np.argsort([layer.weight_index(*i) for i in np.ndindex(p[name].shape)])
        writes += writes_for(dut, f"{name}_weight_write", p[name].reshape(-1)[order])
        q = p[f"{name}_quant"]
        writes += writes_for(dut, f"{name}_scale_write", q["scale"])
        writes += writes_for(dut, f"{name}_bias_write", q["bias"])
    x, xs, y, ys = vectors(rng, lambda f: regular_block(f, **p), c, w, h, 2)
    run_pixels(design, (x, xs), (y, ys), c, c, writes=writes, name="rewrite")


def test_regular_block_one_pixel_per_clock(designs):
    """Without stalls, each extra back-to-back frame costs exactly width * height cycles:
    one pixel per clock in steady state."""
    _, c, w, h = RTL["regular_13x7_c16"]
    dut, ref, design = designs("regular_13x7_c16")
    cycles = []
    for frames in (1, 3):
        x, xs, y, ys = vectors(np.random.default_rng(frames), ref, c, w, h, frames)
        (stats,) = run_pixels(design, (x, xs), (y, ys), c, c, stalls=[(0, 0)], name=f"tp{frames}")
        cycles.append(stats["cycles"])
    assert cycles[1] - cycles[0] == 2 * w * h


def rate_options(names, period, fold, configurable):
    """Layer options of a rate build: each layer folded ``fold`` ways, frozen products run
    over up to 6 digits (no more than the period), every layer told the period of its
    beats (``period[name]``)."""
    return {
        n: {"fold": fold, "period": period[n]}
        | ({} if configurable else {"digits": min(6, period[n])})
        for n in names
    }


# block maker, channels, width, height, configurable, fold, input period (cycles per pixel);
# whether the block's output comes from registers, whether the skew FIFOs go
RATE = [
    (regular, 8, 7, 5, False, 2, 9, True, None),
    (regular, 4, 6, 3, True, 2, 9, True, None),
    (regular, 8, 7, 5, False, 4, 4, False, None),  # 4 < 4 + 1: the plain deserializer
    (downsampling, 8, 9, 7, False, 4, 30, True, True),
    (downsampling, 4, 6, 5, True, 4, 30, True, True),
    (downsampling, 8, 9, 7, False, 4, 3, True, False),  # beats 6 apart: no time to wait
]


@pytest.mark.parametrize("make,c,w,h,configurable,fold,period,registered,skew_free", RATE)
def test_rate_built_block(make, c, w, h, configurable, fold, period, registered, skew_free):
    """Blocks of a rate build: where the period allows, the last layers' deserializers are
    registered (no slice need follow the block) and a downsampling block's branches meet
    without skew FIFOs; bit-exact under stalls either way, and with pixels fed at the
    period and no stalls, each further frame costs exactly its pixels' time (the rate
    kept)."""
    rng = np.random.default_rng([c, w, h, fold, period])
    if make is regular:
        p = branch(rng, c // 2)
        names_ = ("dw", "pw")
        opts = rate_options(names_, {"dw": period, "pw": period}, fold, configurable)
        dut = RegularBlock(c, w, h, **p, configurable=configurable, layer_options=opts)
        ref = functools.partial(regular_block, **p)
    else:
        br = [branch(rng, c), branch(rng, c)]
        names_ = ("b0_dw", "b0_pw", "b1_dw", "b1_pw")
        opts = rate_options(names_, dict.fromkeys(names_, 2 * period), fold, configurable)
        dut = DownsamplingBlock(c, w, h, branches=br, configurable=configurable, layer_options=opts)
        ref = functools.partial(downsampling_block, branches=br)
        assert (dut.skew_depth == 0) == skew_free
    assert dut.registered_output == registered
    x, xs, y, ys = vectors(rng, ref, c, w, h, 3)
    run_stream_pysim(dut, x, y, in_sides=xs, out_sides=ys, in_stall=0.4, out_stall=0.4)
    assert extra_frame_cycles(dut, (x, xs, y, ys), in_period=period) == len(x) // 3 * period


def test_block_parameters_are_checked():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="even"):
        RegularBlock(3, 4, 4, **branch(rng, 1))
    with pytest.raises(ValueError, match="map 2 channels"):
        RegularBlock(4, 4, 4, **branch(rng, 3))
    with pytest.raises(ValueError, match="two branches"):
        DownsamplingBlock(2, 4, 4, branches=[branch(rng, 2)])
