"""``cvr-solo install-solo``: solo-learn at the supported commit, installed the right way.

    cvr-solo install-solo [--source URL|DIR|ARCHIVE] [--dry-run] [-q]

solo-learn's current version exists only on GitHub (the package registry's ``solo-learn`` is
1.0.2 of 2021). Its ``setup.py`` imports ``pkg_resources``, so it builds only with
``setuptools<81`` and pip's ``--no-build-isolation``; its pins (lightning 2.1.2) import
``pkg_resources`` at run time too, so setuptools must stay ``<82``. This command, run with the
environment's own interpreter (``python -m pip``):

1. installs ``setuptools<81`` and ``wheel`` for the build when they are missing or too new;
2. installs solo-learn from ``--source`` (default: the GitHub repository at the supported
   commit) with ``--no-build-isolation`` under a constraints file that pins the installed torch
   and torchvision (pip fails rather than replace them) and ``setuptools<82``;
3. checks in a fresh process that ``solo`` imports, its version is >= 1.0.6, torch and
   torchvision are unchanged, and cvr-solo's methods (``c_simclr``, ``c_byol``, ``c_mocov3``,
   ``c_simsiam``) are in ``solo.methods.METHODS``;
   then prints what it did.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shlex
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cvr_solo.common.catalog import CEB_METHODS
from cvr_solo.solo.env import SOLO_COMMIT, _version_tuple
from cvr_solo.solo.source import (
    DEFAULT_SOURCE,
    InstallSoloError,
    SoloSource,
    commit_note,
    resolve_source,
)

__all__ = ["DEFAULT_SOURCE", "InstallSoloError", "SoloSource", "check_reachable",
           "install_solo", "main", "pip_commands", "resolve_source"]

#: solo-learn's setup.py imports pkg_resources (gone from setuptools >= 81's build path).
BUILD_SETUPTOOLS = "setuptools<81"
#: lightning 2.1.2 (solo-learn's pin) imports pkg_resources, removed in setuptools 82.
RUNTIME_SETUPTOOLS = "setuptools<82"
#: Packages pip must not replace: solo-learn asks only torch>=1.10, and a user's newer (or
#: CUDA-specific) build is theirs.
PROTECTED = ("torch", "torchvision")
REPORTED = ("solo-learn", *PROTECTED, "lightning", "torchmetrics", "setuptools")
PREFIX = "cvr-solo install-solo"

# Runs in a fresh interpreter after the install: imports solo-learn as a user's script would
# (the start-up hook registers cvr-solo's methods), prints one JSON line.
_VERIFY = """
import importlib.metadata as md, json, os
from cvr_solo.common.catalog import CEB_METHODS
from cvr_solo.solo.env import SoloLearnUnavailableError, online_knn_problem, require_solo
def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None
out = {"versions": {n: version(n) for n in NAMES}}
try:
    require_solo()
except SoloLearnUnavailableError as err:
    out["error"] = str(err)
else:
    import solo, solo.methods
    out["location"] = os.path.dirname(solo.__file__)
    out["hook"] = sorted(k for k in CEB_METHODS if k in solo.methods.METHODS)
    if os.environ.get("CVR_SOLO_NO_AUTOREGISTER"):
        import cvr_solo
        cvr_solo.register()
    out["methods"] = sorted(k for k in CEB_METHODS if k in solo.methods.METHODS)
    out["knn"] = online_knn_problem()
print(json.dumps(out))
"""


def _installed(names: Sequence[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def constraints_text(installed: Mapping[str, str | None]) -> str:
    """pip constraints: the installed torch/torchvision exactly, and ``setuptools<82``."""
    pins = [f"{name}=={installed[name]}" for name in PROTECTED if installed.get(name)]
    return "\n".join([*pins, RUNTIME_SETUPTOOLS]) + "\n"


def pip_commands(source: SoloSource, installed: Mapping[str, str | None],
                 constraints: str | Path, quiet: bool = False) -> list[list[str]]:
    """The pip command lines, in order, for ``source`` given the ``installed`` versions.

    Args:
        source: from :func:`resolve_source`.
        installed: versions of setuptools and wheel (None: absent).
        constraints: path of the file holding :func:`constraints_text`.
        quiet: pass ``-q`` to pip.

    Returns:
        One or two argv lists, each ``[sys.executable, "-m", "pip", ...]``.

    Example:
        >>> cmds = pip_commands(resolve_source(), {"setuptools": "80.1", "wheel": "0.45"}, "c")
        >>> cmds[-1][3:6]
        ['install', '--no-build-isolation', '-c']
    """
    pip = [sys.executable, "-m", "pip"]
    q = ["-q"] if quiet else []
    cmds = []
    setuptools = installed.get("setuptools")
    if setuptools is None or _version_tuple(setuptools) >= (81,) or not installed.get("wheel"):
        cmds.append([*pip, "install", *q, BUILD_SETUPTOOLS, "wheel"])
    cmds.append([*pip, "install", "--no-build-isolation", "-c", str(constraints), *q,
                 source.requirement])
    return cmds


def _verify(run: Callable[..., Any]) -> dict[str, Any]:
    code = _VERIFY.replace("NAMES", repr(REPORTED))
    proc = run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True,
               timeout=600)
    lines = (proc.stdout or "").strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise InstallSoloError("the check in a fresh process failed (exit "
                               f"{proc.returncode}): {(proc.stderr or '').strip()[-2000:]}")
    return json.loads(lines[-1])


def check_reachable(source: SoloSource) -> None:
    """For a remote ``source`` (a git or archive URL), that its host's name resolves: offline,
    pip would fail after minutes with a message about the network, not the way out.

    Raises:
        InstallSoloError: naming the host and ``--source`` with a local checkout or archive.

    Example:
        >>> check_reachable(SoloSource("dir", "/src/solo-learn", "solo-learn @ file:///src/solo-learn",
        ...                             None))  # a local folder: nothing to reach
    """
    if source.kind not in ("git", "url"):
        return
    host = urlsplit(source.location.removeprefix("git+")).hostname
    if not host:
        return
    try:
        socket.getaddrinfo(host, None)
    except OSError as err:
        raise InstallSoloError(
            f"cannot resolve {host} ({err}): this machine looks offline. Fetch solo-learn "
            f"at {SOLO_COMMIT} where there is a network (a checkout, or its GitHub archive "
            "as .tar.gz/.zip) and pass it here: cvr-solo install-solo --source PATH"
        ) from None


def install_solo(source: SoloSource, *, dry_run: bool = False, quiet: bool = False,
                 run: Callable[..., Any] = subprocess.run,
                 echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Installs solo-learn from ``source`` into the running environment and verifies it.

    Args:
        source: from :func:`resolve_source`.
        dry_run: print the plan and the pip command lines, run nothing.
        quiet: pass ``-q`` to pip.
        run: ``subprocess.run`` (replaceable in tests).
        echo: where progress lines go (default: stdout, flushed so that they interleave
            with pip's output).

    Returns:
        The fresh process's findings: ``versions``, ``location``, ``methods``, ``hook``,
        ``knn`` (why online kNN cannot be built, or None); empty on a dry run.

    Raises:
        InstallSoloError: pip failed (e.g. it would have to replace torch), or the check
            failed (solo-learn does not import, is too old, torch changed, methods missing).

    Example:
        >>> install_solo(resolve_source(), dry_run=True, echo=lambda s: None)
        {}
    """
    echo = echo or (lambda line: print(line, flush=True))
    before = _installed(("setuptools", "wheel", "solo-learn", *PROTECTED, "lightning"))
    echo(f"{PREFIX}: solo-learn from {source.location}: {commit_note(source)}")
    kept = [f"{n} {before[n]}" for n in PROTECTED if before[n]]
    echo(f"{PREFIX}: keeping {', '.join(kept)} (pinned: pip may not replace them)" if kept else
         f"{PREFIX}: no torch installed: solo-learn's requirement pulls the latest")
    if before["solo-learn"]:
        echo(f"{PREFIX}: replacing the installed solo-learn {before['solo-learn']}")
    if before["lightning"] and _version_tuple(before["lightning"]) >= (2, 2):
        echo(f"{PREFIX}: note: solo-learn pins lightning 2.1.2 and torchmetrics<0.12, so pip "
             f"replaces lightning {before['lightning']}; the current Lightning works with "
             "cvr-solo afterwards (pip install 'lightning>=2.6' 'torchmetrics>=1'), without "
             "solo-learn's online kNN")
    if not dry_run:
        check_reachable(source)
    with tempfile.TemporaryDirectory(prefix="cvr-solo-install-") as tmp:
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text(constraints_text(before))
        echo(f"{PREFIX}: pip constraints: "
             + constraints_text(before).strip().replace("\n", ", "))
        for cmd in pip_commands(source, before, constraints, quiet):
            echo(f"{PREFIX}: $ {shlex.join(cmd)}")
            if dry_run:
                continue
            proc = run(cmd)
            if proc.returncode != 0:
                hint = (f" while keeping {', '.join(kept)}: cvr-solo never replaces them; "
                        "if solo-learn truly needs another torch, install that torch first"
                        if kept and "--no-build-isolation" in cmd else "")
                raise InstallSoloError(f"pip failed (exit {proc.returncode}){hint}; "
                                       "its output above says why")
    if dry_run:
        return {}
    found = _verify(run)
    if "error" in found:
        raise InstallSoloError(f"solo-learn was installed but is not usable: {found['error']}")
    after = found["versions"]
    changed = [f"{n} {before[n]} -> {after.get(n)}" for n in PROTECTED
               if before[n] and after.get(n) != before[n]]
    if changed:
        raise InstallSoloError(f"pip replaced {', '.join(changed)} despite the constraints")
    ours = ", ".join(sorted(CEB_METHODS))
    if found["methods"] != sorted(CEB_METHODS):
        raise InstallSoloError(
            f"solo-learn imports, but {ours} are not all in solo.methods.METHODS: "
            "cvr-solo's start-up hook (cvr_solo_autoregister.pth) is missing from this "
            "environment; install cvr-solo itself with pip (pip install -e .)")
    how = ("by cvr-solo's start-up hook" if found["hook"] == found["methods"] else
           "by cvr_solo.register() (CVR_SOLO_NO_AUTOREGISTER is set: the hook is off)")
    echo(f"{PREFIX}: verified in a fresh process: solo-learn {after['solo-learn']} at "
         f"{found['location']}; {ours} registered {how}")
    echo(f"{PREFIX}: environment: " + ", ".join(
        f"{n} {after.get(n)}" + (" (kept)" if n in PROTECTED and before[n] else "")
        for n in REPORTED[1:]))
    echo(f"{PREFIX}: online kNN (knn_eval): " + (
        "available" if found["knn"] is None else f"off here: {found['knn']}"))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """``cvr-solo install-solo``; returns the exit code (2: bad --source, 1: install failed)."""
    parser = argparse.ArgumentParser(
        prog="cvr-solo install-solo",
        description=f"Install solo-learn at commit {SOLO_COMMIT} into this environment "
                    "(setuptools<81 build, no build isolation, torch kept) and verify it.")
    parser.add_argument("--source", metavar="URL|DIR|ARCHIVE",
                        help=f"git+ URL, archive URL, solo-learn checkout or .tar.gz/.zip "
                             f"archive (default: {DEFAULT_SOURCE})")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the pip commands, run nothing")
    parser.add_argument("-q", "--quiet", action="store_true", help="pass -q to pip")
    args = parser.parse_args(argv)
    try:
        source = resolve_source(args.source)
    except InstallSoloError as err:
        print(f"{PREFIX}: error: {err}", file=sys.stderr)
        return 2
    try:
        install_solo(source, dry_run=args.dry_run, quiet=args.quiet)
    except InstallSoloError as err:
        print(f"{PREFIX}: error: {err}", file=sys.stderr)
        return 1
    return 0
