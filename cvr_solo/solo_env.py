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

__all__ = ["MIN_SOLO_VERSION", "SOLO_COMMIT", "SoloLearnUnavailableError", "install_hint",
           "require_solo", "solo_available"]

#: The solo-learn commit cvr-solo is tested against (GitHub HEAD of 2026-04-22).
SOLO_COMMIT = "9187ea3"
#: Oldest solo-learn version with the Hydra/DictConfig API (GitHub's setup.py says 1.0.6).
MIN_SOLO_VERSION = (1, 0, 6)


class SoloLearnUnavailableError(RuntimeError):
    """solo-learn (or its run-time environment) cannot host cvr-solo's methods."""


def install_hint() -> str:
    """How to install the solo-learn cvr-solo is tested against."""
    return (
        "install solo-learn from GitHub (the package registry's 1.0.2 is too old):\n"
        "    pip install 'setuptools<81'\n"
        "    git clone https://github.com/vturrisi/solo-learn && "
        f"git -C solo-learn checkout {SOLO_COMMIT}\n"
        "    pip install --no-build-isolation ./solo-learn\n"
        "    pip install 'setuptools<82'   # solo-learn's lightning pin imports pkg_resources"
    )


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


def solo_available() -> bool:
    """True when :func:`require_solo` passes (imports solo-learn)."""
    try:
        require_solo()
    except SoloLearnUnavailableError:
        return False
    return True
