"""A backbone whose head has a repeated group (paper §3.4), end to end in Verilator against
the golden model: repeat counts 1-4, each with every pass's parameters written through the
one parameter bus; spatial and rate-folded builds (the folded one at full input rate); a
mid-stream swap between sets of different counts; the description and weight files."""

import dataclasses

import numpy as np
import pytest

from sim.backbone import random_frames, run_backbone_swaps
from sim.errors import SimulationMismatch
from spec import names
from spec.network import HeadGroupSpec, network_from_dict
from spec.params import check_params
from tests.backbone_helpers import SHORT_PLAN, builds, reduced, retrained
from weights.files import WeightFileError, load_weights, save_frozen, save_trainable
from weights.synthetic import random_float_params, random_params

REPEATS = 4


def repeat_net():
    """The two-trainable-core configuration on :data:`SHORT_PLAN` with a head: group 0 reads
    a whole core (any of three) and is built for up to four passes; group 1 reads half of
    ``a`` or ``b`` once."""
    net = reduced("two_cores_shuffle", SHORT_PLAN)
    c = net.channels_after(len(net.stages))
    head = (
        HeadGroupSpec(c, c, (("frozen", 0), ("a", 0), ("b", 0)), repeats=REPEATS),
        HeadGroupSpec(c // 2, 3, (("a", c // 2), ("b", 0)), segments=4),
    )
    return dataclasses.replace(net, name="head_repeat", head=head)


def with_repeat(params, count, pool=0):
    g0 = names.head_group(0)
    return {**params, g0: dataclasses.replace(params[g0], repeat=count, pool=pool)}


@pytest.fixture(scope="module")
def built(rtl_build_dir):
    net = repeat_net()
    return builds(net, with_repeat(random_params(net, np.random.default_rng(5)), 2), rtl_build_dir)


def test_description_round_trips_the_repeats():
    net = repeat_net()
    assert network_from_dict(net.to_dict()) == net
    assert net.to_dict()["head"][0]["repeats"] == REPEATS
    assert "repeats" not in net.to_dict()["head"][1]  # written only when repeated
    with pytest.raises(ValueError, match="c_in .* must equal c_out"):
        dataclasses.replace(net, head=(dataclasses.replace(net.head[1], repeats=2),))
    with pytest.raises(ValueError, match="repeats must be an integer in 1..8"):
        dataclasses.replace(net, head=(dataclasses.replace(net.head[0], repeats=9),))


@pytest.mark.parametrize("count", range(1, REPEATS + 1))
def test_repeat_counts_written_through_the_bus(built, count):
    """Power up with count 2; write other parameters (every pass's, and count ``count``)
    through ``param_write``; stream frames under stalls: every output beat as the golden
    model (the pooled group's one vector per frame too, for even counts)."""
    b = built()
    net = b.net
    params = with_repeat(retrained(net, b.params, np.random.default_rng(count)), count, count % 2)
    frames = random_frames(net, np.random.default_rng(9 + count), 2)
    b.run(params, frames, shuffle=True, writes=b.dut.param_writes(params), test_name=f"n{count}")
    if count == REPEATS:  # the check can fail: one pass fewer expected
        with pytest.raises(SimulationMismatch):
            b.run(
                with_repeat(params, count - 1, count % 2),
                frames[:1],
                shuffle=True,
                writes=b.dut.param_writes(params),
                test_name="fewer",
            )


def test_repeat_counts_rate_folded_at_full_rate(built):
    """A ``--fold rate`` build: the repeated group folded to its beats' period, each count
    at full input rate (no stalls) and under stalls."""
    b = built("rate")
    net = b.net
    for count in range(1, REPEATS + 1):
        params = with_repeat(b.params, count)
        frames = random_frames(net, np.random.default_rng(count), 2)
        b.run_with_and_without_stalls(params, frames, test_name=f"r{count}")


def test_repeat_count_swapped_mid_stream(built):
    """Two parameter sets: the power-up one (count 2), swapped for count 1, then 4: every
    output frame computed with exactly one set (its count included)."""
    b = built(swap=True)
    net = b.net
    rng = np.random.default_rng(4)
    first = b.params
    second = with_repeat(retrained(net, first, rng), 1)
    third = with_repeat(retrained(net, second, rng), 4)
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


def test_weight_files_carry_every_pass(tmp_path):
    """Int8 files hold the count and each later pass's own entries, and read back equal;
    a missing pass entry, a count past the build's passes and a float file are refused
    with the entry named."""
    net = repeat_net()
    params = with_repeat(random_params(net, np.random.default_rng(2)), 3)
    check_params(net, params)
    frozen, path = tmp_path / "f.npz", tmp_path / "t.npz"
    save_frozen(frozen, net, params)
    save_trainable(path, net, params)
    with np.load(path) as z:
        arrays = dict(z)
    assert "head.g0.repeat" in arrays and "head.g1.repeat" not in arrays
    for j in range(1, REPEATS):
        assert f"head.g0.pass{j}.weight" in arrays and f"head.g0.pass{j}.shift" not in arrays
    assert not any(k.startswith("head.g1.pass") for k in arrays)
    back = load_weights(frozen, path).params
    assert back["head.g0"].repeat == 3
    for j in range(1, REPEATS):
        name = names.head_pass(0, j)
        for field in ("weight", "scale", "bias", "breakpoints", "slopes", "intercepts"):
            assert np.array_equal(getattr(back[name], field), getattr(params[name], field))
    # Power-up without a trainable file: every pass present, count 1.
    assert load_weights(frozen).params["head.g0"].repeat == 1

    def broken(change, match):
        a = dict(arrays)
        change(a)
        np.savez(tmp_path / "bad.npz", **a)
        with pytest.raises(WeightFileError, match=match):
            load_weights(frozen, tmp_path / "bad.npz")

    broken(lambda a: a.pop("head.g0.pass2.pwl_slope"), "head.g0.pass2.pwl_slope")
    broken(lambda a: a.__setitem__("head.g0.repeat", np.array(5, np.uint8)), "head.g0.repeat")
    broken(lambda a: a.__setitem__("head.g0.pass1.shift", np.array(3, np.int8)), "pass1.shift")


def test_float_files_of_a_repeated_group_are_refused(tmp_path):
    """Float weights describe one pass: a repeated group needs int8 files, and says so."""
    net = repeat_net()
    pixels = np.random.default_rng(1).integers(0, 256, (2, net.height, net.width, 3), np.uint8)
    fp = random_float_params(net, np.random.default_rng(7), pixels)
    save_frozen(tmp_path / "f.npz", net, fp)
    save_trainable(tmp_path / "t.npz", net, fp)
    with pytest.raises(WeightFileError, match="head group 0 is repeated .* give int8 weights"):
        load_weights(tmp_path / "f.npz", tmp_path / "t.npz")
