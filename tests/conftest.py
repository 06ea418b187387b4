import os
from pathlib import Path

import pytest

#: The modules that take longest (a minute or more each, measured in a whole run on two
#: cores), longest first. Under ``--dist loadfile`` each module runs whole on one worker and
#: modules are handed out in collection order (pyproject.toml turns off xdist's reordering
#: by test count, which put the few-test modules with long Verilator builds last): these
#: start first, the short ones fill in at the end, and the two workers finish together. A
#: module not listed only runs later; a name that is no module's is ignored.
LONGEST_FIRST = (
    "test_backbone_folded.py",
    "test_digit_serial.py",
    "test_build_cli.py",
    "test_frozen_matvec_rtl.py",
    "test_config_matvec_rtl.py",
    "test_window.py",
    "test_blocks.py",
    "test_backbone_configs.py",
    "test_area_bench.py",
    "test_backbone_configs_fewer_cores.py",
    "test_conv.py",
    "test_link.py",
    "test_backbone_shapes.py",
    "test_bench.py",
    "test_formal.py",
    "test_backbone.py",
    "test_backbone_sliced.py",
    "test_backbone_spaced.py",
    "test_board.py",
    "test_steps.py",
    "test_requant_rtl.py",
    "test_cli.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order


@pytest.fixture(scope="session", autouse=True)
def _isolated_plan_cache(tmp_path_factory):
    """Tests never read or fill the user's plan cache; a session-wide one is shared."""
    if "SEMIFREDDO_CACHE_DIR" not in os.environ:
        os.environ["SEMIFREDDO_CACHE_DIR"] = str(tmp_path_factory.mktemp("plan-cache"))


@pytest.fixture(scope="module")
def rtl_build_dir(request, tmp_path_factory) -> Path:
    """One Verilator build directory per test module."""
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
