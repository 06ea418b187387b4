"""The build as steps (generators.steps), each run and checked on its own on the good corpus
files: what each step adds, that the hardware is built on the planned graphs (nothing solved
twice, even without a writable cache), and the timings."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Fragment

from generators import steps
from generators.backbone_build import rate_roms
from generators.design import BuildConfig
from semifreddo_hw import cmvm
from semifreddo_hw.conv import product_matrix
from tests.backbone_helpers import BUILD_FILES
from tests.test_adder_graph import assert_computes

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "malformed"


def _config(**kw):
    return BuildConfig(
        freeze=CORPUS / "good_frozen.npz", trainable=CORPUS / "good_trainable.npz", jobs=1, **kw
    )


def test_each_step_adds_its_product(tmp_path, monkeypatch):
    read_only = tmp_path / "cache"
    read_only.mkdir()
    read_only.chmod(0o500)  # plans cannot be stored: only the plan step's own result counts
    monkeypatch.setenv("SEMIFREDDO_CACHE_DIR", str(read_only))
    solves = []
    real = cmvm._plan_da4ml
    monkeypatch.setattr(cmvm, "_plan_da4ml", lambda w: solves.append(w.shape) or real(w))

    b = steps.Build(_config(), log=lambda _: None)
    done = {}
    for step in steps.STEPS:
        step.run(b)
        done[step.name] = len(solves)
        if step.name == "quantize":
            net = b.design.weights.net
            assert set(b.design.params) == {c.name for c in net.convs()} | {
                bl.name for bl in net.blends()
            }
        if step.name == "plan":
            frozen = {c.name: c for c in net.convs() if c.frozen}
            assert set(b.graphs) == set(frozen)
            rng = np.random.default_rng(0)
            for name, g in b.graphs.items():  # each graph computes its layer's product
                matrix, _ = product_matrix(frozen[name].kind, b.design.params[name].weight)
                assert_computes(g, matrix, rng, vectors=3)
        if step.name == "elaborate":
            built = {
                layer.name: layer.conv.product.graph
                for layer in b.design.hardware.layers()
                if not layer.conv.configurable
            }
            assert all(built[name] is g for name, g in b.graphs.items())
    assert solves and done["elaborate"] == done["plan"]  # elaborating solved nothing more
    assert done["outputs"] == done["plan"]
    assert set(b.files) == BUILD_FILES


def test_version_1_files_take_the_same_steps():
    b = steps.run(
        BuildConfig(freeze=REPO / "weights/examples/frozen_pointwise.npz", jobs=1),
        log=lambda _: None,
    )
    assert sorted(b.graphs) == ["stage1_proj", "stage1_pw"]
    assert sorted(b.files) == [
        "report.json",
        "report.md",
        "semifreddo_stage1_proj.v",
        "semifreddo_stage1_pw.v",
    ]


@pytest.mark.parametrize("jobs", [1, 2])
def test_plans_come_back_from_workers_in_memory(jobs, tmp_path, monkeypatch):
    monkeypatch.setenv("SEMIFREDDO_CACHE_DIR", str(tmp_path))
    b = steps.Build(dataclasses.replace(_config(), jobs=jobs), log=lambda _: None)
    for step in steps.STEPS[:3]:
        step.run(b)
    assert set(b.graphs) == {c.name for c in b.design.weights.net.convs() if c.frozen}


def test_rom_layers_are_not_planned(tmp_path, monkeypatch):
    """A rate build's frozen layers read from ROMs get no shift-add graph (their product
    is a multiplier); every other frozen layer does, and elaborates on its own."""
    monkeypatch.setenv("SEMIFREDDO_CACHE_DIR", str(tmp_path))
    config = _config(fold="rate", fps=100.0, frozen_rom=16)
    b = steps.Build(config, log=lambda _: None)
    for step in steps.STEPS[:4]:
        step.run(b)
    net = b.design.weights.net
    roms = set(rate_roms(net, b.design.input_period(config), 16))
    frozen = {c.name for c in net.convs() if c.frozen}
    assert roms and roms < frozen
    assert set(b.graphs) == frozen - roms
    built = {layer.name: layer.conv for layer in b.design.hardware.layers()}
    assert all(built[n].rom for n in roms) and not any(built[n].rom for n in b.graphs)
    Fragment.get(b.design.hardware, None)  # it elaborates without the graphs left out
