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
