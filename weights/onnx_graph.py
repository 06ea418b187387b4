"""Reading an ONNX graph for :mod:`weights.onnx_import`: who produces each tensor, looking
through ``Identity`` and ``Dropout``, and constants read as checked floats or integers."""

import numpy as np
import onnx
from onnx import numpy_helper

__all__ = ["OnnxImportError", "Graph", "label", "first_line", "MAX_MODEL_BYTES", "F32_MAX"]


class OnnxImportError(ValueError):
    """The ONNX model does not fit the network description; the message says where."""


MAX_MODEL_BYTES = 2 << 30  # protobuf's own limit on one message
F32_MAX = float(np.finfo(np.float32).max)
LOOKED_THROUGH = ("Identity", "Dropout")


def first_line(e: BaseException, typed=True) -> str:
    """The first line of ``e``'s message, after its type name when ``typed``."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if typed or not text else text


class Graph:
    """An ONNX graph as the reader walks it: which node produces each tensor, the constants
    (initializers and Constant nodes), read and checked on demand."""

    def __init__(self, model: onnx.ModelProto):
        g = model.graph
        # name -> (TensorProto, where it is defined); converted to arrays when read
        self.tensors = {t.name: (t, "initializer") for t in g.initializer}
        self.producer = {}
        for node in g.node:
            if node.op_type == "Constant":
                attr = {a.name: a for a in node.attribute}
                if "value" in attr:
                    self.tensors[node.output[0]] = (attr["value"].t, f"Constant node {label(node)}")
                continue
            for out in node.output:
                self.producer[out] = node
        self.inputs = [i.name for i in g.input if i.name not in self.tensors]
        types = {i.name: i.type.tensor_type.elem_type for i in g.input}
        self.input_type = types[self.inputs[0]] if self.inputs else None  # TensorProto type
        self.outputs = [o.name for o in g.output]

    def _through(self, tensor):
        """The Identity or Dropout node ``tensor`` is the output of, or None."""
        node = self.producer.get(tensor)
        if (
            node is not None
            and node.op_type in LOOKED_THROUGH
            and node.input
            and node.output[0] == tensor
        ):  # not a Dropout's mask
            return node
        return None

    def source(self, tensor):
        """``tensor`` looking through Identity/Dropout: the name it was produced as."""
        while (node := self._through(tensor)) is not None:
            tensor = node.input[0]
        return tensor

    def node(self, tensor, what) -> onnx.NodeProto:
        """The node producing ``tensor``, looking through Identity and Dropout."""
        src = self.source(tensor)
        node = self.producer.get(src)
        if node is None:
            found = (
                "a graph input"
                if src in self.inputs
                else "a constant"
                if src in self.tensors
                else "nothing"
            )
            raise OnnxImportError(f"tensor {tensor!r}: expected {what}, found {found}")
        return node

    def expect(self, tensor, ops, what):
        node = self.node(tensor, what)
        if node.op_type not in ops:
            raise OnnxImportError(
                f"node {node.name or node.output[0]!r} ({node.op_type}): expected {what}"
            )
        return node

    def _const(self, name, what):
        """``(name, where, type name, array)`` of the constant ``name`` (looking through
        Identity/Dropout)."""
        name = self.source(name)
        if name not in self.tensors:
            raise OnnxImportError(f"{what}: {name!r} is not a constant (initializer)")
        t, where = self.tensors[name]
        try:
            a = numpy_helper.to_array(t)
        except Exception as e:  # noqa: BLE001 - onnx raises many kinds on a bad tensor
            raise OnnxImportError(
                f"{what}: {where} {name!r} cannot be read ({first_line(e)})"
            ) from None
        try:
            kind = onnx.TensorProto.DataType.Name(t.data_type)
        except ValueError:
            kind = f"type {t.data_type}"
        return name, where, kind.lower(), a

    def floats(self, name, what, shape=None) -> np.ndarray:
        """The constant ``name`` as float64: real floats (the ONNX type), ``shape`` when
        given, every value finite and within float32."""
        name, where, kind, a = self._const(name, what)
        if kind not in ("float", "double", "float16", "bfloat16") and not kind.startswith(
            ("float8", "float4")
        ):
            raise OnnxImportError(f"{what}: {where} {name!r} has type {kind}, expected real floats")
        a = np.asarray(a, np.float64)
        if shape is not None and a.shape != tuple(shape):
            raise OnnxImportError(
                f"{what}: {where} {name!r} has shape {a.shape}, expected {tuple(shape)}"
            )
        bad = np.argwhere(~(np.abs(a) <= F32_MAX))
        if len(bad):
            idx = tuple(int(v) for v in bad[0])
            why = "not finite" if not np.isfinite(a[idx]) else "beyond the float32 range"
            raise OnnxImportError(f"{what}: {where} {name!r}{list(idx)} is {a[idx]} ({why})")
        return a

    def ints(self, name, what) -> list[int]:
        """The constant ``name`` as a list of integers: an integer ONNX type, 1-D."""
        name, where, kind, a = self._const(name, what)
        if not kind.startswith(("int", "uint")):
            raise OnnxImportError(f"{what}: {where} {name!r} has type {kind}, expected integers")
        if a.ndim != 1:
            raise OnnxImportError(
                f"{what}: {where} {name!r} has shape {a.shape}, expected a 1-D list of integers"
            )
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
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def label(node) -> str:
    """How errors name ``node``."""
    return repr(node.name or node.output[0])
