"""Float backbones exported from a training framework (ONNX) onto the network description.

    python -m weights.onnx_import MODEL.onnx --preset NAME --frozen F.npz --trainable T.npz

writes the float-form weight files (``docs/weights-format.md``) that ``python -m
generators.build`` quantizes and builds.

The graph must be the backbone of the description, in NCHW layout, with one output per core
in the order ``frozen``, ``a``, ``b`` (those the network has). It is read backwards from each
output, so node and tensor names do not matter, only the dataflow:

* convolution: ``Conv`` (3x3 pad 1, or 1x1; depthwise as ``group = C``; an optional bias),
  then ``BatchNormalization`` (optional: a framework may have folded it into the conv), then
  ``Relu`` exactly where the description has one;
* regular block: the input's channels split in halves (``Split`` or two ``Slice``), the
  second half through depthwise and pointwise convs, ``Concat`` with the first half, then
  the channel shuffle (``Reshape``/``Transpose``/``Reshape``, checked to be the two-group
  permutation); downsampling block: two such branches on the whole input, ``Concat``,
  shuffle;
* alpha blend: ``Sigmoid`` of a per-channel initializer ``w``, ``Mul`` with the frozen
  features, ``Sub(1, .)`` ``Mul`` with the core's own, ``Add``;
* cross-core shuffle (optional): the two blended streams split in halves and re-joined with
  their second halves swapped.

``Identity`` and ``Dropout`` nodes are looked through. Anything else is an error naming the
node and what was expected there.
"""

import sys

import numpy as np

from .io import WeightFileError
from .network import Network
from .quantize import FloatConv

__all__ = ["OnnxImportError", "import_onnx", "main"]


class OnnxImportError(ValueError):
    """The ONNX model does not fit the network description; the message says where."""


class _Graph:
    def __init__(self, model):
        import onnx
        from onnx import numpy_helper

        g = model.graph
        self.consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.producer = {}
        for node in g.node:
            if node.op_type == "Constant":
                attr = {a.name: a for a in node.attribute}
                if "value" in attr:
                    self.consts[node.output[0]] = numpy_helper.to_array(attr["value"].t)
                continue
            for out in node.output:
                self.producer[out] = node
        self.inputs = [i.name for i in g.input if i.name not in self.consts]
        self.outputs = [o.name for o in g.output]
        self.onnx = onnx

    def node(self, tensor, what) -> "onnx.NodeProto":  # noqa: F821
        """The node producing ``tensor``, looking through Identity and Dropout."""
        node = self.producer.get(tensor)
        while node is not None and node.op_type in ("Identity", "Dropout"):
            node = self.producer.get(node.input[0])
        if node is None:
            raise OnnxImportError(f"tensor {tensor!r}: expected {what}, found "
                                  f"{'a graph input' if tensor in self.inputs else 'nothing'}")
        return node

    def expect(self, tensor, ops, what):
        node = self.node(tensor, what)
        if node.op_type not in ops:
            raise OnnxImportError(f"node {node.name or node.output[0]!r} ({node.op_type}): "
                                  f"expected {what}")
        return node

    def const(self, name, what):
        if name not in self.consts:
            raise OnnxImportError(f"{what}: {name!r} is not a constant (initializer)")
        return self.consts[name]

    def attrs(self, node) -> dict:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def source(self, tensor):
        """``tensor`` looking through Identity/Dropout: the name it was produced as."""
        node = self.producer.get(tensor)
        while node is not None and node.op_type in ("Identity", "Dropout"):
            tensor = node.input[0]
            node = self.producer.get(tensor)
        return tensor


def _label(node):
    return repr(node.name or node.output[0])


class _Reader:
    """Walks the graph backwards along the description, collecting float parameters."""

    def __init__(self, graph: _Graph, net: Network):
        self.g, self.net = graph, net
        self.specs = {c.name: c for c in net.convs()}
        self.params = {}
        self.shuffle = None  # whether the model has the cross-core shuffle

    def conv(self, tensor, name):
        """The conv ``name`` (+ BN, + ReLU) producing ``tensor``; returns its input."""
        g, spec = self.g, self.specs[name]
        node = g.node(tensor, f"the output of conv {name}")
        if spec.relu:
            if node.op_type != "Relu":
                raise OnnxImportError(f"node {_label(node)} ({node.op_type}): expected the "
                                      f"Relu after conv {name}")
            node = g.node(node.input[0], f"the batch norm or conv of {name}")
        elif node.op_type == "Relu":
            raise OnnxImportError(f"node {_label(node)}: conv {name} has no ReLU in the "
                                  f"network description")
        bn = None
        if node.op_type == "BatchNormalization":
            bn = node
            node = g.node(node.input[0], f"conv {name}")
        if node.op_type != "Conv":
            raise OnnxImportError(f"node {_label(node)} ({node.op_type}): expected conv {name}")
        w = np.asarray(g.const(node.input[1], f"conv {name} weight"), np.float64)
        a = g.attrs(node)
        k = 1 if spec.kind == "pointwise" else 3
        group = spec.c_in if spec.kind == "depthwise" else 1
        want = {"full": (spec.c_out, spec.c_in, 3, 3), "depthwise": (spec.c_out, 1, 3, 3),
                "pointwise": (spec.c_out, spec.c_in, 1, 1)}[spec.kind]
        pads = [k // 2] * 4
        got = (w.shape, list(a.get("strides", [1, 1])), a.get("group", 1),
               list(a.get("pads", [0] * 4)), list(a.get("dilations", [1, 1])))
        if got != (want, [spec.stride] * 2, group, pads, [1, 1]) or \
                a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise OnnxImportError(
                f"node {_label(node)}: conv {name} should be {spec.kind} with weight {want}, "
                f"stride {spec.stride}, group {group}, pads {pads}; found weight {w.shape}, "
                f"strides {got[1]}, group {got[2]}, pads {got[3]}, dilations {got[4]}")
        weight = w.reshape(spec.weight_shape)
        bias = np.asarray(g.const(node.input[2], f"conv {name} bias"), np.float64) \
            if len(node.input) > 2 and node.input[2] else np.zeros(spec.c_out)
        if bn is None:
            p = FloatConv(weight, np.ones(spec.c_out), bias, np.zeros(spec.c_out),
                          np.ones(spec.c_out), eps=0.0)
        else:
            gamma, beta, mean, var = (np.asarray(g.const(i, f"batch norm of {name}"),
                                                 np.float64) for i in bn.input[1:5])
            eps = float(g.attrs(bn).get("epsilon", 1e-5))
            if np.shape(var) == (spec.c_out,) and not (var + eps > 0).all():
                raise OnnxImportError(f"batch norm of {name} ({_label(bn)}): variance + "
                                      f"epsilon must be > 0")
            p = FloatConv(weight, gamma, beta, mean - bias, var, eps=eps)
        for field in ("gamma", "beta", "mean", "var"):
            if np.shape(getattr(p, field)) != (spec.c_out,):
                raise OnnxImportError(f"batch norm of {name}: {field} has shape "
                                      f"{np.shape(getattr(p, field))}, expected "
                                      f"({spec.c_out},)")
        self.params[name] = p
        return node.input[0]

    def halves(self, tensor, channels, what):
        """``tensor`` is the first or second half (axis 1) of another: ``(source, half)``."""
        g = self.g
        node = g.expect(tensor, ("Split", "Slice"), f"{what}: a Split or Slice of channels")
        a = g.attrs(node)
        if node.op_type == "Split":
            split = a.get("split") or (list(g.const(node.input[1], f"{_label(node)} split"))
                                       if len(node.input) > 1 and node.input[1] else None)
            if a.get("axis", 0) != 1 or len(node.output) != 2 or \
                    (split is not None and [int(s) for s in split] != [channels // 2] * 2):
                raise OnnxImportError(f"node {_label(node)}: expected a Split of "
                                      f"{channels} channels in two halves on axis 1")
            return g.source(node.input[0]), list(node.output).index(tensor)
        if len(node.input) < 4:
            raise OnnxImportError(f"node {_label(node)}: a Slice of channels needs its axes")
        starts, ends, axes = (np.asarray(g.const(node.input[i], f"{_label(node)} slice"))
                              .reshape(-1).tolist() for i in (1, 2, 3))
        steps = np.asarray(g.const(node.input[4], "slice")).reshape(-1).tolist() \
            if len(node.input) > 4 else [1]
        half = channels // 2
        for h, (lo, hi) in enumerate(((0, half), (half, channels))):
            if axes == [1] and starts == [lo] and steps == [1] and \
                    (ends == [hi] or (h == 1 and ends[0] >= channels)):
                return g.source(node.input[0]), h
        raise OnnxImportError(f"node {_label(node)}: expected a Slice of channels 0..{half} "
                              f"or {half}..{channels} on axis 1")

    def shuffled(self, tensor, channels, size, what):
        """``tensor`` (``channels`` x ``size`` = (H, W)) is the two-group channel shuffle of
        a Concat: its inputs."""
        g = self.g
        r2 = g.expect(tensor, ("Reshape",), f"{what}: the channel shuffle's last Reshape")
        tr = g.expect(r2.input[0], ("Transpose",), f"{what}: the channel shuffle's Transpose")
        r1 = g.expect(tr.input[0], ("Reshape",), f"{what}: the channel shuffle's first Reshape")
        cat = g.expect(r1.input[0], ("Concat",), f"{what}: the Concat before the shuffle")
        if g.attrs(cat).get("axis") != 1:
            raise OnnxImportError(f"node {_label(cat)}: Concat must be on axis 1 (channels)")
        # Apply the three nodes to channel numbers and compare with the two-group shuffle.
        s1 = [int(v) for v in g.const(r1.input[1], f"{_label(r1)} shape")]
        s2 = [int(v) for v in g.const(r2.input[1], f"{_label(r2)} shape")]
        x = np.broadcast_to(np.arange(channels).reshape(1, channels, 1, 1),
                            (1, channels, *size))

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
            found = f" (the graph has {s2[1]} there)" if len(s2) > 1 and s2[1] > 0 and \
                s2[1] != channels else ""
            raise OnnxImportError(f"{what}: nodes {_label(r1)}, {_label(tr)}, {_label(r2)} are "
                                  f"not the two-group channel shuffle of {channels} "
                                  f"channels{found}")
        return list(cat.input)

    def stage(self, tensor, core, i):
        """Blocks of ``core``'s stage ``i``, backwards from their output; returns the input."""
        for j in reversed(range(len(self.net.blocks(core, i)))):
            blk = self.net.blocks(core, i)[j]
            pre = f"{core}.m{i}.{j}."
            size = (blk.height_in, blk.width_in) if blk.stride == 1 else \
                (-(-blk.height_in // 2), -(-blk.width_in // 2))
            parts = self.shuffled(tensor, blk.channels_out, size, f"block {pre[:-1]} output")
            if len(parts) != 2:
                raise OnnxImportError(f"block {pre[:-1]}: the Concat joins {len(parts)} "
                                      f"tensors, expected 2")
            if blk.stride == 2:
                ins = [self.conv(self.conv(t, pre + br + "pw"), pre + br + "dw")
                       for t, br in zip(parts, ("b0_", "b1_"), strict=True)]
                srcs = [self.g.source(t) for t in ins]
            else:
                keep, h0 = self.halves(parts[0], blk.channels_in, f"block {pre[:-1]} "
                                       f"passthrough")
                conv_in = self.conv(self.conv(parts[1], pre + "pw"), pre + "dw")
                src, h1 = self.halves(conv_in, blk.channels_in, f"block {pre[:-1]} branch")
                if (h0, h1) != (0, 1):
                    raise OnnxImportError(f"block {pre[:-1]}: the first half must pass "
                                          f"through and the second be convolved")
                srcs = [keep, src]
            if srcs[0] != srcs[1]:
                raise OnnxImportError(f"block {pre[:-1]}: its two halves come from "
                                      f"different tensors ({srcs[0]!r}, {srcs[1]!r})")
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
                    one = g.consts.get(op.input[0])
                    inner = g.producer.get(g.source(op.input[1]))
                    if one is not None and np.all(one == 1) and inner is not None and \
                            inner.op_type == "Sigmoid":
                        own, inner_sig = g.source(mul.input[1 - k]), inner
        if sig is None or frozen is None or own is None or inner_sig.input[0] != sig.input[0]:
            raise OnnxImportError(f"node {_label(add)}: expected blend {name} as "
                                  f"Add(Mul(Sigmoid(w), frozen), Mul(Sub(1, Sigmoid(w)), own))")
        w = np.asarray(g.const(sig.input[0], f"blend {name} weight"), np.float64).reshape(-1)
        if w.shape != (channels,):
            raise OnnxImportError(f"blend {name}: weight has {w.size} values, expected "
                                  f"{channels} (one per channel)")
        self.params[name] = w
        return frozen, own

    def core_shuffle(self, ta, tb, channels, i):
        """Undo an optional cross-core shuffle in front of stage ``i``: the tensors a and b
        were made from, or ``(ta, tb)`` when there is none."""
        g = self.g
        na, nb = g.producer.get(ta), g.producer.get(tb)
        if not (na is not None and na.op_type == "Concat" and nb is not None and
                nb.op_type == "Concat"):
            shuffled = False
        else:
            (xa, ha), (ya, hb) = (self.halves(t, channels, f"core shuffle before stage {i}")
                                  for t in na.input)
            (xb, hc), (yb, hd) = (self.halves(t, channels, f"core shuffle before stage {i}")
                                  for t in nb.input)
            if (ha, hb, hc, hd) != (0, 1, 0, 1) or xa != yb or xb != ya or xa == xb:
                raise OnnxImportError(f"nodes {_label(na)}, {_label(nb)}: not a cross-core "
                                      f"shuffle (a keeps its first half and takes b's second)")
            shuffled, ta, tb = True, xa, xb
        if self.shuffle is not None and self.shuffle != shuffled:
            raise OnnxImportError(f"the cross-core shuffle is on before some stages and off "
                                  f"before stage {i}")
        self.shuffle = shuffled
        return ta, tb

    def read(self):
        net, g = self.net, self.g
        if len(g.inputs) != 1:
            raise OnnxImportError(f"the model has {len(g.inputs)} inputs, expected 1 (the "
                                  f"image)")
        if len(g.outputs) != len(net.cores):
            raise OnnxImportError(f"the model has {len(g.outputs)} outputs, expected "
                                  f"{len(net.cores)} ({', '.join(net.cores)}: one per core)")
        for out in g.outputs:
            node = g.producer.get(out)
            if node is not None and node.op_type in ("GlobalAveragePool", "Gemm", "Flatten",
                                                     "MatMul", "Softmax"):
                raise OnnxImportError(f"output {out!r} comes from {node.op_type} node "
                                      f"{_label(node)}: the model head is not supported yet; "
                                      f"export the backbone's feature maps as outputs")
        cur = {core: g.source(out) for core, out in zip(net.cores, g.outputs, strict=True)}
        trainable = [c for c in net.cores if c != "frozen"]
        for i in reversed(range(1, len(net.stages) + 1)):
            cur = {core: self.stage(cur[core], core, i) for core in net.cores}
            channels = net.blocks(net.cores[0], i)[0].channels_in
            if net.core_shuffle:
                cur["a"], cur["b"] = self.core_shuffle(cur["a"], cur["b"], channels, i)
            if net.blended:
                for k in trainable:
                    frozen, own = self.blend(cur[k], f"{k}.m{i}.alpha", channels)
                    if frozen != cur["frozen"]:
                        raise OnnxImportError(f"blend {k}.m{i}.alpha mixes {frozen!r}, not "
                                              f"the frozen core's features before stage {i} "
                                              f"({cur['frozen']!r})")
                    cur[k] = own
        for core in net.cores:
            src = g.source(self.conv(cur[core], f"{core}.stem"))
            if src != g.inputs[0]:
                raise OnnxImportError(f"the stem of core {core} reads {src!r}, not the model "
                                      f"input {g.inputs[0]!r}")
        return self.params, bool(self.shuffle)


def import_onnx(model, net: Network) -> tuple[dict, bool]:
    """Float parameters of ``net`` (:class:`FloatConv` per conv, blend logits) from an ONNX
    model (a path or ``onnx.ModelProto``), and whether it has the cross-core shuffle on."""
    import onnx

    if not isinstance(model, onnx.ModelProto):
        try:
            model = onnx.load(str(model))
        except Exception as e:  # noqa: BLE001 - onnx raises many kinds on a bad file
            raise OnnxImportError(f"{model}: not a readable ONNX model ({type(e).__name__}: "
                                  f"{str(e).splitlines()[0] if str(e) else ''})") from None
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise OnnxImportError(f"the model fails ONNX's checker: "
                              f"{str(e).splitlines()[0]}") from None
    params, shuffle = _Reader(_Graph(model), net).read()
    missing = [c.name for c in net.convs() if c.name not in params] + \
        [b.name for b in net.blends() if b.name not in params]
    if missing:  # cannot happen for a walk that completed; a guard against reader bugs
        raise OnnxImportError(f"not found in the model: {', '.join(missing)}")
    return params, shuffle


def main(argv=None) -> int:
    from generators.cli import Parser, run_command
    from generators.flow import cli_network

    from .files import save_frozen, save_trainable

    p = Parser(prog="python -m weights.onnx_import",
                                description="ONNX float backbone -> float-form weight files")
    p.add_argument("model", help="ONNX model (NCHW; outputs: frozen, a, b core features)")
    net_args = p.add_mutually_exclusive_group(required=True)
    net_args.add_argument("--preset", metavar="NAME", help="network description by name")
    net_args.add_argument("--config", metavar="FILE", help="network description (JSON)")
    p.add_argument("--frozen", required=True, metavar="FILE", help="frozen file to write")
    p.add_argument("--trainable", required=True, metavar="FILE",
                   help="trainable file to write")
    args = p.parse_args(argv)

    def body():
        net = cli_network(args.preset, args.config)
        params, shuffle = import_onnx(args.model, net)
        save_frozen(args.frozen, net, params)
        save_trainable(args.trainable, net, params)
        print(f"imported {args.model}: network {net.name}, {len(params)} layers and blends, "
              f"core shuffle {'on' if shuffle else 'off'}", file=sys.stderr)

    return run_command(body, (OnnxImportError, WeightFileError, OSError))

if __name__ == "__main__":
    sys.exit(main())
