"""ONNX import: models built with onnx.helper are read onto the network description, the
imported float network computes what onnxruntime computes, and graphs that do not fit the
topology are refused with the node named."""

import dataclasses
import json
import os
import re
import warnings

import numpy as np
import onnx
import onnxruntime
import pytest

from spec.network import network_from_dict, preset
from tests.malformed.make_corpus import TINY
from tests.onnx_models import backbone_onnx
from weights.files import load_weights
from weights.floatnet import float_forward
from weights.onnx_import import OnnxImportError, import_onnx
from weights.onnx_import import main as import_main
from weights.quantize import calibration_frames
from weights.synthetic import random_float_params


def _float_net(name, seed=0):
    net = network_from_dict(TINY) if name == "tiny" else preset(name)
    return net, random_float_params(net, np.random.default_rng(seed), calibration_frames(net))


@pytest.mark.parametrize(
    "name, shuffle",
    [
        ("small", False),
        ("small", True),
        ("one_core", False),
        ("frozen_only", False),
        ("trainable_only", True),
    ],
)
def test_imported_network_computes_what_onnxruntime_does(name, shuffle):
    net, fp = _float_net(name)
    model = backbone_onnx(net, fp, shuffle=shuffle)
    got, has_shuffle = import_onnx(model, net)
    assert has_shuffle == shuffle
    assert sorted(got) == sorted([c.name for c in net.convs()] + [b.name for b in net.blends()])
    x = (calibration_frames(net, 2, seed=9).astype(np.float64) - 128) / 128
    session = onnxruntime.InferenceSession(model.SerializeToString())
    for frame in x:
        outs = session.run(None, {"image": frame.transpose(2, 0, 1)[None].astype(np.float32)})
        ref = float_forward(net, got, frame, shuffle=shuffle)
        for core, o in zip(net.cores, outs, strict=True):
            r = ref[core].transpose(2, 0, 1)[None]
            assert o.shape == r.shape
            assert np.abs(o - r).max() <= 1e-4 * max(1.0, np.abs(r).max()), core


def test_parameters_come_back_exactly():
    net, fp = _float_net("tiny")
    got, _ = import_onnx(backbone_onnx(net, fp), net)
    for c in net.convs():
        a, b = fp[c.name], got[c.name]
        assert np.allclose(a.weight, b.weight, rtol=1e-6)
        assert np.allclose(a.folded(), b.folded(), rtol=1e-5)
    for bl in net.blends():
        assert np.allclose(fp[bl.name], got[bl.name], rtol=1e-6)


@pytest.mark.parametrize(
    "mutate, message",
    [
        ({"stride": {"a.m1.0.b1_dw": 1}}, r"conv a.m1.0.b1_dw should be depthwise .* stride 2"),
        ({"flip_relu": ["frozen.m1.1.pw"]}, r"expected the Relu after conv frozen.m1.1.pw"),
        ({"flip_relu": ["b.m2.0.b0_dw"]}, r"conv b.m2.0.b0_dw has no ReLU"),
        ({"shuffle_groups": 1}, r"not the two-group channel shuffle"),
        ({"head": True}, r"comes from Gemm node .*the first outputs are the cores' feature maps"),
        ({"swap_blend": True}, r"blend a.m2.alpha mixes .*not the frozen core's features"),
    ],
)
def test_graphs_that_do_not_fit_are_refused(mutate, message):
    net, fp = _float_net("tiny")
    model = backbone_onnx(net, fp, shuffle=True, mutate=mutate)
    with pytest.raises(OnnxImportError, match=message):
        import_onnx(model, net)


def test_model_for_another_network_is_refused():
    net, fp = _float_net("tiny")
    model = backbone_onnx(net, fp)
    with pytest.raises(OnnxImportError, match="3 outputs, expected 2"):
        import_onnx(model, preset("one_core"))
    with pytest.raises(
        OnnxImportError,
        match=r"block frozen.m4.3 output: .* not the two-group "
        r"channel shuffle of 16 channels \(the graph "
        r"has 8 there\)",
    ):
        import_onnx(model, preset("two_cores_shuffle"))


def test_cli_writes_float_files_or_one_line(tmp_path, capsys):
    net, fp = _float_net("tiny")
    onnx.save(backbone_onnx(net, fp), tmp_path / "m.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x01garbage")
    (tmp_path / "tiny.json").write_text(__import__("json").dumps(TINY))
    args = _cli_outputs(tmp_path)
    assert import_main([str(tmp_path / "m.onnx"), *args]) == 0
    assert (tmp_path / "f.npz").is_file() and (tmp_path / "t.npz").is_file()
    capsys.readouterr()
    assert import_main([str(tmp_path / "bad.onnx"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "bad.onnx" in err[0], err
    assert import_main([str(tmp_path / "m.onnx"), "--preset", "small", *args[2:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "channel shuffle of 32 channels (the graph has 8" in err[0], err


def test_batch_norm_folded_by_the_exporter(tmp_path):
    """Convs with biases and no BatchNormalization import to the same network, and the
    files written from them load back."""
    from weights.files import load_weights, save_frozen, save_trainable

    net, fp = _float_net("tiny")
    got, _ = import_onnx(backbone_onnx(net, fp, mutate={"fold_bn": True}), net)
    x = (calibration_frames(net, 1, seed=2).astype(np.float64) - 128) / 128
    a, b = float_forward(net, fp, x), float_forward(net, got, x)
    for core in net.cores:
        assert np.allclose(a[core], b[core], rtol=1e-4, atol=1e-4)
    save_frozen(tmp_path / "f.npz", net, got)
    save_trainable(tmp_path / "t.npz", net, got)
    back = load_weights(tmp_path / "f.npz", tmp_path / "t.npz")
    c = float_forward(net, back.fparams, x)
    for core in net.cores:
        assert np.allclose(a[core], c[core], rtol=1e-4, atol=1e-4)


def _nan_at_0(a):
    a = np.array(a)
    a.reshape(-1)[0] = np.nan
    return a


def _set_0(value):
    def f(a):
        a = np.array(a)
        a.reshape(-1)[0] = value
        return a

    return f


@pytest.mark.parametrize(
    "mutate, message",
    [
        # values: every float the importer reads is finite (and fits the float32 files)
        (
            {"init": {"a.m1.0.b1_pw.weight": _nan_at_0}},
            r"conv a.m1.0.b1_pw weight: initializer 'w_\d+'\[0, 0, 0, 0\] is nan \(not finite\)",
        ),
        (
            {"init": {"frozen.m1.1.pw.var": _set_0(np.inf)}},
            r"batch norm of frozen.m1.1.pw .* var: initializer 'var_\d+'\[0\] is inf \(not "
            r"finite\)",
        ),
        (
            {"init": {"b.m2.0.b0_dw.gamma": _nan_at_0}},
            r"batch norm of b.m2.0.b0_dw .* gamma: initializer 'gamma_\d+'\[0\] is nan",
        ),
        (
            {"init": {"a.m2.alpha": _nan_at_0}},
            r"blend a.m2.alpha weight: initializer 'alpha_\d+'\[0, 0, 0, 0\] is nan \(not finite\)",
        ),
        (
            {"init": {"a.stem.beta": lambda a: np.full(a.shape, 1e300)}},
            r"batch norm of a.stem .* beta: initializer 'beta_\d+'\[0\] is 1e\+300 \(beyond the "
            r"float32 range\)",
        ),
        (
            {"eps": {"b.m1.0.b1_pw": -0.5}},
            r"batch norm of b.m1.0.b1_pw .*: epsilon -0.5 must be a finite number >= 0",
        ),
        (
            {"init": {"frozen.stem.var": _set_0(-1.0)}},
            r"batch norm of frozen.stem .*: variance 'var_\d+'\[0\] is -1.0 with epsilon .*; "
            r"variance "
            r"must be >= 0",
        ),
        (
            {"eps": {"a.m1.0.b0_pw": 0.0}, "init": {"a.m1.0.b0_pw.var": np.zeros_like}},
            r"batch norm of a.m1.0.b0_pw .*: variance .* is 0.0 with epsilon 0.0; .*variance \+ "
            r"epsilon > 0",
        ),
        # types: real floats for parameters, integers for sizes and shapes
        (
            {"init": {"frozen.m1.1.dw.weight": lambda a: a.astype(np.complex64)}},
            r"conv frozen.m1.1.dw weight: initializer 'w_\d+' has type complex64, expected real "
            r"floats",
        ),
        (
            {"init": {"frozen.stem.weight": lambda a: np.full(a.shape, "0.5", object)}},
            r"conv frozen.stem weight: initializer 'w_\d+' has type string, expected real floats",
        ),
        (
            {"init": {"b.m2.0.b1_pw.mean": lambda a: a.astype(np.int32)}},
            r"batch norm of b.m2.0.b1_pw .* mean: initializer 'mean_\d+' has type int32, expected "
            r"real "
            r"floats",
        ),
        (
            {"init": {"shape1": lambda a: a.astype(np.float32)}},
            r"the shape of Reshape 'Reshape_\d+': initializer 's_\d+' has type float, expected "
            r"integers",
        ),
        # shapes: checked (and named) before any arithmetic
        (
            {"fold_bn": True, "init": {"frozen.m1.1.pw.bias": lambda a: a[:1]}},
            r"conv frozen.m1.1.pw bias \('Conv_\d+'\): initializer 'b_\d+' has shape \(1,\), "
            r"expected "
            r"\(\d+,\)",
        ),
        (
            {"init": {"frozen.m2.0.b1_dw.mean": lambda a: np.concatenate([a, a])}},
            r"batch norm of frozen.m2.0.b1_dw .* mean: initializer 'mean_\d+' has shape \(\d+,\), "
            r"expected \(\d+,\)",
        ),
        (
            {"init": {"shape2": lambda a: np.int64(4)}},
            r"the shape of Reshape 'Reshape_\d+': initializer 's_\d+' has shape \(\), expected a "
            r"1-D "
            r"list of integers",
        ),
        (
            {"init": {"split": lambda a: np.int64(a[0])}},
            r"the sizes of Split 'Split_\d+': initializer 'split_\d+' has shape \(\), expected a "
            r"1-D "
            r"list of integers",
        ),
    ],
)
def test_bad_values_types_and_shapes_are_refused(tmp_path, capsys, mutate, message):
    """Refused naming the initializer, with no warning, both by import_onnx and by the
    command (exit code 2, one line, no file written)."""
    net, fp = _float_net("tiny")
    model = backbone_onnx(net, fp, shuffle=True, mutate=mutate)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy ComplexWarning, RuntimeWarning would raise
        with pytest.raises(OnnxImportError, match=message):
            import_onnx(model, net)
    onnx.save(model, tmp_path / "m.onnx")
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    before = sorted(tmp_path.iterdir())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code = import_main([str(tmp_path / "m.onnx"), *_cli_outputs(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert re.search(message, err[0]), err
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    "name, op", [("tiny", "Identity"), ("tiny", "Dropout"), ("small", "Identity")]
)
def test_identity_and_dropout_are_looked_through(name, op):
    """An Identity (Dropout) after every initializer, batch norm, Split output (between a
    Split and its Concat, the core shuffle's included) and Sigmoid: the same network."""
    net, fp = _float_net(name)
    plain, shuffle = import_onnx(backbone_onnx(net, fp, shuffle=True), net)
    model = backbone_onnx(net, fp, shuffle=True, mutate={"look_through": op})
    assert sum(n.op_type == op for n in model.graph.node) > 10
    got, got_shuffle = import_onnx(model, net)
    assert got_shuffle == shuffle
    assert sorted(got) == sorted(plain)
    for k, p in plain.items():
        if isinstance(p, np.ndarray):
            assert np.array_equal(p, got[k]), k
        else:
            for f in ("weight", "gamma", "beta", "mean", "var", "eps"):
                assert np.array_equal(getattr(p, f), getattr(got[k], f)), (k, f)
    x = (calibration_frames(net, 1, seed=3).astype(np.float64) - 128) / 128
    outs = onnxruntime.InferenceSession(model.SerializeToString()).run(
        None, {"image": x[0].transpose(2, 0, 1)[None].astype(np.float32)}
    )
    ref = float_forward(net, got, x[0], shuffle=shuffle)
    for core, o in zip(net.cores, outs, strict=True):
        r = ref[core].transpose(2, 0, 1)[None]
        assert np.abs(o - r).max() <= 1e-4 * max(1.0, np.abs(r).max()), core


def _cli_outputs(tmp_path):
    """Arguments of the tiny network's description and the two files, all in ``tmp_path``."""
    return [
        "--config",
        str(tmp_path / "tiny.json"),
        "--frozen",
        str(tmp_path / "f.npz"),
        "--trainable",
        str(tmp_path / "t.npz"),
    ]


def _cli_setup(tmp_path):
    net, fp = _float_net("tiny")
    onnx.save(backbone_onnx(net, fp), tmp_path / "m.onnx")
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    return str(tmp_path / "m.onnx"), ["--config", str(tmp_path / "tiny.json")]


def _one_error(capsys, code, pattern):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), (code, err)
    assert re.search(pattern, err[0]), err


def test_cli_output_paths_are_checked_before_writing(tmp_path, capsys):
    model, net_args = _cli_setup(tmp_path)
    (tmp_path / "a_file").write_text("")
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "link.onnx").symlink_to(tmp_path / "m.onnx")
    os.link(tmp_path / "m.onnx", tmp_path / "hard.onnx")
    model_bytes = (tmp_path / "m.onnx").read_bytes()
    f, t = str(tmp_path / "f.npz"), str(tmp_path / "t.npz")
    cases = [
        (
            f,
            str(tmp_path / "missing" / "t.npz"),
            r"--trainable .*: directory .*missing' does "
            r"not exist",
        ),
        (
            str(tmp_path / "a_file" / "f.npz"),
            t,
            r"--frozen .*: directory .*a_file' is not a "
            r"directory",
        ),
        (f, f, r"--frozen and --trainable are the same file"),
        (
            f,
            str(tmp_path / "a_dir" / ".." / "f.npz"),
            r"--frozen and --trainable are the same "
            r"file",
        ),
        (model, t, r"--frozen .*m.onnx: is the input model"),
        (f, str(tmp_path / "link.onnx"), r"--trainable .*link.onnx: is the input model"),
        (str(tmp_path / "hard.onnx"), t, r"--frozen .*hard.onnx: is the input model"),
        (str(tmp_path / "tiny.json"), t, r"--frozen .*tiny.json: is the --config file"),
        (str(tmp_path / "a_dir"), t, r"--frozen .*a_dir: exists and is not a regular file"),
    ]
    before = sorted(tmp_path.rglob("*"))
    for frozen, trainable, pattern in cases:
        code = import_main([model, *net_args, "--frozen", frozen, "--trainable", trainable])
        _one_error(capsys, code, pattern)
        assert sorted(tmp_path.rglob("*")) == before, (frozen, trainable)
        assert (tmp_path / "m.onnx").read_bytes() == model_bytes


def test_cli_write_failure_leaves_neither_file(tmp_path, capsys, monkeypatch):
    import weights.onnx_import

    model, net_args = _cli_setup(tmp_path)
    f, t = tmp_path / "f.npz", tmp_path / "t.npz"
    args = [model, *net_args, "--frozen", str(f), "--trainable", str(t)]
    before = sorted(tmp_path.iterdir())

    def full(*_):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(weights.onnx_import, "save_trainable", full)
        _one_error(
            capsys,
            import_main(args),
            r"--trainable .*t.npz: cannot write \(No space "
            r"left on device\)",
        )
    assert sorted(tmp_path.iterdir()) == before
    replace = os.replace

    def fail_last(src, dst):  # the trainable file's rename, after the frozen one's
        if str(dst) == str(t):
            raise OSError(13, "Permission denied")
        replace(src, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", fail_last)
        _one_error(capsys, import_main(args), r"--trainable .*t.npz: cannot write")
    assert sorted(tmp_path.iterdir()) == before
    assert import_main(args) == 0 and f.is_file() and t.is_file()


def test_cli_model_must_be_a_regular_file_of_bounded_size(tmp_path, capsys, monkeypatch):
    import weights.onnx_import

    model, net_args = _cli_setup(tmp_path)
    out = ["--frozen", str(tmp_path / "f.npz"), "--trainable", str(tmp_path / "t.npz")]
    os.mkfifo(tmp_path / "fifo.onnx")  # onnx.load would block on it
    (tmp_path / "dir.onnx").mkdir()
    for path, pattern in [
        (tmp_path / "fifo.onnx", r"fifo.onnx: not a regular file"),
        (tmp_path / "dir.onnx", r"dir.onnx: not a regular file"),
        (tmp_path / "none.onnx", r"none.onnx: no such file"),
    ]:
        _one_error(capsys, import_main([str(path), *net_args, *out]), pattern)
    monkeypatch.setattr(weights.onnx_import, "MAX_MODEL_BYTES", 1000)
    _one_error(
        capsys,
        import_main([model, *net_args, *out]),
        r"m.onnx: \d+ bytes, more than an ONNX model may have \(1000\)",
    )
    monkeypatch.undo()
    net, fp = _float_net("tiny")
    onnx.save(
        backbone_onnx(net, fp),
        tmp_path / "ext.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="ext.data",
        size_threshold=0,
    )
    _one_error(
        capsys,
        import_main([str(tmp_path / "ext.onnx"), *net_args, *out]),
        r"initializer '\w+' is stored in an external data file",
    )
    assert not (tmp_path / "f.npz").exists() and not (tmp_path / "t.npz").exists()


# -- input normalisation folded into the stems ------------------------------------------

_MEAN = np.array([0.485, 0.456, 0.406])  # per channel, (1, 3, 1, 1) and (3, 1, 1) layouts
_STD = np.array([0.229, 0.224, 0.225])


@pytest.mark.parametrize(
    "norm, uint8",
    [
        ([("Sub", 128.0), ("Div", 128.0)], False),  # the project's own convention, in-graph
        ([("Cast", None), ("Sub", 128.0), ("Div", 128.0)], True),
        ([("Div", 255.0)], False),  # zero padding stands for pixel 0: pad x = -1
        (
            [
                ("Cast", None),
                ("Div", np.float32(255)),
                ("Sub", _MEAN.reshape(1, 3, 1, 1)),
                ("Div", _STD.reshape(3, 1, 1)),
            ],
            True,
        ),  # torchvision's ToTensor + Normalize
        ([("Mul", np.array([1 / 255.0])), ("Add", -0.5), ("Mul", 2.0)], False),
        ([("Sub", 255.0, "first"), ("Mul", 1 / 64)], False),  # inverted: k - x
        (
            [("BatchNormalization", ([0.01, 0.02, 0.03], [-1, 0, 1], [120, 110, 100], [4, 2, 1]))],
            False,
        ),
        ([("Cast", None)], True),  # raw pixels straight in: the stem reads p
    ],
)
def test_input_normalisation_is_folded_exactly(norm, uint8):
    net, fp = _float_net("small", seed=4)
    input_type = onnx.TensorProto.UINT8 if uint8 else onnx.TensorProto.FLOAT
    model = backbone_onnx(net, fp, shuffle=True, norm=norm, input_type=input_type)
    report = []
    got, shuffle = import_onnx(model, net, report)
    assert shuffle and len(report) == len(net.cores)
    session = onnxruntime.InferenceSession(model.SerializeToString())
    pixels = calibration_frames(net, 2, seed=11)
    pixels[0, 0, :, 0] = 0  # extremes on a border
    pixels[1, :, -1, 2] = 255
    for frame in pixels:
        feed = frame.transpose(2, 0, 1)[None]
        outs = session.run(None, {"image": feed if uint8 else feed.astype(np.float32)})
        ref = float_forward(net, got, (frame.astype(np.float64) - 128) / 128, shuffle=True)
        for core, o in zip(net.cores, outs, strict=True):
            r = ref[core].transpose(2, 0, 1)[None]
            assert np.abs(o - r).max() <= 1e-5 * max(1.0, np.abs(r).max()), (core, norm)


def test_normalised_float_files_round_trip(tmp_path):
    from weights.files import load_weights, save_frozen, save_trainable

    net, fp = _float_net("small", seed=4)
    model = backbone_onnx(net, fp, shuffle=True, norm=[("Div", 255.0)])
    got, shuffle = import_onnx(model, net)
    assert np.allclose(got["input.pad"], -1.0)  # pixel 0 is x = -1
    save_frozen(tmp_path / "f.npz", net, got)
    save_trainable(tmp_path / "t.npz", net, got, shuffle)
    w = load_weights(tmp_path / "f.npz", tmp_path / "t.npz")
    assert w.shuffle and np.allclose(w.fparams["input.pad"], got["input.pad"])
    x = (calibration_frames(net, 1, seed=2)[0].astype(np.float64) - 128) / 128
    a, b = float_forward(net, got, x, shuffle=True), float_forward(net, w.fparams, x, shuffle=True)
    for core in net.cores:
        assert np.allclose(a[core], b[core], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "norm, message",
    [
        ([("Div", 128.0, "first")], "divides a constant by the image"),
        ([("Div", 0.0)], "divides by zero"),
        ([("Mul", 0.0)], "multiplies channel 0 by 0"),
        ([("Sub", np.ones(3))], r"shape \(3,\) is not one value per channel"),
        ([("Sub", np.ones((1, 3, 1, 2)))], "is not one value per channel"),
        ([("Relu", None)], r"expected the model input, or an input normalisation"),
    ],
)
def test_normalisations_that_do_not_fold_are_refused(norm, message):
    net, fp = _float_net("tiny")
    if norm[0][0] == "Relu":
        import tests.onnx_models as om

        real = om._normalise
        om._normalise = lambda b, x, steps: b.op("Relu", [x])
        try:
            model = backbone_onnx(net, fp)
        finally:
            om._normalise = real
    else:
        model = backbone_onnx(net, fp, norm=norm)
    with pytest.raises(OnnxImportError, match=message):
        import_onnx(model, net)


def test_cli_reports_the_folded_normalisation(tmp_path, capsys):
    net, fp = _float_net("small", seed=4)
    model = backbone_onnx(net, fp, shuffle=True, norm=[("Sub", 128.0), ("Div", 128.0)])
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    rc = import_main(
        [
            str(path),
            "--preset",
            "small",
            "--frozen",
            str(tmp_path / "f.npz"),
            "--trainable",
            str(tmp_path / "t.npz"),
        ]
    )
    out = capsys.readouterr().err  # progress goes to stderr
    assert rc == 0, out
    assert "core shuffle on" in out
    assert out.count("input normalisation folded into") == len(net.cores)
    assert "Sub" in out and "Div" in out


def _head_float_net(layout, seed=0):
    """TINY with a head: ``separate`` groups of different shapes (one pooled with ReLU, one
    per pixel, one whose source spans two cores), or ``grouped``: two groups of the same
    shape over consecutive channels, exported as one grouped Conv."""
    base = network_from_dict(TINY)
    c = base.channels_after(len(base.stages))
    head = {
        "separate": [
            {"c_in": c, "c_out": 5, "sources": [["frozen", 0], ["b", 0]], "segments": 8},
            {"c_in": c // 2, "c_out": 3, "sources": [["a", c // 2]], "segments": 4},
            {"c_in": c, "c_out": 2, "sources": [["frozen", c // 2], ["a", 0]], "segments": 8},
        ],
        "grouped": [
            {"c_in": c // 2, "c_out": 4, "sources": [["a", 0]], "segments": 8},
            {"c_in": c // 2, "c_out": 4, "sources": [["a", c // 2]], "segments": 8},
        ],
    }[layout]
    net = network_from_dict({**TINY, "name": f"tiny_{layout}", "head": head})
    fp = random_float_params(net, np.random.default_rng(seed), calibration_frames(net))
    for k, g in enumerate(net.head):  # the first pooled with ReLU, then alternating
        name = f"head.g{k}"
        fp[name] = dataclasses.replace(
            fp[name],
            activation=("relu", "identity")[k % 2],
            pool=int(k % 2 == 0),
            source=len(g.sources) - 1,
        )
    return net, fp


@pytest.mark.parametrize("layout", ["separate", "grouped"])
def test_head_imports_and_computes_what_onnxruntime_does(layout):
    """A head after the backbone (one output per group): convs, batch norms, activations,
    pool switches and the chosen sources come back, and the imported float network's head
    outputs equal onnxruntime's."""
    net, fp = _head_float_net(layout)
    model = backbone_onnx(net, fp, mutate={"grouped_head": layout == "grouped"})
    got, _ = import_onnx(model, net)
    for k in range(len(net.head)):
        a, b = fp[f"head.g{k}"], got[f"head.g{k}"]
        assert (a.activation, a.pool, a.source) == (b.activation, b.pool, b.source)
        assert np.allclose(a.conv.weight, b.conv.weight, rtol=1e-6)
        assert np.allclose(a.conv.folded(), b.conv.folded(), rtol=1e-5)
    x = (calibration_frames(net, 2, seed=9).astype(np.float64) - 128) / 128
    session = onnxruntime.InferenceSession(model.SerializeToString())
    for frame in x:
        outs = session.run(None, {"image": frame.transpose(2, 0, 1)[None].astype(np.float32)})
        ref = float_forward(net, got, frame)
        for k, o in enumerate(outs[len(net.cores) :]):
            r = ref[f"head.g{k}"]
            r = r[None] if r.ndim == 1 else r.transpose(2, 0, 1)[None]
            assert o.shape == r.shape, k
            assert np.abs(o - r).max() <= 1e-4 * max(1.0, np.abs(r).max()), k


def test_head_reading_other_channels_is_refused():
    """A group whose conv reads channels that are none of its sources is named, and so is a
    model with other outputs than the cores and the head's groups."""
    net, fp = _head_float_net("separate")
    model = backbone_onnx(net, fp)
    other = network_from_dict(
        {**net.to_dict(), "head": [{**g.to_dict(), "sources": [["a", 0]]} for g in net.head]}
    )
    with pytest.raises(
        OnnxImportError,
        match=r"head group head.g0: its conv reads 8 channels from b channel 0 on, not 8 "
        r"channels from one of its sources \[\('a', 0\)\]",
    ):
        import_onnx(model, other)
    fewer = network_from_dict({**TINY, "head": [net.head[0].to_dict()] * 2})
    with pytest.raises(OnnxImportError, match=r"6 outputs, expected 5 .*then one per head group"):
        import_onnx(model, fewer)


def test_cli_imports_a_head_into_float_files(tmp_path, capsys):
    """``--config`` with a head: the float files carry the head, read back as it was."""
    net, fp = _head_float_net("grouped")
    onnx.save(backbone_onnx(net, fp, mutate={"grouped_head": True}), tmp_path / "m.onnx")
    (tmp_path / "net.json").write_text(json.dumps(net.to_dict()))
    out = ["--frozen", str(tmp_path / "f.npz"), "--trainable", str(tmp_path / "t.npz")]
    assert (
        import_main([str(tmp_path / "m.onnx"), "--config", str(tmp_path / "net.json"), *out]) == 0
    )
    assert "2 head group(s)" in capsys.readouterr().err
    w = load_weights(tmp_path / "f.npz", tmp_path / "t.npz")
    assert w.net == net and w.form == "float"
    for k in range(len(net.head)):
        a, b = fp[f"head.g{k}"], w.fparams[f"head.g{k}"]
        assert (a.activation, a.pool, a.source) == (b.activation, b.pool, b.source)
        assert np.allclose(a.conv.weight, b.conv.weight, rtol=1e-6)


@pytest.mark.parametrize(
    "change, message",
    [
        ("group0", r"the conv of head group head.g0 has group 0"),
        ("slice_no_axes", r"a Slice of channels needs its axes"),
    ],
)
def test_head_graphs_that_do_not_fit_are_refused(change, message):
    """A grouped head conv with ``group`` 0; a Slice without axes (ONNX slices the batch
    axis then, not the channels)."""
    net, fp = _head_float_net("grouped")
    model = backbone_onnx(net, fp, mutate={"grouped_head": True})
    for node in model.graph.node:
        if (
            change == "group0"
            and node.op_type == "Conv"
            and any(a.name == "group" and a.i == 2 for a in node.attribute)
        ):
            next(a for a in node.attribute if a.name == "group").i = 0
        if change == "slice_no_axes" and node.op_type == "Slice" and len(node.input) == 4:
            del node.input[3]
            break
    with pytest.raises(OnnxImportError, match=message):
        import_onnx(model, net)
