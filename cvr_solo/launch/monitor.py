"""A Lightning callback that watches any solo-learn method's representation while it trains.

Switched on by config (``cvr-solo pretrain`` wires it)::

    diagnostics:
      enabled: True
      every_n_steps: 50     # also at the first and the last step
      num_images: 256       # the fixed batch
      data_path: null       # an image folder; null: data.train_path (not held out)
      seed: 0               # which images, and their (fixed) augmentation

Every ``every_n_steps`` optimiser steps it runs the model in eval mode on one fixed batch of
two augmented views and logs (to every logger, metrics.csv included) ``diag_rankme_feats``,
``diag_rankme_z``, ``diag_alignment``, ``diag_uniformity``, ``diag_z_std`` and
``diag_z_std_ref``: see :mod:`cvr_solo.common.representation`. It needs only what every solo-learn
method's ``forward`` returns: ``feats`` and, for the projector metrics, ``z``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from cvr_solo.common.checks import check_number
from cvr_solo.common.metric_names import DIAG_PREFIX
from cvr_solo.common.representation import summary
from cvr_solo.config.errors import ConfigError

__all__ = ["RepresentationMonitor", "diagnostics_callback"]


class RepresentationMonitor(pl.Callback):
    """Logs representation diagnostics of a fixed batch every ``every_n_steps`` steps.

    Args:
        dataset: items ``(views, label)`` with at least two views per image (an ImageFolder
            with the run's own multi-view transform).
        every_n_steps: how often (optimiser steps); the first and the last step are included.
        num_images: the batch size (at most the data set's length).
        seed: picks the images and fixes their augmentation once.

    Raises:
        ValueError: if ``every_n_steps`` or ``num_images`` is below 1 / 2, or an item has
            fewer than two views.

    Example:
        >>> RepresentationMonitor([([torch.zeros(3, 8, 8)] * 2, 0)] * 4, 5, 4).num_images
        4
    """

    def __init__(self, dataset: Any, every_n_steps: int, num_images: int,
                 seed: int = 0) -> None:
        check_number("every_n_steps", every_n_steps, low=1, integer=True)
        check_number("num_images", num_images, low=2, integer=True)
        self.dataset = dataset
        self.every = int(every_n_steps)
        self.num_images = min(int(num_images), len(dataset))
        self.seed = seed
        self._views: list[torch.Tensor] | None = None
        self._last_step = -1

    def fixed_views(self) -> list[torch.Tensor]:
        """The two ``(n, C, H, W)`` view batches, drawn once (RNG states restored after)."""
        if self._views is None:
            gen = torch.Generator().manual_seed(self.seed)
            idx = torch.randperm(len(self.dataset), generator=gen)[:self.num_images].tolist()
            state = random.getstate()
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                random.seed(self.seed)
                items = [self.dataset[i][0] for i in idx]
            random.setstate(state)
            if any(len(v) < 2 for v in items):
                raise ValueError("RepresentationMonitor needs two views per image")
            self._views = [torch.stack([v[k] for v in items]) for k in (0, 1)]
        return self._views

    @torch.no_grad()
    def compute(self, pl_module: pl.LightningModule) -> dict[str, float]:
        """The diagnostics of the fixed batch under ``pl_module`` (in eval mode)."""
        was_training = pl_module.training
        pl_module.eval()
        try:
            outs = [pl_module(v.to(pl_module.device)) for v in self.fixed_views()]
        finally:
            pl_module.train(was_training)
        z = [o.get("z") for o in outs]
        z1 = z[0].float() if z[0] is not None else None
        z2 = z[1].float() if z[1] is not None else None
        return summary(outs[0]["feats"].float(), z1, z2)

    def _due(self, trainer: pl.Trainer) -> bool:
        step = trainer.global_step
        last = step >= trainer.estimated_stepping_batches
        return step != self._last_step and (step == 1 or step % self.every == 0 or last)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if not trainer.is_global_zero or not self._due(trainer):
            return
        self._last_step = trainer.global_step
        metrics = {DIAG_PREFIX + k: v for k, v in self.compute(pl_module).items()}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)


def diagnostics_callback(cfg: Any, augmentations: Sequence[Any] | None = None
                         ) -> RepresentationMonitor | None:
    """The callback ``cfg.diagnostics`` asks for (None when absent or disabled), reading
    ``cfg.diagnostics.data_path`` (default ``data.train_path``) as an image folder through the
    run's own augmentations (solo-learn's ``build_transform_pipeline``).

    Args:
        cfg: a pretrain config after solo-learn's ``parse_cfg``.
        augmentations: the augmentation configs (default ``cfg.augmentations``).

    Returns:
        A :class:`RepresentationMonitor`, or None.

    Raises:
        ConfigError: if ``diagnostics.data_path`` is not a directory.
    """
    from solo.data.pretrain_dataloader import (
        FullTransformPipeline,
        NCropAugmentation,
        build_transform_pipeline,
    )
    from torchvision.datasets import ImageFolder

    diag = cfg.get("diagnostics")
    if not diag or not diag.get("enabled", False):
        return None
    path = diag.get("data_path") or cfg.data.train_path
    if not os.path.isdir(str(path)):
        raise ConfigError(f"diagnostics.data_path: no image folder {path}")
    augs = cfg.augmentations if augmentations is None else augmentations
    pipeline = FullTransformPipeline([NCropAugmentation(
        build_transform_pipeline(cfg.data.dataset, aug), aug.num_crops) for aug in augs])
    return RepresentationMonitor(ImageFolder(str(path), transform=pipeline),
                                 int(diag.get("every_n_steps", 50)),
                                 int(diag.get("num_images", 256)), int(diag.get("seed", 0)))
