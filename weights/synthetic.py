"""Synthetic weights with the statistics of trained, quantized layers (for tests, benchmarks
and the shipped examples). Uniform random int8 is not used: it has far more large weights,
and so more signed digits, than a trained layer."""

import numpy as np

__all__ = ["gaussian_int8", "trained_like_int8"]


def _per_channel_int8(w):
    """Symmetric per-output-channel (row) quantization: each row's largest magnitude -> 127."""
    scale = np.abs(w).max(axis=1, keepdims=True) / 127
    return np.round(w / np.where(scale == 0, 1, scale)).astype(np.int64)


def gaussian_int8(rng, n_out, n_in, zeros=0.0):
    """Gaussian weights, per-channel quantized; a fraction ``zeros`` then set to zero at
    random (unstructured pruning)."""
    q = _per_channel_int8(rng.normal(size=(n_out, n_in)))
    q[rng.random(q.shape) < zeros] = 0
    return q


def trained_like_int8(rng, n_out, n_in, pruned=0.25):
    """Heavy-tailed (Student-t, 5 degrees of freedom) weights, per-channel quantized, with the
    smallest ``pruned`` fraction by magnitude set to zero (magnitude pruning)."""
    w = rng.standard_t(df=5, size=(n_out, n_in))
    q = _per_channel_int8(w)
    q[np.abs(w) < np.quantile(np.abs(w), pruned)] = 0
    return q
