"""A backbone whose trainable cores repeat their last block (paper §3.4), end to end in
Verilator against the golden model: pass counts 1-4 written through the parameter bus (the
two cores' counts differing, a head joining them), spatial and rate-folded builds (the
folded one at full input rate too), a mid-stream swap between sets of different counts, the
description and the weight files."""

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


def repeat_net(head=True):
    """The two-trainable-core configuration on :data:`SHORT_PLAN` (its last stage one
    regular block per trainable core) with that block built for four passes, and a head
    group reading both trainable cores (so that their outputs are joined)."""
    net = reduced("two_cores_shuffle", SHORT_PLAN)
    c = net.channels_after(len(net.stages))
    groups = (HeadGroupSpec(2 * c, 5, (("a", 0),)),) if head else ()
    return dataclasses.replace(net, name="block_repeat", trainable_repeats=REPEATS, head=groups)


def with_counts(net, params, a, b):
    ca, cb = net.repeat_counts()
    return {**params, ca: a, cb: b}


@pytest.fixture(scope="module")
def built(rtl_build_dir):
    net = repeat_net()
    return builds(
        net, with_counts(net, random_params(net, np.random.default_rng(5)), 2, 2), rtl_build_dir
    )


def test_description_round_trips_the_repeats():
    net = repeat_net()
    assert network_from_dict(net.to_dict()) == net
    assert net.to_dict()["trainable_repeats"] == REPEATS
    assert "trainable_repeats" not in reduced("two_cores", SHORT_PLAN).to_dict()
    assert net.repeated_block() == (2, 0)
    assert net.repeat_counts() == ["a.m2.0.repeat", "b.m2.0.repeat"]
    assert [c.name for c in net.pass_convs()][:2] == ["a.m2.0.pass1.dw", "a.m2.0.pass1.pw"]
    with pytest.raises(ValueError, match="regular .stride 1. block, not a downsampling"):
        dataclasses.replace(reduced("two_cores", [[[2], [2]]]), trainable_repeats=2)
    with pytest.raises(ValueError, match="trainable_repeats must be an integer in 1..8"):
        dataclasses.replace(net, trainable_repeats=9)
    with pytest.raises(ValueError, match="needs a trainable core"):
        dataclasses.replace(reduced("frozen_only", SHORT_PLAN), trainable_repeats=2)
    d = net.to_dict() | {"trainable_repeats": "2"}
    with pytest.raises(ValueError, match="'trainable_repeats' must be int"):
        network_from_dict(d)


def test_parameters_of_every_pass_are_checked():
    net = repeat_net()
    params = random_params(net, np.random.default_rng(1))
    check_params(net, params)
    name = names.block_pass("b", 2, 0, 2, "pw")
    bad = {**params, name: dataclasses.replace(params[name], shift=params[name].shift - 1)}
    with pytest.raises(ValueError, match="b.m2.0.pass2.pw.shift: .* every pass shares"):
        check_params(net, bad)
    with pytest.raises(ValueError, match="a.m2.0.repeat: an integer in 1..4"):
        check_params(net, with_counts(net, params, 5, 1))
    with pytest.raises(ValueError, match="a.m2.0.pass1.dw: missing"):
        check_params(net, {k: v for k, v in params.items() if k != "a.m2.0.pass1.dw"})


@pytest.mark.parametrize("counts", [(1, 1), (2, 1), (3, 2), (4, 3), (1, 4)])
def test_pass_counts_written_through_the_bus(built, counts):
    """Power up with counts 2 and 2; write every pass's parameters and other counts through
    ``param_write``; stream frames under stalls: every output beat as the golden model."""
    b = built()
    net = b.net
    params = with_counts(net, retrained(net, b.params, np.random.default_rng(sum(counts))), *counts)
    frames = random_frames(net, np.random.default_rng(9 + counts[0]), 2)
    name = "n{}{}".format(*counts)
    b.run(params, frames, shuffle=True, writes=b.dut.param_writes(params), test_name=name)
    if counts == (3, 2):  # the check can fail: one pass fewer expected on core a
        with pytest.raises(SimulationMismatch):
            b.run(
                with_counts(net, params, 2, 2),
                frames[:1],
                shuffle=True,
                writes=b.dut.param_writes(params),
                test_name="fewer",
            )


def test_pass_counts_rate_folded_at_full_rate(built):
    """A ``--fold rate`` build (the repeated block folded for its passes' share of the
    period): every count at full input rate (no stalls) and under stalls."""
    b = built("rate")
    net = b.net
    for count in range(1, REPEATS + 1):
        params = with_counts(net, b.params, count, REPEATS + 1 - count)
        frames = random_frames(net, np.random.default_rng(count), 2)
        b.run_with_and_without_stalls(params, frames, test_name=f"r{count}")


def test_pass_count_swapped_mid_stream(built):
    """Two parameter sets: the power-up one (counts 2), swapped for counts 1 and 4, then 4
    and 1: every output frame computed with exactly one set (its counts included)."""
    b = built(swap=True)
    net = b.net
    rng = np.random.default_rng(4)
    first = b.params
    second = with_counts(net, retrained(net, first, rng), 1, 4)
    third = with_counts(net, retrained(net, second, rng), 4, 1)
    frames = random_frames(net, np.random.default_rng(6), 6)
    swaps = [
        (12, b.writes(b.dut.param_writes(second))),
        (300, b.writes(b.dut.param_writes(third))),
    ]
    stats = run_backbone_swaps(
        b.design, net, [first, second, third], frames, swaps, shuffle=True, test_name="swap", seed=1
    )
    assert len(set(stats["frame_sets"])) >= 2, stats["frame_sets"]


def test_weight_files_carry_every_pass(tmp_path):
    """Int8 files hold the counts and each later pass's own layers, and read back equal; a
    missing pass entry, a count past the build's passes and a pass's shift that differs are
    refused with the entry named; a float file is refused."""
    net = repeat_net(head=False)
    params = with_counts(net, random_params(net, np.random.default_rng(2)), 3, 1)
    frozen, path = tmp_path / "f.npz", tmp_path / "t.npz"
    save_frozen(frozen, net, params)
    save_trainable(path, net, params)
    with np.load(path) as z:
        arrays = dict(z)
    assert int(arrays["a.m2.0.repeat"]) == 3 and int(arrays["b.m2.0.repeat"]) == 1
    back = load_weights(frozen, path).params
    for c in net.pass_convs():
        for field in ("weight", "scale", "bias"):
            assert np.array_equal(getattr(back[c.name], field), getattr(params[c.name], field))
    assert back["a.m2.0.repeat"] == 3
    bare = load_weights(frozen).params  # power-up without a trainable file: count 1
    assert bare["a.m2.0.repeat"] == 1 and "b.m2.0.pass2.pw" in bare

    def broken(change, match):
        a = dict(arrays)
        change(a)
        np.savez(tmp_path / "bad.npz", **a)
        with pytest.raises((WeightFileError, ValueError), match=match):
            check_params(net, load_weights(frozen, tmp_path / "bad.npz").params)

    broken(lambda a: a.pop("a.m2.0.pass2.dw.bias"), "a.m2.0.pass2.dw.bias")
    broken(lambda a: a.__setitem__("b.m2.0.repeat", np.array(5, np.uint8)), "b.m2.0.repeat")
    broken(lambda a: a.__setitem__("a.m2.0.pass1.pw.shift", np.array(3, np.int8)), "pass1.pw")

    # A float file pair of the same network (its trainable file written as for one pass,
    # then given the repeated description): refused, float weights describe one pass.
    flat = dataclasses.replace(net, trainable_repeats=1)
    pixels = np.random.default_rng(1).integers(0, 256, (2, net.height, net.width, 3), np.uint8)
    fp = random_float_params(flat, np.random.default_rng(7), pixels)
    save_frozen(tmp_path / "ff.npz", net, fp)
    save_trainable(tmp_path / "ft.npz", flat, fp)
    with np.load(tmp_path / "ft.npz") as z, np.load(tmp_path / "ff.npz") as f:
        floats = dict(z) | {"network": f["network"]}
    np.savez(tmp_path / "ft.npz", **floats)
    with pytest.raises(WeightFileError, match="repeated .4 passes.* give int8 weights"):
        load_weights(tmp_path / "ff.npz", tmp_path / "ft.npz")
