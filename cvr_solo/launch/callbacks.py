"""Lightning callbacks cvr-solo adds to every run."""

from __future__ import annotations

import random
import resource
import statistics
import sys
import time
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from cvr_solo.common.checks import check_choice
from cvr_solo.common.metric_names import (
    EPOCH,
    IMAGES_PER_SEC,
    PEAK_GPU_MEM_MIB,
    PEAK_RSS_MIB,
    STEP_TIME,
)


def logs_this_step(trainer: pl.Trainer) -> bool:
    """Whether Lightning writes the current training step's metrics to its loggers, the steps
    on which it reads the logged tensors to the host anyway: its own test
    (``should_update_logs``), the same from ``on_train_batch_start`` to ``on_train_batch_end``
    and right under gradient accumulation, where ``global_step`` stands still."""
    return bool(trainer._logger_connector.should_update_logs)


class RankSeed(pl.Callback):
    """Gives each process of a multi-process run its own random streams: ``seed + global
    rank`` for torch, numpy and random, once the processes are up (before training).

    Every process runs the launcher's ``seed_everything(seed)``, so without this all ranks
    would draw the same vMF noise, dropout masks and (in-process) augmentations for their
    different images, correlating the compression noise across the global batch. A
    one-process run is left as it is. The initial weights are unaffected (DDP copies rank
    0's).
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.world_size > 1:
            seed = self.seed + trainer.global_rank
            random.seed(seed)
            np.random.seed(seed % 2**32)
            torch.manual_seed(seed)


class HostClock:
    """Stamps from the host clock: on a CPU the ops of a step have run when the hook is called."""

    def stamp(self) -> float:
        return time.perf_counter()

    def ready(self, stamp: float) -> bool:
        return True

    def seconds(self, start: float, end: float) -> float:
        return end - start


class CudaClock:
    """CUDA events recorded on the current stream: taking a stamp does not wait for the device;
    a stamp is read (:meth:`seconds`) only once :meth:`ready` (``Event.query``, non-blocking)
    says the device has passed it."""

    def stamp(self) -> torch.cuda.Event:
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def ready(self, stamp: torch.cuda.Event) -> bool:
        return bool(stamp.query())

    def seconds(self, start: torch.cuda.Event, end: torch.cuda.Event) -> float:
        return start.elapsed_time(end) / 1000.0


class ThroughputMonitor(pl.Callback):
    """Logs the cost of training: step time, images/s and peak memory, without synchronising
    the host with the device.

    ``train_step_time``: seconds from batch start to batch end (forward, backward, optimiser,
    EMA). ``train_images_per_sec``: source images (each gives all its views) per second from
    one batch end to the next, data loading included. On CUDA both are timed with CUDA events
    (device time between the hooks) and read only once the device has passed them, so a
    logged value may be that of a step or two before; on a CPU with the host clock.
    ``peak_rss_mib``: the process's peak resident memory; ``peak_gpu_mem_mib``: the peak of
    torch's CUDA allocator (a host-side counter). Values are logged as device tensors
    (``torch.full``), which Lightning reads back only on its logging steps. Warm-up steps (the
    first ``skip`` of each epoch) are not logged.

    These go to the logger every ``log_every_n_steps`` like any step metric, so a run shorter
    than that interval would log none; at each epoch end the epoch's medians are therefore
    also logged as ``train_step_time_epoch``, ``train_images_per_sec_epoch`` and the peaks
    as ``peak_rss_mib_epoch`` / ``peak_gpu_mem_mib_epoch`` (warm-up steps included only when
    the epoch had no others). Under DDP the epoch figures are averaged over the ranks (the
    peaks: their maximum).

    Args:
        skip: warm-up steps per epoch left out of the step metrics.
        clock: ``"auto"`` (CUDA events on a CUDA device, else the host clock), ``"cuda"`` or
            ``"host"``.
    """

    def __init__(self, skip: int = 2, clock: str = "auto") -> None:
        self.skip = skip
        self.clock_kind = check_choice("clock", clock, ("auto", "cuda", "host"))
        self._clock: HostClock | CudaClock = HostClock()
        self._start: Any = None
        self._last_end: Any = None
        self._pending: list[tuple[Any, Any, Any, int, bool]] = []
        self._latest: dict[str, float] = {}
        self._epoch: dict[str, list[float]] = {}
        self._warmup: dict[str, list[float]] = {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        cuda = self.clock_kind == "cuda" or (
            self.clock_kind == "auto" and pl_module.device.type == "cuda")
        self._clock = CudaClock() if cuda else HostClock()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_end = None
        self._pending, self._latest = [], {}
        self._epoch, self._warmup = {}, {}

    def _drain(self, wait: bool = False) -> None:
        """Moves the timings the device has finished (all of them if ``wait``) into the
        epoch's lists and :attr:`_latest`."""
        while self._pending and (wait or self._clock.ready(self._pending[0][2])):
            start, prev_end, end, n_images, warm = self._pending.pop(0)
            measured = {STEP_TIME: self._clock.seconds(start, end)}
            if prev_end is not None:
                measured[IMAGES_PER_SEC] = n_images / max(
                    self._clock.seconds(prev_end, end), 1e-9)
            for k, v in measured.items():
                (self._warmup if warm else self._epoch).setdefault(k, []).append(v)
            if not warm:
                self._latest.update(measured)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if isinstance(self._clock, CudaClock) and self._pending:
            self._pending[-1][2].synchronize()  # once an epoch: the epoch's last timings
        self._drain(wait=True)
        figures = {k: v for k, v in self._warmup.items() if k not in self._epoch}
        figures.update(self._epoch)
        for k, v in figures.items():
            if not v:
                continue
            peak = k in (PEAK_RSS_MIB, PEAK_GPU_MEM_MIB)
            pl_module.log(k + EPOCH, max(v) if peak else statistics.median(v),
                          on_step=False, on_epoch=True, sync_dist=True,
                          reduce_fx="max" if peak else "mean")

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        self._start = self._clock.stamp()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        end = self._clock.stamp()
        n_images = len(batch[-1])
        self._pending.append((self._start, self._last_end, end, n_images,
                              batch_idx < self.skip))
        self._last_end = end
        self._drain()
        metrics = dict(self._latest) if batch_idx >= self.skip else {}
        scale = 1024 if sys.platform != "darwin" else 1024 * 1024  # ru_maxrss: KiB on Linux
        metrics[PEAK_RSS_MIB] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
        if pl_module.device.type == "cuda":
            metrics[PEAK_GPU_MEM_MIB] = torch.cuda.max_memory_allocated(pl_module.device) / 2**20
        for k in (PEAK_RSS_MIB, PEAK_GPU_MEM_MIB):
            if k in metrics:
                self._epoch.setdefault(k, []).append(metrics[k])
        device = pl_module.device
        pl_module.log_dict({k: torch.full((), float(v), device=device)
                            for k, v in metrics.items()},
                           on_step=True, on_epoch=False, batch_size=n_images)
