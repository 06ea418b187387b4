# amaranth: UnusedElaboratable=no
"""A backbone built for a slow input (``--fps``: a pixel every 16 clocks), the way the
board build makes it, end to end in Verilator: frozen products digit-serial and spaced (one
beat at a time, no stalls inside), products and serializers reading their inputs in place
(``hold``), trainable layers sliced with a register slice behind their serializers. Every
beat of all three outputs under random stalls with the shuffle on, every run-time parameter
rewritten, and frames back to back at the rate the build was made for.

On the ``two_cores_shuffle`` preset's cores on two stages, 18x10 in
(:data:`tests.backbone_helpers.SHORT_PLAN`).
"""

import pytest

from semifreddo_hw.digit_serial import DigitSerialMatVec
from semifreddo_hw.window import MemoryWindow
from tests.backbone_helpers import SHORT_PLAN, build, reduced
from tests.test_backbone import (  # noqa: F401 (collected here, on the spaced build)
    test_as_built_with_shuffle_under_stalls,
    test_parameters_reloaded_at_run_time,
)

PERIOD = 16


@pytest.fixture(scope="module")
def main(rtl_build_dir):
    net = reduced("two_cores_shuffle", SHORT_PLAN)
    return build(net, rtl_build_dir, fold="rate", input_period=PERIOD)


def test_every_saving_is_in_the_build(main):
    """Spaced digit-serial products, with and without a window, products and serializers
    that read in place, configurable windows read from memory (constant-padded stems
    among them): all present, so the end-to-end tests here cover them. (A configurable
    serializer holding a register window is left to ``tests/test_conv.py``: at this
    period every configurable window here is a memory window.)"""
    seen = set()
    for layer in main.dut.layers():
        conv = layer.conv
        if isinstance(conv.product, DigitSerialMatVec) and conv.product.spaced:
            seen.add(("spaced", conv.window is not None))
        if conv.hold:
            seen.add(("hold", conv.configurable))
        if conv.serializer is not None and conv.serializer.hold and not conv.configurable:
            seen.add("frozen serializer holds")
        if conv.cut is not None:
            seen.add("register slice after the serializer")
        if isinstance(conv.window, MemoryWindow):
            seen.add(("memory window", conv.kind))
    want = {("spaced", True), ("spaced", False), ("hold", False)}
    want |= {("memory window", "depthwise"), ("memory window", "full")}
    want |= {"frozen serializer holds", "register slice after the serializer"}
    assert seen >= want, seen


def test_frames_back_to_back_at_the_rate(main):
    """No output stalls and the input always offered: each extra back-to-back frame costs
    at most PERIOD * width * height cycles."""
    one, three = main.back_to_back(17)
    assert three["cycles"] - one["cycles"] <= 2 * PERIOD * main.net.width * main.net.height
