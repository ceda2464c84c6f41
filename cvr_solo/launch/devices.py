"""The number of devices a launch asks for, read in one place: solo-learn's lr scaling
(:func:`parse_with_device_count`) and the CPU ``sync_batchnorm`` switch
(:func:`cvr_solo.launch.trainer.sync_batchnorm`) both use :func:`device_count`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

__all__ = ["device_count", "parse_with_device_count"]


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
