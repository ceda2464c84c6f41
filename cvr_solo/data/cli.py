"""``cvr-solo data fashion-mnist --out DIR [--subset N] [--download]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cvr_solo.data.download import default_cache_dir, download_fashion_mnist, downloaded_source
from cvr_solo.data.fashion_mnist import (
    DEFAULT_SOURCE,
    INSTALL_COMMAND,
    SPLITS,
    export_fashion_mnist,
    missing_source_files,
)

__all__ = ["main", "parser", "resolve_source"]


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``cvr-solo data``."""
    p = argparse.ArgumentParser(
        prog="cvr-solo data",
        description="Export a dataset to an ImageFolder tree (train/, val/, manifest.json). "
                    f"Fashion-MNIST is read from {DEFAULT_SOURCE} (Debian package "
                    "dataset-fashion-mnist) or, with --download, fetched through torchvision's "
                    "FashionMNIST (its mirrors and MD5 checks) into a cache folder.")
    p.add_argument("dataset", choices=["fashion-mnist"], help="dataset to export")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--subset", type=int, default=None,
                   help="class-balanced train subset size (multiple of 10); default: all")
    p.add_argument("--val-subset", type=int, default=None,
                   help="class-balanced val subset size (multiple of 10); default: all, or "
                        "subset/6 when --subset is given")
    p.add_argument("--seed", type=int, default=0, help="seed of the subset draw (default 0)")
    p.add_argument("--source", type=Path, default=None,
                   help=f"directory of the IDX .gz files (default {DEFAULT_SOURCE}, else the "
                        "cache's download)")
    p.add_argument("--download", action="store_true",
                   help="download the IDX files through torchvision when no source has them")
    p.add_argument("--cache", type=Path, default=None,
                   help="download folder (default $CVR_SOLO_CACHE, else "
                        "$XDG_CACHE_HOME/cvr-solo, else ~/.cache/cvr-solo)")
    p.add_argument("-y", "--yes", action="store_true",
                   help="answer yes to the download question")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _ask(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    try:
        return input(question).strip().lower() in ("y", "yes")
    except EOFError:
        return False


def resolve_source(args: argparse.Namespace) -> Path:
    """The folder of the four IDX files: --source, else Debian's, else the cache (downloading
    when --download/--yes is given or the user agrees).

    Raises:
        FileNotFoundError: offering both ways (apt, --download) when no source has the files.
    """
    if args.source is not None:
        return args.source
    if not missing_source_files(DEFAULT_SOURCE):
        return DEFAULT_SOURCE
    cache = args.cache or default_cache_dir()
    if not missing_source_files(downloaded_source(cache)):
        return download_fashion_mnist(cache)  # MD5-checks the cached files
    if args.download or args.yes or _ask(
            f"Fashion-MNIST is not in {DEFAULT_SOURCE}. Download it (30 MB) through "
            f"torchvision into {cache}? [y/N] "):
        return download_fashion_mnist(cache)
    raise FileNotFoundError(
        f"Fashion-MNIST's IDX files are not in {DEFAULT_SOURCE} (Debian package "
        f"dataset-fashion-mnist) nor in the cache {cache}. Either install the package: "
        f"`{INSTALL_COMMAND}`, or download them through torchvision (its mirrors, MD5-checked):"
        f" `cvr-solo data fashion-mnist --out {args.out} --download`")


def main(argv: list[str] | None = None) -> int:
    """Runs ``cvr-solo data``; ``argv`` excludes ``cvr-solo data``.

    Returns 0 on success, 2 on a usage error, a missing source, a failed download or a bad
    argument (one ``error: ...`` line on stderr).
    """
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage and the error
        return exc.code if isinstance(exc.code, int) else 2
    try:
        source = resolve_source(args)
        manifest = export_fashion_mnist(args.out, source=source, subset=args.subset,
                                        val_subset=args.val_subset, seed=args.seed,
                                        progress=not args.no_progress)
    except (OSError, ValueError, RuntimeError) as exc:
        message = " ".join(str(exc).split())
        print(f"error: {message}", file=sys.stderr)
        return 2
    sizes = []
    for split in SPLITS:
        counts = set(manifest["splits"][split]["counts"].values())
        per_class = f"{counts.pop()} per class" if len(counts) == 1 else "unbalanced"
        sizes.append(f"{manifest['splits'][split]['num_images']} {split} ({per_class})")
    print(f"fashion-mnist: {' + '.join(sizes)} images in {args.out} (source {source})")
    print(f"mean: {[round(m, 4) for m in manifest['mean']]}  "
          f"std: {[round(s, 4) for s in manifest['std']]}")
    return 0
