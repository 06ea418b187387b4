"""Amaranth's own simulator for fast unit tests of small stream components.

Same contract as :meth:`sim.rtl.VerilatorDesign.run_stream` (random valid/ready stalls, every
output beat compared in order, extra beats detected, :class:`~sim.errors.SimulationMismatch`
naming the first wrong one, the stream rule monitored on every port by
:class:`~sim.protocol.StreamMonitor`), but in-process and without a compile:
good for sweeps over many small random designs. :func:`run_streams_pysim` drives any number
of input and output streams, each with its own random stalls; :func:`run_stream_pysim` is the
common one-in, one-out case.
"""

import random

from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from .errors import SimulationMismatch
from .protocol import StreamMonitor

__all__ = ["run_stream_pysim", "run_streams_pysim", "run_testbench"]


def run_stream_pysim(
    dut,
    inputs,
    expected,
    *,
    in_port="i",
    out_port="o",
    in_sides=None,
    out_sides=None,
    in_stall=0.3,
    out_stall=0.3,
    seed=0,
    **kw,
):
    """Stream ``inputs`` (lane lists) through ``dut``; assert outputs equal ``expected``.

    Where the payload has ``side`` bits, they are ``in_sides`` and are checked against
    ``out_sides``; by default every beat gets random ones, expected back unchanged. Other
    keywords as :func:`run_streams_pysim`. Returns the number of cycles from the first
    offered input to the last output.
    """
    rng = random.Random(seed)
    side = getattr(getattr(dut, in_port).payload, "side", None)
    side_width = 0 if side is None else len(side)
    if in_sides is None:
        in_sides = [rng.getrandbits(side_width) if side_width else 0 for _ in inputs]
        out_sides = in_sides if out_sides is None else out_sides
    elif out_sides is None:
        raise ValueError("in_sides given without out_sides")
    return run_streams_pysim(
        dut,
        {in_port: (inputs, in_sides)},
        {out_port: (expected, out_sides)},
        in_stall=in_stall,
        out_stall=out_stall,
        seed=seed,
        **kw,
    )


def run_streams_pysim(
    dut,
    inputs: dict,
    outputs: dict,
    *,
    writes=(),
    statics=(),
    in_stall=0.3,
    out_stall=0.3,
    seed=0,
    max_cycles=None,
    drain_cycles=64,
    in_period=1,
):
    """Drive input streams and check output streams of ``dut``.

    ``inputs`` maps a port name to ``(beats, sides)`` (``sides`` may be None where the
    payload has no ``side``); ``outputs`` maps a port name to ``(expected beats, expected
    sides)``. Each input offers its next beat with probability ``1 - in_stall`` per cycle and
    holds it until taken, beat ``k`` not before cycle ``k * in_period`` (a steady source at
    one beat every ``in_period`` cycles); each output is ready with probability
    ``1 - out_stall``.
    ``writes`` are ``(port_name, {field: value})`` applied first, one per cycle; ``statics``
    are ``(port_name, value)`` held for the whole run. Returns the cycles from the first
    offered input to the last expected output.
    """
    rng = random.Random(seed)
    n_in = sum(len(b) for b, _ in inputs.values())
    n_out = sum(len(b) for b, _ in outputs.values())
    limit = max_cycles or 200 + 20 * (n_in + n_out) + in_period * n_in
    result = {}

    monitors = {p: StreamMonitor(p) for p in [*inputs, *outputs]}

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
        sent = dict.fromkeys(inputs, 0)
        got = dict.fromkeys(outputs, 0)
        offering = dict.fromkeys(inputs, False)
        cycles = 0
        while any(sent[p] < len(inputs[p][0]) for p in inputs) or any(
            got[p] < len(outputs[p][0]) for p in outputs
        ):
            for p, (beats, sides) in inputs.items():
                s = getattr(dut, p)
                due = cycles >= sent[p] * in_period
                if not offering[p] and sent[p] < len(beats) and due and rng.random() >= in_stall:
                    offering[p] = True
                    ctx.set(s.payload.data, [int(v) for v in beats[sent[p]]])
                    if sides is not None:
                        ctx.set(s.payload.side, sides[sent[p]])
                ctx.set(s.valid, int(offering[p]))
            ready = {p: rng.random() >= out_stall for p in outputs}
            for p in outputs:
                ctx.set(getattr(dut, p).ready, int(ready[p]))
            await ctx.delay(1e-9)  # let combinational logic settle before sampling
            for p, mon in monitors.items():  # the stream rule, on inputs and outputs alike
                s = getattr(dut, p)
                mon.sample(
                    cycles, ctx.get(s.valid), ctx.get(s.ready), ctx.get(s.payload.as_value())
                )
            for p in inputs:
                if offering[p] and ctx.get(getattr(dut, p).ready):
                    offering[p] = False
                    sent[p] += 1
            for p, (expected, sides) in outputs.items():
                s = getattr(dut, p)
                if ready[p] and ctx.get(s.valid):
                    _check_beat(ctx, s, p, got[p], expected, sides)
                    got[p] += 1
            cycles += 1
            if cycles > limit:
                totals = {p: len(b) for p, (b, _) in inputs.items()}
                raise SimulationMismatch(f"timeout: sent {sent} of {totals}, received {got}")
            await ctx.tick()
        for p in inputs:
            ctx.set(getattr(dut, p).valid, 0)
        for p in outputs:
            ctx.set(getattr(dut, p).ready, 1)
        for _ in range(drain_cycles):  # a duplicated beat would show up while draining
            await ctx.delay(1e-9)
            for p in outputs:
                if ctx.get(getattr(dut, p).valid):
                    raise SimulationMismatch(f"{p}: extra output beat after all expected ones")
            await ctx.tick()
        result["cycles"] = cycles

    run_testbench(dut, bench)
    return result["cycles"]


def run_testbench(dut, bench) -> None:
    """Run the async testbench ``bench`` against ``dut`` in Amaranth's simulator, with a
    clock (a sync domain exists even where ``dut`` is purely combinational)."""
    top = Module()
    top.submodules.dut = dut
    tick = Signal()
    top.d.sync += tick.eq(~tick)
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def _check_beat(ctx, stream, port, k, expected, sides):
    if k >= len(expected):
        raise SimulationMismatch(f"{port}: extra output beat {k} (only {len(expected)} expected)")
    got = [int(v) for v in ctx.get(stream.payload.data)]
    exp = [int(v) for v in expected[k]]
    if len(got) != len(exp):
        raise SimulationMismatch(f"{port} beat {k} has {len(got)} lanes, expected {len(exp)}")
    if sides is not None and ctx.get(stream.payload.side) != sides[k]:
        raise SimulationMismatch(
            f"{port} beat {k}: side bits {ctx.get(stream.payload.side):#x}, expected {sides[k]:#x}"
        )
    if got != exp:
        bad = [j for j in range(len(exp)) if got[j] != exp[j]]
        raise SimulationMismatch(
            f"output beat {k} of {port}: {len(bad)} of {len(exp)} lanes "
            f"differ; " + ", ".join(f"lane {j}: expected {exp[j]} got {got[j]}" for j in bad[:8])
        )
