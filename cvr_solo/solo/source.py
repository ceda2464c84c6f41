"""Where ``cvr-solo install-solo`` takes solo-learn from: ``--source`` read and checked.

A source is the GitHub repository at the supported commit (the default), another ``git+``
URL, an archive URL, a solo-learn checkout, or an archive (``git archive`` of a commit, or
GitHub's tarball). The package registry's ``solo-learn`` (1.0.2 of 2021) is refused.
"""

from __future__ import annotations

import re
import subprocess
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cvr_solo.solo.env import SOLO_COMMIT, SOLO_COMMIT_SHA, SOLO_REPO

__all__ = ["ARCHIVE_SUFFIXES", "DEFAULT_SOURCE", "InstallSoloError", "SoloSource",
           "commit_note", "resolve_source"]

#: pip's source for solo-learn when --source is not given.
DEFAULT_SOURCE = f"git+{SOLO_REPO}@{SOLO_COMMIT_SHA}"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")
_REGISTRY_NAME = re.compile(r"solo[-_.]?learn\s*([=<>!~].*)?", re.I)
_SHA = re.compile(r"[0-9a-f]{7,40}")


class InstallSoloError(RuntimeError):
    """solo-learn could not be installed or verified; the message says why and what to do."""


@dataclass(frozen=True)
class SoloSource:
    """Where solo-learn comes from.

    Attributes:
        kind: ``git`` (a ``git+`` URL), ``url`` (an archive URL), ``dir`` or ``archive``.
        location: the URL, or the absolute path.
        requirement: what pip is given, ``solo-learn @ <url>``.
        commit: the commit the source holds when it can be read (git URL's revision, a
            ``git archive``'s header, a checkout's HEAD), else None.
    """

    kind: str
    location: str
    requirement: str
    commit: str | None


def _archive_commit(path: Path) -> str | None:
    """The commit ``git archive`` records (tar: pax header ``comment``; zip: its comment)."""
    try:
        if path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                text = zf.comment.decode("ascii", "replace")
        else:
            with tarfile.open(path) as tf:
                tf.next()
                text = tf.pax_headers.get("comment", "")
    except (OSError, tarfile.TarError, zipfile.BadZipFile) as err:
        raise InstallSoloError(f"--source {path}: not a readable archive: {err}") from None
    return text if re.fullmatch(r"[0-9a-f]{40}", text) else None


def _checkout_commit(path: Path) -> str | None:
    if not (path / ".git").exists():
        return None
    try:
        proc = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def resolve_source(text: str | None = None) -> SoloSource:
    """Reads ``--source``: None (GitHub at the supported commit), a ``git+`` URL, an archive
    URL, a solo-learn checkout or an archive (.tar.gz, .tgz, .zip).

    Args:
        text: the ``--source`` value, or None.

    Returns:
        The :class:`SoloSource`.

    Raises:
        InstallSoloError: for a registry name such as ``solo-learn==1.0.2``, a missing path, a
            directory without solo-learn's setup.py and ``solo/``, or another file type.

    Example:
        >>> resolve_source().commit == SOLO_COMMIT_SHA
        True
    """
    if text is None:
        return SoloSource("git", DEFAULT_SOURCE, f"solo-learn @ {DEFAULT_SOURCE}",
                          SOLO_COMMIT_SHA)
    if "://" in text:
        if text.startswith("git+"):
            path = urlsplit(text[4:]).path
            rev = path.rsplit("@", 1)[1] if "@" in path else None
            commit = rev if rev and _SHA.fullmatch(rev) else None
            return SoloSource("git", text, f"solo-learn @ {text}", commit)
        if text.split("?")[0].endswith(ARCHIVE_SUFFIXES):
            return SoloSource("url", text, f"solo-learn @ {text}", None)
        raise InstallSoloError(
            f"--source {text}: a URL must be git+https://...@COMMIT or end in "
            f"{', '.join(ARCHIVE_SUFFIXES)}; the default is {DEFAULT_SOURCE}")
    path = Path(text).expanduser().resolve()
    if path.is_dir():
        if not (path / "setup.py").is_file() or not (path / "solo").is_dir():
            raise InstallSoloError(f"--source {text}: {path} holds no solo-learn checkout "
                                   "(no setup.py and solo/ package)")
        return SoloSource("dir", str(path), f"solo-learn @ {path.as_uri()}",
                          _checkout_commit(path))
    if path.is_file():
        if not path.name.endswith(ARCHIVE_SUFFIXES):
            raise InstallSoloError(f"--source {text}: an archive must end in "
                                   f"{', '.join(ARCHIVE_SUFFIXES)}")
        return SoloSource("archive", str(path), f"solo-learn @ {path.as_uri()}",
                          _archive_commit(path))
    if _REGISTRY_NAME.fullmatch(text.strip()):
        raise InstallSoloError(
            f"--source {text}: the package registry's solo-learn is 1.0.2 (2021, torch 1.9, "
            "argparse API) and cannot host cvr-solo's methods. Give nothing (GitHub at "
            f"{SOLO_COMMIT}), a git+ URL, or a checkout or archive of solo-learn at {SOLO_COMMIT}")
    raise InstallSoloError(f"--source {text}: no such file or directory")


def commit_note(source: SoloSource) -> str:
    """One line on the commit ``source`` holds, against the supported one."""
    if source.commit is None:
        return (f"commit unknown (cvr-solo is tested against {SOLO_COMMIT}); checked by its "
                "version and API below")
    if SOLO_COMMIT_SHA.startswith(source.commit) or source.commit.startswith(SOLO_COMMIT):
        return f"commit {source.commit[:7]}, the one cvr-solo is tested against"
    return (f"WARNING: commit {source.commit[:7]}, not {SOLO_COMMIT} (the one cvr-solo is "
            "tested against)")
