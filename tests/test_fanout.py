# amaranth: UnusedElaboratable=no
"""Kept register copies (semifreddo_hw.fanout): a copy is its value a cycle later; Yosys,
with the board flow's script, keeps equal copies apart (and without it merges them, so the
check can fail); the backbone's parameter bus gives each group its own kept copy."""

import re
import subprocess

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Elaboratable, Module, Signal, signed
from amaranth.sim import Simulator

from generators.board import synth_overrides
from generators.synth import yosys_command
from semifreddo_hw.backbone import Backbone
from semifreddo_hw.fanout import kept_copy
from semifreddo_hw.fold import Deserializer
from semifreddo_hw.ports import ports_of
from spec.network import network_from_dict
from tests.malformed.make_corpus import TINY
from tests.netlist import netlist
from weights.synthetic import random_params


class Copies(Elaboratable):
    """``copies`` kept copies of ``a`` (the last loaded only while ``en``), each read by an
    output of its own."""

    def __init__(self, copies: int):
        self.a, self.en = Signal(4), Signal()
        self.y = [Signal(4, name=f"y{k}") for k in range(copies)]

    def elaborate(self, platform):
        m = Module()
        last = len(self.y) - 1
        for k, y in enumerate(self.y):
            enable = self.en if k == last else None
            m.d.comb += y.eq(kept_copy(m, self.a, name=f"copy{k}", enable=enable))
        return m


def test_a_copy_is_its_value_a_cycle_later():
    dut = Copies(2)
    seen = []

    async def bench(ctx):
        rng = np.random.default_rng(3)
        held = 0
        for _ in range(40):
            a, en = int(rng.integers(16)), int(rng.integers(2))
            ctx.set(dut.a, a)
            ctx.set(dut.en, en)
            await ctx.tick()
            held = a if en else held
            seen.append(((ctx.get(dut.y[0]), ctx.get(dut.y[1])), (a, held)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert all(got == want for got, want in seen)
    assert len({want for _, want in seen}) > 10


def _flip_flops(tmp_path, dut, script_after_read: str, ports=None) -> int:
    ports = [dut.a, dut.en, *dut.y] if ports is None else ports
    (tmp_path / "top.il").write_text(rtlil.convert(dut, ports=ports))
    o = synth_overrides("none")
    (tmp_path / "synth.ys").write_text(
        "\n".join(
            [
                "read_rtlil top.il",
                script_after_read,
                f"synth_ecp5 -top top {o['synth_opts']}",
                o["script_after_synth"],
                "tee -o stat.txt stat",
            ]
        )
    )
    subprocess.run(yosys_command(), cwd=tmp_path, check=True, capture_output=True)
    return int(re.search(r"(\d+)\s+TRELLIS_FF", (tmp_path / "stat.txt").read_text()).group(1))


def test_the_board_script_keeps_equal_copies_apart(tmp_path):
    """Three copies of a 4-bit value: 12 flip-flops through the board flow's script; Yosys
    alone merges the two equal ones (the third loads on an enable: 8)."""
    dut = Copies(3)
    (tmp_path / "kept").mkdir()
    (tmp_path / "merged").mkdir()
    assert _flip_flops(tmp_path / "kept", dut, synth_overrides("none")["script_after_read"]) == 12
    assert _flip_flops(tmp_path / "merged", Copies(3), "proc") == 8


def test_a_registered_deserializer_keeps_its_rows_enable_apart(tmp_path):
    """Its output's valid twice (``empty``, inverted, for the rows' enable): synthesis keeps
    both flip-flops."""
    dut = Deserializer(signed(8), 1, 3, 0, registered=True)
    script = synth_overrides("none")["script_after_read"]
    kept = _flip_flops(tmp_path, dut, script, ports_of(dut))
    assert kept == dut.register_bits + 2 + 2  # the rows, both valids, the phase counter


@pytest.mark.parametrize("swap", [False, True])
def test_each_parameter_group_has_its_own_kept_registers(swap):
    """Per group (block, blend, ...): the write's valid, address and value, and with
    ``swap`` the weight set it goes into; in front of them the same per region of
    ``GROUPS_PER_REGION`` groups (here 2, so that there are several)."""
    net = network_from_dict(TINY)
    dut = Backbone(net, random_params(net, np.random.default_rng(0)), swap=swap)
    dut.bus.GROUPS_PER_REGION = 2
    text = netlist(dut)
    kept = set(re.findall(r"attribute \\keep 1\n\s*wire width \d+ \\(param_\w+_[gr]\d+)\n", text))
    groups = {name.rsplit("_g", 1)[1] for name in kept if "_g" in name}
    fields = ("valid", "addr", "value") + (("set",) if swap else ())
    assert len(groups) > 3
    regions = range(-(-len(groups) // 2))
    assert kept == {f"param_{f}_g{k}" for f in fields for k in groups} | {
        f"param_{f}_r{j}" for f in fields for j in regions
    }
    # Behind each group, every write port's decoded hit, index (and set) registered for
    # it alone, and the value once more for the group.
    ports = set(
        re.findall(r"attribute \\keep 1\n\s*wire width \d+ \\(param_\w+_g\d+_(?:p\d+|d))\n", text)
    )
    assert {n for n in ports if n.endswith("_d")} == {f"param_value_g{k}_d" for k in groups}
    per_port = {n.split("_g")[0] + "_" + n.rsplit("_", 1)[1] for n in ports if not n.endswith("_d")}
    assert {"param_valid_p0", "param_index_p0"} <= per_port
    assert ("param_set_p0" in per_port) == swap
    for k in groups:  # every group's ports: a valid and an index each
        valid = {n for n in ports if n.startswith(f"param_valid_g{k}_p")}
        index = {n for n in ports if n.startswith(f"param_index_g{k}_p")}
        assert valid and len(valid) == len(index)
    if net.core_shuffle:  # each stage's shuffle enable, a register of its own
        enables = re.findall(r"attribute \\keep 1\n\s*wire width 1 \\(shuffle\d+_enable)\n", text)
        assert sorted(enables) == [f"shuffle{k}_enable" for k in range(1, len(net.stages) + 1)]
