"""An 8N1 UART: the board's link to the host (no maintained Amaranth 0.5 package has one).

Both directions run from the design clock with a fixed ``divisor`` (clock cycles per bit,
:func:`uart_divisor`); bytes are streams (:mod:`amaranth.lib.stream`), least significant bit
first on the line, idle high.
"""

from amaranth.hdl import C, Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["uart_divisor", "UARTTx", "UARTRx", "MIN_DIVISOR"]

#: The receiver samples each bit at its centre after a start bit seen through a two-flop
#: synchronizer and a three-sample majority filter: it needs a few cycles per bit.
MIN_DIVISOR = 8


def uart_divisor(clock_hz: float, baud: float, *, tolerance: float = 0.02) -> int:
    """Clock cycles per bit for ``baud`` at ``clock_hz``: the nearest whole number, refused
    (``ValueError``) below :data:`MIN_DIVISOR` or when the baud rate it gives is off by more
    than ``tolerance`` (a UART frame of 10 bits tolerates a few percent in all)."""
    if clock_hz <= 0 or baud <= 0:
        raise ValueError(f"clock {clock_hz} Hz and baud {baud} must be positive")
    div = round(clock_hz / baud)
    if div < MIN_DIVISOR:
        raise ValueError(
            f"{baud:.0f} baud at {clock_hz / 1e6:g} MHz is {clock_hz / baud:.1f} cycles per bit; "
            f"the UART needs at least {MIN_DIVISOR}"
        )
    err = abs(clock_hz / div - baud) / baud
    if err > tolerance:
        raise ValueError(
            f"{baud:.0f} baud at {clock_hz / 1e6:g} MHz: divisor {div} is {err:.1%} off "
            f"(at most {tolerance:.0%})"
        )
    return div


class _Timed(wiring.Component):
    """A UART direction: ``divisor`` clock cycles per bit, checked."""

    def __init__(self, divisor: int):
        if not isinstance(divisor, int) or divisor < MIN_DIVISOR:
            raise ValueError(
                f"divisor must be an integer of at least {MIN_DIVISOR}, not {divisor!r}"
            )
        self.divisor = divisor
        super().__init__()


class UARTTx(_Timed):
    """Sends each byte of ``i`` on ``tx``: a start bit, 8 data bits, a stop bit, ``divisor``
    cycles each. ``i`` is ready while the line is idle (one byte every ``10 * divisor``
    cycles, back to back)."""

    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        bits = Signal(10)  # start, data (LSB first), stop: shifted out from bit 0
        left = Signal(range(11))  # bits still to send
        m.d.comb += self.i.ready.eq(left == 0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                bits.eq(Cat(C(0, 1), self.i.payload, C(1, 1))),
                left.eq(10),
                timer.eq(0),
            ]
        with m.Elif(left != 0):
            with m.If(timer == 0):
                m.d.sync += [
                    self.tx.eq(bits[0]),
                    bits.eq(bits >> 1),
                    timer.eq(self.divisor - 1),
                ]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
            with m.If(timer == 1):  # the bit now on the line has had its time
                m.d.sync += left.eq(left - 1)
        return m


class UARTRx(_Timed):
    """Receives bytes from ``rx`` (asynchronous: synchronized here) onto ``o``.

    A byte waits on ``o`` until taken; one that arrives while the previous still waits is
    lost and sets the sticky ``overrun``. A stop bit that is not high loses the byte and sets
    the sticky ``framing_error``; the receiver then waits for the line to go idle."""

    o: Out(stream.Signature(8))
    rx: In(1, init=1)
    overrun: Out(1)
    framing_error: Out(1)

    def elaborate(self, platform):
        m = Module()
        sampled = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, sampled, init=1)
        # Majority of three samples: a one-cycle glitch does not start a byte.
        history = Signal(3, init=0b111)
        m.d.sync += history.eq(Cat(sampled, history[:2]))
        line = Signal()
        m.d.comb += line.eq(
            (history[0] & history[1]) | (history[1] & history[2]) | (history[0] & history[2])
        )

        timer = Signal(range(self.divisor))
        shift = Signal(8)
        count = Signal(range(8))
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):  # the start bit, checked again at its centre
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(~line):
                    m.d.sync += [timer.eq(self.divisor - 1), count.eq(0)]
                    m.next = "DATA"
                with m.Else():
                    m.next = "IDLE"  # a glitch, not a start bit
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [
                        shift.eq(Cat(shift[1:], line)),
                        count.eq(count + 1),
                        timer.eq(self.divisor - 1),
                    ]
                    with m.If(count == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):  # at the stop bit's centre: back to idle at once
                    with m.If(self.o.valid & ~self.o.ready):
                        m.d.sync += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += self.framing_error.eq(1)
                    m.next = "BREAK"
            with m.State("BREAK"):  # wait for the line to go idle
                with m.If(line):
                    m.next = "IDLE"
        return m
