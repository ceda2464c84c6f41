"""``cvr-solo linear --config-path DIR --config-name NAME [overrides]``.

Offline linear evaluation of a frozen backbone, the flow of solo-learn's main_linear.py on its
building blocks (solo.args.linear, LinearModel, its loaders incl. DALI, Checkpointer,
AutoResumer). Additions: clear config errors, the data's own crop size and statistics for
``custom`` data, and a checked load of the backbone (solo-learn loads with strict=False and
would silently train a probe on random weights given a wrong checkpoint).
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from lightning.pytorch import Callback, seed_everything
from omegaconf import DictConfig, OmegaConf

from cvr_solo.config.datacheck import check_data
from cvr_solo.config.errors import ConfigError
from cvr_solo.config.trainer import check_accelerator
from cvr_solo.config.validate import SMALL_STEM_DATASETS, validate_linear_cfg
from cvr_solo.launch.devices import fit_loader_workers, parse_with_device_count
from cvr_solo.launch.entry import hydra_entry
from cvr_solo.launch.loaders import classification_loaders, dali_module
from cvr_solo.launch.trainer import fit


def load_backbone(cfg: DictConfig) -> nn.Module:
    """:func:`load_pretrained_backbone` of a linear config: cfg.backbone (name, kwargs),
    cfg.pretrain_method, cfg.data.dataset and the checkpoint cfg.pretrained_feature_extractor.
    """
    return load_pretrained_backbone(
        cfg.pretrained_feature_extractor, cfg.backbone.name,
        dict(cfg.backbone.get("kwargs") or {}), cfg.pretrain_method, cfg.data.dataset)


def load_pretrained_backbone(checkpoint: str | os.PathLike, name: str, kwargs: dict[str, Any],
                             method: str, dataset: str) -> nn.Module:
    """solo-learn's backbone ``name`` (``kwargs``) with the ``backbone.*`` weights of
    ``checkpoint``; every backbone tensor must be in the checkpoint.

    A ResNet gets the stem the checkpoint was trained with (read off its conv1): when
    ``kwargs["small_stem"]`` is unset it follows the checkpoint, when set it must agree.

    Args:
        checkpoint: a ``cvr-solo pretrain`` (solo-learn) checkpoint.
        name: the backbone, a key of solo-learn's ``BaseMethod._BACKBONES``.
        kwargs: its keyword arguments (``backbone.kwargs``).
        method: the pretraining method (solo-learn builds some backbones per method).
        dataset: ``data.dataset`` (CIFAR gets solo-learn's small stem).

    Returns:
        The backbone, classifier removed, in training mode.

    Raises:
        FileNotFoundError: if there is no file ``checkpoint``.
        ConfigError: naming ``pretrained_feature_extractor`` or ``backbone.kwargs.small_stem``
            when the checkpoint cannot be read or does not fit.
    """
    from solo.methods.base import BaseMethod

    from cvr_solo.solo.registry import register
    from cvr_solo.solo.stem import checkpoint_has_small_stem, use_small_stem

    register()  # solo-learn's ResNets take backbone.kwargs.small_stem
    path = str(checkpoint)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pretrained_feature_extractor: no file {path}")
    state = _read_checkpoint(path)
    weights = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    if not weights:
        raise ConfigError(f"pretrained_feature_extractor: {path} has no backbone.* weights")
    kwargs = dict(kwargs)
    is_resnet = name.startswith("resnet")
    cifar = dataset in SMALL_STEM_DATASETS
    trained_small = checkpoint_has_small_stem(weights, prefix="")
    if is_resnet and not cifar and trained_small is not None:
        asked = kwargs.get("small_stem")
        if asked is not None and bool(asked) != trained_small:
            raise ConfigError(
                f"backbone.kwargs.small_stem={asked} does not fit pretrained_feature_extractor "
                f"{path}: it was trained with the {_stem_name(trained_small)} stem; set "
                f"backbone.kwargs.small_stem={str(trained_small).lower()} or leave it unset")
        kwargs["small_stem"] = trained_small
    backbone = BaseMethod._BACKBONES[name](method=method, **kwargs)
    if is_resnet:
        backbone.fc = nn.Identity()
        if cifar:
            use_small_stem(backbone)  # what solo-learn builds for CIFAR
    result = backbone.load_state_dict(weights, strict=False)
    if result.missing_keys:
        raise ConfigError(f"pretrained_feature_extractor: {path} does not fit backbone "
                          f"{name} (data.dataset={dataset}); missing "
                          f"{len(result.missing_keys)} tensors, e.g. {result.missing_keys[:3]}")
    return backbone


def _read_checkpoint(path: str) -> dict[str, torch.Tensor]:
    """The state_dict of checkpoint ``path``; a ConfigError naming the key when the file is
    no (complete) checkpoint, instead of torch's zip-reader traceback."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"pretrained_feature_extractor={path} cannot be read as a checkpoint "
                          f"({reason}); it may be truncated (an interrupted copy or run): give "
                          "a complete .ckpt, e.g. the last one of the pretraining run folder"
                          ) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ConfigError(f"pretrained_feature_extractor={path} is not a Lightning checkpoint "
                          "(no state_dict): give the .ckpt of a pretraining run")
    return ckpt["state_dict"]


def check_pretrain_method(cfg: DictConfig) -> None:
    """``pretrain_method`` agrees with the method that wrote the checkpoint, as recorded in
    the ``args.json`` solo-learn's Checkpointer saves beside it; unset, it is taken from
    there with one line saying so. Without an args.json there is nothing to compare."""
    args = Path(str(cfg.pretrained_feature_extractor)).parent / "args.json"
    try:
        trained = json.loads(args.read_text()).get("method")
    except (OSError, ValueError, AttributeError):
        return
    if not isinstance(trained, str):
        return
    given = cfg.get("pretrain_method")
    if given is None:
        cfg.pretrain_method = trained
        print(f"cvr-solo linear: pretrain_method={trained} (from {args})", file=sys.stderr,
              flush=True)
    elif given != trained:
        raise ConfigError(f"pretrain_method={given} does not fit pretrained_feature_extractor="
                          f"{cfg.pretrained_feature_extractor}: {args} says it was trained with "
                          f"method {trained!r}; set pretrain_method={trained} (or leave it out)")


def _stem_name(small: bool) -> str:
    return ("small-image (3x3 stride-1 conv1, no max-pool)" if small
            else "ImageNet (7x7 stride-2 conv1 + max-pool)")


def run(cfg: DictConfig, extra_callbacks: Sequence[Callback] = ()) -> Any:
    """Trains a linear probe on the frozen backbone; returns the fitted Trainer."""
    from solo.args.linear import parse_cfg
    from solo.methods.linear import LinearModel
    from solo.utils.misc import make_contiguous

    OmegaConf.set_struct(cfg, False)
    validate_linear_cfg(cfg)
    check_accelerator(cfg.get("accelerator"))
    check_data(cfg, "linear")
    check_pretrain_method(cfg)
    cfg = parse_with_device_count(parse_cfg, cfg)
    seed_everything(cfg.seed)
    backbone = load_backbone(cfg)
    mixup_func = None
    if cfg.mixup > 0 or cfg.cutmix > 0:
        from timm.data.mixup import Mixup
        from timm.loss import SoftTargetCrossEntropy

        mixup_func = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=1.0,
                           switch_prob=0.5, mode="batch", label_smoothing=cfg.label_smoothing,
                           num_classes=cfg.data.num_classes)
        loss_func: nn.Module = SoftTargetCrossEntropy()
    elif cfg.label_smoothing > 0:
        from timm.loss import LabelSmoothingCrossEntropy

        loss_func = LabelSmoothingCrossEntropy(smoothing=cfg.label_smoothing)
    else:
        loss_func = nn.CrossEntropyLoss()
    model = LinearModel(backbone, loss_func=loss_func, mixup_func=mixup_func, cfg=cfg)
    make_contiguous(model)
    if not cfg.performance.disable_channel_last:
        model = model.to(memory_format=torch.channels_last)
    aug = cfg.data.augmentations
    fit_loader_workers(cfg, "linear")
    train_loader, val_loader = classification_loaders(cfg, aug.crop_size, aug.mean, aug.std)
    data: dict[str, Any] = {"train_dataloaders": train_loader, "val_dataloaders": val_loader}
    if cfg.data.format == "dali":
        dm = dali_module().ClassificationDALIDataModule(
            dataset=cfg.data.dataset, train_data_path=cfg.data.train_path,
            val_data_path=cfg.data.val_path, num_workers=cfg.data.num_workers,
            batch_size=cfg.optimizer.batch_size, data_fraction=cfg.data.fraction,
            dali_device=cfg.dali.device)
        dm.val_dataloader = lambda: val_loader
        data = {"datamodule": dm}
    run_dir = os.path.join(cfg.checkpoint.dir, "linear")
    return fit(cfg, model, data, run_dir, extra_callbacks, command="linear")


main = hydra_entry(run, "linear")
