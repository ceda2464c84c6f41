"""Fetching Fashion-MNIST's four IDX files through torchvision's ``FashionMNIST``.

torchvision knows the data set's mirrors and the MD5 of each file; this reuses both (its
``download()``), into a cache folder, so that ``cvr-solo data fashion-mnist`` also works where
Debian's ``dataset-fashion-mnist`` package is not available (macOS, conda, clusters).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "default_cache_dir", "download_fashion_mnist", "downloaded_source"]

#: Environment variable naming the cache folder (default: $XDG_CACHE_HOME/cvr-solo).
CACHE_ENV = "CVR_SOLO_CACHE"


def default_cache_dir() -> Path:
    """``$CVR_SOLO_CACHE``, else ``$XDG_CACHE_HOME/cvr-solo``, else ``~/.cache/cvr-solo``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "cvr-solo"


def downloaded_source(cache: str | Path) -> Path:
    """The folder under ``cache`` where torchvision keeps the four ``.gz`` files."""
    return Path(cache) / "FashionMNIST" / "raw"


def download_fashion_mnist(cache: str | Path) -> Path:
    """Downloads (or finds, MD5-checked) Fashion-MNIST under ``cache``; returns the folder of
    the four ``.gz`` files, ready as ``export_fashion_mnist(source=...)``.

    Args:
        cache: the cache folder (created if needed).

    Returns:
        ``cache/FashionMNIST/raw``.

    Raises:
        RuntimeError: from torchvision, naming each mirror tried and its error, when no mirror
            gives a file with the right MD5.

    Example:
        >>> download_fashion_mnist("~/.cache/cvr-solo")  # doctest: +SKIP
        PosixPath('/home/me/.cache/cvr-solo/FashionMNIST/raw')
    """
    from torchvision.datasets import FashionMNIST
    from torchvision.datasets.utils import check_integrity

    cache = Path(cache).expanduser()
    raw = downloaded_source(cache)
    # torchvision's download() skips only when the extracted files exist; check the .gz too
    if not all(check_integrity(str(raw / name), md5) for name, md5 in FashionMNIST.resources):
        FashionMNIST(root=str(cache), train=True, download=True)
    return raw
