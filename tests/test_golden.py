"""The golden primitives against the written specification (docs/numerics.md), computed here
a second way with Python fractions; the golden layers, which compute in floats where that is
exact, against per-pixel int64 loops."""

import math
from fractions import Fraction

import numpy as np
import pytest

from sim.golden import layers as lay
from sim.golden import primitives as g


def spec_round(num: Fraction) -> int:
    """numerics §1: round half up = floor(v + 1/2)."""
    return math.floor(num + Fraction(1, 2))


def test_golden_never_imports_hardware_code():
    import ast
    import pathlib

    for path in pathlib.Path(g.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert not name.startswith(("amaranth", "semifreddo_hw")), (path, name)


def test_matvec_is_exact_at_extremes():
    w = np.full((3, 64), -128)
    x = np.full((5, 64), -128)
    assert (g.matvec(w, x) == 64 * 128 * 128).all()
    with pytest.raises(ValueError, match="int8"):
        g.matvec(np.array([[128]]), np.array([[1]]))


@pytest.mark.parametrize("shift", [0, 1, 2, 7, 15, 24])
@pytest.mark.parametrize("relu", [False, True])
def test_requantize_matches_spec(shift, relu):
    rng = np.random.default_rng(shift)
    acc = rng.integers(-(2**20), 2**20, size=(50, 6))
    # Rounding edges: exact halves just above/below, and saturation edges.
    if shift:
        acc[0] = [(2 * k + 1) << (shift - 1) for k in range(-3, 3)]
        acc[1] = acc[0] - 1
    acc[2] = [127 << shift, 128 << shift, -128 << shift, -129 << shift, 0, -1]
    scale = np.array([1, -1, 3, 32767, -32768, 1])
    bias = np.array([0, 5, -(2**31), 2**31 - 1, 0, -1])
    got = g.requantize(acc, scale, bias, shift, relu)
    lo = 0 if relu else -128
    for r in range(acc.shape[0]):
        for c in range(acc.shape[1]):
            t = Fraction(int(acc[r, c]) * int(scale[c]) + int(bias[c]), 2**shift)
            assert got[r, c] == min(127, max(lo, spec_round(t))), (r, c)


def test_requantize_at_int64_scale():
    # Products near 2**63 must be computed, not wrapped, or refused.
    assert g.requantize([2**32], [2**30], [0], 62).tolist() == [1]
    assert g.requantize([2**32], [2**30 - 1], [0], 0).tolist() == [127]
    assert g.requantize([-(2**32)], [2**30], [0], 0).tolist() == [-128]
    with pytest.raises(OverflowError):
        g.requantize([2**33], [2**31], [0], 60)


def test_alpha_blend_exact_cases():
    rng = np.random.default_rng(0)
    xf = rng.integers(-128, 128, size=(100, 8))
    xt = rng.integers(-128, 128, size=(100, 8))
    assert np.array_equal(g.alpha_blend(np.zeros(8, int), xf, xt), xt)
    assert np.array_equal(g.alpha_blend(np.full(8, 128), xf, xt), xf)
    half = g.alpha_blend(np.full(8, 64), xf, xt)
    assert np.array_equal(half, np.floor((xf + xt) / 2 + 0.5).astype(int))
    assert list(g.alpha_code([0.0, 0.5, 1.0])) == [0, 64, 128]
    codes = rng.integers(0, 129, size=8)
    out = g.alpha_blend(codes, xf, xt)
    for r in range(5):
        for c in range(8):
            v = Fraction(int(codes[c]) * int(xf[r, c]) + (128 - int(codes[c])) * int(xt[r, c]), 128)
            assert out[r, c] == spec_round(v)
    assert out.min() >= -128 and out.max() <= 127


def test_global_avg_pool_and_pwl_match_spec():
    rng = np.random.default_rng(1)
    frame = rng.integers(-128, 128, size=(5, 7, 4))
    mult, shift = 1872, 16  # ~ 2**16 / 35
    got = g.global_avg_pool(frame, mult, shift)
    for c in range(4):
        v = spec_round(Fraction(int(frame[..., c].sum()) * mult, 2**shift))
        assert got[c] == min(127, max(-128, v))

    x = np.arange(-128, 128)
    bp, m, c = [-10, 0, 50], [0, 16, 32, -8], [0, 100, 0, 3000]
    got = g.pwl(x, bp, m, c, 5)
    for xv, yv in zip(x, got, strict=True):
        k = sum(1 for b in bp if b <= xv)
        assert yv == min(127, max(-128, spec_round(Fraction(m[k] * int(xv) + c[k], 32))))
    with pytest.raises(ValueError, match="increase"):
        g.pwl(x, [3, 3], [0, 0, 0], [0, 0, 0], 0)


def test_pixels_enter_as_offset_int8():
    assert list(g.pixels_to_int8([0, 128, 255])) == [-128, 0, 127]
    with pytest.raises(ValueError):
        g.pixels_to_int8([256])


# The layers compute their exact accumulators in float32, float64, int32 or int64 (whichever
# is narrowest and still exact, sim/golden/layers.py); here against the definition, in int64,
# one output pixel at a time.


def _ref_conv(frame, weights, stride, depthwise=False):
    f = np.asarray(frame, dtype=np.int64)
    h, w, c = f.shape
    p = np.zeros((h + 2, w + 2, c), dtype=np.int64)
    p[1:-1, 1:-1] = f
    wt = np.asarray(weights, dtype=np.int64)
    ho, wo = -(-h // stride), -(-w // stride)
    out = np.zeros((ho, wo, wt.shape[0]), dtype=np.int64)
    for i in range(ho):
        for j in range(wo):
            patch = p[i * stride : i * stride + 3, j * stride : j * stride + 3].transpose(2, 0, 1)
            if depthwise:  # kernels (C, 3, 3): channel c with kernel c
                out[i, j] = (wt * patch).sum(axis=(1, 2))
            else:  # weights (C_out, C_in, 3, 3)
                out[i, j] = (wt * patch[None]).sum(axis=(1, 2, 3))
    return out


def _ref_window(frame, stride):
    f = np.asarray(frame, dtype=np.int64)
    h, w, c = f.shape
    p = np.zeros((h + 2, w + 2, c), dtype=np.int64)
    p[1:-1, 1:-1] = f
    return np.array(
        [
            [p[i : i + 3, j : j + 3].reshape(-1) for j in range(0, w, stride)]
            for i in range(0, h, stride)
        ],
        dtype=np.int64,
    ).reshape(-(-h // stride), -(-w // stride), 9 * c)


def _int8_cases(rng, shape):
    """Random int8, then the extremes: all -128, all 127, and the two alternating."""
    alt = np.where(np.indices(shape).sum(axis=0) % 2, 127, -128)
    return [rng.integers(-128, 128, size=shape), np.full(shape, -128), np.full(shape, 127), alt]


# (height, width, channels): odd sizes, one pixel, one row or column, many channels
LAYER_SIZES = [(7, 5, 3), (1, 1, 1), (1, 9, 2), (6, 1, 4), (4, 6, 130), (9, 13, 17)]


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("h,w,c", LAYER_SIZES)
def test_fast_layers_match_int64_reference(h, w, c, stride):
    rng = np.random.default_rng([h, w, c, stride])
    for frame, k in zip(_int8_cases(rng, (h, w, c)), _int8_cases(rng, (c, 3, 3)), strict=True):
        assert np.array_equal(lay.window3x3(frame, stride), _ref_window(frame, stride))
        got = lay.depthwise3x3(frame, k, stride)
        assert got.dtype == np.int64
        assert np.array_equal(got, _ref_conv(frame, k, stride, depthwise=True))
    c_out = min(c, 11)
    for frame, wt in zip(
        _int8_cases(rng, (h, w, c)), _int8_cases(rng, (c_out, c, 3, 3)), strict=True
    ):
        got = lay.conv3x3(frame, wt, stride)
        assert got.dtype == np.int64
        assert np.array_equal(got, _ref_conv(frame, wt, stride))
        pw = wt[:, :, 1, 1]
        got = lay.pointwise(frame, pw)
        assert got.dtype == np.int64
        assert np.array_equal(got, np.einsum("hwi,oi->hwo", frame.astype(np.int64), pw))


@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_across_row_bands(stride):
    # Taller and wider than one band of rows (_BAND elements), the last band a partial one.
    h, w, c = 101, 67, 64
    assert -(-w // stride) * c * 2 < lay._BAND < -(-h // stride) * -(-w // stride) * c
    rng = np.random.default_rng(stride)
    for frame, k in zip(_int8_cases(rng, (h, w, c)), _int8_cases(rng, (c, 3, 3)), strict=True):
        assert np.array_equal(
            lay.depthwise3x3(frame, k, stride), _ref_conv(frame, k, stride, depthwise=True)
        )


@pytest.mark.parametrize("k,value", [(1024, -128), (1101, 127), (1101, -128)])
def test_pointwise_exact_at_the_float32_bound(k, value):
    # 1024 terms of (-128)**2 sum to 2**24 exactly, the most float32 holds; 1101 terms of
    # 127**2 give an odd sum past 2**24, which float32 would round: float64 takes over.
    x = np.full((3, k), value)
    x[1, ::2] = -value
    w = np.full((2, k), value)
    want = x.astype(object) @ w.T.astype(object)
    assert np.array_equal(lay.pointwise(x, w), want.astype(np.int64))
    assert lay._exact_type(k * 128 * 128) == (np.float32 if k <= 1024 else np.float64)


def test_layers_fall_back_to_int64_past_the_float_bounds():
    # Operands far past int8: every float product would round (2**40 + 1 times 2**13 + 1 is
    # past 2**53), so only the int64 path gives these sums; checked against Python ints.
    rng = np.random.default_rng(7)
    big, small = (1 << 40) + 1, (1 << 13) + 1
    frame = rng.choice([big, -big, big - 2, 1], size=(5, 4, 3))
    wt = rng.choice([small, -small, 3], size=(2, 3, 3, 3))
    k = wt[0]
    assert lay._exact_type(27 * big * small) is np.int64
    exact = _ref_conv(frame.astype(object), wt.astype(object), 1)
    assert np.array_equal(lay.conv3x3(frame, wt, 1), exact.astype(np.int64))
    exact = _ref_conv(frame.astype(object), k.astype(object), 2, depthwise=True)
    got = lay.depthwise3x3(frame, k, 2)
    assert got.dtype == np.int64 and np.array_equal(got, exact.astype(np.int64))
    pw = wt[:, :, 0, 0]
    exact = frame.astype(object) @ pw.T.astype(object)
    assert np.array_equal(lay.pointwise(frame, pw), exact.astype(np.int64))
    # Depthwise sums past int32 (nine terms of 2**28) take int64 too.
    got = lay.depthwise3x3(np.full((3, 3, 2), 1 << 12), np.full((2, 3, 3), 1 << 16))
    assert got[1, 1].tolist() == [9 << 28] * 2 and got[0, 0].tolist() == [4 << 28] * 2
    # Past int64 the layers refuse rather than wrap.
    with pytest.raises(OverflowError):
        lay.pointwise(np.full((1, 4), 1 << 40), np.full((1, 4), 1 << 22))
    with pytest.raises(OverflowError):
        lay.depthwise3x3(np.full((2, 2, 1), 1 << 40), np.full((1, 3, 3), 1 << 22))


def test_in_place_arithmetic_leaves_the_inputs_alone():
    rng = np.random.default_rng(3)
    acc = rng.integers(-(2**20), 2**20, size=(4, 5, 6))
    xf, xt = rng.integers(-128, 128, size=(2, 4, 5, 6))
    before = [a.copy() for a in (acc, xf, xt)]
    g.requantize(acc, np.full(6, 3), np.full(6, -7), 9, relu=True)
    g.alpha_blend(np.full(6, 50), xf, xt)
    for a, b in zip((acc, xf, xt), before, strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("shift,relu", [(0, False), (20, True), (33, False)])
def test_requantize_in_bands_matches_the_formula(shift, relu):
    # More rows than one band (g._BAND elements), the last band partial; then shapes that
    # are not banded (per-element scale, one row, a scalar).
    rng = np.random.default_rng(shift)
    acc = rng.integers(-(2**30), 2**30, size=(37, 41, 29))
    assert acc[0].size * 2 < g._BAND < acc.size
    scale = rng.integers(-(2**15), 2**15, size=29)
    bias = rng.integers(-(2**31), 2**31, size=29)
    lo = 0 if relu else -128

    def want(acc, scale, bias):
        t = acc.astype(object) * scale.astype(object) + bias.astype(object)
        return np.clip((t + ((1 << shift) >> 1)) >> shift, lo, 127).astype(np.int64)

    assert np.array_equal(g.requantize(acc, scale, bias, shift, relu), want(acc, scale, bias))
    s2 = rng.integers(-(2**15), 2**15, size=(41, 29))
    assert np.array_equal(g.requantize(acc, s2, bias, shift, relu), want(acc, s2, bias))
    assert np.array_equal(
        g.requantize(acc[0, 0], scale, bias, shift, relu), want(acc[0, 0], scale, bias)
    )
    one = np.array(acc[0, 0, 0])
    assert (
        g.requantize(one, scale[:1], bias[:1], shift, relu).tolist()
        == want(one, scale[:1], bias[:1]).tolist()
    )


def test_requantize_overflow_in_the_last_band_is_refused():
    acc = np.zeros((40, 41, 29), dtype=np.int64)
    acc[-1, -1, -1] = 1 << 40
    with pytest.raises(OverflowError):
        g.requantize(acc, np.full(29, 1 << 23), np.zeros(29, int), 0)
    acc[-1, -1, -1] = (1 << 40) - 1  # just inside int64
    assert g.requantize(acc, np.full(29, 1 << 23), np.zeros(29, int), 0)[-1, -1, -1] == 127


@pytest.mark.parametrize("stride", [1, 2])
def test_conv3x3_pads_with_constants(stride):
    """conv3x3 padded with q per channel == the frame inside a border of q pixels, padded
    with zeros, convolved at stride 1 and cropped (the zeros then never reach an output)."""
    from sim.golden.layers import conv3x3

    rng = np.random.default_rng(stride)
    x = rng.integers(-128, 128, size=(7, 6, 3))
    w = rng.integers(-128, 128, size=(5, 3, 3, 3))
    q = np.array([-128, 127, 9])
    big = np.broadcast_to(q, (9, 8, 3)).copy()
    big[1:-1, 1:-1] = x
    want = conv3x3(big, w, 1)[1:-1:stride, 1:-1:stride]
    assert np.array_equal(conv3x3(x, w, stride, q), want)
    assert np.array_equal(conv3x3(x, w, stride, np.zeros(3, int)), conv3x3(x, w, stride))
    with pytest.raises(ValueError, match="pad of shape"):
        conv3x3(x, w, stride, [1, 2])
