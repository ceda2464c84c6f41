"""Is a usable solo-learn installed? One clear message when not.

solo-learn's current version exists only on GitHub; the package registry's ``solo-learn`` is
1.0.2 (2021, torch 1.9, argparse API) and cannot host these methods. Its pins
(lightning 2.1.2, torchmetrics < 0.12) import ``pkg_resources``, which setuptools >= 82 no
longer ships, and a later ``pip install`` can upgrade setuptools silently.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from typing import Any

__all__ = ["MIN_SOLO_VERSION", "SOLO_COMMIT", "SOLO_COMMIT_SHA", "SOLO_REPO",
           "SoloLearnUnavailableError", "install_hint", "online_knn_problem", "require_solo",
           "solo_available", "switch_off_unbuildable_knn"]

SOLO_REPO = "https://github.com/vturrisi/solo-learn"
#: The solo-learn commit cvr-solo is tested against (GitHub HEAD of 2026-04-22).
SOLO_COMMIT_SHA = "9187ea39c2c3f43c455ab06664d2b019a9802954"
SOLO_COMMIT = SOLO_COMMIT_SHA[:7]
#: Oldest solo-learn version with the Hydra/DictConfig API (GitHub's setup.py says 1.0.6).
MIN_SOLO_VERSION = (1, 0, 6)


class SoloLearnUnavailableError(RuntimeError):
    """solo-learn (or its run-time environment) cannot host cvr-solo's methods."""


def install_hint() -> str:
    """How to install the solo-learn cvr-solo is tested against."""
    return (f"install solo-learn {SOLO_COMMIT} with: cvr-solo install-solo (offline: "
            "cvr-solo install-solo --source PATH, a checkout or archive of that commit; the "
            "package registry's 1.0.2 is too old)")


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def require_solo() -> None:
    """Raise :class:`SoloLearnUnavailableError` with the fix unless solo-learn can be used."""
    if importlib.util.find_spec("solo") is None:
        raise SoloLearnUnavailableError(
            "solo-learn is not installed; cvr-solo's methods and commands need it. To "
            + install_hint())
    try:
        version = importlib.metadata.version("solo-learn")
    except importlib.metadata.PackageNotFoundError:
        version = None  # a source checkout on PYTHONPATH: judge it by its API below
    if version is not None and _version_tuple(version) < MIN_SOLO_VERSION:
        raise SoloLearnUnavailableError(
            f"solo-learn {version} is installed, but cvr-solo needs solo-learn >= "
            f"{'.'.join(map(str, MIN_SOLO_VERSION))} (GitHub, Hydra configs). The registry's "
            f"1.0.2 pins torch 1.9 and an argparse API. Uninstall it "
            "(pip uninstall solo-learn) and " + install_hint())
    if importlib.util.find_spec("pkg_resources") is None:
        lightning = _dist_version("lightning")
        if lightning is not None and _version_tuple(lightning) < (2, 2):
            raise SoloLearnUnavailableError(
                f"lightning {lightning} (solo-learn's pin) imports pkg_resources, which this "
                f"environment's setuptools {_dist_version('setuptools') or '(none)'} no longer "
                "ships (setuptools >= 82 removed it). Fix: pip install 'setuptools<82'")
    try:
        importlib.import_module("solo.args.pretrain")
        methods = importlib.import_module("solo.methods")
    except ModuleNotFoundError as err:
        if err.name == "pkg_resources":
            raise SoloLearnUnavailableError(
                "solo-learn's dependencies import pkg_resources, which this environment's "
                "setuptools no longer ships (setuptools >= 82 removed it). Fix: "
                "pip install 'setuptools<82'") from None
        if err.name and err.name.startswith("solo"):
            raise SoloLearnUnavailableError(
                f"the installed solo-learn lacks {err.name} (an old or partial install); "
                + install_hint()) from None
        raise SoloLearnUnavailableError(
            f"solo-learn is installed but cannot be imported: module {err.name!r} is missing. "
            "Install solo-learn's requirements, or " + install_hint()) from None
    if not isinstance(getattr(methods, "METHODS", None), dict) or not hasattr(
            importlib.import_module("solo.methods.base"), "BaseMomentumMethod"):
        raise SoloLearnUnavailableError(
            "the installed solo-learn has no METHODS registry / BaseMomentumMethod (too old); "
            + install_hint())


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def online_knn_problem() -> str | None:
    """Why solo-learn's online kNN metric (``knn_eval``) cannot be built here, or None.

    solo-learn's ``WeightedKNNClassifier`` passes ``compute_on_step`` to torchmetrics'
    ``Metric``, which torchmetrics >= 0.12 rejects; so with the current Lightning stack
    (lightning >= 2.2, torchmetrics 1.x) ``knn_eval.enabled=True`` cannot work.

    Returns:
        A one-line reason, or None where the metric can be built.

    Example:
        >>> online_knn_problem() is None or "torchmetrics" in online_knn_problem()
        True
    """
    from solo.utils.knn import WeightedKNNClassifier

    try:
        WeightedKNNClassifier(k=1)
    except (TypeError, ValueError) as err:
        return (f"solo-learn's online kNN metric cannot be built with torchmetrics "
                f"{_dist_version('torchmetrics')} ({err}; it needs torchmetrics < 0.12, "
                "solo-learn's pin)")
    return None


def solo_available() -> bool:
    """True when :func:`require_solo` passes (imports solo-learn)."""
    try:
        require_solo()
    except SoloLearnUnavailableError:
        return False
    return True


def switch_off_unbuildable_knn(cfg: Any, command: str) -> str | None:
    """Turns ``knn_eval.enabled`` off, with one line on stderr, where solo-learn's online kNN
    metric cannot be built (:func:`online_knn_problem`); building the method would otherwise
    end in torchmetrics' ``compute_on_step`` error.

    Args:
        cfg: the parsed pretrain config (solo-learn's ``parse_cfg`` fills ``knn_eval``).
        command: the command named in the message.

    Returns:
        The line printed, or None when nothing was changed.
    """
    if not cfg.get("knn_eval") or not cfg.knn_eval.get("enabled"):
        return None
    problem = online_knn_problem()
    if problem is None:
        return None
    cfg.knn_eval.enabled = False
    line = (f"cvr-solo {command}: knn_eval.enabled=True switched off: {problem}; "
            "the run goes on without online kNN")
    print(line, file=sys.stderr, flush=True)
    return line
