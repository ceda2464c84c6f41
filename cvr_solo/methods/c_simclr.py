"""C-SimCLR (Lee et al., "Compressive Visual Representations", NeurIPS 2021, Sec. 4.1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import omegaconf
import torch
import torch.nn.functional as F
from solo.methods.simclr import SimCLR

from cvr_solo.ceb.diagnostics import lipschitz_lower_bound_from_cos
from cvr_solo.ceb.guard import guarded_beta
from cvr_solo.ceb.losses import c_simclr_loss
from cvr_solo.common.metric_names import ALIGN_RATIO, CONTRASTIVE, I_YZ, LIPSCHITZ_LOWER_BOUND
from cvr_solo.common.representation import z_std
from cvr_solo.methods._ceb import CEBMixin, fill_ceb_cfg


class CSimCLR(CEBMixin, SimCLR):
    baseline = SimCLR

    def __init__(self, cfg: omegaconf.DictConfig):
        """SimCLR whose anchor is a vMF sample and whose loss adds beta times the residual.

        The network is solo-learn's SimCLR unchanged (backbone + projector): mu_e and mu_b are
        both the l2-normalised projector, so there are no new parameters. The loss is
        :func:`cvr_solo.ceb.c_simclr_loss` (the release's objective) at the beta of
        :func:`cvr_solo.ceb.guarded_beta`; kappa_b plays 1/temperature.

        Extra cfg settings (method_kwargs, besides SimCLR's proj_hidden_dim/proj_output_dim);
        defaults in :data:`cvr_solo.config.validate.CEB_DEFAULTS`:
            kappa_e (float): forward-encoder concentration. Defaults to 1024.
            kappa_b (float): backward concentration = 1/temperature: give either (the other
                is derived). Defaults to 10; the shipped configs keep their baseline's
                temperature, 0.2 (kappa_b 5), except ImageNet's 0.1 (kappa_b 10).
            beta (float): weight of the residual information. Defaults to 1.
            beta_schedule (str): constant | warmup | cosine. Defaults to constant.
            beta_warmup_epochs (float): ramp length of ``warmup``. Defaults to 0.
            beta_guard (float | None): gamma of the guard, min(beta, gamma (D/A - 1) / A_d):
                beta is held below the batch's shrink threshold (:mod:`cvr_solo.ceb.guard`;
                at gamma 0.5, d 256, kappa_e 1024 the whole beta = 1 passes once
                A/D <= 0.361). Defaults to 0.5; None: off, the release's constant beta.
            lipschitz_diagnostic (bool): log the Lipschitz lower bound. Defaults to True.
        """
        super().__init__(cfg)
        self._init_ceb(self.cfg)
        self.lipschitz_diagnostic: bool = bool(self.cfg.method_kwargs.lipschitz_diagnostic)

    @staticmethod
    def add_and_assert_specific_cfg(cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """Fills and checks the CEB keys (deriving temperature = 1/kappa_b), then SimCLR's."""
        cfg = fill_ceb_cfg(cfg, "c_simclr")
        cfg = super(CSimCLR, CSimCLR).add_and_assert_specific_cfg(cfg)
        return cfg

    def training_step(self, batch: Sequence[Any], batch_idx: int) -> torch.Tensor:
        """C-SimCLR loss on the two views plus the online classifier's loss."""
        out = self.shared_step(batch, batch_idx)
        r1, r2 = out["z"]
        beta: float | torch.Tensor = self.current_beta()
        extra: dict[str, Any] = {}
        if self.beta_guard is not None:
            beta, extra[ALIGN_RATIO] = guarded_beta(r1, r2, beta, self.kappa_e, self.beta_guard)
        ceb = c_simclr_loss(r1, r2, kappa_e=self.kappa_e, kappa_b=self.kappa_b, beta=beta)
        extra.update({CONTRASTIVE: ceb.contrastive, I_YZ: ceb.i_yz})
        if self.lipschitz_diagnostic:
            with torch.no_grad():
                h1, h2 = F.normalize(r1.float(), dim=-1), F.normalize(r2.float(), dim=-1)
                extra[LIPSCHITZ_LOWER_BOUND] = lipschitz_lower_bound_from_cos(
                    (h1 * h2).sum(-1), batch[1][0], batch[1][1])
        self._log_ceb(ceb.loss, ceb.residual, beta, z_std(torch.stack([r1, r2])), "c_simclr",
                      extra)
        return ceb.loss + out["loss"]
