"""Float backbones exported from a training framework (ONNX) onto the network description.

    python -m weights.onnx_import MODEL.onnx --preset NAME --frozen F.npz --trainable T.npz

writes the float-form weight files (``docs/weights-format.md``) that ``python -m
generators.build`` quantizes and builds.

The graph must be the backbone of the description, in NCHW layout, with one output per core
in the order ``frozen``, ``a``, ``b`` (those the network has), then, for a network with a
head, one output per head group. It is read backwards from each output, so node and tensor
names do not matter, only the dataflow:

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
  their second halves swapped; whether it is there goes into the trainable file;
* input normalisation (optional) between the model input and the stems: ``Cast`` to float,
  ``Sub``/``Add``/``Mul``/``Div`` by constants (a scalar or one value per channel),
  ``BatchNormalization``. It is folded into the stems exactly (``weights/onnx_input.py``). A
  model with one (or with a uint8 input) takes raw pixels 0..255; a model without one takes
  ``(p - 128) / 128``, the network's own input convention.

* head group (``docs/head.md``): a 1x1 ``Conv`` (an optional bias; any ``group``: the group
  is then the conv's group whose output channels the graph slices off), an optional
  ``BatchNormalization``, an optional ``Relu`` (else the identity), a ``Split`` or
  ``Slice`` of channels (a grouped conv's part) before or after the ``Relu``, an optional
  ``GlobalAveragePool`` (then its pool switch is on), optionally ``Flatten``. The conv reads
  the cores' outputs, a ``Concat`` of them on axis 1 or channels of those; what it reads
  must be one of the group's sources, which becomes its power-up source.

``Identity`` and ``Dropout`` nodes are looked through. Anything else is an error naming the
node and what was expected there. Parameters must be real floats (float, double, float16,
bfloat16, float8), finite and within float32 (what the weight files hold); the Split sizes,
Reshape shapes and Slice bounds, 1-D integer lists. The model must be one file (no external
data) of at most 2 GiB.
"""

import sys

import onnx

from common.cli import Parser, run_command
from common.files import OutputError, check_outputs, write_all
from spec.network import PRESETS, Network

from .files import network_option, save_frozen, save_trainable
from .io import WeightFileError, regular_file
from .onnx_graph import MAX_MODEL_BYTES, Graph, OnnxImportError, first_line, label
from .onnx_topology import Reader

__all__ = ["OnnxImportError", "import_onnx", "main"]


def import_onnx(model, net: Network, report: list | None = None) -> tuple[dict, bool]:
    """Float parameters of ``net`` (:class:`FloatConv` per conv, blend logits, a
    :class:`~.floatnet.FloatHeadGroup` per head group, and the input
    padding ``spec.names.INPUT_PAD`` where a normalisation was folded into the stems) from an
    ONNX model (a path or ``onnx.ModelProto``), and whether it has the cross-core shuffle on.
    With ``report`` (a list), a line per folded input normalisation is appended to it."""
    if not isinstance(model, onnx.ModelProto):
        size = regular_file(model)
        if size > MAX_MODEL_BYTES:
            raise OnnxImportError(
                f"{model}: {size} bytes, more than an ONNX model may have ({MAX_MODEL_BYTES})"
            )
        try:
            model = onnx.load(str(model), load_external_data=False)
        except Exception as e:  # noqa: BLE001 - onnx raises many kinds on a bad file
            raise OnnxImportError(f"{model}: not a readable ONNX model ({first_line(e)})") from None
    constants = [(t, "initializer") for t in model.graph.initializer] + [
        (a.t, f"Constant node {label(n)}")
        for n in model.graph.node
        if n.op_type == "Constant"
        for a in n.attribute
        if a.name == "value"
    ]
    for t, where in constants:  # before the checker, which would open the files
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise OnnxImportError(
                f"{where} {t.name!r} is stored in an external data file; save the model as one file"
            )
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001 - ValidationError, and ValueError on odd models
        typed = not isinstance(e, onnx.checker.ValidationError)
        raise OnnxImportError(f"the model fails ONNX's checker: {first_line(e, typed)}") from None
    reader = Reader(Graph(model), net)
    params, shuffle = reader.read()
    if report is not None:
        report.extend(reader.folded)
    missing = [c.name for c in net.convs() + net.head_convs() if c.name not in params] + [
        b.name for b in net.blends() if b.name not in params
    ]
    if missing:  # cannot happen for a walk that completed; a guard against reader bugs
        raise OnnxImportError(f"not found in the model: {', '.join(missing)}")
    return params, shuffle


def _parser() -> Parser:
    p = Parser(
        prog="python -m weights.onnx_import",
        description="ONNX float backbone -> float-form weight files",
    )
    p.add_argument(
        "model", help="ONNX model (NCHW; outputs: frozen, a, b core features, then head groups)"
    )
    net_args = p.add_mutually_exclusive_group(required=True)
    net_args.add_argument(
        "--preset", metavar="NAME", help=f"network description by name ({', '.join(PRESETS)})"
    )
    net_args.add_argument("--config", metavar="FILE", help="network description (JSON)")
    p.add_argument("--frozen", required=True, metavar="FILE", help="frozen file to write")
    p.add_argument("--trainable", required=True, metavar="FILE", help="trainable file to write")
    return p


def _run(args, log) -> None:
    net = network_option(args.preset, args.config)
    outputs = check_outputs(
        {"input model": args.model, "--config file": args.config},
        {"--frozen": args.frozen, "--trainable": args.trainable},
    )
    folded = []
    params, shuffle = import_onnx(args.model, net, folded)
    (frozen_opt, frozen_path), (trainable_opt, trainable_path) = outputs.items()
    write_all(
        [
            (frozen_opt, frozen_path, lambda p: save_frozen(p, net, params)),
            (trainable_opt, trainable_path, lambda p: save_trainable(p, net, params, shuffle)),
        ]
    )
    layers = sum(
        k in params for k in [c.name for c in net.convs()] + [b.name for b in net.blends()]
    )
    head = f", {len(net.head)} head group(s)" if net.head else ""
    log(
        f"imported {args.model}: network {net.name}, {layers} layers and blends{head}, "
        f"core shuffle {'on' if shuffle else 'off'}"
    )
    for line in folded:
        log(f"input normalisation folded into {line}")


def main(argv=None) -> int:
    return run_command(
        _parser(), _run, (OnnxImportError, WeightFileError, OutputError, OSError), argv
    )


if __name__ == "__main__":
    sys.exit(main())
