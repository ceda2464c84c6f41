"""Checks of the Trainer-level keys of a composed config (``devices``, ``accelerator``,
``precision``, ``checkpoint.dir``, ``ddp_timeout_s``), run by :mod:`cvr_solo.config.validate`'s
validators before Lightning sees them: Lightning would otherwise stop with a traceback from
deep inside (its accelerator connector, precision parser, ``os.makedirs``) after the run has
started.
"""

from __future__ import annotations

import numbers
import tempfile
from pathlib import Path
from typing import Any, get_args

import torch

from cvr_solo.common.checks import check_number, fail
from cvr_solo.config.errors import ConfigError

__all__ = ["DDP_TIMEOUT_S", "check_accelerator", "check_checkpoint_dir", "check_ddp_timeout",
           "check_precision", "normalize_devices"]

#: Seconds a rank waits in a collective before the run stops (``ddp_timeout_s``; Lightning's
#: and torch's gloo default): far longer than a step, a validation or a checkpoint takes.
DDP_TIMEOUT_S = 1800


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


def check_accelerator(value: Any) -> None:
    """``accelerator=gpu`` (or ``cuda``) on a machine where torch sees no CUDA GPU: the slip
    of a config moved from a GPU machine, which Lightning reports with a traceback. A check
    of the machine, not of the config (the GPU configs validate anywhere): the launchers run
    it before they build anything."""
    if str(value) in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"accelerator={value}: torch sees no CUDA GPU on this machine; "
                          "use accelerator=cpu (devices=\"1\") or accelerator=auto here")


def check_checkpoint_dir(value: Any) -> None:
    """``checkpoint.dir`` is, or can become, a folder we can write to: no part of it is a
    regular file, and its nearest existing folder takes a new file (tried with an unnamed
    temporary file, which leaves nothing behind)."""
    if value is None:
        return
    path = Path(str(value)).expanduser().absolute()
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                raise ConfigError(f"checkpoint.dir={value}: {part} is a file, not a folder; "
                                  "give a folder path (it is created if missing)")
            try:
                with tempfile.TemporaryFile(dir=part):
                    pass
            except OSError as err:
                raise ConfigError(f"checkpoint.dir={value}: cannot write in {part} "
                                  f"({err.strerror or err}); give a folder you can write to"
                                  ) from None
            return


def check_ddp_timeout(value: Any) -> None:
    """``ddp_timeout_s``: seconds > 0 (absent: :data:`DDP_TIMEOUT_S`)."""
    if value is not None:
        check_number("ddp_timeout_s", value, low=0, inclusive=False, error=ConfigError)

