# amaranth: UnusedElaboratable=no
"""The balancing FIFOs' depths (``semifreddo_hw.balance``, ``Backbone.balance``): each
meeting point's FIFOs cover the lag bounds of the two paths that fork and meet again there,
every element of each path counted (docs/backbone.md, "Delay balancing")."""

import numpy as np
import pytest

from generators.backbone_build import rate_options
from semifreddo_hw.backbone import Backbone
from semifreddo_hw.balance import BALANCE_MARGIN, fifo_depths
from semifreddo_hw.blend import CoreShuffle
from semifreddo_hw.streams import HalfRateSlice
from spec import names
from spec.network import preset
from tests.backbone_helpers import ONE_BLOCK_PLAN, reduced
from weights.synthetic import random_params

SLICE = HalfRateSlice.beats


def test_fifo_depths():
    # The trainable path may hold 10 more than the frozen one's fewest: the frozen FIFO.
    assert fifo_depths((5, 20), (3, 15)) == {
        "trainable": 17 + BALANCE_MARGIN,
        "frozen": 10 + BALANCE_MARGIN,
    }
    # Never more than the frozen path holds at least: no frozen FIFO.
    assert fifo_depths((9, 20), (3, 9)) == {"trainable": 17 + BALANCE_MARGIN, "frozen": 0}
    assert fifo_depths((0, 0), (30, 40))["trainable"] == BALANCE_MARGIN


def _chain(blocks):
    """(fewest, most) beats held by a stage past its first block's window, a register slice
    after every block (a bound a beat high where the block's output is registered)."""
    first, rest = blocks[0], blocks[1:]
    lo = sum(b.lag[0] for b in rest)
    hi = first.pipe_beats + sum(b.lag[1] for b in rest) + SLICE * len(blocks)
    return lo, hi


@pytest.mark.parametrize(
    "name, period, relays",
    [("two_cores", 1, 0), ("one_core", 1, 0), ("small", 16, 0), ("two_cores", 1, 3)]
    + [("one_core", 1, 3), ("small", 16, 3), ("one_block", 1, 2)],
)
def test_meeting_points_cover_both_paths(name, period, relays):
    """Stage ``i + 1``'s two paths fork at meeting point ``i`` (the frozen stream) and meet
    at meeting point ``i + 1``, written out element by element:

    * frozen: slice ``frozen_m<i+1>_in``, the frozen stage with the slice
      ``frozen_m<i+1>_cross`` between its halves, then (past the FIFO balancing it) the
      slice into the next blend or the output;
    * trainable: the frozen FIFO towards the blends ``frozen_bal<i>`` (it fills while the
      trainable stage ``i`` runs behind, and the frozen path holds those beats too), the
      slice ``<core>_blend<i+1>_f``, the blend, with a core shuffle the slice
      ``shuffle<i+1>_<core>`` and the shuffle's output register, slice
      ``<core>_m<i+1>_in``, the trainable stage, then (past
      its FIFO) the slice ``<core>_blend<i+2>_t`` or ``<core>_out``.

    With ``relays``, each stage's relay slices too: the frozen stage's between its halves,
    the trainable stage's in front of ``<core>_m<i+1>_in`` and behind its last block.

    Each FIFO must cover the other path's most beats less its own path's fewest.
    ``one_block``: ``small``'s cores on stages whose frozen core has one block, the crossing
    slice and the relays in front of it."""
    net = reduced("small", ONE_BLOCK_PLAN) if name == "one_block" else preset(name)
    params = random_params(net, np.random.default_rng(1))
    options = rate_options(net, period) if period > 1 else {}
    dut = Backbone(net, params, relays=relays, **options)
    t = next(c for c in net.cores if c != "frozen")
    for i in range(len(net.stages)):
        lo_f, hi_f = _chain(dut.stages["frozen"][i])
        hi_f += SLICE + SLICE + SLICE + relays * SLICE
        lo_t, hi_t = _chain(dut.stages[t][i])
        blend = dut.blends[names.blend(t, i + 1)].pipe_beats
        shuffle = SLICE + CoreShuffle.beats if net.core_shuffle else 0
        hi_t += dut.balance[i]["frozen"] + SLICE + blend + shuffle + SLICE + SLICE
        hi_t += 2 * relays * SLICE
        depths = dut.balance[i + 1]
        assert depths["trainable"] >= hi_f - lo_t + BALANCE_MARGIN, (i, depths)
        assert depths["frozen"] >= hi_t - lo_f + BALANCE_MARGIN, (i, depths)
