# amaranth: UnusedElaboratable=no
"""The rate-folded backbone (``--fold rate``) end to end in Verilator: the same checks as the
spatial one (tests/test_backbone.py) with every layer folded as far as its rate allows:
every beat of all three outputs under random stalls with the shuffle on, every run-time
parameter rewritten in random order (the folded weight memories' addresses), and still one
pixel per clock without stalls; built with three relay slices on each crossing (the build's
``--relays``).

On the ``small`` preset's cores and widths with fewer blocks in Table 1's four stages
(:func:`tests.backbone_helpers.reduced`): the only default build with all four stages (their
strides give every fold the preset has, 2 to 16), on frames of odd sizes.

The checks are imported from tests/test_backbone.py and run on this module's ``main``
fixture; a module of its own, so that its Verilator build goes to another test worker.
"""

import pytest

from generators.backbone_build import SERIAL_FROM, input_period, rate_digits, rate_folds
from semifreddo_hw.backbone import Backbone
from semifreddo_hw.digit_serial import DigitSerialMatVec, fewest_digits
from spec.network import preset
from tests.backbone_helpers import build, reduced
from tests.test_backbone import (  # noqa: F401 (collected here, on the folded build)
    test_as_built_with_shuffle_under_stalls,
    test_one_pixel_per_clock,
    test_parameters_reloaded_at_run_time,
)


@pytest.fixture(scope="module")
def main(rtl_build_dir):
    # With relay slices on every stream that passes other blocks in the floorplan's order
    # (the build's --relays, for FPGA placement): latency only, which the balancing FIFOs
    # count (tests/test_balance.py checks the count; three relays a crossing are more
    # beats than the FIFOs' margin). The spatial build, tests/test_backbone.py, has none.
    return build(reduced("small"), rtl_build_dir, fold="rate", relays=3)


def _legal(spec, f):
    """A fold Conv takes: a divisor of the output channels, or for a configurable layer
    the output channels times a divisor of the products each output sums."""
    sums = {"pointwise": spec.c_in, "depthwise": 9, "full": 9 * spec.c_in}[spec.kind]
    if spec.c_out % f == 0:
        return True
    return not spec.frozen and f % spec.c_out == 0 and sums % (f // spec.c_out) == 0


@pytest.mark.parametrize("name", ["small", "two_cores_shuffle"])
def test_presets_are_folded_at_every_rate(name):
    """Every fold the stride rate allows is taken (the largest legal fold within the peak
    period), and no layer is left spatial by accident."""
    net = preset(name)
    folds, periods = rate_folds(net), net.peak_periods()
    for spec in net.convs():
        f, period = folds[spec.name], periods[spec.name]
        assert 1 < f <= period and _legal(spec, f), spec.name
        assert not any(_legal(spec, g) for g in range(f + 1, period + 1)), spec.name


def test_frozen_products_are_digit_serial_at_their_rate(main):
    """Frozen products that see a beat every SERIAL_FROM cycles or rarer run digit-serially
    over that period (or bit-serially, where the output has fewer bits); the others stay
    word-parallel."""
    periods = main.net.peak_periods()
    assert rate_digits(main.net) == {
        c.name: periods[c.name] for c in main.net.convs() if c.frozen and periods[c.name] >= 4
    }
    serial = 0
    for layer in main.dut.layers():
        product, period = layer.conv.product, periods[layer.name]
        if layer.conv.configurable or period < SERIAL_FROM:
            assert not isinstance(product, DigitSerialMatVec), layer.name
        else:
            assert product.digits == fewest_digits(product.out_width, period), layer.name
            assert product.interval <= period, layer.name
            serial += 1
    assert serial >= 10


def test_the_reduced_plan_has_every_fold_of_the_preset():
    """What the fewer blocks built here leave out is depth, not folds: every fold factor
    ``small`` has (2 to 16) is in the build, and every period its frozen products run
    digit-serially over (4 to 16)."""
    net, small = reduced("small"), preset("small")
    assert set(rate_folds(net).values()) == set(rate_folds(small).values())
    assert set(rate_digits(net).values()) == set(rate_digits(small).values())


def test_folded_layers_share_multipliers(main):
    """Folding is what it is for: the report counts a fraction of the spatial multipliers."""
    spatial = Backbone(main.net, main.params).report()
    assert main.dut.report()["multipliers"] * 2 <= spatial["multipliers"]


def test_target_frame_rate_folds_further():
    """--fps at --clock-mhz: a slower input lets every layer fold further, never less than
    the stride rate alone: a frozen layer (its requantizer) up to all its output channels,
    a configurable one past them, down to one multiplier where the period allows all its
    weights."""
    net = preset("small")
    period = input_period(net, 1000, 100)  # 100 MHz / (1000 * 32 * 24)
    assert period == 130
    base, slow = rate_folds(net), rate_folds(net, period)
    periods = net.peak_periods()
    for spec in net.convs():
        f = slow[spec.name]
        assert base[spec.name] <= f <= periods[spec.name] * period and _legal(spec, f)
        if spec.frozen:
            assert f == spec.c_out, spec.name
        else:
            assert f > spec.c_out, spec.name
            assert not any(
                _legal(spec, g) for g in range(f + 1, periods[spec.name] * period + 1)
            ), spec.name
    assert input_period(net, 1e9, 100) == 1
