"""``cvr-solo pretrain --config-path DIR --config-name NAME [overrides]``.

The flow of solo-learn's main_pretrain.py, written on its building blocks: solo.args.pretrain
for the config, solo.data for the (torchvision or DALI) pipelines, the method from
solo.methods.METHODS (cvr-solo's C-variants registered), Checkpointer and AutoResumer.
Additions: clear config errors up front, custom-data validation at the data's own size,
resume matching on method_kwargs, a CSV log and throughput/memory metrics.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch import Callback, LightningDataModule, seed_everything
from omegaconf import DictConfig, OmegaConf

from cvr_solo.common.checks import check_choice
from cvr_solo.config.datacheck import check_data, check_images_on_read
from cvr_solo.config.errors import ConfigError
from cvr_solo.config.trainer import check_accelerator
from cvr_solo.config.validate import validate_pretrain_cfg
from cvr_solo.launch.collapse import collapse_callback
from cvr_solo.launch.devices import fit_loader_workers, parse_with_device_count
from cvr_solo.launch.entry import hydra_entry
from cvr_solo.launch.fast_views import faster_views
from cvr_solo.launch.loaders import classification_loaders, dali_module, picklable_with_index
from cvr_solo.launch.monitor import diagnostics_callback
from cvr_solo.launch.progress import step_file_from_env
from cvr_solo.launch.trainer import fit
from cvr_solo.solo.env import switch_off_unbuildable_knn
from cvr_solo.solo.registry import register


def _pretrain_loaders(cfg: DictConfig) -> tuple[Any, Any]:
    """solo-learn's pretraining loader (torchvision) and the validation loader (or None)."""
    from solo.data.pretrain_dataloader import (
        FullTransformPipeline,
        NCropAugmentation,
        build_transform_pipeline,
        prepare_dataloader,
        prepare_datasets,
    )

    val_loader = None
    if cfg.data.val_path is not None and not cfg.data.no_labels:
        aug = cfg.augmentations[0]
        from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

        _, val_loader = classification_loaders(
            cfg, aug.crop_size, aug.get("mean", IMAGENET_DEFAULT_MEAN),
            aug.get("std", IMAGENET_DEFAULT_STD))
    if cfg.data.format == "dali":
        return None, val_loader
    pipelines = [NCropAugmentation(build_transform_pipeline(cfg.data.dataset, aug),
                                   aug.num_crops) for aug in cfg.augmentations]
    train_ds = prepare_datasets(cfg.data.dataset, FullTransformPipeline(pipelines),
                                train_data_path=cfg.data.train_path,
                                data_format=cfg.data.format, no_labels=cfg.data.no_labels,
                                data_fraction=cfg.data.fraction)
    check_images_on_read(faster_views(train_ds), "data.train_path")
    train_loader = prepare_dataloader(picklable_with_index(train_ds),
                                      batch_size=cfg.optimizer.batch_size,
                                      num_workers=cfg.data.num_workers)
    return train_loader, val_loader


class PretrainData(LightningDataModule):
    """The torchvision pretraining data of ``cfg``, built in each process when Lightning asks.

    solo-learn's datasets are local classes that do not pickle, so loaders built up front
    cannot travel to ``ddp_spawn`` ranks; this module carries only the config.
    """

    def __init__(self, cfg: DictConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self._loaders: tuple[Any, Any] | None = None

    def _built(self) -> tuple[Any, Any]:
        if self._loaders is None:
            self._loaders = _pretrain_loaders(self.cfg)
        return self._loaders

    def train_dataloader(self) -> Any:
        return self._built()[0]

    def val_dataloader(self) -> Any:
        return self._built()[1] or []

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_loaders": None}


def _pretrain_data(cfg: DictConfig) -> dict[str, Any]:
    if cfg.data.format != "dali":
        return {"datamodule": PretrainData(cfg)}
    from solo.data.pretrain_dataloader import FullTransformPipeline, NCropAugmentation

    _, val_loader = _pretrain_loaders(cfg)
    dali = dali_module()
    pipelines = [NCropAugmentation(dali.build_transform_pipeline_dali(
        cfg.data.dataset, aug, dali_device=cfg.dali.device), aug.num_crops)
        for aug in cfg.augmentations]
    datamodule = dali.PretrainDALIDataModule(
        dataset=cfg.data.dataset, train_data_path=cfg.data.train_path,
        transforms=FullTransformPipeline(pipelines),
        num_large_crops=cfg.data.num_large_crops, num_small_crops=cfg.data.num_small_crops,
        num_workers=cfg.data.num_workers, batch_size=cfg.optimizer.batch_size,
        no_labels=cfg.data.no_labels, data_fraction=cfg.data.fraction,
        dali_device=cfg.dali.device,
        encode_indexes_into_labels=cfg.dali.encode_indexes_into_labels)
    datamodule.val_dataloader = lambda: val_loader
    return {"datamodule": datamodule}


def build_model(cfg: DictConfig) -> tuple[DictConfig, Any]:
    """Checks a composed pretrain config, completes it with solo-learn's parse_cfg and builds
    METHODS[cfg.method] (seeded, contiguous, channels-last unless disabled) as solo-learn's
    main_pretrain.py does; returns (parsed cfg, model). data.train_path must be a directory
    (parse_cfg counts its class folders)."""
    from solo.args.pretrain import parse_cfg
    from solo.methods import METHODS
    from solo.utils.misc import make_contiguous

    OmegaConf.set_struct(cfg, False)
    validate_pretrain_cfg(cfg)
    check_accelerator(cfg.get("accelerator"))
    register()
    check_choice("method", cfg.method, sorted(METHODS), ConfigError)
    check_data(cfg, "pretrain")
    cfg = parse_with_device_count(parse_cfg, cfg)
    switch_off_unbuildable_knn(cfg, "pretrain")
    seed_everything(cfg.seed)
    model = METHODS[cfg.method](cfg)
    make_contiguous(model)
    if not cfg.performance.disable_channel_last:
        model = model.to(memory_format=torch.channels_last)
    return cfg, model


def run(cfg: DictConfig, extra_callbacks: Sequence[Callback] = ()) -> Any:
    """Pretrains ``cfg.method`` as configured; returns the fitted Trainer."""
    cfg, model = build_model(cfg)
    fit_loader_workers(cfg, "pretrain")
    data = _pretrain_data(cfg)
    run_dir = os.path.join(cfg.checkpoint.dir, cfg.method)
    optional = (diagnostics_callback(cfg), collapse_callback(cfg))
    callbacks = [*extra_callbacks, *(c for c in optional if c is not None),
                 *step_file_from_env()]
    return fit(cfg, model, data, run_dir, callbacks, command="pretrain")


main = hydra_entry(run, "pretrain")
