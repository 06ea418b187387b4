"""cocotb testbench: a host on the other end of a design's UART pins (``rx``, ``tx``).

Driven by :meth:`sim.rtl.VerilatorDesign.run_bench` with a JSON spec: ``send`` (hex bytes
for the design's ``rx``), ``divisor`` (clock cycles per bit), ``gap`` (the chance of an idle
pause after a byte), ``expect`` (bytes to wait for on ``tx``), ``max_cycles`` and ``seed``.
Writes ``received`` (hex), ``cycles`` and ``line_errors`` (bytes whose stop bit was low)
to ``SEMIFREDDO_TB_STATS``; what the bytes mean is the caller's to check.
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, Timer
from cocotb.utils import get_sim_time

PERIOD_NS = 10


@cocotb.test()
async def uart_host(dut):
    with open(os.environ["SEMIFREDDO_TB_SPEC"]) as f:
        spec = json.load(f)
    div, rng = spec["divisor"], random.Random(spec["seed"])
    # Bit times are waited with timers, not clock edges: Python wakes once per bit, not once
    # per cycle (the clock itself runs in the simulator).
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns", impl="gpi").start())
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    received, errors = bytearray(), [0]

    def bits(n):
        return Timer(n * PERIOD_NS, unit="ns")

    async def listen():
        while True:
            await FallingEdge(dut.tx)  # a start bit
            await bits(div // 2)
            byte = 0
            for b in range(8):
                await bits(div)
                byte |= int(dut.tx.value) << b
            await bits(div)
            if not int(dut.tx.value):
                errors[0] += 1
            received.append(byte)

    def cycles():
        return int(get_sim_time(unit="ns")) // PERIOD_NS

    cocotb.start_soon(listen())
    for byte in bytes.fromhex(spec["send"]):
        for bit in [0, *((byte >> b) & 1 for b in range(8)), 1]:
            dut.rx.value = bit
            await bits(div)
        if rng.random() < spec["gap"]:
            await bits(rng.randint(1, 3 * div))
    while len(received) < spec["expect"] and cycles() < spec["max_cycles"]:
        await bits(10 * div)
    await bits(20 * div)  # anything more than expected shows too
    with open(os.environ["SEMIFREDDO_TB_STATS"], "w") as f:
        json.dump({"received": received.hex(), "cycles": cycles(), "line_errors": errors[0]}, f)
