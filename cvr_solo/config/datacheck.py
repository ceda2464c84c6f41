"""Start-up checks of the data a run reads, before solo-learn sees the config (no solo-learn
import).

solo-learn reads ``custom`` (and ImageNet) data with torchvision's ``ImageFolder``: one
sub-folder per class, numbered in sorted order, and sets ``data.num_classes`` to the number of
sub-folders of ``data.train_path`` whatever the config says. A train path one level too high
(the folder holding ``train/`` and ``val/``) is then a 2-class data set that trains on the
validation images and fails much later (``IndexError: Target 2 is out of bounds``). These
checks name the key and the folder instead:

- every sub-folder of ``data.train_path`` / ``data.val_path`` holds images (no sub-folders
  of class folders, no empty class), and there are at least 2 classes (the online and the
  offline linear classifier would report 100 % on one);
- train and val have the same class folders;
- a ``data.num_classes`` given in the config equals what solo-learn would use;
- ``data.num_large_crops`` / ``data.num_small_crops``, which solo-learn recounts from
  ``augmentations``, agree with that count when given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cvr_solo.config.errors import ConfigError

__all__ = ["FOLDER_DATASETS", "BadImageError", "check_data", "check_images_on_read",
           "class_folders", "image_extensions"]

#: data.dataset values solo-learn reads from image folders (cifar/stl use torchvision's sets).
FOLDER_DATASETS = ("custom", "imagenet", "imagenet100")
#: solo-learn's fixed class counts (solo.args.pretrain._N_CLASSES_PER_DATASET).
FIXED_CLASSES = {"imagenet": 1000, "imagenet100": 100}


def image_extensions() -> tuple[str, ...]:
    """The file endings ``ImageFolder`` reads (torchvision's ``IMG_EXTENSIONS``)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return tuple(IMG_EXTENSIONS)


def _has_image(folder: Path, exts: tuple[str, ...]) -> bool:
    return any(any(f.lower().endswith(exts) for f in files)
               for _, _, files in os.walk(folder, followlinks=True))


def class_folders(path: str | os.PathLike, key: str) -> list[str]:
    """The sorted class folder names of the image folder ``path`` (config key ``key``).

    Raises:
        ConfigError: naming ``key`` and the folder, when ``path`` is no folder, has no
            sub-folders, a sub-folder holds no image, or the sub-folders hold class folders
            of their own (``path`` is a data set root: point ``key`` at one of them).

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for c in ("cat", "dog"):
        ...     (root / c).mkdir(); _ = (root / c / "0.png").write_bytes(b"")
        >>> class_folders(root, "data.train_path")
        ['cat', 'dog']
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"{key}: no directory {folder}")
    subs = sorted(e.name for e in os.scandir(folder) if e.is_dir())
    if not subs:
        raise ConfigError(f"{key}={folder} has no sub-folders; it must hold one folder of "
                          "images per class (e.g. train/0_tshirt_top/*.png)")
    exts = image_extensions()
    without = [s for s in subs
               if not any(f.lower().endswith(exts) for f in os.listdir(folder / s)
                          if (folder / s / f).is_file())]
    if not without:
        return subs
    nested = [s for s in without if any((folder / s / d).is_dir() and _has_image(
        folder / s / d, exts) for d in os.listdir(folder / s))]
    if nested and len(nested) == len(without):
        hint = f"; point {key} at one of them, e.g. {key}={folder / nested[0]}"
        raise ConfigError(f"{key}={folder} holds {', '.join(nested)}, whose sub-folders are "
                          f"the class folders: it looks like the data set's root, not a split"
                          f"{hint}")
    raise ConfigError(f"{key}={folder}: the class folder(s) {', '.join(without[:5])} hold no "
                      f"images ({', '.join(exts)}); each sub-folder must be one class's images")


def _given(cfg: Any, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _crop_counts(augmentations: Any) -> tuple[int, int]:
    """(large, small) crops as solo-learn counts them: crops of the first pipeline's size
    are large, the others small."""
    big = augmentations[0]["crop_size"]
    large = sum(a["num_crops"] for a in augmentations if a["crop_size"] == big)
    small = sum(a["num_crops"] for a in augmentations if a["crop_size"] != big)
    return large, small


def check_data(cfg: Any, kind: str = "pretrain") -> None:
    """All the checks of the module docstring on a composed config (DictConfig or dict).

    Args:
        cfg: the config, before solo-learn's ``parse_cfg``.
        kind: ``pretrain`` or ``linear`` (the linear probe always needs ``data.val_path``).

    Raises:
        ConfigError: naming the key, the value and what is expected.
    """
    data = cfg["data"]
    dataset, fmt = data.get("dataset"), data.get("format", "image_folder")
    no_labels = bool(data.get("no_labels", False)) and kind == "pretrain"
    if kind == "pretrain":
        aug = cfg.get("augmentations")
        if aug:
            large, small = _crop_counts(aug)
            for key, want in (("num_large_crops", large), ("num_small_crops", small)):
                got = _given(cfg, f"data.{key}")
                if got is not None and got != want:
                    raise ConfigError(
                        f"data.{key}={got} would be silently replaced by solo-learn with "
                        f"{want}, the count from augmentations (crops of augmentations[0]'s "
                        f"crop_size are large); set augmentations[i].num_crops / crop_size "
                        f"instead and drop data.{key}")
    if dataset not in FOLDER_DATASETS or fmt not in ("image_folder", "dali"):
        return
    train_path = data.get("train_path")
    if no_labels:
        if not Path(str(train_path)).is_dir():
            raise ConfigError(f"data.train_path: no directory {train_path}")
        return
    train = class_folders(train_path, "data.train_path")
    if len(train) < 2:
        unlabeled = " (for unlabelled images set data.no_labels=True)" if kind == "pretrain" else ""
        raise ConfigError(f"data.train_path={train_path} holds 1 class folder ({train[0]}): the "
                          f"linear classifier needs at least 2 classes, one sub-folder each"
                          f"{unlabeled}")
    val_path = data.get("val_path")
    if val_path is not None:
        val = class_folders(val_path, "data.val_path")
        if val != train:
            only_t, only_v = sorted(set(train) - set(val)), sorted(set(val) - set(train))
            raise ConfigError(
                f"data.train_path ({len(train)} classes) and data.val_path ({len(val)} "
                f"classes) have different class folders: only in train {only_t[:5]}, only in "
                f"val {only_v[:5]}; ImageFolder numbers classes by sorted folder name, so the "
                "labels would not match")
    want = FIXED_CLASSES.get(dataset, len(train))
    if dataset in FIXED_CLASSES and len(train) != want:
        raise ConfigError(f"data.dataset={dataset} has {want} classes, but data.train_path="
                          f"{train_path} holds {len(train)} class folders")
    given = _given(cfg, "data.num_classes")
    if given is not None and given != want:
        raise ConfigError(f"data.num_classes={given} disagrees with the {len(train)} class "
                          f"folders of data.train_path={train_path}; solo-learn would silently "
                          f"use {want}: drop data.num_classes or fix the folder")


class BadImageError(ConfigError):
    """An image file of the data cannot be read (found when a loader reads it).

    The message stays one line when the error crosses a DataLoader worker, which re-raises it
    as ``BadImageError("Caught ... Original Traceback ...: <message>")``.
    """

    def __init__(self, message: str) -> None:
        marker = f"{type(self).__name__}: "
        if "Original Traceback" in message and marker in message:
            message = message.rsplit(marker, 1)[1].strip()
        super().__init__(message)


class _CheckedLoader:
    """An ImageFolder loader that names the file it cannot read (picklable for workers)."""

    def __init__(self, inner: Any, key: str) -> None:
        self.inner, self.key = inner, key

    def __call__(self, path: str) -> Any:
        try:
            return self.inner(path)
        except (OSError, SyntaxError, ValueError) as err:  # PIL's errors for broken files
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            reason = reason.split(" <_io.")[0]  # PIL repeats the file object
            raise BadImageError(f"{self.key}: cannot read the image {path} ({reason}); remove "
                                "or replace the file and start the run again") from None


def check_images_on_read(dataset: Any, key: str) -> Any:
    """Makes an ImageFolder-style dataset (one with a ``loader``, including one wrapped in a
    ``Subset``) raise :class:`BadImageError` naming the file and ``key`` when an image cannot
    be read, instead of PIL's error deep in a worker. Checking 60k images at start-up would
    cost minutes; this costs nothing until a file is bad. Returns ``dataset``."""
    inner = getattr(dataset, "dataset", dataset)
    loader = getattr(inner, "loader", None)
    if callable(loader) and not isinstance(loader, _CheckedLoader):
        inner.loader = _CheckedLoader(loader, key)
    return dataset
