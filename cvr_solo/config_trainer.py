"""Checks of the Trainer-level keys of a composed config (``devices``, ``precision``,
``checkpoint.dir``), run by :mod:`cvr_solo.config`'s validators before Lightning sees them:
Lightning would otherwise stop with a traceback from deep inside (its precision parser,
``os.makedirs``) after the run has started.
"""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any, get_args

import torch

from cvr_solo.checks import fail
from cvr_solo.config import ConfigError

__all__ = ["check_checkpoint_dir", "check_precision", "normalize_devices"]


def normalize_devices(cfg: Any) -> None:
    """``devices=2`` (Hydra types it as an int; Lightning takes it) in the form solo-learn
    needs, in place: solo-learn scales the lr by ``len(devices)``, so on a GPU the count
    becomes the list of the first n indices (what Lightning picks for n) and on the CPU the
    string Lightning's CPU accelerator takes."""
    devices = cfg.get("devices")
    if isinstance(devices, bool) or not isinstance(devices, numbers.Integral):
        return
    if devices < 1:
        fail("devices", ">= 1, a list of device indices or 'auto'", devices, ConfigError)
    accel = cfg.get("accelerator", "auto")
    on_cpu = accel == "cpu" or (accel == "auto" and not torch.cuda.is_available())
    cfg["devices"] = str(devices) if on_cpu else list(range(int(devices)))


def check_precision(value: Any) -> None:
    """``precision`` is one Lightning's Trainer takes (its own list, where it has one)."""
    if value is None:
        return
    try:
        from lightning.fabric.connector import _PRECISION_INPUT
    except ImportError:  # another Lightning layout: Lightning checks it itself
        return
    allowed = [a for literal in get_args(_PRECISION_INPUT) for a in get_args(literal)]
    if isinstance(value, bool) or value not in allowed:
        names = dict.fromkeys(map(str, allowed))
        fail("precision", f"one of {', '.join(names)}", value, ConfigError)


def check_checkpoint_dir(value: Any) -> None:
    """``checkpoint.dir`` is, or can become, a folder: no part of it is a regular file."""
    if value is None:
        return
    path = Path(str(value)).expanduser().absolute()
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                raise ConfigError(f"checkpoint.dir={value}: {part} is a file, not a folder; "
                                  "give a folder path (it is created if missing)")
            return

