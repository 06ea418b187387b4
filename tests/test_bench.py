"""The benchmark scripts run and write the records the docs quote (numbers are not checked
here: they live in the benchmark output, not in tests)."""

import json
import subprocess
import sys
from pathlib import Path

from semifreddo_hw.window import SlidingWindow
from tests.netlist import memory_bits

REPO = Path(__file__).resolve().parent.parent


def _bench(*args, timeout):
    """Run a bench script (``bench/<name>.py`` and its arguments) from the repository."""
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def test_adders_bench_writes_records(tmp_path):
    out = tmp_path / "adders.json"
    r = _bench("bench/adders.py", "--sizes", "8", "--json", str(out), timeout=300)
    assert r.returncode == 0, r.stderr
    records = json.loads(out.read_text())
    assert [rec["name"] for rec in records] == ["gauss8x8", "gauss8x8_zeros50"]
    for rec in records:
        for key in (
            "name",
            "shape",
            "nonzero",
            "naive_adders",
            "planner_adders",
            "planner_seconds",
        ):
            assert key in rec
        assert rec["planner_adders"] <= rec["naive_adders"]
    assert "gauss8x8" in r.stdout


def test_layers_bench_reports_line_buffers(tmp_path):
    out = tmp_path / "layers.json"
    r = _bench("bench/layers.py", "--json", str(out), timeout=600)
    assert r.returncode == 0, r.stderr
    records = {rec["layer"]: rec for rec in json.loads(out.read_text())}
    # The stem's window (640x480, 3 channels): its line buffer counted in its netlist, its
    # cycles per frame as the window states them (checked by simulation in test_window).
    window = SlidingWindow(3, 640, 480, stride=2)
    assert records["stem"]["line_buffer_bits"] == memory_bits(window)
    assert records["stem"]["frame_cycles"] == window.frame_cycles
    assert records["regular.pw"]["line_buffer_bits"] == 0


def test_throughput_bench_shows_one_pixel_per_clock(tmp_path):
    out = tmp_path / "throughput.json"
    r = _bench("bench/throughput.py", "--json", str(out), timeout=600)
    assert r.returncode == 0, r.stderr
    for rec in json.loads(out.read_text()):
        assert rec["cycles_per_extra_frame"] == rec["pixels"], rec


def test_scale_bench_reports_a_backbone(tmp_path):
    out = tmp_path / "scale.json"
    r = _bench(
        "bench/scale.py",
        "--preset",
        "frozen_only",
        "--modes",
        "cold",
        "--jobs",
        "1",
        "--json",
        str(out),
        timeout=900,
    )
    assert r.returncode == 0, r.stderr
    (run,) = json.loads(out.read_text())["runs"]
    assert run["mode"] == "cold" and run["configurable_weights"] == 0
    for key in (
        "frozen_weights",
        "adders",
        "multipliers",
        "parameter_memory_bits",
        "line_buffer_bits",
        "verilog_lines",
        "peak_memory_mb",
        "total_seconds",
    ):
        assert key in run
    assert set(run["steps"]) == {"plan", "elaborate", "emit"}
    assert "frozen_only" in r.stdout


def test_golden_bench_times_both_paths_and_compares_them(tmp_path):
    out = tmp_path / "golden.json"
    args = ["--preset", "small", "--runs", "2", "--reference-runs", "1", "--json", str(out)]
    r = _bench("bench/golden.py", *args, timeout=300)
    assert r.returncode == 0, r.stderr
    rec = json.loads(out.read_text())
    assert rec["preset"] == "small" and rec["bit_identical"] is True
    assert rec["reference"]["runs"] == 1 and rec["golden"]["runs"] == 2
    for key in ("best_wall_seconds", "median_wall_seconds", "best_cpu_seconds"):
        assert rec["golden"][key] > 0 and rec["reference"][key] > 0
    assert "bit-identical: True" in r.stdout


def test_digit_serial_bench_writes_records(tmp_path):
    out = tmp_path / "digit_serial.json"
    r = _bench(
        "bench/digit_serial.py",
        *("--layers", "pointwise 6->5", "--digits", "1", "4", "--json", out),
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    records = json.loads(out.read_text())
    assert [rec["digits"] for rec in records] == [1, 4]
    for rec in records:
        for key in ("layer", "shape", "digit_width", "ecp5_lut4", "ecp5_ff", "comb", "comb_ratio"):
            assert key in rec
    assert records[0]["comb_ratio"] == 1.0
    assert "| pointwise 6->5 | 4 (" in r.stdout


def test_requant_area_bench_synthesizes_requantizers_as_the_board_does(tmp_path):
    out = tmp_path / "requant_area.json"
    r = _bench(
        "bench/requant_area.py",
        *("--widths", "18", "20", "--sets", "2", "--json", out),
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    record = json.loads(out.read_text())
    assert [(c["acc_width"], c["sets"]) for c in record["cases"]] == [(18, 2), (20, 2)]
    for case in record["cases"]:
        assert case["MULT18X18D"] == 1 and case["TRELLIS_DPR16X4"] > 0  # the board's mapping
        weighted = case["LUT4"] + 2 * case["CCU2C"] + 4 * case["TRELLIS_DPR16X4"]
        assert case["lut4_equivalents"] == weighted > 0
    assert "LUT4 eq" in r.stdout


def test_fold_rates_bench_counts_multiplies_per_period(tmp_path):
    out = tmp_path / "fold_rates.json"
    r = _bench("bench/fold_rates.py", "--periods", "1", "4", "--json", str(out), timeout=600)
    assert r.returncode == 0, r.stderr
    records = json.loads(out.read_text())
    assert [rec["input_period"] for rec in records] == [1, 4]
    for rec in records:
        for key in ("preset", "weights", "blends", "requantizers", "multiplies", "fps_at_100mhz"):
            assert key in rec
        assert rec["multiplies"] == rec["weights"] + rec["blends"] + rec["requantizers"]
    assert records[1]["weights"] < records[0]["weights"]
    assert "two_cores_shuffle" in r.stdout


def _netlist_bench(script, netlist, tmp_path):
    """``script`` run on ``netlist`` (written as Yosys's top.json): its JSON result; and
    run on a netlist that is not there, it fails with one line naming it."""
    (tmp_path / "top.json").write_text(json.dumps(netlist))
    out = tmp_path / "result.json"
    r = _bench(script, "--netlist", tmp_path / "top.json", "--json", out, timeout=60)
    assert r.returncode == 0, r.stderr
    bad = _bench(script, "--netlist", tmp_path / "none.json", timeout=60)
    assert bad.returncode == 2 and "none.json" in bad.stderr
    return json.loads(out.read_text())


def test_netlist_ffs_counts_flip_flops_by_block_and_kind(tmp_path):
    """A netlist of a few named cells (as Yosys flattens a board build): every flip-flop
    counted once, by the backbone block and the component it sits in."""
    cells = {
        "link.backbone.frozen_m1_0.dw.window.win00_TRELLIS_FF_Q": "TRELLIS_FF",
        "link.backbone.frozen_m1_0.dw.window.win00_TRELLIS_FF_Q_1": "TRELLIS_FF",
        "link.backbone.a_m1_0.pw.requant.prod3_TRELLIS_FF_Q": "TRELLIS_FF",
        "link.backbone.a_m1_0.pw.requant.prod3_LUT4_Z": "LUT4",
        "link.rx_uart.shift_TRELLIS_FF_Q": "TRELLIS_FF",
    }
    net = {"modules": {"top": {"cells": {k: {"type": v} for k, v in cells.items()}}}}
    got = _netlist_bench("bench/netlist_ffs.py", net, tmp_path)
    assert (got["flip_flops"], got["outside_backbone"]) == (4, 1)
    assert (got["block_ram_fed"], got["block_ram_port_registers"]) == (0, 0)
    assert got["by_block"] == {"frozen_m1_0": 2, "a_m1_0": 1}
    assert got["by_kind"] == {"dw.window": 2, "pw.requant": 1}
    assert got["by_register"] == {"window:win00": 2, "requant:prod3": 1}


def test_netlist_logic_counts_lut4_equivalents_by_block_and_part(tmp_path):
    """A netlist of a few named cells: LUT4s one each, carry cells two, LUT RAM cells four,
    flip-flops and block RAMs none; by block, by part (a memory's cells by its name)."""
    cells = {
        "link.backbone.a_m1_0.pw.requant.t0_LUT4_Z": "LUT4",
        "link.backbone.a_m1_0.pw.requant.t0_CCU2C_S1": "CCU2C",
        "link.backbone.a_m1_0.pw.requant.prod3_TRELLIS_FF_Q": "TRELLIS_FF",
        "link.backbone.frozen_m1_0.dw.window.lines.0.ram_DPR16X4": "TRELLIS_DPR16X4",
        "link.backbone.frozen_m1_0.dw.window.lines.0.bram": "DP16KD",
        "link.rx_uart.shift_LUT4_Z": "LUT4",
    }
    net = {"modules": {"top": {"cells": {k: {"type": v} for k, v in cells.items()}}}}
    got = _netlist_bench("bench/netlist_logic.py", net, tmp_path)
    assert (got["lut4_equivalents"], got["outside_backbone"]) == (1 + 2 + 4 + 1, 1)
    assert got["by_type"] == {"TRELLIS_DPR16X4": 4, "CCU2C": 2, "LUT4": 2}
    assert got["by_block"] == {"frozen_m1_0": 4, "a_m1_0": 3}
    assert got["by_part"] == {"lines.#": 4, "requant": 3}


def test_control_sets_packs_flip_flops_by_reset_and_enable(tmp_path):
    """Nine flip-flops on the reset (two enables: 5 and 4 of them) fill two tiles (three
    slices and two); one on its own reset net fills a tile alone: three tiles needed."""

    def ff(lsr, ce):
        return {"type": "TRELLIS_FF", "connections": {"LSR": [lsr], "CE": [ce], "Q": [99]}}

    cells = {f"a{k}": ff(7, 8) for k in range(5)} | {f"b{k}": ff(7, 9) for k in range(4)}
    cells["c"] = ff(10, "1")
    cells["lut"] = {"type": "LUT4", "connections": {}}
    netnames = {
        "rst": {"bits": [7]},
        "x.last_c0": {"bits": [10]},
        "x.last_c0_alias": {"bits": [10]},
    }
    net = {"modules": {"top": {"cells": cells, "netnames": netnames}}}
    got = _netlist_bench("bench/control_sets.py", net, tmp_path)
    assert (got["flip_flops"], got["lsr_nets"], got["ce_nets"], got["lsr_ce_pairs"]) == (
        10,
        2,
        3,
        3,
    )
    assert (got["tiles_needed"], got["lsr_nets_under_8"]) == (3, 1)
    assert got["largest_lsr_nets"] == {"rst": 9, "x.last_c0": 1}


def test_placed_spread_says_where_each_block_s_parts_are(tmp_path):
    """Cells placed in named tiles: each component's span and centre, each block's, and how
    far apart a block's components' centres are (those of 16 cells or more only)."""

    def at(x, y):
        return {"type": "TRELLIS_FF", "connections": {}, "port_directions": {},
                "attributes": {"NEXTPNR_BEL": f"X{x}/Y{y}/SLICEA.FF0"}}  # fmt: skip

    bb = "link.backbone.frozen_m1_0."
    cells = {f"{bb}dw.window.w{k}_TRELLIS_FF_Q": at(10 + k % 2, 20) for k in range(16)}
    cells |= {f"{bb}dw.requant.r{k}_TRELLIS_FF_Q": at(50, 60 + k % 3) for k in range(18)}
    cells |= {f"{bb}dw.product.p_TRELLIS_FF_Q": at(100, 90)}  # too few to count
    cells["link.rx.s_TRELLIS_FF_Q"] = at(1, 1)  # outside the backbone
    net = {"modules": {"top": {"cells": cells, "netnames": {}}}}
    got = _netlist_bench("bench/placed_spread.py", net, tmp_path)
    assert got["parts"]["frozen_m1_0.dw.window"] == {
        "cells": 16, "x": [10, 11], "y": [20, 20], "centre": [10.5, 20.0]
    }  # fmt: skip
    assert got["parts"]["frozen_m1_0.dw.requant"]["centre"] == [50.0, 61.0]
    block = got["blocks"]["frozen_m1_0"]
    assert (block["cells"], block["x"], block["y"]) == (35, [10, 100], [20, 90])
    assert block["centres_apart"] == 39.5 + 41.0


def test_floorplan_distance_measures_each_pinned_cell_from_its_block(tmp_path):
    """Two blocks along the snake: each pinned cell's distance from its block's middle
    (``middles``), the farthest first; an unpinned cell and one outside the order left
    out."""
    from generators.ecp5_floorplan import SITES, block_of, middles

    cells = {f"link.backbone.a.lut{k}": {"type": "TRELLIS_COMB"} for k in range(10)}
    cells |= {f"link.backbone.b.lut{k}": {"type": "TRELLIS_COMB"} for k in range(8)}
    cells["link.backbone.a.ram"] = {"type": "DP16KD", "attributes": {"BEL": "X4/Y82/EBR0"}}
    cells["link.backbone.b.mul"] = {"type": "MULT18X18D", "attributes": {"BEL": "X9/Y58/MULT18_5"}}
    cells["link.backbone.b.ram"] = {"type": "DP16KD", "attributes": {}}  # not pinned
    cells["link.rx_queue.ram"] = {"type": "DP16KD", "attributes": {"BEL": "X13/Y22/EBR0"}}
    order = ["link.backbone.a", "link.backbone.b"]
    (tmp_path / "floorplan_order.json").write_text(json.dumps({"order": order}))
    got = _netlist_bench(
        "bench/floorplan_distance.py", {"modules": {"top": {"cells": cells}}}, tmp_path
    )
    point = middles(block_of(cells, order), order, SITES["85k"])
    (ax, ay), (bx, by) = (point[b] for b in order)
    ram, mul = abs(4 - ax) + abs(82 - ay), abs(9 - bx) + abs(58 - by)
    assert got["DP16KD"] == {
        "cells": 1,
        "mean": round(ram, 1),
        "max": round(ram, 1),
        "over_30": int(ram > 30),
    }
    assert got["MULT18X18D"]["cells"] == 1 and got["MULT18X18D"]["max"] == round(mul, 1)
    assert [r["block"] for r in got["farthest"]] == ["link.backbone.b", "link.backbone.a"]


def test_congestion_sums_router2_overuse_by_part(tmp_path):
    """A router2 congestion-by-net heatmap of a few nets: every net's overuse counted once,
    by the backbone block and component it belongs to, or outside by its first names."""
    rows = [
        ("link.backbone.frozen_m1_0.dw.product.i__payload[3]", 5),
        ("link.backbone.frozen_m1_0.dw.product.n7_c", 2),
        ("link.backbone.a_m2_0.b0_pw.requant.t0[1]", 4),
        ("link.args[0]", 7),
        ("link.args[1]", 1),
    ]
    heat = tmp_path / "heat_congestion_by_net_2.csv"
    heat.write_text("".join(f"{n},{v}\n" for n, v in rows))
    out = tmp_path / "congestion.json"
    r = _bench("bench/congestion.py", "--heatmap", heat, "--json", out, timeout=60)
    assert r.returncode == 0, r.stderr
    got = json.loads(out.read_text())
    assert (got["nets"], got["overuse"]) == (5, 19)
    assert got["by_block"] == {"frozen_m1_0": 7, "a_m2_0": 4}
    assert got["by_part"] == {"product": 7, "requant": 4}
    assert got["outside_backbone"] == {"link.args": 8}
    assert "product" in r.stdout
    bad = _bench("bench/congestion.py", "--heatmap", tmp_path / "none.csv", timeout=60)
    assert bad.returncode == 2 and "none.csv" in bad.stderr


def test_congestion_sums_router2_overuse_by_place(tmp_path):
    """A router2 congestion-by-coordinate heatmap (a row per tile column, a trailing comma):
    the overuse per tile row, the rows beside block RAM rows (22 +- 2) and multiplier rows
    (10 +- 2) apart from the others, and the hottest 8x8 squares; a ragged file refused."""
    grid = [[0] * 30 for _ in range(20)]
    grid[3][22] = 6  # beside a block RAM row, in square X0/Y16
    grid[17][11] = 4  # beside a multiplier row, square X16/Y8
    grid[9][0] = 5  # elsewhere, square X8/Y0
    heat = tmp_path / "heat_congestion_by_coordinate_3.csv"
    heat.write_text("".join(",".join(map(str, col)) + ",\n" for col in grid))
    out = tmp_path / "place.json"
    r = _bench("bench/congestion.py", "--coordinates", heat, "--json", out, timeout=60)
    assert r.returncode == 0, r.stderr
    got = json.loads(out.read_text())
    assert got["overuse"] == 15 and got["by_row"][22] == 6 and len(got["by_row"]) == 30
    bands = got["by_band"]
    assert bands["block RAM rows"] == {"rows": 5, "overuse": 6, "per_row": 1.2}
    assert bands["multiplier rows"] == {"rows": 5, "overuse": 4, "per_row": 0.8}
    assert bands["other rows"]["rows"] == 20 and bands["other rows"]["overuse"] == 5
    assert got["hottest_squares"] == {"X0/Y16": 6, "X8/Y0": 5, "X16/Y8": 4}
    heat.write_text("1,2,\n3,\n")
    bad = _bench("bench/congestion.py", "--coordinates", heat, timeout=60)
    assert bad.returncode == 2 and "not a rectangle" in bad.stderr


def test_logic_depth_finds_the_longest_chain_and_the_widest_net(tmp_path):
    """Two registers joined by three LUT4s and a CCU2C, a third register fed by one LUT:
    the deeper chain is reported with its levels (3 + 0.25) by where it starts and ends,
    and the net with most loads first."""

    def cell(kind, ins, outs):
        conns = {**{p: [b] for p, b in ins.items()}, **{p: [b] for p, b in outs.items()}}
        dirs = {**dict.fromkeys(ins, "input"), **dict.fromkeys(outs, "output")}
        return {"type": kind, "connections": conns, "port_directions": dirs}

    bb = "link.backbone."
    cells = {
        bb + "a_m1_0.dw.window.x_TRELLIS_FF_Q": cell("TRELLIS_FF", {"DI": 9}, {"Q": 2}),
        bb + "a_m1_0.dw.window.s_LUT4_Z": cell("LUT4", {"A": 2}, {"Z": 3}),
        bb + "a_m1_0.dw.window.t_LUT4_Z": cell("LUT4", {"A": 3, "B": 2}, {"Z": 4}),
        bb + "a_m1_0.dw.window.u_LUT4_Z": cell("LUT4", {"A": 4, "B": 2}, {"Z": 5}),
        bb + "a_m1_0.dw.window.c_CCU2C_S0": cell("CCU2C", {"A0": 5}, {"S0": 6}),
        bb + "a_m1_0.pw.product.y_TRELLIS_FF_Q": cell("TRELLIS_FF", {"DI": 6}, {"Q": 7}),
        bb + "a_m1_0.pw.product.v_LUT4_Z": cell("LUT4", {"A": 2}, {"Z": 8}),
        bb + "a_m1_0.pw.requant.r_TRELLIS_FF_Q": cell("TRELLIS_FF", {"DI": 8}, {"Q": 9}),
    }
    nets = {"x": {"bits": [2]}, "t": {"bits": [4]}}
    net = {"modules": {"top": {"cells": cells, "netnames": nets}}}
    got = _netlist_bench("bench/logic_depth.py", net, tmp_path)
    assert got["deepest_levels"] == 3.25
    assert got["deepest"] == {
        "a_m1_0.dw.window -> a_m1_0.pw.product": 3.25,
        "a_m1_0.dw.window -> a_m1_0.pw.requant": 1.0,
    }
    assert next(iter(got["most_loads"].items())) == ("x", 4)


def test_placed_paths_estimates_the_longest_path_from_the_placement(tmp_path):
    """A register to a register through two LUTs in distant tiles, beside a short path: the
    long one is reported with nextpnr-ecp5's distance estimate for each net (80 ps a unit:
    21, 31 and 6 units) and the cells' delays (0.525 + 1.68 + 0.45 + 2.48 + 0.45 + 0.48 + 0.1
    ns), step by step, and the worst delay between the parts it joins."""

    def cell(kind, ins, outs, tile):
        conns = {**{p: [b] for p, b in ins.items()}, **{p: [b] for p, b in outs.items()}}
        dirs = {**dict.fromkeys(ins, "input"), **dict.fromkeys(outs, "output")}
        bel = {"NEXTPNR_BEL": f"X{tile[0]}/Y{tile[1]}/SLICEA.FF0"}
        return {"type": kind, "connections": conns, "port_directions": dirs, "attributes": bel}

    bb = "link.backbone."
    cells = {
        bb + "a_m1_0.dw.window.x_TRELLIS_FF_Q": cell("TRELLIS_FF", {"M": 9}, {"Q": 2}, (10, 10)),
        bb + "a_m1_0.dw.window.s_LUT": cell("TRELLIS_COMB", {"A": 2}, {"F": 3}, (10, 20)),
        bb + "a_m2_0.pw.product.t_LUT": cell("TRELLIS_COMB", {"B": 3}, {"F": 4}, (30, 20)),
        bb + "a_m2_0.pw.product.y_TRELLIS_FF_Q": cell("TRELLIS_FF", {"M": 4}, {"Q": 5}, (30, 20)),
        bb + "a_m2_0.pw.requant.r_TRELLIS_FF_Q": cell("TRELLIS_FF", {"M": 5}, {"Q": 9}, (30, 21)),
    }
    net = {"modules": {"top": {"cells": cells, "netnames": {}}}}
    got = _netlist_bench("bench/placed_paths.py", net, tmp_path)
    worst = got["paths"][0]
    assert worst["delay_ns"] == 6.165
    assert [s["at_ns"] for s in worst["steps"]] == [0.525, 2.655, 5.585, 6.165]
    assert worst["steps"][-1]["cell"].endswith("product.y_TRELLIS_FF_Q")
    assert got["estimated_fmax_mhz"] == round(1000 / 6.165, 2)
    assert got["worst_by_parts"]["a_m1_0.dw.window -> a_m2_0.pw.product"] == 6.165


def test_fmax_places_memories_over_the_whole_design():
    """``bench/fmax.py`` gives a module's memories the block RAMs the whole design's placement
    gives them (``--blocks``), not every block RAM left to it alone: with one block RAM for
    a design of a deep and a shallow queue, the deep one takes it and the shallow one's
    module keeps LUT RAM, which alone it would not."""
    import importlib.util

    from amaranth.back import verilog
    from amaranth.hdl import Module
    from amaranth.lib import wiring

    from common.verilog import module_tree, verilog_modules
    from generators.board import place_memories
    from semifreddo_hw.streams import StreamFIFO

    class Two(wiring.Component):
        def __init__(self):
            super().__init__({})

        def elaborate(self, platform):
            m = Module()
            m.submodules.deep = StreamFIFO(32, 512)
            m.submodules.shallow = StreamFIFO(32, 64)
            return m

    text = verilog.convert(Two(), name="semifreddo")
    shallow = next(n for n in verilog_modules(text) if n.endswith("shallow.q"))
    spec = importlib.util.spec_from_file_location("fmax", REPO / "bench" / "fmax.py")
    fmax = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fmax)

    def style(design):
        return {s for s in ("block", "distributed") if f'ram_style = "{s}"' in design}

    assert style(fmax.designs(text, [shallow], 1)[shallow]) == {"distributed"}
    alone, _ = place_memories(module_tree(text, shallow), 1)
    assert style(alone) == {"block"}  # what the bench did before
    assert style(fmax.designs(text, [shallow], 0)[shallow]) == {"distributed"}
