"""Shared by the backbone end-to-end tests: build a preset's backbone in Verilator, run it
against the golden model, derive new run-time parameters."""

import dataclasses
import zlib

import numpy as np

from generators.backbone_build import rate_digits, rate_folds
from semifreddo_hw.backbone import Backbone
from semifreddo_hw.emit import to_verilog_parts
from sim.backbone import FLAGS, PARAM_PORT, random_frames, run_backbone
from sim.rtl import VerilatorDesign, struct_word
from spec.network import preset
from spec.params import ConvParams
from weights.synthetic import random_params

__all__ = [
    "BUILD_FILES",
    "FLAGS",
    "Built",
    "build",
    "retrained",
    "with_alpha",
    "CONFIGS",
    "check_configuration",
]


@dataclasses.dataclass
class Built:
    net: object
    params: dict
    dut: Backbone
    design: VerilatorDesign

    def writes(self, addr_values):
        layout = self.dut.signature.members[PARAM_PORT].signature.members["payload"].shape
        return [(PARAM_PORT, struct_word(layout, addr=a, value=v)) for a, v in addr_values]

    def run(self, params, frames, *, shuffle=False, writes=(), test_name, **kw):
        return run_backbone(
            self.design,
            self.net,
            params,
            frames,
            shuffle=shuffle,
            writes=self.writes(writes),
            test_name=test_name,
            seed=zlib.crc32(test_name.encode()),
            **kw,
        )


def build(name, build_root, seed=1, *, fold="spatial") -> Built:
    """The preset ``name`` with random parameters, in Verilator; ``fold`` as the build
    command's ``--fold``."""
    net = preset(name)
    params = random_params(net, np.random.default_rng(seed))
    rate = fold == "rate"
    dut = Backbone(
        net,
        params,
        folds=rate_folds(net) if rate else None,
        digits=rate_digits(net) if rate else None,
    )
    top = f"bb_{name}"
    # Emitted in parts, as the build command does.
    text = to_verilog_parts(dut, top, dut.parts(top), jobs=1)
    return Built(
        net, params, dut, VerilatorDesign.from_verilog(text, top, build_root, optimize=True)
    )


def retrained(net, params, rng, **kw):
    """New run-time parameters for the same hardware: fresh trainable weights, scales,
    biases and alphas; the frozen core keeps its wired-in weights and shifts."""
    new = random_params(net, rng, **kw)
    for spec in net.convs():
        old = params[spec.name]
        if spec.frozen:
            p = new[spec.name]
            new[spec.name] = ConvParams(old.weight, p.scale, p.bias, old.shift)
    return new


def with_alpha(net, params, code):
    return {**params, **{b.name: np.full(b.channels, code) for b in net.blends()}}


#: The files of a backbone build directory, besides the marker and timing.json (these two
#: in the directory only, not in the build's own products).
BUILD_FILES = {
    "semifreddo.v",
    "network.json",
    "frozen.npz",
    "trainable.npz",
    "param_writes.hex",
    "address_map.json",
    "report.json",
    "report.md",
}


#: The five configurations of paper Table 3 (presets of spec.network).
CONFIGS = ["two_cores_shuffle", "two_cores", "one_core", "frozen_only", "trainable_only"]


def check_configuration(name, rtl_build_dir):
    """Build one Table 3 configuration and run two frames end to end under stalls."""
    built = build(name, rtl_build_dir, seed=CONFIGS.index(name))
    assert (
        built.net.cores
        == {
            "two_cores_shuffle": ("frozen", "a", "b"),
            "two_cores": ("frozen", "a", "b"),
            "one_core": ("frozen", "a"),
            "frozen_only": ("frozen",),
            "trainable_only": ("a", "b"),
        }[name]
    )
    frames = random_frames(built.net, np.random.default_rng(20), 2)
    built.run(
        built.params,
        frames,
        shuffle=built.net.core_shuffle,
        test_name="e2e",
        in_stall=0.25,
        out_stall=0.4,
    )
