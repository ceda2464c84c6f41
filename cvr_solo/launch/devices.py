"""What a launch asks of the machine, read in one place: the number of devices (solo-learn's
lr scaling, :func:`parse_with_device_count`, and the CPU ``sync_batchnorm`` switch,
:func:`cvr_solo.launch.trainer.sync_batchnorm`, both use :func:`device_count`) and the loader
workers the machine can run (:func:`fit_loader_workers`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

__all__ = ["available_cpus", "device_count", "fit_loader_workers", "parse_with_device_count"]


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, as torch's DataLoader counts them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def fit_loader_workers(cfg: DictConfig, command: str) -> None:
    """Lowers ``data.num_workers`` to :func:`available_cpus` where it asks for more, in place,
    saying so once (global rank 0).

    The shipped configs ask for 4 loader workers, solo-learn's choice for GPU machines; above
    the CPUs the process may use, torch warns (twice, for the two loaders) that loading may be
    slow or freeze, and the extra workers only compete for the same cores.
    """
    asked = cfg.data.get("num_workers")
    cpus = available_cpus()
    if not isinstance(asked, int) or asked <= cpus:
        return
    cfg.data.num_workers = cpus
    if rank_zero_only.rank == 0:
        print(f"cvr-solo {command}: data.num_workers={asked} lowered to {cpus}, the CPUs this "
              "machine gives the run", flush=True)


def device_count(devices: Any) -> int | None:
    """Devices per node that ``devices`` names: a count (``2`` or ``"2"``, the form Lightning's
    CPU accelerator takes) or a list's length; None for Lightning's other forms (``"auto"``,
    ``-1``, ``"0,1"``)."""
    if str(devices).isdigit():
        return int(str(devices))
    if devices is None or isinstance(devices, (str, int)):
        return None
    return len(devices)


def parse_with_device_count(parse_cfg: Callable[[DictConfig], DictConfig],
                            cfg: DictConfig) -> DictConfig:
    """solo-learn's ``parse_cfg`` with the lr scaled by the number of devices.

    solo-learn scales the lr (and classifier_lr) by batch_size x len(devices) x num_nodes /
    256, meant for a device list; for a device count such as ``"2"`` len() is the number of
    digits, so two processes at batch B would train with the lr of one. parse_cfg sees
    :func:`device_count` devices (it reads only their number), then cfg.devices is restored.
    """
    devices = cfg.get("devices")
    count = device_count(devices)
    if count is None:
        return parse_cfg(cfg)
    cfg.devices = list(range(count))
    try:
        cfg = parse_cfg(cfg)
    finally:
        cfg.devices = devices
    return cfg
