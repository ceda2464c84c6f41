"""What the pretrain and linear launchers share: transforms, resume, logger, trainer."""

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
from typing import Any

import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.strategies.ddp import DDPStrategy
from omegaconf import DictConfig, OmegaConf
from solo.utils.auto_resumer import AutoResumer
from solo.utils.checkpointer import Checkpointer
from torchvision import transforms

from cvr_solo.launch.callbacks import ThroughputMonitor

#: Keys AutoResumer must also match before resuming a run of ours: solo-learn's list omits
#: method_kwargs, so a beta sweep under one name would resume from another beta's weights.
EXTRA_RESUME_KEYS = ("method_kwargs",)


def custom_classification_transforms(crop_size: int, mean: Sequence[float],
                                     std: Sequence[float]) -> tuple[Any, Any]:
    """Train/val transforms for solo-learn's ``custom`` dataset at the data's own size.

    solo-learn hard-codes ImageNet's 224 px crops and statistics for ``custom`` in its
    classification loaders (used for online and offline linear evaluation), which for
    32 px data costs ~50x the compute and mis-normalises. These use the config's crop size,
    mean and std; resize + centre crop are the identity on images already at that size.
    """
    norm = transforms.Normalize(mean=list(mean), std=list(std))
    train = transforms.Compose([
        transforms.RandomResizedCrop(crop_size, scale=(0.08, 1.0)),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        norm,
    ])
    val = transforms.Compose([
        transforms.Resize(crop_size),
        transforms.CenterCrop(crop_size),
        transforms.ToTensor(),
        norm,
    ])
    return train, val


def classification_loaders(cfg: DictConfig, crop_size: int, mean: Sequence[float],
                           std: Sequence[float]) -> tuple[Any, Any]:
    """solo-learn's classification loaders, with our transforms for ``custom`` data."""
    from solo.data import classification_dataloader as cd

    fmt = "image_folder" if cfg.data.format == "dali" else cfg.data.format
    if cfg.data.dataset != "custom":
        return cd.prepare_data(cfg.data.dataset, train_data_path=cfg.data.train_path,
                               val_data_path=cfg.data.val_path, data_format=fmt,
                               batch_size=cfg.optimizer.batch_size,
                               num_workers=cfg.data.num_workers,
                               auto_augment=bool(cfg.get("auto_augment", False)))
    t_train, t_val = custom_classification_transforms(crop_size, mean, std)
    train_ds, val_ds = cd.prepare_datasets("custom", t_train, t_val,
                                           train_data_path=cfg.data.train_path,
                                           val_data_path=cfg.data.val_path, data_format=fmt,
                                           data_fraction=cfg.data.get("fraction", -1.0))
    return cd.prepare_dataloaders(train_ds, val_ds, batch_size=cfg.optimizer.batch_size,
                                  num_workers=cfg.data.num_workers)


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


def find_resume_checkpoint(cfg: DictConfig, run_dir: str) -> tuple[str | None, str | None]:
    """(checkpoint, previous run id) to resume from: cfg.resume_from_checkpoint, else
    solo-learn's AutoResumer (also matching method_kwargs) when auto_resume is enabled."""
    if cfg.resume_from_checkpoint is not None:
        ckpt = str(cfg.resume_from_checkpoint)
        del cfg.resume_from_checkpoint
        if not Path(ckpt).is_file():
            raise FileNotFoundError(f"resume_from_checkpoint: no file {ckpt}")
        return ckpt, None
    if not cfg.auto_resume.enabled:
        return None, None
    with _resume_keys(EXTRA_RESUME_KEYS):
        found, run_id = AutoResumer(checkpoint_dir=run_dir,
                                    max_hours=cfg.auto_resume.max_hours).find_checkpoint(cfg)
    if found is None:
        return None, None
    ckpt = loadable_checkpoint(found)
    if ckpt is not None:
        print(f"Resuming from previous checkpoint that matches specifications: '{ckpt}'")
    return ckpt, run_id


def build_trainer(cfg: DictConfig, run_dir: str, run_id: str | None,
                  extra_callbacks: Sequence[Callback] = ()) -> Trainer:
    """A Trainer from cfg's Trainer keys, with solo-learn's Checkpointer, a logger (wandb if
    enabled, else Lightning's CSVLogger in the checkpoint directory) and ThroughputMonitor."""
    callbacks: list[Callback] = [ThroughputMonitor(), *extra_callbacks]
    if cfg.checkpoint.enabled:
        callbacks.append(Checkpointer(cfg, logdir=run_dir, frequency=cfg.checkpoint.frequency,
                                      keep_prev=cfg.checkpoint.keep_prev))
    if cfg.wandb.enabled:
        logger: Any = WandbLogger(name=cfg.name, project=cfg.wandb.project,
                                  entity=cfg.wandb.entity, offline=cfg.wandb.offline,
                                  resume="allow" if run_id else None, id=run_id)
        logger.log_hyperparams(OmegaConf.to_container(cfg))
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    else:
        # a fresh version per launch: the Checkpointer files its checkpoints under the
        # logger's version, and a resumed run appends a new metrics.csv beside the old one
        version = f"run-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        parent = Path(run_dir)
        logger = CSVLogger(save_dir=str(parent.parent), name=parent.name, version=version)
    container = OmegaConf.to_container(cfg)
    valid = inspect.signature(Trainer.__init__).parameters
    kwargs = {k: container[k] for k in valid if k in container}
    strategy = cfg.get("strategy") or "auto"
    kwargs.update(logger=logger, callbacks=callbacks, enable_checkpointing=False,
                  strategy=DDPStrategy(find_unused_parameters=False) if strategy == "ddp"
                  else strategy)
    return Trainer(**kwargs)


def fit(cfg: DictConfig, model: Any, data: dict[str, Any], run_dir: str,
        extra_callbacks: Sequence[Callback] = ()) -> Trainer:
    """Resume if a matching checkpoint exists, build the Trainer, fit; returns the Trainer."""
    ckpt_path, run_id = find_resume_checkpoint(cfg, run_dir)
    trainer = build_trainer(cfg, run_dir, run_id, extra_callbacks)
    trainer.fit(model, ckpt_path=ckpt_path, **data)
    return trainer


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
