"""Synthesis: generators.synth's counts on designs whose netlists are known, and the smallest
case of bench/area.py end to end (structural facts, not the numbers docs/performance.md
quotes: those live in bench/area.json)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from generators.synth import FLOWS, SynthError, synthesize, synthesize_flows

REPO = Path(__file__).resolve().parent.parent

ADDER = """
module top(input clk, input [7:0] a, input [7:0] b, output reg [8:0] y);
  always @(posedge clk) y <= a + b;
endmodule
"""

RAM = """
module top(input clk, input we, input [3:0] wa, input [3:0] ra, input [7:0] d,
           output reg [7:0] q);
  reg [7:0] mem [0:15];
  always @(posedge clk) begin
    if (we) mem[wa] <= d;
    q <= mem[ra];
  end
endmodule
"""


def test_flows_count_a_registered_adder():
    r = synthesize_flows(ADDER, "top")
    # Nine output bits, each one flip-flop, in every flow; no memory.
    assert r["generic_ffs"] == r["ice40_ff"] == r["ecp5_ff"] == 9
    assert r["transistors_ff"] == 9 * 16  # Yosys' CMOS count of a D flip-flop
    assert r["transistors"] > r["transistors_ff"]
    assert r["ice40_carry"] > 0 and r["ecp5_ccu2"] > 0  # the adder uses the carry chains
    assert r["ice40_dsp"] == r["ecp5_dsp"] == 0
    assert r["memories"] == [] and r["memory_bits"] == 0
    for flow in FLOWS:
        assert r[f"seconds_{flow}"] >= 0 and r[f"cells_{flow}"]


def test_memories_are_counted_not_mapped():
    counted = synthesize(RAM, "top", "generic")
    assert counted["memory_bits"] == 16 * 8
    assert counted["memories"][0]["depth"] == 16 and counted["memories"][0]["width"] == 8
    # Only the read data register is left as flip-flops (the read register may be merged
    # into the memory's read port, then none).
    assert counted["generic_ffs"] <= 8
    mapped = synthesize(RAM, "top", "generic", memories="map")
    assert mapped["generic_ffs"] >= 16 * 8  # the memory became flip-flops


def test_yosys_errors_are_reported():
    with pytest.raises(SynthError, match="exited"):
        synthesize("module top(input a; endmodule\n", "top", "generic")
    with pytest.raises(ValueError, match="flow"):
        synthesize(ADDER, "top", "vivado")


def test_area_bench_smallest_case(tmp_path):
    out = tmp_path / "area.json"
    r = subprocess.run([sys.executable, "bench/area.py", "--parts", "matrices", "--sizes", "4",
                        "--depthwise", "2", "--check-rows", "--json", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    data = json.loads(out.read_text())
    recs = {(x["shape"], x["density"], x["variant"]): x for x in data["matrices"]}
    cases = [("4x4", 1.0), ("4x4", 0.5), ("dw2", 1.0)]
    variants = ("frozen", "configurable", "da4ml", "constants")
    assert set(recs) == {(s, d, v) for s, d in cases for v in variants} | \
        {("4x4", 1.0, "configurable_whole")}
    for rec in recs.values():
        for key in ("generic_cells", "transistors", "transistors_logic", "ice40_lut4",
                    "ice40_carry", "ice40_ff", "ecp5_lut4", "ecp5_ccu2", "ecp5_ff",
                    "memory_bits", "seconds"):
            assert key in rec, key
        assert rec["transistors"] > rec["transistors_ff"] > 0
    for shape, density in cases:
        frozen, conf = recs[(shape, density, "frozen")], recs[(shape, density, "configurable")]
        for metric in ("ice40_lut4", "ecp5_lut4_equiv", "transistors_logic"):
            assert frozen[metric] < conf[metric], (shape, density, metric)
        assert frozen["memory_bits"] == 0
        # The configurable layer's weights are memory, counted in bits, one byte each.
        assert conf["memory_bits"] == 8 * conf["weights"]
        assert conf["ice40_lut4_vs_configurable"] == 1.0
    # Same hardware for any weight values: the 50 % layer's netlist is the dense one's.
    assert recs[("4x4", 0.5, "configurable")]["ice40_lut4"] == \
        recs[("4x4", 1.0, "configurable")]["ice40_lut4"]
    # Counting one row n times matches synthesizing the whole layer within a few percent.
    whole, rows = recs[("4x4", 1.0, "configurable_whole")], recs[("4x4", 1.0, "configurable")]
    for metric in ("transistors", "ice40_lut4", "ecp5_lut4_equiv"):
        assert abs(whole[metric] / rows[metric] - 1) < 0.05, metric
    assert "4x4" in r.stdout and "total" in r.stdout
