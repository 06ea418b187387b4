"""Planning constant matrix-vector products (CMVM) as shift-add graphs (:mod:`.adder_graph`).

Two planners behind one function, :func:`plan_cmvm`:

* ``"csd"``: the naive baseline. Every weight is recoded in canonical signed digits (CSD), each
  digit is one shifted input, and each output sums its digits in a balanced tree. No sharing.
* ``"da4ml"``: the published constant-matrix solver `da4ml` (greedy common subexpression
  elimination across outputs, with a two-stage matrix decomposition), decoded into our graph.
  Up to 64x64 it runs eight times (two cost models, four input/output orders) and keeps the
  fewest adders. Solutions are cached by content (:mod:`.cache`): a 128x128 solve takes
  about a minute.

Whatever the planner, the graph is checked exactly against ``W`` (every output's coefficient
vector is recomputed from the graph) before it is returned: a wrong plan is an error, never a
silently wrong chip. :func:`plan_depthwise` plans a depthwise layer channel by channel.
"""

import dataclasses
import json
import time
from importlib.metadata import version

import numpy as np
from da4ml.cmvm import solve

from spec.formats import INT8_MAX, INT8_MIN

from . import cache
from .adder_graph import AdderGraph, GraphBuilder, PlanError, Term

__all__ = ["SOLVERS", "csd_digits", "plan_cmvm", "plan_depthwise"]

SOLVERS = ("csd", "da4ml")

#: Bump when the graph encoding or the solver call changes, to invalidate cached plans.
_CACHE_FORMAT = 2


def csd_digits(value: int) -> list[tuple[int, bool]]:
    """Canonical signed-digit recoding: ``value == sum((-1)**neg << shift)``, fewest digits."""
    digits = []
    shift = 0
    value = int(value)
    while value:
        if value & 1:
            digit = 2 - (value & 3)  # +1 if value = 1 mod 4, -1 if value = 3 mod 4
            digits.append((shift, digit < 0))
            value -= digit
        value >>= 1
        shift += 1
    return digits


def _plan_csd(weights: np.ndarray) -> AdderGraph:
    n_out, n_in = weights.shape
    b = GraphBuilder(n_in, share=False)
    outputs = []
    for j in range(n_out):
        terms = [Term(i, s, neg) for i in range(n_in) for s, neg in csd_digits(weights[j, i])]
        outputs.append(b.sum(terms))
    return b.graph(outputs, "csd", 0.0)


def plan_depthwise(kernels, solver: str = "da4ml", *, use_cache: bool = True) -> AdderGraph:
    """Plan a depthwise layer: ``kernels`` is ``(channels, taps)``; output ``c`` is
    ``sum_k kernels[c, k] * x[k * channels + c]`` (inputs ordered tap-major, as the sliding
    window emits them). Channels share no inputs, so each is planned alone and the graphs are
    placed side by side; the result is the block-structured ``(channels, taps * channels)``
    matrix, checked like any plan."""
    k = np.asarray(kernels)
    if k.ndim != 2 or 0 in k.shape:
        raise ValueError(f"kernels must have shape (channels, taps), not {k.shape}")
    channels, taps = k.shape
    n_in = channels * taps
    adds: list[tuple[Term, Term]] = []
    outputs: list[Term | None] = []
    seconds = 0.0
    for c in range(channels):
        g = plan_cmvm(k[c : c + 1], solver, use_cache=use_cache)
        seconds += g.solve_seconds
        base = n_in + len(adds)

        def move(t, g=g, base=base, c=c):  # channel-local node -> merged node
            if t.node < g.n_in:
                return t._replace(node=t.node * channels + c)
            return t._replace(node=base + t.node - g.n_in)

        adds += [(move(a), move(b)) for a, b in g.adds]
        outputs.append(None if g.outputs[0] is None else move(g.outputs[0]))
    graph = AdderGraph(n_in, tuple(adds), tuple(outputs), solver, seconds)
    matrix = np.zeros((channels, n_in), dtype=np.int64)
    for c in range(channels):
        matrix[c, np.arange(taps) * channels + c] = k[c]
    graph.check(matrix)
    return graph


#: da4ml tries for matrices of at most this many weights: its greedy pair selection breaks
#: ties by index order, so a few input/output orders and both cost models ("mc" counts
#: adders, "wmc" weighs them by width) give a spread of about 1 %; the fewest adders win.
#: Larger matrices get one solve, as each takes a minute or more at 128x128.
_PORTFOLIO_MAX_WEIGHTS = 64 * 64
_PORTFOLIO = [(method, order) for order in range(4) for method in ("mc", "wmc")]


def _plan_da4ml(weights: np.ndarray) -> AdderGraph:
    n_out, n_in = weights.shape
    if not weights.any():
        return AdderGraph(n_in, (), (None,) * n_out, "da4ml", 0.0)
    t0 = time.perf_counter()
    # Only nonzero rows and columns go to the solver: an all-zero output or unused input
    # then cannot change the plan, not even through tie-breaking.
    rows = np.flatnonzero(weights.any(axis=1))
    cols = np.flatnonzero(weights.any(axis=0))
    size = len(rows) * len(cols)
    tries = _PORTFOLIO if size <= _PORTFOLIO_MAX_WEIGHTS else _PORTFOLIO[:1]
    best = None
    for method, order in tries:
        if order == 0:
            perm_in, perm_out = cols, rows
        else:  # a fixed, seeded reordering: plans stay deterministic
            rng = np.random.default_rng(order)
            perm_in, perm_out = rng.permutation(cols), rng.permutation(rows)
        graph = _solve_da4ml(weights, method, perm_in, perm_out)
        if best is None or graph.adders < best.adders:
            best = graph
    return dataclasses.replace(best, solve_seconds=time.perf_counter() - t0)


def _solve_da4ml(weights, method, perm_in, perm_out) -> AdderGraph:
    """One da4ml solve of ``weights[perm_out][:, perm_in]`` (index arrays selecting and
    ordering rows and columns), decoded into a graph over all of ``weights``' inputs and
    outputs in their original numbering; outputs not in ``perm_out`` are zero."""
    n_out, n_in = weights.shape
    sub = weights[np.ix_(perm_out, perm_in)]
    # da4ml computes vec @ kernel, kernel shaped (n_in, n_out). Inputs are int8.
    pipeline = solve(
        np.ascontiguousarray(sub.T, dtype=np.float32),
        method0=method,
        qintervals=[(float(INT8_MIN), float(INT8_MAX), 1.0)] * len(perm_in),
        search_all_decompose_dc=False,
    )

    b = GraphBuilder(n_in, share=True)
    # Each stage input is (term, exponent): the stage sees value(term) * 2**exponent.
    stage_in: list[tuple[Term | None, int]] = [(Term(int(i)), 0) for i in perm_in]
    for sol in pipeline.solutions:
        buf: list[tuple[Term | None, int]] = []
        for op in sol.ops:
            if op.opcode == -1:  # read stage input id0, scaled by 2**inp_shifts[id0]
                term, e = stage_in[op.id0]
                buf.append((term, e + int(sol.inp_shifts[op.id0])))
            elif op.opcode in (0, 1):  # buf[id0] +/- buf[id1] * 2**data
                (t0_, e0), (t1_, e1) = buf[op.id0], buf[op.id1]
                e1 += int(op.data)
                if t1_ is not None and op.opcode == 1:
                    t1_ = t1_.negated()
                if t0_ is None or t1_ is None:  # an operand is the constant 0
                    buf.append((t1_, e1) if t0_ is None else (t0_, e0))
                    continue
                e = min(e0, e1)
                buf.append((b.add(t0_.shifted(e0 - e), t1_.shifted(e1 - e)), e))
            else:
                raise PlanError(
                    f"da4ml returned an operation this planner cannot map "
                    f"(opcode {op.opcode}); only shift-add graphs are supported"
                )
        outs: list[tuple[Term | None, int]] = []
        for idx, shift, neg in zip(sol.out_idxs, sol.out_shifts, sol.out_negs, strict=True):
            if idx < 0:
                outs.append((None, 0))
                continue
            term, e = buf[idx]
            if term is not None and neg:
                term = term.negated()
            outs.append((term, e + int(shift)))
        stage_in = outs

    outputs: list[Term | None] = [None] * n_out
    for k, (term, e) in enumerate(stage_in):
        j = int(perm_out[k])
        if term is None or not weights[j].any():
            continue
        if term.shift + e < 0:
            raise PlanError(f"da4ml output {j} is not an integer combination of the inputs")
        outputs[j] = term.shifted(e)
    return b.graph(outputs, "da4ml", 0.0)


def _checked_plan(text: str, w: np.ndarray) -> AdderGraph:
    """The plan in a cache entry's ``text``, if it computes exactly ``w`` (else
    ``ValueError``: the entry is bad and is solved again)."""
    graph = AdderGraph.from_json(json.loads(text))
    try:
        graph.check(w)
    except PlanError as e:
        raise ValueError(e) from None
    return graph


def plan_cmvm(weights, solver: str = "da4ml", *, use_cache: bool = True) -> AdderGraph:
    """Plan ``y = weights @ x`` (``weights`` an integer matrix, shape (n_out, n_in)).

    The returned graph has been checked to compute exactly ``weights``. With ``use_cache``,
    the ``da4ml`` solution is stored in the cache (:mod:`.cache`, folder ``cmvm``), keyed by
    the matrix contents and the solver version, so a rebuild with the same weights solves
    nothing; cached plans are re-checked when loaded, and a bad entry is solved again.
    ``solve_seconds`` of a cached plan is the time of the original solve.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, not {solver!r}")
    w = np.asarray(weights)
    if w.ndim != 2 or 0 in w.shape:
        raise ValueError(f"weights must be a non-empty 2-D matrix, not shape {w.shape}")
    if not np.issubdtype(w.dtype, np.integer):
        raise TypeError(f"weights must be integers, not {w.dtype}")
    w = w.astype(np.int64)
    if np.abs(w).max() >= 1 << 24:
        raise ValueError("weights must lie within +/-2**24 (the solver computes in float32)")

    if solver == "csd":
        graph = _plan_csd(w)
        graph.check(w)
        return graph

    key = cache.key(
        {
            "format": _CACHE_FORMAT,
            "solver": solver,
            "version": version("da4ml"),
            "shape": list(w.shape),
        },
        np.ascontiguousarray(w, dtype="<i8").tobytes(),
    )
    cached = cache.read("cmvm", key, lambda text: _checked_plan(text, w)) if use_cache else None
    if cached is not None:
        return cached
    graph = _plan_da4ml(w)
    graph.check(w)
    if use_cache:
        cache.write("cmvm", key, json.dumps(graph.to_json(), separators=(",", ":")))
    return graph
