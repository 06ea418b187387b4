# amaranth: UnusedElaboratable=no
"""The board command without the FPGA tools: PLL settings, the Yosys script overrides, the
report read from nextpnr's log, bad options, and a --no-bitstream build. (The bitstream
itself is built by bench/board.py, outside the test run: minutes to hours.)"""

import json
import re

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Elaboratable, Module, Signal

from generators.backbone_build import rate_folds
from generators.board import (
    BOARD_RELAYS,
    BOARDS,
    BoardTop,
    bram_blocks,
    dsp_min_width,
    dsp_multiplies,
    lut_ram_cells,
    place_memories,
    pll_dividers,
    read_report,
    synth_overrides,
)
from semifreddo_hw.backbone import Backbone
from semifreddo_hw.fanout import KEEP_COPIES
from spec.network import network_from_dict, preset
from tests.cli_helpers import REPO, run_module
from tests.malformed.make_corpus import TINY
from weights.synthetic import random_params

GOOD = REPO / "tests" / "malformed"


@pytest.mark.parametrize("f_in,f_out", [(25, 100), (25, 125), (100, 125), (25, 50), (100, 80)])
def test_pll_dividers_are_exact_and_legal(f_in, f_out):
    ki, kf, ko, f = pll_dividers(f_in, f_out)
    assert f == pytest.approx(f_out)
    assert f == pytest.approx(f_in / ki * kf)
    assert 3.125 <= f_in / ki <= 400 and 400 <= f * ko <= 800


def test_pll_without_a_setting_is_refused():
    with pytest.raises(ValueError, match="no PLL setting"):
        pll_dividers(25, 900)


def test_synth_overrides_keep_the_abc_workaround():
    for dsp in ("auto", "wide", "all", "none"):
        o = synth_overrides(dsp, 8)
        assert o["synth_opts"].endswith("-run begin:map_luts")
        assert o["script_after_synth"] == "abc -lut 4 -dress\nsynth_ecp5 -run map_cells:"
        assert ("-nodsp" in o["synth_opts"]) == (dsp != "all")
    assert "DSP_A_MINWIDTH=9 -D DSP_B_MINWIDTH=9" in synth_overrides("wide")["script_after_read"]
    assert "DSP_A_MINWIDTH=8 -D DSP_B_MINWIDTH=8" in synth_overrides("auto", 8)["script_after_read"]
    assert synth_overrides("none")["script_after_read"] == f"proc\n{KEEP_COPIES}"
    assert synth_overrides("auto", 8)["script_after_read"].startswith(f"proc\n{KEEP_COPIES}\n")
    with pytest.raises(ValueError, match="auto needs"):
        synth_overrides("auto")


def test_dsp_auto_gives_the_blocks_to_as_many_kinds_as_fit():
    counts = {"weights": 34, "blends": 44, "requantizers": 69}  # 147 multiplies
    assert dsp_min_width(counts, 156) == 8
    assert dsp_min_width(counts, 146) == 9  # weights to LUTs
    assert dsp_min_width(counts, 113) == 9
    assert dsp_min_width(counts, 112) == 10  # blends too
    assert dsp_min_width(counts, 10) == 10  # the requantizers' anyway: placement says so


@pytest.mark.parametrize("period", [1, 8])
def test_dsp_multiplies_counts_the_built_multipliers(period):
    """Weights: a multiplier per weight and fold; blends and requantizers: one per channel
    and channel group (a sliced layer's groups are its channels)."""
    net = network_from_dict(TINY)
    folds = rate_folds(net, period)
    dut = Backbone(net, random_params(net, np.random.default_rng(0)), folds=folds)
    n = dsp_multiplies(dut)
    convs = net.convs()
    assert n["weights"] == sum(
        int(np.prod(c.weight_shape)) // folds[c.name] for c in convs if not c.frozen
    )
    assert n["blends"] == sum(b.channels // folds[b.name] for b in net.blends())
    assert n["requantizers"] == sum(c.c_out // min(folds[c.name], c.c_out) for c in convs)


TIM = """Info: Device utilisation:
Info: \t          TRELLIS_IO:      13/    365     3%
Info: \t              DP16KD:      20/    208     9%
Info: \t          MULT18X18D:     100/    156    64%
Info: \t          TRELLIS_FF:   64833/  83640    77%
Info: \t        TRELLIS_COMB:   71779/  83640    85%
Info: Max frequency for clock '$glbnet$pll_clk': 93.10 MHz (FAIL at 100.00 MHz)
Info: Routing complete.
Info: Max frequency for clock '$glbnet$pll_clk': 104.52 MHz (PASS at 100.00 MHz)
"""


def test_report_reads_utilisation_and_the_routed_fmax(tmp_path):
    (tmp_path / "top.tim").write_text(TIM)
    (tmp_path / "top.rpt").write_text("      4321   CCU2C\n     50000   LUT4\n")
    r = read_report(tmp_path, BOARDS["ulx3s-85f"], 100.0, preset("small"))
    assert r["fits"] and r["timing_met"] and r["fmax_mhz"] == 104.52  # the last: routed
    assert (r["comb"], r["ff"], r["dsp"], r["bram"]) == (71779, 64833, 100, 20)
    assert (r["lut4"], r["carry"]) == (50000, 4321)
    assert r["dsp_pct"] == 64.1 and r["lut4_pct"] == 85.8
    assert r["fps_preset"] == round(100e6 / (32 * 24), 1) and r["input_period"] == 1
    # Folded for --fps: the rates the folds keep up with, a pixel every 16 clocks.
    r = read_report(tmp_path, BOARDS["ulx3s-85f"], 100.0, preset("small"), 16)
    assert r["fps_preset"] == round(100e6 / (16 * 32 * 24), 1) and r["input_period"] == 16
    assert r["fps_vga"] == round(100e6 / (16 * 640 * 480), 1)


def test_report_of_a_design_that_does_not_fit(tmp_path):
    (tmp_path / "top.tim").write_text(TIM.replace("100/    156    64%", "539/    156   345%"))
    r = read_report(tmp_path, BOARDS["ulx3s-85f"], 100.0, preset("small"))
    assert not r["fits"] and r["dsp_pct"] == 345.5
    r = read_report(tmp_path / "missing", BOARDS["ulx3s-85f"], 100.0, preset("small"))
    assert not r["fits"] and r["fmax_mhz"] is None


def test_report_of_a_log_cut_short_in_the_router(tmp_path):
    # The placer's estimate is not an Fmax: without the router's last word, nothing routed.
    (tmp_path / "top.tim").write_text(TIM.replace("Info: Routing complete.\n", ""))
    r = read_report(tmp_path, BOARDS["ulx3s-85f"], 100.0, preset("small"))
    assert not r["routed"] and not r["fits"] and r["fmax_mhz"] is None
    (tmp_path / "top.tim").write_text(TIM.replace("Routing complete.", "Router2 time 81.25s"))
    assert read_report(tmp_path, BOARDS["ulx3s-85f"], 100.0, preset("small"))["fmax_mhz"] == 104.52


def _board(*args):
    return run_module("generators.board", *args)


def test_bad_clock_or_baud_is_one_line(tmp_path):
    base = ["--board", "ulx3s-85f", "--freeze", GOOD / "good_frozen.npz", "--out", tmp_path / "o"]
    for extra, words in (
        (["--baud", "20000000"], "cycles per bit"),
        (["--clock-mhz", "5"], "--clock-mhz must lie in 10..400"),
        (["--bram-fill", "1.5"], "--bram-fill must lie in 0.1..1.0"),
        (["--timing-weight", "0"], "--timing-weight must lie in 1..1000"),
    ):
        r = _board(*base, *extra)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], r.stderr
    assert not (tmp_path / "o").exists()


def test_no_bitstream_build_writes_the_board_link(tmp_path):
    out = tmp_path / "o"
    r = _board(
        "--board",
        "ulx3s-85f",
        "--freeze",
        GOOD / "good_frozen.npz",
        "--trainable",
        GOOD / "good_trainable.npz",
        "--out",
        out,
        "--no-bitstream",
        "--relays",
        "2",
        "--jobs",
        "1",
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    text = (out / "board" / "board_link.v").read_text()
    assert "module board_link(" in text and "module semifreddo(" in text
    assert '(* ram_style = "block" *)' in text  # memories placed for the part
    # The build's --relays reach the board's backbone (none by default: BOARD_RELAYS).
    assert all(f"a_m1{w}_relay1" in text for w in ("", "_in")) and BOARD_RELAYS == 0
    # The products in the part's DSP blocks (--dsp auto), their model beside them, the
    # build's own Verilog without it (Yosys has the block as a cell).
    assert re.search(r"^\s*MULT18X18D #\(", text, re.M)
    assert text.count("module MULT18X18D(") == 1
    assert "module MULT18X18D(" not in (out / "semifreddo.v").read_text()
    # Folded by the rate: the report says so, layer by layer.
    rep = json.loads((out / "report.json").read_text())
    net = network_from_dict(TINY)
    folds = rate_folds(net)
    assert {name: x.get("fold", 1) for name, x in rep["layers"].items()} == {
        c.name: folds[c.name] for c in net.convs()
    }
    assert "| fold |" in (out / "report.md").read_text()


class _StubLink(Elaboratable):
    """What the board top reads of a link: its pins and flags (a wire from rx to tx)."""

    def __init__(self):
        self.rx, self.tx, self.in_frame = Signal(), Signal(), Signal()
        self.status = [Signal(name=f"flag{k}") for k in range(3)]

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.tx.eq(self.rx)
        return m


def test_board_top_resets_through_a_global_buffer():
    """The reset reaches most flip-flops; nextpnr promotes only clocks to global networks,
    so the board top sends it through a DCCA: the synchronized reset in, the sync domain's
    reset out."""
    link = _StubLink()
    for board in BOARDS.values():  # single LEDs and RGB ones
        text = rtlil.convert(BoardTop(link, board, 100), platform=board.make(), ports=[])
        cell = re.search(r"cell \\DCCA \\reset_buffer\n((?:    connect .*\n)+)  end", text)
        assert cell, f"{board.name}: no DCCA on the reset"
        pins = dict(re.findall(r"connect \\(\w+) (.+)", cell[1]))
        assert pins["CLKO"] == "\\rst" and pins["CE"] == "1'1"
        assert pins["CLKI"].startswith("\\reset_rst")
        assert "switch \\rst [0]" in text  # the sync domain's registers reset by it


MEMORIES = """module \\top.lines (clk);
  (* no_rw_check = 32'd1 *)
  reg [257:0] lines [15:0];
endmodule
module \\top.fifo (clk);
  reg [129:0] storage [79:0];
  reg [7:0] queue [1023:0];
  reg signed [31:0] tiny [1:0];
endmodule
module \\top.narrow_window (clk);
  reg [31:0] lines [1:0];
endmodule"""


def test_memories_go_to_block_ram_by_the_lut_ram_they_save():
    """Per block RAM, the 8 x 1024 queue saves 128 LUT RAM cells, the 130 x 80 FIFO 41
    (165 in 4 blocks of 36 x 512), the 258 x 16 line buffer 8 (65 in 8): five blocks take
    the first two; the line buffer stays LUT RAM, the two-word memory is left to Yosys."""
    assert [bram_blocks(*s) for s in [(258, 16), (130, 80), (8, 1024), (32, 2)]] == [8, 4, 1, 1]
    assert [lut_ram_cells(*s) for s in [(258, 16), (130, 80), (8, 1024)]] == [65, 165, 128]
    text, summary = place_memories(MEMORIES, 5)
    assert summary == {"memories": 5, "in_block_ram": 2, "blocks": 5, "lut_ram_cells_saved": 293}
    styles = re.findall(
        r'\(\* ram_style = "(\w+)"(, no_rw_check)? \*\)\n\s*reg (?:signed )?\S+ (\w+)', text
    )
    # a FIFO's memory ("storage", Amaranth's) and a window's of three or more words
    # ("lines") never collide: no collision logic for Yosys; a two-word window's reads what
    # it writes (no attribute: its transparency stays)
    assert styles == [
        ("distributed", ", no_rw_check", "lines"),
        ("block", ", no_rw_check", "storage"),
        ("block", "", "queue"),
    ]
    assert "\n".join(x for x in text.split("\n") if "ram_style" not in x) == MEMORIES
    assert place_memories(MEMORIES, 5) == (text, summary)  # deterministic
    assert place_memories(MEMORIES, 13)[1]["in_block_ram"] == 3


def test_memories_keep_the_ram_style_the_design_gave_them():
    """A memory window's line memory the design keeps in LUT RAM stays there (the blocks go
    to the next best), its attribute joined by ``no_rw_check``; one the design put in block
    RAM counts against the blocks."""
    styled = MEMORIES.replace(
        "  reg [7:0] queue", '  (* ram_style = "distributed" *)\n  reg [7:0] queue'
    ).replace(  # Yosys writes attributes a line each, by name
        "  reg [31:0] lines [1:0]",
        '  (* ram_style = "distributed" *)\n  (* src = "w.py:1" *)\n  reg [31:0] lines [8:0]',
    )
    text, summary = place_memories(styled, 5)
    assert summary["in_block_ram"] == 1 and summary["blocks"] == 4  # the FIFO, not the queue
    assert '  (* ram_style = "distributed" *)\n  reg [7:0] queue' in text
    assert '  (* ram_style = "distributed", no_rw_check *)\n  (* src' in text
    assert place_memories(text, 5)[0] == text  # placed twice: nothing more
    assert text.count("ram_style") == styled.count("ram_style") + 2  # the other two deep ones
    blocked = MEMORIES.replace(
        "  reg [7:0] queue", '  (* ram_style = "block" *)\n  reg [7:0] queue'
    )
    summary = place_memories(blocked, 5)[1]
    assert summary["in_block_ram"] == 2 and summary["blocks"] == 5
