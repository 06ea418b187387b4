"""Synthetic weights with the statistics of trained, quantized layers (for tests, benchmarks
and the shipped examples). Uniform random int8 is not used: it has far more large weights,
and so more signed digits, than a trained layer."""

import dataclasses

import numpy as np

from spec import names
from spec.dataflow import forward
from spec.formats import RANGES
from spec.params import ConvParams, HeadGroupParams, HeadPassParams

from .floatnet import ACTIVATIONS, FloatConv, FloatHeadGroup, conv_float, sigmoid

__all__ = [
    "gaussian_int8",
    "trained_like_int8",
    "random_params",
    "random_head_group",
    "random_head",
    "random_passes",
    "retrained",
    "random_float_params",
]


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


def random_params(net, rng, *, shift: int = 16, alpha=None) -> dict:
    """Parameters for every layer of ``net`` (a :class:`spec.network.Network`):
    trained-like weights, per-channel scales that keep activations near the input's
    magnitude through the ReLUs (``scale / 2**shift ~ 1.6 / (row rms * sqrt(nonzeros))``,
    jittered), small biases, and random alpha codes (or all ``alpha`` when given)."""
    params = {}
    for spec in net.convs():
        params[spec.name] = _random_conv(rng, spec.weight_shape, shift)
    for k in range(len(net.head)):
        params |= random_head(rng, net, k, shift=shift)
    params |= random_passes(rng, net, shift=shift)
    for blend in net.blends():
        params[blend.name] = (
            np.full(blend.channels, alpha, dtype=np.int64)
            if alpha is not None
            else rng.integers(0, 129, size=blend.channels)
        )
    return params


def random_passes(rng, net, *, shift: int = 16, repeat=None) -> dict:
    """For a network with repeated trainable blocks: each later pass's layers (random as
    :func:`random_params`' are) and each block's pass count (random unless ``repeat`` is
    given); ``{}`` otherwise, drawing nothing (other networks keep their random stream)."""
    out = {c.name: _random_conv(rng, c.weight_shape, shift) for c in net.pass_convs()}
    for name in net.repeat_counts():
        out[name] = int(rng.integers(1, net.trainable_repeats + 1)) if repeat is None else repeat
    return out


def _random_conv(rng, shape, shift) -> ConvParams:
    """Trained-like weights of ``shape`` and a requantizer keeping the output's magnitude."""
    rows = trained_like_int8(rng, shape[0], int(np.prod(shape[1:])))
    w = rows.reshape(shape)
    nz = np.maximum((rows != 0).sum(axis=1), 1)
    rms = np.sqrt((rows.astype(float) ** 2).sum(axis=1) / nz)
    gain = rng.uniform(1.1, 2.1, size=shape[0]) / (np.maximum(rms, 1) * np.sqrt(nz))
    scale = np.clip(np.round(gain * (1 << shift)), *RANGES["scale"])
    bias = np.round(rng.normal(0, 4, size=shape[0]) * (1 << shift))
    return ConvParams(w, scale.astype(np.int64), bias.astype(np.int64), shift)


def random_head(rng, net, k: int, *, repeat=None, **kw) -> dict:
    """Group ``k`` of ``net``'s head, by name: its :func:`random_head_group` parameters
    (``kw`` passed on) and, repeated, a :class:`HeadPassParams` per later pass (their own
    convolution and table) and a random pass count unless ``repeat`` is given."""
    g = net.head[k]
    first = random_head_group(rng, g, **kw)
    if repeat is None:  # drawn only for a repeated group: others keep their random stream
        repeat = int(rng.integers(1, g.repeats + 1)) if g.repeats > 1 else 1
    out = {names.head_group(k): dataclasses.replace(first, repeat=repeat)}
    for j in range(1, g.repeats):
        q = random_head_group(rng, g, shift=first.shift, pwl_shift=first.pwl_shift)
        later = (q.weight, q.scale, q.bias, *q.table())
        out[names.head_pass(k, j)] = HeadPassParams(*later)
    return out


def random_head_group(
    rng, spec, *, shift: int = 16, pwl_shift: int = 8, pool=None, source=None
) -> HeadGroupParams:
    """Parameters of a head group (:class:`spec.network.HeadGroupSpec` ``spec``): a
    convolution as :func:`random_params` makes them, a random monotone-ish activation table
    (sorted distinct breakpoints, slopes around 1, small intercepts), a random pool switch
    and source unless given (one pass: see :func:`random_head`)."""
    conv = _random_conv(rng, (spec.c_out, spec.c_in), shift)
    k = spec.segments
    bp = np.sort(rng.choice(np.arange(-127, 128), size=k - 1, replace=False))
    slopes = np.round(rng.uniform(-0.5, 2.0, size=k) * (1 << pwl_shift))
    intercepts = np.round(rng.normal(0, 8, size=k) * (1 << pwl_shift))
    return HeadGroupParams(
        conv.weight,
        conv.scale,
        conv.bias,
        shift,
        bp.astype(np.int64),
        np.clip(slopes, *RANGES["pwl_slope"]).astype(np.int64),
        intercepts.astype(np.int64),
        pwl_shift,
        int(rng.integers(2)) if pool is None else pool,
        int(rng.integers(len(spec.sources))) if source is None else source,
    )


def retrained(net, params, rng) -> dict:
    """Other run-time parameters for the hardware built from ``params``: the trainable
    cores' weights drawn afresh (:func:`random_params`), every layer's scales and biases
    moved around its own (so that its shift, a build-time constant, still suits them:
    scales times 0.5 to 1.5, biases plus up to half their spread), new alpha codes, new head
    weights, tables and sources (the pool switches and pass counts kept); the frozen
    weights, the shifts and anything else in ``params`` kept."""
    fresh = random_params(net, rng)
    new = dict(params)
    for spec in net.convs() + net.pass_convs():
        old = params[spec.name]
        lo, hi = RANGES["scale"]
        scale = np.clip(np.round(old.scale * rng.uniform(0.5, 1.5, np.shape(old.scale))), lo, hi)
        spread = int(np.ptp(old.bias)) // 2 + 1
        lo, hi = RANGES["bias"]
        bias = np.clip(old.bias + rng.integers(-spread, spread + 1, np.shape(old.bias)), lo, hi)
        weight = old.weight if spec.frozen else fresh[spec.name].weight
        new[spec.name] = ConvParams(
            weight, scale.astype(np.int64), bias.astype(np.int64), old.shift
        )
    for b in net.blends():
        new[b.name] = fresh[b.name]
    for k in range(len(net.head)):
        old = params[names.head_group(k)]
        new |= random_head(
            rng, net, k, repeat=old.repeat, shift=old.shift, pwl_shift=old.pwl_shift, pool=old.pool
        )
    return new


def random_float_params(net, rng, pixels, *, shuffle: bool = False) -> dict:
    """Float parameters for every layer of ``net``, shaped like a trained network's:
    heavy-tailed conv weights with the smallest quarter pruned, batch norms whose mean and
    variance are the statistics of their own inputs over ``pixels`` (uint8 frames, as
    training would have left them) with gamma in [0.5, 1.5] and small betas, and blend
    logits around 0 (alpha near 0.5), head groups with alternating activations and random
    pool switches and sources; trained with the core shuffle ``shuffle``."""
    specs = {c.name: c for c in net.convs()}
    params = {}

    def conv(name, x):
        spec = specs[name]
        shape = spec.weight_shape
        w = rng.standard_t(df=5, size=shape) * np.sqrt(2 / np.prod(shape[1:]))
        w[np.abs(w) < np.quantile(np.abs(w), 0.25)] = 0
        y = conv_float(spec.kind, x, w, spec.stride)
        axes = tuple(range(y.ndim - 1))
        p = FloatConv(
            w,
            rng.uniform(0.5, 1.5, shape[0]),
            rng.normal(0, 0.2, shape[0]),
            y.mean(axis=axes),
            y.var(axis=axes),
        )
        params[name] = p
        gain, offset = p.folded()
        y = y * gain + offset
        return np.maximum(y, 0) if spec.relu else y

    def blend(name, xf, xt):
        params[name] = rng.normal(0, 1.5, xf.shape[-1])
        a = sigmoid(params[name])
        return a * xf + (1 - a) * xt

    out = forward(net, (np.asarray(pixels, float) - 128) / 128, conv, blend, shuffle=shuffle)
    if net.head:  # each group's batch norm from its own outputs' statistics
        feats = np.concatenate([out[core] for core in net.cores], axis=-1)
        for k, g in enumerate(net.head):
            source = int(rng.integers(len(g.sources)))
            first = net.head_lane(*g.sources[source])
            w = rng.standard_t(df=5, size=(g.c_out, g.c_in)) * np.sqrt(2 / g.c_in)
            y = feats[..., first : first + g.c_in] @ w.T
            axes = tuple(range(y.ndim - 1))
            bn = (rng.uniform(0.5, 1.5, g.c_out), rng.normal(0, 0.2, g.c_out))
            params[names.head_group(k)] = FloatHeadGroup(
                FloatConv(w, *bn, y.mean(axis=axes), y.var(axis=axes)),
                ACTIVATIONS[k % len(ACTIVATIONS)],
                int(rng.integers(2)),
                source,
            )
    return params
