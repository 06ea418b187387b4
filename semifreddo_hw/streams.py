"""Stream plumbing shared by the streaming blocks: the beat layout (:func:`vector_layout`),
handshake helpers (:func:`fork`, :func:`join`, :func:`forward`), the channel-shuffle lane
map, register slices (:class:`SkidBuffer`, :class:`HalfRateSlice`) and a FIFO
(:class:`StreamFIFO`)."""

from amaranth.hdl import C, Cat, Module, Shape, ShapeCastable, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spec.stream import EPOCH_BIT, MARKER_BITS

__all__ = [
    "vector_layout",
    "marker_width",
    "beat_set",
    "fork",
    "forward",
    "join",
    "shuffle_lanes",
    "HalfRateSlice",
    "SkidBuffer",
    "StreamFIFO",
]


def vector_layout(elem: ShapeCastable, count: int, side_width: int = 0) -> data.StructLayout:
    """One beat: ``data``, ``count`` lanes of ``elem`` (lane 0 in the low bits), and ``side``,
    ``side_width`` bits that a block carries through unchanged, aligned with its result (line
    and frame markers, say)."""
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"lane count must be a positive integer, not {count!r}")
    if not isinstance(side_width, int) or side_width < 0:
        raise ValueError(f"side_width must be a non-negative integer, not {side_width!r}")
    return data.StructLayout({"data": data.ArrayLayout(elem, count), "side": unsigned(side_width)})


def marker_width(passes: int = 1) -> int:
    """Side bits of a beat inside a block run ``passes`` times per beat (a repeated head
    group): the markers (:data:`spec.stream.MARKER_BITS`), then the beat's pass index."""
    return MARKER_BITS + ceil_log2(passes)


def beat_set(side, sets: int, passes: int = 1):
    """The parameter set a beat with markers ``side`` (:func:`marker_width` ``(passes)``
    bits) is computed with, in a bank of ``sets * passes`` sets: ``pass * sets + epoch``
    (the epoch marker counts only with two sets)."""
    epoch = side[EPOCH_BIT] if sets > 1 else C(0, 0)
    return Cat(epoch, side[MARKER_BITS : marker_width(passes)])


def fork(m, src, *dsts) -> None:
    """Give every beat of stream ``src`` to all of ``dsts``.

    Each destination takes the beat when it is ready (a flag remembers who has it), and
    ``src`` moves on once all have: nothing is lost or duplicated under any valid/ready
    pattern. No ``valid`` depends on a ``ready``, so a fork may feed a :func:`join`
    (whose ``ready`` depends on ``valid``) without a combinational loop.

    The flags are cleared without a reset of their own: a phase bit flips as ``src`` moves
    on, and a destination has the beat while its mark differs from the phase (it takes the
    beat by setting its mark to the phase's next value). Cleared by a synchronous reset,
    the flags had a reset net of their own, and on the ECP5, whose eight flip-flops of a
    tile share one, the placer had to find them a tile of their own, far from their logic
    where the design is dense: the longest paths of a placed board build (23 ns).
    """
    phase = Signal(name="fork_phase")
    marks = [Signal(name=f"fork_taken{k}") for k in range(len(dsts))]
    taken = [mark ^ phase for mark in marks]
    done = [t | d.ready for t, d in zip(taken, dsts, strict=True)]
    m.d.comb += src.ready.eq(Cat(*done).all())
    with m.If(src.valid & src.ready):
        m.d.sync += phase.eq(~phase)
    for mark, t, d in zip(marks, taken, dsts, strict=True):
        m.d.comb += d.valid.eq(src.valid & ~t)
        with m.If(d.valid & d.ready):
            m.d.sync += mark.eq(~phase)


def forward(m, outer, inner) -> None:
    """Pass an always-ready stream port of a component (``outer``) to the same port of a
    sub-component (``inner``). ``wiring.connect`` refuses this case: both ``ready`` members
    are the constant 1."""
    m.d.comb += [inner.valid.eq(outer.valid), inner.payload.eq(outer.payload)]


def join(m, srcs, dst) -> None:
    """Handshake for a beat of ``dst`` built from one beat of each of ``srcs`` (the payload
    is the caller's): valid when all are, and all are consumed together.

    A source's ``ready`` leaves out its own ``valid`` (ready while not valid moves
    nothing): a source whose ``valid`` is a flip-flop then has no path from that flip-flop
    through the consumer's logic back to its own enable. On the placed board build of
    ``small`` a block's registered deserializer went 44 tiles to the next block's fork
    and back that way (12.4 ns)."""
    valids = [s.valid for s in srcs]
    m.d.comb += dst.valid.eq(Cat(*valids).all())
    for k, s in enumerate(srcs):
        m.d.comb += s.ready.eq(dst.ready & Cat(*valids[:k], *valids[k + 1 :]).all())


def shuffle_lanes(channels: int) -> list[int]:
    """Two-group channel shuffle as a lane map: output ``2k`` is input ``k`` and output
    ``2k + 1`` is input ``channels/2 + k`` (wiring only)."""
    if channels % 2:
        raise ValueError(f"channel shuffle needs an even channel count, not {channels}")
    half = channels // 2
    return [k // 2 + (half if k % 2 else 0) for k in range(channels)]


class SkidBuffer(wiring.Component):
    """A register slice: ``o`` is driven from flip-flops and ``i.ready`` is a flip-flop, so
    neither ``valid`` nor ``ready`` passes combinationally from one side to the other. Holds
    up to two beats (:attr:`beats`) and passes one per clock when ``o`` is always ready."""

    beats = 2

    def __init__(self, layout: ShapeCastable):
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        # Payload registers without a reset: read only beside their valid bit (and on an
        # ECP5 one fed by a block RAM can move into it, ``generators.ecp5_outreg``).
        skid = Signal.like(self.i.payload, name="skid", reset_less=True)
        payload = Signal.like(self.o.payload, name="payload", reset_less=True)
        skid_valid = Signal()
        m.d.comb += [self.i.ready.eq(~skid_valid), self.o.payload.eq(payload)]
        with m.If(~self.o.valid | self.o.ready):
            # The output register is free: refill it from the skid register, else the input.
            with m.If(skid_valid):
                m.d.sync += [payload.eq(skid), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & self.i.ready):
            # Output stalled: the beat accepted this cycle (ready was high) parks in the skid.
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m


class HalfRateSlice(wiring.Component):
    """A register slice of one register: ``o`` is driven from flip-flops and ``i.ready`` is
    the register's emptiness, so neither ``valid`` nor ``ready`` passes combinationally.
    Holds one beat (:attr:`beats`) and passes at most one every other clock: half the
    registers of a :class:`SkidBuffer`, for streams whose beats are at least two cycles
    apart in the steady flow (every stream after a stride-2 stem). A burst (a window's
    zero flush, a FIFO draining) is paced to every other cycle: a bounded delay, not a
    lower frame rate."""

    beats = 1

    def __init__(self, layout: ShapeCastable):
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        payload = Signal.like(self.o.payload, name="payload", reset_less=True)  # as above
        m.d.comb += [self.i.ready.eq(~self.o.valid), self.o.payload.eq(payload)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [payload.eq(self.i.payload), self.o.valid.eq(1)]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m


def half_rate_slice(m, name, src):
    """``src`` through a :class:`HalfRateSlice` added to ``m`` as submodule ``name``;
    returns the slice's output stream."""
    s = HalfRateSlice(src.payload.shape())
    m.submodules[name] = s
    wiring.connect(m, src, s.i)
    return s.o


class StreamFIFO(wiring.Component):
    """A first-in first-out queue of ``depth`` beats of ``layout`` (``SyncFIFOBuffered``:
    ``i.ready`` and ``o.valid`` come from flip-flops). Used to delay-balance branches."""

    def __init__(self, layout: ShapeCastable, depth: int):
        if not isinstance(depth, int) or depth < 2:
            raise ValueError(f"depth must be an integer >= 2, not {depth!r}")
        self.depth = depth
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    @property
    def bits(self) -> int:
        return self.depth * Shape.cast(self.i.payload.shape()).width

    def elaborate(self, platform):
        m = Module()
        m.submodules.q = q = fifo.SyncFIFOBuffered(
            width=Shape.cast(self.i.payload.shape()).width, depth=self.depth
        )
        m.d.comb += [
            q.w_en.eq(self.i.valid),
            q.w_data.eq(self.i.payload),
            self.i.ready.eq(q.w_rdy),
            self.o.valid.eq(q.r_rdy),
            self.o.payload.eq(q.r_data),
            q.r_en.eq(self.o.ready),
        ]
        return m
