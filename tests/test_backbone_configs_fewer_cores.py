"""Table 3 configurations with fewer cores (see tests/test_backbone_configs.py)."""

import pytest

from tests.backbone_helpers import CONFIGS, check_configuration


@pytest.mark.parametrize("name", CONFIGS[2:])
def test_table3_configuration_end_to_end(name, rtl_build_dir):
    check_configuration(name, rtl_build_dir)
