"""Export Fashion-MNIST to an ImageFolder tree that solo-learn's "custom" dataset can read.

Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747): 60,000 train and 10,000 test
28x28 grey images of 10 clothing classes, shipped as gzip'd IDX files (format of LeCun et al.'s
MNIST page; from the Debian package ``dataset-fashion-mnist`` or downloaded through
torchvision, see :mod:`cvr_solo.data.download`). The test split is exported as ``val``.

Layout written under ``out``::

    train/<class folder>/<5-digit source index>.png     32x32 RGB
    val/<class folder>/<5-digit source index>.png
    manifest.json                                        written last, atomically

Each image is padded by 2 black pixels on every side (28 + 2 + 2 = 32; the background is
black, so this is lossless) and its grey value is replicated to 3 channels. Folder names
start with the label digit so that torchvision's ``ImageFolder`` (which numbers classes by
sorted folder name) gives every image its Fashion-MNIST label. The manifest records the
parameters, the sha256 of the sources and of every PNG, the class counts, and the per-channel
mean and std (population, in [0, 1] scale, over all pixels of the exported train images,
border included) for solo-learn's augmentation config.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import numbers
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from cvr_solo.common.checks import check_number, fail
from cvr_solo.data.balanced import balanced_indices
from cvr_solo.data.idx import read_idx
from cvr_solo.data.manifest import (
    MANIFEST_NAME,
    foreign_entries,
    load_manifest,
    remove,
    sha256_file,
    verify_tree,
    write_json_atomic,
)

__all__ = ["CLASS_NAMES", "DEFAULT_SOURCE", "SOURCE_FILES", "export_fashion_mnist",
           "missing_source_files", "verify_export"]

logger = logging.getLogger(__name__)

DEFAULT_SOURCE = Path("/usr/share/datasets/fashion-mnist")

#: Class folder names, in label order (0..9); they sort in that order too.
CLASS_NAMES = ("0_tshirt_top", "1_trouser", "2_pullover", "3_dress", "4_coat", "5_sandal",
               "6_shirt", "7_sneaker", "8_bag", "9_ankle_boot")

SOURCE_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "val": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SOURCE_NAMES = tuple(name for pair in SOURCE_FILES.values() for name in pair)
SPLIT_SIZES = {"train": 60_000, "val": 10_000}
SPLITS = ("train", "val")

INSTALL_COMMAND = "apt-get update && apt-get install -y dataset-fashion-mnist"
FORMAT = "cvr-solo/fashion-mnist-image-folder"
#: 2: the subset draw is :mod:`cvr_solo.data.balanced`'s (version 1 drew with numpy's
#: generator); an export of another version is redone.
FORMAT_VERSION = 2
SOURCE_SIZE = 28
PADDING = 2
IMAGE_SIZE = SOURCE_SIZE + 2 * PADDING
#: zlib level of the PNGs: 1 is several times faster to write than PIL's default 6 and the
#: files are barely larger (32x32 images); PNG is lossless whatever the level.
PNG_COMPRESS_LEVEL = 1
_REINSTALL = "reinstall it: apt-get install --reinstall -y dataset-fashion-mnist"


# --- Reading the source ---------------------------------------------------------------------

def _load_split(source: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,) uint8) of one split, with size checks."""
    image_file, label_file = SOURCE_FILES[split]
    images = read_idx(source / image_file, 3, fix=_REINSTALL)
    labels = read_idx(source / label_file, 1, fix=_REINSTALL)
    n = SPLIT_SIZES[split]
    if images.shape != (n, SOURCE_SIZE, SOURCE_SIZE):
        raise ValueError(f"{source / image_file} is corrupt: expected shape "
                         f"({n}, {SOURCE_SIZE}, {SOURCE_SIZE}), got {images.shape}")
    if labels.shape != (n,):
        raise ValueError(f"{source / label_file} is corrupt: expected {n} labels, "
                         f"got shape {labels.shape}")
    if labels.max() >= len(CLASS_NAMES):
        raise ValueError(f"{source / label_file} is corrupt: label {int(labels.max())} is "
                         f"outside 0..{len(CLASS_NAMES) - 1}")
    return images, labels


def missing_source_files(source: str | Path) -> list[str]:
    """The names of the four IDX .gz files that ``source`` lacks."""
    return [name for name in SOURCE_NAMES if not (Path(source) / name).is_file()]


def _source_checksums(source: Path) -> dict[str, str]:
    """sha256 of the four source files; ``FileNotFoundError`` with the install command."""
    missing = missing_source_files(source)
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST source not found: looked in {source} and {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing. The files come from the Debian "
            f"package dataset-fashion-mnist, which appears to be missing; install it with "
            f"`{INSTALL_COMMAND}`, or download them through torchvision with `cvr-solo data "
            f"fashion-mnist --download` (or pass source=/--source to a directory holding the "
            f"four IDX .gz files)")
    return {name: sha256_file(source / name) for name in sorted(SOURCE_NAMES)}


# --- Parameters -----------------------------------------------------------------------------

def _check_subset(name: str, value: object, maximum: int) -> int | None:
    if value is None:
        return None
    n_cls = len(CLASS_NAMES)
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0
            or value % n_cls or value > maximum):
        fail(name, f"None (everything) or a positive multiple of {n_cls} (class-balanced) of "
                   f"at most {maximum}", value)
    return int(value)


def default_val_subset(subset: int) -> int:
    """Val size for a train subset N when none is given: the source's 6:1 ratio,
    max(10, round(N / 6 / 10) * 10)."""
    return max(len(CLASS_NAMES), round(subset / 6 / 10) * 10)


def _resolve_parameters(subset: object, val_subset: object, seed: object) -> dict[str, Any]:
    subset = _check_subset("subset", subset, SPLIT_SIZES["train"])
    val_subset = _check_subset("val_subset", val_subset, SPLIT_SIZES["val"])
    seed = check_number("seed", seed, low=0, integer=True)
    if subset is not None and val_subset is None:
        val_subset = default_val_subset(subset)
    return {"subset": subset, "val_subset": val_subset, "seed": seed,
            "image_size": IMAGE_SIZE, "padding": PADDING}


def _select(labels: np.ndarray, n: int | None, seed: int, split: str) -> np.ndarray:
    """Sorted source indices: all, or :func:`~cvr_solo.data.balanced.balanced_indices` of n,
    seeded with 2 seed + the split's number, so that train and val draws differ and each
    depends only on ``seed``."""
    return balanced_indices(torch.from_numpy(labels.astype(np.int64)), n,
                            seed * len(SPLITS) + SPLITS.index(split)).numpy()


# --- Manifest and verification --------------------------------------------------------------

def verify_export(out: str | Path) -> list[str]:
    """Problems with the export in ``out`` (an empty list means it is complete and intact).

    Checks that the manifest is readable, that every file it lists exists with its sha256, and
    that ``train/`` and ``val/`` hold nothing else (no extra files, no extra folders: an extra
    folder would shift ``ImageFolder``'s class numbering).
    """
    out = Path(out)
    manifest, why = load_manifest(out, FORMAT, SPLITS)
    if manifest is None:
        return [why]
    return verify_tree(out, manifest, SPLITS, CLASS_NAMES)


# --- Export ---------------------------------------------------------------------------------

def _png_bytes(image: np.ndarray) -> bytes:
    """A 28x28 grey image as the bytes of a 32x32 RGB PNG (2-px black border)."""
    padded = np.pad(image, PADDING)
    rgb = np.ascontiguousarray(np.repeat(padded[:, :, None], 3, axis=2))
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def _mean_std(images: np.ndarray) -> tuple[float, float]:
    """Population mean and std in [0, 1] scale over every pixel of the padded images.

    Exact: from the 256-bin histogram with integer sums (the border adds zeros).
    """
    counts = np.bincount(images.reshape(-1), minlength=256).astype(object)
    counts[0] += len(images) * (IMAGE_SIZE**2 - SOURCE_SIZE**2)
    values = np.arange(256, dtype=object)
    n = int(counts.sum())
    s1 = int((counts * values).sum())
    s2 = int((counts * values * values).sum())
    mean = s1 / n / 255
    std = math.sqrt((s2 * n - s1 * s1) / (n * n)) / 255
    return mean, std


def _write_split(out: Path, split: str, images: np.ndarray, labels: np.ndarray,
                 indices: Iterable[int], bar: tqdm) -> dict[str, Any]:
    split_dir = out / split
    for name in CLASS_NAMES:
        (split_dir / name).mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    counts = dict.fromkeys(CLASS_NAMES, 0)
    for i in indices:
        cls = CLASS_NAMES[labels[i]]
        rel = f"{split}/{cls}/{i:05d}.png"
        data = _png_bytes(images[i])
        with open(out / rel, "wb") as f:
            f.write(data)
        files[rel] = hashlib.sha256(data).hexdigest()
        counts[cls] += 1
        bar.update(1)
    return {"num_images": len(files), "counts": counts, "files": dict(sorted(files.items()))}


def export_fashion_mnist(out: str | Path, source: str | Path = DEFAULT_SOURCE,
                         subset: int | None = None, val_subset: int | None = None,
                         seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Export Fashion-MNIST to ``out`` (see the module docstring) and return the manifest.

    ``subset``/``val_subset``: class-balanced numbers of train/val images (positive multiples
    of 10, at most 60,000 / 10,000), drawn deterministically from ``seed``; None exports
    everything, except that a ``subset`` N alone implies ``val_subset`` =
    max(10, round(N / 6 / 10) * 10).

    Idempotent: when ``out`` already holds a verified export with the same parameters and
    source checksums, that manifest is returned and nothing is written. Otherwise (no
    manifest, other parameters, missing/extra/corrupted files) ``train/`` and ``val/`` are
    removed and written again, with a logged line saying why. A non-empty ``out`` without a
    manifest of ours that holds anything besides ``train/`` and ``val/`` is never touched
    (``ValueError``). A missing source raises ``FileNotFoundError`` with the install command.
    """
    out = Path(out)
    source = Path(source)
    params = _resolve_parameters(subset, val_subset, seed)
    source_sha = _source_checksums(source)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out must be a directory, but {out} is a file")

    reason = ""
    manifest, why = load_manifest(out, FORMAT, SPLITS) if out.is_dir() else (None, "")
    if manifest is not None:
        recorded = manifest.get("source")
        recorded_sha = recorded.get("sha256") if isinstance(recorded, dict) else None
        if (manifest.get("format_version") != FORMAT_VERSION
                or manifest.get("parameters") != params or recorded_sha != source_sha):
            old = manifest.get("parameters")
            reason = (f"the existing export has other parameters or sources "
                      f"(was {old}, want {params})")
        else:
            problems = verify_export(out)
            if not problems:
                return manifest
            reason = (f"verification failed with {len(problems)} problem(s), the first: "
                      f"{problems[0]}")
    elif out.is_dir() and any(out.iterdir()):
        foreign = foreign_entries(out, SPLITS)
        if foreign:
            raise ValueError(f"out {out} is not empty, has no valid Fashion-MNIST export "
                             f"manifest ({why}) and holds other things ({', '.join(foreign[:5])}"
                             f"{', ...' if len(foreign) > 5 else ''}); refusing to delete "
                             f"anything there: choose an empty or new directory")
        reason = f"{why} (an interrupted or partial export)"

    # Read the sources before deleting anything, so a corrupt source leaves ``out`` alone.
    data = {split: _load_split(source, split) for split in SPLITS}
    selected = {
        split: _select(data[split][1], params["subset" if split == "train" else "val_subset"],
                       params["seed"], split)
        for split in SPLITS
    }
    if reason:
        logger.warning("re-exporting Fashion-MNIST in %s: %s", out, reason)
    out.mkdir(parents=True, exist_ok=True)
    for name in (MANIFEST_NAME, MANIFEST_NAME + ".tmp", *SPLITS):
        remove(out / name)

    total = sum(len(idx) for idx in selected.values())
    splits: dict[str, Any] = {}
    with tqdm(total=total, disable=not progress, unit="img", desc="fashion-mnist") as bar:
        for split in SPLITS:
            images, labels = data[split]
            splits[split] = _write_split(out, split, images, labels, selected[split], bar)
    mean, std = _mean_std(data["train"][0][selected["train"]])
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "dataset": "fashion-mnist",
                "parameters": params, "source": {"path": str(source), "sha256": source_sha},
                "classes": list(CLASS_NAMES), "mean": [mean] * 3, "std": [std] * 3,
                "splits": splits}
    write_json_atomic(out / MANIFEST_NAME, manifest)
    return manifest
