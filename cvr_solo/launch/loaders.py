"""The loaders of the pretrain (online linear) and linear launchers: solo-learn's
classification loaders, with the data's own size for ``custom`` data and a named error for an
image file that cannot be read, and solo-learn's DALI module."""

from __future__ import annotations

import copyreg
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig
from torch.utils.data import Subset
from torchvision import transforms

from cvr_solo.config.datacheck import check_images_on_read
from cvr_solo.config.errors import ConfigError

__all__ = ["classification_loaders", "custom_classification_transforms", "dali_module",
           "innermost_dataset", "picklable_with_index"]

#: the qualified name of the class solo-learn's ``dataset_with_index`` makes for each dataset
_WITH_INDEX = "dataset_with_index.<locals>.DatasetWithIndex"


def _rebuild_with_index(base: type, state: dict[str, Any]) -> Any:
    """A dataset of ``dataset_with_index(base)`` with the instance state ``state``."""
    from solo.data.pretrain_dataloader import dataset_with_index

    cls = dataset_with_index(base)
    dataset = cls.__new__(cls)
    dataset.__dict__.update(state)
    return dataset


def _reduce_with_index(dataset: Any) -> tuple[Any, tuple[type, dict[str, Any]]]:
    return _rebuild_with_index, (type(dataset).__bases__[0], dataset.__dict__)


def innermost_dataset(dataset: Any) -> Any:
    """The dataset under any number of ``Subset`` wrappers (solo-learn's ``data.fraction``)."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def picklable_with_index(dataset: Any) -> Any:
    """``dataset`` (solo-learn's pretraining dataset), made picklable; returned as it is.

    solo-learn's ``dataset_with_index(Base)`` returns a class defined inside the function,
    which pickle cannot name, so loader workers started with ``spawn`` (the start method of
    ``ddp_spawn``'s ranks and their children) fail with "Can't pickle local object". This
    registers with :mod:`copyreg` how to rebuild such a dataset from its base class and its
    state (solo-learn's own factory makes the class again), for the dataset's class or, in a
    ``Subset``, its underlying dataset's. Other datasets are left alone.

    Example:
        >>> import pickle
        >>> from solo.data.pretrain_dataloader import dataset_with_index
        >>> from torchvision.datasets import FakeData
        >>> data = picklable_with_index(dataset_with_index(FakeData)(size=2, num_classes=2))
        >>> pickle.loads(pickle.dumps(data))[1][0]
        1
    """
    inner = innermost_dataset(dataset)
    if type(inner).__qualname__ == _WITH_INDEX:
        copyreg.pickle(type(inner), _reduce_with_index)
    return dataset


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
        loaders = cd.prepare_data(cfg.data.dataset, train_data_path=cfg.data.train_path,
                                  val_data_path=cfg.data.val_path, data_format=fmt,
                                  batch_size=cfg.optimizer.batch_size,
                                  num_workers=cfg.data.num_workers,
                                  auto_augment=bool(cfg.get("auto_augment", False)))
        for loader, key in zip(loaders, ("data.train_path", "data.val_path"), strict=True):
            check_images_on_read(loader.dataset, key)
        return loaders
    t_train, t_val = custom_classification_transforms(crop_size, mean, std)
    train_ds, val_ds = cd.prepare_datasets("custom", t_train, t_val,
                                           train_data_path=cfg.data.train_path,
                                           val_data_path=cfg.data.val_path, data_format=fmt,
                                           data_fraction=cfg.data.get("fraction", -1.0))
    check_images_on_read(train_ds, "data.train_path")
    check_images_on_read(val_ds, "data.val_path")
    return cd.prepare_dataloaders(train_ds, val_ds, batch_size=cfg.optimizer.batch_size,
                                  num_workers=cfg.data.num_workers)


def dali_module() -> Any:
    """solo-learn's DALI data module (solo.data.dali_dataloader), or a ConfigError saying how
    to install DALI."""
    try:
        from solo.data import dali_dataloader
    except ImportError as err:
        raise ConfigError("data.format='dali' needs NVIDIA DALI: pip install "
                          f"'cvr-solo[dali]' (nvidia-dali-cuda120); import failed: {err}"
                          ) from None
    return dali_dataloader
