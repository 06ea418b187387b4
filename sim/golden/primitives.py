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


def _ints(x, name):
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must be integers, not {a.dtype}")
    return a.astype(np.int64)


def _int8(x, name):
    a = _ints(x, name)
    if a.size and (a.min() < INT8_MIN or a.max() > INT8_MAX):
        raise ValueError(f"{name} must lie in int8 [-128, 127]")
    return a


def _round_shift(t, shift):
    """floor(t / 2**shift + 1/2): add half an output LSB, then shift right arithmetically."""
    if shift == 0:
        return t
    return (t + (1 << (shift - 1))) >> shift


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

    bound = mag(acc) * mag(scale) + mag(bias) + ((1 << shift) >> 1)
    if bound >= 1 << 63:
        raise OverflowError("requantize intermediates exceed int64")
    t = _round_shift(acc * scale + bias, shift)
    return np.clip(t, 0 if relu else INT8_MIN, INT8_MAX)


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
    return _round_shift(a * xf + (ALPHA_ONE - a) * xt, 7)


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
