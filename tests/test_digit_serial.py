# amaranth: UnusedElaboratable=no
"""DigitSerialMatVec (semifreddo_hw.digit_serial): the frozen shift-add graph run a few bits
per cycle, bit-exact against the golden model under stalls, for digit counts from 1 to
bit-serial; throughput of one beat per ``digits`` cycles; digit-serial frozen layers."""

import functools
import re
import zlib

import numpy as np
import pytest

from semifreddo_hw.adder_graph import AdderGraph, Term
from semifreddo_hw.digit_serial import DigitSerialMatVec, fewest_digits
from semifreddo_hw.matvec import FrozenMatVec
from sim.golden.primitives import matvec
from sim.pysim import run_stream_pysim, run_streams_pysim, run_testbench
from sim.rtl import Lanes, VerilatorDesign
from tests.netlist import netlist, registers
from tests.rtl_helpers import OutsideInSide, int8_stimulus, padded
from tests.test_conv import _conv, make_layer, vectors
from weights.synthetic import gaussian_int8


def _extremes(rng, n_out, n_in):
    return rng.choice([-128, 127, -127, 0, 1, -1, 64], size=(n_out, n_in))


_ZERO_ROWS = np.array([[0] * 4, [3, 0, -7, 1], [0] * 4, [127] * 4])

# name: (weights maker, solver, adder levels per stage, side bits)
MATRICES = {
    "1x1_min": (lambda r: np.array([[-128]]), "da4ml", 2, 0),
    "5x3_extremes": (lambda r: _extremes(r, 5, 3), "da4ml", 2, 2),
    "7x9_csd": (lambda r: gaussian_int8(r, 7, 9, 0.4), "csd", 1, 1),
    "6x6_deep": (lambda r: gaussian_int8(r, 6, 6, 0.1), "da4ml", 3, 2),
    "4x4_zero_rows": (lambda r: _ZERO_ROWS, "csd", 2, 0),
    "3x3_all_zero": (lambda r: np.zeros((3, 3), int), "da4ml", 2, 1),
}


def _weights(name):
    make, solver, levels, side = MATRICES[name]
    return make(np.random.default_rng(zlib.crc32(name.encode()))), solver, levels, side


def _digit_counts(out_width):
    """1, 2, 3, a middle one, bit-serial minus one and bit-serial."""
    counts = {1, 2, 3, out_width // 2, out_width - 1, out_width}
    return sorted(d for d in counts if 1 <= d <= out_width)


def _case(name, seed, beats):
    """Matrix ``name`` with its planning options, output width, stimulus and results."""
    w, solver, levels, side = _weights(name)
    width = FrozenMatVec(w, solver=solver).out_width
    x = int8_stimulus(np.random.default_rng(seed), beats, w.shape[1])
    return w, solver, levels, side, width, x, matvec(w, x)


@pytest.mark.parametrize("name", list(MATRICES))
def test_digit_serial_pysim_every_digit_count(name):
    w, solver, levels, side, width, x, y = _case(name, 7, 24)
    for k, digits in enumerate(_digit_counts(width)):
        dut = DigitSerialMatVec(
            w, digits=digits, solver=solver, levels_per_stage=levels, side_width=side, hold=k % 2
        )
        assert dut.digits * dut.digit_width >= dut.out_width == width
        stall = [(0.3, 0.3), (0.6, 0.1), (0.1, 0.7)][k % 3]
        run_stream_pysim(dut, x.tolist(), y.tolist(), in_stall=stall[0], out_stall=stall[1], seed=k)


@pytest.mark.parametrize("hold", [False, True])
@pytest.mark.parametrize("digits", [1, 2, 5, 18])
def test_digit_serial_takes_a_beat_every_digits_cycles(digits, hold):
    """Without stalls, ``n`` beats take ``latency + (n - 1) * digits`` cycles: beats that
    arrive ``digits`` cycles apart are never held up (also when the producer holds them).
    A held beat's digits picked from five entries or more are registered before any adder
    reads them (the pick's stage, counted in the latency)."""
    w = gaussian_int8(np.random.default_rng(3), 8, 8)
    dut = DigitSerialMatVec(w, digits=digits, hold=hold)
    plan = dut._plan
    adds = [op for op in plan.ops if op.kind == "add"]
    reads_input = any(plan.ops[a[0]].kind == "in" for op in adds for a in op.args)
    few = dut._pick_entries < dut.PICK_STAGE_FROM  # here 1, 2 and 3 entries, and 8 at 18
    assert adds and reads_input == (not hold or few) and few == (digits < 18)
    x = int8_stimulus(np.random.default_rng(4), 30, 8)
    cycles = run_stream_pysim(dut, x.tolist(), matvec(w, x).tolist(), in_stall=0, out_stall=0)
    assert cycles == dut.latency + (len(x) - 1) * digits + 1
    assert dut.interval == digits


@pytest.mark.parametrize("digits", [3, 4, 5])
def test_shifts_beyond_the_word(digits):
    """A node shifted past the word's ``digits * digit_width`` bits contributes nothing
    (x<<9 - x<<9, shifted again, plus x: W = [[1]] with 8-bit outputs)."""
    graph = AdderGraph(1, ((Term(0, 9), Term(0, 9, True)), (Term(1, 3), Term(0))), (Term(2),))
    dut = DigitSerialMatVec(np.array([[1]]), digits=digits, graph=graph, side_width=1)
    x = int8_stimulus(np.random.default_rng(digits), 20, 1)
    run_stream_pysim(dut, x.tolist(), x.tolist(), in_stall=0.3, out_stall=0.3, seed=digits)


def _occupancy(dut, beats, p_in, p_out, seed):
    """Most beats accepted and not yet given out at any time, and the cycles from the first
    acceptance (the first offer, with ``hold``) to the first output, under random
    valid/ready; an offered beat is held until taken."""
    rng = np.random.default_rng(seed)
    n_in, result = len(dut.i.payload.data), {}

    async def bench(ctx):
        taken = given = most = 0
        first_in = first_out = None
        valid = False
        for cycle in range(40 * beats + 200):
            if not valid and rng.random() >= p_in:
                valid = True
                ctx.set(dut.i.payload.data, rng.integers(-128, 128, n_in).tolist())
                if dut.hold and first_in is None:
                    first_in = cycle
            ready = rng.random() >= p_out
            ctx.set(dut.i.valid, valid)
            ctx.set(dut.o.ready, ready)
            await ctx.delay(1e-9)
            if valid and ctx.get(dut.i.ready):
                taken += 1
                valid = False
                first_in = cycle if first_in is None else first_in
            if ready and ctx.get(dut.o.valid):
                given += 1
                first_out = cycle if first_out is None else first_out
            most = max(most, taken - given)
            await ctx.tick()
        result.update(most=most, latency=first_out - first_in)

    run_testbench(dut, bench)
    return result


@pytest.mark.parametrize("hold", [False, True])
@pytest.mark.parametrize("digits, levels", [(1, 1), (2, 1), (3, 2), (7, 1), (17, 3)])
def test_beats_held_bounds_the_occupancy(digits, levels, hold):
    """The backbone sizes its balancing FIFOs from ``beats_held``: no stall pattern puts
    more beats inside; the first output leaves ``latency`` cycles after its beat."""
    w = gaussian_int8(np.random.default_rng(digits), 6, 5)
    for k, (p_in, p_out) in enumerate([(0, 0.9), (0, 0.5), (0.5, 0), (0.3, 0.95)]):
        dut = DigitSerialMatVec(w, digits=digits, levels_per_stage=levels, hold=hold)
        r = _occupancy(dut, 30, p_in, p_out, seed=k)
        assert r["most"] <= dut.beats_held
        if p_out == 0:
            assert r["latency"] == dut.latency


def test_fewest_digits():
    assert [fewest_digits(17, d) for d in (1, 2, 4, 8, 16, 17, 40)] == [1, 2, 4, 6, 9, 17, 17]
    assert fewest_digits(18, 16) == 9 and fewest_digits(20, 3) == 3
    with pytest.raises(ValueError, match="digits must be a positive integer"):
        fewest_digits(8, 0)


def test_digit_serial_checks_digits():
    w = np.array([[1, 2], [3, 4]])
    width = FrozenMatVec(w).out_width
    for bad in (0, -1, width + 1, 2.0):
        with pytest.raises(ValueError, match="digits must be an integer in 1.."):
            DigitSerialMatVec(w, digits=bad)


def test_digit_serial_report():
    w = gaussian_int8(np.random.default_rng(5), 16, 16)
    par = FrozenMatVec(w).report()
    ser = DigitSerialMatVec(w, digits=4).report()
    assert ser["adders"] == par["adders"] and ser["multipliers"] == 0
    assert ser["digits"] == 4 and ser["digit_width"] == -(-par["out_width"] // 4)
    assert ser["latency_cycles"] > par["latency_cycles"]


# Verilator: larger matrices, Amaranth's Verilog (there is no text writer for this block).
RTL = {
    "40x40_dense_d4": (lambda r: gaussian_int8(r, 40, 40), 4, 2),
    "24x32_z50_d8": (lambda r: gaussian_int8(r, 24, 32, 0.5), 8, 2),
    "24x24_extremes_bitserial": (lambda r: _extremes(r, 24, 24), None, 1),
    "16x16_d2": (lambda r: gaussian_int8(r, 16, 16), 2, 3),
}


@pytest.fixture(scope="module")
def designs(rtl_build_dir):
    @functools.cache
    def get(name):
        make, digits, levels = RTL[name]
        w = make(np.random.default_rng(zlib.crc32(name.encode())))
        width = FrozenMatVec(w, levels_per_stage=levels).out_width
        dut = DigitSerialMatVec(w, digits=digits or width, levels_per_stage=levels, side_width=2)
        return w, dut, VerilatorDesign.build(dut, f"dsmv_{name}", rtl_build_dir)

    return get


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n == "40x40_dense_d4" else n for n in RTL],
)
def test_digit_serial_verilator_bit_exact(designs, name):
    w, dut, design = designs(name)
    rng = np.random.default_rng(11)
    x = int8_stimulus(rng, 60, w.shape[1])
    y = matvec(w, x)
    sides = rng.integers(0, 4, size=len(x)).tolist()
    n_out, n_in = w.shape
    for k, (p_in, p_out) in enumerate([(0.0, 0.0), (0.5, 0.3), (0.1, 0.8)]):
        stats = design.run_stream(
            x.tolist(),
            y.tolist(),
            in_sides=sides,
            out_sides=sides,
            in_lanes=Lanes(n_in, 8, side_width=2),
            out_lanes=Lanes(n_out, dut.out_width, side_width=2),
            in_stall=p_in,
            out_stall=p_out,
            seed=k,
            test_name=f"stall{k}",
        )
        if k == 0:
            assert stats["first_output_cycle"] == dut.latency
            assert stats["cycles"] == dut.latency + (len(x) - 1) * dut.digits + 1


# Layers: a frozen conv whose product is digit-serial, with or without folding.
SERIAL_LAYERS = [
    ("pointwise", (3, 5), 8, 6, 1, 1, 3),
    ("pointwise", (2, 3), 8, 8, 1, 4, 4),
    ("depthwise", (5, 7), 6, 6, 2, 2, 4),
    ("depthwise", (6, 5), 4, 4, 1, 4, 13),
    ("full", (5, 6), 3, 8, 2, 2, 2),
]


@pytest.mark.parametrize("kind,size,c_in,c_out,stride,fold,digits", SERIAL_LAYERS)
def test_digit_serial_conv_pysim(kind, size, c_in, c_out, stride, fold, digits):
    rng = np.random.default_rng([c_in, c_out, stride, fold, digits, *size])
    w, scale, bias = make_layer(rng, kind, c_in, c_out, extremes=digits % 2 == 0)
    dut = _conv(kind, w, size, stride, 11, True, scale, bias, fold=fold, digits=digits)
    product = dut.product
    assert isinstance(product, DigitSerialMatVec)
    assert product.digits == fewest_digits(product.out_width, digits) <= digits
    x, xs, y, ys = vectors(rng, kind, w, size, c_in, stride, scale, bias, 11, True)
    run_stream_pysim(dut, x, y, in_sides=xs, out_sides=ys, in_stall=0.3, out_stall=0.3)
    assert dut.report()["digits"] == product.digits


@pytest.mark.parametrize("spaced", [False, True])
@pytest.mark.parametrize("name", ["5x3_extremes", "7x9_csd", "1x1_min"])
def test_digit_serial_pads_what_it_picks(name, spaced):
    """``pad`` (with ``hold``): an input lane whose ``outside`` bit is set reads as its
    int8 constant, digit by digit (a deferred window padding): bit-exact under stalls at
    every digit count, constants at the extremes."""
    w, solver, levels, _, width, x, _ = _case(name, 13, 20)
    rng = np.random.default_rng(len(name))
    n = w.shape[1]
    x = x.tolist()
    outside = [int(v) for v in rng.integers(0, 1 << n, size=len(x))]
    outside[:2] = [(1 << n) - 1, 0]
    pad = rng.choice([-128, 127, -1, 0, 85], size=n).tolist()
    pad[0] = -128
    y = matvec(w, np.array(padded(x, outside, pad))).tolist()
    for k, digits in enumerate(_digit_counts(width)):
        kw = dict(solver=solver, levels_per_stage=levels, hold=True, spaced=spaced)
        dut = OutsideInSide(DigitSerialMatVec(w, digits=digits, pad=pad, **kw))
        inputs, outputs = {"i": (x, outside)}, {"o": (y, None)}
        run_streams_pysim(dut, inputs, outputs, in_stall=0.3, out_stall=0.3, seed=k)
    with pytest.raises(ValueError, match="pad needs hold"):
        DigitSerialMatVec(w, digits=2, pad=pad)
    with pytest.raises(ValueError, match=f"pad must be {n} int8 constants"):
        DigitSerialMatVec(w, digits=2, hold=True, pad=[128] * n)


def test_digit_serial_conv_is_frozen_only():
    w = np.ones((4, 4), int)
    with pytest.raises(ValueError, match="only a frozen product runs digit-serially"):
        _conv("pointwise", w, (2, 2), 1, 0, False, configurable=True, digits=2)
    with pytest.raises(ValueError, match="digits must be a positive integer"):
        _conv("pointwise", w, (2, 2), 1, 0, False, digits=0)


@pytest.mark.parametrize("hold", [False, True])
@pytest.mark.parametrize("name", ["5x3_extremes", "7x9_csd", "3x3_all_zero"])
def test_spaced_digit_serial(name, hold):
    """One beat at a time: bit-exact under stalls at every digit count; without stalls a
    beat every ``interval`` cycles; ``i.ready`` from flip-flops only (it never follows
    ``o.ready`` in the same cycle)."""
    w, solver, levels, side, width, x, y = _case(name, 11, 16)
    for k, digits in enumerate(_digit_counts(width)):
        kw = dict(solver=solver, levels_per_stage=levels, side_width=side, hold=hold)
        dut = DigitSerialMatVec(w, digits=digits, spaced=True, **kw)
        assert dut.beats_held == 1 and dut.interval == dut.latency + 1
        run_stream_pysim(dut, x.tolist(), y.tolist(), in_stall=0.3, out_stall=0.4, seed=k)
        cycles = run_stream_pysim(dut, x.tolist(), y.tolist(), in_stall=0, out_stall=0)
        assert cycles == dut.latency + (len(x) - 1) * dut.interval + 1


class TightCopies(DigitSerialMatVec):
    """A copy of the control for every two ops, lanes and outputs: many groups on a small
    matrix."""

    OPS_PER_COPY = LANES_PER_COPY = OUTPUTS_PER_COPY = 2


def _kept_bits(dut) -> int:
    text = netlist(dut)
    kept = set(re.findall(r"attribute \\keep 1\n\s*wire width \d+ \\(\S+)\n", text))
    return sum(w for name, w in registers(dut) if name in kept)


@pytest.mark.parametrize("hold", [False, True])
@pytest.mark.parametrize("name", ["7x9_csd", "6x6_deep"])
def test_spaced_control_copies(name, hold):
    """Spaced, groups of registers follow copies of their stage's control: bit-exact under
    stalls with many groups (two ops, lanes, outputs each) at every digit count, as fast
    as with one group, and the copies' bits as the report counts them."""
    w, solver, levels, side, width, x, y = _case(name, 13, 12)
    for k, digits in enumerate(_digit_counts(width)):
        kw = dict(solver=solver, levels_per_stage=levels, side_width=side, hold=hold)
        dut = TightCopies(w, digits=digits, spaced=True, **kw)
        run_stream_pysim(dut, x.tolist(), y.tolist(), in_stall=0.3, out_stall=0.4, seed=k)
        cycles = run_stream_pysim(dut, x.tolist(), y.tolist(), in_stall=0, out_stall=0)
        assert cycles == dut.latency + (len(x) - 1) * dut.interval + 1
        plan, stage, delays = dut._layout()
        groups = set(dut._control_groups(plan, stage, delays).values())
        assert len(groups) > len({s for s, _ in groups})  # stages with several copies
        one = DigitSerialMatVec(w, digits=digits, spaced=True, **kw)
        assert _kept_bits(one) < _kept_bits(dut) == dut.copy_bits
        assert dut.report()["register_bits"] > one.report()["register_bits"]


@pytest.mark.parametrize("hold", [False, True])
def test_spaced_ready_does_not_follow_the_output(hold):
    """With the output held back, ``i.ready`` is the same whatever ``o.ready`` and
    ``i.valid`` say in that cycle (a flip-flop's, or two of them, with ``hold`` too: the
    producer's step starts there); one beat is taken, then none."""
    w = gaussian_int8(np.random.default_rng(5), 4, 4)
    dut = DigitSerialMatVec(w, digits=3, spaced=True, hold=hold)
    seen = []

    async def bench(ctx):
        ctx.set(dut.i.payload.data, [1, 2, 3, 4])
        for _ in range(3 * dut.interval):
            readies = []
            for valid, ready in ((0, 0), (0, 1), (1, 0), (1, 1)):
                ctx.set(dut.i.valid, valid)
                ctx.set(dut.o.ready, ready)
                await ctx.delay(1e-9)
                readies.append(ctx.get(dut.i.ready))
            seen.append(readies)
            ctx.set(dut.o.ready, 0)  # the output is never taken
            await ctx.tick()

    run_testbench(dut, bench)
    assert all(len(set(r)) == 1 for r in seen)
    taken = [r[0] for r in seen]
    assert sum(taken) == 1 and taken[-1] == 0  # took one beat, then waits for good
    # held: in the word's last digit (the start registered first)
    assert taken.index(1) == (dut.digits if hold else 0)
    if hold:  # a flip-flop's output itself, no logic behind it
        assert re.search(r"connect \\Q \\i__ready$", netlist(dut), re.M)
