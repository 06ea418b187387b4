# amaranth: UnusedElaboratable=no
"""Repeated head groups (paper §3.4) against the golden twin in Verilator: a group built for
up to four passes beside a plain one, every pass with its own written weights, scales,
biases and table, run with each count 1-4, spatial and folded, one and two parameter sets
(the count switched per frame with the epoch), every output beat compared under random
stalls; and the group's loop keeping the rate where its beats are spaced."""

import dataclasses
import functools

import numpy as np
import pytest

from semifreddo_hw.head import Head, HeadGroup
from sim.errors import SimulationMismatch
from sim.rtl import VerilatorDesign
from spec.params import HeadPassParams
from tests.test_head import _frames, random_group
from tests.test_head import _run as run_head
from tests.test_head import build_group as head_group_of

REPEATS = 4

#: name: per group (c_in, c_out, sources, fold, segments, repeats)
LAYOUTS = {
    "spatial": [(6, 6, (0, 6), 1, 8, REPEATS), (4, 3, (8,), 1, 4, 1)],
    "folded": [(6, 6, (0, 4), 3, 8, REPEATS), (4, 4, (0,), 2, 4, 1)],
}


def random_passes(rng, c, segments, n):
    """``n`` later passes' parameters of a ``c``-channel group (random tables)."""
    out = []
    for _ in range(n):
        q = random_group(rng, c, c, (0,), segments, table="random", pool=0)
        out.append(HeadPassParams(q.weight, q.scale, q.bias, *q.table()))
    return out


def _ints(a):
    return [int(v) for v in a]


def build_group(layout, p, passes, sets):
    return head_group_of(
        layout,
        p,
        sets,
        repeats=layout[5],
        repeat_init=min(2, layout[5]),
        pass_init=[(q.weight, _ints(q.scale), _ints(q.bias), q.table()) for q in passes],
    )


def writes_of(head, k, p, passes, set_=0):
    """``(port, fields)`` writes loading group ``k`` of ``head`` with ``p`` (its count
    included) and its later ``passes``, epoch set ``set_``."""
    g = head.groups[k]
    out = []
    for j, q in enumerate([p, *passes]):
        bank_set = j * g.sets + set_
        fields = [
            ("weight", g.conv.product.bank, None, q.weight),
            ("scale", g.conv.requant.scales, None, q.scale),
            ("bias", g.conv.requant.biases, None, q.bias),
            ("breakpoint", g.pwl.breakpoints, None, q.breakpoints),
            ("slope", g.pwl.slopes, None, q.slopes),
            ("intercept", g.pwl.intercepts, None, q.intercepts),
        ]
        if j == 0:
            fields += [
                ("pool", g.pool_bank, set_, [p.pool]),
                ("source", g.source_bank, set_, [p.source]),
            ]
            if g.repeat_bank is not None:
                fields.append(("repeat", g.repeat_bank, set_, [p.repeat]))
        for field, bank, s, values in fields:
            s = bank_set if s is None else s
            if field == "weight":
                items = [(g.conv.weight_index(co, ci), v) for (co, ci), v in np.ndenumerate(values)]
            else:
                items = [(bank.address(c), v) for c, v in enumerate(values)]
            for index, v in items:
                f = {"index": index, "value": int(v)} | ({"set": s} if bank.sets > 1 else {})
                out.append((f"g{k}_{field}_write", f))
    return out


def random_set(rng, layout, *, pool, repeat):
    """Per group ``(params, passes)``: random tables, the repeated groups' count ``repeat``."""
    out = []
    for k, (c_in, c_out, src, _, seg, reps) in enumerate(layout):
        p = random_group(rng, c_in, c_out, src, seg, table="random", pool=(pool + k) % 2)
        if reps > 1:
            p = dataclasses.replace(p, repeat=repeat)
        out.append((p, random_passes(rng, c_out, seg, reps - 1)))
    return out


@pytest.fixture(scope="module")
def heads(rtl_build_dir):
    @functools.cache
    def get(name, sets):
        rng = np.random.default_rng(5)
        layout = LAYOUTS[name]
        boot = random_set(rng, layout, pool=1, repeat=2)
        head = Head([build_group(g, p, q, sets) for g, (p, q) in zip(layout, boot, strict=True)])
        return head, VerilatorDesign.build(head, f"head_repeat_{name}_s{sets}", rtl_build_dir)

    return get


def _run(design, head, layout, frames, epochs, sets, stall, seed, expect=None):
    """Write every set of ``sets`` (per epoch, per group ``(params, passes)``), stream, and
    compare with the golden model under ``expect`` (default: ``sets``)."""
    writes = [
        w
        for e, groups in enumerate(sets)
        for k, (p, passes) in enumerate(groups)
        for w in writes_of(head, k, p, passes, e)
    ]
    return run_head(design, head, layout, frames, epochs, expect or sets, writes, stall, seed)


@pytest.mark.parametrize("name", list(LAYOUTS))
@pytest.mark.parametrize("repeat", range(1, REPEATS + 1))
def test_repeated_group_every_count(heads, name, repeat):
    """Counts 1-4: every pass's parameters written over the power-up image, frames streamed
    with stalls (per pixel; then pooled)."""
    head, design = heads(name, 1)
    layout = LAYOUTS[name]
    rng = np.random.default_rng(17 * repeat + len(name))
    for seed, pool in enumerate((0, 1)):
        sets = [random_set(rng, layout, pool=pool, repeat=repeat)]
        _run(design, head, layout, _frames(rng, 2), [0, 0], sets, 0.3, seed)


def test_repeated_group_two_sets_switch_the_count_per_frame(heads):
    """Two parameter sets with counts 3 and 1 (and their own passes), frames alternating."""
    head, design = heads("folded", 2)
    layout = LAYOUTS["folded"]
    rng = np.random.default_rng(23)
    sets = [random_set(rng, layout, pool=0, repeat=r) for r in (3, 1)]
    _run(design, head, layout, _frames(rng, 4), [0, 1, 1, 0], sets, 0.3, 4)


def test_repeated_group_detects_a_wrong_count(heads):
    """The check can fail: expecting 3 passes where the hardware was told 4."""
    head, design = heads("spatial", 1)
    layout = LAYOUTS["spatial"]
    rng = np.random.default_rng(29)
    sets = [random_set(rng, layout, pool=0, repeat=4)]
    wrong = [[(dataclasses.replace(p, repeat=3) if q else p, q) for p, q in sets[0]]]
    with pytest.raises(SimulationMismatch, match="o0: output beat"):
        _run(design, head, layout, _frames(rng, 1), [0], sets, 0.0, 6, expect=wrong)


def test_repeated_group_checks_its_parameters():
    w = np.zeros((4, 4), int)
    with pytest.raises(ValueError, match="pass_init"):
        HeadGroup(8, (0,), w, width=2, height=2, shift=0, repeats=3)
    with pytest.raises(ValueError, match="repeat_init"):
        HeadGroup(8, (0,), w, width=2, height=2, shift=0, repeats=2, repeat_init=3, pass_init=[])
    with pytest.raises(ValueError, match="c_in == c_out"):
        table = ([0] * 7, [0] * 8, [0] * 8)
        HeadGroup(
            8,
            (0,),
            np.zeros((3, 4), int),
            width=2,
            height=2,
            shift=0,
            scale_init=[0] * 3,
            bias_init=[0] * 3,
            repeats=2,
            pass_init=[(np.zeros((3, 4), int), [0] * 3, [0] * 3, table)],
        )
