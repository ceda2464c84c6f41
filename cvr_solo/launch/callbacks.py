"""Lightning callbacks cvr-solo adds to every run."""

from __future__ import annotations

import resource
import statistics
import sys
import time
from typing import Any

import lightning.pytorch as pl
import torch


class ThroughputMonitor(pl.Callback):
    """Logs the cost of training: step time, images/s and peak memory.

    ``train_step_time``: seconds from batch start to batch end (forward, backward, optimiser,
    EMA), the device synchronised on CUDA. ``train_images_per_sec``: source images (each
    gives all its views) per second from one batch end to the next, data loading included.
    ``peak_rss_mib``: the process's peak resident memory; ``peak_gpu_mem_mib``: the peak of
    torch's CUDA allocator. Warm-up steps (the first ``skip`` of each epoch) are not logged.

    These go to the logger every ``log_every_n_steps`` like any step metric, so a run shorter
    than that interval would log none; at each epoch end the epoch's medians are therefore
    also logged as ``train_step_time_epoch``, ``train_images_per_sec_epoch`` and the peaks
    as ``peak_rss_mib_epoch`` / ``peak_gpu_mem_mib_epoch`` (warm-up steps included only when
    the epoch had no others).
    """

    def __init__(self, skip: int = 2) -> None:
        self.skip = skip
        self._t0 = 0.0
        self._last_end: float | None = None
        self._epoch: dict[str, list[float]] = {}
        self._warmup: dict[str, list[float]] = {}

    @staticmethod
    def _now(pl_module: pl.LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_end = None
        self._epoch, self._warmup = {}, {}

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        figures = {k: v for k, v in self._warmup.items() if k not in self._epoch}
        figures.update(self._epoch)
        out = {f"{k}_epoch": (max(v) if k.startswith("peak") else statistics.median(v))
               for k, v in figures.items() if v}
        if out:
            pl_module.log_dict(out, on_step=False, on_epoch=True)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        self._t0 = self._now(pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        end = self._now(pl_module)
        n_images = len(batch[-1])
        metrics: dict[str, float] = {}
        measured = {"train_step_time": end - self._t0}
        if self._last_end is not None:
            measured["train_images_per_sec"] = n_images / max(end - self._last_end, 1e-9)
        if batch_idx >= self.skip:
            metrics.update(measured)
        for k, v in measured.items():
            (self._epoch if batch_idx >= self.skip else self._warmup).setdefault(k, []).append(v)
        self._last_end = end
        scale = 1024 if sys.platform != "darwin" else 1024 * 1024  # ru_maxrss: KiB on Linux
        metrics["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
        if pl_module.device.type == "cuda":
            metrics["peak_gpu_mem_mib"] = torch.cuda.max_memory_allocated(pl_module.device) / 2**20
        for k in ("peak_rss_mib", "peak_gpu_mem_mib"):
            if k in metrics:
                self._epoch.setdefault(k, []).append(metrics[k])
        pl_module.log_dict(metrics, on_step=True, on_epoch=False, batch_size=n_images)
