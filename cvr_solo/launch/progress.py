"""What a run shows on screen: the progress bar's metrics and the closing summary."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import TQDMProgressBar

from cvr_solo.common.catalog import CEB_METHODS, lookup
from cvr_solo.common.metric_names import (
    BETA,
    EPOCH,
    RESIDUAL_ABOVE_FLOOR,
    STEP,
    TRAIN_ACC1,
    TRAIN_LOSS,
    VAL_ACC1,
    ceb_loss,
)
from cvr_solo.common.progress_file import PROGRESS_FILE_ENV, write_step_file
from cvr_solo.launch.callbacks import logs_this_step

__all__ = ["MethodProgressBar", "StepFile", "bar_items", "run_summary", "step_file_from_env"]


def _base(key: str) -> str:
    return key[: -len(STEP)] if key.endswith(STEP) else key


def bar_items(method: str | None) -> list[tuple[str, str]]:
    """(logged key without ``_step``, label) pairs the bar shows for ``method``.

    A baseline: its loss (the catalog's ``loss_key``). A C-variant: the total loss, its
    contrastive (C-SimCLR, C-MoCo v3) or regression (C-BYOL, C-SimSiam) term, R above its
    floor and beta. A linear probe (``method`` None): its loss and accuracy. Validation
    accuracy when there is one.

    Example:
        >>> bar_items("c_byol")[:2]
        [('train_c_byol_loss', 'loss'), ('train_neg_cos_sim', 'regression')]
    """
    if method is None:
        items = [(TRAIN_LOSS, "loss"), (TRAIN_ACC1, "acc1")]
    else:
        try:
            info = lookup(method)
        except KeyError:
            return [(VAL_ACC1, "val_acc1")]
        if info.name in CEB_METHODS:
            term = str(info.family)
            items = [(ceb_loss(info.name), "loss"), (_base(info.loss_key), term),
                     (RESIDUAL_ABOVE_FLOOR, "R-floor"), (BETA, "beta")]
        else:
            items = [(_base(info.loss_key), "loss")]
    return [*items, (VAL_ACC1, "val_acc1")]


def _value(metrics: Mapping[str, Any], key: str) -> float | None:
    for name in (key + STEP, key, key + EPOCH):
        if name in metrics:
            v = metrics[name]
            v = float(v.item() if hasattr(v, "item") else v)
            return v if math.isfinite(v) else None
    return None


class MethodProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar showing the method's loss and, for C-variants, the CEB terms
    (:func:`bar_items`) from ``trainer.callback_metrics``, instead of ``v_num``.

    When it reads:
    - on Lightning's logging steps (every ``log_every_n_steps``) the step values, which are
      already on every rank (reading a metric copies it to the host, a device sync, so the
      steps between keep the values last read);
    - after a validation, whose epoch values Lightning has reduced on every rank by then.
    Never at the end of a training epoch: the epoch means are reduced across ranks when they
    are first read, and only global rank 0 has a bar, so a read there would enter collectives
    that the other ranks enter elsewhere (solo-learn's Checkpointer barrier): a deadlock under
    DDP. The validation accuracy shows only once a validation of this run has ended, not the
    sanity check's.
    """

    def __init__(self, method: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.items = bar_items(method)
        self._shown: dict[str, int | str | float | dict[str, float]] | None = None
        self._read = True
        self._validated = False

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        self._read = logs_this_step(trainer)
        try:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        finally:
            self._read = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._read = False
        try:
            super().on_train_epoch_end(trainer, pl_module)
        finally:
            self._read = True

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validated = True
        super().on_validation_end(trainer, pl_module)

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule
                    ) -> dict[str, int | str | float | dict[str, float]]:
        if not self._read:
            return self._shown or {}
        shown: dict[str, int | str | float | dict[str, float]] = {}
        for key, label in self.items:
            if key == VAL_ACC1 and not self._validated:
                continue
            v = _value(trainer.callback_metrics, key)
            if v is not None:
                shown[label] = f"{v:.4g}"
        self._shown = shown
        return shown


def run_summary(command: str, trainer: pl.Trainer, run_dir: str | Path | None,
                checkpoint: str | Path | None, metrics_csv: str | Path | None) -> str:
    """The lines printed when a run ends: where it went and its final validation accuracy.

    Example:
        >>> from types import SimpleNamespace
        >>> t = SimpleNamespace(max_epochs=2, current_epoch=2, global_step=10,
        ...                     callback_metrics={"val_acc1": 41.5})
        >>> print(run_summary("pretrain", t, "m/c_byol/run-1", "m/c_byol/run-1/x-ep=1.ckpt",
        ...                   "m/c_byol/run-1/metrics.csv"))
        cvr-solo pretrain: done, epoch 2/2, 10 steps
          run folder:      m/c_byol/run-1
          last checkpoint: m/c_byol/run-1/x-ep=1.ckpt
          metrics:         m/c_byol/run-1/metrics.csv
          online linear val acc@1: 41.50 %
    """
    epochs = trainer.max_epochs
    max_steps = getattr(trainer, "max_steps", -1) or -1
    cut = f" (max_steps={max_steps} reached)" if 0 < max_steps <= trainer.global_step else ""
    lines = [f"cvr-solo {command}: done, epoch {trainer.current_epoch}/{epochs}, "
             f"{trainer.global_step} steps{cut}"]
    if run_dir is not None:
        lines.append(f"  run folder:      {run_dir}")
    last = checkpoint if checkpoint else "none (checkpoint.enabled=False)"
    lines.append(f"  last checkpoint: {last}")
    if metrics_csv is not None:
        lines.append(f"  metrics:         {metrics_csv}")
    acc = _value(trainer.callback_metrics, VAL_ACC1)
    if acc is not None:
        what = "online linear val acc@1" if command == "pretrain" else "linear probe val acc@1"
        lines.append(f"  {what}: {acc:.2f} %")
    for cb in getattr(trainer, "callbacks", ()):
        warning = getattr(cb, "message", None)
        if isinstance(warning, str) and warning:
            lines.append(f"  warning: {warning}")
    return "\n".join(lines)


class StepFile(pl.Callback):
    """Writes ``"<global step> <total steps>"`` to ``path`` (atomically, rank zero), at most
    every ``every`` seconds and when training ends."""

    def __init__(self, path: str | os.PathLike, every: float = 2.0) -> None:
        self.path, self.every, self._last = Path(path), every, -math.inf

    def _write(self, trainer: pl.Trainer) -> None:
        if not trainer.is_global_zero:
            return
        total = trainer.estimated_stepping_batches
        total = int(total) if math.isfinite(total) else 0
        write_step_file(self.path, trainer.global_step, total)
        self._last = time.monotonic()

    def on_train_batch_end(self, trainer: pl.Trainer, *_: Any) -> None:
        if time.monotonic() - self._last >= self.every:
            self._write(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer)


def step_file_from_env() -> list[StepFile]:
    """``[StepFile(path)]`` when :data:`cvr_solo.common.progress_file.PROGRESS_FILE_ENV` names
    a file (``cvr-solo bench`` sets it for its pretraining child), else ``[]``."""
    path = os.environ.get(PROGRESS_FILE_ENV)
    return [StepFile(path)] if path else []
