"""Golden twins of the backbone (numpy only): the cross-core shuffle and the whole
backbone of a :class:`weights.network.Network` (DESIGN.md §2, paper Fig. 3).

The alpha blend itself is :func:`sim.golden.primitives.alpha_blend`.
"""

import numpy as np

from .blocks import downsampling_block, regular_block
from .layers import conv3x3
from .primitives import alpha_blend, requantize

__all__ = ["core_shuffle", "backbone"]


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


def _stage(net, params, core, module, x):
    for j, blk in enumerate(net.blocks(core, module)):
        pre = f"{core}.m{module}.{j}."
        if blk.stride == 2:
            branches = [{"dw": params[pre + br + "dw"].weight,
                         "dw_quant": params[pre + br + "dw"].quant(),
                         "pw": params[pre + br + "pw"].weight,
                         "pw_quant": params[pre + br + "pw"].quant()} for br in ("b0_", "b1_")]
            x = downsampling_block(x, branches=branches)
        else:
            x = regular_block(x, dw=params[pre + "dw"].weight, dw_quant=params[pre + "dw"].quant(),
                              pw=params[pre + "pw"].weight, pw_quant=params[pre + "pw"].quant())
    return x


def backbone(net, params, frame, *, shuffle: bool = False) -> dict:
    """Outputs of every core of ``net`` for one int8 ``frame`` (height, width, channels):
    ``{"frozen": ..., "a": ..., "b": ...}`` (the cores ``net`` has), each (h, w, c).

    Each core starts with its own stem; before each trainable stage, core ``k`` reads
    ``alpha_blend(params["k.m<i>.alpha"], frozen features, its own features)`` (when there
    is a frozen core), then, with ``shuffle``, the two blended streams swap the second half
    of their channels.
    """
    x = np.asarray(frame, dtype=np.int64)
    if x.shape != (net.height, net.width, net.channels_in):
        raise ValueError(f"frame shape {x.shape}, expected "
                         f"{(net.height, net.width, net.channels_in)}")
    feats = {}
    for core in net.cores:
        p = params[f"{core}.stem"]
        feats[core] = requantize(conv3x3(x, p.weight, 2), p.scale, p.bias, p.shift, relu=True)
    trainable = [c for c in net.cores if c != "frozen"]
    for i in range(1, len(net.stages) + 1):
        inputs = dict(feats)
        if net.blended:
            for k in trainable:
                inputs[k] = alpha_blend(params[f"{k}.m{i}.alpha"], feats["frozen"], feats[k])
        if net.core_shuffle:
            inputs["a"], inputs["b"] = core_shuffle(inputs["a"], inputs["b"], shuffle)
        feats = {core: _stage(net, params, core, i, inputs[core]) for core in net.cores}
    return feats
