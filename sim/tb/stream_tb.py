"""cocotb testbench: any number of streams in and out, every output beat checked in order.

Driven by :meth:`sim.rtl.VerilatorDesign.run_streams`, which passes a JSON spec through
``SEMIFREDDO_TB_SPEC`` and reads the result from ``SEMIFREDDO_TB_STATS``: the statistics of
a run, or ``{"mismatch": message}`` when the design was wrong (any other failure is the
bench's). Handshakes follow ``amaranth.lib.stream``: a beat moves on a rising
edge where valid and ready are both high; the source holds valid and payload until then
(:class:`~sim.protocol.StreamMonitor` checks that rule on every port, every cycle).
Inputs are driven after each falling edge and handshakes sampled in the read-only phase just
before the next rising edge, so the check sees exactly what the flip-flops will see. Each
input stalls and each output withholds ready at random, independently.

Parameter swaps (``spec["swaps"]``, a design built with two parameter sets): while the frames
stream, after the input has sent ``after`` beats, the bench writes a swap's parameters
(holding each write until the port takes it) and pulses the swap input. A frame is then
expected to come out computed with set ``k``, ``k`` the number of pulses before the cycle
its first input beat was first offered (``expected_sets`` of each output gives every set's beats).
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from sim.errors import SimulationMismatch
from sim.lanes import Lanes, unpack
from sim.protocol import StreamMonitor


def _describe(port, k, exp, got, lanes):
    ev, es = unpack(exp, lanes)
    gv, gs = unpack(got, lanes)
    diff = [j for j in range(len(ev)) if ev[j] != gv[j]]
    shown = diff[:8]
    text = f"{port}: output beat {k}: {len(diff)} of {len(ev)} lanes differ; " + ", ".join(
        f"lane {j}: expected {ev[j]} got {gv[j]}" for j in shown
    )
    if es != gs:
        text += f"; side: expected {es:#x} got {gs:#x}"
    return text


def _monitor(end, cycle):
    """The stream rule on one end's port (:class:`StreamMonitor`)."""
    valid, ready = int(end.valid.value), int(end.ready.value)
    end.monitor.sample(cycle, valid, ready, int(end.payload.value) if valid else 0)


class _Source:
    def __init__(self, dut, port, spec, rng):
        self.valid = getattr(dut, f"{port}__valid")
        self.ready = getattr(dut, f"{port}__ready")
        self.payload = getattr(dut, f"{port}__payload")
        self.beats = [int(h, 16) for h in spec["beats"]]
        self.stall, self.rng = spec["stall"], rng
        self.sent, self.offering = 0, False
        self.first = self.last = None  # cycles of the first and last beat taken
        self.frame_beats = spec.get("frame_beats")
        self.starts = []  # the cycle each frame's first beat was first offered (frame_beats)
        self.new_offer = False
        self.monitor = StreamMonitor(port)
        self.valid.value = 0

    def drive(self):
        if not self.offering and self.sent < len(self.beats) and self.rng.random() >= self.stall:
            self.offering = self.new_offer = True
            self.payload.value = self.beats[self.sent]
        self.valid.value = int(self.offering)

    def sample(self, cycle):
        _monitor(self, cycle)
        if self.new_offer and self.frame_beats and self.sent % self.frame_beats == 0:
            self.starts.append(cycle)
        self.new_offer = False
        if self.offering and int(self.ready.value):
            self.offering = False
            self.sent += 1
            self.first = cycle if self.first is None else self.first
            self.last = cycle

    @property
    def done(self):
        return self.sent == len(self.beats)


class _Sink:
    def __init__(self, dut, port, spec, rng):
        self.port = port
        self.valid = getattr(dut, f"{port}__valid")
        self.ready = getattr(dut, f"{port}__ready")
        self.payload = getattr(dut, f"{port}__payload")
        self.expected = [int(h, 16) for h in spec["expected"]]
        # With swaps: every set's beats (the first is ``expected``), frames of frame_beats.
        self.sets = [[int(h, 16) for h in e] for e in spec.get("expected_sets", [])]
        self.frame_beats = spec.get("frame_beats")
        self.frame_first = []  # the cycle each frame's first beat was received
        self.set_of = None  # frame -> its parameter set (given by the bench with swaps)
        self.lanes = Lanes(**spec["lanes"])
        self.stall, self.rng = spec["stall"], rng
        self.received, self.taking = 0, False
        self.first = self.last = None  # cycles of the first and last beat received
        self.monitor = StreamMonitor(port)
        self.ready.value = 0

    def drive(self, draining):
        self.taking = draining or self.rng.random() >= self.stall
        self.ready.value = int(self.taking)

    def sample(self, cycle):
        _monitor(self, cycle)
        if not (self.taking and int(self.valid.value)):
            return
        got = int(self.payload.value)
        k = self.received
        if k >= len(self.expected):
            raise SimulationMismatch(
                f"{self.port}: extra output beat {k} (only {len(self.expected)} expected): {got:#x}"
            )
        expected, where = self.expected[k], ""
        if self.set_of is not None:
            frame = k // self.frame_beats
            if k % self.frame_beats == 0:
                self.frame_first.append(cycle)
            expected = self.sets[self.set_of(frame)][k]
            where = f" (frame {frame}, parameter set {self.set_of(frame)}, cycle {cycle})"
        if got != expected:
            raise SimulationMismatch(_describe(self.port, k, expected, got, self.lanes) + where)
        self.first = cycle if self.first is None else self.first
        self.last = cycle
        self.received += 1

    @property
    def done(self):
        return self.received == len(self.expected)


class _Swapper:
    """The swaps of ``spec["swaps"]`` (see the module's docstring), on the write port
    ``spec["swap_ports"]["write"]``, the pulse input ``"swap"`` and the status ``"busy"``."""

    def __init__(self, dut, spec, source):
        ports = spec["swap_ports"]
        self.valid = getattr(dut, f"{ports['write']}__valid")
        self.ready = getattr(dut, f"{ports['write']}__ready")
        self.payload = getattr(dut, f"{ports['write']}__payload")
        self.pulse, self.busy = getattr(dut, ports["swap"]), getattr(dut, ports["busy"])
        self.swaps, self.source = spec["swaps"], source
        self.index = self.written = 0
        self.state = "wait"  # -> "write" after the input's `after` beats -> "pulse"
        self.pulses, self.busy_low, self.was_busy = [], [], False
        self.monitor = StreamMonitor(ports["write"])
        self.valid.value = self.pulse.value = 0

    def set_of(self, frame: int) -> int:
        """The set frame ``frame`` is computed with: the pulses before its first beat was
        offered."""
        if frame >= len(self.source.starts):
            raise SimulationMismatch(f"output of frame {frame}, which has not entered yet")
        return sum(p < self.source.starts[frame] for p in self.pulses)

    def drive(self):
        self.valid.value = self.pulse.value = 0
        if self.index == len(self.swaps):
            return
        swap = self.swaps[self.index]
        if self.state == "wait" and self.source.sent >= swap["after"]:
            self.state = "write"
        if self.state == "write" and self.written == len(swap["writes"]):
            self.state = "pulse"
        if self.state == "write":
            self.valid.value, self.payload.value = 1, swap["writes"][self.written]
        elif self.state == "pulse":
            self.pulse.value = 1

    def sample(self, cycle):
        _monitor(self, cycle)
        busy = bool(int(self.busy.value))
        if self.was_busy and not busy:
            self.busy_low.append(cycle)
        self.was_busy = busy
        if self.state == "write" and int(self.valid.value) and int(self.ready.value):
            self.written += 1
        elif self.state == "pulse":
            self.pulses.append(cycle)
            self.index, self.written, self.state = self.index + 1, 0, "wait"

    @property
    def done(self):
        return self.index == len(self.swaps)


def _write_result(result: dict) -> None:
    with open(os.environ["SEMIFREDDO_TB_STATS"], "w") as f:
        json.dump(result, f)


@cocotb.test()
async def stream(dut):
    with open(os.environ["SEMIFREDDO_TB_SPEC"]) as f:
        spec = json.load(f)
    try:
        result = await _run(dut, spec)
    except SimulationMismatch as e:
        _write_result({"mismatch": str(e)})
        raise
    _write_result(result)


async def _run(dut, spec) -> dict:
    rng = random.Random(spec["seed"])
    sources = [_Source(dut, p, s, rng) for p, s in spec["inputs"].items()]
    sinks = [_Sink(dut, p, s, rng) for p, s in spec["outputs"].items()]
    swapper = _Swapper(dut, spec, sources[0]) if spec.get("swaps") else None
    if swapper is not None:
        for s in sinks:
            s.set_of = swapper.set_of

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for port, value in spec["statics"]:
        getattr(dut, port).value = value
    dut.rst.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    for port, payload in spec["writes"]:  # always-ready parameter writes
        getattr(dut, f"{port}__valid").value = 1
        getattr(dut, f"{port}__payload").value = payload
        await FallingEdge(dut.clk)
        getattr(dut, f"{port}__valid").value = 0
    await FallingEdge(dut.clk)

    cycles = drain = 0
    while True:
        done = all(s.done for s in sources) and all(s.done for s in sinks)
        done = done and (swapper is None or swapper.done)
        if swapper is not None:
            swapper.drive()
        for s in sources:
            s.drive()
        for s in sinks:
            s.drive(draining=done)  # draining: always ready, so extra beats show up
        await ReadOnly()
        for s in sources:
            s.sample(cycles)
        for s in sinks:
            s.sample(cycles)
        if swapper is not None:
            swapper.sample(cycles)
        cycles += 1
        if cycles > spec["max_cycles"]:
            raise SimulationMismatch(
                f"timeout after {cycles} cycles: sent "
                + ", ".join(
                    f"{p} {s.sent}/{len(s.beats)}"
                    for p, s in zip(spec["inputs"], sources, strict=True)
                )
                + "; received "
                + ", ".join(f"{s.port} {s.received}/{len(s.expected)}" for s in sinks)
            )
        if done:
            drain += 1
            if drain > spec["drain_cycles"]:
                break
        await FallingEdge(dut.clk)

    for flag in spec["flags"]:  # sticky error outputs that must still be low
        if int(getattr(dut, flag).value):
            raise SimulationMismatch(f"{flag} is set")
    return {
        "cycles": cycles - drain,
        "sent": {p: s.sent for p, s in zip(spec["inputs"], sources, strict=True)},
        "received": {s.port: s.received for s in sinks},
        "first_output_cycle": {s.port: s.first for s in sinks},
        "last_output_cycle": {s.port: s.last for s in sinks},
        "input_cycles": {
            p: [s.first, s.last] for p, s in zip(spec["inputs"], sources, strict=True)
        },
        **(
            {
                "swap_pulses": swapper.pulses,
                "busy_low": swapper.busy_low,
                "frame_starts": sources[0].starts,
                "frame_sets": [swapper.set_of(f) for f in range(len(sources[0].starts))],
                "output_frame_first": {s.port: s.frame_first for s in sinks},
            }
            if swapper is not None
            else {}
        ),
    }
