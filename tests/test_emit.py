# amaranth: UnusedElaboratable=no
"""Verilog in parts: the same text for any number of workers, parts cached by content."""

import numpy as np

from semifreddo_hw import emit
from semifreddo_hw.blocks import RegularBlock
from semifreddo_hw.conv import Conv
from semifreddo_hw.emit import to_verilog_parts
from weights.synthetic import trained_like_int8


def _block(seed=0):
    rng = np.random.default_rng(seed)
    q = {"scale": [3, -2], "bias": [5, 0], "shift": 2}
    return RegularBlock(4, 5, 3, dw=rng.integers(-128, 128, size=(2, 3, 3)), dw_quant=q,
                        pw=trained_like_int8(rng, 2, 2), pw_quant=q)


def _parts(block):
    return {f"top__{name}": conv for name, conv in block.layers.items()}


def test_parts_are_modules_instantiated_by_the_top():
    block = _block()
    text = to_verilog_parts(block, "top", _parts(block))
    assert "module top(" in text
    for module in ("top__dw", "top__pw"):
        assert f"module {module}(" in text
        assert f"  {module} " in text  # instantiated by the top module
    assert text == to_verilog_parts(block, "top", _parts(block), jobs=2)
    # Emitting in parts leaves the components whole.
    assert "top__dw" not in emit.to_verilog(block, "top")


def test_parts_cache_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMIFREDDO_CACHE_DIR", str(tmp_path))
    block = _block()
    first = to_verilog_parts(block, "top", _parts(block), cache=True)
    assert len(list((tmp_path / "verilog").glob("*.v"))) == 2
    calls = []
    real = emit.to_verilog
    monkeypatch.setattr(emit, "to_verilog",
                        lambda c, name: calls.append(name) or real(c, name))
    assert to_verilog_parts(block, "top", _parts(block), cache=True) == first
    assert calls == ["top"]  # only the top was converted again
    other = _block(seed=1)
    calls.clear()
    to_verilog_parts(other, "top", _parts(other), cache=True)
    assert sorted(calls) == ["top", "top__dw", "top__pw"]


def test_fingerprint_follows_what_the_layer_is_built_from():
    w = trained_like_int8(np.random.default_rng(0), 3, 4)
    a = Conv("pointwise", w).fingerprint()
    assert a == Conv("pointwise", w.copy()).fingerprint()
    w2 = w.copy()
    w2[0, 0] += 1
    assert a != Conv("pointwise", w2).fingerprint()
    assert a != Conv("pointwise", w, shift=1).fingerprint()
    assert a != Conv("pointwise", w, configurable=True).fingerprint()
