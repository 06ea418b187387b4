"""The weight files of a build (``docs/weights-format.md``): reading with every name, shape,
dtype and value checked against the network description, and writing.

* ``semifreddo-frozen`` version 2: the network description and the frozen core's conv
  weights;
* ``semifreddo-trainable`` version 2: the trainable cores' conv weights, the alphas, the
  requantization (batch norm) of every conv, frozen core included, the run-time core shuffle
  setting and the input padding of a folded input normalisation; version 1 (without the
  last two) is still read;
* ``semifreddo-frozen`` version 1, the first format: frozen pointwise layers by name, built
  one module each (:func:`load_layers`);
* frames files (calibration frames, verification inputs: :func:`load_frames`).

Both come in one of two forms: ``int8`` (already quantized: what the hardware runs) or
``float`` (weights and batch-norm statistics from training, quantized by
:mod:`weights.quantize`). The pair must agree on the form and on the network.
"""

import dataclasses
import json
import re

import numpy as np

from spec import names
from spec.formats import PWL_SHIFT_DEFAULT, RANGES
from spec.network import Network, network_from_dict, preset
from spec.params import PASS_FIELDS, ConvParams, HeadGroupParams, HeadPassParams, pwl_spaced

from .floatnet import ACTIVATIONS, FloatConv, FloatHeadGroup
from .io import (
    WeightFileError,
    check_header,
    check_int_range,
    load_npz,
    parse_json,
    read_json,
    save_npz,
)

__all__ = [
    "FROZEN",
    "TRAINABLE",
    "Weights",
    "load_weights",
    "resolve_network",
    "save_frozen",
    "save_trainable",
    "frozen_arrays",
    "trainable_arrays",
    "DEFAULT_SHIFT",
    "entry_name",
    "network_option",
    "load_frames",
    "file_version",
    "load_layers",
]

FROZEN, FROZEN_VERSION, LAYERS_VERSION = "semifreddo-frozen", 2, 1
TRAINABLE, TRAINABLE_VERSION = "semifreddo-trainable", 2
BN_FIELDS = ("gamma", "beta", "mean", "var")
DEFAULT_SHIFT = 16  # requantizer shift of every layer when no trainable file is given


@dataclasses.dataclass
class Weights:
    """What a frozen (and trainable) file pair says: the network, the form, and either the
    integer parameters (``params``, ready for the hardware) or the float ones (``fparams``,
    to be quantized). ``trainable`` is false when no trainable file was given (the run-time
    parameters then power up as zero). ``shuffle``: the cross-core shuffle setting the
    network runs with (the trainable file's ``core_shuffle``; off when absent)."""

    net: Network
    form: str
    params: dict | None = None
    fparams: dict | None = None
    trainable: bool = True
    shuffle: bool = False


def entry_name(layer: str, field: str) -> str:
    """The trainable file's entry holding ``field`` of ``layer``: a conv's ``<conv>.weight``,
    ``.scale``, ``.bias`` or ``.shift``; a head group's also ``.pwl_breakpoint``,
    ``.pwl_slope``, ``.pwl_intercept``, ``.pwl_shift``, ``.pool`` and ``.source``; a blend's
    alpha codes (``field`` ``alpha``) are the entry ``<blend>`` itself."""
    return layer if field == "alpha" else f"{layer}.{field}"


def _network_entry(path, arrays) -> Network | None:
    a = arrays.pop("network", None)
    if a is None:
        return None
    if a.shape != () or a.dtype.kind != "U":
        raise WeightFileError(f"{path}: 'network' must be a string (JSON)")
    d = parse_json(str(a), f"{path}: 'network'")
    try:
        return network_from_dict(d)
    except ValueError as e:
        raise WeightFileError(f"{path}: {e}") from None


def _differs(a: Network, b: Network) -> str:
    da, db = a.to_dict(), b.to_dict()
    # "head" is absent from a description without one
    key = next(k for k in [*da, *db] if k != "name" and da.get(k) != db.get(k))
    return f"{key} {da.get(key)!r} vs {db.get(key)!r}"


def resolve_network(sources: list[tuple[str, Network | None]]) -> Network:
    """The one network that every source (``(where, network or None)``) names: an error
    when none does or two disagree (the preset name aside)."""
    given = [(where, net) for where, net in sources if net is not None]
    if not given:
        raise WeightFileError(
            "no network description: the frozen file has no 'network' "
            "entry; give --preset or --config"
        )
    (w0, n0), *rest = given
    for where, net in rest:
        if dataclasses.replace(net, name=n0.name) != n0:
            raise WeightFileError(
                f"the network of {where} differs from that of {w0} ({_differs(n0, net)})"
            )
    return n0


def _array(path, arrays, name, shape, form, lo=None, hi=None):
    """Entry ``name`` with ``shape``, integers in [lo, hi] (form int8) or finite floats."""
    if name not in arrays:
        raise WeightFileError(f"{path}: missing entry {name!r}")
    a = arrays.pop(name)
    if a.shape != shape:
        raise WeightFileError(f"{path}: {name} has shape {a.shape}, expected {shape}")
    if form == "float":
        if a.dtype.kind != "f":
            raise WeightFileError(
                f"{path}: {name} has dtype {a.dtype}, expected floats "
                f"(this file pair is in float form)"
            )
        bad = np.argwhere(~np.isfinite(a))
        if len(bad):
            idx = tuple(int(v) for v in bad[0])
            raise WeightFileError(f"{path}: {name}{list(idx)} is {a[idx]} (not finite)")
        return a.astype(np.float64)
    if a.dtype.kind == "b":
        raise WeightFileError(f"{path}: {name} has dtype bool, expected integers")
    return check_int_range(path, name, a, lo, hi)


def _no_extra(path, arrays, what):
    for name in sorted(arrays):
        raise WeightFileError(f"{path}: unexpected entry {name!r} (not {what})")


def _form_of(path, arrays, names) -> str:
    for name in names:
        if name in arrays:
            kind = arrays[name].dtype.kind
            if kind == "f":
                return "float"
            if kind in "iu":
                return "int8"
            raise WeightFileError(
                f"{path}: {name} has dtype {arrays[name].dtype}, expected int8 integers or floats"
            )
    return "int8"


def load_weights(
    frozen_path,
    trainable_path=None,
    net: Network | None = None,
    net_source: str = "--preset/--config",
) -> Weights:
    """Read and check the frozen file (and the trainable one) against the network they
    describe (or ``net``, from the command line; all given descriptions must agree)."""
    fa = dict(load_npz(frozen_path))
    check_header(frozen_path, fa, FROZEN, (FROZEN_VERSION,))
    sources = [(str(frozen_path), _network_entry(frozen_path, fa)), (net_source, net)]
    ta = None
    if trainable_path is not None:
        ta = dict(load_npz(trainable_path))
        check_header(trainable_path, ta, TRAINABLE, (1, TRAINABLE_VERSION))
        sources.append((str(trainable_path), _network_entry(trainable_path, ta)))
    net = resolve_network(sources)
    convs = net.convs()
    frozen = [c for c in convs if c.frozen]
    form = _form_of(frozen_path, fa, [f"{c.name}.weight" for c in frozen])
    weights = {
        c.name: _array(frozen_path, fa, f"{c.name}.weight", c.weight_shape, form, *RANGES["weight"])
        for c in frozen
    }
    _no_extra(frozen_path, fa, f"a frozen layer's weight of network {net.name!r}")
    if ta is None:
        if form == "float":
            raise WeightFileError(
                f"{frozen_path}: float weights need a trainable file "
                f"(--trainable) with every layer's batch norm"
            )
        params = {
            c.name: ConvParams(
                weights[c.name] if c.frozen else np.zeros(c.weight_shape, np.int64),
                np.zeros(c.c_out, np.int64),
                np.zeros(c.c_out, np.int64),
                DEFAULT_SHIFT,
            )
            for c in convs
        }
        params |= {
            c.name: ConvParams(
                np.zeros(c.weight_shape, np.int64),
                np.zeros(c.c_out, np.int64),
                np.zeros(c.c_out, np.int64),
                DEFAULT_SHIFT,
            )
            for c in net.pass_convs()
        }
        params |= {name: 1 for name in net.repeat_counts()}
        params |= {b.name: np.zeros(b.channels, np.int64) for b in net.blends()}
        for k, g in enumerate(net.head):
            zero = (
                np.zeros((g.c_out, g.c_in), np.int64),
                np.zeros(g.c_out, np.int64),
                np.zeros(g.c_out, np.int64),
            )
            table = (
                np.array(pwl_spaced(g.segments), np.int64),
                np.zeros(g.segments, np.int64),
                np.zeros(g.segments, np.int64),
            )
            params[names.head_group(k)] = HeadGroupParams(
                *zero, DEFAULT_SHIFT, *table, PWL_SHIFT_DEFAULT
            )
            for j in range(1, g.repeats):
                params[names.head_pass(k, j)] = HeadPassParams(*zero, *table)
        return Weights(net, form, params=params, trainable=False)
    tform = "float" if any(k.endswith(".bn_gamma") for k in ta) else "int8"
    if frozen and tform != form:
        raise WeightFileError(
            f"{trainable_path} is in {tform} form but {frozen_path} in "
            f"{form} form: quantize both or neither"
        )
    form = tform
    if form == "float" and net.trainable_repeats > 1:
        raise WeightFileError(
            f"{trainable_path}: the trainable cores' last block is repeated "
            f"({net.trainable_repeats} passes); float weights describe one pass: give int8 "
            f"weights for every pass"
        )
    convs = convs + net.pass_convs()
    for c in convs:
        if not c.frozen:
            weights[c.name] = _array(
                trainable_path,
                ta,
                entry_name(c.name, "weight"),
                c.weight_shape,
                form,
                *RANGES["weight"],
            )
    out, tp = {}, trainable_path
    for c in convs:
        n = c.name
        if form == "float":
            out[n] = _float_conv(tp, ta, n, weights[n])
        else:
            scale = _array(tp, ta, entry_name(n, "scale"), (c.c_out,), form, *RANGES["scale"])
            bias = _array(tp, ta, entry_name(n, "bias"), (c.c_out,), form, *RANGES["bias"])
            shift = _array(tp, ta, entry_name(n, "shift"), (), form, *RANGES["shift"])
            out[n] = ConvParams(weights[n], scale, bias, int(shift))
    for n in net.repeat_counts():
        out[n] = int(_array(tp, ta, n, (), form, 1, net.trainable_repeats))
    for b in net.blends():
        out[b.name] = _array(
            trainable_path, ta, entry_name(b.name, "alpha"), (b.channels,), form, *RANGES["alpha"]
        )
    for k, g in enumerate(net.head):
        if form == "float" and g.repeats > 1:
            raise WeightFileError(
                f"{tp}: head group {k} is repeated ({g.repeats} passes); float weights "
                f"describe one pass: give int8 weights for every pass"
            )
        read = _float_head_group if form == "float" else _head_group
        out[names.head_group(k)] = read(tp, ta, names.head_group(k), g)
        for j in range(1, g.repeats):
            out[names.head_pass(k, j)] = _head_pass(tp, ta, names.head_pass(k, j), g)
    shuffle = False
    if names.CORE_SHUFFLE in ta:
        if not net.core_shuffle:
            raise WeightFileError(
                f"{tp}: {names.CORE_SHUFFLE!r} is given but network {net.name!r} has no core "
                f"shuffle"
            )
        shuffle = bool(_array(tp, ta, names.CORE_SHUFFLE, (), "int8", 0, 1))
    if names.INPUT_PAD in ta:
        out[names.INPUT_PAD] = _array(
            tp, ta, names.INPUT_PAD, (net.channels_in,), form, *RANGES["weight"]
        )
    _no_extra(
        trainable_path,
        ta,
        f"a trainable weight, alpha or requantizer entry of network {net.name!r}",
    )
    if form == "float":
        return Weights(net, form, fparams=out, shuffle=shuffle)
    return Weights(net, form, params=out, shuffle=shuffle)


#: A head group's entries in the trainable file: field, shape (from its spec), range.
def _head_entries(g):
    k = g.segments
    return {
        "weight": ((g.c_out, g.c_in), RANGES["weight"]),
        "scale": ((g.c_out,), RANGES["scale"]),
        "bias": ((g.c_out,), RANGES["bias"]),
        "shift": ((), RANGES["shift"]),
        "pwl_breakpoint": ((k - 1,), RANGES["pwl_breakpoint"]),
        "pwl_slope": ((k,), RANGES["pwl_slope"]),
        "pwl_intercept": ((k,), RANGES["pwl_intercept"]),
        "pwl_shift": ((), RANGES["pwl_shift"]),
    }


def _float_conv(tp, ta, n, weight) -> FloatConv:
    """Conv ``n``'s batch norm from the float-form entries, with its ``weight``."""
    c_out = weight.shape[0]
    bn = [_array(tp, ta, f"{n}.bn_{f}", (c_out,), "float") for f in BN_FIELDS]
    if (bn[3] < 0).any():
        raise WeightFileError(f"{tp}: {n}.bn_var has a negative variance")
    eps = 1e-5
    if f"{n}.bn_eps" in ta:
        eps = float(_array(tp, ta, f"{n}.bn_eps", (), "float"))
    if eps < 0 or not (bn[3] + eps > 0).all():
        raise WeightFileError(f"{tp}: {n}.bn_eps must be >= 0 and bn_var + bn_eps > 0 (eps {eps})")
    return FloatConv(weight, *bn, eps=eps)


def _switches(path, arrays, name, g) -> tuple[int, int]:
    """A head group's ``pool`` and ``source`` entries (0-d integers, either form)."""
    pool = _array(path, arrays, entry_name(name, "pool"), (), "int8", *RANGES["pool"])
    last = len(g.sources) - 1
    source = _array(path, arrays, entry_name(name, "source"), (), "int8", 0, last)
    return int(pool), int(source)


def _float_head_group(path, arrays, name, g) -> FloatHeadGroup:
    """Head group ``name``'s float parameters: its convolution and batch norm, the
    ``activation`` (a 0-d string of :data:`~.floatnet.ACTIVATIONS`), pool and source."""
    weight = _array(path, arrays, entry_name(name, "weight"), (g.c_out, g.c_in), "float")
    conv = _float_conv(path, arrays, name, weight)
    key = entry_name(name, "activation")
    if key not in arrays:
        raise WeightFileError(f"{path}: missing entry {key!r}")
    a = arrays.pop(key)
    if a.shape != () or a.dtype.kind != "U" or str(a) not in ACTIVATIONS:
        raise WeightFileError(
            f"{path}: {key} must be one of {', '.join(ACTIVATIONS)} (a string), not {a!r}"
        )
    return FloatHeadGroup(conv, str(a), *_switches(path, arrays, name, g))


def _head_values(path, arrays, name, entries) -> dict:
    """``entries`` (field: shape, range) of head group or pass ``name`` (int8 form), the
    breakpoints checked to increase."""
    v = {
        field: _array(path, arrays, entry_name(name, field), shape, "int8", *rng)
        for field, (shape, rng) in entries.items()
    }
    if np.any(np.diff(v["pwl_breakpoint"]) <= 0):
        raise WeightFileError(
            f"{path}: {entry_name(name, 'pwl_breakpoint')} must increase strictly, "
            f"not {v['pwl_breakpoint'].tolist()}"
        )
    return v


def _head_group(path, arrays, name, g) -> HeadGroupParams:
    """Head group ``name``'s parameters from the trainable file's entries (int8 form); a
    repeated group's also its run-time pass count ``repeat``."""
    v = _head_values(path, arrays, name, _head_entries(g))
    repeat = 1
    if g.repeats > 1:
        repeat = int(_array(path, arrays, entry_name(name, "repeat"), (), "int8", 1, g.repeats))
    return HeadGroupParams(
        v["weight"],
        v["scale"],
        v["bias"],
        int(v["shift"]),
        v["pwl_breakpoint"],
        v["pwl_slope"],
        v["pwl_intercept"],
        int(v["pwl_shift"]),
        *_switches(path, arrays, name, g),
        repeat,
    )


def _head_pass(path, arrays, name, g) -> HeadPassParams:
    """A repeated group's later pass ``name`` (:func:`spec.names.head_pass`): the entries
    of :data:`PASS_FIELDS`."""
    entries = _head_entries(g)
    v = _head_values(path, arrays, name, {f: entries[f] for f in PASS_FIELDS})
    return HeadPassParams(*(v[f] for f in PASS_FIELDS))


def _header(fmt, version, net):
    return {
        "format": np.array(fmt),
        "version": np.array(version),
        "network": np.array(json.dumps(net.to_dict(), sort_keys=True)),
    }


def save_frozen(path, net: Network, params: dict) -> None:
    """Write the frozen file of ``net`` (:func:`frozen_arrays`)."""
    save_npz(path, frozen_arrays(net, params))


def save_trainable(path, net: Network, params: dict, shuffle: bool = False) -> None:
    """Write the trainable file of ``net`` (:func:`trainable_arrays`)."""
    save_npz(path, trainable_arrays(net, params, shuffle))


def frozen_arrays(net: Network, params: dict) -> dict:
    """The entries of ``net``'s frozen file: ``params`` maps each conv to
    :class:`ConvParams` (int8 form) or :class:`FloatConv` (float form); only the frozen
    convs' weights are written."""
    arrays = _header(FROZEN, FROZEN_VERSION, net)
    for c in net.convs():
        if c.frozen:
            w = params[c.name].weight
            arrays[f"{c.name}.weight"] = np.asarray(
                w, np.float32 if np.asarray(w).dtype.kind == "f" else np.int8
            )
    return arrays


def trainable_arrays(net: Network, params: dict, shuffle: bool = False) -> dict:
    """The entries of ``net``'s trainable file from the same ``params`` as
    :func:`frozen_arrays` (alphas: codes in int8 form, logits in float form; the input
    padding where ``params`` has one), with the core shuffle setting ``shuffle`` where the
    network has the shuffle."""
    if shuffle and not net.core_shuffle:
        raise ValueError(f"network {net.name!r} has no core shuffle to switch on")
    if any(isinstance(params[c.name], FloatConv) for c in net.pass_convs()):
        raise ValueError("a repeated block's passes are written in int8 form only")
    arrays = _header(TRAINABLE, TRAINABLE_VERSION, net)
    for c in net.convs() + net.pass_convs():
        p = params[c.name]
        if not c.frozen:
            w = np.asarray(p.weight)
            arrays[entry_name(c.name, "weight")] = w.astype(
                np.float32 if w.dtype.kind == "f" else np.int8
            )
        if isinstance(p, FloatConv):
            arrays |= _bn_arrays(c.name, p)
        else:
            arrays[entry_name(c.name, "scale")] = np.asarray(p.scale, np.int16)
            arrays[entry_name(c.name, "bias")] = np.asarray(p.bias, np.int32)
            arrays[entry_name(c.name, "shift")] = np.array(p.shift, np.int8)
    for n in net.repeat_counts():
        arrays[n] = np.array(int(params[n]), np.uint8)
    for b in net.blends():
        a = np.asarray(params[b.name])
        arrays[entry_name(b.name, "alpha")] = a.astype(
            np.float32 if a.dtype.kind == "f" else np.uint8
        )
    for k in range(len(net.head)):
        name, p = names.head_group(k), params[names.head_group(k)]
        if isinstance(p, FloatHeadGroup):
            arrays[entry_name(name, "weight")] = np.asarray(p.conv.weight, np.float32)
            arrays |= _bn_arrays(name, p.conv)
            arrays[entry_name(name, "activation")] = np.array(p.activation)
            arrays[entry_name(name, "pool")] = np.array(p.pool, np.uint8)
            arrays[entry_name(name, "source")] = np.array(p.source, np.uint8)
            continue
        g = net.head[k]
        fields = [*_head_entries(g), "pool", "source", *(["repeat"] if g.repeats > 1 else [])]
        arrays |= _head_arrays(name, p, fields)
        for j in range(1, g.repeats):
            later = names.head_pass(k, j)
            arrays |= _head_arrays(later, params[later], PASS_FIELDS)
    if net.core_shuffle:
        arrays[names.CORE_SHUFFLE] = np.array(int(shuffle), np.uint8)
    if names.INPUT_PAD in params:
        pad = np.asarray(params[names.INPUT_PAD])
        arrays[names.INPUT_PAD] = pad.astype(np.float32 if pad.dtype.kind == "f" else np.int8)
    return arrays


#: Each int8-form head entry's dtype (the narrowest that holds its range).
_HEAD_DTYPES = dict(
    weight=np.int8,
    scale=np.int16,
    bias=np.int32,
    shift=np.int8,
    pwl_breakpoint=np.int8,
    pwl_slope=np.int16,
    pwl_intercept=np.int32,
    pwl_shift=np.int8,
    pool=np.uint8,
    source=np.uint8,
    repeat=np.uint8,
)


def _head_arrays(name, p, fields) -> dict:
    """The entries ``fields`` of head group or pass ``name`` with parameters ``p``."""
    attrs = dict(pwl_breakpoint="breakpoints", pwl_slope="slopes", pwl_intercept="intercepts")
    return {
        entry_name(name, f): np.asarray(getattr(p, attrs.get(f, f))).astype(_HEAD_DTYPES[f])
        for f in fields
    }


def _bn_arrays(name, p: FloatConv) -> dict:
    """The float-form batch-norm entries of conv ``name``."""
    out = {f"{name}.bn_{f}": np.asarray(getattr(p, f), np.float32) for f in BN_FIELDS}
    out[f"{name}.bn_eps"] = np.array(p.eps, np.float32)
    return out


def network_option(preset_name: str | None, config: str | None) -> Network | None:
    """The network named on a command line (``--preset NAME`` or ``--config FILE.json``, the
    frozen file's ``network`` entry format), or None when neither is given."""
    if preset_name is not None:
        try:
            return preset(preset_name)
        except ValueError as e:
            raise WeightFileError(f"--preset: {e}") from None
    if config is not None:
        d = read_json(config, f"--config {config}")
        try:
            return network_from_dict(d)
        except ValueError as e:
            raise WeightFileError(f"--config {config}: {e}") from None
    return None


def load_frames(path, net: Network, what: str) -> np.ndarray:
    """The uint8 pixel frames ``(N, height, width, channels)`` of ``net`` in ``path`` (an
    ``.npz`` holding exactly one entry, ``frames``, with N >= 1); ``what`` names the option
    in errors. Calibration frames and verification inputs come in this format."""
    arrays = load_npz(path)
    if set(arrays) != {"frames"}:
        raise WeightFileError(f"{what} {path}: a frames file holds exactly one entry 'frames'")
    f = arrays["frames"]
    want = (net.height, net.width, net.channels_in)
    if f.ndim != 4 or f.shape[1:] != want or f.shape[0] < 1:
        raise WeightFileError(
            f"{what} {path}: frames has shape {f.shape}, expected (N, "
            f"{want[0]}, {want[1]}, {want[2]}) with N >= 1"
        )
    if f.dtype != np.uint8:
        raise WeightFileError(f"{what} {path}: frames has dtype {f.dtype}, expected uint8 pixels")
    return f


def file_version(path) -> int:
    """The format version a frozen file declares (:data:`FROZEN_VERSION` when it declares
    none that can be read: its loader then says what is wrong)."""
    v = load_npz(path).get("version")
    return int(v) if v is not None and v.shape == () and v.dtype.kind in "iu" else FROZEN_VERSION


_LAYER = re.compile(r"^([A-Za-z_][A-Za-z0-9_]{0,63})\.weight$")  # names reach file names


def load_layers(path) -> dict[str, np.ndarray]:
    """The layers of a version 1 frozen file, in name order: ``<layer>.weight`` entries,
    int8 ``(C_out, C_in)`` or ``(C_out, C_in, 1, 1)``, as int64 ``(C_out, C_in)``."""
    arrays = dict(load_npz(path))
    check_header(path, arrays, FROZEN, (LAYERS_VERSION,))
    layers = {}
    for name in sorted(arrays):
        m = _LAYER.fullmatch(name)
        if not m:
            raise WeightFileError(
                f"{path}: unexpected entry {name!r} (layers are '<layer>.weight')"
            )
        a = arrays[name]
        if a.ndim == 4 and a.shape[2:] == (1, 1):
            a = a[:, :, 0, 0]
        if a.ndim != 2 or 0 in a.shape:
            raise WeightFileError(
                f"{path}: {name} has shape {a.shape}, expected (C_out, C_in) or (C_out, C_in, 1, 1)"
            )
        layers[m.group(1)] = check_int_range(path, name, a, *RANGES["weight"])
    if not layers:
        raise WeightFileError(f"{path}: no '<layer>.weight' entries")
    seen = {}
    for layer in layers:  # output files must not collide on case-insensitive file systems
        other = seen.setdefault(layer.lower(), layer)
        if other != layer:
            raise WeightFileError(
                f"{path}: layer names {other!r} and {layer!r} differ only in case"
            )
    return layers
