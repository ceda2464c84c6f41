"""Helpers of the integration tests."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[2]
PRETRAIN = REPO / "scripts" / "pretrain" / "fashion-mnist"
LINEAR = REPO / "scripts" / "linear" / "fashion-mnist"


def shared_root(tmp_path_factory) -> Path:
    """A folder that every pytest-xdist worker of this session sees (the parent of the
    workers' own temporary folders), or this process's temporary folder without xdist."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def build_once(root: Path, name: str, build: Callable[[Path], None]) -> Path:
    """``root / name``, filled by ``build(folder)`` once per test session, by whichever
    worker asks first; the others wait on a file lock and reuse it. A build that raised
    leaves no mark, so the next one to ask builds again (and meets the same error)."""
    from filelock import FileLock  # a dependency of torch

    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            done.touch()
    return folder


def fashion_mnist_folder(tmp_path_factory, name: str, subset: int, val_subset: int) -> Path:
    """A class-balanced Fashion-MNIST image folder (train/ and val/) of the given sizes,
    exported once per session for all workers; the test skips where Debian's
    dataset-fashion-mnist is missing."""
    import pytest

    from cvr_solo.data.fashion_mnist import DEFAULT_SOURCE, export_fashion_mnist

    if not (DEFAULT_SOURCE / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST is missing: apt-get install -y dataset-fashion-mnist")
    return build_once(shared_root(tmp_path_factory), f"{name}-{subset}-{val_subset}",
                      lambda out: export_fashion_mnist(out, subset=subset,
                                                       val_subset=val_subset, progress=False))


#: The tiny pretraining runs several test files need, by label: (config, extra overrides).
#: Two carry what a test of their own would otherwise launch a run for: C-SimCLR's the
#: representation diagnostics (test_bench), C-BYOL's solo-learn's online kNN (test_stacks).
TINY_RUNS: dict[str, tuple[str, list[str]]] = {
    "simclr": ("simclr", []),
    "c_simclr": ("c_simclr", ["diagnostics.enabled=True", "diagnostics.every_n_steps=2",
                              "diagnostics.num_images=24"]),
    "byol": ("byol", []),
    "c_byol-other": ("c_byol", ["method_kwargs.b_view=other"]),
    "c_byol-same": ("c_byol", ["method_kwargs.b_view=same", "++knn_eval.enabled=True",
                               "++knn_eval.k=5"]),
    "barlow": ("barlow", []),
    # beyond the paper; the collapse warning's threshold is raised above any spread (std of
    # z/|z| is at most 1/sqrt(d)) with patience 1, so that the warning fires: it must reach
    # these methods' projector as it does the others' (test_solo_methods reads train_collapsed)
    "c_mocov3": ("c_mocov3", ["collapse_warning.threshold=1.0", "collapse_warning.patience=1"]),
    "c_simsiam": ("c_simsiam", ["collapse_warning.threshold=1.0",
                                "collapse_warning.patience=1"]),
}


class TinyRun(NamedTuple):
    """A finished ``cvr-solo pretrain`` of :data:`TINY_RUNS`: its exit code, stderr and
    stdout, and its checkpoint.dir (the run folder is ``models / <method>``). Shared: read it
    only."""

    returncode: int
    stderr: str
    models: Path
    stdout: str


def tiny_run(root: Path, data: Path, label: str) -> TinyRun:
    """The tiny run ``label`` of :data:`TINY_RUNS` on ``data`` (small_run_overrides and
    16-px crops), made once per session (:func:`build_once`)."""
    config, extra = TINY_RUNS[label]

    def build(folder: Path) -> None:
        proc = run_cli("pretrain", "--config-path", str(PRETRAIN), "--config-name",
                       f"{config}.yaml", *small_run_overrides(data, folder / "models"),
                       *crop_overrides(config), *extra)
        (folder / "stderr.txt").write_text(proc.stderr)
        (folder / "stdout.txt").write_text(proc.stdout)
        (folder / "returncode").write_text(str(proc.returncode))

    folder = build_once(root, f"tiny-run-{label}", build)
    return TinyRun(int((folder / "returncode").read_text()),
                   (folder / "stderr.txt").read_text(), folder / "models",
                   (folder / "stdout.txt").read_text())


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


@functools.cache
def crop_overrides(config: str, size: int = 16) -> tuple[str, ...]:
    """``augmentations.<i>.crop_size=<size>`` for each augmentation pipeline of the shipped
    pretrain config ``config``: a size knob, like the image count and batch. The ResNet's
    compute grows with the pixels, and at the configs' 32 px a CPU step of batch 20 takes about
    a second; the tests that train several steps to check files and numbers take 16 px."""
    n = len(compose_pretrain(config, []).augmentations)
    return tuple(f"augmentations.{i}.crop_size={size}" for i in range(n))


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "cvr_solo.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def compose_pretrain(name: str, overrides: list[str], config_dir: Path = PRETRAIN):
    """The shipped pretrain config ``name`` composed by Hydra with ``overrides``."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(config_dir), version_base="1.2"):
        return compose(config_name=name, overrides=overrides)
