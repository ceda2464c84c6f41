"""The Trainer of a launch: built from the config's Trainer keys with our callbacks and
logger, fitted from its resume point, reporting its processes and closing summary."""

from __future__ import annotations

import inspect
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from solo.utils.checkpointer import Checkpointer

from cvr_solo.launch.callbacks import RankSeed, ThroughputMonitor
from cvr_solo.launch.csv_log import RunCSVLogger
from cvr_solo.launch.devices import device_count
from cvr_solo.launch.hang import CollectiveTimeoutReport, ddp_strategy, is_collective_timeout
from cvr_solo.launch.progress import MethodProgressBar, run_summary
from cvr_solo.launch.resume import ResumePoint, RunCheckpointer, find_resume_checkpoint

__all__ = ["RunReport", "build_trainer", "fit", "processes_line", "summary_of",
           "sync_batchnorm"]


def build_trainer(cfg: DictConfig, run_dir: str, resume: ResumePoint,
                  extra_callbacks: Sequence[Callback] = (), command: str = "pretrain"
                  ) -> Trainer:
    """A Trainer from cfg's Trainer keys, with solo-learn's Checkpointer, a logger (wandb if
    enabled, else :class:`RunCSVLogger` in the run folder), ThroughputMonitor, :class:`RunReport`
    and, when the progress bar is on, :class:`MethodProgressBar`."""
    callbacks: list[Callback] = [ThroughputMonitor(), *extra_callbacks]
    strategy = str(cfg.get("strategy") or "auto")
    timeout_s = cfg.get("ddp_timeout_s")
    callbacks += [RunReport(command, strategy), RankSeed(int(cfg.get("seed") or 0)),
                  CollectiveTimeoutReport(command, timeout_s)]
    if cfg.get("enable_progress_bar", True):
        callbacks.append(MethodProgressBar(cfg.get("method")))
    if cfg.checkpoint.enabled:
        callbacks.append(RunCheckpointer(cfg, logdir=run_dir, frequency=cfg.checkpoint.frequency,
                                         keep_prev=cfg.checkpoint.keep_prev,
                                         resumed_from=resume.checkpoint if resume.folder
                                         else None))
    if cfg.wandb.enabled:
        logger: Any = WandbLogger(name=cfg.name, project=cfg.wandb.project,
                                  entity=cfg.wandb.entity, offline=cfg.wandb.offline,
                                  resume="allow" if resume.run_id else None, id=resume.run_id)
        logger.log_hyperparams(OmegaConf.to_container(cfg))
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    else:
        # the Checkpointer files its checkpoints under the logger's version: a resumed run
        # keeps its folder (and appends to its metrics.csv), a new one gets a fresh version
        version = (resume.folder.name if resume.folder is not None else
                   f"run-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}")
        parent = Path(run_dir)
        logger = RunCSVLogger(save_dir=str(parent.parent), name=parent.name, version=version)
    container = OmegaConf.to_container(cfg)
    valid = inspect.signature(Trainer.__init__).parameters
    kwargs = {k: container[k] for k in valid if k in container}
    if "sync_batchnorm" in kwargs:
        kwargs["sync_batchnorm"] = sync_batchnorm(cfg, command)
    kwargs.update(logger=logger, callbacks=callbacks, enable_checkpointing=False,
                  strategy=ddp_strategy(strategy, timeout_s))
    return Trainer(**kwargs)


def sync_batchnorm(cfg: DictConfig, command: str) -> bool:
    """cfg.sync_batchnorm, off on CPU (torch's SyncBatchNorm refuses CPU tensors), saying so
    when several processes run."""
    if not cfg.get("sync_batchnorm"):
        return False
    accelerator = str(cfg.get("accelerator") or "auto")
    if accelerator != "cpu" and (accelerator != "auto" or torch.cuda.is_available()):
        return True
    several = (int(cfg.get("num_nodes") or 1) > 1
               or (device_count(cfg.get("devices")) or 1) > 1)
    if several and rank_zero_only.rank == 0:
        _say(command, "sync_batchnorm=True switched off: torch's SyncBatchNorm runs on GPUs "
                      "only; on CPU each process normalises over its own batch")
    return False


def processes_line(trainer: Trainer, requested: str = "auto") -> str:
    """How the run is spread: processes, devices per node, nodes, the strategy asked for (and
    Lightning's class for it), accelerator."""
    strategy = f"{requested} ({type(trainer.strategy).__name__})"
    accelerator = type(trainer.accelerator).__name__.replace("Accelerator", "").lower()
    return (f"{trainer.world_size} process{'es' if trainer.world_size != 1 else ''} "
            f"({trainer.num_devices} {accelerator} device(s) per node x {trainer.num_nodes} "
            f"node(s), strategy {strategy})")


class RunReport(Callback):
    """Prints, from global rank 0 only, how many processes and devices train (once they are
    all up) and, when fit ends, the run's summary (:func:`summary_of`). Printed in the training
    process, so that a ``ddp_spawn`` / ``ddp_fork`` run reports its rank 0's state, not the
    launching process's."""

    def __init__(self, command: str, strategy: str = "auto") -> None:
        self.command, self.strategy = command, strategy

    def setup(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        if trainer.is_global_zero and stage == "fit":
            _say(self.command, f"training on {processes_line(trainer, self.strategy)}")

    def on_fit_end(self, trainer: Trainer, pl_module: Any) -> None:
        # every rank reads the metrics, so that a value still to be reduced across ranks is
        # reduced by all of them together, never by rank 0 alone (a DDP deadlock)
        trainer.callback_metrics  # noqa: B018
        if trainer.is_global_zero:
            print(summary_of(self.command, trainer), flush=True)


def _say(command: str, message: str) -> None:
    print(f"cvr-solo {command}: {message}", flush=True)


def fit(cfg: DictConfig, model: Any, data: dict[str, Any], run_dir: str,
        extra_callbacks: Sequence[Callback] = (), command: str = "pretrain") -> Trainer | None:
    """Resume if a matching checkpoint exists, build the Trainer, fit (:class:`RunReport`
    prints the summary).

    Returns:
        The fitted Trainer (under ``ddp_spawn`` / ``ddp_fork`` the launching process's, which
        has not trained), or None when the matching run was already finished (it says so
        and creates nothing).
    """
    resume = find_resume_checkpoint(cfg, run_dir)
    if resume.finished:
        where = resume.folder or Path(str(resume.checkpoint)).parent
        _say(command, f"the matching run in {where} is finished (epoch {resume.epoch + 1} of "
                      f"{cfg.max_epochs}); nothing to train. Last checkpoint: "
                      f"{resume.checkpoint}. To train again, pass auto_resume.enabled=False or "
                      "another checkpoint.dir (or raise max_epochs)")
        return None
    if resume.checkpoint and resume.folder is not None:
        _say(command, f"resuming {resume.folder} from {resume.checkpoint} (epoch "
                      f"{resume.epoch + 1} of {cfg.max_epochs} done)")
    elif resume.checkpoint:
        _say(command, f"resuming from {resume.checkpoint} in a new run folder under "
                      f"{run_dir} (the checkpoint is not in one of its run folders)")
    trainer = build_trainer(cfg, run_dir, resume, extra_callbacks, command)
    if resume.checkpoint and resume.folder is None and trainer.is_global_zero:
        log_dir = Path(trainer.logger.log_dir) if isinstance(trainer.logger, CSVLogger) else None
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            (log_dir / "resumed_from.txt").write_text(f"{Path(resume.checkpoint).resolve()}\n")
    try:
        trainer.fit(model, ckpt_path=resume.checkpoint, **data)
    except Exception as err:
        if not is_collective_timeout(err):
            raise
        # the rank that timed out has said which collective (CollectiveTimeoutReport)
        raise SystemExit(1) from None
    _wait_for_ranks(trainer, command)
    return trainer


def _wait_for_ranks(trainer: Trainer, command: str) -> None:
    """Waits for the further ranks that Lightning's ``ddp`` launcher started as processes of
    their own (it does not wait for them), so that the command ends with the whole run and
    no rank is left behind; exits 1 if one failed."""
    procs = getattr(getattr(trainer.strategy, "launcher", None), "procs", None) or []
    failed = [f"pid {p.pid} exit {code}" for p in procs
              if isinstance(p, subprocess.Popen) and (code := p.wait()) != 0]
    if failed:
        print(f"cvr-solo {command}: error: a rank failed ({', '.join(failed)})",
              file=sys.stderr, flush=True)
        raise SystemExit(1)


def summary_of(command: str, trainer: Trainer) -> str:
    """:func:`run_summary` for a fitted Trainer built by :func:`build_trainer`."""
    ckpt = next((c for c in trainer.callbacks if isinstance(c, Checkpointer)), None)
    last = getattr(ckpt, "last_ckpt", None)
    run_folder = getattr(ckpt, "path", None)
    metrics = None
    if isinstance(trainer.logger, CSVLogger):
        run_folder = run_folder or trainer.logger.log_dir
        metrics = Path(trainer.logger.log_dir) / "metrics.csv"
    elif trainer.logger is not None:
        metrics = f"wandb run {trainer.logger.version}"
    return run_summary(command, trainer, run_folder, last, metrics)
