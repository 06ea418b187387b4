# amaranth: UnusedElaboratable=no
"""The five configurations of paper Table 3 at their preset size (32x24x3, channels / 16),
each built and run end to end in Verilator against the golden model (random weights and
alphas, shuffle on where the hardware has it, random stalls on every stream): a slow sweep
(``pytest -m slow``), two to five minutes of build per configuration on two cores.

Each runs in the default suite on a smaller build, its cores, blends and shuffle on two
stages (:data:`tests.backbone_helpers.SHORT_PLAN`, odd frame sizes):

* ``two_cores_shuffle`` (frozen core, two trainable cores, blends, core shuffle): the
  ``small`` preset's is the same topology at channels / 8, in tests/test_backbone.py (and
  rate-folded on four stages in tests/test_backbone_folded.py, behind the UART in
  tests/test_link.py);
* ``two_cores`` (the same without the shuffle hardware): below;
* ``one_core``, ``frozen_only``, ``trainable_only``: in
  tests/test_backbone_configs_fewer_cores.py, so that the builds spread over the test
  workers.
"""

import pytest

from tests.backbone_helpers import CONFIGS, check_configuration


def test_two_cores_on_two_stages_end_to_end(rtl_build_dir):
    check_configuration("two_cores", rtl_build_dir, full=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS[:2])
def test_table3_configuration_end_to_end(name, rtl_build_dir):
    check_configuration(name, rtl_build_dir)
