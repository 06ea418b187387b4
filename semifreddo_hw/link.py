"""The host link of a board: a backbone behind a UART that speaks :mod:`spec.link`.

Bytes from the host are queued (a FIFO, block RAM on an FPGA), parsed into parameter writes,
frames and settings, and fed to the backbone; the backbone's output beats are tagged with
their core and queued for the UART. Every output port is drained as its beats come, so the
backbone never waits on the slow line unless the output queue fills; size it for a frame's
output (:func:`output_bytes`) and it does not.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Shape, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spec import names
from spec.link import (
    CMD_FRAME,
    CMD_SHUFFLE,
    CMD_STATUS,
    CMD_SWAP,
    CMD_WRITE,
    STATUS_FLAGS,
    TAG_EOF,
    TAG_EOL,
    TAG_STATUS,
)
from spec.stream import EOF_BIT, EOL_BIT

from .streams import HalfRateSlice, StreamFIFO, vector_layout
from .uart import UARTRx, UARTTx

__all__ = ["BeatBytes", "UARTLink", "output_bytes", "output_channels"]

#: The command bytes the parser knows, and a host byte as it reads it: the byte, and per
#: command whether the byte is that command's code (decoded a cycle ahead).
_COMMANDS = (CMD_WRITE, CMD_FRAME, CMD_SHUFFLE, CMD_STATUS, CMD_SWAP)
_COMMAND_LAYOUT = data.StructLayout({"byte": 8, "command": len(_COMMANDS)})


def _lanes(port) -> int:
    """The lanes of a backbone stream port's beats."""
    return port.signature.members["payload"].shape["data"].shape.length


def output_channels(backbone) -> list[int]:
    """Each output's channels, cores then head groups (:meth:`spec.network.Network.outputs`;
    what :func:`spec.link.decode` needs)."""
    return [_lanes(getattr(backbone, names.output_port(o))) for o, _ in backbone.net.outputs()]


def output_bytes(backbone) -> int:
    """Bytes the link sends per frame at most: a tag and the channels per output beat, every
    output (a head group's as if it did not pool)."""
    w, h = backbone.net.output_size()
    return sum(w * h * (1 + c) for c in output_channels(backbone))


class BeatBytes(wiring.Component):
    """One output's beats (``layout``: a backbone output port's payload) as the bytes the
    line carries: the beat's tag (:func:`spec.link.beat_tag` of ``core`` and the beat's
    end-of-line and end-of-frame markers), then each lane as a byte, lane 0 first. Each
    ``o`` beat is one byte (``data``, one lane) with ``side`` 1 on a beat's last byte.

    Why a component of its own: it loads a whole beat into a shift register and sends the
    low byte, so the wide payload meets only its own flip-flops (placed beside the output
    that feeds them) and the link's sender picks among bytes, not among every lane of every
    output (on the ECP5 board build of ``small`` that many-input mux, and the outputs'
    payloads wired across to it, were where routing congested, ``docs/bringup.md``).
    Each byte leaves from a register of its own (as from a
    :class:`~.streams.HalfRateSlice`, a byte every other cycle at most): the shift
    register's enable then depends on flip-flops beside it, not on the line's queue
    across the die. Takes a new beat once the last byte of the one before has left the
    shift register."""

    def __init__(self, layout, core: int):
        if not isinstance(core, int) or not 0 <= core <= 0x0F:
            raise ValueError(f"core must be an output index from 0 to 15, not {core!r}")
        self.core = core
        elem = data.Layout.cast(layout)["data"].shape.elem_shape
        if Shape.cast(elem).width != 8:
            raise ValueError(f"the beat's lanes must be bytes, not {elem!r}")
        byte = vector_layout(unsigned(8), 1, 1)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(byte))})

    def elaborate(self, platform):
        m = Module()
        beat = self.i.payload
        lanes = len(beat.data)
        side = beat.side
        tag = Const(self.core, 8) | Mux(side[EOL_BIT], TAG_EOL, 0) | Mux(side[EOF_BIT], TAG_EOF, 0)
        bits = Signal(8 * (lanes + 1))
        left = Signal(range(lanes + 1))  # bytes after the low one
        full = Signal()  # the shift register holds a byte to send
        m.submodules.out = out = HalfRateSlice(self.o.payload.shape())
        wiring.connect(m, out.o, wiring.flipped(self.o))
        m.d.comb += [
            self.i.ready.eq(~full),
            out.i.valid.eq(full),
            out.i.payload.data[0].eq(bits[:8]),
            out.i.payload.side.eq(left == 0),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [bits.eq(Cat(tag[:8], beat.data.as_value())), left.eq(lanes), full.eq(1)]
        with m.Elif(out.i.valid & out.i.ready):
            m.d.sync += [bits.eq(bits >> 8), left.eq(left - 1)]
            with m.If(left == 0):
                m.d.sync += full.eq(0)
        return m


class UARTLink(wiring.Component):
    """``backbone`` (a :class:`~.backbone.Backbone`) behind a UART of ``divisor`` cycles per
    bit (:func:`~.uart.uart_divisor`). ``rx_depth`` and ``tx_depth``: the byte queues from
    and to the line.

    Ports: ``rx`` (from the host), ``tx`` (to the host), ``status`` (the sticky
    :data:`spec.link.STATUS_FLAGS`, for LEDs) and ``in_frame`` (a frame is arriving).
    The backbone is the submodule ``backbone``; a build emits it as a part of its own."""

    rx: In(1, init=1)
    tx: Out(1, init=1)
    status: Out(len(STATUS_FLAGS))
    in_frame: Out(1)

    def __init__(self, backbone, divisor: int, *, rx_depth: int = 512, tx_depth: int = 1024):
        for name, v in (("rx_depth", rx_depth), ("tx_depth", tx_depth)):
            if not isinstance(v, int) or v < 2:
                raise ValueError(f"{name} must be an integer of at least 2, not {v!r}")
        self.backbone, self.rx_uart, self.tx_uart = backbone, UARTRx(divisor), UARTTx(divisor)
        self.rx_depth, self.tx_depth = rx_depth, tx_depth
        self.outputs = [o for o, _ in backbone.net.outputs()]
        #: Each output's channels (:func:`output_channels`).
        self.channels = output_channels(backbone)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        bb = self.backbone
        m.submodules.backbone = bb
        m.submodules.rx_uart = rxu = self.rx_uart
        m.submodules.tx_uart = txu = self.tx_uart
        m.submodules.rx_queue = rxq = StreamFIFO(8, self.rx_depth)
        m.submodules.tx_queue = txq = StreamFIFO(8, self.tx_depth)
        # The parser decodes each byte from a register, not from the queue's block RAM
        # (whose read data comes late in the cycle on the ECP5), and reads the byte's
        # command decoded in a register of its own: the compares, the state machine's next
        # state and its enable in one cycle were the routed critical path of the board
        # build of ``small`` (9.99 ns, the link's parser spread between the UART's pins and
        # the backbone). Bytes come a thousand cycles apart: the cycle costs nothing.
        m.submodules.rx_byte = rx_byte = HalfRateSlice(8)
        m.submodules.rx_command = rx_command = HalfRateSlice(_COMMAND_LAYOUT)
        wiring.connect(m, rxu.o, rxq.i)
        wiring.connect(m, rxq.o, rx_byte.i)
        m.d.comb += [
            rx_command.i.valid.eq(rx_byte.o.valid),
            rx_byte.o.ready.eq(rx_command.i.ready),
            rx_command.i.payload.byte.eq(rx_byte.o.payload),
            rx_command.i.payload.command.eq(
                Cat(*(rx_byte.o.payload == code for code in _COMMANDS))
            ),
        ]
        wiring.connect(m, txq.o, txu.i)
        m.d.comb += [rxu.rx.eq(self.rx), self.tx.eq(txu.tx)]
        bad_command = Signal()
        flags = {
            "framing_error": bb.framing_error,
            "marker_mismatch": bb.marker_mismatch,
            "rx_overrun": rxu.overrun,
            "rx_framing": rxu.framing_error,
            "bad_command": bad_command,
        }
        m.d.comb += self.status.eq(Cat(*(flags[f] for f in STATUS_FLAGS)))
        status_wanted = Signal()
        # The sender first: where it clears a status request in the cycle the parser sets a
        # new one, the parser's statement comes later and wins.
        self._sender(m, txq, status_wanted)
        self._parser(m, rx_command, bad_command, status_wanted)
        return m

    def _parser(self, m, rx, bad_command, status_wanted):
        """Host bytes (stream ``rx.o`` of :data:`_COMMAND_LAYOUT`) -> parameter writes,
        frame pixels and the shuffle setting."""
        bb, net = self.backbone, self.backbone.net
        channels = net.channels_in
        write = bb.param_write.payload
        addr_width, value_width = len(Value.cast(write.addr)), len(Value.cast(write.value))
        byte, have = rx.o.payload.byte, rx.o.valid
        is_command = dict(zip(_COMMANDS, rx.o.payload.command, strict=True))
        args = Signal(64)  # address, then value: little-endian, shifted in from the top
        count = Signal(range(max(8, channels) + 1))
        pixel = Signal(8 * channels)
        x, y = Signal(range(net.width)), Signal(range(net.height))
        eol, eof = x == net.width - 1, (x == net.width - 1) & (y == net.height - 1)
        shuffle = Signal()
        if "shuffle" in bb.signature.members:
            m.d.comb += bb.shuffle.eq(shuffle)
        # The swap reaches the backbone from a flip-flop, a cycle after its byte: its
        # bookkeeping sits with the backbone's outputs, and straight from the parser's
        # byte decode the path crossed the die (11.9 ns on the placed board build of
        # ``small``, 45 tiles). Safe: whatever the host sends next (a write's eight bytes,
        # a frame's first pixel, a status request) reaches the backbone cycles later.
        swap = Signal(name="swap_request")
        m.d.sync += swap.eq(0)
        has_swap = "param_swap" in bb.signature.members
        if has_swap:
            m.d.comb += bb.param_swap.eq(swap)
        m.d.comb += [
            bb.i.payload.data.as_value().eq(pixel),
            bb.i.payload.side.eq(
                Cat(
                    *(
                        eol if b == EOL_BIT else eof if b == EOF_BIT else 0
                        for b in range(len(bb.i.payload.side))
                    )
                )
            ),
            write.addr.eq(args[:addr_width]),
            write.value.eq(args[32 : 32 + value_width]),
        ]
        with m.FSM(name="parser"):
            with m.State("COMMAND"):
                m.d.comb += rx.o.ready.eq(1)
                with m.If(have):
                    m.d.sync += count.eq(0)
                    with m.If(is_command[CMD_WRITE]):
                        m.next = "ARGS"
                    with m.Elif(is_command[CMD_FRAME]):
                        m.next = "PIXEL"
                    with m.Elif(is_command[CMD_SHUFFLE]):
                        m.next = "SHUFFLE"
                    with m.Elif(is_command[CMD_STATUS]):
                        m.d.sync += status_wanted.eq(1)
                    with m.Elif(is_command[CMD_SWAP] & has_swap):
                        m.d.sync += swap.eq(1)
                    with m.Else():
                        m.d.sync += bad_command.eq(1)
            with m.State("ARGS"):
                m.d.comb += rx.o.ready.eq(1)
                with m.If(have):
                    m.d.sync += [args.eq(Cat(args[8:], byte)), count.eq(count + 1)]
                    with m.If(count == 7):
                        m.next = "WRITE"
            with m.State("WRITE"):
                # Addresses past the port's width would wrap into the map: dropped instead.
                # With two parameter sets the port holds a write back while a swap is on its
                # way (the host lets a frame flow first).
                m.d.comb += bb.param_write.valid.eq(args[addr_width:32] == 0)
                with m.If(bb.param_write.ready | (args[addr_width:32] != 0)):
                    m.next = "COMMAND"
            with m.State("PIXEL"):
                m.d.comb += [rx.o.ready.eq(1), self.in_frame.eq(1)]
                with m.If(have):
                    m.d.sync += [pixel.eq(Cat(pixel[8:], byte)), count.eq(count + 1)]
                    with m.If(count == channels - 1):
                        m.next = "PUSH"
            with m.State("PUSH"):
                m.d.comb += [bb.i.valid.eq(1), self.in_frame.eq(1)]
                with m.If(bb.i.ready):
                    m.d.sync += [x.eq(x + 1), count.eq(0)]
                    with m.If(eol):
                        m.d.sync += [x.eq(0), y.eq(y + 1)]
                    with m.If(eof):
                        m.d.sync += y.eq(0)
                        m.next = "COMMAND"
                    with m.Else():
                        m.next = "PIXEL"
            with m.State("SHUFFLE"):
                m.d.comb += rx.o.ready.eq(1)
                with m.If(have):
                    m.d.sync += shuffle.eq(byte[0])
                    m.next = "COMMAND"

    def _sender(self, m, txq, status_wanted):
        """Output beats (each through its :class:`BeatBytes`) and status records -> the
        line's queue, a beat's bytes together."""
        bb = self.backbone
        sources = []
        for k, o in enumerate(self.outputs):
            port = getattr(bb, names.output_port(o))
            m.submodules[f"{o}_bytes"] = b = BeatBytes(port.payload.shape(), k)
            wiring.connect(m, port, b.i)
            sources.append(b.o)
        core = Signal(range(max(2, len(sources))))
        valid = Array(b.valid for b in sources)
        byte = Array(b.payload.data[0] for b in sources)
        last = Array(b.payload.side for b in sources)
        with m.FSM(name="sender"):
            with m.State("IDLE"):
                with m.If(status_wanted):
                    m.next = "STATUS_TAG"
                for k in reversed(range(len(sources))):  # the first output with a beat wins
                    with m.If(valid[k] & ~status_wanted):
                        m.d.sync += core.eq(k)
                        m.next = "BEAT"
            with m.State("BEAT"):  # the chosen output's bytes, up to its beat's last
                m.d.comb += [txq.i.valid.eq(valid[core]), txq.i.payload.eq(byte[core])]
                for k, b in enumerate(sources):
                    m.d.comb += b.ready.eq((core == k) & txq.i.ready)
                with m.If(valid[core] & txq.i.ready & last[core]):
                    m.next = "IDLE"
            with m.State("STATUS_TAG"):
                m.d.comb += [txq.i.valid.eq(1), txq.i.payload.eq(TAG_STATUS)]
                with m.If(txq.i.ready):
                    m.next = "STATUS"
            with m.State("STATUS"):
                busy = bb.param_busy if "param_busy" in bb.signature.members else Const(0, 1)
                m.d.comb += [txq.i.valid.eq(1), txq.i.payload.eq(Cat(self.status, busy))]
                with m.If(txq.i.ready):
                    m.d.sync += status_wanted.eq(0)
                    m.next = "IDLE"
