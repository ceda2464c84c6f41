"""What the C-variants share on top of solo-learn: CEB settings, beta schedule, logging, and
the regression family's two heads (C-BYOL, C-SimSiam)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import omegaconf
import torch

from cvr_solo.ceb.diagnostics import residual_floor
from cvr_solo.ceb.heads import BackwardEncoder, StochasticPredictor, drop_last_bias
from cvr_solo.ceb.schedules import beta_at
from cvr_solo.ceb.wood import sampler_failures
from cvr_solo.common.metric_names import (
    BETA,
    KAPPA_B,
    KAPPA_E,
    RESIDUAL,
    RESIDUAL_ABOVE_FLOOR,
    VMF_FAILURES,
    Z_STD,
    ceb_loss,
)
from cvr_solo.config.validate import ceb_method_kwargs, check_two_crops


def fill_ceb_cfg(cfg: omegaconf.DictConfig, method: str) -> omegaconf.DictConfig:
    """Completes and checks cfg.method_kwargs for the C-variant ``method`` in place,
    after :func:`cvr_solo.config.validate.check_two_crops` on cfg.augmentations (no multi-crop)."""
    check_two_crops(method, cfg.get("augmentations"))
    mk = cfg.get("method_kwargs") or {}
    if isinstance(mk, omegaconf.DictConfig):
        mk = omegaconf.OmegaConf.to_container(mk, resolve=True)
    # every key given, resolved, plus the CEB defaults, checked
    cfg.method_kwargs = ceb_method_kwargs(method, mk, cfg.get("max_epochs"))
    return cfg


class CEBMixin:
    """CEB state of a solo-learn method: kappas, the beta schedule and its logging.

    Put it before the baseline (``class CSimCLR(CEBMixin, SimCLR)``) and set ``baseline``.
    The floor logged beside R is min E[R] = KL(vMF(mu, kappa_e) || vMF(mu, kappa_b))
    (reached when the backward mean agrees), so ``train_residual_above_floor`` is the part
    of the residual information that compression can still remove.
    """

    #: the solo-learn method whose loss the C-variant replaces (SimCLR, BYOL, MoCoV3, SimSiam)
    baseline: ClassVar[type]

    def shared_step(self, batch: Sequence[Any], batch_idx: int) -> dict[str, Any]:
        """What the baseline's ``training_step`` does before its own loss: solo-learn's
        shared step (every crop through ``forward``, the online classifier's loss, and for a
        momentum method the momentum branch), reached with ``super()`` past the baseline.
        solo-learn's methods compute their loss inside ``training_step`` with no hook of
        their own; this is the one hook, and ``forward`` stays the baseline's via ``super()``.
        """
        return super(self.baseline, self).training_step(batch, batch_idx)  # type: ignore[misc]

    def _init_ceb(self, cfg: omegaconf.DictConfig) -> None:
        mk = cfg.method_kwargs
        self.kappa_e: float = float(mk.kappa_e)
        self.kappa_b: float = float(mk.kappa_b)
        self.beta: float = float(mk.beta)
        self.beta_schedule: str = str(mk.beta_schedule)
        self.beta_warmup_epochs: float = float(mk.beta_warmup_epochs)
        self.residual_floor: float = residual_floor(int(mk.proj_output_dim), self.kappa_e,
                                                    self.kappa_b)
        guard = mk.get("beta_guard")  # the contrastive family's (None: off, or not a key)
        self.beta_guard: float | None = None if guard is None else float(guard)

    def current_beta(self) -> float:
        """beta at this optimiser step (constant | warmup | cosine, see ceb.schedules)."""
        if self.beta_schedule == "constant":
            return self.beta
        trainer: Any = self.trainer
        total = max(1, int(trainer.estimated_stepping_batches))
        warmup = round(self.beta_warmup_epochs * total / max(1, int(self.max_epochs)))
        return beta_at(min(int(trainer.global_step), total), total, min(warmup, total),
                       self.beta, self.beta_schedule)

    def _log_ceb(self, loss: torch.Tensor, residual: torch.Tensor,
                 beta: float | torch.Tensor,
                 z_std: torch.Tensor, name: str,
                 extra: Mapping[str, torch.Tensor | float] | None = None) -> None:
        """Logs the CEB metrics, all as device tensors, so that a training step does not
        synchronise with the device: Python numbers become ``torch.full`` on the device
        (Lightning's own conversion, ``torch.tensor(number, device=...)``, is a blocking
        host-to-device copy), nothing is read back with ``.item()``. ``train_vmf_failures``
        is the sampler's running count of draws with no accepted proposal (expected 0;
        :func:`cvr_solo.ceb.sampler_failures`), logged with max over the epoch.
        """
        device = loss.device

        def on_device(v: torch.Tensor | float) -> torch.Tensor:
            return v.detach() if isinstance(v, torch.Tensor) else torch.full((), v, device=device)

        r = residual.mean()
        metrics = {
            ceb_loss(name): loss,
            RESIDUAL: r,
            RESIDUAL_ABOVE_FLOOR: r - self.residual_floor,
            BETA: beta,
            KAPPA_E: self.kappa_e,
            KAPPA_B: self.kappa_b,
            Z_STD: z_std,
            **(extra or {}),
        }
        self.log_dict({k: on_device(v) for k, v in metrics.items()}, on_epoch=True,
                      sync_dist=True)
        self.log(VMF_FAILURES, sampler_failures(device).float(), on_epoch=True,
                 reduce_fx="max", sync_dist=True)


class StochasticHeads:
    """The regression family's heads on a solo-learn method with a ``predictor``
    (C-BYOL, C-SimSiam; Lee et al. 2021, Sec. 4.2): the baseline's predictor as built, its
    last bias dropped, wrapped in a :class:`~cvr_solo.ceb.heads.StochasticPredictor`
    (e(z|x)), and a trained :class:`~cvr_solo.ceb.heads.BackwardEncoder` (b(z|y)).

    Put it first (``class CBYOL(StochasticHeads, CEBMixin, BYOL)``) and call
    :meth:`_init_heads` after the baseline's ``__init__`` and ``_init_ceb``.
    """

    def _init_heads(self, mk: omegaconf.DictConfig) -> None:
        d = int(mk.proj_output_dim)
        self.b_view: str = str(mk.b_view)
        self.predictor = StochasticPredictor(drop_last_bias(self.predictor), d, self.kappa_e)
        self.backward_encoder = BackwardEncoder(d, int(mk.b_hidden_dim))

    @property
    def learnable_params(self) -> list[dict[str, Any]]:
        """The baseline's parameter groups (its ``predictor`` group holds the stochastic
        head) plus the backward encoder."""
        return [*super().learnable_params,  # type: ignore[misc]
                {"name": "backward_encoder", "params": self.backward_encoder.parameters()}]

    def forward(self, X: torch.Tensor) -> dict[str, Any]:
        """The baseline's forward, whose predictor is the stochastic head: z (projection),
        p = W z_e (prediction), and the head's mu_e, z_e (its vMF sample) and
        e_cos = mu_e^T z_e."""
        out = super().forward(X)  # type: ignore[misc]
        head = out["p"]  # the baseline's forward put the StochasticPrediction where p goes
        out.update({"p": head.p, "mu_e": head.mu_e, "z_e": head.z, "e_cos": head.cos})
        return out

    def backward_means(self, targets: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """mu_b = l2norm(b(l2norm(t))) for each view's target projection."""
        return [self.backward_encoder(t) for t in targets]
