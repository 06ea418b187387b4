# amaranth: UnusedElaboratable=no
"""The Table 3 configurations with fewer cores (one trainable core; the frozen core alone;
the trainable cores alone), end to end in Verilator against the golden model (see
tests/test_backbone_configs.py): by default with each configuration's cores, blends and
shuffle on two stages (:data:`tests.backbone_helpers.SHORT_PLAN`, odd frame sizes), at the
preset size as a slow sweep."""

import pytest

from tests.backbone_helpers import CONFIGS, check_configuration


@pytest.mark.parametrize("name", CONFIGS[2:])
def test_fewer_cores_end_to_end(name, rtl_build_dir):
    check_configuration(name, rtl_build_dir, full=False)


# Slow: the preset-size builds take two to four minutes each on two cores. The default
# test_fewer_cores_end_to_end above builds the same cores, blends and kinds of stage on
# fewer blocks; Table 1's four stages are built, rate-folded, in
# tests/test_backbone_folded.py.
@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS[2:])
def test_table3_configuration_end_to_end(name, rtl_build_dir):
    check_configuration(name, rtl_build_dir)
