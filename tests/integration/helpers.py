"""Helpers of the integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRETRAIN = REPO / "scripts" / "pretrain" / "fashion-mnist"
LINEAR = REPO / "scripts" / "linear" / "fashion-mnist"


def fashion_mnist_folder(tmp_path_factory, name: str, subset: int, val_subset: int) -> Path:
    """A class-balanced Fashion-MNIST image folder (train/ and val/) of the given sizes; the
    test skips where Debian's dataset-fashion-mnist is missing."""
    import pytest

    from cvr_solo.data.fashion_mnist import DEFAULT_SOURCE, export_fashion_mnist

    if not (DEFAULT_SOURCE / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST is missing: apt-get install -y dataset-fashion-mnist")
    out = tmp_path_factory.mktemp(name)
    export_fashion_mnist(out, subset=subset, val_subset=val_subset, progress=False)
    return out


def small_run_overrides(data: Path, ckpt_dir: Path, epochs: int = 1) -> list[str]:
    """A few CPU steps: 100 images at batch 20 = 5 steps an epoch.

    Besides the sizes, four overrides, each with its reason; the defaults they change run
    in the tests of the user's path (test_first_run: progress bar and log interval;
    test_ddp_launch and test_readme_quick_run: the config's loader workers, progress bar
    and validation):
    - ``data.num_workers=0``: loader workers add process start-ups to each of these tiny
      runs, and the tests that use them check numbers and files, not loaders;
    - ``log_every_n_steps=1``: a 5-step epoch logs nothing at Lightning's 50, and the tests
      read metrics.csv;
    - ``enable_progress_bar=False``: the output is captured and parsed; the bar is
      test_first_run's subject;
    - ``scheduler.warmup_epochs=0``: a one-epoch run would otherwise train at a near-zero
      lr, the first 5 steps of a 10-epoch warm-up.
    """
    return [f"data.train_path={data / 'train'}", f"data.val_path={data / 'val'}",
            f"checkpoint.dir={ckpt_dir}", f"max_epochs={epochs}", "optimizer.batch_size=20",
            "data.num_workers=0", "accelerator=cpu", "++log_every_n_steps=1",
            "++enable_progress_bar=False", "++scheduler.warmup_epochs=0"]


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "cvr_solo.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)
