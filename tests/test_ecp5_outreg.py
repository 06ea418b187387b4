"""``generators.ecp5_outreg``: a block RAM's read register moves into the block RAM when it
is the only load of every data bit, has no reset and one enable; otherwise nothing moves."""

import json
import subprocess

import pytest
from amaranth.back import verilog
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib.memory import Memory

from generators.board import outreg_wrapper, place_memories, synth_overrides
from generators.ecp5_outreg import _json_path, absorb
from generators.synth import yosys_command


class ReadRegister(Elaboratable):
    """A 512-deep memory, its synchronous read registered in the fabric (enable ``en``)."""

    def __init__(self, width: int, *, reset=False, tap=False, inverted=False):
        self.width, self.reset, self.tap, self.inverted = width, reset, tap, inverted
        self.wa, self.ra = Signal(9, name="wa"), Signal(9, name="ra")
        self.wd, self.we = Signal(width, name="wd"), Signal(name="we")
        self.re, self.en = Signal(name="re"), Signal(name="en")
        self.y, self.t = Signal(width, name="y"), Signal(name="t")

    @property
    def ports(self):
        return [self.wa, self.ra, self.wd, self.we, self.re, self.en, self.y, self.t]

    def elaborate(self, platform):
        m = Module()
        # "storage", as a FIFO's: the board flow says it never sees a read-write collision
        m.submodules.storage = mem = Memory(shape=self.width, depth=512, init=[])
        w, r = mem.write_port(), mem.read_port()
        m.d.comb += [w.addr.eq(self.wa), w.data.eq(self.wd), w.en.eq(self.we)]
        m.d.comb += [r.addr.eq(self.ra), r.en.eq(self.re)]
        reg = Signal(self.width, name="read_reg", reset_less=not self.reset)
        with m.If(~self.en if self.inverted else self.en):
            m.d.sync += reg.eq(r.data)
        m.d.comb += self.y.eq(reg)
        if self.tap:  # a second load on a data bit: the register must stay
            m.d.comb += self.t.eq(r.data[0])
        return m


def _synth(tmp_path, dut) -> dict:
    text, _ = place_memories(verilog.convert(dut, name="top", ports=dut.ports), 1)
    (tmp_path / "top.v").write_text(text)
    o = synth_overrides("none")
    (tmp_path / "synth.ys").write_text(
        "\n".join(
            [
                "read_verilog top.v",
                o["script_after_read"],
                f"synth_ecp5 -top top {o['synth_opts']}",
                o["script_after_synth"],
                "write_json top.json",
            ]
        )
    )
    subprocess.run(yosys_command(), cwd=tmp_path, check=True, capture_output=True)
    return json.loads((tmp_path / "top.json").read_text())


def _cells(netlist, kind):
    return [c for c in netlist["modules"]["top"]["cells"].values() if c["type"] == kind]


def _net_of(netlist, name):
    nets = netlist["modules"]["top"]["netnames"]
    return nets[name]["bits"] if name in nets else netlist["modules"]["top"]["ports"][name]["bits"]


@pytest.mark.parametrize("width, inverted", [(16, False), (36, False), (16, True)])
def test_a_read_register_moves_into_the_block_ram(tmp_path, width, inverted):
    """Every bit of the register goes; the block's output register takes its enable (an
    inverted one through the block's inverting mux); the outputs are the block's data pins.
    36 bits: the pseudo dual port mode, both halves."""
    netlist = _synth(tmp_path, ReadRegister(width, inverted=inverted))
    (ram,) = _cells(netlist, "DP16KD")
    ffs = len(_cells(netlist, "TRELLIS_FF"))
    assert absorb(netlist) == {"ports": 1, "flip_flops": width}
    assert len(_cells(netlist, "TRELLIS_FF")) == ffs - width
    if width == 36:
        assert ram["parameters"]["REGMODE_A"] == ram["parameters"]["REGMODE_B"] == "OUTREG"
        oce = ram["connections"]["OCEB"]
    else:
        regmodes = {ram["parameters"]["REGMODE_A"], ram["parameters"]["REGMODE_B"]}
        assert regmodes == {"OUTREG", "NOREG"}
        oce = ram["connections"]["OCEA" if ram["parameters"]["REGMODE_A"] == "OUTREG" else "OCEB"]
    assert oce == _net_of(netlist, "en")
    oce_name = "OCEB" if width == 36 or ram["parameters"]["REGMODE_B"] == "OUTREG" else "OCEA"
    assert ram["parameters"].get(f"{oce_name}MUX") == ("INV" if inverted else oce_name)
    driven = {b for p, bits in ram["connections"].items() if p.startswith("DO") for b in bits}
    assert set(_net_of(netlist, "y")) <= driven
    assert absorb(netlist) == {"ports": 0, "flip_flops": 0}  # nothing more on a second run


@pytest.mark.parametrize("case", ["reset", "tap"])
def test_a_register_with_a_reset_or_beside_another_load_stays(tmp_path, case):
    netlist = _synth(tmp_path, ReadRegister(16, **{case: True}))
    before = json.dumps(netlist, sort_keys=True)
    assert absorb(netlist) == {"ports": 0, "flip_flops": 0}
    assert json.dumps(netlist, sort_keys=True) == before


def test_the_wrapper_finds_the_netlist_and_runs_nextpnr(tmp_path):
    """The board flow's wrapper rewrites the ``--json`` netlist, then runs the tool given
    (here ``true``) with nextpnr's arguments, and returns its status."""
    netlist = _synth(tmp_path, ReadRegister(16))
    script = outreg_wrapper(tmp_path / "tools", "true")
    (tmp_path / "tools" / "top.json").write_text(json.dumps(netlist))
    done = subprocess.run(
        [str(script), "--quiet", "--json", "top.json"],
        cwd=tmp_path / "tools",
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "16 flip-flops moved into 1 block RAM read ports" in done.stderr
    moved = json.loads((tmp_path / "tools" / "top.json").read_text())
    assert "OUTREG" in {c["parameters"]["REGMODE_A"] for c in _cells(moved, "DP16KD")} | {
        c["parameters"]["REGMODE_B"] for c in _cells(moved, "DP16KD")
    }
    with pytest.raises(SystemExit, match="no --json"):
        _json_path(["--quiet"])
    # A netlist it cannot read goes to nextpnr as it is, with a line saying so.
    (tmp_path / "tools" / "bad.json").write_text("{not json")
    done = subprocess.run(
        [str(script), "--json=bad.json"], cwd=tmp_path / "tools", capture_output=True, text=True
    )
    assert done.returncode == 0 and "nothing moved" in done.stderr
    assert (tmp_path / "tools" / "bad.json").read_text() == "{not json"


def _synthetic(cemux: str, ce, *, width_a: int = 18, also_output: bool = False) -> dict:
    """A DP16KD whose port B's two data bits each drive one flip-flop (enable ``ce``
    through ``cemux``); with ``also_output`` the first data bit is a module output too."""
    ram = {
        "type": "DP16KD",
        "parameters": {"DATA_WIDTH_A": format(width_a, "032b"), "GSR": "DISABLED"},
        "connections": {"CLKA": [2], "CLKB": [2], "DOB0": [10], "DOB1": [11], "OCEB": ["1"]},
        "port_directions": {"CLKA": "input", "CLKB": "input", "DOB0": "output", "DOB1": "output"},
    }
    cells = {"ram": ram}
    for k in range(2):
        cells[f"ff{k}"] = {
            "type": "TRELLIS_FF",
            "parameters": {"CEMUX": cemux, "CLKMUX": "CLK", "GSR": "DISABLED", "REGSET": "RESET"},
            "port_directions": {"CLK": "input", "CE": "input", "DI": "input", "Q": "output"},
            "connections": {
                "CLK": [2],
                "CE": list(ce),
                "DI": [10 + k],
                "LSR": ["0"],
                "Q": [20 + k],
            },
        }
    ports = {"q": {"direction": "output", "bits": [20, 21]}}
    if also_output:
        ports["d"] = {"direction": "output", "bits": [10]}
    return {"modules": {"top": {"cells": cells, "ports": ports, "netnames": {}}}}


@pytest.mark.parametrize(
    "cemux, ce, taken",
    [
        ("CE", [5], True),
        ("INV", [5], True),
        ("1 ", [], True),
        ("INV", ["0"], True),
        ("INV", ["1"], False),
        ("CE", ["0"], False),
    ],
)
def test_enables_constant_or_inverted(cemux, ce, taken):
    """A constant enable is resolved here (always on: the output register's enable is 1;
    never on: nothing moves), a net goes to OCE, inverted through the block's mux."""
    netlist = _synthetic(cemux, ce)
    assert absorb(netlist)["flip_flops"] == (2 if taken else 0)
    ram = netlist["modules"]["top"]["cells"]["ram"]
    if taken:
        assert ram["parameters"]["REGMODE_B"] == "OUTREG"
        assert ram["connections"]["DOB0"] == [20] and ram["connections"]["DOB1"] == [21]
        net = ce == [5]
        assert ram["connections"]["OCEB"] == ([5] if net else ["1"])
        mux = ram["parameters"].get("OCEBMUX")
        assert mux == ("INV" if cemux == "INV" else "OCEB") if net else mux is None


def test_a_data_bit_read_elsewhere_keeps_its_register():
    netlist = _synthetic("CE", [5], also_output=True)
    assert absorb(netlist) == {"ports": 0, "flip_flops": 0}


def test_pseudo_dual_port_gives_both_enables():
    """36 bits: both output registers, and port A's OCE the same as port B's."""
    netlist = _synthetic("INV", [5], width_a=36)
    assert absorb(netlist) == {"ports": 1, "flip_flops": 2}
    ram = netlist["modules"]["top"]["cells"]["ram"]
    assert ram["connections"]["OCEA"] == ram["connections"]["OCEB"] == [5]
    assert ram["parameters"]["OCEAMUX"] == ram["parameters"]["OCEBMUX"] == "INV"
    assert ram["parameters"]["REGMODE_A"] == ram["parameters"]["REGMODE_B"] == "OUTREG"
