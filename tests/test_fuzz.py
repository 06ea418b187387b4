# amaranth: UnusedElaboratable=no
"""Property-based fuzzing of network descriptions (hypothesis): legal descriptions drawn
from the description rules (sizes down to one pixel, 1-3 input channels, odd stems where
allowed, one or two stages of stride 1 or 2, any mix of cores, the shuffle, a model head of
up to two groups reading any run of the cores' outputs, some repeated up to 3 passes), int8
parameters with a layer at an extreme, frames with rows of -128 and 127.

* default suite: every drawn description is accepted, round-trips through its JSON form,
  runs in the golden model with the output shapes the description promises, and its
  hardware is constructed;
* slow (``-m slow``): a few drawn descriptions built in Verilator and run bit-exact against
  the golden model under stalls, end to end.

Examples are derandomized (the same ones every run, so CI is repeatable). When a property
fails, hypothesis shrinks the case to a minimal description and prints it: add it to
:data:`REGRESSIONS` (both tests replay every entry first) and fix the cause.
"""

import json
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from semifreddo_hw.backbone import Backbone
from semifreddo_hw.emit import to_verilog_parts
from sim.backbone import random_frames, run_backbone
from sim.golden.backbone import backbone
from sim.rtl import VerilatorDesign
from spec import names
from spec.network import network_from_dict
from weights.synthetic import random_params

#: ``(description, seed, extreme)`` replayed before the drawn cases by both tests: corners
#: worth keeping, and every minimal failing case hypothesis shrinks to (add it here).
REGRESSIONS = [
    # the smallest frame: one pixel, through a stride-2 stem and a stride-2 block
    (
        {
            "name": "fuzz",
            "width": 1,
            "height": 1,
            "channels_in": 1,
            "stem_channels": 1,
            "plan": [[[2], [2]]],
            "trainable_cores": 1,
            "frozen_core": True,
            "core_shuffle": False,
        },
        0,
        "min",
    ),
    # repeated blocks on two trainable cores (counts 2 and 1), 2x1 frames at the block,
    # a head joining the cores: frames must leave in order whatever the counts
    (
        {
            "name": "fuzz",
            "width": 3,
            "height": 2,
            "channels_in": 2,
            "stem_channels": 2,
            "plan": [[[1], [1]]],
            "trainable_cores": 2,
            "frozen_core": True,
            "core_shuffle": True,
            "trainable_repeats": 3,
            "head": [{"c_in": 4, "c_out": 3, "sources": [["a", 0]], "segments": 4}],
        },
        5,
        None,
    ),
]


@st.composite
def descriptions(draw):
    frozen = draw(st.booleans())
    trainable = draw(st.integers(0 if frozen else 1, 2))
    shuffle = trainable == 2 and draw(st.booleans())
    plan = []
    for _ in range(draw(st.integers(1, 2))):
        s = draw(st.sampled_from([1, 2]))
        f = [s] + [1] * draw(st.integers(0, 1))
        t = [s] + [1] * draw(st.integers(0, 1))
        if not frozen and draw(st.booleans()):
            f = []  # a network without a frozen core may leave its strides out
        if not trainable and draw(st.booleans()):
            t = []
        plan.append([f, t])
    first = (plan[0][0] or plan[0][1])[0]
    stems = [2, 4] + ([1, 3] if first == 2 and not shuffle else [])
    stem = draw(st.sampled_from(stems))
    d = {
        "name": "fuzz",
        "width": draw(st.integers(1, 9)),
        "height": draw(st.integers(1, 6)),
        "channels_in": draw(st.integers(1, 3)),
        "stem_channels": stem,
        "plan": plan,
        "trainable_cores": trainable,
        "frozen_core": frozen,
        "core_shuffle": shuffle,
    }
    # A model head on some: groups reading any run of the cores' outputs side by side.
    cores = (["frozen"] if frozen else []) + ["a", "b"][:trainable]
    c = stem * 2 ** sum((f or t)[0] == 2 for f, t in plan)
    head = []
    for _ in range(draw(st.integers(0, 2))):
        c_in = draw(st.integers(1, c * len(cores)))
        starts = [
            (core, ch)
            for k, core in enumerate(cores)
            for ch in range(c)
            if k * c + ch + c_in <= len(cores) * c
        ]
        sources = draw(st.lists(st.sampled_from(starts), min_size=1, max_size=2, unique=True))
        repeats = draw(st.integers(1, 3))  # a repeated group reads its own output: c -> c
        head.append(
            {
                "c_in": c_in,
                "c_out": c_in if repeats > 1 else draw(st.integers(1, 4)),
                "sources": [list(src) for src in sources],
                "segments": draw(st.integers(2, 8)),
                **({"repeats": repeats} if repeats > 1 else {}),
            }
        )
    # Repeated trainable blocks where the last trainable block is a regular one.
    if trainable and plan[-1][1][-1:] == [1]:
        repeats = draw(st.integers(1, 3))
        d |= {"trainable_repeats": repeats} if repeats > 1 else {}
    return d | ({"head": head} if head else {})


def _params(net, seed, extreme):
    """Random parameters; with ``extreme``, every weight of one layer at -128 or 127."""
    rng = np.random.default_rng(seed)
    params = random_params(net, rng)
    if extreme is not None:
        convs = net.convs()
        name = convs[seed % len(convs)].name
        p = params[name]
        params[name] = type(p)(
            np.full(p.weight.shape, -128 if extreme == "min" else 127), p.scale, p.bias, p.shift
        )
    return params


def _regressions(test):
    for d, seed, extreme in REGRESSIONS:
        test = example(d=d, seed=seed, extreme=extreme)(test)
    return test


CASES = dict(
    d=descriptions(),
    seed=st.integers(0, 2**16),
    extreme=st.sampled_from([None, "min", "max"]),
)


@settings(max_examples=12, deadline=None, derandomize=True, database=None)
@_regressions
@given(**CASES)
def test_drawn_descriptions_hold_their_promises(d, seed, extreme):
    net = network_from_dict(d)
    assert network_from_dict(net.to_dict()) == net
    params = _params(net, seed, extreme)
    frame = random_frames(net, np.random.default_rng(seed), 1)[0]
    out = backbone(net, params, frame, shuffle=net.core_shuffle)
    w, h = net.output_size()
    for core in net.cores:
        assert out[core].shape == (h, w, net.channels_after(len(net.stages))), core
        assert out[core].min() >= -128 and out[core].max() <= 127
    for k, g in enumerate(net.head):
        y, pooled = out[names.head_group(k)], params[names.head_group(k)].pool
        assert y.shape == ((g.c_out,) if pooled else (h, w, g.c_out)), k
        assert y.min() >= -128 and y.max() <= 127
    ports = set(Backbone(net, params).signature.members)
    assert ports >= {names.output_port(o) for o, _ in net.outputs()}


@pytest.mark.slow
@settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@_regressions
@given(**CASES)
def test_drawn_descriptions_run_bit_exact_in_rtl(d, seed, extreme, rtl_build_dir):
    net = network_from_dict(d)
    params = _params(net, seed, extreme)
    dut = Backbone(net, params)
    top = f"fuzz_{zlib.crc32(json.dumps([d, seed, extreme]).encode()):08x}"  # one per case
    text = to_verilog_parts(dut, top, dut.parts(top), jobs=1)
    design = VerilatorDesign.from_verilog(text, top, rtl_build_dir / top, optimize=True)
    frames = random_frames(net, np.random.default_rng(seed + 1), 2)
    for shuffle in [False, True] if net.core_shuffle else [False]:
        run_backbone(
            design,
            net,
            params,
            frames,
            shuffle=shuffle,
            test_name=f"{top}_{int(shuffle)}",
            seed=seed,
            in_stall=0.3,
            out_stall=0.3,
        )
