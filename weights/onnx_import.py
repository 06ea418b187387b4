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
node and what was expected there. Parameters must be real floats (float, double, float16,
bfloat16, float8), finite and within float32 (what the weight files hold); the Split sizes,
Reshape shapes and Slice bounds, 1-D integer lists. The model must be one file (no external
data) of at most 2 GiB.
"""

import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from .io import WeightFileError, regular_file
from .network import Network
from .quantize import FloatConv

__all__ = ["OnnxImportError", "import_onnx", "main"]


class OnnxImportError(ValueError):
    """The ONNX model does not fit the network description; the message says where."""


MAX_MODEL_BYTES = 2 << 30  # protobuf's own limit on one message
_F32_MAX = float(np.finfo(np.float32).max)
_LOOKED_THROUGH = ("Identity", "Dropout")


def _first_line(e: BaseException, typed=True) -> str:
    """The first line of ``e``'s message, after its type name when ``typed``."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if typed or not text else text


class _Graph:
    def __init__(self, model):
        import onnx

        g = model.graph
        # name -> (TensorProto, where it is defined); converted to arrays when read
        self.tensors = {t.name: (t, "initializer") for t in g.initializer}
        self.producer = {}
        for node in g.node:
            if node.op_type == "Constant":
                attr = {a.name: a for a in node.attribute}
                if "value" in attr:
                    self.tensors[node.output[0]] = (attr["value"].t,
                                                    f"Constant node {_label(node)}")
                continue
            for out in node.output:
                self.producer[out] = node
        self.inputs = [i.name for i in g.input if i.name not in self.tensors]
        self.outputs = [o.name for o in g.output]
        self.onnx = onnx

    def _through(self, tensor):
        """The Identity or Dropout node ``tensor`` is the output of, or None."""
        node = self.producer.get(tensor)
        if node is not None and node.op_type in _LOOKED_THROUGH and node.input and \
                node.output[0] == tensor:  # not a Dropout's mask
            return node
        return None

    def source(self, tensor):
        """``tensor`` looking through Identity/Dropout: the name it was produced as."""
        while (node := self._through(tensor)) is not None:
            tensor = node.input[0]
        return tensor

    def node(self, tensor, what) -> "onnx.NodeProto":  # noqa: F821
        """The node producing ``tensor``, looking through Identity and Dropout."""
        src = self.source(tensor)
        node = self.producer.get(src)
        if node is None:
            found = "a graph input" if src in self.inputs else \
                "a constant" if src in self.tensors else "nothing"
            raise OnnxImportError(f"tensor {tensor!r}: expected {what}, found {found}")
        return node

    def expect(self, tensor, ops, what):
        node = self.node(tensor, what)
        if node.op_type not in ops:
            raise OnnxImportError(f"node {node.name or node.output[0]!r} ({node.op_type}): "
                                  f"expected {what}")
        return node

    def _const(self, name, what):
        """``(name, where, type name, array)`` of the constant ``name`` (looking through
        Identity/Dropout)."""
        name = self.source(name)
        if name not in self.tensors:
            raise OnnxImportError(f"{what}: {name!r} is not a constant (initializer)")
        t, where = self.tensors[name]
        from onnx import numpy_helper

        try:
            a = numpy_helper.to_array(t)
        except Exception as e:  # noqa: BLE001 - onnx raises many kinds on a bad tensor
            raise OnnxImportError(f"{what}: {where} {name!r} cannot be read "
                                  f"({_first_line(e)})") from None
        try:
            kind = self.onnx.TensorProto.DataType.Name(t.data_type)
        except ValueError:
            kind = f"type {t.data_type}"
        return name, where, kind.lower(), a

    def floats(self, name, what, shape=None) -> np.ndarray:
        """The constant ``name`` as float64: real floats (the ONNX type), ``shape`` when
        given, every value finite and within float32."""
        name, where, kind, a = self._const(name, what)
        if kind not in ("float", "double", "float16", "bfloat16") and \
                not kind.startswith(("float8", "float4")):
            raise OnnxImportError(f"{what}: {where} {name!r} has type {kind}, expected real "
                                  f"floats")
        a = np.asarray(a, np.float64)
        if shape is not None and a.shape != tuple(shape):
            raise OnnxImportError(f"{what}: {where} {name!r} has shape {a.shape}, expected "
                                  f"{tuple(shape)}")
        bad = np.argwhere(~(np.abs(a) <= _F32_MAX))
        if len(bad):
            idx = tuple(int(v) for v in bad[0])
            why = "not finite" if not np.isfinite(a[idx]) else "beyond the float32 range"
            raise OnnxImportError(f"{what}: {where} {name!r}{list(idx)} is {a[idx]} ({why})")
        return a

    def ints(self, name, what) -> list[int]:
        """The constant ``name`` as a list of integers: an integer ONNX type, 1-D."""
        name, where, kind, a = self._const(name, what)
        if not kind.startswith(("int", "uint")):
            raise OnnxImportError(f"{what}: {where} {name!r} has type {kind}, expected "
                                  f"integers")
        if a.ndim != 1:
            raise OnnxImportError(f"{what}: {where} {name!r} has shape {a.shape}, expected a "
                                  f"1-D list of integers")
        return [int(v) for v in a.tolist()]

    def is_one(self, name) -> bool:
        """Whether ``name`` is a constant of ones (real floats or integers)."""
        try:
            _, _, kind, a = self._const(name, "")
        except OnnxImportError:
            return False
        if not kind.startswith(("float", "double", "bfloat", "int", "uint")):
            return False
        a = np.asarray(a, np.float64)
        return a.size > 0 and bool(np.all(a == 1))

    def attrs(self, node) -> dict:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}


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
        w = g.floats(node.input[1], f"conv {name} weight")
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
        bias = g.floats(node.input[2], f"conv {name} bias ({_label(node)})", (spec.c_out,)) \
            if len(node.input) > 2 and node.input[2] else np.zeros(spec.c_out)
        if bn is None:
            p = FloatConv(weight, np.ones(spec.c_out), bias, np.zeros(spec.c_out),
                          np.ones(spec.c_out), eps=0.0)
        else:
            gamma, beta, mean, var = (
                g.floats(i, f"batch norm of {name} ({_label(bn)}) {field}", (spec.c_out,))
                for i, field in zip(bn.input[1:5], ("gamma", "beta", "mean", "var"),
                                    strict=True))
            try:
                eps = float(g.attrs(bn).get("epsilon", 1e-5))
            except (TypeError, ValueError):
                eps = math.nan
            if not (math.isfinite(eps) and 0 <= eps <= _F32_MAX):
                raise OnnxImportError(f"batch norm of {name} ({_label(bn)}): epsilon "
                                      f"{g.attrs(bn).get('epsilon')!r} must be a finite "
                                      f"number >= 0")
            # as the weight files hold them (float32), which their reader checks the same way
            v32 = var.astype(np.float32)
            bad = np.flatnonzero((v32 < 0) | ((v32 == 0) & (np.float32(eps) == 0)))
            if len(bad):
                raise OnnxImportError(f"batch norm of {name} ({_label(bn)}): variance "
                                      f"{bn.input[4]!r}[{bad[0]}] is {var[bad[0]]} with "
                                      f"epsilon {eps}; variance must be >= 0 and variance + "
                                      f"epsilon > 0")
            mean = mean - bias  # the conv's bias folded into the norm
            if not (np.abs(mean) <= _F32_MAX).all():
                raise OnnxImportError(f"batch norm of {name} ({_label(bn)}): mean - conv "
                                      f"bias is beyond the float32 range")
            p = FloatConv(weight, gamma, beta, mean, var, eps=eps)
        self.params[name] = p
        return node.input[0]

    def halves(self, tensor, channels, what):
        """``tensor`` is the first or second half (axis 1) of another: ``(source, half)``."""
        g = self.g
        tensor = g.source(tensor)
        node = g.expect(tensor, ("Split", "Slice"), f"{what}: a Split or Slice of channels")
        a = g.attrs(node)
        if node.op_type == "Split":
            split = a.get("split") or (g.ints(node.input[1], f"{what}: the sizes of Split "
                                              f"{_label(node)}")
                                       if len(node.input) > 1 and node.input[1] else None)
            if a.get("axis", 0) != 1 or len(node.output) != 2 or \
                    (split is not None and [int(s) for s in split] != [channels // 2] * 2):
                raise OnnxImportError(f"node {_label(node)}: expected a Split of "
                                      f"{channels} channels in two halves on axis 1")
            return g.source(node.input[0]), list(node.output).index(tensor)
        if len(node.input) < 4:
            raise OnnxImportError(f"node {_label(node)}: a Slice of channels needs its axes")
        starts, ends, axes, steps = (
            g.ints(node.input[i], f"{what}: the {field} of Slice {_label(node)}")
            if len(node.input) > i and node.input[i] else [1]
            for i, field in ((1, "starts"), (2, "ends"), (3, "axes"), (4, "steps")))
        half = channels // 2
        for h, (lo, hi) in enumerate(((0, half), (half, channels))):
            if axes == [1] and starts == [lo] and steps == [1] and len(ends) == 1 and \
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
        s1 = g.ints(r1.input[1], f"{what}: the shape of Reshape {_label(r1)}")
        s2 = g.ints(r2.input[1], f"{what}: the shape of Reshape {_label(r2)}")
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
                    inner = g.producer.get(g.source(op.input[1]))
                    if g.is_one(op.input[0]) and inner is not None and \
                            inner.op_type == "Sigmoid":
                        own, inner_sig = g.source(mul.input[1 - k]), inner
        if sig is None or frozen is None or own is None or \
                g.source(inner_sig.input[0]) != g.source(sig.input[0]):
            raise OnnxImportError(f"node {_label(add)}: expected blend {name} as "
                                  f"Add(Mul(Sigmoid(w), frozen), Mul(Sub(1, Sigmoid(w)), own))")
        w = g.floats(sig.input[0], f"blend {name} weight").reshape(-1)
        if w.shape != (channels,):
            raise OnnxImportError(f"blend {name}: weight has {w.size} values, expected "
                                  f"{channels} (one per channel)")
        self.params[name] = w
        return frozen, own

    def core_shuffle(self, ta, tb, channels, i):
        """Undo an optional cross-core shuffle in front of stage ``i``: the tensors a and b
        were made from, or ``(ta, tb)`` when there is none."""
        g = self.g
        na, nb = g.producer.get(g.source(ta)), g.producer.get(g.source(tb))
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
            node = g.producer.get(g.source(out))
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
        size = regular_file(model)
        if size > MAX_MODEL_BYTES:
            raise OnnxImportError(f"{model}: {size} bytes, more than an ONNX model may have "
                                  f"({MAX_MODEL_BYTES})")
        try:
            model = onnx.load(str(model), load_external_data=False)
        except Exception as e:  # noqa: BLE001 - onnx raises many kinds on a bad file
            raise OnnxImportError(f"{model}: not a readable ONNX model "
                                  f"({_first_line(e)})") from None
    constants = [(t, "initializer") for t in model.graph.initializer] + \
        [(a.t, f"Constant node {_label(n)}") for n in model.graph.node
         if n.op_type == "Constant" for a in n.attribute if a.name == "value"]
    for t, where in constants:  # before the checker, which would open the files
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise OnnxImportError(f"{where} {t.name!r} is stored in an external data file; "
                                  f"save the model as one file")
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001 - ValidationError, and ValueError on odd models
        typed = not isinstance(e, onnx.checker.ValidationError)
        raise OnnxImportError(f"the model fails ONNX's checker: "
                              f"{_first_line(e, typed)}") from None
    params, shuffle = _Reader(_Graph(model), net).read()
    missing = [c.name for c in net.convs() if c.name not in params] + \
        [b.name for b in net.blends() if b.name not in params]
    if missing:  # cannot happen for a walk that completed; a guard against reader bugs
        raise OnnxImportError(f"not found in the model: {', '.join(missing)}")
    return params, shuffle


def _same_file(a, b) -> bool:
    """Whether paths ``a`` and ``b`` name one file (resolved, or hard links of one)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def _check_outputs(inputs: dict, outputs: dict) -> dict:
    """``outputs`` (option -> path) checked before anything is read or written: different
    files, none of the ``inputs`` (what -> path), each in an existing directory and not
    itself a directory."""
    real = {opt: os.path.realpath(path) for opt, path in outputs.items()}
    seen = {}
    for opt, path in outputs.items():
        for what, src in inputs.items():
            if src is not None and _same_file(path, src):
                raise OnnxImportError(f"{opt} {path}: is the {what} (refusing to overwrite "
                                      f"it)")
        if real[opt] in seen:
            raise OnnxImportError(f"{seen[real[opt]]} and {opt} are the same file ({path}): "
                                  f"they must differ")
        seen[real[opt]] = opt
        parent = Path(real[opt]).parent
        if not parent.is_dir():
            raise OnnxImportError(f"{opt} {path}: directory {str(parent)!r} " +
                                  ("is not a directory" if parent.exists() else
                                   "does not exist"))
        if os.path.lexists(real[opt]) and not Path(real[opt]).is_file():
            raise OnnxImportError(f"{opt} {path}: exists and is not a regular file")
    return {opt: Path(path) for opt, path in outputs.items()}


def _write_all(writes) -> None:
    """Each ``(option, path, write)`` of ``writes``: ``write(temporary)`` for all, then the
    temporaries renamed into place, so that a failure leaves none of the files written."""
    tmps, done = [], []
    try:
        for opt, path, write in writes:
            try:
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                           suffix=".tmp")
                os.close(fd)
                tmps.append(tmp)
                write(tmp)
            except OSError as e:
                raise OnnxImportError(f"{opt} {path}: cannot write ({e.strerror or e})") \
                    from None
        for (opt, path, _), tmp in zip(writes, tmps, strict=True):
            try:
                os.replace(tmp, path)
            except OSError as e:
                raise OnnxImportError(f"{opt} {path}: cannot write ({e.strerror or e})") \
                    from None
            done.append(path)
    except BaseException:
        for f in [*tmps, *done]:
            Path(f).unlink(missing_ok=True)
        raise


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
        outputs = _check_outputs({"input model": args.model, "--config file": args.config},
                                 {"--frozen": args.frozen, "--trainable": args.trainable})
        params, shuffle = import_onnx(args.model, net)
        _write_all([(opt, path, lambda p, save=save: save(p, net, params))
                    for (opt, path), save in zip(outputs.items(), (save_frozen, save_trainable),
                                                 strict=True)])
        print(f"imported {args.model}: network {net.name}, {len(params)} layers and blends, "
              f"core shuffle {'on' if shuffle else 'off'}", file=sys.stderr)

    return run_command(body, (OnnxImportError, WeightFileError, OSError))

if __name__ == "__main__":
    sys.exit(main())
