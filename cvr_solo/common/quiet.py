"""Silencing the third-party warnings that say nothing to a cvr-solo user.

Every ``cvr-solo pretrain`` used to print ~31 lines of warnings from timm, solo-learn,
Lightning and torch before anything of ours (deprecated imports inside those packages,
solo-learn re-registering timm models, CPU-only notes). :func:`known_warnings` lists each by
its exact message (a regex matched at the start, as :func:`warnings.filterwarnings` reads it)
and category; :func:`silence_known_warnings` installs one ``ignore`` filter per entry, never a
blanket filter, so any other warning still shows. ``--verbose`` or ``CVR_SOLO_VERBOSE=1``
keeps them all. ``cvr-solo`` sets :data:`QUIET_ENV` for the processes it starts, whose
start-up hook (``_cvr_solo_autoregister``) then installs the same filters first thing.
"""

from __future__ import annotations

import os
import warnings
from typing import NamedTuple

__all__ = ["QUIET_ENV", "VERBOSE_ENV", "KnownWarning", "known_warnings", "silence_known_warnings",
           "verbose_requested"]

#: Environment variable that keeps every warning on screen (any value but "", "0").
VERBOSE_ENV = "CVR_SOLO_VERBOSE"
#: Environment variable ("1") that makes cvr-solo's start-up hook silence the known warnings
#: in a new process (DDP ranks and loader workers of a ``cvr-solo`` command).
QUIET_ENV = "CVR_SOLO_QUIET"


class KnownWarning(NamedTuple):
    """One warning to silence: ``message`` is a regex matched at the start of the text."""

    message: str
    category: type[Warning]  # subclasses match too (Lightning's PossibleUserWarning ...)
    why: str


def known_warnings() -> tuple[KnownWarning, ...]:
    """The warnings cvr-solo silences (see the module docstring)."""
    return (
        KnownWarning(r"pkg_resources is deprecated as an API", UserWarning,
                     "lightning 2.1 imports pkg_resources"),
        KnownWarning(r"Deprecated call to `pkg_resources\.declare_namespace\('lightning",
                     DeprecationWarning, "lightning 2.1's namespace packages"),
        KnownWarning(r"Importing from timm\.\S+ is deprecated", FutureWarning,
                     "solo-learn imports timm's old module paths"),
        KnownWarning(r"Overwriting \S+ in registry with solo\.backbones\.", UserWarning,
                     "solo-learn re-registers timm's convnext/poolformer models"),
        KnownWarning(r"`torch\.cuda\.amp\.custom_fwd\(args\.\.\.\)` is deprecated",
                     FutureWarning, "solo-learn's whitening module"),
        KnownWarning(r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning,
                     "lightning 2.1's pytree helper on newer torch"),
        KnownWarning(r"'pin_memory' argument is set as true but no accelerator is found",
                     UserWarning, "solo-learn pins memory; on CPU it is a no-op"),
        KnownWarning(r"The number of training batches \(\d+\) is smaller than the logging "
                     r"interval", UserWarning,
                     "cvr-solo logs the epoch's cost figures in short runs itself"),
    )


def verbose_requested(argv: list[str] | None = None) -> bool:
    """True when ``--verbose`` is in ``argv`` or :data:`VERBOSE_ENV` is set (not "" or "0")."""
    return bool(argv and "--verbose" in argv) or os.environ.get(VERBOSE_ENV, "") not in (
        "", "0")


def silence_known_warnings() -> int:
    """Installs one ``ignore`` filter per known warning; returns how many.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as seen:
        ...     warnings.simplefilter("always")
        ...     n = silence_known_warnings()
        ...     warnings.warn("Importing from timm.models.layers is deprecated", FutureWarning)
        ...     warnings.warn("something else", FutureWarning)
        >>> [str(w.message) for w in seen]
        ['something else']
    """
    entries = known_warnings()
    for entry in entries:
        warnings.filterwarnings("ignore", message=entry.message, category=entry.category)
    return len(entries)
