# amaranth: UnusedElaboratable=no
"""Formal equivalence of the text backend's Verilog with Amaranth's, proven by Yosys.

For each case :func:`generators.synth.prove_equivalent` proves by temporal induction (an
unbounded proof, not a bounded simulation) that the module written by
``semifreddo_hw.verilog_text`` and the one Amaranth converts give the same outputs in every
cycle, for every input sequence and every back-pressure pattern, from power-up, while
``rst`` is held low. ``rst`` is left out of the proof because the two differ there on
purpose: Amaranth resets the data registers too, the text only the valid bits (invisible in
a stream's beats, and checked by the Verilator tests).

The induction is strengthened with the registers both texts name alike (the adder graphs'
stages, the side band, the products and balancing delays), the valid bits and the weight
memory: each is proven equal too. The configurable block uses the equiv_* engine (see
prove_equivalent), whose base case also checks the weight memories' power-up images.
"""

import re
import zlib

import numpy as np
import pytest

from generators.synth import NotEquivalent, prove_equivalent
from semifreddo_hw.emit import to_verilog
from semifreddo_hw.matvec import ConfigurableMatVec
from semifreddo_hw.verilog_text import configurable_matvec, frozen_matvec
from tests.matvec_cases import FROZEN, frozen

_REG = re.compile(r"^  reg (?:\[(\d+):0\] )?(\w+);$", re.MULTILINE)


def _state(text: str, latency: int, bank=None) -> list[tuple[str, str, int]]:
    """The registers shared by the text ``text`` and Amaranth's conversion of the same block:
    (gold signal, gate signal, width)."""
    # The text names its data registers as Amaranth's Signals are named (its valid bits
    # are the vector mv_valid, paired bit by bit below).
    pairs = [
        (name, name, int(top) + 1 if top else 1)
        for top, name in _REG.findall(text)
        if name != "mv_valid"
    ]
    # Amaranth's Pipeline: mv_valid1 ... mv_valid<latency-1>, then o.valid; the text: a vector.
    pairs += [
        (f"mv_valid{k + 1}" if k < latency - 1 else "o__valid", f"mv_valid[{k}]", 1)
        for k in range(latency)
    ]
    if bank is not None:
        # ParamBank: one memory row per set (count <= 256 elements: one memory); the text:
        # one element per word, set after set. memory_map names the words <memory>[<row>].
        assert bank.count <= 256
        for s in range(bank.sets):
            # A Yosys concatenation: comma-separated, most significant first.
            words = ",".join(f"\\mv_w[{s * bank.count + k}]" for k in reversed(range(bank.count)))
            pairs.append((f"\\bank.mem0[{s}]", words, 8 * bank.count))
    return pairs


def _frozen(name):
    dut = frozen(name)
    return dut, to_verilog(dut, "gold_mv"), frozen_matvec(dut, "gate_mv")


@pytest.mark.parametrize("name", FROZEN)
def test_frozen_text_equals_amaranth(name):
    dut, gold, gate = _frozen(name)
    state = _state(gate, dut.latency)
    prove_equivalent(gold, "gold_mv", gate, "gate_mv", state=state, assume={"rst": 0})


def test_an_altered_gate_fails():
    """The proof can fail: one adder's sign flipped in the text must not be proven."""
    dut, gold, gate = _frozen("5x3_extremes")
    adder = re.search(r"^  wire \S+ (\w+) = (.*) - (.*);$", gate, re.MULTILINE)
    bad = gate.replace(adder.group(0), adder.group(0).replace(" - ", " + ", 1))
    assert bad != gate
    with pytest.raises(NotEquivalent, match="proof did fail"):
        prove_equivalent(
            gold, "gold_mv", bad, "gate_mv", state=_state(bad, dut.latency), assume={"rst": 0}
        )


# name: (n_out, n_in, levels per stage, side bits, weight sets). Only 1x1 so far: 3x4 with
# two sets and 5x3 with three get no proof within 120 s (not a counterexample; open).
CONFIGURABLE = {
    "1x1": (1, 1, 2, 0, 1),
}


def _configurable(name):
    n_out, n_in, levels, side, sets = CONFIGURABLE[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    images = rng.integers(-128, 128, size=(sets, n_out, n_in))
    images[0, 0, 0] = -128
    images[-1, -1] = 0
    dut = ConfigurableMatVec(
        n_in, n_out, init=images, sets=sets, levels_per_stage=levels, side_width=side
    )
    return dut, to_verilog(dut, "gold_mv"), configurable_matvec(dut, "gate_mv")


@pytest.mark.parametrize("name", CONFIGURABLE)
def test_configurable_text_equals_amaranth(name):
    dut, gold, gate = _configurable(name)
    state = _state(gate, dut.latency, dut.bank)
    # The multipliers make plain SAT induction take minutes: the equiv_* engine.
    prove_equivalent(
        gold,
        "gold_mv",
        gate,
        "gate_mv",
        state=state,
        assume={"rst": 0},
        engine="equiv",
        max_steps=3,
    )
