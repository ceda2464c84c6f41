"""The step file through which a pretraining child tells ``cvr-solo bench`` its progress.

No Lightning import: the bench's parent process reads it (:func:`read_step_file`), the
pretraining's :class:`cvr_solo.launch.progress.StepFile` callback writes it
(:func:`write_step_file`) when :data:`PROGRESS_FILE_ENV` names a file.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PROGRESS_FILE_ENV", "read_step_file", "write_step_file"]

#: The environment variable that names the step file.
PROGRESS_FILE_ENV = "CVR_SOLO_PROGRESS_FILE"


def write_step_file(path: Path, step: int, total: int) -> None:
    """Writes ``"<step> <total>"`` to ``path`` atomically (a temporary file, then a rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{step} {total}\n")
    os.replace(tmp, path)


def read_step_file(path: Path) -> tuple[int, int] | None:
    """(step, total) from :func:`write_step_file`, None before the first write.

    Example:
        >>> read_step_file(Path("/nonexistent")) is None
        True
    """
    try:
        step, total = path.read_text().split()
        return int(step), int(total)
    except (OSError, ValueError):
        return None
