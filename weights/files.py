"""The weight files of a backbone build (``docs/weights-format.md``): reading with every name,
shape, dtype and value checked against the network description, and writing.

* ``semifreddo-frozen`` version 2: the network description and the frozen core's conv
  weights;
* ``semifreddo-trainable`` version 1: the trainable cores' conv weights, the alphas, and the
  requantization (batch norm) of every conv, frozen core included.

Both come in one of two forms: ``int8`` (already quantized: what the hardware runs) or
``float`` (weights and batch-norm statistics from training, quantized by
:mod:`weights.quantize`). The pair must agree on the form and on the network.
"""

import dataclasses
import json

import numpy as np

from .io import WeightFileError, check_header, check_int_range, load_npz, parse_json, save_npz
from .network import ConvParams, Network, network_from_dict
from .quantize import FloatConv

__all__ = ["FROZEN", "TRAINABLE", "Weights", "load_weights", "resolve_network", "save_frozen",
           "save_trainable", "DEFAULT_SHIFT"]

FROZEN, FROZEN_VERSION = "semifreddo-frozen", 2
TRAINABLE, TRAINABLE_VERSION = "semifreddo-trainable", 1
BN_FIELDS = ("gamma", "beta", "mean", "var")
DEFAULT_SHIFT = 16  # requantizer shift of every layer when no trainable file is given


@dataclasses.dataclass
class Weights:
    """What a frozen (and trainable) file pair says: the network, the form, and either the
    integer parameters (``params``, ready for the hardware) or the float ones (``fparams``,
    to be quantized). ``trainable`` is false when no trainable file was given (the run-time
    parameters then power up as zero)."""

    net: Network
    form: str
    params: dict | None = None
    fparams: dict | None = None
    trainable: bool = True


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
    key = next(k for k in da if k != "name" and da[k] != db[k])
    return f"{key} {da[key]!r} vs {db[key]!r}"


def resolve_network(sources: list[tuple[str, Network | None]]) -> Network:
    """The one network that every source (``(where, network or None)``) names: an error
    when none does or two disagree (the preset name aside)."""
    given = [(where, net) for where, net in sources if net is not None]
    if not given:
        raise WeightFileError("no network description: the frozen file has no 'network' "
                              "entry; give --preset or --config")
    (w0, n0), *rest = given
    for where, net in rest:
        if dataclasses.replace(net, name=n0.name) != n0:
            raise WeightFileError(f"the network of {where} differs from that of {w0} "
                                  f"({_differs(n0, net)})")
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
            raise WeightFileError(f"{path}: {name} has dtype {a.dtype}, expected floats "
                                  f"(this file pair is in float form)")
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
            raise WeightFileError(f"{path}: {name} has dtype {arrays[name].dtype}, expected "
                                  f"int8 integers or floats")
    return "int8"


def load_weights(frozen_path, trainable_path=None, net: Network | None = None,
                 net_source: str = "--preset/--config") -> Weights:
    """Read and check the frozen file (and the trainable one) against the network they
    describe (or ``net``, from the command line; all given descriptions must agree)."""
    fa = dict(load_npz(frozen_path))
    check_header(frozen_path, fa, FROZEN, (FROZEN_VERSION,))
    sources = [(str(frozen_path), _network_entry(frozen_path, fa)), (net_source, net)]
    ta = None
    if trainable_path is not None:
        ta = dict(load_npz(trainable_path))
        check_header(trainable_path, ta, TRAINABLE, (TRAINABLE_VERSION,))
        sources.append((str(trainable_path), _network_entry(trainable_path, ta)))
    net = resolve_network(sources)
    convs = net.convs()
    frozen = [c for c in convs if c.frozen]
    form = _form_of(frozen_path, fa, [f"{c.name}.weight" for c in frozen])
    weights = {c.name: _array(frozen_path, fa, f"{c.name}.weight", c.weight_shape, form,
                              -128, 127) for c in frozen}
    _no_extra(frozen_path, fa, f"a frozen layer's weight of network {net.name!r}")
    if ta is None:
        if form == "float":
            raise WeightFileError(f"{frozen_path}: float weights need a trainable file "
                                  f"(--trainable) with every layer's batch norm")
        params = {c.name: ConvParams(
            weights[c.name] if c.frozen else np.zeros(c.weight_shape, np.int64),
            np.zeros(c.c_out, np.int64), np.zeros(c.c_out, np.int64), DEFAULT_SHIFT)
            for c in convs}
        params |= {b.name: np.zeros(b.channels, np.int64) for b in net.blends()}
        return Weights(net, form, params=params, trainable=False)
    tform = "float" if any(k.endswith(".bn_gamma") for k in ta) else "int8"
    if frozen and tform != form:
        raise WeightFileError(f"{trainable_path} is in {tform} form but {frozen_path} in "
                              f"{form} form: quantize both or neither")
    form = tform
    for c in convs:
        if not c.frozen:
            weights[c.name] = _array(trainable_path, ta, f"{c.name}.weight", c.weight_shape,
                                     form, -128, 127)
    out, tp = {}, trainable_path
    for c in convs:
        n = c.name
        if form == "float":
            bn = [_array(tp, ta, f"{n}.bn_{f}", (c.c_out,), form) for f in BN_FIELDS]
            if (bn[3] < 0).any():
                raise WeightFileError(f"{tp}: {n}.bn_var has a negative variance")
            eps = 1e-5
            if f"{n}.bn_eps" in ta:
                eps = float(_array(tp, ta, f"{n}.bn_eps", (), form))
            if eps < 0 or not (bn[3] + eps > 0).all():
                raise WeightFileError(f"{tp}: {n}.bn_eps must be >= 0 and bn_var + bn_eps > 0 "
                                      f"(eps {eps})")
            out[n] = FloatConv(weights[n], *bn, eps=eps)
        else:
            scale = _array(tp, ta, f"{n}.scale", (c.c_out,), form, -(1 << 15), (1 << 15) - 1)
            bias = _array(tp, ta, f"{n}.bias", (c.c_out,), form, -(1 << 31), (1 << 31) - 1)
            shift = _array(tp, ta, f"{n}.shift", (), form, 0, 62)
            out[n] = ConvParams(weights[n], scale, bias, int(shift))
    for b in net.blends():
        out[b.name] = _array(trainable_path, ta, b.name, (b.channels,), form, 0, 128)
    _no_extra(trainable_path, ta, f"a trainable weight, alpha or requantizer entry of network "
                                  f"{net.name!r}")
    if form == "float":
        return Weights(net, form, fparams=out)
    return Weights(net, form, params=out)


def _header(fmt, version, net):
    return {"format": np.array(fmt), "version": np.array(version),
            "network": np.array(json.dumps(net.to_dict(), sort_keys=True))}


def save_frozen(path, net: Network, params: dict) -> None:
    """The frozen file of ``net``: ``params`` maps each conv to :class:`ConvParams` (int8
    form) or :class:`FloatConv` (float form); only the frozen convs' weights are written."""
    arrays = _header(FROZEN, FROZEN_VERSION, net)
    for c in net.convs():
        if c.frozen:
            w = params[c.name].weight
            arrays[f"{c.name}.weight"] = np.asarray(w, np.float32 if np.asarray(w).dtype.kind
                                                    == "f" else np.int8)
    save_npz(path, arrays)


def save_trainable(path, net: Network, params: dict) -> None:
    """The trainable file of ``net`` from the same ``params`` as :func:`save_frozen`
    (alphas: codes in int8 form, logits in float form)."""
    arrays = _header(TRAINABLE, TRAINABLE_VERSION, net)
    for c in net.convs():
        p = params[c.name]
        if not c.frozen:
            w = np.asarray(p.weight)
            arrays[f"{c.name}.weight"] = w.astype(np.float32 if w.dtype.kind == "f"
                                                  else np.int8)
        if isinstance(p, FloatConv):
            for f in BN_FIELDS:
                arrays[f"{c.name}.bn_{f}"] = np.asarray(getattr(p, f), np.float32)
            arrays[f"{c.name}.bn_eps"] = np.array(p.eps, np.float32)
        else:
            arrays[f"{c.name}.scale"] = np.asarray(p.scale, np.int16)
            arrays[f"{c.name}.bias"] = np.asarray(p.bias, np.int32)
            arrays[f"{c.name}.shift"] = np.array(p.shift, np.int8)
    for b in net.blends():
        a = np.asarray(params[b.name])
        arrays[b.name] = a.astype(np.float32 if a.dtype.kind == "f" else np.uint8)
    save_npz(path, arrays)
