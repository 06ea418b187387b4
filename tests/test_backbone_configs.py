# amaranth: UnusedElaboratable=no
"""The five configurations of paper Table 3 at a small size (32x24x3, channels / 16), each
built and run end to end in Verilator against the golden model (random weights and alphas,
shuffle on where the hardware has it, random stalls on every stream)."""

import numpy as np
import pytest

from sim.backbone import random_frames
from tests.backbone_helpers import build

CONFIGS = ["two_cores_shuffle", "two_cores", "one_core", "frozen_only", "trainable_only"]


@pytest.mark.parametrize("name", CONFIGS)
def test_table3_configuration_end_to_end(name, rtl_build_dir):
    built = build(name, rtl_build_dir, seed=CONFIGS.index(name))
    assert built.net.cores == {"two_cores_shuffle": ("frozen", "a", "b"),
                               "two_cores": ("frozen", "a", "b"),
                               "one_core": ("frozen", "a"),
                               "frozen_only": ("frozen",),
                               "trainable_only": ("a", "b")}[name]
    frames = random_frames(built.net, np.random.default_rng(20), 2)
    built.run(built.params, frames, shuffle=built.net.core_shuffle, test_name="e2e",
              in_stall=0.25, out_stall=0.4)
