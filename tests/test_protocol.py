"""The stream-rule monitors of both testbenches (sim.protocol): a producer that drops valid,
or changes its payload, before the beat is taken is caught, naming the port and the cycle;
a well-behaved one passes. The broken producers are one-beat buffers gone wrong on purpose."""

import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from semifreddo_hw.streams import vector_layout
from sim.errors import SimulationMismatch
from sim.lanes import Lanes
from sim.protocol import StreamMonitor
from sim.pysim import run_stream_pysim
from sim.rtl import VerilatorDesign

LANES = 2


FAULTS = {None: 0, "drop": 1, "change": 2}


class Buffer(wiring.Component):
    """A one-beat buffer ``i`` -> ``o``; the ``fault`` input breaks the output's stream rule
    while a beat waits: 1 lowers valid every fourth cycle, 2 flips a payload bit every
    fourth cycle (the beat, when taken, is still right); 0 keeps it."""

    def __init__(self):
        layout = vector_layout(signed(8), LANES, 1)
        super().__init__(
            {
                "i": In(stream.Signature(layout)),
                "o": Out(stream.Signature(layout)),
                "fault": In(2),
            }
        )

    def elaborate(self, platform):
        m = Module()
        full, data, side = Signal(), Signal(8 * LANES), Signal()
        tick = Signal(2)
        m.d.sync += tick.eq(tick + 1)
        odd = tick == 3
        m.d.comb += self.i.ready.eq(~full | self.o.ready)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [full.eq(1), data.eq(self.i.payload.data.as_value())]
            m.d.sync += side.eq(self.i.payload.side)
        with m.Elif(self.o.ready):
            m.d.sync += full.eq(0)
        valid = full & ~(odd & (self.fault == 1))
        out = data ^ (odd & (self.fault == 2))
        # a dropped valid must not lose the beat: the buffer only empties when taken
        with m.If(~valid & ~(self.i.valid & self.i.ready)):
            m.d.sync += full.eq(full)
        m.d.comb += [self.o.valid.eq(valid), self.o.payload.data.as_value().eq(out)]
        m.d.comb += self.o.payload.side.eq(side)
        return m


def _beats(n=40):
    return [[(3 * k) % 256 - 128, (7 * k + 1) % 256 - 128] for k in range(n)]


def test_monitor_rule():
    mon = StreamMonitor("o")
    mon.sample(0, True, False, 5)  # offered, not taken: must stay
    mon.sample(1, True, True, 5)  # taken
    mon.sample(2, False, False, 9)  # nothing offered: anything goes
    mon.sample(3, True, False, 7)
    with pytest.raises(
        SimulationMismatch, match=r"o: stream protocol: payload of beat 1 .*cycle 4"
    ):
        mon.sample(4, True, False, 8)
    mon = StreamMonitor("x")
    mon.sample(0, True, False, 1)
    with pytest.raises(SimulationMismatch, match="x: stream protocol: valid dropped in cycle 1"):
        mon.sample(1, False, False, 1)


@pytest.mark.parametrize("fault", [None, "drop", "change"])
def test_pysim_monitors_the_stream_rule(fault):
    beats = _beats()
    statics = [("fault", FAULTS[fault])]
    run = lambda: run_stream_pysim(Buffer(), beats, beats, seed=3, out_stall=0.6, statics=statics)  # noqa: E731
    if fault is None:
        run()
        return
    what = "valid dropped" if fault == "drop" else "payload of beat"
    with pytest.raises(SimulationMismatch, match=rf"^o: stream protocol: {what}.* cycle \d+"):
        run()


def test_cocotb_bench_monitors_the_stream_rule(rtl_build_dir):
    lanes = Lanes(LANES, 8, side_width=1)
    beats = _beats()
    design = VerilatorDesign.build(Buffer(), "faulty_buffer", rtl_build_dir)
    for fault, code in FAULTS.items():

        def run(code=code):
            return design.run_stream(
                beats,
                beats,
                in_lanes=lanes,
                out_lanes=lanes,
                out_stall=0.6,
                seed=4,
                statics=[("fault", code)],
                test_name=f"fault{code}",
            )

        if fault is None:
            run()
            continue
        what = "valid dropped" if fault == "drop" else "payload of beat"
        with pytest.raises(SimulationMismatch, match=rf"o: stream protocol: {what}.* cycle \d+"):
            run()
