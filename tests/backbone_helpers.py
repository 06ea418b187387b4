"""Shared by the backbone end-to-end tests: build a preset's backbone in Verilator, run it
against the golden model, derive new run-time parameters."""

import dataclasses
import functools
import zlib

import numpy as np

from generators.backbone_build import rate_options
from semifreddo_hw.backbone import Backbone
from semifreddo_hw.emit import to_verilog_parts
from sim.backbone import FLAGS, PARAM_PORT, random_frames, run_backbone
from sim.rtl import VerilatorDesign, struct_word
from spec.network import Network, network_from_dict, preset
from weights.synthetic import random_params, retrained

__all__ = [
    "BUILD_FILES",
    "FLAGS",
    "Built",
    "build",
    "builds",
    "retrained",
    "with_alpha",
    "CONFIGS",
    "REDUCED_PLAN",
    "SHORT_PLAN",
    "reduced",
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

    def back_to_back(self, seed) -> list[dict]:
        """The statistics of one and of three frames streamed back to back, shuffle on,
        the input always offered and the outputs always read: the second run's extra
        cycles are what two frames cost at full rate."""
        return [
            self.run(
                self.params,
                random_frames(self.net, np.random.default_rng(seed), n),
                shuffle=True,
                test_name=f"tp{n}",
                in_stall=0,
                out_stall=0,
            )
            for n in (1, 3)
        ]

    def run_with_and_without_stalls(self, params, frames, *, test_name):
        """``params`` written through the bus, ``frames`` streamed (shuffle on) once at full
        rate (input always offered, outputs always read) and once under stalls."""
        writes = self.dut.param_writes(params)
        for stall in (0, None):
            kw = {"in_stall": 0, "out_stall": 0} if stall == 0 else {}
            self.run(
                params, frames, shuffle=True, writes=writes, test_name=f"{test_name}{stall}", **kw
            )

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


def build(
    name,
    build_root,
    seed=1,
    *,
    fold="spatial",
    input_period=1,
    serial=True,
    swap=False,
    params=None,
    rom_from=0,
    relays=0,
) -> Built:
    """The preset ``name`` (or a :class:`~spec.network.Network`) with random parameters
    (or ``params``), in Verilator; ``fold``, ``input_period`` and ``rom_from`` as the build
    command's ``--fold``, the period its ``--fps`` gives and ``--frozen-rom``;
    ``serial=False`` keeps the frozen products word-parallel; ``swap``: two parameter sets,
    swapped at frame boundaries; ``relays``: :attr:`Backbone.relays
    <semifreddo_hw.backbone.Backbone.relays>` (the build command's ``--relays``)."""
    net = name if isinstance(name, Network) else preset(name)
    if params is None:
        params = random_params(net, np.random.default_rng(seed))
    rate = fold == "rate"
    options = rate_options(net, input_period, serial=serial, rom_from=rom_from) if rate else {}
    dut = Backbone(net, params, swap=swap, relays=relays, **options)
    top = f"bb_{net.name}" + ("_rate" if rate else "") + ("_swap" if swap else "")
    top += f"_relays{relays}" if relays else ""
    top += f"_rom{rom_from}" if options.get("roms") else ""
    # Emitted in parts, as the build command does.
    text = to_verilog_parts(dut, top, dut.parts(top), jobs=1)
    return Built(
        net, params, dut, VerilatorDesign.from_verilog(text, top, build_root, optimize=True)
    )


def builds(net, params, build_root):
    """``get(fold="spatial", swap=False)``: ``net`` with ``params`` built as :func:`build`
    does, once per fold and swap (for a module-scoped fixture)."""

    @functools.cache
    def get(fold="spatial", swap=False) -> Built:
        return build(net, build_root, fold=fold, swap=swap, params=params)

    return get


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


#: Table 1's plan with fewer blocks: the same four stages, strides and so peak periods (2, 4,
#: 8 and 16 pixel times: every fold the rate allows), stages that start with a downsampling
#: block and one that does not, and in each the frozen core one regular block deeper than
#: the trainable ones (Table 1 has three more), so that the trainable cores' outputs leave
#: first as the presets' do (tests/test_backbone.py ``test_one_pixel_per_clock``); 53
#: convolutions where the presets have 69 (with two trainable cores).
REDUCED_PLAN = [[[2, 1], [2]], [[2, 1], [2]], [[1, 1], [1]], [[2, 1], [2]]]

#: Two of those stages, for what does not depend on the depth (how the cores meet, the host
#: link): one that starts with a downsampling block, one that does not, so meeting points
#: before, between and after the stages; 25 convolutions (with two trainable cores).
SHORT_PLAN = [[[2, 1], [2]], [[1, 1], [1]]]

#: Stages whose frozen core has one block: the stream into it crosses the trainable stages
#: (``Backbone._frozen_split`` 0), so its crossing slice and relays come before that block.
ONE_BLOCK_PLAN = [[[2], [2]], [[1], [1]]]


def reduced(name, plan=REDUCED_PLAN) -> Network:
    """The preset ``name``'s cores, blends, shuffle and stem width on ``plan``, 18x10 in:
    frames of odd sizes (9x5 after the stem, then 5x3, 3x2 and 2x1 after each downsampling
    stage), a meeting point (blends, balancing FIFOs, shuffle, as the preset has them) in
    front of each stage and at the outputs."""
    return network_from_dict(
        {
            **preset(name).to_dict(),
            "name": f"{name}_reduced",
            "width": 18,
            "height": 10,
            "plan": plan,
        }
    )


def check_configuration(name, rtl_build_dir, *, full=True):
    """Build one Table 3 configuration (``full``: the preset, else its cores on
    :data:`SHORT_PLAN`) and run two frames end to end under stalls."""
    net = preset(name) if full else reduced(name, SHORT_PLAN)
    built = build(net, rtl_build_dir, seed=CONFIGS.index(name))
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
