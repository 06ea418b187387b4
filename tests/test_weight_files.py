"""Weight files (frozen v2, trainable v2 and v1), network descriptions and quantization, without
hardware: round trips, determinism, every check's message, and the quantizer's promises."""

import dataclasses
import json

import numpy as np
import pytest

from sim.golden.backbone import backbone
from sim.golden.primitives import pwl
from spec import names
from spec.network import PRESETS, HeadGroupSpec, network_from_dict, preset
from spec.params import check_params
from tests.malformed.make_corpus import TINY
from weights.files import load_weights, save_frozen, save_trainable, trainable_arrays
from weights.floatnet import FloatConv, float_forward
from weights.io import WeightFileError, save_npz
from weights.quantize import _scale_keys, calibration_frames, error_report, quantize
from weights.synthetic import random_float_params, random_params


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_network_dict_round_trip(name):
    net = preset(name)
    assert network_from_dict(json.loads(json.dumps(net.to_dict()))) == net
    assert network_from_dict({"preset": name}) == net


@pytest.mark.parametrize(
    "change, message",
    [
        ({"width": 0}, "'width' must lie in 1..8192"),
        ({"width": "32"}, "'width' must be int"),
        ({"frozen_core": 1}, "'frozen_core' must be bool"),
        ({"stem_channels": 3}, "odd 'stem_channels' need"),
        ({"stem_channels": 3, "core_shuffle": False, "plan": [[[1], [1]]]}, "odd 'stem"),
        ({"frozen_core": False, "plan": [[[], []]]}, "needs at least one block per core"),
        ({"plan": []}, "'plan' has no stages"),
        ({"plan": [[[3], [2]]]}, "strides must be 1 or 2"),
        ({"plan": [[[2, 1], []]]}, "needs at least one block per core"),
        ({"plan": [[[2], [1]]]}, "same stride"),
        ({"plan": [[[2]] * 2] * 12}, "reaches 8192 channels"),
        ({"colour": 1}, "unknown key 'colour'"),
        ({"width": None}, "'width' must be int"),
        ({"core_shuffle": True, "trainable_cores": 1}, "core shuffle needs two"),
    ],
)
def test_network_dict_errors(change, message):
    d = {**TINY, **change}
    with pytest.raises(ValueError, match=message):
        network_from_dict(d)


def test_network_dict_missing_key_and_preset_mix():
    d = dict(TINY)
    del d["height"]
    with pytest.raises(ValueError, match="missing key 'height'"):
        network_from_dict(d)
    with pytest.raises(ValueError, match="cannot be combined"):
        network_from_dict({"preset": "small", "width": 3})
    with pytest.raises(ValueError, match="no preset 'big'"):
        network_from_dict({"preset": "big"})


def _int_pair(tmp_path, net, seed=0):
    params = random_params(net, np.random.default_rng(seed))
    save_frozen(tmp_path / "f.npz", net, params)
    save_trainable(tmp_path / "t.npz", net, params)
    return params


@pytest.mark.parametrize("name", ["small", "trainable_only", "frozen_only"])
def test_int8_files_round_trip(tmp_path, name):
    net = preset(name)
    params = _int_pair(tmp_path, net)
    w = load_weights(tmp_path / "f.npz", tmp_path / "t.npz")
    assert w.net == net and w.form == "int8" and w.trainable
    for k, p in params.items():
        q = w.params[k]
        if isinstance(p, np.ndarray):
            assert np.array_equal(p, q)
        else:
            assert (
                all(
                    np.array_equal(getattr(p, f), getattr(q, f))
                    for f in ("weight", "scale", "bias")
                )
                and p.shift == q.shift
            )


def test_files_are_byte_identical(tmp_path):
    net = preset("small")
    _int_pair(tmp_path, net)
    first = [(tmp_path / n).read_bytes() for n in ("f.npz", "t.npz")]
    _int_pair(tmp_path, net)
    assert [(tmp_path / n).read_bytes() for n in ("f.npz", "t.npz")] == first


def test_saved_bytes_do_not_depend_on_memory_layout(tmp_path):
    a = np.arange(12, dtype=np.int8).reshape(3, 4)
    save_npz(tmp_path / "c.npz", {"a": a, "s": np.array(3)})
    save_npz(tmp_path / "f.npz", {"a": np.asfortranarray(a), "s": np.array(3)})
    assert (tmp_path / "c.npz").read_bytes() == (tmp_path / "f.npz").read_bytes()


def test_without_trainable_file_everything_runtime_is_zero(tmp_path):
    net = preset("small")
    params = _int_pair(tmp_path, net)
    w = load_weights(tmp_path / "f.npz")
    assert not w.trainable
    check_params(net, w.params)
    for c in net.convs():
        p = w.params[c.name]
        assert np.array_equal(p.weight, params[c.name].weight if c.frozen else 0 * p.weight)
        assert not p.scale.any() and not p.bias.any() and p.shift == 16


def test_float_files_round_trip(tmp_path):
    net = network_from_dict(TINY)
    fp = random_float_params(net, np.random.default_rng(0), calibration_frames(net))
    save_frozen(tmp_path / "f.npz", net, fp)
    save_trainable(tmp_path / "t.npz", net, fp)
    w = load_weights(tmp_path / "f.npz", tmp_path / "t.npz")
    assert w.form == "float" and w.net == net
    for c in net.convs():
        a, b = fp[c.name], w.fparams[c.name]
        assert np.allclose(a.weight, b.weight, rtol=1e-6) and np.allclose(a.var, b.var)
    with pytest.raises(WeightFileError, match="float weights need a trainable file"):
        load_weights(tmp_path / "f.npz")


def test_network_sources_must_agree(tmp_path):
    net = preset("small")
    _int_pair(tmp_path, net)
    with pytest.raises(WeightFileError, match=r"differs .*\(width 32 vs 12\)"):
        load_weights(tmp_path / "f.npz", tmp_path / "t.npz", network_from_dict(TINY))
    assert load_weights(tmp_path / "f.npz", None, preset("small")).net == net
    arrays = {"format": np.array("semifreddo-frozen"), "version": np.array(2)}
    save_npz(tmp_path / "bare.npz", arrays)
    with pytest.raises(WeightFileError, match="no network description"):
        load_weights(tmp_path / "bare.npz")


# -- quantization -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_float():
    net = network_from_dict(TINY)
    frames = calibration_frames(net)
    return net, random_float_params(net, np.random.default_rng(0), frames), frames


def test_quantized_parameters_fit_the_hardware(tiny_float):
    net, fp, frames = tiny_float
    params, scales = quantize(net, fp, frames)
    check_params(net, params)
    for c in net.convs():
        p = params[c.name]
        # Weights: per output channel, the largest magnitude becomes 127 exactly.
        rows = np.abs(p.weight.reshape(p.weight.shape[0], -1)).max(axis=1)
        assert set(rows.tolist()) <= {0, 127}
        # The shift is the largest that keeps scales in int16: one more would overflow.
        m = np.abs(p.scale).max()
        assert m <= 32767 and (
            p.shift == 62 or 2 * m + 1 > 32767 or 2 * np.abs(p.bias).max() + 1 > 2**31 - 1
        )
    for b in net.blends():
        w = 1 / (1 + np.exp(-np.asarray(fp[b.name])))
        assert np.array_equal(params[b.name], np.floor(128 * w + 0.5).astype(int))


def test_joined_tensors_share_one_scale(tiny_float):
    net, _fp, _frames = tiny_float
    keys = _scale_keys(net)
    # Every core's stem meets the others at the first blend; a downsampling block's two
    # branches join in one tensor; the cores meet again after each stage.
    assert {keys[f"{c}.stem"][1] for c in net.cores} == {"g0"}
    for core in net.cores:
        assert keys[f"{core}.m1.0.b0_pw"][1] == keys[f"{core}.m1.0.b1_pw"][1] == "g1.1"
        assert keys[f"{core}.m2.0.b0_dw"][0] == "g1.1"
    assert keys["frozen.m1.1.dw"] == ("g1.1", "frozen.m1.1.dw")  # regular: input = output
    assert keys["frozen.m1.1.pw"][1] == "g1.1"


def test_quantized_network_tracks_the_float_one(tiny_float):
    net, fp, frames = tiny_float
    # Max calibration on a 12x8 frame needs many frames to see the extremes of later layers.
    params, scales = quantize(net, fp, calibration_frames(net, 64))
    rows = error_report(net, fp, params, scales, calibration_frames(net, 8, seed=5))["layers"]
    assert [r["layer"] for r in rows] == [c.name for c in net.convs()]
    # On frames other than the calibration ones, 8 bits all the way through: a few percent
    # at the stems, growing with depth; a wrong scale anywhere gives errors near 1.
    for r in rows:
        assert r["rel_rms"] < (0.02 if r["layer"].endswith("stem") else 0.3), r
    assert np.median([r["rel_rms"] for r in rows]) < 0.08
    # And the integer outputs are exactly what the golden model computes from them.
    px = calibration_frames(net, 1, seed=5)[0].astype(np.int64) - 128
    ref = float_forward(net, fp, (px + 0.0) / 128)
    out = backbone(net, params, px)
    for core in net.cores:
        last = [c.name for c in net.convs() if c.name.startswith(f"{core}.")][-1]
        scale = scales[last]  # a core's output is its last conv's output
        err = np.abs(out[core] * scale - ref[core]).max()
        assert err < 0.25 * np.abs(ref[core]).max(), core


def test_float_conv_folding_matches_batch_norm():
    rng = np.random.default_rng(3)
    p = FloatConv(
        np.ones((2, 3)),
        rng.uniform(0.5, 2, 2),
        rng.normal(size=2),
        rng.normal(size=2),
        rng.uniform(0.1, 2, 2),
        eps=1e-3,
    )
    x = rng.normal(size=(5, 2))
    gain, offset = p.folded()
    assert np.allclose(gain * x + offset, (x - p.mean) / np.sqrt(p.var + p.eps) * p.gamma + p.beta)


def test_shipped_examples_load_and_regenerate_identically(tmp_path):
    from weights.examples.make_examples import HERE
    from weights.examples.make_examples import main as make_examples

    small = load_weights(HERE / "small_frozen.npz", HERE / "small_trainable.npz")
    assert small.net == preset("small") and small.form == "float"
    paper = load_weights(HERE / "paper_frozen.npz", HERE / "paper_trainable.npz")
    assert paper.net == preset("paper") and paper.form == "int8"
    check_params(paper.net, paper.params)
    make_examples(tmp_path)
    for p in sorted(tmp_path.iterdir()):
        assert p.read_bytes() == (HERE / p.name).read_bytes(), p.name


# -- trainable file version 2: the core shuffle setting and the input padding -------------


def test_core_shuffle_setting_round_trips_and_is_checked(tmp_path):
    net = preset("small")
    params = random_params(net, np.random.default_rng(0))
    save_frozen(tmp_path / "f.npz", net, params)
    for on in (False, True):
        save_trainable(tmp_path / "t.npz", net, params, shuffle=on)
        assert load_weights(tmp_path / "f.npz", tmp_path / "t.npz").shuffle is on
    arrays = dict(np.load(tmp_path / "t.npz"))
    # version 1 (no setting): still read, shuffle off
    v1 = {k: v for k, v in arrays.items() if k != "core_shuffle"} | {"version": np.array(1)}
    save_npz(tmp_path / "v1.npz", v1)
    assert load_weights(tmp_path / "f.npz", tmp_path / "v1.npz").shuffle is False
    save_npz(tmp_path / "bad.npz", arrays | {"core_shuffle": np.array(2, np.uint8)})
    with pytest.raises(WeightFileError, match="core_shuffle"):
        load_weights(tmp_path / "f.npz", tmp_path / "bad.npz")
    one = preset("one_core")
    p1 = random_params(one, np.random.default_rng(0))
    save_frozen(tmp_path / "f1.npz", one, p1)
    save_trainable(tmp_path / "t1.npz", one, p1)
    assert "core_shuffle" not in np.load(tmp_path / "t1.npz")
    extra = dict(np.load(tmp_path / "t1.npz")) | {"core_shuffle": np.array(0, np.uint8)}
    save_npz(tmp_path / "t1x.npz", extra)
    with pytest.raises(WeightFileError, match="has no core shuffle"):
        load_weights(tmp_path / "f1.npz", tmp_path / "t1x.npz")
    with pytest.raises(ValueError, match="no core shuffle"):
        save_trainable(tmp_path / "t1y.npz", one, p1, shuffle=True)


def test_input_pad_round_trips_in_both_forms(tmp_path):
    net = preset("small")
    fp = random_float_params(net, np.random.default_rng(0), calibration_frames(net, 2))
    fp["input.pad"] = np.array([-1.0, 0.25, 0.0])
    save_frozen(tmp_path / "f.npz", net, fp)
    save_trainable(tmp_path / "t.npz", net, fp)
    w = load_weights(tmp_path / "f.npz", tmp_path / "t.npz")
    assert np.array_equal(w.fparams["input.pad"], fp["input.pad"])
    arrays = dict(np.load(tmp_path / "t.npz"))
    save_npz(tmp_path / "t2.npz", arrays | {"input.pad": np.zeros(4, np.float32)})
    with pytest.raises(WeightFileError, match=r"input.pad has shape \(4,\)"):
        load_weights(tmp_path / "f.npz", tmp_path / "t2.npz")
    # int8 form: the padding pixel value, x_int = 128 x; the quantizer rounds it
    params, _ = quantize(net, fp, calibration_frames(net, 8))
    assert params["input.pad"].tolist() == [-128, 32, 0]
    save_frozen(tmp_path / "fi.npz", net, params)
    save_trainable(tmp_path / "ti.npz", net, params)
    w = load_weights(tmp_path / "fi.npz", tmp_path / "ti.npz")
    assert w.params["input.pad"].tolist() == [-128, 32, 0]
    arrays = dict(np.load(tmp_path / "ti.npz")) | {"input.pad": np.array([0, 0, 300], np.int16)}
    save_npz(tmp_path / "ti2.npz", arrays)
    with pytest.raises(WeightFileError, match="input.pad"):
        load_weights(tmp_path / "fi.npz", tmp_path / "ti2.npz")


def test_float_model_pads_the_stems_with_the_input_pad():
    # padding x with q == subtracting q, padding with 0, adding q back: check against a
    # frame embedded in a border of q (the stem's window then never sees the zero padding)
    net = preset("small")
    fp = random_float_params(net, np.random.default_rng(1), calibration_frames(net, 2))
    q = np.array([-1.0, 0.5, 0.125])
    x = (calibration_frames(net, 1, seed=3)[0].astype(float) - 128) / 128
    spec = next(c for c in net.convs() if c.name == "frozen.stem")
    p = fp["frozen.stem"]
    rec = {}
    float_forward(net, fp | {"input.pad": q}, x, record=rec)
    big = np.broadcast_to(q, (x.shape[0] + 2, x.shape[1] + 2, 3)).copy()
    big[1:-1, 1:-1] = x
    gain, offset = p.folded()
    from weights.floatnet import conv_float

    full = conv_float("full", big, np.asarray(p.weight, float), 1)[1:-1:2, 1:-1:2]
    assert spec.stride == 2
    assert np.allclose(rec["frozen.stem"], np.maximum(full * gain + offset, 0))


# -- calibration ---------------------------------------------------------------------------


def test_clip_levels():
    from weights.quantize import clip_level

    rng = np.random.default_rng(0)
    v = np.abs(rng.standard_t(3, 100_000))  # heavy tails: clipping pays
    top = v.max()
    assert clip_level([v], "max") == top
    assert clip_level([v[:10], v[10:]], "max") == top
    assert clip_level([v], "percentile") == pytest.approx(np.percentile(v, 99.99))
    mse = clip_level([v], "mse")
    assert mse < top

    def err(c):
        s = c / 127
        return np.mean((np.minimum(np.round(v / s), 127) * s - v) ** 2)

    assert err(mse) < err(top) and err(mse) <= err(np.percentile(v, 99.99)) * 1.01
    u = rng.uniform(0, 1, 100_000)  # no tails: mse keeps (nearly) the whole range
    assert clip_level([u], "mse") > 0.95 * u.max()
    assert clip_level([np.zeros(5)], "mse") == 0.0
    with pytest.raises(ValueError, match="calibration method"):
        clip_level([u], "median")


def test_default_calibration_frames_cover_the_outputs():
    from weights.quantize import calibration_count

    assert len(calibration_frames(preset("small"))) == calibration_count(preset("small")) == 128
    assert calibration_count(preset("paper")) == 8  # 40x30 outputs: 8 frames are plenty
    assert len(calibration_frames(network_from_dict(TINY), 3)) == 3


def test_calibration_runs_the_shuffle_as_the_chip_will(tiny_float):
    net = preset("small")
    fp = random_float_params(
        net, np.random.default_rng(3), calibration_frames(net, 4), shuffle=True
    )
    frames = calibration_frames(net, 8)
    on, s_on = quantize(net, fp, frames, shuffle=True, method="max")
    off, s_off = quantize(net, fp, frames, shuffle=False, method="max")
    # The shuffle changes what the trainable cores see, so their scales differ; the stems
    # (before any shuffle) keep theirs.
    assert s_on["a.stem"] == s_off["a.stem"]
    assert any(s_on[c.name] != s_off[c.name] for c in net.convs() if c.name.startswith("a.m"))
    rep = error_report(net, fp, on, s_on, frames, shuffle=True)
    assert [o["output"] for o in rep["outputs"]] == list(net.cores)
    # the report runs the network with the shuffle: its outputs are the golden model's
    px = frames[0].astype(np.int64) - 128
    out = backbone(net, on, px, shuffle=True)
    ref = float_forward(net, fp, (px + 0.0) / 128, shuffle=True)
    last = [c.name for c in net.convs() if c.name.startswith("b.")][-1]
    err = out["b"] * s_on[last] - ref["b"]
    assert np.sqrt(np.mean(err**2)) / np.sqrt(np.mean(ref["b"] ** 2)) < 1.0


def test_odd_stems_and_coreless_strides_are_described():
    odd = network_from_dict({**TINY, "stem_channels": 3, "core_shuffle": False})
    assert odd.channels_after(0) == 3 and odd.channels_after(1) == 6
    # without a frozen core, its strides may be left out: the trainable ones size the stages
    no_frozen = network_from_dict({**TINY, "frozen_core": False, "plan": [[[], [2]], [[], [2]]]})
    with_strides = network_from_dict({**TINY, "frozen_core": False})
    assert no_frozen.cores == ("a", "b")
    assert no_frozen.output_size() == with_strides.output_size() == (2, 1)
    assert no_frozen.channels_after(2) == with_strides.channels_after(2) == 8
    assert [c.name for c in no_frozen.convs()] == [c.name for c in with_strides.convs()]
    assert network_from_dict(json.loads(json.dumps(no_frozen.to_dict()))) == no_frozen


def _head_net():
    base = preset("two_cores_shuffle")
    c = base.channels_after(len(base.stages))
    head = (
        HeadGroupSpec(c, 6, (("frozen", 0), ("a", 0), ("b", 0))),
        HeadGroupSpec(c // 2, 3, (("b", c // 2),), segments=4),
    )
    return dataclasses.replace(base, name="with_head", head=head)


def test_head_files_round_trip(tmp_path):
    """A network with a head: its description in both files, every head entry in the
    trainable file, read back as the same parameters; without a trainable file the head
    powers up as zeros with an all-zero table."""
    net = _head_net()
    params = _int_pair(tmp_path, net, seed=3)
    w = load_weights(tmp_path / "f.npz", tmp_path / "t.npz")
    assert w.net == net
    for k in range(len(net.head)):
        name = names.head_group(k)
        p, q = params[name], w.params[name]
        for f in ("weight", "scale", "bias", "breakpoints", "slopes", "intercepts"):
            assert np.array_equal(getattr(p, f), getattr(q, f)), f
        assert (p.shift, p.pwl_shift, p.pool, p.source) == (q.shift, q.pwl_shift, q.pool, q.source)
    bare = load_weights(tmp_path / "f.npz")
    check_params(net, bare.params)
    assert not bare.params[names.head_group(0)].slopes.any()


@pytest.mark.parametrize(
    "entry, value, message",
    [
        ("head.g0.weight", np.zeros((6, 3), np.int8), r"head.g0.weight has shape \(6, 3\)"),
        ("head.g1.pwl_breakpoint", np.array([5, 5, 9], np.int8), "must increase strictly"),
        ("head.g1.pwl_slope", np.array([0, 0, 0, 40000]), r"pwl_slope.*\[-32768, 32767\]"),
        ("head.g1.source", np.array(1, np.uint8), r"head.g1.source.*\[0, 0\]"),
        ("head.g0.pool", np.array(2, np.uint8), r"head.g0.pool.*\[0, 1\]"),
        ("head.g0.pwl_shift", None, "missing entry 'head.g0.pwl_shift'"),
    ],
)
def test_head_entries_are_checked(tmp_path, entry, value, message):
    net = _head_net()
    params = random_params(net, np.random.default_rng(1))
    arrays = trainable_arrays(net, params)
    if value is None:
        del arrays[entry]
    else:
        arrays[entry] = value
    save_frozen(tmp_path / "f.npz", net, params)
    save_npz(tmp_path / "t.npz", arrays)
    with pytest.raises(WeightFileError, match=message):
        load_weights(tmp_path / "f.npz", tmp_path / "t.npz")


def test_head_description_is_checked():
    net = _head_net()
    d = net.to_dict()
    d["head"][0]["sources"] = [["a", 3]]  # channels 3.. of a and on into b: allowed
    assert network_from_dict(d).head[0].sources == (("a", 3),)
    d["head"][0]["sources"] = [["b", 3]]
    with pytest.raises(ValueError, match=r"source \('b', 3\) must start 16 channels within"):
        network_from_dict(d)
    d["head"][0] = {"c_in": 2, "c_out": 2, "sources": [["a", 0]], "segments": 1}
    with pytest.raises(ValueError, match="segments must lie in 2..256"):
        network_from_dict(d)
    d["head"][0] = {"c_in": 2, "c_out": 2, "sources": [["a", 0]], "extra": 1, "segments": 8}
    with pytest.raises(ValueError, match="head group 0: unknown key 'extra'"):
        network_from_dict(d)
    with pytest.raises(ValueError, match="at most 8 groups"):
        network_from_dict({"preset": "small", "head": [d["head"][0]] * 9})


def test_float_head_round_trips_and_quantizes(tmp_path):
    """A head in float form: its convolution and batch norm, activation, pool and source
    round-trip; quantized, the int8 head follows the float one (the error report's head
    rows), the activation an exact identity or ReLU table."""
    net = _head_net()
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, size=(6, net.height, net.width, net.channels_in))
    fparams = random_float_params(net, rng, pixels)
    for k in range(len(net.head)):  # one group pooled, one not
        name = names.head_group(k)
        fparams[name] = dataclasses.replace(fparams[name], pool=k % 2)
    save_frozen(tmp_path / "f.npz", net, fparams)
    save_trainable(tmp_path / "t.npz", net, fparams)
    w = load_weights(tmp_path / "f.npz", tmp_path / "t.npz")
    assert w.form == "float"
    for k in range(len(net.head)):
        p, q = fparams[names.head_group(k)], w.fparams[names.head_group(k)]
        assert (p.activation, p.pool, p.source) == (q.activation, q.pool, q.source)
        assert np.allclose(p.conv.weight, q.conv.weight, rtol=1e-6)
    params, scales = quantize(net, w.fparams, pixels)
    check_params(net, params)
    for k in range(len(net.head)):
        p, act = params[names.head_group(k)], w.fparams[names.head_group(k)].activation
        assert np.array_equal(
            pwl(np.arange(-128, 128), *p.table(), p.pwl_shift),
            np.arange(-128, 128).clip(0 if act == "relu" else -128),
        )
    report = error_report(net, w.fparams, params, scales, pixels)
    rows = {r["output"]: r for r in report["outputs"]}
    for k in range(len(net.head)):
        assert rows[names.head_group(k)]["rel_rms"] < 0.25, rows


def test_float_head_activation_is_checked(tmp_path):
    net = _head_net()
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, size=(2, net.height, net.width, net.channels_in))
    fparams = random_float_params(net, rng, pixels)
    arrays = trainable_arrays(net, fparams)
    arrays["head.g1.activation"] = np.array("gelu")
    save_frozen(tmp_path / "f.npz", net, fparams)
    save_npz(tmp_path / "t.npz", arrays)
    with pytest.raises(WeightFileError, match="head.g1.activation must be one of identity, relu"):
        load_weights(tmp_path / "f.npz", tmp_path / "t.npz")


def test_files_disagreeing_on_the_head_are_refused(tmp_path):
    net = _head_net()
    params = _int_pair(tmp_path, net)
    bare = dataclasses.replace(net, head=())
    save_frozen(tmp_path / "f.npz", bare, {k: v for k, v in params.items() if "head" not in k})
    with pytest.raises(WeightFileError, match=r"differs from that of .* \(head None vs \["):
        load_weights(tmp_path / "f.npz", tmp_path / "t.npz")
