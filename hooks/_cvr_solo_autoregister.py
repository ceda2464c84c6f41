"""cvr-solo's start-up hook (loaded by cvr_solo_autoregister.pth in site-packages).

Costs nothing until solo-learn is imported: a meta-path finder wraps the loader of the
top-level ``solo`` package, whose __init__ imports all of solo-learn (METHODS included), so
that right after it ``cvr_solo.register`` adds c_simclr and c_byol. (Hooking
``solo.methods`` itself would run while ``solo.args`` is still half-imported.) Unmodified
solo-learn scripts then accept ``method=c_byol``.
Set CVR_SOLO_NO_AUTOREGISTER=1 to switch it off. Kept free of heavy imports on purpose.

It also silences cvr-solo's list of known third-party warnings (cvr_solo.common.quiet) in a process
started with CVR_SOLO_QUIET=1, which `cvr-solo` sets for the processes it starts: the ranks
of ddp_spawn / ddp_fork and their loader workers import solo-learn, Lightning and timm before
any code of ours runs in them, so they must be quiet from their first line, as the main
process is.
"""

import os
import sys

_TARGET = "solo"


class _RegisteringLoader:
    def __init__(self, inner):
        self._inner = inner

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = self._inner
        if module.__spec__ is not None:
            module.__spec__.loader = self._inner
        self._inner.exec_module(module)
        try:
            from cvr_solo import register  # the public name: stays put when modules move

            register()
        except Exception as err:  # never break solo-learn itself
            import warnings

            warnings.warn(f"cvr-solo could not register c_simclr/c_byol in solo-learn: {err}",
                          stacklevel=2)

    def __getattr__(self, name):
        return getattr(self._inner, name)


class _Finder:
    _busy = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _TARGET or self._busy:
            return None
        import importlib.util

        self._busy = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._busy = False
        if spec is None or spec.loader is None:
            return None
        spec.loader = _RegisteringLoader(spec.loader)
        return spec


def _quiet():
    if os.environ.get("CVR_SOLO_QUIET") != "1":
        return
    try:
        from cvr_solo.common.quiet import silence_known_warnings
    except ImportError:  # cvr-solo removed, this hook left behind
        return
    silence_known_warnings()


def install():
    _quiet()
    if os.environ.get("CVR_SOLO_NO_AUTOREGISTER"):
        return
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


install()
