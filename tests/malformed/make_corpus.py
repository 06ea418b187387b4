"""Writes the corpus of malformed weight files (``python -m tests.malformed.make_corpus``):
each case is a frozen file, optionally a trainable file and extra arguments, and the
pattern the one-line error must match (``cases.json``). Built from the valid ``tiny``
network files (``good_frozen.npz``, ``good_trainable.npz``, also written here), each broken
in one way. Deterministic: rerunning rewrites the same bytes."""

import io
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np

from spec.network import network_from_dict
from weights.files import save_frozen, save_trainable
from weights.io import load_npz, save_npz
from weights.quantize import calibration_frames
from weights.synthetic import random_float_params, random_params

HERE = Path(__file__).resolve().parent
TINY = {
    "name": "tiny",
    "width": 12,
    "height": 8,
    "channels_in": 3,
    "stem_channels": 2,
    "plan": [[[2, 1], [2]], [[2], [2]]],
    "trainable_cores": 2,
    "frozen_core": True,
    "core_shuffle": True,
}


def _zip(path, entries):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries:
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)


def main():
    net = network_from_dict(TINY)
    params = random_params(net, np.random.default_rng(0))
    fparams = random_float_params(net, np.random.default_rng(0), calibration_frames(net))
    good_f, good_t = HERE / "good_frozen.npz", HERE / "good_trainable.npz"
    save_frozen(good_f, net, params)
    save_trainable(good_t, net, params)
    save_frozen(HERE / "good_float_frozen.npz", net, fparams)
    save_trainable(HERE / "good_float_trainable.npz", net, fparams)
    frozen, trainable = load_npz(good_f), load_npz(good_t)
    good_ff = HERE / "good_float_frozen.npz"
    ffrozen = load_npz(good_ff)
    ftrainable = load_npz(HERE / "good_float_trainable.npz")
    cases = []

    def case(name, expect, *, f=None, t=None, float_t=False, args=()):
        """``f``/``t``: arrays to write as this case's frozen/trainable file (None: the
        good one, False: none; a callable writes the file itself)."""
        paths = []
        for kind, arrays, good in (("frozen", f, good_f), ("trainable", t, good_t)):
            if kind == "trainable" and float_t:
                good = HERE / "good_float_trainable.npz"
            if arrays is None or arrays is False:  # the good file, or no file at all
                paths.append(good.name if arrays is None else None)
                continue
            if isinstance(arrays, Path):  # another good file
                paths.append(arrays.name)
                continue
            path = HERE / f"{name}.{kind}.npz"
            arrays(path) if callable(arrays) else save_npz(path, arrays)
            paths.append(path.name)
        cases.append(
            {
                "name": name,
                "frozen": paths[0],
                "trainable": paths[1],
                "args": list(args),
                "expect": expect,
            }
        )

    def edit(arrays, **changes):
        out = dict(arrays)
        for k, v in changes.items():
            k = k.replace("__", ".")
            if v is None:
                del out[k]
            else:
                out[k] = v
        return out

    w0 = "frozen.m1.0.b0_dw.weight"
    case("not_a_zip", "not a readable .npz", f=lambda p: p.write_text("weights, honestly\n"))
    case("truncated", "not a readable .npz", f=lambda p: p.write_bytes(good_f.read_bytes()[:300]))

    def npy(path):
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.zeros(3))
        path.write_bytes(buf.getvalue())

    case("bare_npy", "not an .npz archive", f=npy)
    case("empty_archive", "holds no arrays", f=lambda p: _zip(p, []))

    def pickled(path):
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        _zip(path, [("format.npy", buf.getvalue())])

    case("pickled", "entry 'format' holds Python objects", f=pickled)
    case(
        "path_name", "not a valid name", f=lambda p: _zip(p, [("../evil.npy", good_f.read_bytes())])
    )
    case(
        "raw_entry",
        "'format' is not a NumPy array",
        f=lambda p: _zip(p, [("format", b"semifreddo-frozen")]),
    )
    case(
        "wrong_format",
        "'format' must be the string 'semifreddo-frozen'",
        f=edit(frozen, format=np.array("semifreddo-trainable")),
    )
    case("future_version", "version 3 is not supported", f=edit(frozen, version=np.array(3)))
    case("no_network", "no network description", f=edit(frozen, network=None), t=False)
    case(
        "network_not_json",
        "'network' is not valid JSON",
        f=edit(frozen, network=np.array("{width: 12")),
    )
    case(
        "network_bad_value",
        "'width' must lie in 1..8192",
        f=edit(frozen, network=np.array(json.dumps({**TINY, "width": -4}))),
    )
    case("missing_layer", f"missing entry '{w0}'", f=edit(frozen, **{w0: None}))
    case(
        "extra_entry",
        "unexpected entry 'frozen.m1.0.b0_dw.bias'",
        f=edit(frozen, **{"frozen.m1.0.b0_dw.bias": np.zeros(2, np.int32)}),
    )
    case(
        "wrong_shape",
        rf"{w0} has shape \(2, 3, 2\), expected \(2, 3, 3\)",
        f=edit(frozen, **{w0: np.zeros((2, 3, 2), np.int8)}),
    )
    case(
        "out_of_int8",
        rf"{w0}\[1, 2, 0\] = 200 is outside \[-128, 127\]",
        f=edit(frozen, **{w0: np.where(np.arange(18).reshape(2, 3, 3) == 15, 200, 0)}),
    )
    case("bool_weights", f"{w0} has dtype bool", f=edit(frozen, **{w0: np.ones((2, 3, 3), bool)}))
    case(
        "string_weights",
        "expected int8 integers or floats",
        f=edit(frozen, **{"frozen.stem.weight": np.full((2, 3, 3, 3), "x")}),
    )
    nan = np.asarray(ffrozen[w0]).copy()
    nan[0, 1, 1] = np.nan
    case(
        "nan_weight",
        rf"{w0}\[0, 1, 1\] is nan \(not finite\)",
        f=edit(ffrozen, **{w0: nan}),
        float_t=True,
    )
    inf = np.asarray(ffrozen[w0]).copy()
    inf[1, 0, 2] = -np.inf
    case(
        "inf_weight",
        rf"{w0}\[1, 0, 2\] is -inf \(not finite\)",
        f=edit(ffrozen, **{w0: inf}),
        float_t=True,
    )
    case(
        "scale_out_of_range",
        r"a.stem.scale\[0\] = 40000 is outside \[-32768, 32767\]",
        t=edit(trainable, **{"a.stem.scale": np.array([40000, 1])}),
    )
    case(
        "shift_too_big",
        r"frozen.stem.shift\[\] = 63 is outside \[0, 62\]",
        t=edit(trainable, **{"frozen.stem.shift": np.array(63)}),
    )
    case(
        "shift_not_scalar",
        r"frozen.stem.shift has shape \(1,\), expected \(\)",
        t=edit(trainable, **{"frozen.stem.shift": np.array([16])}),
    )
    case(
        "alpha_out_of_range",
        r"b.m2.alpha\[3\] = 129 is outside \[0, 128\]",
        t=edit(trainable, **{"b.m2.alpha": np.array([0, 1, 2, 129])}),
    )
    case(
        "trainable_wrong_format",
        "'format' must be the string 'semifreddo-trainable'",
        t=edit(trainable, format=np.array("semifreddo-frozen")),
    )
    case(
        "network_mismatch",
        r"differs from that of .*\(channels_in 3 vs 1\)",
        t=edit(trainable, network=np.array(json.dumps({**TINY, "channels_in": 1}))),
    )
    case("mixed_forms", "quantize both or neither", float_t=True)
    neg = np.asarray(ftrainable["a.stem.bn_var"]).copy()
    neg[1] = -0.5
    case(
        "negative_variance",
        "a.stem.bn_var has a negative variance",
        f=good_ff,
        t=edit(ftrainable, **{"a.stem.bn_var": neg}),
    )
    case(
        "missing_bn",
        "missing entry 'frozen.m2.0.b1_pw.bn_mean'",
        f=good_ff,
        t=edit(ftrainable, **{"frozen.m2.0.b1_pw.bn_mean": None}),
    )
    case("float_without_trainable", "float weights need a trainable file", f=good_ff, t=False)
    case(
        "preset_disagrees", r"differs from that of .*\(width 12 vs 32\)", args=["--preset", "small"]
    )

    # Archive-level tricks: each entry is read by itself, its header before its data.
    def duplicate(path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
            _zip(
                path,
                [
                    ("format.npy", _npy(np.array("semifreddo-frozen"))),
                    ("format.npy", _npy(np.array("semifreddo-frozen"))),
                ],
            )

    case("duplicate_entry", "entry 'format' appears twice", f=duplicate)

    def huge(path):
        head = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            head, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
        )
        _zip(path, [("format.npy", head.getvalue() + bytes(64))])

    case("huge_declared_shape", r"declares shape \(1000000000000,\)", f=huge)
    case(
        "unknown_compression",
        "entry 'format' uses a compression method this tool",
        f=lambda p: _patched_zip(p, good_f, method=99),
    )
    case(
        "encrypted_entry",
        "entry 'format' is encrypted",
        f=lambda p: _patched_zip(p, good_f, flags=1),
    )
    case(
        "timedelta_weights",
        f"{w0} has dtype timedelta64",
        f=edit(frozen, **{w0: np.zeros((2, 3, 3), "m8[s]")}),
    )
    # Network descriptions: strict JSON, exact types, printable names.
    case(
        "network_float_stride",
        "strides must be 1 or 2",
        f=edit(
            frozen, network=np.array(json.dumps({**TINY, "plan": [[[2.0, 1], [2]], [[2], [2]]]}))
        ),
    )
    case(
        "network_bad_name",
        "'name' must be 1 to 64 letters",
        f=edit(frozen, network=np.array(json.dumps({**TINY, "name": "\ud800"}))),
    )
    case(
        "network_deep",
        r"'network' is not valid JSON \(nested too deeply\)",
        f=edit(frozen, network=np.array("[" * 100000 + "]" * 100000)),
    )
    case(
        "network_duplicate_key",
        "key 'width' appears twice",
        f=edit(frozen, network=np.array(json.dumps(TINY)[:-1] + ', "width": 999}')),
    )
    case(
        "network_nan",
        "NaN is not a JSON number",
        f=edit(frozen, network=np.array(json.dumps(TINY)[:-1] + ', "x": NaN}')),
    )
    # Float weights whose folded batch norms overflow through the network.
    huge_bn = dict(ftrainable)
    for c in net.convs():
        huge_bn[f"{c.name}.bn_gamma"] = np.full(c.c_out, 3e38, np.float32)
        huge_bn[f"{c.name}.bn_var"] = np.full(c.c_out, 1e-30, np.float32)
        huge_bn[f"{c.name}.bn_eps"] = np.array(0, np.float32)
    case("float_overflow", "overflow", f=good_ff, t=huge_bn)
    # Arguments that do not fit the files.
    case("calib_for_int8", "the weights are already int8", args=["--calib", "frames.npz"])
    case("top_newline", "is not a Verilog identifier", args=["--top", "top\n"])
    case("top_keyword", "is not a Verilog identifier", args=["--top", "wire"])
    case("top_too_long", "at most 64 characters", args=["--top", "t" * 65])
    (HERE / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a)
    return buf.getvalue()


def _patched_zip(path, source, *, method=None, flags=None):
    """``source``'s archive with its first entry's compression method or flag bits changed
    in both the local and the central header."""
    data = bytearray(Path(source).read_bytes())
    local, central = 0, data.index(b"PK\x01\x02")
    for offset, value in ((6, flags), (8, method)):
        if value is not None:
            data[local + offset : local + offset + 2] = value.to_bytes(2, "little")
            data[central + offset + 2 : central + offset + 4] = value.to_bytes(2, "little")
    path.write_bytes(bytes(data))


if __name__ == "__main__":
    main()
