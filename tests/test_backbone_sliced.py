# amaranth: UnusedElaboratable=no
"""A backbone folded for a slower input (``--fps``: a pixel every 4 clocks) end to end in
Verilator: the trainable layers fold past their output channels, so their sums come in
slices (``semifreddo_hw.conv.Conv``'s ``fold``) in every kind of layer (stems, depthwise,
pointwise). Every beat of all three outputs under random stalls with the shuffle on, every
run-time parameter rewritten (the sliced weight memories' addresses), and the input taken
at the rate the folds were chosen for.

On the ``two_cores_shuffle`` preset's cores on two stages, 18x10 in
(:data:`tests.backbone_helpers.SHORT_PLAN`); the frozen products word-parallel (their
digit-serial form has its own tests, at the rate of tests/test_backbone_folded.py).
"""

import pytest

from generators.backbone_build import rate_folds
from tests.backbone_helpers import SHORT_PLAN, build, reduced
from tests.test_backbone import (  # noqa: F401 (collected here, on the sliced build)
    test_as_built_with_shuffle_under_stalls,
    test_parameters_reloaded_at_run_time,
)

PERIOD = 4


@pytest.fixture(scope="module")
def main(rtl_build_dir):
    net = reduced("two_cores_shuffle", SHORT_PLAN)
    return build(net, rtl_build_dir, fold="rate", input_period=PERIOD, serial=False)


def test_every_kind_of_trainable_layer_is_sliced(main):
    """The build has slices in stems, depthwise and pointwise layers, and every layer's fold
    is what rate_folds chose for the period."""
    folds = rate_folds(main.net, PERIOD)
    sliced = set()
    for layer in main.dut.layers():
        conv = layer.conv
        assert conv.fold == folds[layer.name], layer.name
        if conv.slices > 1:
            assert conv.configurable and conv.fold == conv.c_out * conv.slices, layer.name
            sliced.add(conv.kind)
    assert sliced == {"full", "depthwise", "pointwise"}


def test_input_taken_at_the_folded_rate(main):
    """No output stalls and the input always offered: each extra back-to-back frame costs
    at most PERIOD * width * height cycles, so the folds keep up with a pixel every PERIOD
    clocks (a fold is a divisor that fits the period, so the backbone may be faster; this
    build takes about two clocks a pixel)."""
    one, three = main.back_to_back(15)
    assert three["cycles"] - one["cycles"] <= 2 * PERIOD * main.net.width * main.net.height


def test_blends_fold_too(main):
    """The alpha blends fold by their meeting point's rate, and the report counts their
    shared multipliers beside the codes."""
    folds = rate_folds(main.net, PERIOD)
    r = main.dut.report()
    for name, blend in main.dut.blends.items():
        assert blend.fold == folds[name] > 1 and blend.lanes * blend.fold == blend.channels
    assert r["blend_multipliers"] == sum(b.lanes for b in main.dut.blends.values())
    assert r["blend_multipliers"] < r["alpha_codes"]
