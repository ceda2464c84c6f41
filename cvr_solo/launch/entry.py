"""The Hydra entry of ``cvr-solo pretrain`` and ``cvr-solo linear``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

from cvr_solo.config.errors import ConfigError

__all__ = ["hydra_entry"]


def hydra_entry(run: Callable[[DictConfig], Any], command: str) -> Callable[[], None]:
    """The Hydra main of ``cvr-solo <command>``: config errors end the process with one
    line on stderr and exit code 2, not a traceback."""
    import hydra

    @hydra.main(version_base="1.2", config_path=None)
    def main(cfg: DictConfig) -> None:
        try:
            run(cfg)
        except (ConfigError, FileNotFoundError) as err:
            print(f"cvr-solo {command}: error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    return main
