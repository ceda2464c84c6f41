"""Integration tests: they need solo-learn (GitHub version) and skip with the reason otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvr_solo.solo_env import SoloLearnUnavailableError, require_solo

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
    """A class-balanced Fashion-MNIST image folder: 100 train / 50 val images."""
    from cvr_solo.data.fashion_mnist import DEFAULT_SOURCE, export_fashion_mnist

    if not (DEFAULT_SOURCE / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST is missing: apt-get install -y dataset-fashion-mnist")
    out = tmp_path_factory.mktemp("fashion-mnist")
    export_fashion_mnist(out, subset=100, val_subset=50, progress=False)
    return out
