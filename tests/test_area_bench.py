"""Synthesis: generators.synth's counts on designs whose netlists are known, the cutting of a
design into parts, the smallest case of bench/area.py end to end, and the measured report of
the smallest build (structural facts, not the numbers docs/performance.md quotes: those live in
bench/area_*.json)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from generators.build import main as build_main
from generators.synth import (
    FLOWS,
    MEASURED_HEAD,
    SUMMED,
    Runner,
    SynthError,
    add_up,
    part_units,
    synthesize,
    synthesize_flows,
    verilog_modules,
    with_measured,
)
from spec.network import network_from_dict
from weights.files import save_frozen, save_trainable
from weights.synthetic import random_params

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

#: A design as the build writes one: a top with an Amaranth-style escaped submodule, which
#: holds two instances of one part (a plain name), which holds a register.
HIERARCHY = r"""
module design(clk, a, y);
  input clk;
  input [3:0] a;
  output [3:0] y;
  \design.sub  sub (.clk(clk), .a(a), .y(y));
endmodule

module \design.sub (clk, a, y);
  input clk;
  input [3:0] a;
  output [3:0] y;
  wire [3:0] t;
  design__part p0 (.clk(clk), .a(a), .y(t));
  design__part p1 (.clk(clk), .a(t), .y(y));
endmodule

module design__part(clk, a, y);
  input clk;
  input [3:0] a;
  output [3:0] y;
  reg [3:0] r;
  always @(posedge clk) r <= a;
  assign y = r;
endmodule
"""


def _run(*args, timeout=600):
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


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


def test_a_design_is_cut_into_parts_and_counted_back():
    assert list(verilog_modules(HIERARCHY)) == ["design", "design.sub", "design__part"]
    parts = part_units(HIERARCHY, "design")
    # The escaped submodule stays in the top's part; the plain-named part is synthesized
    # once, counted twice, and is a blackbox where it is instantiated.
    assert {n: p.count for n, p in parts.items()} == {"design": 1, "design__part": 2}
    top = parts["design"].text
    assert "module \\design.sub " in top and "(* blackbox *)" in top and "always" not in top
    assert part_units(HIERARCHY, "design", ["design.sub"])["design.sub"].count == 1
    runner = Runner(["generic"])
    res = runner.run({n: (p.text, n) for n, p in parts.items()})
    total = add_up(res.values(), ["generic"], [p.count for p in parts.values()])
    assert res["design"]["generic_ffs"] == 0  # the registers are in the parts
    assert total["generic_ffs"] == 2 * 4  # two instances of a 4-bit register
    # Units equal but for their module names are synthesized once.
    renamed = parts["design__part"].text.replace("design__part", "other_part")
    runner.run({"again": (renamed, "other_part")})
    assert len(runner.memo) == 2


def test_area_bench_smallest_case(tmp_path):
    out = tmp_path / "area.json"
    r = _run(
        "bench/area.py",
        "--parts",
        "matrices",
        "--sizes",
        "4",
        "--zeros-sizes",  # none: the 50 % matrices take the same paths
        "--depthwise",
        "2",
        "--check-rows",
        "--one-stage",
        "--json",
        out,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    data = json.loads(out.read_text())
    recs = {(x["shape"], x["density"], x["variant"]): x for x in data["matrices"]}
    cases = [("4x4", 1.0), ("dw2", 1.0)]
    variants = ("frozen", "configurable", "da4ml", "constants")
    assert set(recs) == {(s, d, v) for s, d in cases for v in (*variants, "frozen_one_stage")} | {
        ("4x4", 1.0, "configurable_whole")
    }
    for rec in recs.values():
        for key in (
            "shape",
            "density",
            "variant",
            "generic_cells",
            "transistors",
            "transistors_logic",
            "ice40_lut4",
            "ice40_carry",
            "ice40_ff",
            "ecp5_lut4",
            "ecp5_ccu2",
            "ecp5_ff",
            "memory_bits",
            "seconds",
        ):
            assert key in rec, key
        assert rec["transistors"] > rec["transistors_ff"] > 0
    for shape, density in cases:
        frozen, conf = recs[(shape, density, "frozen")], recs[(shape, density, "configurable")]
        for metric in ("ice40_lut4", "ecp5_lut4_equiv", "transistors_logic"):
            assert frozen[metric] < conf[metric], (shape, density, metric)
        assert frozen["memory_bits"] == 0
        # The configurable layer's weights are memory, counted in bits, a byte each (Yosys
        # rounds a row's array to its address space: 9 weights read as 16 words).
        assert 8 * conf["weights"] <= conf["memory_bits"] < 2 * 8 * conf["weights"]
        assert conf["ice40_lut4_vs_configurable"] == 1.0
        # The netlist's flip-flops are the plan's pipeline registers, one valid bit per
        # stage and the wrapper's input registers, less what synthesis finds constant.
        most = frozen["plan_register_bits"] + frozen["latency_cycles"] + 8 * frozen["n_in"]
        assert most / 2 < frozen["generic_ffs"] <= most, (shape, density)
        # One register stage: the same plan, no internal registers (so fewer flip-flops
        # wherever the graph is deeper than a stage's two levels).
        one = recs[(shape, density, "frozen_one_stage")]
        assert one["latency_cycles"] == 1 and one["plan_adders"] == frozen["plan_adders"]
        assert one["plan_register_bits"] <= frozen["plan_register_bits"]
        assert one["generic_ffs"] <= frozen["generic_ffs"]
    # Counting one row n times matches synthesizing the whole layer within a few percent.
    whole, rows = recs[("4x4", 1.0, "configurable_whole")], recs[("4x4", 1.0, "configurable")]
    for metric in ("transistors", "ice40_lut4", "ecp5_lut4_equiv"):
        assert abs(whole[metric] / rows[metric] - 1) < 0.05, metric
    assert "4x4" in r.stdout and "total" in r.stdout
    # The same records as docs/performance.md's table: a row each, eleven cells a row.
    md = _run("bench/area.py", "--report", out, "--markdown")
    assert md.returncode == 0, md.stderr
    rows = md.stdout.splitlines()
    assert rows[0].startswith("| case | variant | ECP5 LUT4 |")
    assert len(rows) == 2 + len(data["matrices"])
    assert all(row.count("|") == 12 for row in rows)
    whole_row = next(row for row in rows if "| configurable_whole |" in row)
    assert whole_row.startswith("| 4x4 d100 |") and f"{whole['ecp5_ff']:,}" in whole_row


def test_area_markdown_needs_a_report():
    r = _run("bench/area.py", "--markdown")
    assert r.returncode == 2 and "--report" in r.stderr.splitlines()[-1]


#: The smallest backbone: a frozen core only, its stem and one block.
MICRO = {
    "name": "micro",
    "width": 8,
    "height": 4,
    "channels_in": 3,
    "stem_channels": 2,
    "plan": [[[1], []]],
    "trainable_cores": 0,
    "frozen_core": True,
    "core_shuffle": False,
}


@pytest.fixture(scope="module")
def micro_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    net = network_from_dict(MICRO)
    params = random_params(net, np.random.default_rng(0))
    save_frozen(root / "f.npz", net, params)
    save_trainable(root / "t.npz", net, params)
    out = root / "build"
    argv = ["--freeze", root / "f.npz", "--trainable", root / "t.npz", "--out", out]
    assert build_main([*map(str, argv), "--jobs", "1", "--quiet"]) == 0
    return out


def test_synth_command_measures_a_build(micro_build):
    r = _run("-m", "generators.synth", "--build", micro_build, "--flows", "generic", "--jobs", "1")
    assert r.returncode == 0, r.stderr
    data = json.loads((micro_build / "synth.json").read_text())
    report = json.loads((micro_build / "report.json").read_text())
    assert data["format"] == "semifreddo-synth" and data["top"] == report["top"]
    parts = data["parts"]
    # The top, every convolution and every convolution's product, each once.
    convs = [p for p in parts if p["layer"] is not None]
    assert len(convs) == 2 * len(report["layers"]) and len(parts) == len(convs) + 1
    assert all(p["count"] == 1 for p in parts)
    for key in ("transistors", "generic_ffs", "generic_cells", "memory_bits"):
        assert data["total"][key] == sum(p[key] for p in parts), key
        assert data["total"][key] > 0
    # The plan's memories (parameters, line buffers, balancing FIFOs) are all in memories.
    plan = data["plan"]
    assert plan["parameter_memory_bits"] == report["parameter_memory_bits"]
    assert set(data["layers"]) == set(report["layers"])
    assert report["parameter_sets"] == 2  # the build's default
    for name, layer in data["layers"].items():
        plan, measured = layer["plan"], layer["measured"]
        # The line buffer and the parameter banks (two sets: two rows, read whole every
        # beat) are the layer's memories; the plan's registers are the flip-flops, but for
        # a valid bit per stage. (With one set, a bank is one row: flip-flops.)
        assert measured["memory_bits"] == plan["line_buffer_bits"] + plan["memory_bits"], name
        regs = plan["register_bits"]
        assert abs(measured["generic_ffs"] - regs) <= 0.05 * regs + 16, name
    md = (micro_build / "synth.md").read_text()
    assert "Measured" in md and "| layer |" in md and "frozen.stem" in md
    assert "transistors" in r.stdout
    # The build's own report gains the measured totals, once, after the plan estimates.
    report_md = (micro_build / "report.md").read_text()
    assert report_md.count(MEASURED_HEAD) == 1
    assert report_md.index("## Layers") < report_md.index(MEASURED_HEAD)
    total = data["total"]["transistors"]
    assert f"| transistors (CMOS estimate) | {total:,} |" in report_md
    assert report["measured"]["total"] == data["total"]
    # A second run (parts from the cache) leaves the same report, not a second section.
    again = _run("-m", "generators.synth", "--build", micro_build, "--flows", "generic")
    assert again.returncode == 0, again.stderr
    assert (micro_build / "report.md").read_text() == report_md


def test_measured_section_replaces_only_itself():
    r = {
        "flows": ["generic"],
        "yosys": "Yosys X",
        "parts": [1, 2],
        "total": {k: 7 for k in SUMMED["generic"]} | {"memory_bits": 3},
    }
    plain = "# Build report\n\n| a | b |\n\n## Layers\n\nrows\n"
    once = with_measured(plain, r, "cmd")
    assert once.startswith(plain.rstrip("\n")) and once.count(MEASURED_HEAD) == 1
    assert with_measured(once, r, "cmd") == once
    r2 = r | {"total": r["total"] | {"transistors": 99}}
    assert "| 99 |" in with_measured(once, r2, "cmd") and "| 7 |" in with_measured(once, r2, "cmd")
    later = once + "\n## Later\n\nkept\n"
    replaced = with_measured(later, r2, "cmd")
    assert replaced.count(MEASURED_HEAD) == 1 and replaced.endswith("## Later\n\nkept\n")
    assert "transistors (CMOS estimate) | 99" in replaced


def test_synth_command_refuses_bad_input(tmp_path):
    for args, message in (
        (["--build", tmp_path / "missing"], "not a build directory"),
        (["--build", tmp_path], "not a build directory"),
        ([], "give either --build DIR"),
        (["--build", tmp_path, "--jobs", "0"], "--jobs must be at least 1"),
    ):
        r = _run("-m", "generators.synth", *args, timeout=120)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
