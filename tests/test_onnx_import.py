"""ONNX import: models built with onnx.helper are read onto the network description, the
imported float network computes what onnxruntime computes, and graphs that do not fit the
topology are refused with the node named."""

import numpy as np
import onnx
import onnxruntime
import pytest

from tests.malformed.make_corpus import TINY
from tests.onnx_models import backbone_onnx
from weights.network import network_from_dict, preset
from weights.onnx_import import OnnxImportError, import_onnx
from weights.onnx_import import main as import_main
from weights.quantize import calibration_frames, float_forward
from weights.synthetic import random_float_params


def _float_net(name, seed=0):
    net = network_from_dict(TINY) if name == "tiny" else preset(name)
    return net, random_float_params(net, np.random.default_rng(seed), calibration_frames(net))


@pytest.mark.parametrize("name, shuffle", [("small", False), ("small", True),
                                           ("one_core", False), ("frozen_only", False),
                                           ("trainable_only", True)])
def test_imported_network_computes_what_onnxruntime_does(name, shuffle):
    net, fp = _float_net(name)
    model = backbone_onnx(net, fp, shuffle=shuffle)
    got, has_shuffle = import_onnx(model, net)
    assert has_shuffle == shuffle
    assert sorted(got) == sorted([c.name for c in net.convs()] +
                                 [b.name for b in net.blends()])
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


@pytest.mark.parametrize("mutate, message", [
    ({"stride": {"a.m1.0.b1_dw": 1}}, r"conv a.m1.0.b1_dw should be depthwise .* stride 2"),
    ({"flip_relu": ["frozen.m1.1.pw"]}, r"expected the Relu after conv frozen.m1.1.pw"),
    ({"flip_relu": ["b.m2.0.b0_dw"]}, r"conv b.m2.0.b0_dw has no ReLU"),
    ({"shuffle_groups": 1}, r"not the two-group channel shuffle"),
    ({"head": True}, r"comes from Gemm node .*the model head is not supported yet"),
    ({"swap_blend": True}, r"blend a.m2.alpha mixes .*not the frozen core's features"),
])
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
    with pytest.raises(OnnxImportError, match=r"block frozen.m4.3 output: .* not the two-group "
                                              r"channel shuffle of 16 channels \(the graph "
                                              r"has 8 there\)"):
        import_onnx(model, preset("two_cores_shuffle"))


def test_cli_writes_float_files_or_one_line(tmp_path, capsys):
    net, fp = _float_net("tiny")
    onnx.save(backbone_onnx(net, fp), tmp_path / "m.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x01garbage")
    (tmp_path / "tiny.json").write_text(__import__("json").dumps(TINY))
    args = ["--config", str(tmp_path / "tiny.json"), "--frozen", str(tmp_path / "f.npz"),
            "--trainable", str(tmp_path / "t.npz")]
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
