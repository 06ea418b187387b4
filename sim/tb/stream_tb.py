"""cocotb testbench: one stream in, one stream out, every output beat checked in order.

Driven by :meth:`sim.rtl.VerilatorDesign.run_stream`, which passes a JSON spec through
``SEMIFREDDO_TB_SPEC``. Handshakes follow ``amaranth.lib.stream``: a beat moves on a rising
edge where valid and ready are both high; the source holds valid and payload until then.
Inputs are driven after each falling edge and handshakes sampled in the read-only phase just
before the next rising edge, so the check sees exactly what the flip-flops will see.
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from sim.lanes import Lanes, unpack


def _describe(k, exp, got, lanes):
    ev, es = unpack(exp, lanes)
    gv, gs = unpack(got, lanes)
    diff = [j for j in range(len(ev)) if ev[j] != gv[j]]
    shown = diff[:8]
    text = (f"output beat {k}: {len(diff)} of {len(ev)} lanes differ; "
            + ", ".join(f"lane {j}: expected {ev[j]} got {gv[j]}" for j in shown))
    if es != gs:
        text += f"; side: expected {es:#x} got {gs:#x}"
    return text


@cocotb.test()
async def stream(dut):
    spec = json.loads(open(os.environ["SEMIFREDDO_TB_SPEC"]).read())
    rng = random.Random(spec["seed"])
    ip, op = spec["in_port"], spec["out_port"]
    i_valid, i_ready = getattr(dut, f"{ip}__valid"), getattr(dut, f"{ip}__ready")
    i_payload = getattr(dut, f"{ip}__payload")
    o_valid, o_ready = getattr(dut, f"{op}__valid"), getattr(dut, f"{op}__ready")
    o_payload = getattr(dut, f"{op}__payload")
    out_lanes = Lanes(**spec["out_lanes"])
    inputs = [int(h, 16) for h in spec["inputs"]]
    expected = [int(h, 16) for h in spec["expected"]]

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    i_valid.value = 0
    o_ready.value = 0
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

    sent = received = cycles = 0
    drain = 0
    offering = False
    first_out = None
    while True:
        if not offering and sent < len(inputs) and rng.random() >= spec["in_stall"]:
            offering = True
            i_payload.value = inputs[sent]
        i_valid.value = int(offering)
        done = sent == len(inputs) and received == len(expected)
        ready = done or rng.random() >= spec["out_stall"]  # draining: always ready
        o_ready.value = int(ready)
        await ReadOnly()
        if offering and int(i_ready.value):
            offering = False
            sent += 1
        if ready and int(o_valid.value):
            got = int(o_payload.value)
            if received >= len(expected):
                raise AssertionError(f"extra output beat {received} (only {len(expected)} "
                                     f"expected): {got:#x}")
            if got != expected[received]:
                raise AssertionError(_describe(received, expected[received], got, out_lanes))
            if first_out is None:
                first_out = cycles
            received += 1
        cycles += 1
        if cycles > spec["max_cycles"]:
            raise AssertionError(f"timeout after {cycles} cycles: sent {sent} of "
                                 f"{len(inputs)} beats, received {received} of {len(expected)}")
        if done:
            drain += 1  # keep going a while: a duplicated beat would show up here
            if drain > 20:
                break
        await FallingEdge(dut.clk)

    with open(os.environ["SEMIFREDDO_TB_STATS"], "w") as f:
        json.dump({"cycles": cycles - drain, "sent": sent, "received": received,
                   "first_output_cycle": first_out}, f)
