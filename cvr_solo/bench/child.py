"""The bench's child processes: ``python -m cvr_solo.cli COMMAND`` with its log, its progress
and its CPU time."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["run_cli"]


def run_cli(command: str, config_dir: Path, config_name: str, overrides: list[str],
            log: Path, status: Callable[[str], None] | None = None) -> None:
    """``python -m cvr_solo.cli COMMAND`` with its output appended to ``log``; with
    ``status``, the child's training step is passed to it as "step s/total" every 2 s
    (through the child's :class:`~cvr_solo.launch.progress.StepFile`).

    Raises:
        RuntimeError: with the log's last lines, if it fails.
    """
    from cvr_solo.common.progress_file import PROGRESS_FILE_ENV, read_step_file

    cmd = [sys.executable, "-m", "cvr_solo.cli", command, "--config-path", str(config_dir),
           "--config-name", config_name, *overrides]
    steps = log.with_name(log.stem + ".step")
    env = {**os.environ, "PYTHONWARNINGS": "ignore", PROGRESS_FILE_ENV: str(steps)}
    with log.open("a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
        while True:
            try:
                proc.wait(timeout=2.0)
                break
            except subprocess.TimeoutExpired:
                seen = read_step_file(steps) if status is not None else None
                if seen is not None:
                    status(f"step {seen[0]}/{seen[1] or '?'}")
            except BaseException:
                proc.kill()
                proc.wait()
                raise
    if proc.returncode != 0:
        tail = log.read_text().splitlines()[-25:]
        raise RuntimeError(f"cvr-solo {command} failed (exit {proc.returncode}); the end of "
                           f"{log}:\n" + "\n".join(tail))


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far: a cost figure
    that a loaded machine inflates far less than wall time."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime
