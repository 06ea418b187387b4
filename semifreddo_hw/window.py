"""3x3 sliding window over a raster-scan pixel stream (the line buffer of every 3x3 layer).

Pixels arrive in raster order, one beat per pixel (all channels), with end-of-line and
end-of-frame markers in the ``side`` bits (:mod:`spec.stream`). For every output
position the block emits the full 3x3 neighbourhood, padded at all four borders (with
zeros, or a constant per channel: the stems' input padding), for stride 1 (every pixel) or
stride 2 (even rows and columns: ``ceil(W/2) x ceil(H/2)``).

How it works: two rows of history sit in one memory (depth ``width``, one word = the two
previous rows of a column), read one cycle ahead; a 3x3 register window shifts one column
per step. The window centred on pixel ``n - (width + 1)`` is complete when pixel ``n``
arrives, so a frame's last ``width + 1`` windows need ``width + 1`` more steps. If the next
frame is already arriving, its first pixels provide those steps (its first row enters the
line buffer while the previous frame's bottom row, padded, leaves): back-to-back frames take
``width * height`` cycles each. If no pixel is waiting at the end of a frame, the block
flushes on its own (``width + 1`` steps, input not ready; the rows it stands for are
outside the frame, masked wherever read), so no window is ever
held back waiting for a next frame. (Behind a register slice, a pixel every other cycle;
with the late load, a step every other cycle, the flush's too: see ``SlidingWindow``.)
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Shape, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spec.stream import EOF_BIT, EOL_BIT, EPOCH_BIT, MARKER_BITS

from .streams import HalfRateSlice, vector_layout

__all__ = ["MemoryWindow", "SlidingWindow", "check_frame", "lane_pad"]


def check_frame(channels, width, height, stride, pad) -> tuple[int, ...]:
    """A window's frame checked (positive sizes, stride 1 or 2, ``pad`` None or an int8
    per channel; ``ValueError`` naming what is wrong); returns the pad per channel."""
    for name, v in (("channels", channels), ("width", width), ("height", height)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, not {v!r}")
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, not {stride!r}")
    pad = (0,) * channels if pad is None else tuple(int(v) for v in pad)
    if len(pad) != channels or any(not -128 <= v <= 127 for v in pad):
        raise ValueError(f"pad must be {channels} int8 values, not {pad!r}")
    return pad


def lane_pad(pad) -> tuple[int, ...]:
    """Per window lane ``(ky * 3 + kx) * channels + c``, what it reads outside the frame:
    channel ``c``'s constant of ``pad``."""
    return tuple(pad) * 9


#: Registers of :class:`_Raster` for the epoch markers: the frame being read's, the one before.
_EPOCH_REGISTERS = 2

#: Words of an FPGA's LUT RAM cell (the ECP5's ``TRELLIS_DPR16X4``): a line memory deeper than
#: this is a block RAM candidate (:class:`SlidingWindow`).
LUT_RAM_DEPTH = 16

#: Line memories of a :class:`MemoryWindow` up to this many words (frames up to 21 pixels
#: wide) whose lanes choose among more than 4 channel groups are kept in LUT RAM
#: (``ram_style = "distributed"``) and read through lane multiplexers that start at the
#: memory's read register: four rows of LUT RAM cells; a block RAM would be an eighth used
#: in depth at most.
LUT_RAM_WORDS = 4 * LUT_RAM_DEPTH


class _Frame:
    """What both windows share: the checked frame geometry, the frame timing and the lag."""

    def _frame(self, channels, width, height, stride, pad, side=MARKER_BITS, sliced=False):
        pad = check_frame(channels, width, height, stride, pad)
        if not isinstance(side, int) or side < MARKER_BITS:
            raise ValueError(f"side must be an integer >= {MARKER_BITS}, not {side!r}")
        if not isinstance(sliced, bool):
            raise TypeError(f"sliced must be a bool, not {type(sliced).__name__}")
        #: A :class:`~.streams.HalfRateSlice` in front (``sliced``): ``i.ready`` is a
        #: flip-flop and the stepping sees a registered pixel, so that no path runs from the
        #: producer (a block's fork, say) through the step into the window's enables and
        #: back. For inputs at least two cycles apart (it passes one every other clock).
        self.sliced = sliced
        #: Side bits of a beat: the markers, then bits every beat of a frame carries alike
        #: (a repeated block's pass index), kept with the frame as its epoch is.
        self.side = side
        self.channels, self.width, self.height, self.stride = channels, width, height, stride
        self.pad = pad
        self.out_width = -(-width // stride)
        self.out_height = -(-height // stride)

    @property
    def frame_cycles(self) -> int:
        """Cycles per frame, frames back to back with no stalls (frames 1 pixel high flush
        after every frame: ``width + 1`` more)."""
        return self.width * self.height + (0 if self.height >= 2 else self.width + 1)

    @property
    def flush_cycles(self) -> int:
        """Cycles to finish a frame when no next frame follows at once."""
        return self.width + 1

    @property
    def lane_pad(self) -> tuple[int, ...]:
        """What each window lane reads outside the frame (:func:`lane_pad`)."""
        return lane_pad(self.pad)

    @property
    def lag(self) -> tuple[int, int]:
        """Fewest and most output beats the window holds (pixels taken whose window has not
        been given) inside a stream of frames: a stride-1 centre waits for the pixel below
        and to its right, ``width + 1`` pixels later, and one window waits in the output
        register. A frame's tail flushes without input when none follows: the fewest
        applies while the next pixel is arriving. Stride 2 counts in output beats (half a
        row each way) and promises no least lag."""
        w_out = -(-self.width // self.stride)
        lo, hi = (self.width + 1, self.width + 2) if self.stride == 1 else (0, w_out + 3)
        return lo, hi + self.sliced  # the slice's pixel

    def _input(self, m):
        """The stream the window steps on: ``i``, or the slice behind it (``sliced``)."""
        if not self.sliced:
            return self.i
        m.submodules.entry = entry = HalfRateSlice(self.i.payload.shape())
        wiring.connect(m, wiring.flipped(self.i), entry.i)
        return entry.o

    @property
    def slice_bits(self) -> int:
        """Registers of the slice in front (``sliced``; 0 without)."""
        return Shape.cast(self.i.payload.shape()).width + 1 if self.sliced else 0


class SlidingWindow(_Frame, wiring.Component):
    """3x3 windows of a ``width`` x ``height`` frame of ``channels`` int8 channels.

    Output lane ``(ky * 3 + kx) * channels + c`` is channel ``c`` of the pixel at row offset
    ``ky - 1`` and column offset ``kx - 1`` from the window centre (``pad[c]`` outside the
    frame: 0 unless ``pad``, int8 constants per channel, is given).
    Output beats carry their own end-of-line and end-of-frame markers, and the epoch
    (:data:`spec.stream.EPOCH`) of their frame's first pixel. Input markers are checked
    against the fixed frame size: a mismatch sets the sticky ``framing_error`` output.

    With ``defer_pad``, the output lanes are the window's registers as they are and the
    padding is left to the consumer: ``outside`` (one bit per output lane) says which lanes
    lie outside the frame, and :attr:`lane_pad` what each of them reads then. A consumer that
    picks a few lanes (or digits) per cycle out of the held window pads only what it picks:
    one multiplexer per picked bit instead of one per window bit (1,024 LUTs for a 16-channel
    window on an FPGA).

    With ``late`` (``sliced`` only), the window's registers load the cycle after the step,
    from the step's own flip-flop: the step (the consumer's ready, the slice's valid, the
    position's flags) then drives only the position's counters and flags, not the hundreds of
    window bits' enables nor the line memory's read address (which becomes the column
    counter itself). The slice still holds the pixel in that cycle (it takes one every other
    clock). The cost: a window reaches the output a cycle later, no step follows a step
    directly (the zero flush runs at every other clock), and a consumer that holds the
    window in place (``defer_pad``) frees it a cycle later than it could have.

    Any valid/ready pattern is tolerated; with ``o.ready`` high the block takes one pixel per
    clock within a frame (``sliced``: a register slice in front, one every other clock).
    """

    def __init__(
        self,
        channels: int,
        width: int,
        height: int,
        *,
        stride: int = 1,
        pad=None,
        defer_pad: bool = False,
        side: int = MARKER_BITS,
        sliced: bool = False,
        late: bool = False,
    ):
        self._frame(channels, width, height, stride, pad, side, sliced)
        self.defer_pad = bool(defer_pad)
        if not isinstance(late, bool):
            raise TypeError(f"late must be a bool, not {type(late).__name__}")
        if late and not sliced:
            raise ValueError("late needs sliced (the slice holds the pixel a cycle longer)")
        #: The window's registers load a cycle after the step (see above).
        self.late = late
        super().__init__(
            {
                "i": In(stream.Signature(vector_layout(signed(8), channels, side))),
                "o": Out(stream.Signature(vector_layout(signed(8), 9 * channels, side))),
                "framing_error": Out(1),
                **({"outside": Out(9 * channels)} if self.defer_pad else {}),
            }
        )

    @property
    def flush_cycles(self) -> int:
        """Cycles to finish a frame when no next frame follows at once (``late``: a step
        every other clock)."""
        return (self.width + 1) * (2 if self.late else 1)

    @property
    def memory_bits(self) -> int:
        return self.width * 2 * self.channels * 8

    @property
    def register_bits(self) -> int:
        """Window, output side and flag registers, the position's comparisons, the
        frame's epochs, and (two or more columns) the written-back row's column and enable
        (counters excluded; the row itself is written from the window's registers), and
        :attr:`slice_bits` and :attr:`late_bits`."""
        write_back = self._column_bits + 1 if self.width >= 2 else 0
        tags = _EPOCH_REGISTERS * (self.side - EPOCH_BIT)
        flags = 5 + _Raster.FLAGS
        window = 9 * self.channels * 8 + self.side + flags + tags + write_back
        return window + self.slice_bits + self.late_bits

    @property
    def late_bits(self) -> int:
        """Registers of the late load (``late``; 0 without): the step's flip-flop, the
        window's emission, and (two or more columns) the written-back column's second."""
        if not self.late:
            return 0
        return 2 + (self._column_bits if self.width >= 2 else 0)

    @property
    def _column_bits(self) -> int:
        """Bits of a column register (``x``'s and its copies')."""
        return max(1, (self.width - 1).bit_length())

    def elaborate(self, platform):
        m = Module()
        C, W, H, S = self.channels, self.width, self.height, self.stride
        pixel = data.ArrayLayout(signed(8), C)
        m.submodules.lines = lines = memory.Memory(
            shape=data.ArrayLayout(pixel, 2), depth=W, init=[]
        )
        wr = lines.write_port()
        # W == 1 reads what it just wrote. Transparent, the read can also register its
        # address instead of its data (LUT RAM): a few flip-flops instead of a word's.
        # A line memory deeper than an FPGA's LUT RAM cell (16 words) is where block RAM
        # pays (a heuristic: the board build's placement, generators.board, ranks memories
        # by the LUT RAM they save, not by depth), and there the window's newest column
        # must stay a register of its own: a
        # transparent read lets Yosys merge that column into the block RAM's read latch,
        # whose data comes 5.8 ns after the clock on the ECP5, straight into the consumer's
        # multiplexers (on the placed ``small`` board build, a stem's line memory into its
        # product: 13.8 ns). So the deep memory reads into its own register instead (the
        # read runs a column or more ahead of the write-back; where they meet, after a
        # frame's flush, what is read lies outside the frame: no collision to care about).
        rd = lines.read_port(transparent_for=() if W > LUT_RAM_DEPTH else (wr,))

        i = self._input(m)
        free = ~self.o.valid | self.o.ready
        if self.late:  # the step's flip-flop: the window loads in the cycle after the step
            load = Signal(name="load")
            free &= ~load  # no step while the last one's window loads: it may occupy o
        r = _Raster(m, i, free, W, H, S)
        step, x = r.step, r.x
        if self.late:
            # The window loads from what the step chose, a cycle later: the column read at
            # the step's own column (the counter), the pixel the slice still holds (it
            # takes a new one only after its valid has fallen), and whether it is emitted.
            emit = Signal(name="emit")
            m.d.sync += [load.eq(step), emit.eq(r.emit)]
            m.d.comb += rd.addr.eq(x)
        else:
            load, emit = step, r.emit
            m.d.comb += rd.addr.eq(Mux(step, r.x_next, x))  # read one step ahead

        # Flush steps take whatever the input holds: the rows they stand for lie outside the
        # frame, so every window that reads them masks them.
        new_pixel = i.payload.data.as_value()
        column = [rd.data[0], rd.data[1], new_pixel]  # rows y-2, y-1, y at column x
        win = [[Signal(pixel, name=f"win{ky}{kx}") for kx in range(3)] for ky in range(3)]
        mask_top, mask_bottom, mask_left, mask_right = (
            Signal(name=n) for n in ("pad_top", "pad_bottom", "pad_left", "pad_right")
        )
        # Address and data unconditional (only the enable follows the step): no multiplexer.
        # Two or more columns: the row written back a cycle later, from registers, so that
        # the memory's read never drives its own write in one cycle (a block RAM's data
        # output is slow). Those registers are the window's newest column: the step loads
        # rows y-1 and y of column x into ``win12`` and ``win22``, and they keep them
        # through the next cycle, when the write happens (a step in that cycle changes them
        # only at its end). The next step reads another column; a read of the same column
        # (two columns, at the wrap) sees the write through the port's transparency.
        # (``late``: everything a cycle later, the written-back column kept a cycle longer.)
        if W >= 2:
            wb_addr = Signal.like(x, name="wb_addr")
            column_x = x
            if self.late:
                column_x = Signal.like(x, name="load_x")
                m.d.sync += column_x.eq(x)
            m.d.sync += [wr.en.eq(load), wb_addr.eq(column_x)]
            m.d.comb += [wr.addr.eq(wb_addr), wr.data.eq(Cat(win[1][2], win[2][2]))]
        else:
            m.d.comb += [
                wr.addr.eq(x),
                wr.data.eq(Cat(rd.data[1].as_value(), new_pixel)),
                wr.en.eq(load),
            ]
        with m.If(load):
            for ky in range(3):
                m.d.sync += [
                    win[ky][0].eq(win[ky][1]),
                    win[ky][1].eq(win[ky][2]),
                    win[ky][2].eq(column[ky]),
                ]
            m.d.sync += self.o.valid.eq(emit)
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        # The position's side: loaded at the step (late: while the output is empty, the
        # step having found it so or emptied it).
        with m.If(step):
            m.d.sync += [
                Cat(mask_top, mask_bottom, mask_left, mask_right).eq(r.masks),
                self.o.payload.side.eq(r.markers),
            ]

        # Padding: the rows and columns of the window that lie outside the frame read the
        # pad constants (a mux to a constant: zeros cost no more than any other value), here
        # or, deferred, in the consumer.
        out = self.o.payload.data
        masks = Cat(mask_top, mask_bottom, mask_left, mask_right)
        for ky in range(3):
            for kx in range(3):
                pad = _outside(masks, ky, kx)
                for c in range(C):
                    lane = (ky * 3 + kx) * C + c
                    if self.defer_pad:
                        m.d.comb += [out[lane].eq(win[ky][kx][c]), self.outside[lane].eq(pad)]
                    else:
                        m.d.comb += out[lane].eq(Mux(pad, self.pad[c], win[ky][kx][c]))

        r.check_markers(m, self.framing_error)
        return m


def _pick(values, index, same):
    """``values[index]``, or the first where all are ``same``."""
    return values[0] if same else Array(values)[index]


def _outside(masks, ky, kx):
    """Whether tap ``(ky, kx)`` lies outside the frame, from the border ``masks`` (top,
    bottom, left, right) of the window's position."""
    top, bottom, left, right = masks[0], masks[1], masks[2], masks[3]
    return {0: top, 2: bottom}.get(ky, 0) | {0: left, 2: right}.get(kx, 0)


class MemoryWindow(_Frame, wiring.Component):
    """The 3x3 windows of :class:`SlidingWindow`, given to a folded consumer one sub-beat at
    a time as a :class:`~.fold.Serializer` would: sub-beat ``p`` of each window holds lanes
    ``groups[p]`` (window lanes ``(ky * 3 + kx) * channels + c``, all of one tap per
    sub-beat), padded, with the window's markers.

    The neighbourhood is never copied into registers: three rows of pixels stay in one
    memory (a bank per row, rotating), and each sub-beat reads its tap's pixel there
    (registered once more before the lane multiplexers; with :attr:`preselect`, the
    register holds each lane's candidates, half chosen). So a 16-channel window costs a pixel
    register or two instead of 1,152 flip-flops, and the consumer's lane multiplexer becomes
    the memory's address.
    The price: a third row of memory, and a window every ``len(groups) + 1`` cycles at most
    (the step that writes the next pixel waits until the last sub-beat has been read).
    ``sliced`` as :class:`SlidingWindow`'s.
    """

    def __init__(
        self, channels, width, height, *, stride=1, pad=None, groups, side=MARKER_BITS, sliced=False
    ):
        self._frame(channels, width, height, stride, pad, side, sliced)
        if width < 3:  # a step at x == 0 writes column 0 of the bank the top row is in
            raise ValueError(f"a memory window needs a frame 3 or more wide, not {width}")
        if not groups or any(len(g) != len(groups[0]) for g in groups):
            raise ValueError("every sub-beat must take the same number of lanes")
        taps = []
        for g in groups:
            if any(not 0 <= k < 9 * channels for k in g):
                raise ValueError(f"lanes must lie in 0..{9 * channels - 1}")
            if len({k // channels for k in g}) != 1:
                raise ValueError(f"sub-beat lanes {g} span several taps; each must read one")
            taps.append(g[0] // channels)
        self.groups, self.fold, self._taps = [list(g) for g in groups], len(groups), taps
        # Sub-beats as (tap, group): where the taps run 0..8 within each group of nine
        # sub-beats that read the same channels (a layer folded a slice per cycle, the
        # stems), two small counters; otherwise the sub-beat's index and a table. The
        # lanes' channel multiplexers then have one input per group, not per sub-beat.
        chans = [[k % channels for k in g] for g in groups]
        F = len(groups)
        self._regular = F % 9 == 0 and all(
            t == p % 9 and chans[p] == chans[p - p % 9] for p, t in enumerate(taps)
        )
        self._group_chans = chans[::9] if self._regular else chans
        # Where a lane chooses among more than 4 groups (a multiplexer of 3 LUT levels or
        # more, and the pad, into the consumer's register) and the line memory is of up to
        # LUT_RAM_WORDS words, the memory stays in LUT RAM, where its read register is a
        # flip-flop like any other: the lanes' channel multiplexers then start there, each
        # lane's channel chosen among the groups' by the low bits of the group index into
        # the pixel register (padding included) and by the rest at the output (one of two
        # up to 16 groups). Elsewhere the memory may go to block RAM, whose read data is
        # slow unless its own output register takes the pixel: the whole pixel is
        # registered as read (48 words of 4 channels: one block RAM, or 24 LUT RAM cells
        # and their read multiplexer).
        self.preselect = 3 * width <= LUT_RAM_WORDS and len(self._group_chans) > 4
        # (more than 4 groups: 2 or 3 low bits, 2 or more values of the high ones)
        low = (len(self._group_chans) - 1).bit_length() - 1
        self._low_bits = min(3, low) if self.preselect else 0
        super().__init__(
            {
                "i": In(stream.Signature(vector_layout(signed(8), channels, side))),
                "o": Out(stream.Signature(vector_layout(signed(8), len(groups[0]), side))),
                "framing_error": Out(1),
            }
        )

    @property
    def interval(self) -> int:
        """Fewest cycles between two windows: the sub-beats' reads and the step."""
        return self.fold + 1

    @property
    def lag(self) -> tuple[int, int]:
        """As :class:`SlidingWindow`'s, and one window more at most: a window's last
        sub-beat may still be in the read's two stages when the next step has taken a
        pixel."""
        lo, hi = super().lag
        return lo, hi + 1

    @property
    def memory_bits(self) -> int:
        return 3 * self.width * self.channels * 8

    @property
    def register_bits(self) -> int:
        """The pixel read (the memory's read register and its copy, or the lanes' candidates
        chosen from it), the read address, the
        held position (its flag, column, row bank, masks and markers), each sub-beat's
        valid, outside flag, markers and group in both stages of the read (with
        `preselect`, the second holds the group's high bits only, the pads applied), the
        position's comparisons and the frame's epochs (counters, the row bank and the error
        flag excluded)."""
        address = (3 * self.width - 1).bit_length()
        pos = 1 + self.width.bit_length() + 2 + 4 + self.side
        G = len(self._group_chans)
        read = 2 + self.side + (G - 1).bit_length()  # valid, outside, markers, group
        if self.preselect:
            highs = -(-G // (1 << self._low_bits))
            pixel = len(self.groups[0]) * highs * 8
            out = 1 + self.side + (highs - 1).bit_length()  # valid, markers, high bits
        else:
            pixel = self.channels * 8
            out = read
        tags = _EPOCH_REGISTERS * (self.side - EPOCH_BIT)
        return (
            self.channels * 8
            + pixel
            + address
            + pos
            + read
            + out
            + _Raster.FLAGS
            + tags
            + self.slice_bits
        )

    def elaborate(self, platform):
        m = Module()
        C, W, H, S, F = self.channels, self.width, self.height, self.stride, self.fold
        pixel = data.ArrayLayout(signed(8), C)
        attrs = {"ram_style": "distributed"} if self.preselect else None
        m.submodules.lines = lines = memory.Memory(shape=pixel, depth=3 * W, init=[], attrs=attrs)
        wr = lines.write_port()
        rd = lines.read_port()

        taps, regular, group_chans = self._taps, self._regular, self._group_chans
        G = len(group_chans)
        count = Signal(range(9 if regular else F), name="count")  # tap, or sub-beat
        group = Signal(range(G), name="group")
        tap = count if regular else Array(Const(t, range(9)) for t in taps)[count]
        last_in_group = count == (8 if regular else F - 1)
        last = last_in_group & (group == G - 1) if regular else last_in_group

        # A position is held from its step until its last sub-beat's read; the next step
        # (which writes a pixel) waits for that, so no read ever sees a later row.
        held = Signal(name="held")
        i = self._input(m)
        r = _Raster(m, i, ~held, W, H, S)

        # Rows rotate through three banks, one step per row: `bank` takes the row being
        # written. The window at (cx, cy) reads rows cy - 1 .. cy + 1; cy + 1 is the row
        # being written, or (a step at x == 0) the row before it.
        def minus(b, k):
            return Mux(b >= k, b - k, b + 3 - k)

        bank = Signal(range(3), name="bank")
        new_pixel = i.payload.data.as_value()  # flush rows: masked wherever read
        bottom = Signal(range(3), name="pos_bottom")  # the bank of the position's row cy + 1
        pos_cx = Signal(range(W + 1), name="pos_cx")
        masks = Signal(4, name="pos_masks")
        side = Signal(self.side, name="pos_side")
        step_bottom = Mux(r.x_first, minus(bank, 1), bank)  # `bottom` of the step's position
        m.d.comb += [wr.addr.eq(bank * W + r.x), wr.data.eq(new_pixel)]
        with m.If(r.step):
            m.d.comb += wr.en.eq(1)
            with m.If(r.x_wraps):
                m.d.sync += bank.eq(Mux(bank == 2, 0, bank + 1))
            m.d.sync += [
                held.eq(r.emit),
                count.eq(0),
                group.eq(0),
                bottom.eq(step_bottom),
                pos_cx.eq(r.cx),
                masks.eq(r.masks),
                side.eq(r.markers),
            ]

        # A sub-beat's read: its tap's pixel at the address of its row's bank and column;
        # the read port's enable holds the result while the output waits. The address is a
        # register, always the current sub-beat's: loaded with the first tap's at the step
        # and with the next tap's at each read. Computed in the cycle of the read (sub-beat
        # counter, tap table, row bank, column sum, the address's multiply-add), it was the
        # routed critical path of a board build of `small` (12.5 ns into a LUT RAM's read).
        stall = self.o.valid & ~self.o.ready
        issue = held & ~stall

        def tap_outside(masks, tap):
            """Whether ``tap`` of a position with border ``masks`` lies outside the frame."""
            return Array(_outside(masks, t // 3, t % 3) for t in range(9))[tap]

        def address(tap, bottom, cx, masks):
            """Where ``tap`` of the position (row cy + 1 in bank ``bottom``, column ``cx``,
            border ``masks``) lies in the memory: column 0 of its row if outside."""
            ky = Array(Const(t // 3, 2) for t in range(9))[tap]
            kx = Array(Const(t % 3, 2) for t in range(9))[tap]
            row_bank = Mux(ky == 2, bottom, Mux(ky == 1, minus(bottom, 1), minus(bottom, 2)))
            inside = cx + kx - 1  # >= 0 wherever the tap is inside
            return row_bank * W + Mux(tap_outside(masks, tap), 0, inside)

        rd_addr = Signal(range(3 * W), name="rd_addr")
        next_tap = (
            Array(Const((c + 1) % 9, range(9)) for c in range(9))[count]
            if regular
            else Array(Const(taps[(p + 1) % F], range(9)) for p in range(F))[count]
        )  # after the last sub-beat: unused, the next step loads the address
        with m.If(r.step):
            m.d.sync += rd_addr.eq(address(taps[0], step_bottom, r.cx, r.masks))
        with m.Elif(issue):
            m.d.sync += rd_addr.eq(address(next_tap, bottom, pos_cx, masks))
        outside = tap_outside(masks, tap)
        m.d.comb += [rd.en.eq(~stall), rd.addr.eq(rd_addr)]
        # Two stages behind the address: the read, then the pixel read registered (a block
        # RAM's data output is slow, 5.8 ns on the ECP5 without its own output register, and
        # must not feed the lane multiplexers in the same cycle). Lane j of a sub-beat is
        # channel groups[p][j] % C of the pixel read, or its pad where the tap is outside.
        # With `preselect`, the pixel register holds each lane's candidates instead, already
        # padded: one per value of the group index's high bits, chosen by its low bits.
        read_valid = Signal(name="read_valid")
        read_group = Signal(range(G), name="read_group")
        read_outside = Signal(name="read_outside")
        read_side = Signal(self.side, name="read_side")
        out_side = Signal(self.side, name="out_side")
        lanes = [[g[j] for g in group_chans] for j in range(len(self.groups[0]))]
        if self.preselect:
            low, Q = self._low_bits, 1 << self._low_bits
            highs = -(-G // Q)
            out_high = Signal(range(highs), name="out_high")
            with m.If(~stall):
                m.d.sync += out_high.eq(read_group >> low)
            for j, cs in enumerate(lanes):
                regs = []
                for h in range(highs):
                    chans = [cs[min(h * Q + q, G - 1)] for q in range(Q)]  # beyond G: unused
                    padded = [
                        Mux(read_outside, Const(self.pad[c], signed(8)), rd.data[c]) for c in chans
                    ]
                    reg = Signal(signed(8), name=f"lane{j}_{h}", reset_less=True)
                    with m.If(~stall):
                        m.d.sync += reg.eq(_pick(padded, read_group[:low], len(set(chans)) == 1))
                    regs.append(reg)
                m.d.comb += self.o.payload.data[j].eq(Array(regs)[out_high])
        else:
            out_group = Signal(range(G), name="out_group")
            out_outside = Signal(name="out_outside")
            out_pixel = Signal(pixel, name="out_pixel", reset_less=True)  # a memory's read
            with m.If(~stall):
                m.d.sync += [
                    out_group.eq(read_group),
                    out_outside.eq(read_outside),
                    out_pixel.eq(rd.data),
                ]
            for j, cs in enumerate(lanes):
                value = _pick([out_pixel[c] for c in cs], out_group, len(set(cs)) == 1)
                pads = [self.pad[c] for c in cs]
                const = _pick([Const(v, signed(8)) for v in pads], out_group, len(set(pads)) == 1)
                m.d.comb += self.o.payload.data[j].eq(Mux(out_outside, const, value))
        with m.If(~stall):
            m.d.sync += [
                read_valid.eq(issue),
                read_group.eq(group if regular else count),
                read_outside.eq(outside),
                read_side.eq(side),
                self.o.valid.eq(read_valid),
                out_side.eq(read_side),
            ]
        with m.If(issue):
            m.d.sync += count.eq(Mux(last_in_group, 0, count + 1))
            if regular:
                with m.If(last_in_group):
                    m.d.sync += group.eq(Mux(group == G - 1, 0, group + 1))
            with m.If(last):
                m.d.sync += held.eq(0)
        m.d.comb += self.o.payload.side.eq(out_side)

        r.check_markers(m, self.framing_error)
        return m


class _Raster:
    """The stepping of a 3x3 window through raster-order frames, shared by
    :class:`SlidingWindow` and :class:`MemoryWindow`: one step per input pixel (or per
    flush position) while ``free`` (the window's output can take a new position);
    ``i.ready`` is driven here. Per step: the column ``x`` written, the window position
    ``(cx, cy)`` it completes, whether that position is given (``emit``), its ``markers``
    and its border ``masks`` (top, bottom, left, right: rows and columns outside the
    frame). ``x_first``, ``x_last`` and ``y_last`` are registers equal to ``x == 0``,
    ``x == W - 1`` and ``y == H - 1``; ``x_wraps``: the step's next column is 0."""

    #: Registers of the position's comparisons (beside the counters).
    FLAGS = 6

    def __init__(self, m, i, free, W, H, S):
        # Step position (y, x) in the frame being read; rows H and H + 1 (one step) are the
        # flush that completes the previous frame's last windows. When the next frame's first
        # pixel is already waiting, its first row and a step stand in for the flush instead
        # (`pending` marks a frame whose last windows are still to come); otherwise the
        # flush runs without input (not ready). Overlap needs H >= 2, so that one
        # frame's flush ends before the next frame's own last row.
        self.W, self.H, self.i = W, H, i
        overlap = H >= 2
        self.x = x = Signal(range(W), name="x")
        self.y = y = Signal(range(H + 2), name="y")
        pending = Signal(name="pending")
        # The comparisons of the position that decide the step, kept in registers beside
        # x and y (loaded at each step from their next values): the step drives the
        # input's ready and a line memory's read address, and compared afresh from the
        # counters each cycle that was the longest path of a stem's window on the placed
        # board build of ``small`` (14.3 ns: six LUTs from x into a block RAM's address).
        flags = []

        def flag(name, of):
            r = Signal(name=name, init=int(of(0, 0)))
            flags.append((r, of))
            return r

        x_first, x_last = (
            flag("x_first", lambda x, y: x == 0),
            flag("x_last", lambda x, y: x == W - 1),
        )
        y_first, y_last = (
            flag("y_first", lambda x, y: y == 0),
            flag("y_last", lambda x, y: y == H - 1),
        )
        self.x_first, self.x_last, self.y_last = x_first, x_last, y_last
        flushing = flag("flushing", lambda x, y: y >= H)
        flush_last = flag("flush_last", lambda x, y: y == H + 1)
        flush_start = Signal(name="flush_start")  # no pixel waiting: start the zero flush
        m.d.comb += flush_start.eq(pending & y_first & x_first & ~i.valid)
        zero_step = flushing | flush_start
        ey = Mux(flush_start, H, y)  # the row this step stands for

        self.step = step = Signal(name="step")
        m.d.comb += [step.eq(free & (i.valid | zero_step)), i.ready.eq(free & ~flushing)]
        last_pixel = ~zero_step & y_last & x_last
        flush_end = flush_last  # the zero flush's last step (ey == H + 1: a flush start has y 0)
        # The previous frame's last window: at the zero flush's end, or overlapped at (1, 0).
        last_flush = flush_end | (pending & (ey == 1) & x_first)
        self.x_wraps = flush_end | x_last  # the step's next column is 0
        self.x_next = Mux(self.x_wraps, 0, x + 1)
        y_next = Mux(x_last, ey + 1, ey)
        if overlap:  # after a frame's last pixel, the next frame (or the flush) starts at 0
            y_next = Mux(flush_end | last_pixel, 0, y_next)
        else:  # after a frame's last pixel, flush at once
            y_next = Mux(flush_end, 0, Mux(last_pixel, H, y_next))

        # The window centred on the pixel W + 1 steps back, in virtual row vy of its frame:
        # vy = ey + H while the previous frame's last rows are still to come (``wrap``),
        # else ey; its position (cx, cy) = (x - 1, vy - 1), or (W - 1, vy - 2) at x == 0.
        # The masks, markers and emit compare the position against constants without
        # computing vy and cy: their additions would become carry chains that no LUT
        # mapping sees past, and with them every window's step was the longest logic of
        # the design (on the ECP5, once the stems had skid buffers: 9.25 levels by
        # ``bench/logic_depth.py``, from the row counter through the flush decision; after,
        # no chain in the design deeper than 7.25). Positions not emitted may differ;
        # nothing reads them.
        ey_below2 = Mux(flush_start, H < 2, y < 2)
        wrap = (pending & ey_below2) if overlap else Const(0)

        def ey_is(v):
            return Mux(flush_start, v == H, y == v) if v >= 0 else Const(0)

        def vy_is(v):
            return Mux(wrap, ey_is(v - H), ey_is(v))

        def cy_is(c):
            return Mux(x == 0, vy_is(c + 2), vy_is(c + 1))

        def cx_is(c):
            return (x == 0 if c == W - 1 else Const(0)) | (x == c + 1 if c + 1 < W else Const(0))

        self.cx = cx = Signal(range(W + 1), name="cx")  # + 1: at least one bit, for cx[0]
        started = Signal(name="started")  # at least W + 1 steps into the frame
        m.d.comb += [
            cx.eq(Mux(x == 0, W - 1, x - 1)),
            started.eq(wrap | ~ey_below2 | (vy_is(1) & (x != 0))),
        ]
        self.emit = started
        if S == 2:
            vy_odd = Mux(flush_start, H & 1, y[0]) ^ (wrap & (H & 1))
            cy_odd = Mux(x == 0, vy_odd, ~vy_odd)  # vy - 2 keeps vy's parity, vy - 1 not
            self.emit = started & ~cx[0] & ~cy_odd
        last_cx, last_cy = (W - 1) - (W - 1) % S, (H - 1) - (H - 1) % S
        # The parameter set of the position's frame: the one its first pixel named (read at
        # the step taking it), or, while the previous frame's last windows are still to
        # come (`pending`), the previous frame's.
        # So are the bits above it (a pass index), all the frame's: its "tag".
        tag_bits = len(i.payload.side) - EPOCH_BIT
        epoch = Signal(tag_bits, name="epoch")
        epoch_prev = Signal(tag_bits, name="epoch_prev")
        with m.If(step & ~zero_step & y_first & x_first):
            m.d.sync += epoch.eq(i.payload.side[EPOCH_BIT:])
        markers = [None] * EPOCH_BIT
        markers[EOL_BIT] = cx_is(last_cx)
        markers[EOF_BIT] = cx_is(last_cx) & cy_is(last_cy)
        self.markers = Cat(*markers, Mux(pending, epoch_prev, epoch) if overlap else epoch)
        self.masks = Cat(cy_is(0), cy_is(H - 1), cx_is(0), cx_is(W - 1))
        with m.If(step):
            m.d.sync += [x.eq(self.x_next), y.eq(y_next)]
            m.d.sync += [r.eq(of(self.x_next, y_next)) for r, of in flags]
            if overlap:
                with m.If(last_pixel):
                    m.d.sync += [pending.eq(1), epoch_prev.eq(epoch)]
                with m.Elif(last_flush):
                    m.d.sync += pending.eq(0)

    def check_markers(self, m, error):
        """Input markers must agree with the fixed frame size: ``error`` (sticky) if not."""
        with m.If(self.i.valid & self.i.ready):
            side = self.i.payload.side
            eol, eof = self.x_last, self.x_last & self.y_last
            with m.If((side[EOL_BIT] != eol) | (side[EOF_BIT] != eof)):
                m.d.sync += error.eq(1)
