"""Checks of a ``cvr-solo pretrain|linear`` command line before Hydra runs it.

Hydra answers the three commonest slips in its own words, which do not say what to type: a
misspelt ``--config-name`` (a list of search paths), a misspelt key without ``+`` ("Key
'betta' is not in struct") and an unquoted value holding ``=`` ("mismatched input '='
expecting <EOF>"). :func:`check_hydra_args` composes the config the way Hydra will and turns
those into a :class:`~cvr_solo.config.errors.ConfigError` saying what was most likely
meant. Anything else is left to Hydra, which reports it as before.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cvr_solo.config.errors import ConfigError

__all__ = ["check_hydra_args"]

#: Options after which Hydra does something else than run the config: left to Hydra.
_HANDS_OFF = {"--cfg", "-c", "--info", "-i", "--multirun", "-m", "--shell-completion", "-sc",
              "--experimental-rerun", "--hydra-help", "--config-dir", "-cd", "--package", "-p",
              "--help", "-h", "--version"}
_VALUED = {"--config-path": "path", "-cp": "path", "--config-name": "name", "-cn": "name"}


def _split(argv: Sequence[str]) -> tuple[str | None, str | None, list[str]] | None:
    """(config path, config name, overrides) of a Hydra command line; None when it holds an
    option that makes Hydra do something else than compose and run."""
    found: dict[str, str] = {}
    overrides: list[str] = []
    args = iter(argv)
    for arg in args:
        option = arg.split("=", 1)[0] if arg.startswith("-") else None
        if option in _HANDS_OFF:
            return None
        if option in _VALUED:
            found[_VALUED[option]] = arg.split("=", 1)[1] if "=" in arg else next(args, "")
        elif not arg.startswith("-"):
            overrides.append(arg)
    return found.get("path"), found.get("name"), overrides


def _check_config_name(path: Path, name: str) -> None:
    names = sorted(p.name for p in path.glob("*.yaml") if not p.name.startswith("_"))
    if (path / name).is_file() or (path / f"{name}.yaml").is_file():
        return
    close = difflib.get_close_matches(name if name.endswith(".yaml") else f"{name}.yaml",
                                      names, n=1, cutoff=0.5)
    hint = f"did you mean --config-name {close[0]}? " if close else ""
    raise ConfigError(f"--config-name {name}: no such config in {path}; {hint}configs there: "
                      f"{', '.join(names)}")


def _check_syntax(overrides: Sequence[str]) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_overrides([override])
        except OverrideParseException as err:
            key, _, value = override.partition("=")
            why = str(err).splitlines()[0]
            raise ConfigError(f"cannot read the override {override} (Hydra: {why}); quote a "
                              f"value holding '=', spaces or brackets: {key}=\"'{value}'\""
                              ) from None


def _allowed_keys(cfg: Any, key: str) -> tuple[str, list[str]]:
    """(deepest existing parent of ``key``, the keys it holds)."""
    node, parent = cfg, []
    for part in key.split(".")[:-1]:
        if not isinstance(node, Mapping) or part not in node:
            break
        node, parent = node[part], [*parent, part]
    keys = sorted(map(str, node.keys())) if isinstance(node, Mapping) else []
    return ".".join(parent), keys


def _compose(path: Path, name: str, overrides: Sequence[str]) -> Any:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(path), version_base="1.2"):
        return compose(config_name=name, overrides=list(overrides))


def _check_keys(path: Path, name: str, overrides: Sequence[str]) -> None:
    from hydra.errors import ConfigCompositionException

    try:
        _compose(path, name, overrides)
        return
    except ConfigCompositionException as err:
        match = re.match(r"Could not override '([^']+)'", str(err))
        if match is None:
            return  # Hydra's own report follows
        key = match.group(1)
    except Exception:
        return
    rest = [o for o in overrides if o.split("=", 1)[0] != key]
    try:
        base = _compose(path, name, rest)
    except Exception:
        return
    parent, keys = _allowed_keys(base, key)
    leaf = key[len(parent) + 1:] if parent else key
    close = difflib.get_close_matches(leaf.split(".")[0], keys, n=1, cutoff=0.6)
    hint = f"did you mean {parent + '.' if parent else ''}{close[0]}? " if close else ""
    where = f"under {parent}" if parent else "at the top"
    raise ConfigError(f"{key} is not a key of {name}: {hint}allowed keys {where}: "
                      f"{', '.join(keys)}; add + to add a new key (+{key}=...) or check the "
                      "spelling")


def check_hydra_args(argv: Sequence[str]) -> None:
    """Raises ConfigError, with the likely fix, for a missing config name, an unreadable
    override or an override of a key the config does not have (without ``+``).

    Args:
        argv: the command line as Hydra will get it, ``--config-path`` absolute.
    """
    split = _split(argv)
    if split is None or split[0] is None or split[1] is None:
        return
    path, name, overrides = Path(split[0]), split[1], split[2]
    if not path.is_dir():
        return
    _check_config_name(path, name)
    _check_syntax(overrides)
    _check_keys(path, name, overrides)
