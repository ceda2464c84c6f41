"""Integration tests: they need solo-learn (GitHub version) and skip with the reason otherwise."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cvr_solo.solo.env import SoloLearnUnavailableError, require_solo

from .helpers import TinyRun, fashion_mnist_folder, shared_root, tiny_run

try:
    require_solo()
    SOLO_SKIP_REASON = None
except SoloLearnUnavailableError as err:
    SOLO_SKIP_REASON = "solo-learn is not usable here: " + str(err).splitlines()[0]


def pytest_collection_modifyitems(config, items):
    if SOLO_SKIP_REASON is None:
        return
    mark = pytest.mark.skip(reason=SOLO_SKIP_REASON)
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(mark)


@pytest.fixture(scope="session")
def fm_data(tmp_path_factory) -> Path:
    """A class-balanced Fashion-MNIST image folder: 100 train / 50 val images (one for the
    whole session, all workers)."""
    return fashion_mnist_folder(tmp_path_factory, "fashion-mnist", 100, 50)


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, fm_data) -> Callable[[str], TinyRun]:
    """``tiny_runs(label)``: the 5-step pretraining of ``label`` (helpers.TINY_RUNS) on
    fm_data, run once for the whole session and every test file that asks for it."""
    root = shared_root(tmp_path_factory)
    return lambda label: tiny_run(root, fm_data, label)
