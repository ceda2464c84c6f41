"""A rank stuck in a collective is an error, not a hang: the DDP strategy with the process
group's timeout from ``ddp_timeout_s``, and the one line a rank prints when it gave up.

A collective that only some ranks enter (a metric reduced on rank 0 alone, a barrier on one
rank) waits for the others until the process group's timeout. With gloo the waiting rank then
raises; :class:`CollectiveTimeoutReport` turns that into one line naming the rank, the
collective and the code that called it, and :func:`is_collective_timeout` lets the launcher
end the process with exit code 1 instead of a traceback. (NCCL's watchdog ends a timed-out
GPU rank by itself, with its own message naming the operation.)
"""

from __future__ import annotations

import re
import sys
import traceback
from datetime import timedelta
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.strategies.ddp import DDPStrategy

from cvr_solo.config.trainer import DDP_TIMEOUT_S

__all__ = ["CollectiveTimeoutReport", "ddp_strategy", "is_collective_timeout", "waited_for"]

#: Lightning's DDP strategy names and the start method each means.
_START_METHODS = {"ddp": "popen", "ddp_spawn": "spawn", "ddp_fork": "fork",
                  "ddp_notebook": "fork"}
#: what torch's gloo backend says when a collective waited past the timeout
_TIMED_OUT = re.compile(r"timed out|timeout", re.IGNORECASE)
#: frames of these packages are not "who called the collective"
_LIBRARIES = re.compile(r"[/\\](torch|lightning|lightning_fabric|pytorch_lightning|torchmetrics|"
                        r"hydra)[/\\]")


def _seconds(timeout_s: float | None) -> float:
    return DDP_TIMEOUT_S if timeout_s is None else float(timeout_s)


def ddp_strategy(strategy: str, timeout_s: float | None) -> Any:
    """The strategy to hand Lightning: for ``ddp``, ``ddp_spawn``, ``ddp_fork`` and
    ``ddp_notebook`` a :class:`DDPStrategy` with that start method, no search for unused
    parameters and the process group's ``timeout`` (seconds; None: :data:`DDP_TIMEOUT_S`);
    any other name as it is.

    Example:
        >>> ddp_strategy("ddp_spawn", 20)._timeout  # Lightning keeps it private
        datetime.timedelta(seconds=20)
        >>> ddp_strategy("auto", 20)
        'auto'
    """
    start = _START_METHODS.get(strategy)
    if start is None:
        return strategy
    return DDPStrategy(start_method=start, find_unused_parameters=False,
                       timeout=timedelta(seconds=_seconds(timeout_s)))


def waited_for(err: BaseException) -> str | None:
    """What a rank waited for when ``err`` is a collective that timed out, e.g.
    ``"torch.distributed.all_reduce, called from cvr_solo/launch/progress.py:101
    (get_metrics)"``; None for any other error.

    Args:
        err: the exception a rank raised, with its traceback.

    Returns:
        The collective (the innermost frame of ``torch.distributed.distributed_c10d``) and
        the nearest caller outside torch, Lightning and Hydra, or None.
    """
    if not isinstance(err, RuntimeError) or not _TIMED_OUT.search(str(err)):
        return None
    frames = traceback.extract_tb(err.__traceback__)
    op = next((f.name for f in reversed(frames)
               if f.filename.replace("\\", "/").endswith("torch/distributed/distributed_c10d.py")),
              None)
    if op is None:
        return None
    caller = next((f for f in reversed(frames) if not _LIBRARIES.search(f.filename)), None)
    where = f", called from {caller.filename}:{caller.lineno} ({caller.name})" if caller else ""
    return f"torch.distributed.{op}{where}"


def is_collective_timeout(err: BaseException) -> bool:
    """True for a collective that timed out in this process (:func:`waited_for`) or in a
    ``ddp_spawn`` / ``ddp_fork`` rank (torch.multiprocessing's ProcessRaisedException carries
    that rank's traceback as text).

    Example:
        >>> is_collective_timeout(ValueError("timed out"))
        False
    """
    if waited_for(err) is not None:
        return True
    text = str(err)
    return (type(err).__name__ == "ProcessRaisedException" and "distributed_c10d" in text
            and _TIMED_OUT.search(text) is not None)


class CollectiveTimeoutReport(pl.Callback):
    """Prints, on the rank that raised it, one line for a collective that timed out: the rank,
    how long it waited, the collective and its caller (:func:`waited_for`), and the setting.
    """

    def __init__(self, command: str, timeout_s: float | None) -> None:
        self.command = command
        self.timeout_s = _seconds(timeout_s)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        what = waited_for(exception)
        if what is None:
            return
        print(f"cvr-solo {self.command}: error: rank {trainer.global_rank} of "
              f"{trainer.world_size} waited {self.timeout_s:g} s in {what} and gave up: another "
              "rank never joined it (a collective run on some ranks only, or a rank that "
              "stalled or died); ddp_timeout_s sets the wait", file=sys.stderr, flush=True)
