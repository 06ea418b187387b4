"""Shared helpers for RTL tests: stimulus with extremes, parameter writes, pixel streams."""

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from semifreddo_hw.streams import vector_layout
from sim.pysim import run_stream_pysim
from sim.rtl import Lanes, struct_word
from spec.stream import MARKER_BITS


def int8_stimulus(rng, beats, lanes):
    """Random int8 vectors, with all--128, all-127, alternating and one-hot beats mixed in."""
    x = rng.integers(-128, 128, size=(beats, lanes))
    specials = [
        np.full(lanes, -128),
        np.full(lanes, 127),
        np.where(np.arange(lanes) % 2, 127, -128),
        np.zeros(lanes, int),
    ]
    onehot = np.zeros(lanes, int)
    onehot[rng.integers(lanes)] = -128
    specials.append(onehot)
    for k, s in enumerate(specials):
        x[(k * 7) % beats] = s
    return x


def writes_for(dut, port, values, *, set_=0):
    """Always-ready parameter writes loading ``values`` (flat) into ``dut.<port>``."""
    layout = dut.signature.members[port].signature.members["payload"].shape
    return [
        (port, struct_word(layout, set=set_, index=k, value=int(v)))
        for k, v in enumerate(np.asarray(values).ravel())
    ]


def bank_writes(dut, port, bank, values, *, set_=0):
    """Always-ready writes loading ``values`` (element order) into ``bank`` through
    ``dut.<port>``, each at the bank's ``address`` of its element."""
    layout = dut.signature.members[port].signature.members["payload"].shape
    return [
        (port, struct_word(layout, set=set_, index=bank.address(k), value=int(v)))
        for k, v in enumerate(np.asarray(values).ravel())
    ]


def run_pixels(
    design, beats, expected, c_in, c_out, *, stalls=((0.3, 0.3),), name="run", **kw
) -> list[dict]:
    """Pixel streams through ``design``: ``beats`` and ``expected`` are ``(lanes, sides)``
    pairs of int8 lanes with line and frame markers (``c_in`` and ``c_out`` lanes); one run
    per ``(input stall, output stall)`` of ``stalls``, seeded by its index and named
    ``<name><index>``. Returns each run's statistics."""
    (x, xs), (y, ys) = beats, expected
    return [
        design.run_stream(
            x,
            y,
            in_sides=xs,
            out_sides=ys,
            in_stall=i,
            out_stall=o,
            seed=k,
            test_name=f"{name}{k}",
            in_lanes=Lanes(c_in, 8, side_width=MARKER_BITS),
            out_lanes=Lanes(c_out, 8, side_width=MARKER_BITS),
            **kw,
        )
        for k, (i, o) in enumerate(stalls)
    ]


class OutsideInSide(wiring.Component):
    """``inner`` (``i`` and ``o`` streams without side bits, an ``outside`` input: a bit per
    input lane) with ``outside`` carried in ``i``'s side bits, so that a stream bench drives
    it beat by beat (the stream rule holds it with its beat)."""

    def __init__(self, inner):
        self.inner = inner
        data = inner.i.payload.data
        layout = vector_layout(data.shape().elem_shape, len(data), len(inner.outside))
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(inner.o.signature)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self.inner
        m.d.comb += [
            inner.i.valid.eq(self.i.valid),
            inner.i.payload.data.eq(self.i.payload.data),
            inner.outside.eq(self.i.payload.side),
            self.i.ready.eq(inner.i.ready),
        ]
        wiring.connect(m, inner.o, wiring.flipped(self.o))
        return m


def padded(x, outside, pad):
    """Beats ``x`` (lists of lanes) with each lane whose ``outside`` bit (an int per beat)
    is set replaced by its ``pad`` constant."""
    return [
        [p if (f >> k) & 1 else v for k, (v, p) in enumerate(zip(b, pad, strict=True))]
        for b, f in zip(x, outside, strict=True)
    ]


def extra_frame_cycles(dut, frames, *, in_period):
    """Cycles a third back-to-back frame costs a design in Amaranth's simulator, pixels fed
    one every ``in_period`` cycles and no stalls, every output checked: ``frames`` is
    ``(x, xs, y, ys)`` of three equal frames (:func:`spec.stream.frames_to_beats`)."""
    x, xs, y, ys = frames
    n_in, n_out = len(x) // 3, len(y) // 3

    def cycles(count):
        a, b = n_in * count, n_out * count
        return run_stream_pysim(
            dut,
            x[:a],
            y[:b],
            in_sides=xs[:a],
            out_sides=ys[:b],
            in_stall=0,
            out_stall=0,
            in_period=in_period,
        )

    return cycles(3) - cycles(2)
