"""The shift-add planner: exactness, zero weights, sharing, schedule, cache.

Exactness is checked by running each graph on integer vectors (:func:`evaluate`, Python
ints, adder by adder) against ``W @ x`` in Python ints: independent of the coefficient
algebra (``node_coefficients``) that the planners' own check uses."""

import json

import numpy as np
import pytest

from semifreddo_hw import cache, cmvm
from semifreddo_hw.adder_graph import AdderGraph, PlanError, Term, signed_width, sum_tree
from semifreddo_hw.cmvm import csd_digits, plan_cmvm, plan_depthwise
from weights.synthetic import gaussian_int8


def evaluate(g: AdderGraph, x: list[int]) -> list[int]:
    """The graph's outputs for input vector ``x``, computed adder by adder."""
    values = list(x)

    def term(t):
        v = values[t.node] << t.shift
        return -v if t.neg else v

    for a, b in g.adds:
        values.append(term(a) + term(b))
    return [0 if t is None else term(t) for t in g.outputs]


def assert_computes(g: AdderGraph, w, rng, vectors=20):
    """``g`` gives ``w @ x`` for random int8 vectors and the extreme ones."""
    n_in = w.shape[1]
    xs = [
        [-128] * n_in,
        [127] * n_in,
        [(-128, 127)[i % 2] for i in range(n_in)],
        *rng.integers(-128, 128, size=(vectors, n_in)).tolist(),
    ]
    for x in xs:
        want = [sum(int(w[j, i]) * int(x[i]) for i in range(n_in)) for j in range(len(w))]
        assert evaluate(g, x) == want, x


@pytest.mark.parametrize("value", list(range(-300, 301)) + [2**20 - 1, -(2**20) + 3])
def test_csd_digits_reconstruct_and_are_canonical(value):
    digits = csd_digits(value)
    assert sum((-1 if neg else 1) << s for s, neg in digits) == value
    shifts = [s for s, _ in digits]
    assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:], strict=False)), "adjacent digits"


def test_signed_width_is_minimal():
    for lo in range(-70, 70):
        for hi in range(lo, 70):
            w = signed_width(lo, hi)
            assert -(1 << (w - 1)) <= lo and hi < 1 << (w - 1)
            assert w == 1 or not (-(1 << (w - 2)) <= lo and hi < 1 << (w - 2))


@pytest.mark.parametrize("solver", ["csd", "da4ml"])
@pytest.mark.parametrize(
    "shape,zeros",
    [((1, 1), 0), ((1, 9), 0.3), ((9, 1), 0.5), ((5, 7), 0.6), ((16, 16), 0.9), ((32, 24), 0.3)],
)
def test_plans_are_exact(solver, shape, zeros):
    rng = np.random.default_rng([*shape, int(zeros * 100)])
    w = gaussian_int8(rng, *shape, zeros)
    g = plan_cmvm(w, solver, use_cache=False)
    assert_computes(g, w, rng)
    assert np.array_equal(g.matrix().astype(np.int64), w)


@pytest.mark.parametrize("solver", ["csd", "da4ml"])
def test_depthwise_plans_and_sum_trees_are_exact(solver):
    """A depthwise layer's inputs are tap-major (lane ``tap * C + c``, as the window gives
    them); channel 2 is all zero."""
    rng = np.random.default_rng(11)
    k = gaussian_int8(rng, 5, 9, 0.3)
    k[2] = 0
    matrix = np.zeros((5, 45), np.int64)
    for c in range(5):
        matrix[c, np.arange(9) * 5 + c] = k[c]
    assert_computes(plan_depthwise(k, solver, use_cache=False), matrix, rng)
    for n in (1, 2, 7):
        assert_computes(sum_tree(n), np.ones((1, n), np.int64), rng)


@pytest.mark.parametrize("solver", ["csd", "da4ml"])
def test_extreme_and_degenerate_matrices(solver):
    for w in (
        np.full((6, 6), -128),
        np.full((6, 6), 127),
        np.zeros((4, 3), int),
        np.array([[0, -128, 127, 0], [0, 0, 0, 0], [1, -1, 64, -64]]),
    ):
        g = plan_cmvm(w, solver, use_cache=False)
        assert_computes(g, w, np.random.default_rng(0))
        for j in range(w.shape[0]):
            assert (g.outputs[j] is None) == (not w[j].any())
    assert plan_cmvm(np.zeros((4, 3), int), solver, use_cache=False).adders == 0


@pytest.mark.parametrize("solver", ["csd", "da4ml"])
def test_zero_weights_add_no_adders(solver):
    rng = np.random.default_rng(7)
    w = gaussian_int8(rng, 12, 10, 0.4)
    # Interleave all-zero rows and columns: the plan must cost exactly the same.
    padded = np.zeros((20, 17), np.int64)
    rows = np.sort(rng.choice(20, size=12, replace=False))
    cols = np.sort(rng.choice(17, size=10, replace=False))
    padded[np.ix_(rows, cols)] = w
    assert (
        plan_cmvm(padded, solver, use_cache=False).adders
        == plan_cmvm(w, solver, use_cache=False).adders
    )
    # CSD: adders are exactly (signed digits - 1) per nonzero row, whatever the zeros.
    if solver == "csd":
        digits = [sum(len(csd_digits(v)) for v in row) for row in w]
        assert plan_cmvm(w, "csd").adders == sum(d - 1 for d in digits if d)


def test_da4ml_shares_and_beats_naive_on_trained_like_weights():
    w = gaussian_int8(np.random.default_rng(1), 32, 32)
    naive, shared = plan_cmvm(w, "csd"), plan_cmvm(w, "da4ml", use_cache=False)
    assert shared.adders < 0.7 * naive.adders


def test_wrong_plans_are_caught():
    w = np.array([[3, 5]])
    g = plan_cmvm(w, "csd")
    with pytest.raises(PlanError, match=r"W\[0,"):
        g.check(np.array([[3, 4]]))
    bad = AdderGraph(2, ((Term(0), Term(5)),), (Term(2),))
    with pytest.raises(PlanError, match="bad operand"):
        bad.check(np.array([[1, 1]]))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="2-D"):
        plan_cmvm(np.zeros(3, int))
    with pytest.raises(TypeError, match="integers"):
        plan_cmvm(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="solver"):
        plan_cmvm(np.zeros((2, 2), int), "magic")


def test_schedule_and_register_bits_match_hand_count():
    # y0 = x0 + x1 + x2 + x3 (depth 2), y1 = x0 (depth 0), y2 = -(x0 + x1)
    g = sum_tree(4)
    assert g.depth == 2 and g.adders == 3
    s = g.schedule(1)
    assert s.stages == 2
    # bank 1: x0+x1 (9 bits), x2+x3 (9 bits); bank 2: the sum (10 bits)
    assert g.pipelined(1, -128, 127).register_bits == 9 + 9 + 10
    # one stage of two levels: only the output register
    assert g.schedule(2).stages == 1 and g.pipelined(2, -128, 127).register_bits == 10
    with pytest.raises(ValueError, match="levels_per_stage"):
        g.schedule(0)
    # A level of logic in front of the inputs: the first stage holds one adder level less.
    assert g.schedule(1, input_levels=1).stages == 3
    assert g.pipelined(1, -128, 127, input_levels=1).register_bits == 4 * 8 + 9 + 9 + 10
    assert g.schedule(2, input_levels=1).stages == 2
    assert g.pipelined(2, -128, 127, input_levels=1).register_bits == 9 + 9 + 10
    # As many as a stage holds: the inputs are registered before any adder.
    assert g.schedule(2, input_levels=2).node_stage[4:] == [2, 2, 2]
    assert g.pipelined(2, -128, 127, input_levels=2).register_bits == 4 * 8 + 10
    with pytest.raises(ValueError, match="input_levels must be an integer in 0..2"):
        g.schedule(2, input_levels=3)


def _held_bits(g, levels, lo, hi, input_levels=0):
    """Register bits from the schedule: each node held from the bank after the stage that
    computes it (inputs: bank 1) to the last bank that reads it; each negated output held
    from its stage to the last bank."""
    sched = g.schedule(levels, input_levels)
    nlo, nhi = g.node_ranges(lo, hi)
    bits = 0
    for n in range(g.n_nodes):
        first = sched.node_stage[n] if n >= g.n_in else 1
        bits += signed_width(nlo[n], nhi[n]) * max(0, sched.node_need[n] - first + 1)
    for t, s in zip(g.outputs, sched.neg_stage, strict=True):
        if t is not None and t.neg:
            bits += signed_width(-nhi[t.node], -nlo[t.node]) * (sched.stages - s + 1)
    return bits


@pytest.mark.parametrize("levels, input_levels", [(1, 0), (2, 0), (3, 0), (1, 1), (3, 1), (3, 3)])
@pytest.mark.parametrize("solver", ["csd", "da4ml"])
def test_pipelined_logic_follows_the_schedule(levels, input_levels, solver):
    """What a backend builds: operands before users, as many register bits as the schedule
    says each node is held (counted from the schedule, not from the ops), unique names,
    every output after ``stages`` register banks on every path; ``input_levels`` of the
    first stage taken from the adders (all of them: no adder reads an unregistered input)."""
    w = gaussian_int8(np.random.default_rng(levels), 9, 7, 0.4)
    w[3] = 0
    w[5] = -w[5]
    g = plan_cmvm(w, solver)
    plan = g.pipelined(levels, -128, 127, input_levels)
    sched = g.schedule(levels, input_levels)
    assert plan.stages == sched.stages
    assert plan.stages == -(-(g.depth + input_levels) // levels)
    adds = [op for op in plan.ops if op.kind == "add"]
    reads_input = any(plan.ops[a[0]].kind == "in" for op in adds for a in op.args)
    assert adds and reads_input == (input_levels < levels)
    assert [op.kind for op in plan.ops[: g.n_in]] == ["in"] * g.n_in
    banks = []  # register banks between the inputs and each value
    for k, op in enumerate(plan.ops):
        srcs = (
            [a[0] for a in op.args] if op.kind == "add" else [] if op.kind == "in" else [op.args[0]]
        )
        assert all(src < k for src in srcs)
        assert len({banks[src] for src in srcs}) <= 1  # operands of the same beat
        banks.append((banks[srcs[0]] if srcs else 0) + (op.kind == "reg"))
    assert plan.register_bits == _held_bits(g, levels, -128, 127, input_levels)
    assert len({op.name for op in plan.ops}) == len(plan.ops)
    for j, out in enumerate(plan.outputs):
        assert (out is None) == (not w[j].any())
        if out is not None:
            assert banks[out[0]] == plan.stages


def test_cache_reuses_solutions_and_survives_corruption(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMIFREDDO_CACHE_DIR", str(tmp_path))
    w = gaussian_int8(np.random.default_rng(3), 8, 8)
    first = plan_cmvm(w)
    files = list((tmp_path / "cmvm").iterdir())
    assert len(files) == 1

    def no_solver(_w):
        raise AssertionError("solver called despite a cached plan")

    monkeypatch.setattr(cmvm, "_plan_da4ml", no_solver)
    assert plan_cmvm(w) == first

    # A cached plan that computes something else, its checksum intact, is never used (the
    # damage a checksum catches: tests/test_cache.py).
    obj = json.loads(cache.read("cmvm", files[0].name))
    obj["outputs"][0] = [0, 0, 0]
    cache.write("cmvm", files[0].name, json.dumps(obj))
    monkeypatch.undo()
    monkeypatch.setenv("SEMIFREDDO_CACHE_DIR", str(tmp_path))
    with pytest.warns(cache.CacheWarning, match="fails its check"):
        assert np.array_equal(plan_cmvm(w).matrix().astype(np.int64), w)


def test_plans_are_deterministic():
    w = gaussian_int8(np.random.default_rng(5), 24, 24, 0.2)
    assert plan_cmvm(w, use_cache=False).to_json() | {"solve_seconds": 0} == plan_cmvm(
        w, use_cache=False
    ).to_json() | {"solve_seconds": 0}
