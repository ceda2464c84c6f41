"""Configuration checks for cvr-solo's methods and the pretrain/linear configs it ships.

No solo-learn import: the same checks run in solo-learn's ``add_and_assert_specific_cfg``
(through the method classes) and, without solo-learn, on the shipped Hydra configs. Every
failure is a :class:`ConfigError` naming the key, the value and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from cvr_solo.ceb.losses import B_VIEWS
from cvr_solo.ceb.schedules import BETA_SCHEDULES
from cvr_solo.common.catalog import METHODS
from cvr_solo.common.checks import check_bool, check_choice, check_number
from cvr_solo.config.errors import ConfigError
from cvr_solo.config.trainer import (
    check_checkpoint_dir,
    check_ddp_timeout,
    check_precision,
    normalize_devices,
)

__all__ = [
    "CEB_DEFAULTS",
    "ConfigError",
    "ceb_method_kwargs",
    "check_backbone",
    "check_two_crops",
    "shipped_config_dir",
    "validate_linear_cfg",
    "validate_pretrain_cfg",
]


#: :mod:`cvr_solo.common.checks` raising ConfigError.
_number = partial(check_number, error=ConfigError)
_choice = partial(check_choice, error=ConfigError)
_bool = partial(check_bool, error=ConfigError)


#: CEB settings of the compressed variants (Lee et al. 2021). C-SimCLR: the published
#: kappa_e = 1024, kappa_b = 10, beta = 1, with beta held below the batch's shrink threshold
#: (beta_guard = 0.5; null is the release: docs/c-simclr-stability.md). C-BYOL: the published
#: kappa_e = 16384, kappa_b = 10 and the public release's pairing (b_view="same"), at
#: solo-learn's BYOL scale w = 1 with beta = 0.5 (docs/c-byol-scale.md). Beyond the paper
#: (docs/faithfulness.md#beyond-the-paper): C-MoCo v3 takes C-SimCLR's (kappa_b =
#: 1/temperature), C-SimSiam C-BYOL's at SimSiam's loss scale (its loss is C-BYOL's at
#: w = 1/4) with beta = 0.0125, a tenth of the 1/8 that keeps the published beta / w = 1/2,
#: which collapsed SimSiam at the cpu budget (docs/benchmarks.md), and a backward encoder as
#: wide as SimSiam's predictor (512).
_CONTRASTIVE = {"kappa_e": 1024.0, "kappa_b": 10.0, "beta": 1.0, "beta_schedule": "constant",
                "beta_warmup_epochs": 0, "beta_guard": 0.5}
_REGRESSION = {"kappa_e": 16384.0, "kappa_b": 10.0, "beta_schedule": "constant",
               "beta_warmup_epochs": 0, "b_view": "same"}
CEB_DEFAULTS: dict[str, dict[str, Any]] = {
    "c_simclr": {**_CONTRASTIVE, "lipschitz_diagnostic": True},
    "c_byol": {**_REGRESSION, "beta": 0.5, "w": 1.0, "b_hidden_dim": 4096},
    "c_mocov3": dict(_CONTRASTIVE),
    "c_simsiam": {**_REGRESSION, "beta": 0.0125, "b_hidden_dim": 512},
}

DATASETS = ("cifar10", "cifar100", "stl10", "imagenet", "imagenet100", "custom")
DATA_FORMATS = ("image_folder", "dali", "h5")
DALI_DATASETS = ("imagenet100", "imagenet", "custom")
OPTIMIZERS = ("sgd", "lars", "adam", "adamw")
SCHEDULERS = ("reduce", "warmup_cosine", "step", "exponential", "none")
_MISSING = object()


def _get(cfg: Any, key: str, default: Any = _MISSING) -> Any:
    """cfg["a.b.c"] for nested mappings (DictConfig included); ConfigError if missing."""
    node = cfg
    for part in key.split("."):
        if isinstance(node, Mapping) and part in node and node[part] != "???":
            node = node[part]
        elif default is not _MISSING:
            return default
        else:
            raise ConfigError(f"{key} is missing")
    return node


def _check_base_kwargs(method: str, mk: Mapping) -> None:
    for key in METHODS[method].base_kwargs:
        if key in ("lamb", "scale_loss") and key not in mk:
            continue  # solo-learn fills Barlow Twins' defaults itself
        value = _get(mk, key) if key in mk else None
        full = f"method_kwargs.{key}"
        if value is None:
            if key == "temperature" and METHODS[method].family == "contrastive":
                continue  # derived from kappa_b
            raise ConfigError(f"{full} is missing (needed by {method})")
        if key == "temperature" or key in ("lamb", "scale_loss"):
            _number(full, value, low=0, inclusive=False)
        else:
            _number(full, value, low=2 if key == "proj_output_dim" else 1, integer=True)


def ceb_method_kwargs(method: str, method_kwargs: Mapping | None,
                      max_epochs: int | None = None) -> dict[str, Any]:
    """``method_kwargs`` of a compressed variant completed with :data:`CEB_DEFAULTS` and checked.

    The contrastive ones (C-SimCLR, C-MoCo v3): kappa_b plays 1/temperature; give either (the
    other is derived) or both equal.
    Unknown keys are rejected (a misspelt ``kapa_e`` must not silently fall back).
    """
    _choice("method", method, tuple(CEB_DEFAULTS))
    mk = dict(method_kwargs or {})
    allowed = set(METHODS[method].base_kwargs) | set(CEB_DEFAULTS[method])
    for key in mk:
        if key not in allowed:
            raise ConfigError(f"method_kwargs.{key} is not a {method} setting; allowed: "
                              f"{', '.join(sorted(allowed))}")
    contrastive = METHODS[method].family == "contrastive"
    if contrastive:
        kb, temp = mk.get("kappa_b"), mk.get("temperature")
        if kb is None and temp is not None:
            mk["kappa_b"] = 1.0 / _number("method_kwargs.temperature", temp, low=0,
                                          inclusive=False)
        elif kb is not None and temp is not None:
            kb = _number("method_kwargs.kappa_b", kb, low=0, inclusive=False)
            temp = _number("method_kwargs.temperature", temp, low=0, inclusive=False)
            if not math.isclose(kb * temp, 1.0, rel_tol=1e-6):
                raise ConfigError(f"method_kwargs.kappa_b ({kb:g}) and method_kwargs.temperature "
                                  f"({temp:g}) disagree: in {method} kappa_b is 1/temperature; "
                                  "set one of them")
    out = {**CEB_DEFAULTS[method], **mk}
    _check_base_kwargs(method, out)
    out["kappa_e"] = _number("method_kwargs.kappa_e", out["kappa_e"], low=0, inclusive=False)
    out["kappa_b"] = _number("method_kwargs.kappa_b", out["kappa_b"], low=0, inclusive=False)
    out["beta"] = _number("method_kwargs.beta", out["beta"], low=0)
    _choice("method_kwargs.beta_schedule", out["beta_schedule"], BETA_SCHEDULES)
    out["beta_warmup_epochs"] = _number("method_kwargs.beta_warmup_epochs",
                                        out["beta_warmup_epochs"], low=0, high=max_epochs)
    if out["beta_schedule"] == "warmup" and out["beta_warmup_epochs"] == 0:
        raise ConfigError("method_kwargs.beta_warmup_epochs must be > 0 with "
                          "beta_schedule='warmup', got 0")
    if contrastive:
        out["temperature"] = 1.0 / out["kappa_b"]
        if out["beta_guard"] is not None:
            out["beta_guard"] = _number("method_kwargs.beta_guard", out["beta_guard"], low=0,
                                        inclusive=False, high=1)
        if "lipschitz_diagnostic" in out:
            _bool("method_kwargs.lipschitz_diagnostic", out["lipschitz_diagnostic"])
    else:
        if "w" in out:
            out["w"] = _number("method_kwargs.w", out["w"], low=0, inclusive=False)
        _choice("method_kwargs.b_view", out["b_view"], B_VIEWS)
        out["b_hidden_dim"] = _number("method_kwargs.b_hidden_dim", out["b_hidden_dim"], low=1,
                                      integer=True)
    return out


def _check_common(cfg: Any) -> None:
    dataset = _choice("data.dataset", _get(cfg, "data.dataset"), DATASETS)
    fmt = _choice("data.format", _get(cfg, "data.format", "image_folder"), DATA_FORMATS)
    if fmt == "dali" and dataset not in DALI_DATASETS:
        raise ConfigError(f"data.format='dali' needs data.dataset in {', '.join(DALI_DATASETS)}"
                          f", got {dataset!r}")
    _get(cfg, "data.train_path")
    _number("data.num_workers", _get(cfg, "data.num_workers", 4), low=0, integer=True)
    _choice("optimizer.name", _get(cfg, "optimizer.name"), OPTIMIZERS)
    _number("optimizer.batch_size", _get(cfg, "optimizer.batch_size"), low=1, integer=True)
    _number("optimizer.lr", _get(cfg, "optimizer.lr"), low=0, inclusive=False)
    _number("optimizer.weight_decay", _get(cfg, "optimizer.weight_decay"), low=0)
    _choice("scheduler.name", _get(cfg, "scheduler.name"), SCHEDULERS)
    _number("max_epochs", _get(cfg, "max_epochs"), low=1, integer=True)
    accel, devices = _get(cfg, "accelerator", "auto"), _get(cfg, "devices", "auto")
    if accel == "cpu" and not (isinstance(devices, str) and devices.isdigit()
                               and int(devices) >= 1):
        raise ConfigError(f"devices must be a number (e.g. 1) with accelerator=cpu, got "
                          f"{devices!r}: Lightning's CPU accelerator rejects device lists")
    check_precision(_get(cfg, "precision", None))
    check_checkpoint_dir(_get(cfg, "checkpoint.dir", None))
    check_ddp_timeout(_get(cfg, "ddp_timeout_s", None))


#: solo-learn gives ResNets the small-image stem by itself for these data sets only.
SMALL_STEM_DATASETS = ("cifar10", "cifar100")


def check_backbone(cfg: Any) -> None:
    """backbone.name is set; ``backbone.kwargs.small_stem``, if given, is a bool on a ResNet.

    ``small_stem: true`` swaps the ResNet's ImageNet stem (7x7 stride-2 conv + max-pool) for
    the small-image one solo-learn uses on CIFAR (3x3 stride-1 conv, no max-pool), for any
    data set (see :mod:`cvr_solo.solo.stem`).
    """
    name = _get(cfg, "backbone.name")
    stem = _get(cfg, "backbone.kwargs.small_stem", None)
    if stem is None:
        return
    _bool("backbone.kwargs.small_stem", stem)
    if stem and not str(name).startswith("resnet"):
        raise ConfigError(f"backbone.kwargs.small_stem=true needs a ResNet backbone (resnet18, "
                          f"resnet50), got backbone.name={name!r}")
    dataset = _get(cfg, "data.dataset", None)
    if not stem and dataset in SMALL_STEM_DATASETS:
        raise ConfigError(f"backbone.kwargs.small_stem=false cannot apply to data.dataset="
                          f"{dataset!r}: solo-learn always gives ResNets the small-image stem "
                          "there; remove the key")


def check_two_crops(method: str, augmentations: Any) -> None:
    """The rule for solo-learn's two-view methods (SimCLR, BYOL, Barlow Twins and their
    C-variants as shipped): exactly two crops of one size, summed over the pipelines.

    Raises:
        ConfigError: naming the pipelines' crop sizes when the rule does not hold.
    """
    if (not isinstance(augmentations, Sequence) or isinstance(augmentations, str)
            or not augmentations):
        raise ConfigError("augmentations must be a non-empty list of pipelines, got "
                          f"{augmentations!r}")
    crops = []
    for i, aug in enumerate(augmentations):
        size = _number(f"augmentations[{i}].crop_size", _get(aug, "crop_size"), low=1,
                       integer=True)
        n = _number(f"augmentations[{i}].num_crops", _get(aug, "num_crops"), low=1,
                    integer=True)
        crops += [size] * n
    if method in METHODS and (len(crops) != 2 or crops[0] != crops[1]):
        raise ConfigError(f"{method} needs exactly 2 crops of one size (num_crops summed over "
                          f"augmentations), got sizes {crops}")


def validate_pretrain_cfg(cfg: Any) -> None:
    """Checks a composed pretrain config (DictConfig or dict) before solo-learn sees it;
    an integer ``devices`` is put in solo-learn's form
    (:func:`cvr_solo.config.trainer.normalize_devices`)."""
    normalize_devices(cfg)
    method = _get(cfg, "method")
    if not isinstance(method, str) or not method:
        raise ConfigError(f"method must be a method name, got {method!r}")
    _check_common(cfg)
    check_backbone(cfg)
    check_two_crops(method, _get(cfg, "augmentations"))
    if method in CEB_DEFAULTS:
        ceb_method_kwargs(method, _get(cfg, "method_kwargs", {}), _get(cfg, "max_epochs"))
    elif method in METHODS:
        _check_base_kwargs(method, _get(cfg, "method_kwargs", {}))
    if METHODS.get(method) is not None and METHODS[method].momentum:
        for key in ("momentum.base_tau", "momentum.final_tau"):
            _number(key, _get(cfg, key, 0.99), low=0, high=1)
    _check_diagnostics(cfg)
    _check_collapse_warning(cfg)


def _check_collapse_warning(cfg: Any) -> None:
    """The optional ``collapse_warning`` block (cvr_solo.launch.collapse.collapse_callback):
    enabled (default true), patience (logged steps), threshold (std of z/|z|); an absent or
    null value leaves CollapseMonitor's default."""
    _bool("collapse_warning.enabled", _get(cfg, "collapse_warning.enabled", True))
    patience = _get(cfg, "collapse_warning.patience", None)
    if patience is not None:
        _number("collapse_warning.patience", patience, low=1, integer=True)
    threshold = _get(cfg, "collapse_warning.threshold", None)
    if threshold is not None:
        _number("collapse_warning.threshold", threshold, low=0, inclusive=False)


def _check_diagnostics(cfg: Any) -> None:
    """The optional ``diagnostics`` block (cvr_solo.launch.monitor)."""
    if not _get(cfg, "diagnostics.enabled", False):
        return
    _number("diagnostics.every_n_steps", _get(cfg, "diagnostics.every_n_steps", 50), low=1,
            integer=True)
    _number("diagnostics.num_images", _get(cfg, "diagnostics.num_images", 256), low=2,
            integer=True)
    _number("diagnostics.seed", _get(cfg, "diagnostics.seed", 0), low=0, integer=True)


def validate_linear_cfg(cfg: Any) -> None:
    """Checks a composed linear-evaluation config before solo-learn sees it; an integer
    ``devices`` is put in solo-learn's form (:func:`cvr_solo.config.trainer.normalize_devices`)."""
    normalize_devices(cfg)
    _check_common(cfg)
    check_backbone(cfg)
    _get(cfg, "data.val_path")
    _get(cfg, "pretrained_feature_extractor")


def shipped_config_dir(kind: str, dataset: str) -> Path:
    """scripts/<kind>/<dataset> as shipped: inside an installed wheel (cvr_solo/_scripts) or
    in the source checkout an editable install points at."""
    package = Path(__file__).resolve().parents[1]  # cvr_solo/
    for root in (package / "_scripts", package.parent / "scripts"):
        if (root / kind / dataset).is_dir():
            return root / kind / dataset
    raise FileNotFoundError(f"no shipped configs scripts/{kind}/{dataset}; pass --config-path")
