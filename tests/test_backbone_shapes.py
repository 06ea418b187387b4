"""Network descriptions the description rules newly allow, end to end in RTL: odd stem
widths (every core starts with a downsampling block, no core shuffle) and a backbone
without a frozen core described by its trainable strides alone; both with the stems padding
the frame with constants (the input padding of a folded normalisation)."""

import numpy as np
import pytest

from semifreddo_hw.backbone import Backbone
from semifreddo_hw.emit import to_verilog_parts
from sim.backbone import random_frames, run_backbone
from sim.rtl import VerilatorDesign
from spec.network import network_from_dict
from tests.malformed.make_corpus import TINY
from weights.synthetic import random_params

SHAPES = {
    # 3 stem channels, a blended trainable core: stem -> downsampling blocks only
    "odd_stem": {
        **TINY,
        "name": "odd_stem",
        "width": 11,
        "height": 7,
        "stem_channels": 3,
        "plan": [[[2, 1], [2]], [[2], [2]]],
        "trainable_cores": 1,
        "core_shuffle": False,
    },
    # no frozen core and no frozen strides; the shuffle between the two trainable cores
    "no_frozen": {
        **TINY,
        "name": "no_frozen",
        "frozen_core": False,
        "plan": [[[], [2, 1]], [[], [2]]],
    },
}


@pytest.mark.parametrize(
    "name",
    [
        "odd_stem",
        # slow: the same convolutions and sizes (and so the same hardware) as with frozen
        # strides, which tests/test_weight_files.py checks; the trainable_only configuration
        # in tests/test_backbone_configs_fewer_cores.py runs that hardware
        pytest.param("no_frozen", marks=pytest.mark.slow),
    ],
)
def test_shape_end_to_end(name, rtl_build_dir):
    net = network_from_dict(SHAPES[name])
    params = random_params(net, np.random.default_rng(5))
    params["input.pad"] = np.array([-128, 127, 5])  # extremes, per input channel
    dut = Backbone(net, params)
    text = to_verilog_parts(dut, name, dut.parts(name), jobs=1)
    design = VerilatorDesign.from_verilog(text, name, rtl_build_dir, optimize=True)
    frames = random_frames(net, np.random.default_rng(6), 2)  # with rows of -128 and 127
    for shuffle in [False, True] if net.core_shuffle else [False]:
        run_backbone(
            design,
            net,
            params,
            frames,
            shuffle=shuffle,
            writes=(),
            test_name=f"{name}_{int(shuffle)}",
            seed=len(name) + shuffle,
            in_stall=0.3,
            out_stall=0.3,
        )
