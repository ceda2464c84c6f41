"""What a new user sees: the progress bar and closing summary, no third-party warnings
before our own errors, the metrics.csv layout (issue 10), and which earlier run a launch
resumes (a resumed run itself: test_solo_training.py)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .helpers import small_run_overrides

KNOWN = ("pkg_resources", "Importing from timm", "Overwriting", "custom_fwd", "LeafSpec",
         "pin_memory", "smaller than the logging interval")


def _cli(*args: str) -> subprocess.CompletedProcess:
    """``cvr-solo ARGS`` with the user's warning settings (none that this suite sets)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS",
                                                            "CVR_SOLO_VERBOSE")}
    return subprocess.run([sys.executable, "-m", "cvr_solo.cli", *args], capture_output=True,
                          text=True, timeout=900, env=env)


def _short_run(data: Path, ckpt_dir: Path, epochs: int = 1) -> list[str]:
    """small_run_overrides with the progress bar on and Lightning's log interval (50 steps)
    longer than the run (4 steps an epoch)."""
    return [o for o in small_run_overrides(data, ckpt_dir, epochs)
            if "enable_progress_bar" not in o and "log_every_n_steps" not in o
            and "batch_size" not in o] + ["optimizer.batch_size=25"]


def test_a_first_run_shows_the_ceb_terms_and_ends_with_a_summary(tmp_path, fm_data):
    proc = _cli("pretrain", "--config-name", "c_byol.yaml", *_short_run(fm_data, tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    screen = proc.stdout + proc.stderr
    for label in ("loss=", "regression=", "R-floor=", "beta=0.5", "val_acc1="):
        assert label in screen, label
    assert "v_num" not in screen
    assert not [k for k in KNOWN if k in proc.stderr], proc.stderr[:3000]
    run = next((tmp_path / "c_byol").iterdir())
    ckpt = next(run.glob("*.ckpt"))
    summary = proc.stdout[proc.stdout.index("cvr-solo pretrain: done"):]
    assert "epoch 1/1, 4 steps" in summary
    assert f"run folder:      {run}" in summary
    assert f"last checkpoint: {ckpt}" in summary
    assert f"metrics:         {run / 'metrics.csv'}" in summary
    assert "online linear val acc@1: " in summary
    # metrics.csv: step and epoch first, the rest sorted; cost figures despite 4 < 50 steps
    with (run / "metrics.csv").open() as f:
        header = next(csv.reader(f))
        rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert header[:2] == ["step", "epoch"] and header[2:] == sorted(header[2:])
    for key in ("train_step_time_epoch", "train_images_per_sec_epoch", "peak_rss_mib_epoch",
                "train_residual_above_floor_epoch", "val_acc1"):
        values = [float(r[key]) for r in rows if r.get(key)]
        assert values and all(v == v for v in values), key


def test_our_config_error_is_the_first_line_and_verbose_keeps_warnings(tmp_path, fm_data):
    over = [*small_run_overrides(fm_data, tmp_path), "method_kwargs.kappa_e=-3"]
    quiet = _cli("pretrain", "--config-name", "c_byol.yaml", *over)
    assert quiet.returncode == 2
    assert quiet.stderr.splitlines()[0] == ("cvr-solo pretrain: error: method_kwargs.kappa_e "
                                            "must be a number > 0, got -3"), quiet.stderr
    # CVR_SOLO_VERBOSE=1 is the same switch (common.quiet.verbose_requested, test_cli_help)
    loud = _cli("--verbose", "pretrain", "--config-name", "c_byol.yaml", *over)
    assert loud.returncode == 2 and "Importing from timm" in loud.stderr


@pytest.mark.pins_only  # caught in our start-up checks, before Lightning runs
def test_the_dataset_root_as_train_path_fails_at_start_up(tmp_path, fm_data):
    over = [o for o in small_run_overrides(fm_data, tmp_path) if "train_path" not in o]
    proc = _cli("pretrain", "--config-name", "byol.yaml", *over, f"data.train_path={fm_data}")
    assert proc.returncode == 2
    first = proc.stderr.splitlines()[0]
    assert first.startswith(f"cvr-solo pretrain: error: data.train_path={fm_data} holds train")
    assert not (tmp_path / "byol").exists()


def _fake_run(root: Path, name: str, args: dict) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "args.json").write_text(json.dumps(args))
    torch.save({"epoch": 0, "global_step": 5, "state_dict": {}}, folder / f"{name}-ep=0.ckpt")
    return folder


@pytest.mark.parametrize(("key", "value"), [("pretrain_method", "byol"),
                                            ("data.val_path", "/elsewhere"),
                                            ("seed", 6)])
def test_resume_matching_includes_the_keys_that_change_the_result(tmp_path, key, value):
    from omegaconf import OmegaConf

    from cvr_solo.launch.resume import find_resume_checkpoint

    base = {"name": "linear", "backbone": {"name": "resnet18"}, "method": None,
            "data": {"dataset": "custom", "val_path": "/v"}, "max_epochs": 3,
            "optimizer": {"name": "sgd", "batch_size": 8, "lr": 0.1, "weight_decay": 0.0},
            "pretrained_feature_extractor": "/p.ckpt", "pretrain_method": "c_byol",
            "seed": 5, "auto_resume": {"enabled": True, "max_hours": 36}}
    folder = _fake_run(tmp_path, "run-a", base)
    cfg = OmegaConf.create(base)
    found = find_resume_checkpoint(cfg, str(tmp_path))
    assert found.folder == folder.resolve() and not found.finished and found.epoch == 0
    other = OmegaConf.create(base)
    OmegaConf.update(other, key, value)
    assert find_resume_checkpoint(other, str(tmp_path)).checkpoint is None
