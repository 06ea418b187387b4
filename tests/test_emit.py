# amaranth: UnusedElaboratable=no
"""Verilog in parts: the same text for any number of workers, parts cached by content;
matrix-vector blocks written as text with Amaranth's ports."""

import re

import numpy as np
import pytest

from semifreddo_hw import emit
from semifreddo_hw.blocks import RegularBlock
from semifreddo_hw.conv import Conv
from semifreddo_hw.dsp import ECP5DSP
from semifreddo_hw.emit import to_verilog_parts
from semifreddo_hw.matvec import ConfigurableMatVec, FrozenMatVec
from semifreddo_hw.verilog_text import configurable_matvec, frozen_matvec, text_writer
from weights.synthetic import trained_like_int8


def _block(seed=0):
    rng = np.random.default_rng(seed)
    q = {"scale": [3, -2], "bias": [5, 0], "shift": 2}
    return RegularBlock(
        4,
        5,
        3,
        dw=rng.integers(-128, 128, size=(2, 3, 3)),
        dw_quant=q,
        pw=trained_like_int8(rng, 2, 2),
        pw_quant=q,
    )


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
    # Each convolution's product is a module of its own, written as text, instantiated by
    # the convolution's module.
    for module in ("top__dw", "top__pw"):
        product = _module_text(text, f"{module}__product")
        assert product.startswith("// FrozenMatVec") and "verilog_text" in product
        assert f"  {module}__product product (" in _module_text(text, module)
    # Emitting in parts leaves the components whole.
    assert "top__dw" not in emit.to_verilog(block, "top")


def test_parts_cache_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMIFREDDO_CACHE_DIR", str(tmp_path))
    block = _block()
    first = to_verilog_parts(block, "top", _parts(block), use_cache=True)
    assert len(list((tmp_path / "verilog").iterdir())) == 2
    calls = []
    real = emit.to_verilog

    def counted(c, name, platform=None):
        calls.append(name)
        return real(c, name, platform)

    monkeypatch.setattr(emit, "to_verilog", counted)
    assert to_verilog_parts(block, "top", _parts(block), use_cache=True) == first
    assert calls == ["top"]  # only the top was converted again
    calls.clear()
    to_verilog_parts(block, "top", _parts(block), use_cache=True, platform=ECP5DSP())
    assert sorted(calls) == ["top", "top__dw", "top__pw"]  # another target, other entries
    other = _block(seed=1)
    calls.clear()
    to_verilog_parts(other, "top", _parts(other), use_cache=True)
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


def _module_text(text: str, module: str) -> str:
    """One module of ``text``, from the line before its header to ``endmodule``."""
    start = text.index(f"module {module}(")
    start = text.rfind("\n", 0, text.rfind("\n", 0, start)) + 1
    return text[start : text.index("endmodule", start)]


def _ports(text: str, module: str) -> dict:
    """``{port: (direction, declared bits)}`` of ``module`` in ``text``."""
    decls = re.findall(
        r"^\s*(input|output)\s+(?:\[(-?\d+):(-?\d+)\]\s*)?(\S+)\s*;",
        _module_text(text, module),
        re.MULTILINE,
    )
    return {name: (way, int(hi) - int(lo) + 1 if hi else 1) for way, hi, lo, name in decls}


def _matvecs():
    rng = np.random.default_rng(3)
    w = trained_like_int8(rng, 5, 3, 0.3)
    w[2] = 0  # a constant-zero output
    mask = rng.random((4, 6)) < 0.5
    mask[0, 0] = True
    yield "frozen_5x3", FrozenMatVec(w, levels_per_stage=1)
    yield "frozen_1x1_side", FrozenMatVec([[-128]], side_width=2)
    yield "config_1x1", ConfigurableMatVec(1, 1)  # zero-width select, set and index
    yield "config_4x6_sets", ConfigurableMatVec(6, 4, mask=mask, sets=3, side_width=1)


@pytest.mark.parametrize("name, mv", list(_matvecs()))
def test_text_matvec_ports_equal_amaranths(name, mv):
    """Names, directions and widths (a zero-width port too, which both declare [-1:0])."""
    text = text_writer(mv)(mv, name)
    assert _ports(text, name) == _ports(emit.to_verilog(mv, name), name)
    assert text == emit.part_text(mv, name)  # deterministic, and what parts are emitted as


def test_text_matvec_is_the_same_for_the_same_block():
    w = trained_like_int8(np.random.default_rng(4), 6, 7, 0.2)
    assert frozen_matvec(FrozenMatVec(w), "m") == frozen_matvec(FrozenMatVec(w.copy()), "m")
    init = np.arange(12).reshape(3, 4) - 6
    assert configurable_matvec(ConfigurableMatVec(4, 3, init=init), "m") == configurable_matvec(
        ConfigurableMatVec(4, 3, init=init.copy()), "m"
    )
