"""Putting cvr-solo's methods (c_simclr, c_byol, c_mocov3, c_simsiam) into solo-learn's
``solo.methods.METHODS``.

solo-learn has no plugin entry points: main_pretrain.py, main_knn.py and main_umap.py look
methods up in the plain dict ``solo.methods.METHODS``. cvr-solo installs a start-up hook
(``cvr_solo_autoregister.pth`` -> ``_cvr_solo_autoregister``) that waits, at no cost, until
solo-learn is imported in any Python process and then calls :func:`register`.
``CVR_SOLO_NO_AUTOREGISTER=1`` switches the hook off; :func:`register` works either way.
"""

from __future__ import annotations

import importlib

__all__ = ["register"]


def register() -> dict[str, type]:
    """Adds :data:`cvr_solo.methods.registered.CVR_METHODS` to ``solo.methods.METHODS`` and
    lets solo-learn's ResNets take ``backbone.kwargs.small_stem`` (:mod:`cvr_solo.solo.stem`);
    idempotent.

    Raises :class:`cvr_solo.solo.env.SoloLearnUnavailableError` (with the fix) without a usable
    solo-learn, and RuntimeError if another class already holds one of the names.
    """
    from cvr_solo.solo.env import require_solo

    require_solo()
    registry = importlib.import_module("solo.methods").METHODS
    from cvr_solo.solo import stem

    stem.install()

    from cvr_solo.methods.registered import CVR_METHODS

    for name, cls in CVR_METHODS.items():
        held = registry.get(name)
        if held is not None and held is not cls:
            raise RuntimeError(f"solo.methods.METHODS[{name!r}] is already {held!r}; "
                               f"cvr-solo will not replace it with {cls!r}")
        registry[name] = cls
    return dict(CVR_METHODS)
