"""The backbone's dataflow, over any number type (paper Fig. 3-4, ``docs/backbone.md``).

:func:`forward` walks a :class:`~spec.network.Network` and calls back for the arithmetic:
the golden model passes its integer convolutions and blends, the float model its real-valued
ones. The lane moves between layers (channel split and concatenation, the two-group channel
shuffle, the cross-core shuffle) are no arithmetic and happen here, once for both.
"""

import numpy as np

from . import names

__all__ = ["channel_shuffle", "core_shuffle", "forward"]


def channel_shuffle(x):
    """Two groups on the last axis: ``out[..., 2k] = x[..., k]``,
    ``out[..., 2k + 1] = x[..., C/2 + k]``."""
    x = np.asarray(x)
    c = x.shape[-1]
    if c % 2:
        raise ValueError("channel shuffle needs an even channel count")
    out = np.empty_like(x)
    out[..., 0::2] = x[..., : c // 2]
    out[..., 1::2] = x[..., c // 2 :]
    return out


def _join_shuffled(parts):
    """``channel_shuffle(np.concatenate(parts, axis=-1))``, each part copied once: a block
    joins two halves of equal width, and the shuffle interleaves exactly those (the two
    steps apart, with their narrow strided copies, took a sixth of a golden ``paper``
    frame)."""
    if len(parts) != 2 or np.shape(parts[0]) != np.shape(parts[1]):
        return channel_shuffle(np.concatenate(parts, axis=-1))
    a, b = (np.asarray(p) for p in parts)
    out = np.empty((*a.shape[:-1], 2 * a.shape[-1]), dtype=np.result_type(a, b))
    out[..., 0::2] = a
    out[..., 1::2] = b
    return out


def core_shuffle(a, b, enable: bool):
    """Swap the second half of the channels (last axis) of ``a`` and ``b`` when ``enable``."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.shape[-1] % 2:
        raise ValueError("core shuffle needs two streams of the same even channel count")
    if not enable:
        return a, b
    h = a.shape[-1] // 2
    return (
        np.concatenate([a[..., :h], b[..., h:]], axis=-1),
        np.concatenate([b[..., :h], a[..., h:]], axis=-1),
    )


def _regular(conv, dw, pw, x):
    """A regular block: the first half of the channels passes, the second is convolved
    by ``dw`` then ``pw``; then the channel shuffle."""
    half = x.shape[-1] // 2
    return _join_shuffled([x[..., :half], conv(pw, conv(dw, x[..., half:]))])


def forward(net, frame, conv, blend, *, shuffle: bool = False, repeats=None) -> dict:
    """``{core: output}`` for the cores of ``net``, where ``conv(name, x)`` applies
    convolution ``name`` (with its requantizer or batch norm, and ReLU where the layer has
    one) and ``blend(name, frozen, own)`` the alpha blend ``name``. Arrays are
    (..., height, width, channels).

    Each core starts with its own stem; before each trainable stage, core ``k`` reads
    ``blend("k.m<i>.alpha", frozen features, its own features)`` (when there is a frozen
    core), then, with ``shuffle``, the two blended streams swap the second half of their
    channels. A regular block convolves the second half of its channels and keeps the
    first; a downsampling block runs two branches on all of them; both end in a channel
    shuffle. A repeated block (:meth:`~spec.network.Network.repeated_block`) runs
    ``repeats[core]`` passes (1 when not given, clamped to 1..its most), pass ``p`` with the
    layers :func:`spec.names.block_pass` names."""
    feats = {core: conv(names.stem(core), frame) for core in net.cores}
    trainable = [c for c in net.cores if c != "frozen"]
    for i in range(1, len(net.stages) + 1):
        inputs = dict(feats)
        if net.blended:
            for k in trainable:
                inputs[k] = blend(names.blend(k, i), feats["frozen"], feats[k])
        if net.core_shuffle:
            inputs["a"], inputs["b"] = core_shuffle(inputs["a"], inputs["b"], shuffle)
        for core in net.cores:
            x = inputs[core]
            for j, blk in enumerate(net.blocks(core, i)):
                layers = [names.conv(core, i, j, layer) for layer in names.block_layers(blk.stride)]
                branches = [layers[k : k + 2] for k in range(0, len(layers), 2)]  # (dw, pw)
                if blk.stride == 2:  # downsampling: every branch on all channels
                    x = _join_shuffled([conv(pw, conv(dw, x)) for dw, pw in branches])
                    continue
                ((dw, pw),) = branches
                x = _regular(conv, dw, pw, x)
                # A repeated block (the core's last): its later passes, each on the previous
                # one's output with its own layers.
                if core != "frozen" and (i, j) == net.repeated_block():
                    count = min(max(1, (repeats or {}).get(core, 1)), net.trainable_repeats)
                    for p in range(1, count):
                        dw, pw = (names.block_pass(core, i, j, p, n) for n in names.REGULAR_LAYERS)
                        x = _regular(conv, dw, pw, x)
            feats[core] = x
    return feats
