"""Composing a shipped (or any) Hydra config with overrides and checking it, without
solo-learn: what a command that starts several runs (``cvr-solo bench``) calls for every run
before the first one trains, so a misspelt key fails at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cvr_solo.common.checks import check_choice
from cvr_solo.config.errors import ConfigError
from cvr_solo.config.validate import validate_linear_cfg, validate_pretrain_cfg

__all__ = ["compose_and_validate"]

_VALIDATORS = {"pretrain": validate_pretrain_cfg, "linear": validate_linear_cfg}


def _as_list(overrides: Sequence[str] | Mapping[str, Any] | None) -> list[str]:
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [f"{k}={v}" for k, v in overrides.items()]
    if isinstance(overrides, str):
        raise TypeError("overrides must be a list of 'key=value' strings or a mapping, got a "
                        "string")
    return list(overrides)


def compose_and_validate(config_dir: str | Path, config_name: str,
                         overrides: Sequence[str] | Mapping[str, Any] | None = None,
                         kind: str = "pretrain") -> Any:
    """The config ``config_name`` of ``config_dir`` composed with ``overrides`` (Hydra's
    compose API, as ``cvr-solo pretrain``/``linear`` would), then checked by
    :func:`cvr_solo.config.validate.validate_pretrain_cfg` (or ``validate_linear_cfg``).

    Args:
        config_dir: the config folder (e.g. ``shipped_config_dir("pretrain", "cifar")``).
        config_name: a file name in it, with or without ``.yaml``.
        overrides: Hydra overrides, ``["method_kwargs.beta=0.5", ...]`` or
            ``{"method_kwargs.beta": 0.5}``.
        kind: ``pretrain`` or ``linear``.

    Returns:
        The composed DictConfig (struct mode off), unchanged by the checks.

    Raises:
        ConfigError: naming the key, when Hydra cannot apply an override (a key the config
            lacks, a bad value) or a value is out of range (a ``kapa_e`` for ``kappa_e``).
        FileNotFoundError: no such config folder or file.

    Example:
        >>> from cvr_solo.config.validate import shipped_config_dir
        >>> d = shipped_config_dir("pretrain", "fashion-mnist")
        >>> compose_and_validate(d, "c_byol", ["method_kwargs.beta=0.25"]).method_kwargs.beta
        0.25
        >>> compose_and_validate(d, "c_byol", ["++method_kwargs.kapa_e=5"])
        Traceback (most recent call last):
        ...
        cvr_solo.config.errors.ConfigError: method_kwargs.kapa_e is not a c_byol setting; ...
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    check_choice("kind", kind, tuple(_VALIDATORS))
    folder = Path(config_dir).resolve()
    name = config_name if config_name.endswith(".yaml") else config_name + ".yaml"
    if not (folder / name).is_file():
        raise FileNotFoundError(f"no config {name} in {folder}")
    over = _as_list(overrides)
    was_initialized = GlobalHydra.instance().is_initialized()
    saved = GlobalHydra.instance().hydra if was_initialized else None
    if was_initialized:  # inside a running Hydra app: compose in a fresh context
        GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(folder), version_base="1.2"):
            try:
                cfg = compose(config_name=name, overrides=over)
            except (HydraException, OmegaConfBaseException) as err:
                message = " ".join(str(err).split())
                raise ConfigError(f"{name} with overrides {over}: {message}") from None
    finally:
        if was_initialized:
            GlobalHydra.instance().initialize(saved)
    OmegaConf.set_struct(cfg, False)
    _VALIDATORS[kind](cfg)
    return cfg
