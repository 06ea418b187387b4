# amaranth: UnusedElaboratable=no
"""Parameter updates that land on a frame boundary (a backbone built with ``swap``): frames
stream back to back while new parameters are written and swapped in mid-stream, twice; every
output frame must equal the golden model under exactly one parameter set, the one of the
swaps pulsed before its first input beat (so the switch is at the first frame that entered
after the writes), with that set's parity as its epoch marker. The second batch of writes
comes while frames of the first set are still inside, so the write port must hold it back
until ``param_busy`` drops. Spatial and rate-folded (memory windows, spaced digit-serial
products, folded banks in block-RAM shape, frozen depthwise layers from ROMs: one weight set
beside two of scales and biases) builds, on two of Table 1's stages."""

import numpy as np
import pytest

from semifreddo_hw.backbone import Backbone
from sim.backbone import run_backbone_swaps
from sim.errors import SimulationMismatch
from tests.backbone_helpers import SHORT_PLAN, build, reduced, retrained
from tests.test_backbone_spaced import PERIOD
from weights.synthetic import random_params

FRAMES = 9


def _writes(built, target, shadow):
    """The writes that turn the shadow set (holding ``shadow``) into ``target``: only the
    addresses whose values differ, in a random order."""
    old = dict(built.dut.param_writes(shadow))
    changed = [(a, v) for a, v in built.dut.param_writes(target) if old[a] != v]
    order = np.random.default_rng(len(changed)).permutation(len(changed))
    return built.writes([changed[k] for k in order])


def _run(built, test_name, *, stall=0.3, reorder=False):
    """Two swaps mid-stream: sets 0 (power-up), 1, 2; returns the statistics."""
    net, rng = built.net, np.random.default_rng(5)
    sets = [built.params, retrained(net, built.params, rng), retrained(net, built.params, rng)]
    frame = net.width * net.height
    # Set 1 goes to the power-up copy; after the first swap the shadow is set 0 again.
    swaps = [
        (frame // 2, _writes(built, sets[1], sets[0])),
        (2 * frame + 3, _writes(built, sets[2], sets[0])),
    ]
    if reorder:  # the golden sets in the wrong order: the check must see it
        sets = [sets[0], sets[2], sets[1]]
    frames = [
        np.random.default_rng(k).integers(-128, 128, (net.height, net.width, net.channels_in))
        for k in range(FRAMES)
    ]
    return run_backbone_swaps(
        built.design,
        net,
        sets,
        frames,
        swaps,
        shuffle=True,
        test_name=test_name,
        seed=11,
        in_stall=stall,
        out_stall=stall,
    )


@pytest.fixture(scope="module", params=["spatial", "rate"])
def main(request, rtl_build_dir):
    net = reduced("two_cores_shuffle", SHORT_PLAN)
    if request.param == "rate":
        # --frozen-rom 9: the frozen depthwise layers (18 weights) read from ROMs
        return build(net, rtl_build_dir, fold="rate", input_period=PERIOD, swap=True, rom_from=9)
    return build(net, rtl_build_dir, swap=True)


def test_swaps_land_on_frame_boundaries(main):
    rate = any(layer.conv.fold > 1 for layer in main.dut.layers())
    assert sum(layer.conv.rom for layer in main.dut.layers()) == (5 if rate else 0)
    stats = _run(main, "swaps")
    sets = stats["frame_sets"]
    # Both swaps happened mid-stream: frames of all three sets, in order.
    assert sets == sorted(sets) and sets[0] == 0 and set(sets) == {0, 1, 2}, sets
    assert len(sets) == FRAMES and len(stats["swap_pulses"]) == 2
    # The second swap's writes were held back until the first one had reached the outputs.
    assert len(stats["busy_low"]) == 2
    for k, low in enumerate(stats["busy_low"]):
        first = sets.index(k + 1)  # the first frame of the new set
        reached = max(f[first] for f in stats["output_frame_first"].values())
        # busy drops two cycles after the last output passed the new set's first beat (the
        # output's beat registered, then the bookkeeping's own register)
        assert low == reached + 2, (k, low, reached)
    assert stats["swap_pulses"][1] > stats["busy_low"][0]


def test_swaps_back_to_back_without_stalls(main):
    """Full rate: frames back to back, outputs always ready."""
    assert set(_run(main, "swaps_full_rate", stall=0)["frame_sets"]) == {0, 1, 2}


def test_a_wrong_set_is_seen(main):
    with pytest.raises(SimulationMismatch, match="output beat"):
        _run(main, "swaps_wrong", reorder=True)


def test_swap_doubles_the_parameter_memory():
    net = reduced("two_cores_shuffle", SHORT_PLAN)
    params = random_params(net, np.random.default_rng(0))
    one, two = Backbone(net, params), Backbone(net, params, swap=True)
    assert two.report()["parameter_memory_bits"] == 2 * one.report()["parameter_memory_bits"]
    assert one.address_map == two.address_map
    assert one.param_writes(params) == two.param_writes(params)
    assert "param_swap" in two.signature.members and "param_swap" not in one.signature.members
    with pytest.raises(TypeError, match="swap must be a bool"):
        Backbone(net, params, swap=1)
