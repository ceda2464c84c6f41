"""Where a launch starts: a matching checkpoint to resume (solo-learn's AutoResumer with more
keys, or an explicit one), the run folder it continues in, and the Checkpointer that treats
the resumed checkpoint as its previous one."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from lightning.pytorch import Trainer
from omegaconf import DictConfig
from solo.utils.auto_resumer import AutoResumer
from solo.utils.checkpointer import Checkpointer

#: Keys AutoResumer must also match before resuming a run of ours. solo-learn's list (name,
#: backbone, method, data.dataset, max_epochs, the optimiser's name/batch/lr/wd, wandb,
#: pretrained_feature_extractor) omits settings that change the result: a beta sweep under one
#: name would resume from another beta's weights, a linear probe of a byol backbone from one
#: labelled c_byol. The lr compared is solo-learn's scaled one (batch x devices x nodes / 256).
EXTRA_RESUME_KEYS = (
    "method_kwargs", "pretrain_method", "augmentations", "data.train_path", "data.val_path",
    "data.fraction", "data.no_labels", "data.augmentations", "optimizer.kwargs",
    "optimizer.classifier_lr", "scheduler", "momentum", "seed", "precision", "max_steps",
    "accumulate_grad_batches", "mixup", "cutmix", "label_smoothing", "finetune",
)


@contextlib.contextmanager
def _resume_keys(extra: Sequence[str]) -> Iterator[None]:
    saved = list(AutoResumer.SHOULD_MATCH)
    AutoResumer.SHOULD_MATCH[:] = saved + [k for k in extra if k not in saved]
    try:
        yield
    finally:
        AutoResumer.SHOULD_MATCH[:] = saved


def loadable_checkpoint(path: str | os.PathLike) -> str | None:
    """``path`` if it loads, else the newest other loadable .ckpt beside it, else None.

    solo-learn writes a checkpoint before deleting the previous one, so a run killed while
    saving leaves a truncated file next to a good one; AutoResumer takes either.
    """
    path = Path(path)
    others = sorted((p for p in path.parent.glob("*.ckpt") if p != path),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    candidates = [path, *others]
    for cand in candidates:
        try:
            torch.load(cand, map_location="cpu", weights_only=False, mmap=True)
        except Exception as err:  # truncated or foreign file
            warnings.warn(f"skipping unreadable checkpoint {cand}: {err}", stacklevel=2)
            continue
        return str(cand)
    return None


class ResumePoint(NamedTuple):
    """Where a launch starts: a checkpoint to resume (or None) and the run folder it is in.

    ``folder``: the run folder to continue in (its checkpoints, args.json and metrics.csv),
    None for a new one. ``finished``: the checkpoint is the run's last epoch (or max_steps),
    so there is nothing to train.
    """

    checkpoint: str | None = None
    run_id: str | None = None
    folder: Path | None = None
    finished: bool = False
    epoch: int = -1


def _checkpoint_progress(path: str) -> tuple[int, int]:
    """(epoch, global_step) recorded in a Lightning checkpoint."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    return int(ckpt.get("epoch", -1)), int(ckpt.get("global_step", 0))


def _is_finished(cfg: DictConfig, epoch: int, step: int) -> bool:
    """solo-learn's Checkpointer saves at the end of epoch ``epoch``; the run is done when
    that was the last epoch, or max_steps is reached."""
    max_steps = cfg.get("max_steps") or -1
    return epoch + 1 >= int(cfg.max_epochs) or (max_steps > 0 and step >= max_steps)


def find_resume_checkpoint(cfg: DictConfig, run_dir: str) -> ResumePoint:
    """Where to start: cfg.resume_from_checkpoint, else solo-learn's AutoResumer (matching
    also :data:`EXTRA_RESUME_KEYS`) when auto_resume is enabled, else a new run.

    A checkpoint found in a run folder directly under ``run_dir`` continues in that folder;
    an explicit checkpoint elsewhere starts a new folder that records where it came from.
    """
    if cfg.get("resume_from_checkpoint") is not None:
        ckpt = str(cfg.resume_from_checkpoint)
        del cfg.resume_from_checkpoint
        if not Path(ckpt).is_file():
            raise FileNotFoundError(f"resume_from_checkpoint: no file {ckpt}")
        run_id = None
    else:
        if not cfg.auto_resume.enabled:
            return ResumePoint()
        with _resume_keys(EXTRA_RESUME_KEYS):
            found, run_id = AutoResumer(checkpoint_dir=run_dir,
                                        max_hours=cfg.auto_resume.max_hours).find_checkpoint(cfg)
        if found is None:
            return ResumePoint()
        ckpt = loadable_checkpoint(found)
        if ckpt is None:
            return ResumePoint()
    folder = Path(ckpt).resolve().parent
    same = folder.parent == Path(run_dir).resolve() and (folder / "args.json").is_file()
    epoch, step = _checkpoint_progress(ckpt)
    return ResumePoint(ckpt, run_id, folder if same else None, _is_finished(cfg, epoch, step),
                       epoch)


class RunCheckpointer(Checkpointer):
    """solo-learn's Checkpointer that, continuing a run in its folder, treats the checkpoint
    it resumed from as its previous one: replaced by the next save unless keep_prev."""

    def __init__(self, *args: Any, resumed_from: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resumed_from = resumed_from

    def initial_setup(self, trainer: Trainer) -> None:
        """solo-learn's set-up, then rank 0's run folder and file names on every rank (each
        process of an external launcher names a new run folder of its own)."""
        super().initial_setup(trainer)
        self.path = Path(trainer.strategy.broadcast(str(self.path)))
        self.ckpt_placeholder = trainer.strategy.broadcast(self.ckpt_placeholder)

    def on_train_start(self, trainer: Trainer, pl_module: Any) -> None:
        super().on_train_start(trainer, pl_module)
        if self.resumed_from and Path(self.resumed_from).resolve().parent == Path(
                self.path).resolve():
            self.last_ckpt = Path(self.resumed_from)


