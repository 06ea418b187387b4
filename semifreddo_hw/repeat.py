# amaranth: UnusedElaboratable=no
"""A repeated block (paper §3.4, Fig. 5): one regular block run up to ``P`` passes per
frame, each with its own weights, pass ``p + 1`` reading pass ``p``'s output frame
(``docs/backbone.md``, "Repeated blocks").

A 3x3 layer's output pixel needs its input's neighbours, so a block's passes cannot
interleave beat by beat as a pointwise head group's do: they run frame by frame. A frame
enters from the input as pass 0; its output goes into a feedback FIFO and, once the whole
frame has entered, comes back in as pass 1, and so on; the last pass's output leaves. The
block's layers are built for ``P`` passes (:class:`~.blocks.RegularBlock` ``passes``): each
beat carries its frame's pass index above the markers, and every parameter bank reads set
``pass * sets + epoch``. A last-pass flag above the pass index says where a beat goes when it
leaves the block; the frame's count is read when its first beat enters (with the frame's
epoch) and kept for all its passes, so a count written while a frame is inside changes
nothing of that frame.

The memory this costs is the feedback FIFO: one frame of the block's features
(``width * height`` beats), plus the parameter sets of the later passes. The block's own
line buffers serve every pass: one pass's frame follows the previous one through the
window as the input's frames follow each other.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spec.stream import EOF_BIT, EPOCH_BIT, MARKER_BITS

from .blocks import RegularBlock
from .param_bank import ParamBank
from .streams import StreamFIFO, forward, vector_layout

__all__ = ["RepeatLoop"]


class RepeatLoop(wiring.Component):
    """``block`` (a :class:`~.blocks.RegularBlock` built with ``passes`` P > 1 and
    ``frame_bits`` 1) run ``count`` passes per frame, ``count`` the run-time value of the
    ``repeat_write`` port's bank (``repeat_init`` at power-up; 0 runs one pass, past P runs
    P, the bank being ``P.bit_length()`` bits wide: writes are taken modulo its width), read
    with the frame's epoch when its first beat enters (``sets`` 2: one count per parameter
    set).

    Frames enter one at a time: a new frame's first beat waits until the frame before has
    entered for its last pass, so a frame of ``count`` passes holds the input for the
    block's time of ``count - 1`` frames more. The output frames are the last passes', in
    input order. Ports: ``i``, ``o`` (the block's channels, markers only), ``repeat_write``,
    and the block's parameter write ports under the block's names; :attr:`layers` are the
    block's.
    """

    def __init__(self, block: RegularBlock, *, repeat_init: int = 1, sets: int = 1):
        if not isinstance(block, RegularBlock) or block.passes < 2:
            raise ValueError("a repeat loop runs a RegularBlock built for two or more passes")
        passes = block.passes
        self.pass_bits = ceil_log2(passes)
        if len(block.i.payload.side) != MARKER_BITS + self.pass_bits + 1:
            raise ValueError(
                "the block must carry one frame bit (frame_bits=1): the last-pass flag"
            )
        if not isinstance(repeat_init, int) or not 1 <= repeat_init <= passes:
            raise ValueError(f"repeat_init must be an integer in 1..{passes}")
        if sets not in (1, 2):
            raise ValueError(f"sets must be 1 or 2, not {sets!r}")
        self.block, self.passes, self.sets = block, passes, sets
        self.layers = block.layers
        self.repeat_bank = ParamBank(
            unsigned(passes.bit_length()), 1, sets=sets, init=[[repeat_init]] * sets
        )
        self._params = [name for name in block.signature.members if name.endswith("_write")]
        layout = vector_layout(signed(8), block.channels, MARKER_BITS)
        super().__init__(
            {
                "i": In(stream.Signature(layout)),
                "o": Out(stream.Signature(layout)),
                "framing_error": Out(1),
                "repeat_write": self.repeat_bank.signature.members["write"],
                **{name: block.signature.members[name] for name in self._params},
            }
        )

    @property
    def loop_depth(self) -> int:
        """The feedback FIFO's depth: a frame of the block's beats. Only one frame's beats
        go round at a time, so a pass's output always finds room (no deadlock)."""
        return max(2, self.block.width * self.block.height)

    @property
    def _extra(self) -> int:
        """Most beats the loop holds beyond the block's own: a frame going round, and the
        block's beats of the frame before (leaving after their last pass)."""
        return self.loop_depth + self.block.lag[1] + 2

    @property
    def lag(self) -> tuple[int, int]:
        """As the block's (:attr:`RegularBlock.lag <.blocks._Block.lag>`), and up to a frame
        and a block's worth more while passes go round."""
        lo, hi = self.block.lag
        return lo, hi + self._extra

    @property
    def pipe_beats(self) -> int:
        return self.block.pipe_beats + self._extra

    @property
    def memory_bits(self) -> int:
        """The feedback FIFO's bits (the parameter banks are the layers')."""
        return self.loop_depth * len(self.block.o.payload.as_value())

    def elaborate(self, platform):
        m = Module()
        blk = self.block
        m.submodules.block, m.submodules.repeat_bank = blk, self.repeat_bank
        for name in self._params:
            forward(m, getattr(self, name), getattr(blk, name))
        forward(m, self.repeat_write, self.repeat_bank.write)
        m.d.comb += self.framing_error.eq(blk.framing_error)
        m.submodules.feedback = fb = StreamFIFO(blk.o.payload.shape(), self.loop_depth)
        last_bit = MARKER_BITS + self.pass_bits

        # Which stream enters: a frame is taken whole from one source. A looped frame (the
        # FIFO's) goes before a new one; a new one starts only once no beat of a frame with
        # passes still to go is inside the block or the FIFO ("owed": entered, its next pass
        # not yet entered; counted out when that pass takes it from the FIFO, since a beat
        # written into the FIFO shows at its output only cycles later).
        in_fresh = Signal(name="in_fresh")  # inside a new frame (entered, not its end)
        in_loop = Signal(name="in_loop")  # inside a looped frame
        owed = Signal(range(2 * self.loop_depth + 1), name="owed")
        take_loop, take_fresh = Signal(name="take_loop"), Signal(name="take_fresh")
        m.d.comb += [
            take_loop.eq(~in_fresh & (in_loop | fb.o.valid)),
            take_fresh.eq(in_fresh | (~in_loop & ~fb.o.valid & (owed == 0))),
        ]
        side = Mux(take_loop, fb.o.payload.side, self.i.payload.side)
        pass_ = Signal(self.pass_bits, name="pass")
        m.d.comb += pass_.eq(Mux(take_loop, fb.o.payload.side[MARKER_BITS:last_bit] + 1, 0))

        # The frame's count: read (with its epoch) when its first beat enters as pass 0, kept
        # for its later passes. Whether a pass is the last: decided at its first beat.
        count_reg = Signal.like(self.repeat_bank.element(0), name="count_reg")
        count = Mux(take_fresh, self.repeat_bank.element(0), count_reg)
        if self.sets > 1:
            m.d.comb += self.repeat_bank.select.eq(side[EPOCH_BIT])
        first = ~in_fresh & ~in_loop
        last_reg, last = Signal(name="last_reg"), Signal(name="last")
        m.d.comb += last.eq(Mux(first, (pass_ + 1 >= count) | (pass_ == self.passes - 1), last_reg))

        bi = blk.i
        m.d.comb += [
            bi.valid.eq(Mux(take_loop, fb.o.valid, take_fresh & self.i.valid)),
            self.i.ready.eq(take_fresh & bi.ready),
            fb.o.ready.eq(take_loop & bi.ready),
            bi.payload.data.eq(Mux(take_loop, fb.o.payload.data, self.i.payload.data)),
            bi.payload.side.eq(Cat(side[:MARKER_BITS], pass_, last)),
        ]
        admit = bi.valid & bi.ready
        with m.If(admit):
            m.d.sync += last_reg.eq(last)
            with m.If(take_loop):
                m.d.sync += in_loop.eq(~side[EOF_BIT])
            with m.Else():
                m.d.sync += in_fresh.eq(~side[EOF_BIT])
                with m.If(first):
                    m.d.sync += count_reg.eq(count)
        m.d.sync += owed.eq(owed + (admit & ~last) - (admit & take_loop))

        # Leaving the block: the last pass out, the others back into the FIFO.
        bo = blk.o
        out_last = bo.payload.side[last_bit]
        m.d.comb += [
            self.o.valid.eq(bo.valid & out_last),
            fb.i.valid.eq(bo.valid & ~out_last),
            bo.ready.eq(Mux(out_last, self.o.ready, fb.i.ready)),
            self.o.payload.data.eq(bo.payload.data),
            self.o.payload.side.eq(bo.payload.side[:MARKER_BITS]),
            fb.i.payload.eq(bo.payload),
        ]
        return m
