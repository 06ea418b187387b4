"""A backbone with the model head, end to end in Verilator against the golden model: two
group layouts (every core's output as a source, half a core's), pooling on and off, the
head's parameters written through the one parameter bus, spatial and rate-folded builds,
and a mid-stream swap of two parameter sets."""

import dataclasses

import numpy as np
import pytest

from sim.backbone import output_beats, random_frames, run_backbone_swaps
from sim.errors import SimulationMismatch
from spec import names
from spec.network import HeadGroupSpec, network_from_dict, preset
from spec.params import HeadGroupParams, pwl_identity, pwl_relu
from tests.backbone_helpers import SHORT_PLAN, build, reduced, retrained
from weights.synthetic import random_params


def head_net(layout: str):
    """The two-trainable-core configuration on :data:`SHORT_PLAN` (4 channels per core out,
    5x3 frames) with a head: ``wide`` reads a whole core (any of the three) into 6 outputs
    and half of ``a`` or ``b`` into 3; ``single`` one group of 6 -> 5 whose sources span
    two cores (the frozen core's channels 1..3 and ``a``'s 0..2, or ``a``'s 2..3 and
    ``b``'s 0..3)."""
    net = reduced("two_cores_shuffle", SHORT_PLAN)
    c = net.channels_after(len(net.stages))
    head = {
        "wide": (
            HeadGroupSpec(c, 6, (("frozen", 0), ("a", 0), ("b", 0))),
            HeadGroupSpec(c // 2, 3, (("a", c // 2), ("b", 0)), segments=4),
        ),
        "single": (HeadGroupSpec(6, 5, (("frozen", 1), ("a", 2)), segments=16),),
    }[layout]
    return dataclasses.replace(net, name=f"head_{layout}", head=head)


def with_head(params, net, pools, tables=("random", "relu")):
    """``params`` with each head group's pool switch from ``pools`` and its table: ``random``
    keeps the synthetic one, ``relu`` / ``identity`` the exact ones."""
    out = dict(params)
    for k, pool in enumerate(pools):
        name = names.head_group(k)
        p, table = params[name], tables[k % len(tables)]
        tab = {"identity": pwl_identity, "relu": pwl_relu}.get(table)
        bp, slopes, icepts = tab(net.head[k].segments, p.pwl_shift) if tab else p.table()
        out[name] = HeadGroupParams(
            p.weight,
            p.scale,
            p.bias,
            p.shift,
            *(np.asarray(v) for v in (bp, slopes, icepts)),
            p.pwl_shift,
            pool,
            p.source,
        )
    return out


@pytest.fixture(scope="module")
def built(rtl_build_dir):
    cache = {}

    def get(layout, fold="spatial", swap=False, pools=None):
        key = (layout, fold, swap, pools)
        if key not in cache:
            net = head_net(layout)
            params = random_params(net, np.random.default_rng(5))
            if pools is not None:
                params = with_head(params, net, pools)
            cache[key] = build(net, rtl_build_dir, fold=fold, swap=swap, params=params)
        return cache[key]

    return get


def test_network_description_round_trips_the_head():
    net = head_net("wide")
    assert network_from_dict(net.to_dict()) == net
    # a network without a head keeps its description (and so its build files) unchanged
    assert "head" not in reduced("two_cores_shuffle", SHORT_PLAN).to_dict()
    with pytest.raises(ValueError, match="source core 'b' is not in"):
        dataclasses.replace(
            reduced("one_core", SHORT_PLAN), head=(HeadGroupSpec(2, 2, (("b", 0),)),)
        )
    with pytest.raises(ValueError, match="at most 8 groups"):
        dataclasses.replace(net, head=(HeadGroupSpec(4, 4, (("a", 0),)),) * 9)
    paper = preset("paper")  # two groups of 256 -> 256, the paper's example, are the most
    dataclasses.replace(paper, head=(HeadGroupSpec(256, 256, (("a", 0),)),) * 2)  # no error
    with pytest.raises(ValueError, match="the head has 131073 weights, at most 131072"):
        dataclasses.replace(
            paper,
            head=(HeadGroupSpec(256, 256, (("a", 0),)),) * 2 + (HeadGroupSpec(1, 1, (("b", 0),)),),
        )


@pytest.mark.parametrize("layout, pools", [("wide", (1, 0)), ("wide", (0, 1)), ("single", (1,))])
def test_head_written_through_the_bus(built, layout, pools):
    """Power up with one parameter set, write another (the head's weights, requantizers,
    tables, sources and pool switches included) through ``param_write``, then stream frames
    under stalls: every beat of every output (cores and groups) as the golden model."""
    b = built(layout)
    net = b.net
    params = with_head(retrained(net, b.params, np.random.default_rng(8)), net, pools)
    frames = random_frames(net, np.random.default_rng(9), 2)
    stats = b.run(
        params, frames, shuffle=True, writes=b.dut.param_writes(params), test_name=f"w{pools}"
    )
    for k, pool in enumerate(pools):
        port = names.output_port(names.head_group(k))
        w, h = net.output_size()
        assert stats["received"][port] == 2 * (1 if pool else w * h)
    # The check can fail: without the writes, the power-up parameters answer.
    with pytest.raises(SimulationMismatch):
        b.run(params, frames[:1], shuffle=True, test_name=f"bad{pools}")


def test_head_build_time_constants_are_checked(built):
    """``param_writes`` refuses parameters whose build-time head constants differ."""
    b = built("single")
    p = b.params["head.g0"]
    other = {**b.params, "head.g0": dataclasses.replace(p, pwl_shift=p.pwl_shift + 1)}
    with pytest.raises(
        ValueError,
        match=r"head.g0.pwl_shift: \d+, but the hardware was built with \d+ \(a build-time",
    ):
        b.dut.param_writes(other)
    other = {**b.params, "head.g0": dataclasses.replace(p, shift=p.shift + 1)}
    with pytest.raises(
        ValueError, match=r"head.g0.shift: \d+, but the hardware was built with \d+ \(a build-time"
    ):
        b.dut.param_writes(other)


def test_head_rate_folded(built):
    """A ``--fold rate`` build: the head's groups folded to the outputs' beat period (their
    weights in phase banks), frames back to back at full rate."""
    b = built("wide", fold="rate")
    folds = {n: g.conv.fold for n, g in b.dut.head_groups()}
    assert all(f > 1 for f in folds.values()), folds
    params = with_head(b.params, b.net, (1, 0), ("relu", "random"))
    frames = random_frames(b.net, np.random.default_rng(3), 3)
    b.run(params, frames, shuffle=True, writes=b.dut.param_writes(params), test_name="rate")
    b.run(
        params,
        frames,
        shuffle=True,
        test_name="rate_nostall",
        in_stall=0,
        out_stall=0,
        writes=b.dut.param_writes(params),
    )


def test_head_swap_mid_stream(built):
    """Two parameter sets: the head's new weights, tables and sources swapped in at a frame
    boundary with the rest; every output frame, pooled ones included, is computed with
    exactly one set."""
    b = built("wide", swap=True, pools=(1, 0))
    net = b.net
    first = b.params
    rng = np.random.default_rng(4)
    second = retrained(net, first, rng)
    third = retrained(net, second, rng)
    frames = random_frames(net, np.random.default_rng(6), 6)
    swaps = [
        (12, b.writes(b.dut.param_writes(second))),
        (300, b.writes(b.dut.param_writes(third))),
    ]
    stats = run_backbone_swaps(
        b.design,
        net,
        [first, second, third],
        frames,
        swaps,
        shuffle=True,
        test_name="swap",
        seed=1,
    )
    assert len(set(stats["frame_sets"])) >= 2, stats["frame_sets"]


def test_output_beats_of_a_pooled_group():
    y = [np.array([1, -2]), np.array([3, 4])]
    lanes, sides = output_beats(y, [0, 1])
    assert lanes == [[1, -2], [3, 4]] and sides == [3, 7]
