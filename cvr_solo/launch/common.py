"""What the pretrain and linear launchers share: transforms, resume, logger, trainer, the
closing summary."""

from __future__ import annotations

import contextlib
import inspect
import os
import secrets
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.strategies.ddp import DDPStrategy
from omegaconf import DictConfig, OmegaConf
from solo.utils.auto_resumer import AutoResumer
from solo.utils.checkpointer import Checkpointer

from cvr_solo.launch.callbacks import ThroughputMonitor
from cvr_solo.launch.csv_log import RunCSVLogger
from cvr_solo.launch.progress import MethodProgressBar, run_summary

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


def switch_off_unbuildable_knn(cfg: DictConfig, command: str) -> str | None:
    """Turns ``knn_eval.enabled`` off, with one line on stderr, where solo-learn's online kNN
    metric cannot be built (torchmetrics >= 0.12, e.g. the current Lightning stack); building
    the method would otherwise end in torchmetrics' ``compute_on_step`` error.

    Args:
        cfg: the parsed pretrain config (solo-learn's ``parse_cfg`` fills ``knn_eval``).
        command: the command named in the message.

    Returns:
        The line printed, or None when nothing was changed.
    """
    if not cfg.get("knn_eval") or not cfg.knn_eval.get("enabled"):
        return None
    from cvr_solo.solo_env import online_knn_problem

    problem = online_knn_problem()
    if problem is None:
        return None
    cfg.knn_eval.enabled = False
    line = (f"cvr-solo {command}: knn_eval.enabled=True switched off: {problem}; "
            "the run goes on without online kNN")
    print(line, file=sys.stderr, flush=True)
    return line


def dali_module() -> Any:
    """solo-learn's DALI data module (solo.data.dali_dataloader), or a ConfigError saying how
    to install DALI."""
    from cvr_solo.config import ConfigError

    try:
        from solo.data import dali_dataloader
    except ImportError as err:
        raise ConfigError("data.format='dali' needs NVIDIA DALI: pip install "
                          f"'cvr-solo[dali]' (nvidia-dali-cuda120); import failed: {err}"
                          ) from None
    return dali_dataloader


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

    def on_train_start(self, trainer: Trainer, pl_module: Any) -> None:
        super().on_train_start(trainer, pl_module)
        if self.resumed_from and Path(self.resumed_from).resolve().parent == Path(
                self.path).resolve():
            self.last_ckpt = Path(self.resumed_from)


def build_trainer(cfg: DictConfig, run_dir: str, resume: ResumePoint,
                  extra_callbacks: Sequence[Callback] = ()) -> Trainer:
    """A Trainer from cfg's Trainer keys, with solo-learn's Checkpointer, a logger (wandb if
    enabled, else :class:`RunCSVLogger` in the run folder), ThroughputMonitor and, when the
    progress bar is on, :class:`MethodProgressBar`."""
    callbacks: list[Callback] = [ThroughputMonitor(), *extra_callbacks]
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
    strategy = cfg.get("strategy") or "auto"
    kwargs.update(logger=logger, callbacks=callbacks, enable_checkpointing=False,
                  strategy=DDPStrategy(find_unused_parameters=False) if strategy == "ddp"
                  else strategy)
    return Trainer(**kwargs)


def _say(command: str, message: str) -> None:
    print(f"cvr-solo {command}: {message}", flush=True)


def fit(cfg: DictConfig, model: Any, data: dict[str, Any], run_dir: str,
        extra_callbacks: Sequence[Callback] = (), command: str = "pretrain") -> Trainer | None:
    """Resume if a matching checkpoint exists, build the Trainer, fit, print the summary.

    Returns:
        The fitted Trainer, or None when the matching run was already finished (it says so
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
    trainer = build_trainer(cfg, run_dir, resume, extra_callbacks)
    if resume.checkpoint and resume.folder is None and trainer.is_global_zero:
        log_dir = Path(trainer.logger.log_dir) if isinstance(trainer.logger, CSVLogger) else None
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            (log_dir / "resumed_from.txt").write_text(f"{Path(resume.checkpoint).resolve()}\n")
    trainer.fit(model, ckpt_path=resume.checkpoint, **data)
    if trainer.is_global_zero:
        print(summary_of(command, trainer), flush=True)
    return trainer


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


def hydra_entry(run: Callable[[DictConfig], Any], command: str) -> Callable[[], None]:
    """The Hydra main of ``cvr-solo <command>``: config errors end the process with one
    line on stderr and exit code 2, not a traceback."""
    import hydra

    from cvr_solo.config import ConfigError

    @hydra.main(version_base="1.2", config_path=None)
    def main(cfg: DictConfig) -> None:
        try:
            run(cfg)
        except (ConfigError, FileNotFoundError) as err:
            print(f"cvr-solo {command}: error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    return main
