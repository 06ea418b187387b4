# amaranth: UnusedElaboratable=no
"""The whole backbone end to end in Verilator against the golden model: every beat of all
three core outputs, random stalls on every stream, random weights and alphas, the exact
alphas 0, 0.5 and 1, core shuffle on and off, parameters reloaded at run time, alpha = 0
independence of the trainable cores, one pixel per clock.

On the ``small`` preset's cores and widths (channels / 8, two trainable cores with the
shuffle) on two stages, 18x10 in (:data:`tests.backbone_helpers.SHORT_PLAN`): every kind of
stage, block and meeting point, on frames of odd sizes. Table 1's four stages are built,
rate-folded, in tests/test_backbone_folded.py, and the whole plan in the Table 3 presets,
the same topology at channels / 16 (tests/test_backbone_configs.py, slow); the
configurations with fewer cores have their own module
(tests/test_backbone_configs_fewer_cores.py), so that the Verilator builds spread over the
test workers.
"""

import numpy as np
import pytest
from amaranth.hdl import Fragment

from semifreddo_hw.backbone import Backbone
from sim.backbone import random_frames
from sim.golden.backbone import backbone
from spec.network import preset
from spec.params import ConvParams, check_params
from tests.backbone_helpers import (
    ONE_BLOCK_PLAN,
    SHORT_PLAN,
    build,
    reduced,
    retrained,
    with_alpha,
)
from weights.synthetic import random_params


@pytest.fixture(scope="module")
def main(rtl_build_dir):
    return build(reduced("small", SHORT_PLAN), rtl_build_dir)


def test_as_built_with_shuffle_under_stalls(main):
    frames = random_frames(main.net, np.random.default_rng(10), 2)
    main.run(main.params, frames, shuffle=True, test_name="as_built", in_stall=0.3, out_stall=0.5)


def test_parameters_reloaded_at_run_time(main):
    """Every run-time parameter rewritten through param_write (trainable weights, all
    scales and biases, alphas), shuffle off; the hardware's frozen part refuses changes."""
    rng = np.random.default_rng(11)
    new = retrained(main.net, main.params, rng)
    frames = random_frames(main.net, rng, 2)
    writes = main.dut.param_writes(new)
    end = writes[-1][0] + 1
    # In random order; each value also written first with garbage above its field's width
    # (taken modulo the width: the same value lands) and to addresses past the map and, last,
    # between its regions (ignored: a decode that aliased them would overwrite a value).
    widths = {a: r.width for r in main.dut.address_map for a in range(r.base, r.base + r.count)}
    order = rng.permutation(len(writes))
    noisy = [(end + int(k), -1) for k in range(3)]
    for k in order:
        a, v = writes[k]
        wrapped = v + (1 << widths[a]) * (1 if v < 0 else -1)
        if widths[a] < 32 and -(1 << 31) <= wrapped < (1 << 31):
            noisy.append((a, wrapped))
        noisy.append((a, v))
    gaps = sorted(set(range(end)) - set(widths))
    assert gaps  # regions of different spans leave some
    noisy += [(a, -1) for a in gaps]
    main.run(new, frames, shuffle=False, writes=noisy, test_name="reloaded")


@pytest.mark.parametrize("code", [0, 64, 128], ids=["alpha0", "alpha_half", "alpha1"])
def test_exact_alphas(main, code):
    rng = np.random.default_rng(12 + code)
    new = with_alpha(main.net, main.params, code)
    alpha = {
        a
        for r in main.dut.address_map
        if r.field == "alpha"
        for a in range(r.base, r.base + r.count)
    }
    alphas = [(a, v) for a, v in main.dut.param_writes(new) if a in alpha]
    main.run(
        new,
        random_frames(main.net, rng, 2),
        shuffle=bool(code % 128),
        writes=alphas,
        test_name=f"alpha{code}",
    )


def test_alpha_zero_trainable_cores_ignore_the_frozen_core(main):
    """With every alpha 0, silencing the frozen core (all its scales and biases 0, so its
    features are all 0) changes its output but not the trainable cores' outputs."""
    net = main.net
    base = with_alpha(net, main.params, 0)
    silenced = dict(base)
    for spec in net.convs():
        if spec.frozen:
            p = base[spec.name]
            silenced[spec.name] = ConvParams(p.weight, 0 * p.scale, 0 * p.bias, p.shift)
    frames = random_frames(net, np.random.default_rng(13), 2)
    for f in frames:  # the golden model agrees before the hardware is asked
        g0 = backbone(net, base, f, shuffle=True)
        g1 = backbone(net, silenced, f, shuffle=True)
        assert not np.array_equal(g0["frozen"], g1["frozen"])
        for core in ("a", "b"):
            assert np.array_equal(g0[core], g1[core])
    main.run(
        silenced,
        frames,
        shuffle=True,
        writes=main.dut.param_writes(silenced),
        test_name="alpha0_silenced",
    )


def test_one_pixel_per_clock(main):
    """No stalls: each extra back-to-back frame costs exactly width * height cycles, so no
    balancing FIFO ever runs dry or full. The outputs are balanced, not aligned
    (docs/backbone.md): the trainable cores' beats leave first, together (their stages are
    shorter than the frozen core's, in the presets' plan and in the tests' smaller ones)."""
    one, three = main.back_to_back(14)
    for stats in (one, three):
        first = stats["first_output_cycle"]
        assert first["o_a"] == first["o_b"] < first["o_frozen"], first
    assert three["cycles"] - one["cycles"] == 2 * main.net.width * main.net.height


def test_address_map_is_aligned_and_complete(main):
    net, dut = main.net, main.dut
    regions = dut.address_map
    assert regions[0].base == 0
    for a, b in zip(regions, regions[1:], strict=False):
        # in network order, each at the first multiple of its span after the one before
        span = 1 << (b.count - 1).bit_length()
        assert b.base % span == 0 and a.base + a.count <= b.base < a.base + a.count + span
    assert dut.bus.size == regions[-1].base + regions[-1].count
    fields = {(r.layer, r.field) for r in regions}
    for spec in net.convs():
        assert (spec.name, "scale") in fields and (spec.name, "bias") in fields
        assert ((spec.name, "weight") in fields) == (not spec.frozen)
    assert {r.layer for r in regions if r.field == "alpha"} == {b.name for b in net.blends()}
    writes = dut.param_writes(main.params)
    assert [a for a, _ in writes] == [a for r in regions for a in range(r.base, r.base + r.count)]


def test_param_writes_refuse_build_time_changes(main):
    net, params = main.net, main.params
    p = params["frozen.m1.1.pw"]
    w = p.weight.copy()
    w[0, 0] ^= 1
    with pytest.raises(ValueError, match="frozen.m1.1.pw.weight: differs"):
        main.dut.param_writes({**params, "frozen.m1.1.pw": ConvParams(w, p.scale, p.bias, p.shift)})
    q = params["a.m1.0.b1_pw"]
    with pytest.raises(ValueError, match=r"a.m1.0.b1_pw.shift: 3, but .* built with 16"):
        main.dut.param_writes({**params, "a.m1.0.b1_pw": ConvParams(q.weight, q.scale, q.bias, 3)})
    assert net.cores == ("frozen", "a", "b")


def test_report_counts(main):
    r = main.dut.report()
    net = main.net
    assert r["frozen_weights"] == net.frozen_weights
    assert r["configurable_weights"] == 2 * net.trainable_weights_per_core
    assert r["multipliers"] == r["configurable_weights"]
    assert all(b["trainable"] > 0 for b in r["balance"])


def test_one_frozen_block_a_stage(rtl_build_dir):
    """A frozen stage of one block: the slice ``frozen_m<i>_cross`` and a relay in front
    of it, built and counted (bit-exact under stalls, the shuffle on)."""
    built = build(reduced("small", ONE_BLOCK_PLAN), rtl_build_dir, relays=1)
    dut = built.dut
    assert [dut._frozen_split(i) for i in range(2)] == [0, 0]
    names = {name for _, name, _ in Fragment.get(dut, None).subfragments}
    assert {"frozen_m1_cross", "frozen_m1_relay0", "frozen_m2_cross"} <= names
    frames = random_frames(built.net, np.random.default_rng(12), 2)
    built.run(
        built.params, frames, shuffle=True, test_name="one_block", in_stall=0.3, out_stall=0.5
    )


def test_bad_parameters_are_named():
    net = preset("small")
    params = random_params(net, np.random.default_rng(0))
    bad = dict(params)
    del bad["a.m2.alpha"]
    with pytest.raises(ValueError, match="a.m2.alpha: missing"):
        check_params(net, bad)
    p = params["frozen.m1.0.b0_pw"]
    bad = {**params, "frozen.m1.0.b0_pw": ConvParams(p.weight[:, :3], p.scale, p.bias, 16)}
    with pytest.raises(ValueError, match=r"frozen.m1.0.b0_pw.weight: shape \(4, 3\)"):
        Backbone(net, bad)
    bad = {**params, "b.m4.alpha": np.full(16, 129)}
    with pytest.raises(ValueError, match="b.m4.alpha: values must lie in"):
        check_params(net, bad)
    bad = {**params, "frozen.m9.0.dw": p}
    with pytest.raises(ValueError, match="no such layer"):
        check_params(net, bad)
