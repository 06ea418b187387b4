# amaranth: UnusedElaboratable=no
"""Rate folding (semifreddo_hw.fold): beats as sub-beats and back, and the folded requantizer
between them, against the golden model under random stalls, in Amaranth's simulator and in
Verilator."""

import functools

import numpy as np
import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from semifreddo_hw.fold import (
    Accumulator,
    Deserializer,
    Serializer,
    group_lanes,
    repeat_lanes,
    slice_lanes,
)
from semifreddo_hw.matvec import ConfigurableMatVec
from semifreddo_hw.requant import Requantizer
from sim.golden.primitives import matvec, requantize
from sim.pysim import run_stream_pysim, run_streams_pysim
from sim.rtl import Lanes, VerilatorDesign
from tests.netlist import memory_bits, registers, rtlil_cells
from tests.rtl_helpers import OutsideInSide, bank_writes, int8_stimulus, padded
from tests.test_requant_rtl import edge_accumulators


class Chain(wiring.Component):
    """``Serializer -> (inner) -> Deserializer``: a beat of ``taps * channels`` lanes folded
    ``fold`` ways (``groups``: the serializer's lane groups, channel groups by default) and
    put back together; the inner block's parameter ports are passed through."""

    def __init__(
        self,
        elem,
        channels,
        fold,
        *,
        taps=1,
        inner=None,
        out_elem=None,
        groups=None,
        hold=False,
        registered=False,
    ):
        groups = groups or group_lanes(channels, fold, taps)
        self.ser = Serializer(elem, taps * channels, groups, 2, hold=hold)
        self.inner = inner
        lanes = len(groups[0]) if inner is None else len(inner.o.payload.data)
        self.des = Deserializer(out_elem or elem, lanes, fold, 2, registered=registered)
        members = {"i": In(self.ser.i.signature.flip()), "o": Out(self.des.o.signature)}
        if inner is not None:
            members |= {k: v for k, v in inner.signature.members.items() if k not in ("i", "o")}
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.ser, m.submodules.des = self.ser, self.des
        wiring.connect(m, wiring.flipped(self.i), self.ser.i)
        if self.inner is None:
            wiring.connect(m, self.ser.o, self.des.i)
        else:
            m.submodules.inner = self.inner
            wiring.connect(m, self.ser.o, self.inner.i)
            wiring.connect(m, self.inner.o, self.des.i)
            for name in self.inner.signature.members:
                if name in ("i", "o"):
                    continue
                port, inner = getattr(self, name), getattr(self.inner, name)
                if hasattr(port, "payload"):
                    m.d.comb += [inner.valid.eq(port.valid), inner.payload.eq(port.payload)]
                else:
                    m.d.comb += inner.eq(port)
        wiring.connect(m, self.des.o, wiring.flipped(self.o))
        return m


@pytest.mark.parametrize("hold", [False, True])
@pytest.mark.parametrize(
    "channels, fold, taps", [(8, 4, 1), (8, 8, 1), (6, 3, 9), (4, 1, 1), (16, 2, 9)]
)
def test_serialize_and_put_back(channels, fold, taps, hold):
    rng = np.random.default_rng(channels * fold + taps)
    x = rng.integers(-128, 128, size=(23, taps * channels))
    groups = group_lanes(channels, fold, taps)
    want = [[row[k] for g in groups for k in g] for row in x.tolist()]
    dut = Chain(signed(8), channels, fold, taps=taps, hold=hold)
    assert (dut.ser.register_bits == 0) == (hold or fold == 1)
    run_stream_pysim(dut, x.tolist(), want, in_stall=0.4, out_stall=0.4, seed=fold)
    if hold or fold == 1:  # without stalls, a beat every fold cycles
        cycles = run_stream_pysim(dut, x.tolist(), want, in_stall=0, out_stall=0)
        assert cycles <= len(x) * fold + 2


@pytest.mark.parametrize(
    "count, groups, mode",
    [
        (8, group_lanes(8, 4), "shifts"),  # channel groups: each lane waits for one sub-beat
        (18, group_lanes(2, 2, 9), "shifts"),
        (32, [[p, 16 + p] for p in range(16)], "shifts"),  # a blend's: x_f, x_t of a channel
        (4, repeat_lanes(4, 3), 1),  # rotates, period 1: every sub-beat the whole beat
        (4, slice_lanes(repeat_lanes(4, 3), 2), 2),  # the beat in two, three times
        (16, slice_lanes(repeat_lanes(16, 4), 16), 16),  # a stage-4 pointwise layer's, 4 groups
        (6, [[4, 1], [0, 5], [3, 2]] * 3, 3),  # lanes in no order within the period
        (4, [[0, 1], [2, 3], [1, 0], [3, 2]], "picks"),  # read again in another order
        (3, [[0], [1], [1], [2]], "picks"),  # read twice in a row, not periodically
    ],
)
def test_serializer_shifts_rotates_or_picks(count, groups, mode):
    """Without ``hold``: where no lane is read by two later sub-beats the waiting lanes
    shift towards ``o``; where the groups repeat with a period, each lane read once in it,
    they rotate (in both, no comparison with the phase but the counter's own wrap: no
    multiplexer by phase); else they are picked by phase. All bit-exact under stalls,
    extremes included, a beat every ``fold`` cycles without stalls, and the registers
    one per waiting lane, or per lane of a period (and the side bits, and the chain's
    phase-0 flip-flop)."""
    fold = len(groups)
    rng = np.random.default_rng([count, fold, len(groups[0])])
    x = int8_stimulus(rng, 23, count).tolist()
    want = [[row[k] for k in g] for row in x for g in groups]
    ser = Serializer(signed(8), count, groups, 2)
    waiting = len({k for g in groups[1:] for k in g})
    chain = mode != "picks"
    assert ser._period == (mode if isinstance(mode, int) else None)
    if isinstance(mode, int):  # rotates: a row per sub-beat of the period
        waiting = mode * len(groups[0])
    assert ser.register_bits == 8 * waiting + 2 + chain
    # what is built: every flip-flop but the phase counter's
    built = sum(w for name, w in registers(ser) if not name.startswith("ser_phase"))
    assert built == ser.register_bits
    compares = rtlil_cells(ser)["$eq"][0]
    assert compares == 1 if chain else compares > 1
    sides = np.random.default_rng(fold).integers(0, 4, size=len(x)).tolist()
    sub_sides = [v for v in sides for _ in groups]  # every sub-beat its beat's side bits
    for stall, seed in ((0.4, fold), (0, 0)):
        kw = dict(in_sides=sides, out_sides=sub_sides, in_stall=stall, out_stall=stall)
        cycles = run_stream_pysim(ser, x, want, seed=seed, **kw)
    assert cycles <= len(x) * fold + 2


@pytest.mark.parametrize("channels, fold, taps", [(8, 4, 1), (6, 3, 9), (4, 1, 1), (2, 2, 1)])
def test_registered_deserializer(channels, fold, taps):
    """``registered``: every beat put back bit-exact (side bits included) under stalls; a
    beat every ``fold + 1`` cycles without stalls; one register row (and the side bits)
    more than the plain one."""
    rng = np.random.default_rng([channels, fold, taps])
    x = int8_stimulus(rng, 23, taps * channels)
    groups = group_lanes(channels, fold, taps)
    want = [[row[k] for g in groups for k in g] for row in x.tolist()]
    dut = Chain(signed(8), channels, fold, taps=taps, registered=True)
    plain = Deserializer(signed(8), len(groups[0]), fold, 2)
    assert dut.des.latency == 1 and plain.latency == 0
    assert dut.des.register_bits == plain.register_bits + 8 * len(groups[0]) + 2
    run_stream_pysim(dut, x.tolist(), want, in_stall=0.4, out_stall=0.4, seed=fold)
    cycles = run_stream_pysim(dut, x.tolist(), want, in_stall=0, out_stall=0)
    assert cycles <= len(x) * (fold + 1) + 3


@pytest.mark.parametrize("o_ready", [0, 1])
@pytest.mark.parametrize("fold", [1, 3])
def test_registered_deserializer_ready_is_its_emptiness(fold, o_ready):
    """``registered``: ``i.ready`` is the output register's emptiness in every cycle, so the
    consumer's ``ready`` never reaches the producer (held low: the first beat stays)."""
    dut = Deserializer(signed(8), 1, fold, 2, registered=True)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    seen = []

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.o.ready, o_ready)
        for _ in range(3 * fold + 4):
            await ctx.tick()
            seen.append((ctx.get(dut.i.ready), ctx.get(dut.o.valid)))

    sim.add_testbench(bench)
    sim.run()
    assert all(r == 1 - v for r, v in seen), seen
    valid = [v for _, v in seen]
    if o_ready:  # each beat leaves in the cycle after it is complete
        assert sum(valid) >= 3 and not any(valid[k] & valid[k + 1] for k in range(len(valid) - 1))
    else:  # the first beat stays
        first = valid.index(1)
        assert first <= fold and all(valid[first:])


@pytest.mark.parametrize("channels, fold, taps", [(6, 3, 9), (4, 1, 9), (2, 2, 9), (8, 8, 1)])
def test_serializer_pads_what_it_picks(channels, fold, taps):
    """``pad`` with ``hold``: a lane whose ``outside`` bit is set leaves as its constant
    (a deferred window padding), every sub-beat under stalls, extremes included."""
    rng = np.random.default_rng(channels * fold + taps)
    count = taps * channels
    x = int8_stimulus(rng, 29, count).tolist()
    outside = [int(v) for v in rng.integers(0, 1 << count, size=len(x), dtype=np.uint64)]
    outside[:3] = [0, (1 << count) - 1, 0x5555_5555_5555_5555_5555 & ((1 << count) - 1)]
    pad = rng.choice([-128, 127, 0, -1, 37], size=count).tolist()
    groups = group_lanes(channels, fold, taps)
    ser = Serializer(signed(8), count, groups, hold=fold > 1, pad=pad)
    want = [[row[k] for k in g] for row in padded(x, outside, pad) for g in groups]
    dut = OutsideInSide(ser)
    for seed, stall in enumerate([(0.4, 0.4), (0, 0)]):
        inputs, outputs = {"i": (x, outside)}, {"o": (want, None)}
        run_streams_pysim(dut, inputs, outputs, in_stall=stall[0], out_stall=stall[1], seed=seed)
    with pytest.raises(ValueError, match="pad needs hold"):
        Serializer(signed(8), 4, group_lanes(4, 2), pad=[0] * 4)
    with pytest.raises(ValueError, match="a constant for each of the 4 lanes"):
        Serializer(signed(8), 4, group_lanes(4, 2), hold=True, pad=[0] * 3)


def test_lane_groups():
    assert group_lanes(4, 2) == [[0, 1], [2, 3]]
    assert group_lanes(4, 2, taps=2) == [[0, 1, 4, 5], [2, 3, 6, 7]]
    assert repeat_lanes(3, 2) == [[0, 1, 2], [0, 1, 2]]
    assert slice_lanes([[0, 1, 4, 5], [2, 3, 6, 7]], 2) == [[0, 1], [4, 5], [2, 3], [6, 7]]
    assert slice_lanes(repeat_lanes(3, 2), 3) == [[0], [1], [2]] * 2
    with pytest.raises(ValueError, match="divisor"):
        group_lanes(6, 4)
    with pytest.raises(ValueError, match="divisor of 4 lanes"):
        slice_lanes(group_lanes(4, 1), 3)


@pytest.mark.parametrize(
    "lanes, count, stall", [(3, 2, 0.4), (1, 9, 0.3), (4, 5, 0.6), (2, 1, 0.3)]
)
def test_accumulator_sums_each_group_of_sub_beats(lanes, count, stall):
    """Every output is the exact sum of ``count`` sub-beats (extremes included, sums that
    need the wider output), with the last sub-beat's side bits, under stalls on both
    sides."""
    rng = np.random.default_rng([lanes, count])
    beats = 31
    x = rng.integers(-(1 << 11), 1 << 11, size=(beats * count, lanes))
    x[:count] = -(1 << 11)  # the most negative sum
    x[count : 2 * count] = (1 << 11) - 1
    sides = rng.integers(0, 4, size=beats * count).tolist()
    want = x.reshape(beats, count, lanes).sum(axis=1).tolist()
    width = 12 + (count - 1).bit_length()
    dut = Accumulator(signed(12), signed(width), lanes, count, side_width=2)
    run_stream_pysim(
        dut,
        x.tolist(),
        want,
        in_sides=sides,
        out_sides=sides[count - 1 :: count],
        in_stall=stall,
        out_stall=stall,
        seed=count,
    )


@pytest.mark.parametrize("count", [1, 2, 7])
def test_accumulator_takes_a_sub_beat_every_cycle(count):
    """Without stalls nothing waits: n groups of sub-beats leave ``latency`` cycles after
    the last one entered, the output register refilled while it is read."""
    beats = 12
    x = [[k % 5 - 2] for k in range(beats * count)]
    want = np.array(x).reshape(beats, count).sum(axis=1, keepdims=True).tolist()
    dut = Accumulator(signed(4), signed(8), 1, count)
    cycles = run_stream_pysim(dut, x, want, in_stall=0, out_stall=0)
    assert cycles == beats * count + Accumulator.latency


def test_accumulator_checks_its_parameters():
    with pytest.raises(ValueError, match="count must be a positive integer"):
        Accumulator(signed(8), signed(8), 2, 0)
    with pytest.raises(ValueError, match="at least as wide"):
        Accumulator(signed(9), signed(8), 2, 2)


def _folded_requant(channels, fold, acc_width, shift, relu, buffered=False):
    rq = Requantizer(
        channels, acc_width, shift=shift, relu=relu, fold=fold, side_width=2, buffered=buffered
    )
    return Chain(signed(acc_width), channels, fold, inner=rq, out_elem=signed(8))


def _requant_case(rng, dut, channels, acc_width, shift, relu):
    scale = rng.integers(-(1 << 15), 1 << 15, size=channels)
    bias = rng.integers(-(1 << 31), 1 << 31, size=channels) >> rng.integers(0, 32)
    scale[0], bias[0] = -(1 << 15), (1 << 31) - 1  # the representable extremes
    acc = edge_accumulators(
        rng, channels, acc_width, shift, scale.tolist(), bias.tolist(), beats=60
    )
    writes = bank_writes(dut, "scale_write", dut.inner.scales, scale) + bank_writes(
        dut, "bias_write", dut.inner.biases, bias
    )
    return acc, requantize(acc, scale, bias, shift, relu), writes


@pytest.mark.parametrize(
    "channels, fold, relu, buffered",
    [
        (8, 2, False, False),
        (8, 8, True, False),
        (12, 3, False, False),
        (4, 4, True, False),
        (12, 4, False, False),
        (10, 5, True, False),
        (8, 2, False, True),
        (12, 3, True, True),
        (10, 5, False, True),
    ],
)
def test_folded_requantizer_pysim(channels, fold, relu, buffered):
    rng = np.random.default_rng(channels + fold)
    dut = _folded_requant(channels, fold, 20, 9, relu, buffered)
    acc, y, writes = _requant_case(rng, dut, channels, 20, 9, relu)
    writes = [(port, _fields(dut, port, word)) for port, word in writes]
    run_stream_pysim(
        dut, acc.tolist(), y.tolist(), writes=writes, in_stall=0.3, out_stall=0.3, seed=fold
    )


def _fields(dut, port, word):
    """A packed parameter write as the field dict Amaranth's simulator sets."""
    layout = dut.signature.members[port].signature.members["payload"].shape
    return {name: (word >> f.offset) & ((1 << f.width) - 1) for name, f in layout}


@pytest.fixture(scope="module")
def designs(rtl_build_dir):
    @functools.cache
    def get(channels, fold, buffered=False):
        dut = _folded_requant(channels, fold, 24, 13, False, buffered)
        name = f"frq_{channels}_{fold}" + ("_buffered" if buffered else "")
        return dut, VerilatorDesign.build(dut, name, rtl_build_dir)

    return get


@pytest.mark.parametrize("buffered", [False, True])
def test_folded_requantizer_verilator(designs, buffered):
    dut, design = designs(8, 4, buffered)
    rng = np.random.default_rng(5)
    acc, y, writes = _requant_case(rng, dut, 8, 24, 13, False)
    sides = [0] * len(acc)
    for k, stalls in enumerate([(0.3, 0.3), (0.0, 0.0), (0.7, 0.1)]):
        design.run_stream(
            acc.tolist(),
            y.tolist(),
            writes=writes,  # each run starts from the power-up image
            in_sides=sides,
            out_sides=sides,
            in_stall=stalls[0],
            out_stall=stalls[1],
            seed=k,
            test_name=f"run{k}",
            in_lanes=Lanes(8, 24, side_width=2),
            out_lanes=Lanes(8, 8, side_width=2),
        )


def test_folded_requantizer_has_fewer_multipliers():
    spatial = Requantizer(16, 20, shift=8)
    folded = Requantizer(16, 20, shift=8, fold=4)
    # Two multiplies a lane: a 20-bit accumulator is wider than a DSP operand (the low 17
    # bits times the scale in the DSP block, the high 3 beside it).
    assert rtlil_cells(spatial)["$mul"][0] == 2 * 16
    assert rtlil_cells(folded)["$mul"][0] == 2 * 4
    assert rtlil_cells(Requantizer(16, 18, shift=8))["$mul"][0] == 16
    with pytest.raises(ValueError, match="must divide"):
        Requantizer(12, 20, shift=8, fold=5)


def _matvec_case(kind, channels, fold, rng, buffered=False):
    """A folded configurable layer product: the matrix over the layer's lanes, the chain,
    and the weights by phase. ``pointwise``: every sub-beat repeats all ``channels`` inputs;
    ``depthwise``: sub-beat ``p`` takes channel group ``p`` of nine taps."""
    group = channels // fold
    if kind == "pointwise":
        w = rng.integers(-128, 128, size=(channels, channels))
        w[0, 0], w[-1, -1] = -128, 127
        images = w.reshape(fold, group, channels)
        mv = ConfigurableMatVec(
            channels, group, init=images, fold=fold, side_width=2, buffered=buffered
        )
        return (
            w,
            Chain(
                signed(8),
                channels,
                fold,
                inner=mv,
                out_elem=signed(mv.out_width),
                groups=repeat_lanes(channels, fold),
            ),
            images,
            mv,
        )
    k = rng.integers(-128, 128, size=(channels, 9))
    w = np.zeros((channels, 9 * channels), np.int64)
    for t in range(9):
        w[np.arange(channels), t * channels + np.arange(channels)] = k[:, t]
    mask = np.zeros((group, 9 * group), bool)
    images = np.zeros((fold, group, 9 * group), np.int64)
    for t in range(9):
        mask[np.arange(group), t * group + np.arange(group)] = True
        for p in range(fold):
            images[p, np.arange(group), t * group + np.arange(group)] = k[
                p * group : (p + 1) * group, t
            ]
    mv = ConfigurableMatVec(
        9 * group, group, mask=mask, init=images, fold=fold, side_width=2, buffered=buffered
    )
    return (
        w,
        Chain(signed(8), channels, fold, taps=9, inner=mv, out_elem=signed(mv.out_width)),
        images,
        mv,
    )


@pytest.mark.parametrize(
    "kind, channels, fold, buffered",
    [
        ("pointwise", 8, 4, False),
        ("pointwise", 6, 3, False),
        ("depthwise", 8, 2, False),
        ("depthwise", 6, 6, False),
        ("pointwise", 6, 3, True),
        ("depthwise", 8, 2, True),
    ],
)
def test_folded_configurable_matvec_pysim(kind, channels, fold, buffered):
    """The power-up image, then other weights written through the bank (every phase);
    stages that stall, or (buffered) never do, a queue behind them."""
    rng = np.random.default_rng(channels * fold)
    w, dut, images, mv = _matvec_case(kind, channels, fold, rng, buffered)
    x = int8_stimulus(rng, 30, w.shape[1])
    run_stream_pysim(dut, x.tolist(), matvec(w, x).tolist(), in_stall=0.3, out_stall=0.3, seed=1)
    w2, _, images2, _ = _matvec_case(kind, channels, fold, np.random.default_rng(99))
    writes = [
        ("write", {"index": mv.bank.address(mv.index(j, i, p)), "value": int(images2[p, j, i])})
        for p in range(fold)
        for j, i in zip(*np.nonzero(mv.mask), strict=True)
    ]
    run_stream_pysim(
        dut, x.tolist(), matvec(w2, x).tolist(), writes=writes, in_stall=0.3, out_stall=0.3, seed=2
    )


def test_folded_matvec_multipliers_and_memory():
    """A 4-phase 16 -> 4 product: the weights of one phase get multipliers (64), all four
    phases' weights sit in the memory."""
    mv = ConfigurableMatVec(16, 4, fold=4)
    assert rtlil_cells(mv)["$mul"][0] == 64 == mv.report()["multipliers"]
    assert mv.report()["weights"] == 4 * 64 and memory_bits(mv) == 4 * 64 * 8


@pytest.mark.parametrize("block", ["requantizer", "product"])
def test_buffered_ready_is_registered(block):
    """Buffered, ``i.ready`` never follows ``o.ready`` within a cycle (it is a compare on
    the credit register), the stages take a beat every clock with ``o`` always ready, and
    a stalled output fills the queue and stops the input: without the queue, ``i.ready``
    follows ``o.ready`` at once."""
    from amaranth.sim import Simulator

    def readies(buffered):
        if block == "requantizer":
            dut = Requantizer(4, 12, shift=2, fold=2, side_width=1, buffered=buffered)
        else:
            dut = ConfigurableMatVec(6, 2, fold=3, side_width=1, buffered=buffered)
        seen = []

        async def bench(ctx):
            ctx.set(dut.i.valid, 1)
            for cycle in range(40):
                both = []
                for ready in (0, 1):
                    ctx.set(dut.o.ready, ready)
                    await ctx.delay(1e-9)
                    both.append(ctx.get(dut.i.ready))
                ctx.set(dut.o.ready, int(cycle < 10 or cycle >= 30))  # a 20-cycle stall
                await ctx.delay(1e-9)
                seen.append((both, ctx.get(dut.i.ready)))
                await ctx.tick()

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        sim.run()
        return dut, seen

    dut, seen = readies(True)
    assert all(a == b for (a, b), _ in seen)
    assert all(r for _, r in seen[:10])  # one (sub-)beat a clock while the output flows
    stalled = [r for _, r in seen[10:30]]
    # the stages and the queue fill up, then the input stops
    assert 0 < stalled.count(1) <= dut.queue_depth and not any(stalled[-5:])
    _, seen = readies(False)
    assert any(a != b for (a, b), _ in seen)
