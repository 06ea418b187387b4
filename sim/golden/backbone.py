"""Golden twin of the whole backbone of a :class:`spec.network.Network` (paper Fig. 3): the
integer layers and blends of this package along the dataflow of :func:`spec.dataflow.forward`.
"""

import numpy as np

from spec import names
from spec.dataflow import forward
from spec.params import head_passes, repeat_counts

from .head import head_group
from .layers import conv3x3, depthwise3x3, pointwise
from .primitives import alpha_blend, requantize

__all__ = ["backbone", "head", "int_conv"]


def backbone(net, params, frame, *, shuffle: bool = False) -> dict:
    """Outputs of every core of ``net`` for one int8 ``frame`` (height, width, channels):
    ``{"frozen": ..., "a": ..., "b": ...}`` (the cores ``net`` has), each (h, w, c), with the
    integer parameters ``params`` (see :func:`spec.dataflow.forward` for the dataflow; the
    stems pad the frame with ``params[INPUT_PAD]`` where it is given); with a model head,
    also each group's output by its name (:func:`sim.golden.head.head_group` on the cores'
    outputs side by side)."""
    x = np.asarray(frame, dtype=np.int64)
    if x.shape != (net.height, net.width, net.channels_in):
        raise ValueError(
            f"frame shape {x.shape}, expected {(net.height, net.width, net.channels_in)}"
        )
    out = forward(
        net,
        x,
        int_conv(net, params),
        lambda name, xf, xt: alpha_blend(params[name], xf, xt),
        shuffle=shuffle,
        repeats=repeat_counts(net, params),
    )
    return out | head(net, params, out)


def head(net, params, cores: dict) -> dict:
    """Each head group's output by its name, from the ``cores``' outputs of one frame (the
    cores side by side, as the head reads them); ``{}`` without a head."""
    if not net.head:
        return {}
    feats = np.concatenate([cores[core] for core in net.cores], axis=-1)
    out = {}
    for k, g in enumerate(net.head):
        sources = [net.head_lane(core, first) for core, first in g.sources]
        p, *passes = head_passes(net, params, k)
        out[names.head_group(k)] = head_group(feats, sources, p, passes)
    return out


def int_conv(net, params):
    """``conv(name, x)`` for :func:`spec.dataflow.forward`: layer ``name`` of ``net`` on one
    int8 frame, exact accumulation then the requantizer (``docs/numerics.md`` §3-4)."""
    specs = {c.name: c for c in net.convs() + net.pass_convs()}
    pad = params.get(names.INPUT_PAD)  # the stems' padding (the only "full" convolutions)

    def conv(name, x):
        spec, p = specs[name], params[name]
        acc = {
            "full": lambda: conv3x3(x, p.weight, spec.stride, pad),
            "depthwise": lambda: depthwise3x3(x, p.weight, spec.stride),
            "pointwise": lambda: pointwise(x, p.weight),
        }[spec.kind]()
        return requantize(acc, p.scale, p.bias, p.shift, relu=spec.relu)

    return conv
