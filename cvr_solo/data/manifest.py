"""The manifest of an exported image folder: load, verify and write it atomically.

Any export that writes ``<split>/<class folder>/<file>`` under a folder can describe itself
with ``manifest.json``::

    {"format": "<exporter's name>", "splits": {"train": {"files": {"train/c/0.png": sha256}}}}

(plus whatever else the exporter records). :func:`verify_tree` then says whether the folder
still holds exactly those files, and :func:`write_json_atomic` writes the manifest last so
that an interrupted export has none.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST_NAME", "foreign_entries", "load_manifest", "remove", "sha256_file",
           "verify_tree", "write_json_atomic"]

MANIFEST_NAME = "manifest.json"
_HASH_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(out: Path, fmt: str, splits: Sequence[str]) -> tuple[dict[str, Any] | None,
                                                                       str]:
    """(manifest, "") if ``out/manifest.json`` has format ``fmt`` and a file list per split,
    else (None, why not)."""
    path = out / MANIFEST_NAME
    if not path.is_file():
        return None, f"{MANIFEST_NAME} is missing"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{MANIFEST_NAME} is unreadable ({exc})"
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        return None, f"{MANIFEST_NAME} is not a {fmt} manifest"
    try:
        for split in splits:
            if not isinstance(manifest["splits"][split]["files"], dict):
                raise TypeError
    except (KeyError, TypeError):
        return None, f"{MANIFEST_NAME} lacks the file lists"
    return manifest, ""


def verify_tree(out: Path, manifest: dict[str, Any], splits: Sequence[str],
                class_names: Sequence[str]) -> list[str]:
    """Problems with the files under ``out`` against ``manifest`` (empty: intact).

    Every listed file must exist with its sha256, at ``<split>/<class>/<name>``; the split
    folders must hold nothing else (an extra folder would shift ``ImageFolder``'s class
    numbering).
    """
    problems: list[str] = []
    for split in splits:
        files: dict[str, str] = manifest["splits"][split]["files"]
        for rel, digest in files.items():
            parts = Path(rel).parts
            if len(parts) != 3 or parts[0] != split or parts[1] not in class_names:
                problems.append(f"manifest lists an unexpected path {rel!r}")
                continue
            path = out / rel
            if not path.is_file():
                problems.append(f"missing file {rel}")
            elif sha256_file(path) != digest:
                problems.append(f"checksum mismatch in {rel}")
        root = out / split
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            depth = len(here.relative_to(root).parts)
            for d in sorted(dirnames):
                if depth > 0 or d not in class_names:
                    problems.append(f"unexpected folder {(here / d).relative_to(out).as_posix()}")
            for name in sorted(filenames):
                rel = (here / name).relative_to(out).as_posix()
                if rel not in files:
                    problems.append(f"unexpected file {rel}")
    return problems


def foreign_entries(out: Path, splits: Sequence[str]) -> list[str]:
    """Names in ``out`` that an export with these splits did not write."""
    allowed = {*splits, MANIFEST_NAME, MANIFEST_NAME + ".tmp"}
    return sorted(p.name for p in out.iterdir() if p.name not in allowed)


def remove(path: Path) -> None:
    """Deletes a file, link or folder tree if present."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_json_atomic(path: Path, obj: Any) -> None:
    """Writes ``obj`` as JSON to ``path`` via a fsync'd temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
