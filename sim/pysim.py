"""Amaranth's own simulator for fast unit tests of small stream components.

Same contract as :meth:`sim.rtl.VerilatorDesign.run_stream` (random valid/ready stalls, every
output beat compared in order, extra beats detected), but in-process and without a compile:
good for sweeps over many small random designs.
"""

import random

from amaranth.sim import Simulator

__all__ = ["run_stream_pysim"]


def run_stream_pysim(dut, inputs, expected, *, writes=(), statics=(), in_stall=0.3,
                     out_stall=0.3, seed=0, in_port="i", out_port="o", max_cycles=None,
                     drain_cycles=64, in_sides=None, out_sides=None):
    """Stream ``inputs`` (lane lists) through ``dut``; assert outputs equal ``expected``.

    ``writes`` are ``(port_name, {field: value})`` applied before streaming, one per cycle;
    ``statics`` are ``(port_name, value)`` held for the whole run (``("select", 1)``, say).
    Where the payload has ``side`` bits, they are ``in_sides`` and are checked against
    ``out_sides``; by default every beat gets random ones, expected back unchanged.
    Returns the number of cycles from the first offered input to the last output.
    """
    rng = random.Random(seed)
    i, o = getattr(dut, in_port), getattr(dut, out_port)
    side_width = len(i.payload.side) if hasattr(i.payload, "side") else 0
    if in_sides is None:
        in_sides = [rng.getrandbits(side_width) if side_width else 0 for _ in inputs]
        out_sides = in_sides if out_sides is None else out_sides
    elif out_sides is None:
        raise ValueError("in_sides given without out_sides")
    limit = max_cycles or 200 + 20 * (len(inputs) + len(expected))
    result = {}

    async def bench(ctx):
        for port, value in statics:
            ctx.set(getattr(dut, port), value)
        for port, fields in writes:
            p = getattr(dut, port)
            ctx.set(p.valid, 1)
            for k, v in fields.items():
                ctx.set(getattr(p.payload, k), v)
            await ctx.tick()
            ctx.set(p.valid, 0)
        await ctx.tick()
        sent = received = cycles = 0
        offering = False
        while received < len(expected) or sent < len(inputs):
            if not offering and sent < len(inputs) and rng.random() >= in_stall:
                offering = True
                ctx.set(i.payload.data, [int(v) for v in inputs[sent]])
                if side_width:
                    ctx.set(i.payload.side, in_sides[sent])
            ctx.set(i.valid, int(offering))
            ready = rng.random() >= out_stall
            ctx.set(o.ready, int(ready))
            await ctx.delay(1e-9)  # let combinational logic settle before sampling
            if offering and ctx.get(i.ready):
                offering = False
                sent += 1
            if ready and ctx.get(o.valid):
                got = [int(v) for v in ctx.get(o.payload.data)]
                exp = [int(v) for v in expected[received]]
                if len(got) != len(exp):
                    raise AssertionError(f"output beat {received} has {len(got)} lanes, "
                                         f"expected {len(exp)}")
                if side_width and ctx.get(o.payload.side) != out_sides[received]:
                    raise AssertionError(f"output beat {received}: side bits "
                                         f"{ctx.get(o.payload.side):#x}, expected "
                                         f"{out_sides[received]:#x}")
                if got != exp:
                    bad = [j for j in range(len(exp)) if got[j] != exp[j]]
                    raise AssertionError(
                        f"output beat {received}: {len(bad)} of {len(exp)} lanes differ; "
                        + ", ".join(f"lane {j}: expected {exp[j]} got {got[j]}"
                                    for j in bad[:8]))
                received += 1
            cycles += 1
            if cycles > limit:
                raise AssertionError(f"timeout: sent {sent}/{len(inputs)}, "
                                     f"received {received}/{len(expected)}")
            await ctx.tick()
        ctx.set(i.valid, 0)
        ctx.set(o.ready, 1)
        for _ in range(drain_cycles):  # a duplicated beat would show up while draining
            await ctx.delay(1e-9)
            if ctx.get(o.valid):
                raise AssertionError("extra output beat after all expected ones")
            await ctx.tick()
        result["cycles"] = cycles

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return result["cycles"]
