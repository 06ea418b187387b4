"""Stream plumbing (semifreddo_hw.streams): the half-rate register slice under random
valid/ready, its rate and its occupancy; the fork under random valid/ready; the join's
handshake, every combination."""

import numpy as np
import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from semifreddo_hw.streams import HalfRateSlice, fork, join, vector_layout
from sim.pysim import run_stream_pysim


@pytest.mark.parametrize("in_stall, out_stall", [(0.3, 0.3), (0.0, 0.6), (0.6, 0.0), (0, 0)])
def test_half_rate_slice_passes_every_beat(in_stall, out_stall):
    x = np.random.default_rng(1).integers(-128, 128, size=(40, 3)).tolist()
    dut = HalfRateSlice(vector_layout(signed(8), 3, 2))
    cycles = run_stream_pysim(dut, x, x, in_stall=in_stall, out_stall=out_stall, seed=7)
    if in_stall == out_stall == 0:  # a beat every other cycle, and never faster
        assert cycles == 2 * len(x)


def test_half_rate_slice_keeps_up_with_beats_two_cycles_apart():
    x = np.random.default_rng(2).integers(-128, 128, size=(30, 2)).tolist()
    dut = HalfRateSlice(vector_layout(signed(8), 2))
    # Offered every other cycle, each beat leaves the cycle after it is taken.
    assert run_stream_pysim(dut, x, x, in_stall=0, out_stall=0, in_period=2) == 2 * len(x)
    assert dut.beats == 1


class _Fork(wiring.Component):
    """:func:`fork` of one 8-bit stream into three."""

    def __init__(self):
        super().__init__(
            {
                "i": In(stream.Signature(8)),
                **{f"o{k}": Out(stream.Signature(8)) for k in range(3)},
            }
        )

    def elaborate(self, platform):
        m = Module()
        outs = [getattr(self, f"o{k}") for k in range(3)]
        fork(m, self.i, *outs)
        m.d.comb += [o.payload.eq(self.i.payload) for o in outs]
        return m


@pytest.mark.parametrize("seed", range(4))
def test_fork_gives_every_beat_to_every_destination_once(seed):
    """Random valid on the source and random ready on each destination: every destination
    takes every beat once, in order, and the source moves on in the cycle the last one takes
    it (never before, never later), whatever the pattern; also with readies high all along
    (a beat a cycle)."""
    rng = np.random.default_rng(seed)
    beats = rng.integers(0, 256, 60).tolist()
    p_valid, p_ready = [(0.7, 0.5), (1.0, 1.0), (0.9, 0.3), (0.5, 0.9)][seed]
    dut = _Fork()
    got, moved = [[] for _ in range(3)], []

    async def bench(ctx):
        n, has = 0, [False] * 3  # the beat offered; who has it
        for cycle in range(2000):
            if n == len(beats):
                break
            offer = bool(rng.random() < p_valid)
            ctx.set(dut.i.valid, offer)
            ctx.set(dut.i.payload, beats[n])
            for k in range(3):
                ctx.set(getattr(dut, f"o{k}").ready, bool(rng.random() < p_ready))
            taking = []
            for k in range(3):
                o = getattr(dut, f"o{k}")
                if ctx.get(o.valid):
                    assert offer and not has[k]  # offered, and only to who lacks it
                    if ctx.get(o.ready):
                        taking.append(k)
                        got[k].append(ctx.get(o.payload))
                else:
                    assert not offer or has[k]
            for k in taking:
                has[k] = True
            step = bool(ctx.get(dut.i.valid) and ctx.get(dut.i.ready))
            assert step == (offer and all(has))
            if step:
                moved.append(cycle)
                n, has = n + 1, [False] * 3
            await ctx.tick()
        assert n == len(beats), "stalled"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == [beats] * 3
    if p_valid == p_ready == 1.0:  # a beat a cycle
        assert moved == list(range(len(beats)))


class _Join(wiring.Component):
    """:func:`join` of three 8-bit streams into one (their sum)."""

    def __init__(self):
        super().__init__(
            {
                **{f"i{k}": In(stream.Signature(8)) for k in range(3)},
                "o": Out(stream.Signature(10)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        ins = [getattr(self, f"i{k}") for k in range(3)]
        join(m, ins, self.o)
        m.d.comb += self.o.payload.eq(sum(i.payload for i in ins))
        return m


def test_join_ready_leaves_out_the_sources_own_valid():
    """Every combination of the three valids and the output's ready, settled
    combinationally: the output is valid when all are; a source is ready when the output is
    and every other source is valid, its own valid left out (so a registered source's
    valid never runs through the consumer back to its own enable); a beat moves only when
    all are valid."""
    dut = _Join()
    ins = [dut.i0, dut.i1, dut.i2]
    seen = []

    async def bench(ctx):
        for bits in range(16):
            valids, ready = [(bits >> k) & 1 for k in range(3)], bits >> 3
            for i, v in zip(ins, valids, strict=True):
                ctx.set(i.valid, v)
            ctx.set(dut.o.ready, ready)
            got = [ctx.get(i.ready) for i in ins]
            seen.append((valids, ready, ctx.get(dut.o.valid), got))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert len(seen) == 16
    for valids, ready, valid, got in seen:
        assert valid == all(valids)
        for k in range(3):
            others = all(v for j, v in enumerate(valids) if j != k)
            assert got[k] == (ready and others), (valids, ready, got)
            assert (got[k] and valids[k]) == (ready and all(valids))  # moves with the rest
