"""Golden twins of the arithmetic primitives, as specified in ``docs/numerics.md``.

Pure numpy integer code, written from the specification and not from the hardware: it must
never import Amaranth or ``semifreddo_hw`` (an import contract checks it). Every function
takes and returns ``np.int64`` arrays and checks that its intermediates stay inside int64.
"""

import numpy as np

from spec.formats import ALPHA_ONE, INT8_MAX, INT8_MIN

__all__ = [
    "pixels_to_int8",
    "matvec",
    "requantize",
    "alpha_blend",
    "alpha_code",
    "global_avg_pool",
    "pwl",
]


_BAND = 1 << 15  # elements per band of requantize's rows


def _ints(x, name):
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must be integers, not {a.dtype}")
    return a.astype(np.int64, copy=False)  # no copy when already int64: callers never write


def _int8(x, name):
    a = _ints(x, name)
    if a.size and (a.min() < INT8_MIN or a.max() > INT8_MAX):
        raise ValueError(f"{name} must lie in int8 [-128, 127]")
    return a


def _round_shift(t, shift):
    """floor(t / 2**shift + 1/2): add half an output LSB, then shift right arithmetically.
    In place: ``t`` is always the caller's own intermediate (a frame-sized pass saved)."""
    if shift == 0:
        return t
    t += 1 << (shift - 1)
    t >>= shift
    return t


def pixels_to_int8(pixels):
    """§2: 8-bit unsigned image samples enter the network as ``p - 128``."""
    p = _ints(pixels, "pixels")
    if p.size and (p.min() < 0 or p.max() > 255):
        raise ValueError("pixels must lie in [0, 255]")
    return p - 128


def matvec(weights, x):
    """§3: ``y[..., j] = sum_i weights[j, i] * x[..., i]``, exact (int8 operands)."""
    w, x = _int8(weights, "weights"), _int8(x, "x")
    return x @ w.T


def requantize(acc, scale, bias, shift, relu=False):
    """§4: ``clamp((acc * scale + bias + 2**(shift-1)) >> shift, 0 if relu else -128, 127)``.

    ``scale`` and ``bias`` are per channel (last axis); the rounding term is 0 for shift 0.
    """
    acc, scale, bias = _ints(acc, "acc"), _ints(scale, "scale"), _ints(bias, "bias")

    def mag(a):  # largest magnitude, as a Python int (np.abs(INT64_MIN) would overflow)
        return max((abs(int(v)) for v in (a.min(initial=0), a.max(initial=0))), default=0)

    half = (1 << shift) >> 1
    out = np.empty(np.broadcast_shapes(acc.shape, scale.shape, bias.shape), dtype=np.int64)
    # In place, band by band of rows (about 256 KiB of int64) while the band is in cache,
    # when scale and bias are per channel and acc spans the output (the convolutions' case:
    # a paper frame runs 69 requantizers on large frames). The largest band bound is the
    # whole array's, so the overflow check is the same as for the whole.
    banded = acc.ndim > max(scale.ndim, bias.ndim, 1) and acc.shape == out.shape and acc.size
    rows, step = (acc.shape[0], max(1, _BAND // acc[0].size)) if banded else (0, 1)
    m_scale, m_rest = mag(scale), mag(bias) + half
    for band in [slice(r, r + step) for r in range(0, rows, step)] or [...]:
        a, t = acc[band], out[band]
        if mag(a) * m_scale + m_rest >= 1 << 63:
            raise OverflowError("requantize intermediates exceed int64")
        np.multiply(a, scale, out=t)
        t += bias + half
        t >>= shift
        np.clip(t, 0 if relu else INT8_MIN, INT8_MAX, out=t)
    return out


def alpha_code(alpha):
    """§5: the 8-bit code of a blend weight ``alpha`` in [0, 1]: ``round(128 * alpha)``."""
    a = np.asarray(alpha, dtype=np.float64)
    if a.size and (np.isnan(a).any() or a.min() < 0 or a.max() > 1):
        raise ValueError("alpha must lie in [0, 1]")
    return np.floor(a * ALPHA_ONE + 0.5).astype(np.int64)


def alpha_blend(code, x_frozen, x_trainable):
    """§5: ``(a * x_f + (128 - a) * x_t + 64) >> 7`` per channel (``code`` on the last axis).

    Codes 0, 64 and 128 are alpha = 0, 0.5 and 1 exactly; the result is always int8.
    """
    a = _ints(code, "alpha code")
    if a.size and (a.min() < 0 or a.max() > ALPHA_ONE):
        raise ValueError("alpha codes must lie in [0, 128]")
    xf, xt = _int8(x_frozen, "x_frozen"), _int8(x_trainable, "x_trainable")
    # Exact in int16, a quarter of int64's memory traffic: with a in [0, 128] and int8
    # inputs, every term, the sum and the rounded sum lie in [-16384, 16320] (128 times a
    # convex combination of two int8 values, plus 64).
    shape = np.broadcast_shapes(a.shape, xf.shape, xt.shape)
    t, u = np.empty(shape, dtype=np.int16), np.empty(shape, dtype=np.int16)
    np.multiply(a, xf, out=t)
    np.multiply(ALPHA_ONE - a, xt, out=u)
    t += u
    return _round_shift(t, 7).astype(np.int64)


def global_avg_pool(frame, mult, shift):
    """§6: per channel, ``clamp((sum over all pixels * mult + 2**(shift-1)) >> shift)`` to int8.

    ``frame`` has shape (height, width, channels); ``mult / 2**shift`` approximates
    ``1 / (height * width)`` (numerics §6 says how the generator picks them).
    """
    f = _int8(frame, "frame")
    total = f.reshape(-1, f.shape[-1]).sum(axis=0)
    return np.clip(_round_shift(total * int(mult), shift), INT8_MIN, INT8_MAX)


def pwl(x, breakpoints, slopes, intercepts, shift):
    """§7: piecewise-linear activation. Segment ``k`` = number of breakpoints <= x; then
    ``clamp((slopes[k] * x + intercepts[k] + 2**(shift-1)) >> shift)`` to int8."""
    x = _int8(x, "x")
    bp = _int8(breakpoints, "breakpoints")
    if np.any(np.diff(bp) <= 0):
        raise ValueError("breakpoints must increase strictly")
    m, c = _ints(slopes, "slopes"), _ints(intercepts, "intercepts")
    if m.shape != (len(bp) + 1,) or c.shape != (len(bp) + 1,):
        raise ValueError("need one slope and one intercept per segment (breakpoints + 1)")
    k = np.searchsorted(bp, x, side="right")
    return np.clip(_round_shift(m[k] * x + c[k], shift), INT8_MIN, INT8_MAX)
