"""The golden primitives against the written specification (docs/numerics.md), computed here
a second way with Python fractions."""

import math
from fractions import Fraction

import numpy as np
import pytest

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
