# amaranth: UnusedElaboratable=no
"""Fast sweeps of the arithmetic blocks in Amaranth's simulator (many small random designs),
and the structural promises: no multipliers or memories in frozen blocks, zero weights free,
plan estimates equal to what is built."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring

from semifreddo_hw.matvec import ConfigurableMatVec, FrozenMatVec
from semifreddo_hw.requant import Requantizer
from sim.golden.primitives import matvec, requantize
from sim.pysim import run_stream_pysim
from tests.netlist import adder_cells, rtlil_cells
from tests.rtl_helpers import int8_stimulus
from weights.synthetic import gaussian_int8


@pytest.mark.parametrize("seed", range(24))
def test_frozen_matvec_random_sweep(seed):
    rng = np.random.default_rng(seed)
    n_out, n_in = rng.integers(1, 13, size=2)
    w = gaussian_int8(rng, n_out, n_in, rng.choice([0, 0.3, 0.6, 0.9]))
    dut = FrozenMatVec(
        w,
        solver=["csd", "da4ml"][seed % 2],
        levels_per_stage=int(rng.integers(1, 5)),
        side_width=seed % 4,
    )
    x = int8_stimulus(rng, 40, n_in)
    run_stream_pysim(
        dut, x, matvec(w, x), seed=seed, in_stall=rng.uniform(0, 0.8), out_stall=rng.uniform(0, 0.8)
    )


@pytest.mark.parametrize("seed", range(8))
def test_configurable_matvec_random_sweep(seed):
    rng = np.random.default_rng(100 + seed)
    n_out, n_in = (int(v) for v in rng.integers(1, 9, size=2))
    init = rng.integers(-128, 128, size=(2, n_out, n_in))
    dut = ConfigurableMatVec(
        n_in, n_out, init=init, sets=2, levels_per_stage=int(rng.integers(1, 4))
    )
    x = int8_stimulus(rng, 30, n_in)
    run_stream_pysim(dut, x, matvec(init[1], x), statics=[("select", 1)], seed=seed)
    w = rng.integers(-128, 128, size=(n_out, n_in))
    writes = [("write", {"set": 0, "index": k, "value": int(v)}) for k, v in enumerate(w.flat)]
    run_stream_pysim(dut, x, matvec(w, x), writes=writes, seed=seed)


@pytest.mark.parametrize("levels", [1, 2])
def test_configurable_matvec_with_irregular_mask(levels):
    rng = np.random.default_rng(levels)
    mask = rng.random((7, 11)) < 0.4
    mask[2] = False  # a row with no weights: output 0
    mask[5] = True  # the widest row
    w = np.where(mask, rng.integers(-128, 128, size=mask.shape), 0)
    dut = ConfigurableMatVec(11, 7, mask=mask, init=w, levels_per_stage=levels, side_width=1)
    x = int8_stimulus(rng, 30, 11)
    run_stream_pysim(dut, x, matvec(w, x))
    assert dut.report()["multipliers"] == mask.sum()
    assert rtlil_cells(dut)["$dff"][1] == dut.report()["register_bits"] + dut.latency
    w2 = np.where(mask, rng.integers(-128, 128, size=mask.shape), 0)
    writes = [
        ("write", {"index": dut.index(j, i), "value": int(w2[j, i])})
        for j, i in zip(*np.nonzero(mask), strict=True)
    ]
    run_stream_pysim(dut, x, matvec(w2, x), writes=writes)
    with pytest.raises(ValueError, match="outside the mask"):
        ConfigurableMatVec(11, 7, mask=mask, init=np.ones((7, 11), int))


def test_param_bank_select_past_last_set_reads_set_zero():
    init = np.arange(3 * 2 * 2).reshape(3, 2, 2) - 6
    dut = ConfigurableMatVec(2, 2, init=init, sets=3)
    x = int8_stimulus(np.random.default_rng(0), 10, 2)
    run_stream_pysim(dut, x, matvec(init[2], x), statics=[("select", 2)])
    run_stream_pysim(dut, x, matvec(init[0], x), statics=[("select", 3)])


@pytest.mark.parametrize("seed", range(8))
def test_requantizer_random_sweep(seed):
    rng = np.random.default_rng(200 + seed)
    c, acc_width = int(rng.integers(1, 6)), int(rng.integers(2, 28))
    shift = int(rng.integers(0, 20))
    relu = bool(seed % 2)
    scale = rng.integers(-(2**15), 2**15, size=c)
    bias = rng.integers(-(2**31), 2**31, size=c) >> int(rng.integers(0, 31))
    dut = Requantizer(
        c, acc_width, shift=shift, relu=relu, scale_init=scale.tolist(), bias_init=bias.tolist()
    )
    acc = rng.integers(-(1 << (acc_width - 1)), 1 << (acc_width - 1), size=(40, c))
    run_stream_pysim(dut, acc, requantize(acc, scale, bias, shift, relu), seed=seed)


class _SelectInSide(wiring.Component):
    """A requantizer whose parameter set is chosen per (sub-)beat by the beat's side bit:
    ``select`` follows the beat at ``i``, as the stream's contract has it."""

    def __init__(self, dut):
        self.dut = dut
        members = dut.signature.members
        super().__init__({"i": members["i"], "o": members["o"]})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.dut
        wiring.connect(m, wiring.flipped(self.i), self.dut.i)
        wiring.connect(m, self.dut.o, wiring.flipped(self.o))
        m.d.comb += self.dut.select.eq(self.i.payload.side[0])
        return m


@pytest.mark.parametrize(
    "fold, acc_width, buffered",
    [(1, 20, False), (3, 19, False), (2, 24, True), (3, 16, False), (1, 26, True), (2, 25, False)],
)
def test_requantizer_computes_each_beat_with_its_set(fold, acc_width, buffered):
    """Two parameter sets, the set chosen per sub-beat, spatial and folded: the bias read with
    the scale (19 to 24 bits: the low bits' product joins it), after it (one product; 25 bits
    and more, the low bits in a product of their own), at the extremes of the parameters."""
    rng = np.random.default_rng(fold * 100 + acc_width)
    c, shift = 6, acc_width + 7  # most results inside the int8 range: the bias tells
    scale = rng.integers(-(2**15), 2**15, size=(2, c))
    bias = rng.integers(-(2**31), 2**31, size=(2, c)) >> max(0, 31 - acc_width - 14)
    scale[1, :2], bias[1, :2] = [-(2**15), 2**15 - 1], [2**31 - 1, -(2**31)]
    dut = Requantizer(
        c,
        acc_width,
        shift=shift,
        fold=fold,
        sets=2,
        scale_init=scale,
        bias_init=bias,
        side_width=1,
        buffered=buffered,
    )
    acc = rng.integers(-(1 << (acc_width - 1)), 1 << (acc_width - 1), size=(40, c))
    acc[:2] = [[-(1 << (acc_width - 1))] * c, [(1 << (acc_width - 1)) - 1] * c]
    sel = rng.integers(0, 2, size=(40, fold))  # per sub-beat
    lanes = c // fold
    y = [
        requantize(
            acc[b, p * lanes : (p + 1) * lanes],
            *(v[sel[b, p], p * lanes : (p + 1) * lanes] for v in (scale, bias)),
            shift,
            False,
        )
        for b in range(len(acc))
        for p in range(fold)
    ]
    inside = np.mean([(-128 < v < 127) for beat in y for v in beat])
    assert inside > 0.6, inside  # a check that the set's bias and scale are used
    sides = sel.reshape(-1).tolist()
    run_stream_pysim(
        _SelectInSide(dut),
        acc.reshape(-1, lanes),
        y,
        in_sides=sides,
        out_sides=sides,
        in_stall=0.3,
        out_stall=0.3,
    )


def test_frozen_block_has_no_multiplier_or_memory():
    w = gaussian_int8(np.random.default_rng(0), 12, 10, 0.4)
    for solver in ("csd", "da4ml"):
        dut = FrozenMatVec(w, solver=solver)
        cells = rtlil_cells(dut)
        assert not [k for k in cells if k == "$mul" or k.startswith("$mem")], dict(cells)
        assert adder_cells(cells) == dut.graph.adders
    # The checks can see multipliers and memories where they exist:
    cells = rtlil_cells(ConfigurableMatVec(3, 2))
    assert cells["$mul"][0] == 6 and any(k.startswith("$mem") for k in cells)


def test_zero_weights_generate_no_logic():
    rng = np.random.default_rng(4)
    w = gaussian_int8(rng, 6, 5, 0.2)
    padded = np.zeros((9, 11), np.int64)
    padded[np.ix_([0, 2, 3, 5, 7, 8], [1, 2, 4, 8, 10])] = w
    for solver in ("csd", "da4ml"):
        small, big = FrozenMatVec(w, solver=solver), FrozenMatVec(padded, solver=solver)
        assert (
            adder_cells(rtlil_cells(big)) == adder_cells(rtlil_cells(small)) == small.graph.adders
        )
    assert adder_cells(rtlil_cells(FrozenMatVec(np.zeros((3, 4), int)))) == 0


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_plan_register_bits_equal_built_registers(levels):
    w = gaussian_int8(np.random.default_rng(levels), 10, 9, 0.3)
    dut = FrozenMatVec(w, levels_per_stage=levels, side_width=levels - 1)
    dff_bits = rtlil_cells(dut)["$dff"][1]
    assert dff_bits == dut.report()["register_bits"] + dut.latency  # + one valid bit a stage
    cdut = ConfigurableMatVec(4, 3, levels_per_stage=levels, side_width=levels)
    assert rtlil_cells(cdut)["$dff"][1] == cdut.report()["register_bits"] + cdut.latency


def test_parameters_are_checked():
    with pytest.raises(ValueError, match=r"weight \[0,1\] = 128"):
        FrozenMatVec(np.array([[1, 128]]))
    with pytest.raises(TypeError, match="integer"):
        FrozenMatVec(np.array([[0.5]]))
    with pytest.raises(ValueError, match="levels_per_stage"):
        FrozenMatVec(np.array([[1]]), levels_per_stage=0)
    with pytest.raises(ValueError, match="n_in"):
        ConfigurableMatVec(0, 3)
    with pytest.raises(ValueError, match="init"):
        ConfigurableMatVec(2, 3, init=np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="shift"):
        Requantizer(4, 16, shift=-1)
