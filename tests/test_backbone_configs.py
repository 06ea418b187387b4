# amaranth: UnusedElaboratable=no
"""The five configurations of paper Table 3 at a small size (32x24x3, channels / 16), each
built and run end to end in Verilator against the golden model (random weights and alphas,
shuffle on where the hardware has it, random stalls on every stream)."""

import pytest

from tests.backbone_helpers import CONFIGS, check_configuration


@pytest.mark.parametrize("name", CONFIGS[:2])
def test_table3_configuration_end_to_end(name, rtl_build_dir):
    """(The other three: tests/test_backbone_configs_fewer_cores.py, so that the builds
    spread over the test workers.)"""
    check_configuration(name, rtl_build_dir)
