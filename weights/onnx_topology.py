"""Matching an ONNX graph to the network description (:mod:`weights.onnx_import` says what
is accepted): read backwards from each core's output, block by block, collecting the float
parameters of every convolution and blend."""

import math

import numpy as np

from spec import names
from spec.network import Network

from .floatnet import FloatConv, FloatHeadGroup
from .onnx_graph import F32_MAX, Graph, OnnxImportError, label
from .onnx_input import fold_input, input_norm

__all__ = ["Reader"]


class Reader:
    """Walks the graph backwards along the description, collecting float parameters."""

    def __init__(self, graph: Graph, net: Network):
        self.g, self.net = graph, net
        self.specs = {c.name: c for c in net.convs()}
        self.params = {}
        self.shuffle = None  # whether the model has the cross-core shuffle
        self.folded = []  # the input normalisations folded into the stems, described

    def conv(self, tensor, name):
        """The conv ``name`` (+ BN, + ReLU) producing ``tensor``; returns its input."""
        g, spec = self.g, self.specs[name]
        node = g.node(tensor, f"the output of conv {name}")
        if spec.relu:
            if node.op_type != "Relu":
                raise OnnxImportError(
                    f"node {label(node)} ({node.op_type}): expected the Relu after conv {name}"
                )
            node = g.node(node.input[0], f"the batch norm or conv of {name}")
        elif node.op_type == "Relu":
            raise OnnxImportError(
                f"node {label(node)}: conv {name} has no ReLU in the network description"
            )
        bn = None
        if node.op_type == "BatchNormalization":
            bn = node
            node = g.node(node.input[0], f"conv {name}")
        if node.op_type != "Conv":
            raise OnnxImportError(f"node {label(node)} ({node.op_type}): expected conv {name}")
        w = g.floats(node.input[1], f"conv {name} weight")
        a = g.attrs(node)
        k = 1 if spec.kind == "pointwise" else 3
        group = spec.c_in if spec.kind == "depthwise" else 1
        want = {
            "full": (spec.c_out, spec.c_in, 3, 3),
            "depthwise": (spec.c_out, 1, 3, 3),
            "pointwise": (spec.c_out, spec.c_in, 1, 1),
        }[spec.kind]
        pads = [k // 2] * 4
        got = (
            w.shape,
            list(a.get("strides", [1, 1])),
            a.get("group", 1),
            list(a.get("pads", [0] * 4)),
            list(a.get("dilations", [1, 1])),
        )
        if got != (want, [spec.stride] * 2, group, pads, [1, 1]) or a.get(
            "auto_pad", b"NOTSET"
        ) not in (b"NOTSET", "NOTSET"):
            raise OnnxImportError(
                f"node {label(node)}: conv {name} should be {spec.kind} with weight {want}, "
                f"stride {spec.stride}, group {group}, pads {pads}; found weight {w.shape}, "
                f"strides {got[1]}, group {got[2]}, pads {got[3]}, dilations {got[4]}"
            )
        self.params[name] = self._float_conv(node, bn, name, w.reshape(spec.weight_shape))
        return node.input[0]

    def _float_conv(self, node, bn, name, weight, rows=None) -> FloatConv:
        """Conv ``name``'s :class:`FloatConv`: ``weight`` (its rows ``rows`` of the node's,
        a slice; all by default), the node's bias and the batch norm ``bn`` (or None) on
        those rows, the bias folded into the norm."""
        g = self.g
        c_all = int(g.floats(node.input[1], f"conv {name} weight").shape[0])
        rows = slice(0, c_all) if rows is None else rows
        c_out = weight.shape[0]
        bias = (
            g.floats(node.input[2], f"conv {name} bias ({label(node)})", (c_all,))[rows]
            if len(node.input) > 2 and node.input[2]
            else np.zeros(c_out)
        )
        if bn is None:
            return FloatConv(weight, np.ones(c_out), bias, np.zeros(c_out), np.ones(c_out), eps=0.0)
        gamma, beta, mean, var = (
            g.floats(i, f"batch norm of {name} ({label(bn)}) {field}", (c_all,))[rows]
            for i, field in zip(bn.input[1:5], ("gamma", "beta", "mean", "var"), strict=True)
        )
        try:
            eps = float(g.attrs(bn).get("epsilon", 1e-5))
        except (TypeError, ValueError):
            eps = math.nan
        if not (math.isfinite(eps) and 0 <= eps <= F32_MAX):
            raise OnnxImportError(
                f"batch norm of {name} ({label(bn)}): epsilon "
                f"{g.attrs(bn).get('epsilon')!r} must be a finite "
                f"number >= 0"
            )
        # as the weight files hold them (float32), which their reader checks the same way
        v32 = var.astype(np.float32)
        bad = np.flatnonzero((v32 < 0) | ((v32 == 0) & (np.float32(eps) == 0)))
        if len(bad):
            raise OnnxImportError(
                f"batch norm of {name} ({label(bn)}): variance "
                f"{bn.input[4]!r}[{bad[0] + rows.start}] is {var[bad[0]]} with "
                f"epsilon {eps}; variance must be >= 0 and variance + "
                f"epsilon > 0"
            )
        mean = mean - bias  # the conv's bias folded into the norm
        if not (np.abs(mean) <= F32_MAX).all():
            raise OnnxImportError(
                f"batch norm of {name} ({label(bn)}): mean - conv bias is beyond the float32 range"
            )
        return FloatConv(weight, gamma, beta, mean, var, eps=eps)

    def halves(self, tensor, channels, what):
        """``tensor`` is the first or second half (axis 1) of another: ``(source, half)``."""
        g = self.g
        tensor = g.source(tensor)
        node = g.expect(tensor, ("Split", "Slice"), f"{what}: a Split or Slice of channels")
        a = g.attrs(node)
        if node.op_type == "Split":
            split = a.get("split") or (
                g.ints(node.input[1], f"{what}: the sizes of Split {label(node)}")
                if len(node.input) > 1 and node.input[1]
                else None
            )
            if (
                a.get("axis", 0) != 1
                or len(node.output) != 2
                or (split is not None and [int(s) for s in split] != [channels // 2] * 2)
            ):
                raise OnnxImportError(
                    f"node {label(node)}: expected a Split of "
                    f"{channels} channels in two halves on axis 1"
                )
            return g.source(node.input[0]), list(node.output).index(tensor)
        starts, ends, axes, steps = self._slice_bounds(node, what)
        half = channels // 2
        for h, (lo, hi) in enumerate(((0, half), (half, channels))):
            if (
                axes == [1]
                and starts == [lo]
                and steps == [1]
                and len(ends) == 1
                and (ends == [hi] or (h == 1 and ends[0] >= channels))
            ):
                return g.source(node.input[0]), h
        raise OnnxImportError(
            f"node {label(node)}: expected a Slice of channels 0..{half} "
            f"or {half}..{channels} on axis 1"
        )

    def shuffled(self, tensor, channels, size, what):
        """``tensor`` (``channels`` x ``size`` = (H, W)) is the two-group channel shuffle of
        a Concat: its inputs."""
        g = self.g
        r2 = g.expect(tensor, ("Reshape",), f"{what}: the channel shuffle's last Reshape")
        tr = g.expect(r2.input[0], ("Transpose",), f"{what}: the channel shuffle's Transpose")
        r1 = g.expect(tr.input[0], ("Reshape",), f"{what}: the channel shuffle's first Reshape")
        cat = g.expect(r1.input[0], ("Concat",), f"{what}: the Concat before the shuffle")
        if g.attrs(cat).get("axis") != 1:
            raise OnnxImportError(f"node {label(cat)}: Concat must be on axis 1 (channels)")
        # Apply the three nodes to channel numbers and compare with the two-group shuffle.
        s1 = g.ints(r1.input[1], f"{what}: the shape of Reshape {label(r1)}")
        s2 = g.ints(r2.input[1], f"{what}: the shape of Reshape {label(r2)}")
        x = np.broadcast_to(np.arange(channels).reshape(1, channels, 1, 1), (1, channels, *size))

        def reshape(a, shape):  # ONNX Reshape: 0 copies the input's dimension
            return a.reshape([a.shape[k] if v == 0 else v for k, v in enumerate(shape)])

        try:
            y = reshape(reshape(x, s1).transpose(g.attrs(tr)["perm"]), s2)
            order = y[0, :, 0, 0].tolist() if y.shape == x.shape else None
        except (ValueError, KeyError, TypeError, IndexError):
            order = None
        want = np.empty(channels, int)
        want[0::2], want[1::2] = np.arange(channels // 2), np.arange(channels // 2, channels)
        if order != want.tolist():
            found = (
                f" (the graph has {s2[1]} there)"
                if len(s2) > 1 and s2[1] > 0 and s2[1] != channels
                else ""
            )
            raise OnnxImportError(
                f"{what}: nodes {label(r1)}, {label(tr)}, {label(r2)} are "
                f"not the two-group channel shuffle of {channels} "
                f"channels{found}"
            )
        return list(cat.input)

    def stage(self, tensor, core, i):
        """Blocks of ``core``'s stage ``i``, backwards from their output; returns the input."""
        for j in reversed(range(len(self.net.blocks(core, i)))):
            blk = self.net.blocks(core, i)[j]
            block = names.block(core, i, j)
            layers = [names.conv(core, i, j, layer) for layer in names.block_layers(blk.stride)]
            branches = [layers[k : k + 2] for k in range(0, len(layers), 2)]  # (dw, pw)
            size = (
                (blk.height_in, blk.width_in)
                if blk.stride == 1
                else (-(-blk.height_in // 2), -(-blk.width_in // 2))
            )
            parts = self.shuffled(tensor, blk.channels_out, size, f"block {block} output")
            if len(parts) != 2:
                raise OnnxImportError(
                    f"block {block}: the Concat joins {len(parts)} tensors, expected 2"
                )
            if blk.stride == 2:
                ins = [
                    self.conv(self.conv(t, pw), dw)
                    for t, (dw, pw) in zip(parts, branches, strict=True)
                ]
                srcs = [self.g.source(t) for t in ins]
            else:
                ((dw, pw),) = branches
                keep, h0 = self.halves(parts[0], blk.channels_in, f"block {block} passthrough")
                conv_in = self.conv(self.conv(parts[1], pw), dw)
                src, h1 = self.halves(conv_in, blk.channels_in, f"block {block} branch")
                if (h0, h1) != (0, 1):
                    raise OnnxImportError(
                        f"block {block}: the first half must pass "
                        f"through and the second be convolved"
                    )
                srcs = [keep, src]
            if srcs[0] != srcs[1]:
                raise OnnxImportError(
                    f"block {block}: its two halves come from "
                    f"different tensors ({srcs[0]!r}, {srcs[1]!r})"
                )
            tensor = srcs[0]
        return tensor

    def blend(self, tensor, name, channels):
        """``tensor`` = blend ``name``; returns (frozen input, own input)."""
        g = self.g
        add = g.expect(tensor, ("Add",), f"the Add of blend {name}")
        terms = [g.expect(t, ("Mul",), f"a Mul of blend {name}") for t in add.input]
        sig, frozen, own, inner_sig = None, None, None, None
        for mul in terms:
            for k in (0, 1):
                op = g.producer.get(g.source(mul.input[k]))
                if op is not None and op.op_type == "Sigmoid":
                    sig, frozen = op, g.source(mul.input[1 - k])
                elif op is not None and op.op_type == "Sub":
                    inner = g.producer.get(g.source(op.input[1]))
                    if g.is_one(op.input[0]) and inner is not None and inner.op_type == "Sigmoid":
                        own, inner_sig = g.source(mul.input[1 - k]), inner
        if (
            sig is None
            or frozen is None
            or own is None
            or g.source(inner_sig.input[0]) != g.source(sig.input[0])
        ):
            raise OnnxImportError(
                f"node {label(add)}: expected blend {name} as "
                f"Add(Mul(Sigmoid(w), frozen), Mul(Sub(1, Sigmoid(w)), own))"
            )
        w = g.floats(sig.input[0], f"blend {name} weight").reshape(-1)
        if w.shape != (channels,):
            raise OnnxImportError(
                f"blend {name}: weight has {w.size} values, expected {channels} (one per channel)"
            )
        self.params[name] = w
        return frozen, own

    def core_shuffle(self, ta, tb, channels, i):
        """Undo an optional cross-core shuffle in front of stage ``i``: the tensors a and b
        were made from, or ``(ta, tb)`` when there is none."""
        g = self.g
        na, nb = g.producer.get(g.source(ta)), g.producer.get(g.source(tb))
        if not (
            na is not None and na.op_type == "Concat" and nb is not None and nb.op_type == "Concat"
        ):
            shuffled = False
        else:
            (xa, ha), (ya, hb) = (
                self.halves(t, channels, f"core shuffle before stage {i}") for t in na.input
            )
            (xb, hc), (yb, hd) = (
                self.halves(t, channels, f"core shuffle before stage {i}") for t in nb.input
            )
            if (ha, hb, hc, hd) != (0, 1, 0, 1) or xa != yb or xb != ya or xa == xb:
                raise OnnxImportError(
                    f"nodes {label(na)}, {label(nb)}: not a cross-core "
                    f"shuffle (a keeps its first half and takes b's second)"
                )
            shuffled, ta, tb = True, xa, xb
        if self.shuffle is not None and self.shuffle != shuffled:
            raise OnnxImportError(
                f"the cross-core shuffle is on before some stages and off before stage {i}"
            )
        self.shuffle = shuffled
        return ta, tb

    def _slice_bounds(self, node, what):
        """``(starts, ends, axes, steps)`` of the Slice ``node`` (steps default to 1); its
        axes must be given (without them ONNX slices from axis 0)."""
        g = self.g
        if len(node.input) < 4 or not node.input[3]:
            raise OnnxImportError(f"node {label(node)}: a Slice of channels needs its axes")
        return tuple(
            g.ints(node.input[i], f"{what}: the {field} of Slice {label(node)}")
            if len(node.input) > i and node.input[i]
            else [1]
            for i, field in ((1, "starts"), (2, "ends"), (3, "axes"), (4, "steps"))
        )

    def _channel_range(self, node, tensor, what) -> tuple[int, int]:
        """The channels (axis 1) of its input that ``tensor``, an output of the Split or
        Slice ``node``, holds: ``(start, stop)``."""
        g = self.g
        if node.op_type == "Split":
            a = g.attrs(node)
            sizes = a.get("split") or (
                g.ints(node.input[1], f"{what}: the sizes of Split {label(node)}")
                if len(node.input) > 1 and node.input[1]
                else None
            )
            if a.get("axis", 0) != 1 or sizes is None or len(sizes) != len(node.output):
                raise OnnxImportError(
                    f"node {label(node)}: expected a Split on axis 1 with its sizes given"
                )
            k = list(node.output).index(tensor)
            start = sum(int(v) for v in sizes[:k])
            return start, start + int(sizes[k])
        starts, ends, axes, steps = self._slice_bounds(node, what)
        if (
            axes not in ([1], [-3])  # NCHW: -3 is the channel axis too
            or steps != [1]
            or len(starts) != 1
            or len(ends) != 1
            or not 0 <= starts[0] < ends[0]
        ):
            raise OnnxImportError(f"node {label(node)}: expected a Slice of channels on axis 1")
        return starts[0], ends[0]  # an end past the channels means to the end (clamped)

    def _lanes(self, tensor, cores, what) -> list[tuple[str, int]]:
        """``(core, channel)`` of each channel of ``tensor``: a core's output (``cores``
        maps its tensor to the core), a ``Concat`` of such on axis 1, or a ``Split`` /
        ``Slice`` of channels of one of these."""
        g, c = self.g, self.net.channels_after(len(self.net.stages))
        tensor = g.source(tensor)
        if tensor in cores:
            return [(cores[tensor], k) for k in range(c)]
        node = g.expect(
            tensor,
            ("Concat", "Split", "Slice"),
            f"{what}: a core's output, or a Concat, Split or Slice of the cores' outputs",
        )
        if node.op_type == "Concat":
            if g.attrs(node).get("axis") != 1:
                raise OnnxImportError(f"node {label(node)}: expected a Concat on axis 1")
            return [lane for x in node.input for lane in self._lanes(x, cores, what)]
        lo, hi = self._channel_range(node, tensor, what)
        lanes = self._lanes(node.input[0], cores, what)
        return lanes[lo : min(hi, len(lanes))]

    def head_group(self, tensor, k, cores) -> FloatHeadGroup:
        """Head group ``k`` from its model output ``tensor``, read backwards: an optional
        ``Flatten`` after a ``GlobalAveragePool`` (the pool switch on), an optional ``Relu``
        (else the identity), optionally a ``Split`` / ``Slice`` of channels (one group of a
        grouped conv), an optional ``BatchNormalization``, then a 1x1 ``Conv`` (any
        ``group``: the group whose output channels the slice selects) on the cores'
        outputs (``cores``: tensor -> core) or channels of them, which must be one of the
        group's sources."""
        g, spec, name = self.g, self.net.head[k], names.head_group(k)
        what = f"head group {name}"
        node = g.node(tensor, f"the output of {what}")
        pool, act, rows = 0, "identity", None
        if node.op_type == "Flatten":
            tensor = node.input[0]
            node = g.expect(tensor, ("GlobalAveragePool",), f"{what}: a pool to flatten")
        if node.op_type == "GlobalAveragePool":
            pool, tensor = 1, node.input[0]
            node = g.node(tensor, f"{what}: what its pool averages")
        for _ in range(2):  # a ReLU and a slice of channels, in either order
            if node.op_type == "Relu" and act == "identity":
                act, tensor = "relu", node.input[0]
            elif node.op_type in ("Split", "Slice") and rows is None:
                rows, tensor = self._channel_range(node, g.source(tensor), what), node.input[0]
            else:
                break
            node = g.node(tensor, f"{what}: its conv")
        bn = None
        if node.op_type == "BatchNormalization":
            bn, node = node, g.node(node.input[0], f"{what}: its conv")
        if node.op_type != "Conv":
            raise OnnxImportError(
                f"node {label(node)} ({node.op_type}): expected the 1x1 conv of {what}"
            )
        w = g.floats(node.input[1], f"{what}: conv weight")
        a = g.attrs(node)
        groups = int(a.get("group", 1))
        if groups < 1:
            raise OnnxImportError(f"node {label(node)}: the conv of {what} has group {groups}")
        if (
            w.ndim != 4
            or w.shape[2:] != (1, 1)
            or list(a.get("strides", [1, 1])) != [1, 1]
            or any(a.get("pads", [0] * 4))
            or w.shape[0] % groups
        ):
            raise OnnxImportError(
                f"node {label(node)}: the conv of {what} must be 1x1, stride 1, no padding; "
                f"found weight {w.shape}, strides {a.get('strides')}, pads {a.get('pads')}"
            )
        per = w.shape[0] // groups  # output channels of each of the conv's groups
        lo, hi = rows if rows is not None else (0, w.shape[0])
        hi = min(hi, w.shape[0])  # a Slice's end past the channels: to the end
        cg = lo // per
        if hi - lo != spec.c_out or hi > (cg + 1) * per or w.shape[1] != spec.c_in:
            raise OnnxImportError(
                f"node {label(node)}: {what} is {spec.c_in} -> {spec.c_out} channels; the model "
                f"gives channels {lo}..{hi} of a conv of weight {w.shape} in {groups} group(s)"
            )
        lanes = self._lanes(node.input[0], cores, what)[cg * spec.c_in : (cg + 1) * spec.c_in]
        # The group's input must be c_in consecutive lanes of the cores side by side,
        # starting where one of its sources does.
        side = [self.net.head_lane(core, ch) for core, ch in lanes]
        starts = [self.net.head_lane(core, first) for core, first in spec.sources]
        found = [i for i, s0 in enumerate(starts) if side == list(range(s0, s0 + spec.c_in))]
        if not found:
            where = f"{lanes[0][0]} channel {lanes[0][1]}" if lanes else "nothing"
            raise OnnxImportError(
                f"{what}: its conv reads {len(lanes)} channels from {where} on, not "
                f"{spec.c_in} channels from one of its sources {list(spec.sources)}"
            )
        conv = self._float_conv(node, bn, name, w[lo:hi, :, 0, 0], slice(lo, hi))
        return FloatHeadGroup(conv, act, pool, found[0])

    def read(self):
        net, g = self.net, self.g
        if len(g.inputs) != 1:
            raise OnnxImportError(f"the model has {len(g.inputs)} inputs, expected 1 (the image)")
        outputs = net.outputs()
        if len(g.outputs) != len(outputs):
            raise OnnxImportError(
                f"the model has {len(g.outputs)} outputs, expected "
                f"{len(outputs)} ({', '.join(o for o, _ in outputs)}: one per core"
                + (", then one per head group)" if net.head else ")")
            )
        heads = g.outputs[len(net.cores) :]
        for out in g.outputs[: len(net.cores)]:
            node = g.producer.get(g.source(out))
            if node is not None and node.op_type in (
                "GlobalAveragePool",
                "Gemm",
                "Flatten",
                "MatMul",
                "Softmax",
            ):
                raise OnnxImportError(
                    f"output {out!r} comes from {node.op_type} node "
                    f"{label(node)}: the first outputs are the cores' feature maps; a head "
                    f"is described in the network (its 'head') and its groups' outputs follow"
                )
        cur = {core: g.source(out) for core, out in zip(net.cores, g.outputs, strict=False)}
        by_tensor = {t: core for core, t in cur.items()}
        for k, out in enumerate(heads):
            self.params[names.head_group(k)] = self.head_group(out, k, by_tensor)
        trainable = [c for c in net.cores if c != "frozen"]
        for i in reversed(range(1, len(net.stages) + 1)):
            cur = {core: self.stage(cur[core], core, i) for core in net.cores}
            channels = net.channels_after(i - 1)
            if net.core_shuffle:
                cur["a"], cur["b"] = self.core_shuffle(cur["a"], cur["b"], channels, i)
            if net.blended:
                for k in trainable:
                    frozen, own = self.blend(cur[k], names.blend(k, i), channels)
                    if frozen != cur["frozen"]:
                        raise OnnxImportError(
                            f"blend {names.blend(k, i)} mixes {frozen!r}, not "
                            f"the frozen core's features before stage {i} "
                            f"({cur['frozen']!r})"
                        )
                    cur[k] = own
        pad = None
        for core in net.cores:
            stem = names.stem(core)
            norm = input_norm(g, self.conv(cur[core], stem), net.channels_in)
            if pad is not None and not np.allclose(norm.pad, pad, rtol=1e-6, atol=1e-9):
                raise OnnxImportError(
                    f"the stem of core {core} normalises the input differently from "
                    f"{net.cores[0]}'s: their zero padding stands for different pixels"
                )
            pad = norm.pad
            if norm.steps:
                self.folded.append(f"{stem}: {norm.describe()}")
            self.params[stem] = fold_input(self.params[stem], norm)
        if pad is not None and pad.any():
            self.params[names.INPUT_PAD] = pad
        return self.params, bool(self.shuffle)
