import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_plan_cache(tmp_path_factory):
    """Tests never read or fill the user's plan cache; a session-wide one is shared."""
    if "SEMIFREDDO_CACHE_DIR" not in os.environ:
        os.environ["SEMIFREDDO_CACHE_DIR"] = str(tmp_path_factory.mktemp("plan-cache"))


@pytest.fixture(scope="module")
def rtl_build_dir(request, tmp_path_factory) -> Path:
    """One Verilator build directory per test module."""
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
