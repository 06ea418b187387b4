"""ONNX models of float backbones, built with ``onnx.helper`` the way a framework exports
them (NCHW, Conv + BatchNormalization + Relu, Split/Concat, Reshape-Transpose-Reshape
channel shuffles, Sigmoid/Mul/Sub/Add blends), for the importer's tests.

Written from the network description independently of ``weights.onnx_import``, which reads
the graph backwards; ``mutate`` lets a test break one thing to see the importer name it.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["backbone_onnx", "OPSET"]

OPSET = 17


class _Builder:
    def __init__(self, mutate):
        self.nodes, self.inits, self.n = [], [], 0
        self.mutate = mutate or {}

    def name(self, stem):
        self.n += 1
        return f"{stem}_{self.n}"

    def const(self, stem, value, dtype=np.float32, key=None):
        """An initializer; ``mutate["init"][key]`` (an array, or a function of the array
        that returns one) replaces its value, dtype and shape included."""
        name = self.name(stem)
        value = np.asarray(value, dtype)
        new = self.mutate.get("init", {}).get(key)
        if new is not None:
            value = np.asarray(new(value) if callable(new) else new)
        self.inits.append(numpy_helper.from_array(value, name))
        return self.through(name) if value.dtype.kind == "f" else name

    def through(self, x):
        """``x``, or ``x`` through the node ``mutate["look_through"]`` (Identity, Dropout),
        which the importer must look through."""
        op = self.mutate.get("look_through")
        return self.op(op, [x]) if op else x

    def op(self, op_type, inputs, n_out=1, **attrs):
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(op_type), **attrs))
        return outs if n_out > 1 else outs[0]

    def conv(self, x, name, spec, p):
        w = np.asarray(p.weight, np.float32)
        group = 1
        if spec.kind == "depthwise":
            w, group = w[:, None], spec.c_in
        elif spec.kind == "pointwise":
            w = w[:, :, None, None]
        k = w.shape[-1]
        stride = self.mutate.get("stride", {}).get(name, spec.stride)
        conv = dict(kernel_shape=[k, k], strides=[stride] * 2, pads=[k // 2] * 4, group=group)
        if self.mutate.get("fold_bn"):  # as an exporter in inference mode does
            gain, offset = p.folded()
            y = self.op(
                "Conv",
                [
                    x,
                    self.const("w", w * gain.reshape(-1, 1, 1, 1), key=f"{name}.weight"),
                    self.const("b", offset, key=f"{name}.bias"),
                ],
                **conv,
            )
        else:
            y = self.op("Conv", [x, self.const("w", w, key=f"{name}.weight")], **conv)
            eps = self.mutate.get("eps", {}).get(name, p.eps)
            y = self.op(
                "BatchNormalization",
                [
                    y,
                    *(
                        self.const(f, getattr(p, f), key=f"{name}.{f}")
                        for f in ("gamma", "beta", "mean", "var")
                    ),
                ],
                epsilon=float(eps),
            )
        y = self.through(y)
        relu = spec.relu != (name in self.mutate.get("flip_relu", ()))
        return self.op("Relu", [y]) if relu else y

    def halves(self, x, c):
        parts = self.op(
            "Split", [x, self.const("split", [c // 2, c // 2], np.int64, key="split")], 2, axis=1
        )
        return [self.through(t) for t in parts]

    def channel_shuffle(self, x, c, h, w):
        groups = self.mutate.get("shuffle_groups", 2)
        y = self.op(
            "Reshape", [x, self.const("s", [1, groups, c // groups, h, w], np.int64, key="shape1")]
        )
        y = self.op("Transpose", [y], perm=[0, 2, 1, 3, 4])
        return self.op("Reshape", [y, self.const("s", [1, c, h, w], np.int64, key="shape2")])


def _normalise(b, x, steps):
    """``x`` through the input normalisation ``steps``: ``("Cast", None)`` to float,
    ``(op, k)`` for ``op(x, k)``, ``(op, k, "first")`` for ``op(k, x)`` (Sub, Add, Mul,
    Div), ``("BatchNormalization", (scale, B, mean, var))``; constants as given (any
    broadcastable shape)."""
    for op, k, *first in steps:
        if op == "Cast":
            x = b.op("Cast", [x], to=TensorProto.FLOAT)
        elif op == "BatchNormalization":
            x = b.op(op, [x, *(b.const("bn", v) for v in k)], epsilon=1e-3)
        else:
            c = b.const("k", k)
            x = b.op(op, [c, x] if first else [x, c])
    return x


def _channels(b, x, lo, hi):
    """Channels ``lo .. hi - 1`` of ``x`` (a Slice on axis 1)."""
    bounds = [b.const(n, [v], np.int64) for n, v in (("lo", lo), ("hi", hi), ("ax", 1))]
    return b.op("Slice", [x, *bounds])


def _head(b, net, fparams, feats):
    """The head's groups as model outputs: the cores' outputs side by side (Concat), each
    group's channels from its source (Slice), a 1x1 Conv, BatchNormalization, Relu (for
    ``relu``), GlobalAveragePool and Flatten (pooled). ``mutate["grouped_head"]``: every
    group in one Conv with ``group`` = the number of groups over their sources' channels
    (consecutive, same sizes), split into the groups' outputs after the batch norm."""
    side = b.op("Concat", [feats[core] for core in net.cores], axis=1)
    params = [fparams[f"head.g{k}"] for k in range(len(net.head))]
    lanes = [net.head_lane(*g.sources[p.source]) for g, p in zip(net.head, params, strict=True)]

    def bn(y, convs):
        return b.op(
            "BatchNormalization",
            [
                y,
                *(
                    b.const(f, np.concatenate([getattr(c, f) for c in convs]))
                    for f in ("gamma", "beta", "mean", "var")
                ),
            ],
            epsilon=float(convs[0].eps),
        )

    if b.mutate.get("grouped_head"):
        c_in, c_out, n = net.head[0].c_in, net.head[0].c_out, len(net.head)
        w = np.concatenate([np.asarray(p.conv.weight, np.float32) for p in params])
        x = _channels(b, side, lanes[0], lanes[0] + n * c_in)
        y = bn(
            b.op("Conv", [x, b.const("w", w[:, :, None, None])], kernel_shape=[1, 1], group=n),
            [p.conv for p in params],
        )
        split = b.const("split", [c_out] * n, np.int64)
        ys = b.op("Split", [y, split], n, axis=1)
        ys = ys if n > 1 else [ys]
    else:
        ys = []
        for lane, g, p in zip(lanes, net.head, params, strict=True):
            w = np.asarray(p.conv.weight, np.float32)[:, :, None, None]
            x = _channels(b, side, lane, lane + g.c_in)
            ys.append(bn(b.op("Conv", [x, b.const("w", w)], kernel_shape=[1, 1]), [p.conv]))
    outs = []
    for y, p in zip(ys, params, strict=True):
        if p.activation == "relu":
            y = b.op("Relu", [y])
        if p.pool:
            y = b.op("Flatten", [b.op("GlobalAveragePool", [y])])
        outs.append(y)
    return outs


def backbone_onnx(
    net, fparams, *, shuffle=False, mutate=None, norm=(), input_type=TensorProto.FLOAT
) -> onnx.ModelProto:
    """The float backbone of ``net`` with ``fparams`` as an ONNX model: input ``image``
    (1, C, H, W), one output per core (frozen, a, b). ``mutate`` breaks it on purpose:
    ``{"stride": {conv: s}}``, ``{"flip_relu": [conv]}``, ``{"shuffle_groups": 4}``,
    ``{"head": True}`` (a pooling + Gemm head on the last core), ``{"swap_blend": True}``
    (the blends' frozen and own inputs exchanged), ``{"init": {key: value}}`` (an
    initializer's array replaced, dtype and shape included, by ``value`` or by ``value(array)``
    when it is callable; keys ``CONV.weight``, ``CONV.bias`` (with ``fold_bn``),
    ``CONV.gamma`` / ``beta`` / ``mean`` / ``var``, ``CORE.mI.alpha``, and ``split``,
    ``shape1``, ``shape2`` for every Split's sizes and channel shuffle's shapes),
    ``{"eps": {conv: value}}`` (a batch norm's epsilon). A network with a head gets one more
    output per group (:func:`_head`; ``{"grouped_head": True}`` for one grouped Conv).
    ``norm``: an input normalisation in front of the stems (:func:`_normalise`), with the
    input of type ``input_type``.
    No errors: ``{"fold_bn": True}``
    (batch norms folded into conv weights and biases, as exporters in inference mode do) and
    ``{"look_through": "Identity"}`` (or ``"Dropout"``: such a node after every float
    initializer, batch norm, Split output and Sigmoid)."""
    b = _Builder(mutate)
    specs = {c.name: c for c in net.convs()}

    def conv(x, name):
        return b.conv(x, name, specs[name], fparams[name])

    image = _normalise(b, "image", norm)
    feats = {core: conv(image, f"{core}.stem") for core in net.cores}
    trainable = [c for c in net.cores if c != "frozen"]
    for i in range(1, len(net.stages) + 1):
        first = net.blocks(net.cores[0], i)[0]
        c = first.channels_in
        inputs = dict(feats)
        if net.blended:
            for k in trainable:
                w = np.asarray(fparams[f"{k}.m{i}.alpha"], np.float32).reshape(1, c, 1, 1)
                s = b.through(b.op("Sigmoid", [b.const("alpha", w, key=f"{k}.m{i}.alpha")]))
                one_minus = b.op("Sub", [b.const("one", 1.0), s])
                f, t = (
                    (feats[k], feats["frozen"])
                    if b.mutate.get("swap_blend")
                    else (feats["frozen"], feats[k])
                )
                inputs[k] = b.op("Add", [b.op("Mul", [s, f]), b.op("Mul", [one_minus, t])])
        if net.core_shuffle and shuffle:
            a0, a1 = b.halves(inputs["a"], c)
            b0, b1 = b.halves(inputs["b"], c)
            inputs["a"] = b.op("Concat", [a0, b1], axis=1)
            inputs["b"] = b.op("Concat", [b0, a1], axis=1)
        for core in net.cores:
            x = inputs[core]
            for j, blk in enumerate(net.blocks(core, i)):
                pre = f"{core}.m{i}.{j}."
                if blk.stride == 2:
                    parts = [
                        conv(conv(x, pre + br + "dw"), pre + br + "pw") for br in ("b0_", "b1_")
                    ]
                    h, w = -(-blk.height_in // 2), -(-blk.width_in // 2)
                else:
                    keep, rest = b.halves(x, blk.channels_in)
                    parts = [keep, conv(conv(rest, pre + "dw"), pre + "pw")]
                    h, w = blk.height_in, blk.width_in
                x = b.channel_shuffle(b.op("Concat", parts, axis=1), blk.channels_out, h, w)
            feats[core] = x
    outs = [feats[core] for core in net.cores]
    if net.head:
        outs += _head(b, net, fparams, feats)
    if b.mutate.get("head"):
        pooled = b.op("Flatten", [b.op("GlobalAveragePool", [outs[-1]])])
        c_last = int(net.to_dict()["stem_channels"]) * 2 ** sum(f.count(2) for f, _ in net.plan)
        outs[-1] = b.op("Gemm", [pooled, b.const("fc", np.ones((10, c_last)))], transB=1)
    graph = helper.make_graph(
        b.nodes,
        "backbone",
        [
            helper.make_tensor_value_info(
                "image", input_type, [1, net.channels_in, net.height, net.width]
            )
        ],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, [None] * 4) for o in outs],
        b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # onnxruntime reads IR 8 with opset 17
    onnx.checker.check_model(model)
    return model
