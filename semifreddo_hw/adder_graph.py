"""Shift-add graphs: constant matrix-vector products as adders over shifted inputs.

A frozen layer computes ``y = W @ x`` with ``W`` a constant integer matrix. An
:class:`AdderGraph` is that product as a list of two-operand adders/subtractors over shifted
inputs, shared across all outputs, in which zero weights produce nothing; the planners that
make one are in :mod:`.cmvm`. A graph knows the matrix it computes (:meth:`AdderGraph.check`),
the range of every node, and how it is laid out in pipeline stages
(:meth:`AdderGraph.pipelined`), which both hardware backends (Amaranth and the Verilog text
writer) build. Pure Python: no Amaranth here.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

__all__ = [
    "Term",
    "AdderGraph",
    "Schedule",
    "PipeOp",
    "Pipelined",
    "PlanError",
    "GraphBuilder",
    "signed_width",
    "sum_tree",
]


class PlanError(Exception):
    """A planner produced no usable graph (bad input or a solver bug caught by the check)."""


class Term(NamedTuple):
    """A signed, shifted reference to a graph node: ``(-1)**neg * (node << shift)``."""

    node: int
    shift: int = 0
    neg: bool = False

    def shifted(self, by: int) -> Term:
        return Term(self.node, self.shift + by, self.neg)

    def negated(self) -> Term:
        return Term(self.node, self.shift, not self.neg)


@dataclasses.dataclass(frozen=True)
class AdderGraph:
    """A shift-add network computing ``y = W @ x`` for a fixed integer matrix ``W``.

    Nodes ``0 .. n_in-1`` are the inputs; node ``n_in + k`` is ``adds[k][0] + adds[k][1]``
    (both :class:`Term`). Every adder reads only earlier nodes. ``outputs[j]`` is the
    :class:`Term` giving ``y[j]``, or ``None`` where row ``j`` of ``W`` is all zero (the output
    is the constant 0 and costs nothing). A negated output costs one extra subtractor at the
    output, counted in :attr:`adders`.
    """

    n_in: int
    adds: tuple[tuple[Term, Term], ...]
    outputs: tuple[Term | None, ...]
    solver: str = "csd"
    solve_seconds: float = 0.0

    @property
    def n_out(self) -> int:
        return len(self.outputs)

    @property
    def n_nodes(self) -> int:
        return self.n_in + len(self.adds)

    @property
    def negated_outputs(self) -> int:
        return sum(1 for t in self.outputs if t is not None and t.neg)

    @property
    def adders(self) -> int:
        """Two-operand adders and subtractors, output negations included."""
        return len(self.adds) + self.negated_outputs

    def node_depths(self) -> list[int]:
        """Adder levels from the inputs to each node (inputs are at depth 0)."""
        depth = [0] * self.n_nodes
        for k, (a, b) in enumerate(self.adds):
            depth[self.n_in + k] = 1 + max(depth[a.node], depth[b.node])
        return depth

    def output_depths(self) -> list[int]:
        """Adder levels of each output, the output negation included (0 for zero outputs)."""
        depth = self.node_depths()
        return [0 if t is None else depth[t.node] + int(t.neg) for t in self.outputs]

    @property
    def depth(self) -> int:
        """Adder levels on the longest input-to-output path."""
        return max(self.output_depths(), default=0)

    def node_coefficients(self, dtype=object) -> np.ndarray:
        """Each node's value as an exact integer combination of the inputs, shape (nodes, n_in).

        The default object dtype (Python integers) cannot overflow; ``np.int64`` is faster and
        exact while coefficients stay below 2**63, as they do for int8 weights.
        """
        coef = np.zeros((self.n_nodes, self.n_in), dtype=dtype)
        for i in range(self.n_in):
            coef[i, i] = 1
        for k, (a, b) in enumerate(self.adds):
            coef[self.n_in + k] = _term_value(coef, a) + _term_value(coef, b)
        return coef

    def matrix(self) -> np.ndarray:
        """The matrix this graph computes, shape (n_out, n_in), as Python integers."""
        coef = self.node_coefficients()
        rows = [
            np.zeros(self.n_in, dtype=object) if t is None else _term_value(coef, t)
            for t in self.outputs
        ]
        return np.array(rows, dtype=object).reshape(self.n_out, self.n_in)

    def check(self, weights: np.ndarray) -> None:
        """Raise :class:`PlanError` unless this graph computes exactly ``weights @ x``."""
        weights = np.asarray(weights)
        if weights.shape != (self.n_out, self.n_in):
            raise PlanError(
                f"plan is {self.n_out}x{self.n_in}, weights are "
                f"{weights.shape[0]}x{weights.shape[1]}"
            )
        for k, (a, b) in enumerate(self.adds):
            for t in (a, b):
                if not 0 <= t.node < self.n_in + k or t.shift < 0:
                    raise PlanError(f"adder {k} has a bad operand {t}")
        got = self.matrix()
        bad = np.argwhere(got != weights.astype(object))
        if len(bad):
            j, i = bad[0]
            raise PlanError(
                f"plan computes W[{j},{i}] = {got[j, i]}, expected {weights[j, i]} "
                f"({len(bad)} entries differ; solver {self.solver})"
            )

    def node_ranges(self, lo, hi) -> tuple[list[int], list[int]]:
        """Exact value range of every node when input ``i`` lies in ``[lo[i], hi[i]]``."""
        coef = self.node_coefficients(np.int64)
        lo = np.broadcast_to(np.asarray(lo, dtype=np.int64), (self.n_in,))
        hi = np.broadcast_to(np.asarray(hi, dtype=np.int64), (self.n_in,))
        a, b = coef * lo, coef * hi
        return np.minimum(a, b).sum(axis=1).tolist(), np.maximum(a, b).sum(axis=1).tolist()

    def schedule(self, levels_per_stage: int, input_levels: int = 0) -> Schedule:
        """Place adders into register stages of ``levels_per_stage`` adder levels each.

        Stage ``s`` (1-based) is the logic between register bank ``s-1`` (bank 0 being the
        unregistered inputs) and bank ``s``. An adder at depth ``d`` sits in stage
        ``ceil((d + input_levels) / levels_per_stage)``; an output negation sits one level
        after its node. Every output is registered at the last bank, so the latency is at
        least one cycle. ``input_levels`` (0 to ``levels_per_stage``): levels of logic in
        front of the inputs, which the first stage holds in place of as many adder levels
        (``levels_per_stage``: the inputs are registered before any adder).
        """
        if not isinstance(levels_per_stage, int) or levels_per_stage < 1:
            raise ValueError(
                f"levels_per_stage must be a positive integer, not {levels_per_stage!r}"
            )
        if not isinstance(input_levels, int) or not 0 <= input_levels <= levels_per_stage:
            raise ValueError(
                f"input_levels must be an integer in 0..{levels_per_stage}, not {input_levels!r}"
            )
        L = levels_per_stage
        depth = self.node_depths()
        stage = [-(-(d + input_levels) // L) if d else 0 for d in depth]
        stages = max(1, -(-(self.depth + input_levels) // L)) if self.depth else 1
        need = [-1] * self.n_nodes  # last bank at which the node's value must be held
        for k, (a, b) in enumerate(self.adds):
            c = stage[self.n_in + k]
            for t in (a, b):
                if stage[t.node] < c:
                    need[t.node] = max(need[t.node], c - 1)
        neg_stage = []
        for t in self.outputs:
            if t is None:
                neg_stage.append(0)
            elif t.neg:
                s = max(1, -(-(depth[t.node] + 1 + input_levels) // L))
                neg_stage.append(s)
                if stage[t.node] < s:
                    need[t.node] = max(need[t.node], s - 1)
            else:
                neg_stage.append(0)
                need[t.node] = stages
        return Schedule(
            levels_per_stage=L, stages=stages, node_stage=stage, node_need=need, neg_stage=neg_stage
        )

    def pipelined(self, levels_per_stage: int, lo, hi, input_levels: int = 0) -> Pipelined:
        """The graph as pipelined logic, inputs in ``[lo, hi]``: every value a hardware
        backend builds (adders, output negations, stage registers), each exactly as wide as
        its range, placed by :meth:`schedule` (``input_levels`` as there). Outputs are
        available after ``stages`` pipeline advances."""
        sched = self.schedule(levels_per_stage, input_levels)
        nlo, nhi = self.node_ranges(lo, hi)
        width = [signed_width(a, b) for a, b in zip(nlo, nhi, strict=True)]
        ops = [PipeOp("in", f"in{n}", width[n], (n,)) for n in range(self.n_in)]
        comb: dict[int, int] = {}
        held: dict[tuple[int, int], int] = {}

        def new(kind, name, w, args) -> int:
            ops.append(PipeOp(kind, name, w, args))
            return len(ops) - 1

        def after_bank(n, bank):  # the node's value as held by register bank `bank`
            key = (n, bank)
            if key not in held:
                if n < self.n_in and bank == 0:
                    held[key] = n
                elif bank == sched.node_stage[n]:
                    held[key] = new("reg", f"n{n}_r", width[n], (node_comb(n),))
                else:
                    held[key] = new("reg", f"n{n}_r{bank}", width[n], (after_bank(n, bank - 1),))
            return held[key]

        def in_stage(n, s):  # the node's value usable by logic in stage `s`
            if n >= self.n_in and sched.node_stage[n] == s:
                return node_comb(n)
            return after_bank(n, s - 1)

        def node_comb(n):
            if n not in comb:
                a, b = self.adds[n - self.n_in]
                s = sched.node_stage[n]
                args = tuple((in_stage(t.node, s), t.shift, t.neg) for t in (a, b))
                comb[n] = new("add", f"n{n}", width[n], args)
            return comb[n]

        outputs: list[tuple[int, int] | None] = []
        for j, (t, s) in enumerate(zip(self.outputs, sched.neg_stage, strict=True)):
            if t is None:
                outputs.append(None)
                continue
            if t.neg:
                v = new(
                    "neg",
                    f"neg{j}",
                    signed_width(-nhi[t.node], -nlo[t.node]),
                    (in_stage(t.node, s),),
                )
                for k in range(sched.stages - s + 1):
                    v = new("reg", f"neg{j}_d{k + 1}", ops[v].width, (v,))
            else:
                v = after_bank(t.node, sched.stages)
            outputs.append((v, t.shift))
        return Pipelined(sched.stages, ops, outputs)

    # -- serialisation (for the plan cache and worker processes) --

    def to_json(self) -> dict:
        def enc(t: Term | None):
            return None if t is None else [t.node, t.shift, int(t.neg)]

        return {
            "n_in": self.n_in,
            "solver": self.solver,
            "solve_seconds": self.solve_seconds,
            "adds": [[enc(a), enc(b)] for a, b in self.adds],
            "outputs": [enc(t) for t in self.outputs],
        }

    @classmethod
    def from_json(cls, obj: dict) -> AdderGraph:
        def dec(v):
            return None if v is None else Term(int(v[0]), int(v[1]), bool(v[2]))

        return cls(
            n_in=int(obj["n_in"]),
            solver=str(obj["solver"]),
            solve_seconds=float(obj["solve_seconds"]),
            adds=tuple((dec(a), dec(b)) for a, b in obj["adds"]),
            outputs=tuple(dec(t) for t in obj["outputs"]),
        )


class Schedule(NamedTuple):
    """Where each node of an :class:`AdderGraph` is computed and how long it is held."""

    levels_per_stage: int
    stages: int  # register stages from input to output: the latency in cycles
    node_stage: list[int]  # stage computing each node (0 for inputs)
    node_need: list[int]  # last register bank each node is read from (-1: never registered)
    neg_stage: list[int]  # stage computing each negated output (0 where none)


class PipeOp(NamedTuple):
    """One value of a :class:`Pipelined` graph, named ``name`` (unique within the graph).

    ``kind`` says what it is: ``"in"``, graph input ``args[0]`` (ops ``0 .. n_in-1``, in
    order); ``"add"``, the sum of ``args[0]`` and ``args[1]``, each ``(op, shift, neg)``
    meaning ``(-1)**neg * (op << shift)``; ``"neg"``, ``-args[0]``; ``"reg"``, ``args[0]``
    one pipeline advance later. Operands are indices of earlier ops. ``width``: signed bits.
    """

    kind: str
    name: str
    width: int
    args: tuple


class Pipelined(NamedTuple):
    """An :class:`AdderGraph` laid out in register stages (:meth:`AdderGraph.pipelined`)."""

    stages: int  # pipeline advances from the inputs to the outputs
    ops: list[PipeOp]  # every operand before its user
    outputs: list[tuple[int, int] | None]  # (op, left shift) per output; None: constant 0

    @property
    def register_bits(self) -> int:
        """Bits of all pipeline registers (the ``"reg"`` ops)."""
        return sum(op.width for op in self.ops if op.kind == "reg")


def signed_width(lo: int, hi: int) -> int:
    """Bits of the narrowest two's complement number holding every integer in [lo, hi]."""
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    pos = hi.bit_length() + 1 if hi > 0 else 1
    neg = (-lo - 1).bit_length() + 1 if lo < 0 else 1
    return max(pos, neg)


def _term_value(coef: np.ndarray, t: Term) -> np.ndarray:
    v = coef[t.node] * (1 << t.shift)
    return -v if t.neg else v


class GraphBuilder:
    """Accumulates adders, normalising each to non-negative polarity and shift.

    ``add(a, b)`` returns a :class:`Term` equal to ``a + b``. The adder node stores the
    operands with the common shift factored out and at most one of them negated; the sign and
    shift are carried by the returned term instead. With ``share``, an adder already built
    with the same operands is reused (hash-consing), so no two nodes compute the same thing.
    """

    def __init__(self, n_in: int, *, share: bool):
        self.n_in = n_in
        self.adds: list[tuple[Term, Term]] = []
        self._seen: dict[tuple[Term, Term], int] | None = {} if share else None

    def add(self, a: Term, b: Term) -> Term:
        shift = min(a.shift, b.shift)
        neg = a.neg and b.neg
        if neg:
            a, b = a.negated(), b.negated()
        a, b = a.shifted(-shift), b.shifted(-shift)
        if a.neg or (not b.neg and (b.node, b.shift) < (a.node, a.shift)):
            a, b = b, a  # the positive operand first; ties broken for canonical keys
        key = (a, b)
        if self._seen is not None and key in self._seen:
            node = self._seen[key]
        else:
            node = self.n_in + len(self.adds)
            self.adds.append(key)
            if self._seen is not None:
                self._seen[key] = node
        return Term(node, shift, neg)

    def sum(self, terms: list[Term]) -> Term | None:
        """Sum terms in a balanced tree (depth ceil(log2(len))); None for an empty sum."""
        if not terms:
            return None
        while len(terms) > 1:
            nxt = [self.add(terms[k], terms[k + 1]) for k in range(0, len(terms) - 1, 2)]
            if len(terms) % 2:
                nxt.append(terms[-1])
            terms = nxt
        return terms[0]

    def graph(self, outputs: list[Term | None], solver: str, seconds: float) -> AdderGraph:
        """The graph of the adders built, with ``outputs``; adders no output needs are
        dropped."""
        return _prune(AdderGraph(self.n_in, tuple(self.adds), tuple(outputs), solver, seconds))


def _prune(graph: AdderGraph) -> AdderGraph:
    """Drop adders no output depends on and renumber the rest (order preserved)."""
    live = [False] * graph.n_nodes
    for t in graph.outputs:
        if t is not None:
            live[t.node] = True
    for k in range(len(graph.adds) - 1, -1, -1):
        if live[graph.n_in + k]:
            for t in graph.adds[k]:
                live[t.node] = True
    remap = list(range(graph.n_in))
    adds = []
    for k, (a, b) in enumerate(graph.adds):
        remap.append(graph.n_in + len(adds))
        if live[graph.n_in + k]:
            adds.append((a._replace(node=remap[a.node]), b._replace(node=remap[b.node])))

    def fix(t):
        return None if t is None else t._replace(node=remap[t.node])

    outputs = tuple(fix(t) for t in graph.outputs)
    return dataclasses.replace(graph, adds=tuple(adds), outputs=outputs)


def sum_tree(n_in: int) -> AdderGraph:
    """One output summing all ``n_in`` inputs in a balanced tree (for multiplier outputs)."""
    b = GraphBuilder(n_in, share=False)
    return b.graph([b.sum([Term(i) for i in range(n_in)])], "tree", 0.0)
