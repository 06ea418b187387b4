# amaranth: UnusedElaboratable=no
"""Matrix-vector products on int8 streams: frozen (shift-add) and configurable (multipliers).

Both blocks compute ``y = W @ x`` for one int8 vector ``x`` per beat, exactly (outputs are
as wide as their range needs), fully pipelined at one beat per clock. They differ in where
``W`` lives:

* :class:`FrozenMatVec`: ``W`` is a build-time constant, planned into a shared shift-add
  graph (:mod:`semifreddo_hw.adder_graph`). No multipliers, no weight memory; zero weights
  produce no logic.

Both have Verilog text writers (:mod:`.verilog_text`), drop-ins for Amaranth's conversion
that :func:`.emit.part_text` uses.
* :class:`ConfigurableMatVec`: ``W`` sits in a :class:`~semifreddo_hw.param_bank.ParamBank`
  written at run time, multiplied by real multipliers and summed in an adder tree.
"""

import numpy as np
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spec.formats import INT8_MAX, INT8_MIN

from .adder_graph import AdderGraph, signed_width, sum_tree
from .cmvm import SOLVERS, plan_cmvm
from .dsp import dsp_target
from .fold import PhaseCounter
from .param_bank import ParamBank, PhaseBank
from .pipeline import Pipeline, Stages
from .streams import forward, vector_layout

__all__ = ["FrozenMatVec", "ConfigurableMatVec", "check_levels", "realize_graph"]


def realize_graph(
    m: Module,
    pipe: Pipeline,
    graph: AdderGraph,
    inputs,
    lo,
    hi,
    *,
    levels_per_stage: int,
    name: str,
):
    """Build ``graph`` over ``inputs`` (values in ``[lo, hi]``) as pipelined logic.

    The logic is :meth:`AdderGraph.pipelined`'s, registers clocked by ``pipe``; every node is
    exactly as wide as its value range. Returns one value per graph output, available after
    ``schedule.stages`` pipeline advances (``None`` for an output that is constantly zero).
    """
    plan = graph.pipelined(levels_per_stage, lo, hi)
    vals = []
    for op in plan.ops:
        if op.kind == "in":
            v = inputs[op.args[0]]
        elif op.kind == "reg":
            v = pipe.stage(vals[op.args[0]], signed(op.width), name=f"{name}_{op.name}")
        else:
            if op.kind == "add":
                (a, sa, na), (b, sb, nb) = op.args
                va, vb = vals[a] << sa if sa else vals[a], vals[b] << sb if sb else vals[b]
                expr = -va if na else va
                expr = expr - vb if nb else expr + vb
            else:  # "neg"
                expr = -vals[op.args[0]]
            v = Signal(signed(op.width), name=f"{name}_{op.name}")
            m.d.comb += v.eq(expr)
        vals.append(v)
    return [None if o is None else vals[o[0]] << o[1] if o[1] else vals[o[0]] for o in plan.outputs]


def check_levels(levels_per_stage, name="levels_per_stage"):
    """Raise a :exc:`ValueError` naming ``name`` unless ``levels_per_stage`` is a positive
    integer."""
    if not isinstance(levels_per_stage, int) or levels_per_stage < 1:
        raise ValueError(f"{name} must be a positive integer, not {levels_per_stage!r}")


class FrozenMatVec(wiring.Component):
    """``y = W @ x`` for a constant int8 matrix ``W`` (shape ``(n_out, n_in)``).

    Built only from shifts, adders and registers: no multiplier, no memory. The adder graph
    is shared across outputs and pipelined with ``levels_per_stage`` adder levels between
    registers; :attr:`latency` cycles from an accepted input to its output, one beat per
    clock when the output is not stalled. Output lanes are ``signed(out_width)``, wide enough
    for every int8 input (the exact range of each output is in :attr:`out_ranges`).

    Ports: ``i`` (stream of :func:`vector_layout` ``(signed(8), n_in)``), ``o`` (stream of
    ``(signed(out_width), n_out)``); ``side`` bits travel with their beat.
    """

    def __init__(
        self,
        weights,
        *,
        solver: str = "da4ml",
        levels_per_stage: int = 2,
        side_width: int = 0,
        graph: AdderGraph | None = None,
    ):
        w = np.asarray(weights)
        if w.ndim != 2 or 0 in w.shape:
            raise ValueError(f"weights must be a non-empty 2-D matrix, not shape {w.shape}")
        if not np.issubdtype(w.dtype, np.integer):
            raise TypeError(f"weights must be an integer array, not {w.dtype}")
        bad = np.argwhere((w < INT8_MIN) | (w > INT8_MAX))
        if len(bad):
            j, i = bad[0]
            raise ValueError(f"weight [{j},{i}] = {w[j, i]} is outside int8 [-128, 127]")
        check_levels(levels_per_stage)
        self.weights = w.astype(np.int64)
        if graph is None:
            if solver not in SOLVERS:
                raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, not {solver!r}")
            graph = plan_cmvm(self.weights, solver)
        else:
            graph.check(self.weights)
        self.graph = graph
        self.levels_per_stage = levels_per_stage
        self.side_width = side_width
        pos, neg = np.clip(self.weights, 0, None), np.clip(self.weights, None, 0)
        self.out_ranges = list(
            zip(
                (pos * INT8_MIN + neg * INT8_MAX).sum(axis=1).tolist(),
                (pos * INT8_MAX + neg * INT8_MIN).sum(axis=1).tolist(),
                strict=True,
            )
        )
        self.out_width = max(signed_width(lo, hi) for lo, hi in self.out_ranges)
        n_out, n_in = self.weights.shape
        super().__init__(
            {
                "i": In(stream.Signature(vector_layout(signed(8), n_in, side_width))),
                "o": Out(
                    stream.Signature(vector_layout(signed(self.out_width), n_out, side_width))
                ),
                **self._more_members(),
            }
        )

    def _more_members(self) -> dict:
        """Signature members a subclass adds to ``i`` and ``o``."""
        return {}

    @property
    def latency(self) -> int:
        """Cycles from an input beat's acceptance to its output beat, without stalls."""
        return self.graph.schedule(self.levels_per_stage).stages

    @property
    def beats_held(self) -> int:
        """Most beats inside at once: one per register stage."""
        return self.latency

    def report(self) -> dict:
        """Plan estimates (not measured): weights, adders, depth, latency, register bits
        (data and side bits; the one valid bit per stage is not counted)."""
        g = self.graph
        return {
            "shape": list(self.weights.shape),
            "weights": int(self.weights.size),
            "nonzero_weights": int(np.count_nonzero(self.weights)),
            "solver": g.solver,
            "solve_seconds": round(g.solve_seconds, 3),
            "adders": g.adders,
            "adder_levels": g.depth,
            "levels_per_stage": self.levels_per_stage,
            "latency_cycles": self.latency,
            "register_bits": g.pipelined(self.levels_per_stage, INT8_MIN, INT8_MAX).register_bits
            + self.latency * self.side_width,
            "out_width": self.out_width,
            "multipliers": 0,
            "memory_bits": 0,
        }

    def elaborate(self, platform):
        m = Module()
        pipe = Pipeline(self.latency, name="mv")
        pipe.connect(m, self.i, self.o)
        x = self.i.payload.data
        outs = realize_graph(
            m,
            pipe,
            self.graph,
            [x[k] for k in range(len(x))],
            INT8_MIN,
            INT8_MAX,
            levels_per_stage=self.levels_per_stage,
            name="mv",
        )
        for j, v in enumerate(outs):
            m.d.comb += self.o.payload.data[j].eq(0 if v is None else v)
        m.d.comb += self.o.payload.side.eq(
            pipe.delay(self.i.payload.side, self.latency, name="side")
        )
        pipe.finish(m)
        return m


class ConfigurableMatVec(Stages, wiring.Component):
    """``y = W @ x`` for an int8 matrix ``W`` (``n_out`` x ``n_in``) loaded at run time.

    ``mask`` (boolean, ``(n_out, n_in)``, default all true) says which weights exist: a
    depthwise layer, say, has nine per output. The existing weights live in a bank,
    row-major over the mask (:meth:`index` gives an entry's element), written through
    ``write`` and starting from ``init`` (a full matrix, zero outside the mask; default all
    zero). Each beat uses one int8 multiplier per existing weight, then per output an adder
    tree with ``levels_per_stage`` adder levels per stage; shorter trees are delayed to the
    longest. Output lanes are ``signed(out_width)``, exact for any int8 weights and inputs.

    Spatial (``fold`` 1): the weights in a :class:`ParamBank`, all read every beat; the
    products take one stage.

    Folded (``fold`` F > 1, :mod:`.fold`): each beat of the layer arrives as F sub-beats of
    ``n_in`` lanes, and sub-beat ``p`` computes its ``n_out`` outputs with the weights of
    phase ``p`` (``init`` then has shape ``(F, n_out, n_in)``, or ``(sets, F, n_out,
    n_in)``): one row of a :class:`PhaseBank` per phase (block RAM), multipliers for one
    phase only. The operands are registered while the row is read, then the operands and
    the row twice more (a memory read and a multiply never share a stage, nor the route
    between them: a fabric register sits between the memory and the multiplier's own),
    then the products.

    ``buffered`` (folded only): the stages never stall, a queue behind them
    (:class:`~.pipeline.Pipeline`'s ``buffered``): ``i.ready`` from a register and no
    enable fanned out to the stages and the bank's read.

    Ports: ``i``, ``o`` as :class:`FrozenMatVec`; ``write`` and ``select`` as the bank's
    (``select`` picks one of ``sets`` weight sets).
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        mask=None,
        init=None,
        sets: int = 1,
        levels_per_stage: int = 2,
        side_width: int = 0,
        fold: int = 1,
        buffered: bool = False,
    ):
        for name, v in (("n_in", n_in), ("n_out", n_out), ("fold", fold)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        check_levels(levels_per_stage)
        mask = np.ones((n_out, n_in), bool) if mask is None else np.asarray(mask, bool)
        if mask.shape != (n_out, n_in):
            raise ValueError(f"mask must have shape ({n_out}, {n_in}), not {mask.shape}")
        if not mask.any():
            raise ValueError("mask selects no weights")
        if init is not None:
            init = np.asarray(init)
            image = (n_out, n_in) if fold == 1 else (fold, n_out, n_in)
            if init.shape == image:
                init = init[None]
            if init.shape[1:] != image:
                raise ValueError(
                    f"init must have shape {image} or (sets, {', '.join(map(str, image))}), "
                    f"not {init.shape}"
                )
            init = init.reshape(init.shape[0], fold, n_out, n_in)
            if np.any(init[:, :, ~mask]):
                raise ValueError("init has nonzero weights outside the mask")
            init = init[:, :, mask].reshape(init.shape[0], -1).tolist()
        self.n_in, self.n_out, self.mask, self.fold = n_in, n_out, mask, fold
        if buffered and fold == 1:
            raise ValueError("only a folded product is buffered")
        self.buffered = bool(buffered)
        self.levels_per_stage = levels_per_stage
        self.side_width = side_width
        self.taps = [np.flatnonzero(mask[j]).tolist() for j in range(n_out)]
        self.trees = {n: sum_tree(n) for n in sorted({len(t) for t in self.taps if t})}
        weights = int(mask.sum())
        self.bank = (
            ParamBank(signed(8), weights, sets=sets, init=init)
            if fold == 1
            else PhaseBank(signed(8), fold * weights, weights, sets=sets, init=init)
        )
        # A product of two int8 lies in [-128 * 127, 128 * 128].
        self.product_range = (INT8_MIN * INT8_MAX, INT8_MIN * INT8_MIN)
        widest = max(self.trees)
        self.out_width = signed_width(
            widest * self.product_range[0], widest * self.product_range[1]
        )
        super().__init__(
            {
                "i": In(stream.Signature(vector_layout(signed(8), n_in, side_width))),
                "o": Out(
                    stream.Signature(vector_layout(signed(self.out_width), n_out, side_width))
                ),
                "write": self.bank.signature.members["write"],
                "select": In(range(sets)),
            }
        )

    def index(self, j: int, i: int, phase: int = 0) -> int:
        """The bank element holding ``W[j, i]`` (of phase ``phase``, when folded)."""
        if not self.mask[j, i]:
            raise ValueError(f"W[{j},{i}] is outside the mask")
        if not 0 <= phase < self.fold:
            raise ValueError(f"phase {phase} out of range for fold {self.fold}")
        return phase * int(self.mask.sum()) + int(self.mask[:j].sum()) + self.taps[j].index(i)

    @property
    def _operands(self) -> list[int]:
        """The input lanes some weight multiplies."""
        return np.flatnonzero(self.mask.any(axis=0)).tolist()

    def _stages(self, n: int) -> int:
        return self.trees[n].schedule(self.levels_per_stage).stages

    @property
    def _product_stage(self) -> int:
        """Stages up to and including the products (folded: the operands while the row is
        read, then the operands and the row registered twice, so that a block RAM or LUT
        RAM read and a multiply never share a stage or a route)."""
        return 1 if self.fold == 1 else 4

    @property
    def stages(self) -> int:
        """Pipeline stages: the products, then the longest adder tree."""
        return self._product_stage + max(self._stages(n) for n in self.trees)

    def report(self) -> dict:
        lo, hi = self.product_range
        weights = int(self.mask.sum())
        regs = 16 * weights + self.stages * self.side_width + self.queue_bits
        if self.fold > 1:  # operands (three stages), the weight row as read and registered twice
            regs += 24 * len(self._operands) + 24 * weights
        for t in self.taps:
            if t:
                n = len(t)
                regs += self.trees[n].pipelined(self.levels_per_stage, lo, hi).register_bits
                regs += signed_width(n * lo, n * hi) * (
                    self.stages - self._product_stage - self._stages(n)
                )
        return {
            "shape": [self.n_out, self.n_in],
            "weights": weights * self.fold,
            "multipliers": weights,
            **({"fold": self.fold} if self.fold > 1 else {}),
            "adders": sum(self.trees[len(t)].adders for t in self.taps if t),
            "adder_levels": max(g.depth for g in self.trees.values()),
            "levels_per_stage": self.levels_per_stage,
            "latency_cycles": self.latency,
            "register_bits": regs,
            "memory_bits": self.bank.bits,
            "out_width": self.out_width,
        }

    def elaborate(self, platform):
        m = Module()
        m.submodules.bank = bank = self.bank
        forward(m, self.write, bank.write)
        m.d.comb += bank.select.eq(self.select)
        pipe = Pipeline(self.stages, name="mv", dsp=dsp_target(platform), buffered=self.buffered)
        o = pipe.connect(m, self.i, self.o)
        if self.fold == 1:
            x, weight = self.i.payload.data, bank.element
        else:
            # Stage 1 holds the operands while the bank reads the phase's row; the row is
            # registered twice before the multiply takes it: a block RAM's read data comes
            # late in the cycle (5.8 ns after the clock on the ECP5) and the DSP block that
            # takes it may be placed far away (among the longest paths of the placed
            # ``small`` board build), so a fabric register near the memory splits the way.
            phase = PhaseCounter(m, self.i, self.fold, name="mv")
            m.d.comb += [bank.phase.eq(phase.value), bank.en.eq(pipe.en)]
            x = {i: pipe.delay(self.i.payload.data[i], 3, name=f"x{i}") for i in self._operands}
            w = bank.data
            row = [pipe.delay(w[k], 2, name=f"w{k}", reset_less=True) for k in range(bank.lanes)]

            def weight(k):
                return row[k]

        k = 0
        for j, taps in enumerate(self.taps):
            if not taps:
                m.d.comb += o.payload.data[j].eq(0)
                continue
            # Folded, both operands are this pipeline's registers, which a DSP block can
            # hold (spatial: the input and the weights' flip-flops feed the multiply).
            products = [
                (
                    pipe.stage(x[i] * weight(k + n), signed(16), name=f"p{j}_{i}")
                    if self.fold == 1
                    else pipe.product(x[i], weight(k + n), signed(16), name=f"p{j}_{i}")
                )
                for n, i in enumerate(taps)
            ]
            k += len(taps)
            (y,) = realize_graph(
                m,
                pipe,
                self.trees[len(taps)],
                products,
                *self.product_range,
                levels_per_stage=self.levels_per_stage,
                name=f"sum{j}",
            )
            y = pipe.delay(
                y, self.stages - self._product_stage - self._stages(len(taps)), name=f"sum{j}_bal"
            )
            m.d.comb += o.payload.data[j].eq(y)
        m.d.comb += o.payload.side.eq(pipe.delay(self.i.payload.side, self.stages, name="side"))
        pipe.finish(m)
        return m
