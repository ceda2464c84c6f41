"""A warning when a run's projections collapse to one point, for any solo-learn method.

A collapsed run goes on training and checkpointing with a loss that looks settled (SimCLR's
and C-SimCLR's contrastive term sits at log(2B-1)), so the warning is what tells the user. On
the steps Lightning logs (every ``log_every_n_steps``), :class:`CollapseMonitor` takes the
projector outputs of the two views that the training step has already computed (a forward
hook on ``pl_module.projector``, which solo-learn's SimCLR, BYOL, Barlow Twins and the
C-variants all have) and logs

- ``train_proj_std``: the mean per-dimension std of z/|z| (1/sqrt(d) when spread evenly
  over the sphere, 0 at a point);
- ``train_proj_align_ratio``: A/D, the mean squared distance of positive pairs over that of
  two images (:func:`cvr_solo.common.representation.spread`);
- ``train_collapsed``: 1 from the step the warning fired, else 0.

When ``train_proj_std`` stays below ``threshold`` (default 0.05/sqrt(d), 0.0031 for d = 256)
on ``patience`` consecutive logged steps (default 3), rank 0 prints one line and the run's
summary repeats it. On other steps the hook stores nothing and nothing is computed; the
number is read to the host only on logged steps, where Lightning reads the logged metrics
anyway, so a training step gains no device sync.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from cvr_solo.common.checks import check_number
from cvr_solo.common.metric_names import COLLAPSED, PROJ_ALIGN_RATIO, PROJ_STD
from cvr_solo.common.representation import collapse_threshold, spread
from cvr_solo.launch.callbacks import logs_this_step

__all__ = ["DOCS", "CollapseMonitor", "collapse_callback"]

#: Where the warning sends the user.
DOCS = "docs/usage.md#collapse"


class CollapseMonitor(pl.Callback):
    """Logs the spread of the projections on logged steps and warns once if they collapse.

    Args:
        patience: consecutive logged steps below ``threshold`` before the warning (>= 1).
        threshold: the std of z/|z| per dimension below which a step counts as collapsed;
            None: :func:`cvr_solo.common.representation.collapse_threshold` (0.05 / sqrt(d)).
        command: the command named in the warning (``cvr-solo <command>``).

    Raises:
        ValueError: patience below 1 or a threshold that is not > 0.

    Example:
        >>> CollapseMonitor(patience=2).patience
        2
    """

    def __init__(self, patience: int = 3, threshold: float | None = None,
                 command: str = "pretrain") -> None:
        self.patience = check_number("patience", patience, low=1, integer=True)
        self.threshold = (None if threshold is None
                          else check_number("threshold", threshold, low=0, inclusive=False))
        self.command = command
        self.streak = 0
        self.collapsed_at: int | None = None
        self.message: str | None = None
        self._capture = False
        self._z: list[torch.Tensor] = []
        self._handle: Any = None

    def _hook(self, module: Any, inputs: Any, output: Any) -> None:
        if self._capture and isinstance(output, torch.Tensor):
            self._z.append(output.detach())

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        projector = getattr(pl_module, "projector", None)
        if isinstance(projector, torch.nn.Module) and self._handle is None:
            self._handle = projector.register_forward_hook(self._hook)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        self._z.clear()
        self._capture = self._handle is not None and logs_this_step(trainer)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self._capture:
            return
        self._capture = False
        if len(self._z) < 2 or self._z[0].dim() != 2 or self._z[0].shape != self._z[1].shape \
                or self._z[0].shape[0] < 2:
            self._z.clear()
            return
        dim = self._z[0].shape[1]
        s = spread(self._z[0], self._z[1])
        self._z.clear()
        threshold = self.threshold or collapse_threshold(dim)
        std = float(s.z_std)  # a logged step: Lightning reads its metrics to the host too
        self.streak = self.streak + 1 if std < threshold else 0
        if self.streak >= self.patience and self.collapsed_at is None:
            self.collapsed_at = int(trainer.global_step)
            self.message = (f"projections collapsed at step {self.collapsed_at}: std of z/|z| "
                            f"{std:.4f} < {threshold:.4f} on {self.streak} logged steps in a "
                            f"row; the run goes on, but its features are likely useless; "
                            f"see {DOCS}")
            if trainer.is_global_zero:
                print(f"cvr-solo {self.command}: warning: {self.message}", flush=True)
        collapsed = torch.full((), float(self.collapsed_at is not None), device=s.z_std.device)
        pl_module.log_dict({PROJ_STD: s.z_std, PROJ_ALIGN_RATIO: s.ratio, COLLAPSED: collapsed},
                           on_step=True, on_epoch=False)

    def state_dict(self) -> dict[str, Any]:
        return {"streak": self.streak, "collapsed_at": self.collapsed_at,
                "message": self.message}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.streak = int(state_dict.get("streak", 0))
        self.collapsed_at = state_dict.get("collapsed_at")
        self.message = state_dict.get("message")


def collapse_callback(cfg: Any) -> CollapseMonitor | None:
    """The monitor ``cfg.collapse_warning`` asks for: None when ``enabled`` is false, else a
    :class:`CollapseMonitor` with the block's ``patience`` and ``threshold`` where given (its
    own defaults otherwise; the block is checked by
    :func:`cvr_solo.config.validate.validate_pretrain_cfg`).

    Example:
        >>> collapse_callback({"collapse_warning": {"enabled": False}}) is None
        True
        >>> collapse_callback({}).patience
        3
    """
    block = dict(cfg.get("collapse_warning") or {})
    if not block.pop("enabled", True):
        return None
    given = {k: block[k] for k in ("patience", "threshold") if block.get(k) is not None}
    return CollapseMonitor(**given)
