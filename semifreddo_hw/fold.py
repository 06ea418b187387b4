"""Rate folding: a layer that receives a beat at most every ``F`` cycles does an ``F``-th of its
per-channel work per cycle, on hardware an ``F``-th the size (``docs/folding.md``).

A folded layer turns each beat into ``F`` *sub-beats* (:class:`Serializer`), one per cycle,
each holding the lanes of one group of channels; folded arithmetic works on one group per
cycle, reading that group's parameters from a memory row (:class:`~.param_bank.PhaseBank`);
:class:`Deserializer` puts the ``F`` results back together into one beat. A configurable layer may
fold further than it has output channels: each channel group's sums are then cut into
``K`` slices of the products they add (:func:`slice_lanes`), one slice per cycle, and
:class:`Accumulator` adds each ``K`` partial sums back into one. Sub-beats always
come in whole groups of ``F``, in phase order, so every folded block keeps its own phase
count (:class:`PhaseCounter`): nothing about phases travels in the stream.
"""

from amaranth.hdl import Array, Const, Module, Mux, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .fanout import KEEP
from .streams import vector_layout

__all__ = [
    "PhaseCounter",
    "Serializer",
    "Deserializer",
    "Accumulator",
    "group_lanes",
    "repeat_lanes",
    "slice_lanes",
]


def group_lanes(lanes: int, fold: int, taps: int = 1) -> list[list[int]]:
    """Per phase, the input lanes of channel group ``phase``: the beat has ``taps`` blocks of
    ``lanes`` channels each (tap-major, as a window gives them, lane ``tap * lanes + c``);
    phase ``p`` takes channels ``p * lanes / fold ...`` of every tap, tap-major too."""
    if not isinstance(fold, int) or fold < 1 or lanes % fold:
        raise ValueError(f"fold must be a positive divisor of {lanes} channels, not {fold!r}")
    group = lanes // fold
    return [
        [t * lanes + p * group + c for t in range(taps) for c in range(group)] for p in range(fold)
    ]


def repeat_lanes(lanes: int, fold: int) -> list[list[int]]:
    """Per phase, every input lane: each sub-beat repeats the whole beat (a folded product
    whose every output needs all inputs)."""
    if not isinstance(fold, int) or fold < 1:
        raise ValueError(f"fold must be a positive integer, not {fold!r}")
    return [list(range(lanes))] * fold


def slice_lanes(groups: list[list[int]], slices: int) -> list[list[int]]:
    """Each phase's lanes cut into ``slices`` equal runs, one phase per run: phase
    ``p * slices + k`` takes run ``k`` of phase ``p``'s lanes (a channel group's products,
    a slice per cycle)."""
    n = len(groups[0])
    if not isinstance(slices, int) or slices < 1 or n % slices:
        raise ValueError(f"slices must be a positive divisor of {n} lanes, not {slices!r}")
    size = n // slices
    return [g[k * size : (k + 1) * size] for g in groups for k in range(slices)]


class PhaseCounter:
    """The phase (``0 .. fold - 1``) of the next sub-beat a stream port will transfer, advanced
    by each transfer; :attr:`last` is high in the last phase."""

    def __init__(self, m: Module, port, fold: int, *, name: str):
        self.fold = fold
        self.value = Signal(range(fold), name=f"{name}_phase")
        self.last = Signal(name=f"{name}_last")
        m.d.comb += self.last.eq(self.value == fold - 1)
        if fold > 1:
            with m.If(port.valid & port.ready):
                m.d.sync += self.value.eq(Mux(self.last, 0, self.value + 1))


class Serializer(wiring.Component):
    """Each beat of ``i`` (``count`` lanes of ``elem``) as ``len(groups)`` sub-beats on ``o``,
    one per cycle when ``o`` is ready: sub-beat ``p`` has lanes ``i[groups[p][k]]``. The
    ``side`` bits go with every sub-beat.

    The first sub-beat passes straight through (no added latency) and ``i`` is taken with it;
    the lanes the later sub-beats need wait in registers. So the producer is free again after
    one cycle: a sliding window keeps stepping and a pipeline keeps flowing while the beat's
    later phases go out, and beats may arrive as often as every ``fold`` cycles. Where no
    lane waits for two sub-beats (channel groups), the waiting lanes shift towards the
    output, one sub-beat per transfer, so that no multiplexer by phase lies in front of
    ``o``; where the groups repeat, each lane read once per period (the whole input once
    per output group), they rotate; otherwise (a lane read in several phases, not
    periodically) they are picked by phase.

    With ``hold``, nothing waits in registers: every sub-beat reads ``i``, which the
    producer holds (the stream rule), and ``i`` is taken with the last sub-beat. For a
    producer that refills its output register in the cycle of the transfer (a sliding
    window) beats still stream every ``fold`` cycles, and the registers (a 3x3 window's
    worth of lanes) are saved.

    ``pad`` (with ``hold``, or ``fold`` 1): a constant per input lane, and an input
    ``outside`` (a bit per lane): a lane whose bit is set reads as its constant. The
    padding of a :class:`~.window.SlidingWindow` with ``defer_pad``, applied to the lanes
    each sub-beat picks rather than to the whole window."""

    def __init__(
        self,
        elem,
        count: int,
        groups: list[list[int]],
        side_width: int = 0,
        *,
        hold=False,
        pad=None,
    ):
        if not groups or any(len(g) != len(groups[0]) for g in groups):
            raise ValueError("every phase must take the same number of lanes")
        if any(not 0 <= k < count for g in groups for k in g):
            raise ValueError(f"lanes must lie in 0..{count - 1}")
        self.groups, self.fold = [list(g) for g in groups], len(groups)
        self.elem, self.side_width, self.hold = elem, side_width, bool(hold)
        if pad is not None:
            pad = tuple(int(v) for v in pad)
            if len(pad) != count:
                raise ValueError(f"pad must give a constant for each of the {count} lanes")
            if self.fold > 1 and not self.hold:
                raise ValueError("pad needs hold: the lanes are padded as they are picked")
        self.lane_pad = pad
        super().__init__(
            {
                "i": In(stream.Signature(vector_layout(elem, count, side_width))),
                "o": Out(stream.Signature(vector_layout(elem, len(groups[0]), side_width))),
                **({"outside": In(count)} if pad is not None else {}),
            }
        )

    @property
    def _held_lanes(self) -> list[int]:
        """The input lanes the sub-beats after the first read, in order."""
        return sorted({k for g in self.groups[1:] for k in g})

    @property
    def _shifts(self) -> bool:
        """Whether the waiting lanes shift: each read by one later sub-beat only, so a
        chain per output lane costs no more registers than one per waiting lane."""
        return self.fold > 1 and len(self._held_lanes) == (self.fold - 1) * len(self.groups[0])

    @property
    def _period(self) -> int | None:
        """The sub-beats after which the groups repeat, each lane read once in a period,
        where they repeat within a beat (a pointwise layer folded a slice of the input per
        cycle reads the whole input once per output group): the chain then rotates."""
        F, groups = self.fold, self.groups
        for P in range(1, F // 2 + 1):
            if F % P or any(groups[q] != groups[q % P] for q in range(F)):
                continue
            lanes = [k for g in groups[:P] for k in g]
            return P if len(set(lanes)) == len(lanes) else None
        return None

    @property
    def register_bits(self) -> int:
        if self.fold == 1 or self.hold:
            return 0
        width = Shape.cast(self.elem).width
        if self._period is not None:  # a row per sub-beat of the period, and `first`
            return self._period * len(self.groups[0]) * width + self.side_width + 1
        return len(self._held_lanes) * width + self.side_width + self._shifts

    def _pick(self, phase, lanes, data):
        """Input lane ``lanes[p]`` in phase ``p``, padded (``pad``) if it lies outside."""

        def by_phase(values):
            return values[0] if len(set(lanes)) == 1 else Array(values)[phase.value]

        pick = by_phase([data[s] for s in lanes])
        if self.lane_pad is None:
            return pick
        consts = [self.lane_pad[s] for s in lanes]
        shape = Shape.cast(self.elem)
        const = consts[0] if len(set(consts)) == 1 else by_phase([Const(v, shape) for v in consts])
        return Mux(by_phase([self.outside[s] for s in lanes]), const, pick)

    def elaborate(self, platform):
        m = Module()
        phase = PhaseCounter(m, self.o, self.fold, name="ser")
        data = self.i.payload.data
        if self.fold == 1:
            m.d.comb += [
                self.o.valid.eq(self.i.valid),
                self.i.ready.eq(self.o.ready),
                self.o.payload.side.eq(self.i.payload.side),
            ]
            for k, s in enumerate(self.groups[0]):
                m.d.comb += self.o.payload.data[k].eq(self._pick(phase, [s], data))
            return m
        if self.hold:
            m.d.comb += [
                self.o.valid.eq(self.i.valid),
                self.i.ready.eq(self.o.ready & phase.last),
                self.o.payload.side.eq(self.i.payload.side),
            ]
            for k in range(len(self.groups[0])):
                lanes = [self.groups[p][k] for p in range(self.fold)]
                m.d.comb += self.o.payload.data[k].eq(self._pick(phase, lanes, data))
            return m
        if self._shifts or self._period is not None:
            return self._elaborate_chain(m, phase)
        first = phase.value == 0
        held = {s: Signal(self.elem, name=f"held{s}") for s in self._held_lanes}
        side = Signal(self.side_width, name="held_side")
        take = self.i.valid & self.i.ready
        m.d.comb += [
            self.o.valid.eq(Mux(first, self.i.valid, 1)),
            self.i.ready.eq(self.o.ready & first),
            self.o.payload.side.eq(Mux(first, self.i.payload.side, side)),
        ]
        with m.If(take):
            m.d.sync += [side.eq(self.i.payload.side)]
            m.d.sync += [r.eq(data[s]) for s, r in held.items()]
        for k in range(len(self.groups[0])):
            later = [held[self.groups[p][k]] for p in range(1, self.fold)]
            if len({self.groups[p][k] for p in range(1, self.fold)}) == 1:
                late = later[0]
            else:  # phase 0 never reads this entry: index by phase, with phase 0's unused
                late = Array([later[0], *later])[phase.value]
            m.d.comb += self.o.payload.data[k].eq(Mux(first, data[self.groups[0][k]], late))
        return m

    def _elaborate_chain(self, m, phase):
        """Row ``p - 1`` of the chain holds phase ``p``'s lanes once the beat is taken; each
        later transfer moves every row one towards row 0, which ``o`` reads. The rows load
        the input for as long as the first phase lasts (whether or not it is taken), so
        their enable is a flip-flop's output and the consumer's ready, not the input's
        valid: a blend's phase multiplexer (16:1 by a 4-bit phase) was the routed critical
        path of three board builds of ``small``. Where the groups repeat every ``P``
        sub-beats (:attr:`_period`), the chain is ``P`` rows long, its last holding phase
        0's lanes, and row 0 moves to the last on each transfer: the rows rotate, and no
        multiplexer by phase (256:1 over 16 lanes, a stage-4 pointwise layer's: the routed
        critical path of a board build) lies before ``o``."""
        data, width = self.i.payload.data, len(self.groups[0])
        P = self._period
        loads = self.groups[1:] if P is None else [*self.groups[1:P], self.groups[0]]
        # Phase 0 next, as a flip-flop of its own: the phase's decode drove every row.
        first = Signal(init=1, name="ser_first")
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += first.eq(phase.last)
        rows = [
            [Signal(self.elem, name=f"row{p}_{k}") for k in range(width)]
            for p in range(1, len(loads) + 1)
        ]
        side = Signal(self.side_width, name="held_side")
        m.d.comb += [
            self.o.valid.eq(Mux(first, self.i.valid, 1)),
            self.i.ready.eq(self.o.ready & first),
            self.o.payload.side.eq(Mux(first, self.i.payload.side, side)),
        ]
        with m.If(first):
            m.d.sync += side.eq(self.i.payload.side)
            for row, lanes in zip(rows, loads, strict=True):
                m.d.sync += [r.eq(data[s]) for r, s in zip(row, lanes, strict=True)]
        with m.Elif(self.o.ready):
            for p in range(len(rows) - 1):
                m.d.sync += [r.eq(v) for r, v in zip(rows[p], rows[p + 1], strict=True)]
            if P is not None:
                m.d.sync += [r.eq(v) for r, v in zip(rows[-1], rows[0], strict=True)]
        for k in range(width):
            m.d.comb += self.o.payload.data[k].eq(Mux(first, data[self.groups[0][k]], rows[0][k]))
        return m


class Deserializer(wiring.Component):
    """``fold`` sub-beats of ``i`` (``lanes`` lanes of ``elem`` each, in phase order) as one
    beat of ``fold * lanes`` lanes on ``o``, phase ``p`` in lanes ``p * lanes ...``; the side
    bits are the last sub-beat's. The first ``fold - 1`` sub-beats wait in registers; the last
    passes straight through (no added latency).

    With ``registered``, the last waits in a register too and ``o`` is driven from
    flip-flops, as from a :class:`~.streams.HalfRateSlice`: ``i.ready`` is the output's
    emptiness, so neither ``valid`` nor ``ready`` passes combinationally and no slice need
    follow. The price: a cycle of latency, and a beat every ``fold + 1`` cycles at most (the
    next beat's sub-beats wait until this one has left)."""

    def __init__(
        self, elem, lanes: int, fold: int, side_width: int = 0, *, registered: bool = False
    ):
        if not isinstance(fold, int) or fold < 1:
            raise ValueError(f"fold must be a positive integer, not {fold!r}")
        self.elem, self.lanes, self.fold = elem, lanes, fold
        self.registered, self.side_width = bool(registered), side_width
        super().__init__(
            {
                "i": In(stream.Signature(vector_layout(elem, lanes, side_width))),
                "o": Out(stream.Signature(vector_layout(elem, fold * lanes, side_width))),
            }
        )

    @property
    def latency(self) -> int:
        """Cycles from the last sub-beat's acceptance to the beat on ``o``."""
        return int(self.registered)

    @property
    def register_bits(self) -> int:
        """The rows' bits; registered, the side bits too (valid bits excluded)."""
        held = self.fold if self.registered else self.fold - 1
        side = self.side_width if self.registered else 0
        return held * self.lanes * Shape.cast(self.elem).width + side

    def elaborate(self, platform):
        m = Module()
        phase = PhaseCounter(m, self.i, self.fold, name="des")
        rows = self.fold if self.registered else self.fold - 1
        held = [
            [Signal(self.elem, name=f"held{p}_{k}") for k in range(self.lanes)] for p in range(rows)
        ]
        if self.registered:
            side = Signal(self.side_width, name="held_side")
            # `empty` is the output's valid again, inverted, for the rows' enable: from the
            # valid itself, the rows' enable and the producer's read (its valid and this
            # ready) were one LUT, which the placer put at one end (a board build of
            # `small`: 45 tiles from the rows to it and 47 back, 13.07 ns). A flip-flop
            # equal to the valid, even a kept one, Yosys merges with it; an inverted one it
            # leaves apart, and with it a LUT of its own beside the rows.
            empty = Signal(name="empty", init=1, attrs=KEEP)
            m.d.comb += [self.i.ready.eq(~self.o.valid), self.o.payload.side.eq(side)]
            with m.If(self.i.valid & self.i.ready & phase.last):
                m.d.sync += [self.o.valid.eq(1), empty.eq(0), side.eq(self.i.payload.side)]
            with m.Elif(self.o.ready):
                m.d.sync += [self.o.valid.eq(0), empty.eq(1)]
        else:
            m.d.comb += [
                self.o.valid.eq(self.i.valid & phase.last),
                self.i.ready.eq(~phase.last | self.o.ready),
                self.o.payload.side.eq(self.i.payload.side),
            ]
        # The rows shift on each transfer into them, the new sub-beat into the last: after
        # a beat's ``rows`` transfers row p holds phase p. One enable for every row (no
        # per-row decode of the phase) and each row loads its neighbour, not the input: on
        # the placed board build of ``small`` the phase decode into far rows' enables was a
        # stage-4 layer's longest path (14.5 ns across 40 tiles). Unregistered, the last
        # sub-beat passes straight through and shifts nothing, so that the consumer's ready
        # reaches no row's enable.
        shift = self.i.valid & (empty if self.registered else ~phase.last)
        if rows:
            with m.If(shift):
                for p, row in enumerate(held):
                    src = held[p + 1] if p + 1 < rows else list(self.i.payload.data)
                    m.d.sync += [r.eq(v) for r, v in zip(row, src, strict=True)]
        out = self.o.payload.data
        for p in range(self.fold):
            for k in range(self.lanes):
                src = held[p][k] if p < rows else self.i.payload.data[k]
                m.d.comb += out[p * self.lanes + k].eq(src)
        return m


class Accumulator(wiring.Component):
    """The lane-wise sums of each ``count`` consecutive sub-beats of ``i`` (``lanes`` lanes of
    ``in_elem``) as one sub-beat on ``o`` (lanes of ``out_elem``, wide enough for the sums:
    the caller's bound); the side bits are the last sub-beat's. The first ``count - 1``
    sub-beats go into a running sum and are taken at once; the sum with the last leaves
    from a register the cycle after it (:attr:`latency`), and the last waits while that
    register is full and ``o`` not ready."""

    latency = 1

    def __init__(self, in_elem, out_elem, lanes: int, count: int, side_width: int = 0):
        for name, v in (("lanes", lanes), ("count", count)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if Shape.cast(out_elem).width < Shape.cast(in_elem).width:
            raise ValueError("the sums must be at least as wide as the sub-beats")
        self.in_elem, self.out_elem = in_elem, out_elem
        self.lanes, self.count, self.side_width = lanes, count, side_width
        self.width = Shape.cast(out_elem).width
        super().__init__(
            {
                "i": In(stream.Signature(vector_layout(in_elem, lanes, side_width))),
                "o": Out(stream.Signature(vector_layout(out_elem, lanes, side_width))),
            }
        )

    @property
    def register_bits(self) -> int:
        """The running sums and the output register."""
        sums = 2 if self.count > 1 else 1
        return sums * self.lanes * Shape.cast(self.out_elem).width + self.side_width + 1

    def elaborate(self, platform):
        m = Module()
        phase = PhaseCounter(m, self.i, self.count, name="acc")
        take = self.i.valid & self.i.ready
        first = phase.value == 0
        m.d.comb += self.i.ready.eq(~phase.last | ~self.o.valid | self.o.ready)
        for k in range(self.lanes):
            x = self.i.payload.data[k]
            total = Signal(self.out_elem, name=f"sum{k}")
            with m.If(take & ~phase.last):
                m.d.sync += total.eq(Mux(first, x, total + x))
            with m.If(take & phase.last):
                m.d.sync += self.o.payload.data[k].eq(x if self.count == 1 else total + x)
        with m.If(take & phase.last):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.side.eq(self.i.payload.side)]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m
