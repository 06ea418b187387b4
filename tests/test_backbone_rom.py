# amaranth: UnusedElaboratable=no
"""A backbone built as the board build makes it for a slow input (``--fps``: a pixel every
16 clocks) with frozen layers read from ROMs (``--frozen-rom 72``, the board's default),
end to end in Verilator: the depthwise layers of stages 2 to 4 whose frames are three or
more wide (behind a memory window) and the pointwise ones of stage 4 each one multiplier
beside a ROM of its weights, the rest bit-serial as before. Every beat of all three outputs
under random stalls with the shuffle on, every run-time parameter rewritten (the ROM
layers' scales and biases among them).

On the ``small`` preset's cores and widths with fewer blocks (18x10 in,
:func:`tests.backbone_helpers.reduced`).
"""

import pytest

from generators.backbone_build import rate_roms
from generators.board import BOARD_FROZEN_ROM
from semifreddo_hw.backbone import Backbone
from semifreddo_hw.digit_serial import DigitSerialMatVec
from semifreddo_hw.matvec import ConfigurableMatVec
from semifreddo_hw.window import MemoryWindow
from tests.backbone_helpers import build, reduced
from tests.test_backbone import (  # noqa: F401 (collected here, on the ROM build)
    test_as_built_with_shuffle_under_stalls,
    test_parameters_reloaded_at_run_time,
)

PERIOD = 16


@pytest.fixture(scope="module")
def main(rtl_build_dir):
    net = reduced("small")
    return build(net, rtl_build_dir, fold="rate", input_period=PERIOD, rom_from=BOARD_FROZEN_ROM)


def test_rom_layers_are_those_the_rule_picks(main):
    """The layers the rule names, and only they, are built from ROMs, one multiplier each,
    a depthwise one always behind a memory window; the narrow frames' depthwise layers stay
    bit-serial; the ROM layers have no weight region (their weights cannot be written);
    every other frozen product is still digit-serial."""
    roms = set(rate_roms(main.net, PERIOD, BOARD_FROZEN_ROM))
    assert {n.split(".")[1][:2] for n in roms} == {"m2", "m3", "m4"}
    assert "frozen.m4.1.pw" in roms and "frozen.m4.1.dw" not in roms  # a 2x1 frame
    forms = set()
    for layer in main.dut.layers():
        conv = layer.conv
        if layer.name in roms:
            assert conv.rom and isinstance(conv.product, ConfigurableMatVec), layer.name
            assert conv.report()["multipliers"] == 1, layer.name
            assert conv.kind == "pointwise" or isinstance(conv.window, MemoryWindow)
            forms.add(conv.kind)
        elif not conv.configurable:
            assert not conv.rom and isinstance(conv.product, DigitSerialMatVec), layer.name
    assert forms == {"depthwise", "pointwise"}
    regions = {(r.layer, r.field) for r in main.dut.address_map}
    assert all((n, "weight") not in regions and (n, "scale") in regions for n in roms)
    r = main.dut.report()
    assert r["rom_bits"] == 8 * sum(r["layers"][n]["weights"] for n in roms)


def test_roms_must_name_frozen_convolutions(main):
    for name in ("a.m2.0.b0_dw", "frozen.nothing"):
        with pytest.raises(ValueError, match="roms names no frozen convolution"):
            Backbone(main.net, main.params, roms=[name])
