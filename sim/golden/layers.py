"""Golden twins of the streaming layers (numpy only, independent of the hardware code).

The convolutions return exact integer accumulators (``docs/numerics.md`` §3), but compute
them in the narrowest type that is still exact (:func:`_exact_type`): numpy multiplies int64
matrices with its own loops, not BLAS, which made one ``paper`` frame take seconds
(``docs/performance.md``, "Golden model speed").
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["window3x3", "conv3x3", "depthwise3x3", "pointwise"]

# Why a float product of integers is exact: a binary float with a p-bit significand holds
# every integer of magnitude <= 2**p. Every product, and every partial sum of a dot product
# of K terms, whatever order BLAS adds them in and with or without fused multiply-adds, is
# an integer no larger than K * max|x| * max|w|; while that bound is <= 2**p, no step
# rounds. int8 operands (magnitudes <= 128, products <= 2**14) stay exact in float32 up to
# K = 1024 terms and in float64 up to K = 2**39. Past both, the int64 loops (still exact,
# and refused past 2**63 rather than wrapped).
_FLOATS = ((np.float32, 24), (np.float64, 53))
_BAND = 1 << 16  # elements per band of depthwise3x3's rows (256 KiB of int32)


def _mag(a) -> int:
    """Largest magnitude in ``a``, as a Python int (np.abs(INT64_MIN) would overflow)."""
    if not a.size:
        return 0
    return max(abs(int(a.min())), abs(int(a.max())))


def _bound(terms, x, w) -> int:
    """A bound on every product and partial sum of ``terms``-term dot products of ``x`` and
    ``w`` (and on each operand: magnitudes count as at least 1); refused past int64."""
    bound = max(terms, 1) * max(_mag(x), 1) * max(_mag(w), 1)
    if bound >= 1 << 63:
        raise OverflowError("convolution accumulators exceed int64")
    return bound


def _exact_type(bound):
    """The narrowest of float32, float64 and int64 in which integer dot products are exact
    when every product and partial sum is at most ``bound`` in magnitude."""
    for dtype, bits in _FLOATS:
        if bound <= 1 << bits:
            return dtype
    return np.int64


def _matmul(x, w, dtype):
    """``x @ w`` for integer ``x`` (..., K) and ``w`` (K, N), computed in ``dtype`` (one that
    :func:`_exact_type` chose for them), returned as int64."""
    # One (pixels, K) matrix: one BLAS call, not one per image row.
    flat = x.reshape(-1, x.shape[-1]).astype(dtype, copy=False)
    y = flat @ w.astype(dtype, copy=False)
    return y.astype(np.int64, copy=False).reshape(*x.shape[:-1], w.shape[1])


def _frame(frame):
    f = np.asarray(frame, dtype=np.int64)
    if f.ndim != 3:
        raise ValueError(f"a frame has shape (height, width, channels), not {f.shape}")
    return f


def _padded(f, stride, dtype, pad=0):
    """``f`` with a border of ``pad`` pixels (zeros, or one value per channel), its columns
    dealt into ``stride`` phases: phase ``r`` holds the padded columns ``r, r + stride,
    r + 2 * stride, ...`` (padded column ``q`` is frame column ``q - 1``). A 3x3 tap at
    stride 2 then reads consecutive columns of one phase, so that numpy runs one inner loop
    per output row, not one per pixel."""
    h, w, c = f.shape
    phases = []
    for r in range(stride):
        ph = np.empty((h + 2, len(range(r, w + 2, stride)), c), dtype=dtype)
        m0 = 0 if r else 1  # the first of the phase's columns that holds a frame column
        src = f[:, r - 1 + stride * m0 :: stride]
        m1 = m0 + src.shape[1]
        # The border only: the inside is written once, converted on the way.
        ph[0], ph[-1], ph[:, :m0], ph[:, m1:] = pad, pad, pad, pad
        ph[1:-1, m0:m1] = src
        phases.append(ph)
    return phases


def _tap(phases, ky, kx, stride, rows, wo):
    """Tap ``(ky, kx)`` for the output rows ``rows`` (a range) and all ``wo`` columns: the
    pixels at offset ``(ky - 1, kx - 1)`` from the centres ``(i * stride, j * stride)``."""
    o = kx // stride
    return phases[kx % stride][ky + stride * rows.start :: stride][: len(rows), o : o + wo]


def _windows(f, stride, dtype=np.int64, pad=0):
    h, w, c = f.shape
    ho, wo = -(-h // stride), -(-w // stride)
    out = np.empty((ho, wo, 9 * c), dtype=dtype)
    if out.size:
        (p,) = _padded(f, 1, dtype, pad)
        # One copy from a view of all windows, (ho, wo, ky, kx, c): a window row (kx, c) is
        # 3 * C consecutive elements of the padded frame, copied as one inner loop (nine
        # copies of C elements each took 3-4 times as long for the 3-channel stem).
        view = sliding_window_view(p, (3, 3), axis=(0, 1))[::stride, ::stride]
        out.reshape(ho, wo, 3, 3, c)[...] = view.transpose(0, 1, 3, 4, 2)
    return out


def _pad(f, pad) -> np.ndarray:
    """The padding value per channel of frame ``f``: zeros, or ``pad`` checked."""
    p = np.zeros(f.shape[-1], np.int64) if pad is None else np.asarray(pad, dtype=np.int64)
    if p.shape != (f.shape[-1],):
        raise ValueError(f"pad of shape {p.shape} for {f.shape[-1]} channels")
    return p


def window3x3(frame, stride=1, pad=None):
    """3x3 neighbourhoods, padded with ``pad`` per channel (zeros by default): shape
    ``(ceil(H/s), ceil(W/s), 9 * C)``, lane ``(ky * 3 + kx) * C + c`` holding channel ``c``
    at offset ``(ky - 1, kx - 1)`` from the centre; centres on every ``stride``-th row and
    column starting at 0."""
    if stride not in (1, 2):
        raise ValueError("stride must be 1 or 2")
    f = _frame(frame)
    return _windows(f, stride, pad=_pad(f, pad))


def conv3x3(frame, weights, stride=1, pad=None):
    """Full 3x3 convolution, padding 1 with ``pad`` per input channel (zeros by default):
    ``weights`` is ``(C_out, C_in, 3, 3)``; returns the exact accumulators, shape
    ``(ceil(H/s), ceil(W/s), C_out)``."""
    f = _frame(frame)
    p = _pad(f, pad)
    wt = np.asarray(weights, dtype=np.int64)
    # Rows in window3x3's lane order, (ky * 3 + kx) * C_in + c: the convolution is then one
    # product of the windows with this (9 * C_in, C_out) matrix.
    w2 = wt.transpose(2, 3, 1, 0).reshape(-1, wt.shape[0])
    # The windows hold the frame's values and the padding: the larger bound is theirs.
    dtype = _exact_type(max(_bound(w2.shape[0], f, w2), _bound(w2.shape[0], p, w2)))
    return _matmul(_windows(f, stride, dtype, p), w2, dtype)


def depthwise3x3(frame, kernels, stride=1):
    """Depthwise 3x3 convolution, zero padding 1: ``kernels`` is ``(C, 3, 3)``; exact
    accumulators of shape ``(ceil(H/s), ceil(W/s), C)``."""
    f = _frame(frame)
    k = np.asarray(kernels, dtype=np.int64)
    if k.shape != (f.shape[-1], 3, 3):
        raise ValueError(f"kernels of shape {k.shape} for {f.shape[-1]} channels")
    # Nine multiply-adds per output, each channel with its own kernel (a dense (C, C, 3, 3)
    # convolution would spend C times the work on zeros). int32 holds them exactly while
    # 9 * max|x| * max|k| fits (int8 operands: 9 * 2**14), and is half int64's memory traffic.
    dtype = np.int32 if _bound(9, f, k) < 1 << 31 else np.int64
    h, w, c = f.shape
    ho, wo = -(-h // stride), -(-w // stride)
    phases = _padded(f, stride, dtype)
    # Each tap's kernel repeated along a row, so that numpy runs one inner loop over a whole
    # output row instead of one per pixel.
    taps = np.ascontiguousarray(
        np.broadcast_to(k.astype(dtype).transpose(1, 2, 0)[:, :, None, :], (3, 3, wo, c))
    )
    # Bands of output rows small enough (_BAND elements) that the accumulator and the
    # product stay in cache across the nine taps: half the time of whole-frame passes.
    step = max(1, _BAND // max(wo * c, 1))
    acc = np.empty((ho, wo, c), dtype=dtype)
    tmp = np.empty((min(step, ho), wo, c), dtype=dtype)
    for r0 in range(0, ho, step):
        rows = range(r0, min(ho, r0 + step))
        band, prod = acc[r0 : rows.stop], tmp[: len(rows)]
        np.multiply(_tap(phases, 0, 0, stride, rows, wo), taps[0, 0], out=band)
        for t in range(1, 9):
            ky, kx = divmod(t, 3)
            band += np.multiply(_tap(phases, ky, kx, stride, rows, wo), taps[ky, kx], out=prod)
    return acc.astype(np.int64, copy=False)


def pointwise(frame, weights):
    """1x1 convolution: ``weights`` is ``(C_out, C_in)``; exact accumulators."""
    x, wt = np.asarray(frame, dtype=np.int64), np.asarray(weights, dtype=np.int64).T
    return _matmul(x, wt, _exact_type(_bound(wt.shape[0], x, wt)))
