"""Golden twins of the backbone (numpy only): the cross-core shuffle and the whole
backbone of a :class:`weights.network.Network` (DESIGN.md §2, paper Fig. 3).

The alpha blend itself is :func:`sim.golden.primitives.alpha_blend`.
"""

import numpy as np

from .blocks import channel_shuffle
from .layers import conv3x3, depthwise3x3, pointwise
from .primitives import alpha_blend, requantize

__all__ = ["core_shuffle", "forward", "backbone", "int_conv"]


def core_shuffle(a, b, enable):
    """Swap the second half of the channels (last axis) of ``a`` and ``b`` when ``enable``."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.shape[-1] % 2:
        raise ValueError("core shuffle needs two streams of the same even channel count")
    if not enable:
        return a, b
    h = a.shape[-1] // 2
    return (np.concatenate([a[..., :h], b[..., h:]], axis=-1),
            np.concatenate([b[..., :h], a[..., h:]], axis=-1))


def forward(net, frame, conv, blend, *, shuffle: bool = False) -> dict:
    """The backbone's dataflow over any number type: ``{core: output}`` for the cores of
    ``net``, where ``conv(name, x)`` applies convolution ``name`` (with its requantizer or
    batch norm, and ReLU where the layer has one) and ``blend(name, frozen, own)`` the alpha
    blend ``name``. Arrays are (..., height, width, channels).

    Each core starts with its own stem; before each trainable stage, core ``k`` reads
    ``blend("k.m<i>.alpha", frozen features, its own features)`` (when there is a frozen
    core), then, with ``shuffle``, the two blended streams swap the second half of their
    channels. A regular block convolves the second half of its channels and keeps the
    first; a downsampling block runs two branches on all of them; both end in a channel
    shuffle."""
    feats = {core: conv(f"{core}.stem", frame) for core in net.cores}
    trainable = [c for c in net.cores if c != "frozen"]
    for i in range(1, len(net.stages) + 1):
        inputs = dict(feats)
        if net.blended:
            for k in trainable:
                inputs[k] = blend(f"{k}.m{i}.alpha", feats["frozen"], feats[k])
        if net.core_shuffle:
            inputs["a"], inputs["b"] = core_shuffle(inputs["a"], inputs["b"], shuffle)
        for core in net.cores:
            x = inputs[core]
            for j, blk in enumerate(net.blocks(core, i)):
                pre = f"{core}.m{i}.{j}."
                if blk.stride == 2:
                    parts = [conv(pre + br + "pw", conv(pre + br + "dw", x))
                             for br in ("b0_", "b1_")]
                else:
                    half = x.shape[-1] // 2
                    parts = [x[..., :half], conv(pre + "pw", conv(pre + "dw", x[..., half:]))]
                x = channel_shuffle(np.concatenate(parts, axis=-1))
            feats[core] = x
    return feats


def backbone(net, params, frame, *, shuffle: bool = False) -> dict:
    """Outputs of every core of ``net`` for one int8 ``frame`` (height, width, channels):
    ``{"frozen": ..., "a": ..., "b": ...}`` (the cores ``net`` has), each (h, w, c), with the
    integer parameters ``params`` (see :func:`forward` for the dataflow)."""
    x = np.asarray(frame, dtype=np.int64)
    if x.shape != (net.height, net.width, net.channels_in):
        raise ValueError(f"frame shape {x.shape}, expected "
                         f"{(net.height, net.width, net.channels_in)}")
    return forward(net, x, int_conv(net, params),
                   lambda name, xf, xt: alpha_blend(params[name], xf, xt), shuffle=shuffle)


def int_conv(net, params):
    """``conv(name, x)`` for :func:`forward`: layer ``name`` of ``net`` on one int8 frame,
    exact accumulation then the requantizer (``docs/numerics.md`` §3-4)."""
    specs = {c.name: c for c in net.convs()}

    def conv(name, x):
        spec, p = specs[name], params[name]
        acc = {"full": lambda: conv3x3(x, p.weight, spec.stride),
               "depthwise": lambda: depthwise3x3(x, p.weight, spec.stride),
               "pointwise": lambda: pointwise(x, p.weight)}[spec.kind]()
        return requantize(acc, p.scale, p.bias, p.shift, relu=spec.relu)

    return conv
