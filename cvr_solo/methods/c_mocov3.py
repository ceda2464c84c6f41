"""C-MoCo v3: MoCo v3 (Chen et al. 2021) compressed as Lee et al. (2021, Sec. 4.1) compress
SimCLR; beyond the paper (docs/faithfulness.md#c-moco-v3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import omegaconf
import torch
from solo.methods.mocov3 import MoCoV3

from cvr_solo.ceb.guard import guarded_beta
from cvr_solo.ceb.losses_beyond import c_mocov3_loss
from cvr_solo.common.metric_names import ALIGN_RATIO, CONTRASTIVE_LOSS, I_YZ
from cvr_solo.common.representation import z_std
from cvr_solo.methods._ceb import CEBMixin, fill_ceb_cfg


class CMoCoV3(CEBMixin, MoCoV3):
    baseline = MoCoV3

    def __init__(self, cfg: omegaconf.DictConfig):
        """MoCo v3 whose query is a vMF sample and whose loss adds beta times the residual.

        The network is solo-learn's MoCo v3 unchanged (backbone, projector, predictor and
        their momentum copies): mu_e is the l2-normalised query (predictor output) and mu_b
        the momentum key of the other view, so there are no new parameters. The loss is
        :func:`cvr_solo.ceb.c_mocov3_loss` at the beta of :func:`cvr_solo.ceb.guarded_beta`
        on the query-key pairs; kappa_b plays 1/temperature.

        Extra cfg settings (method_kwargs, besides MoCo v3's proj_hidden_dim,
        proj_output_dim, pred_hidden_dim); defaults in
        :data:`cvr_solo.config.validate.CEB_DEFAULTS`, C-SimCLR's:
            kappa_e (float): forward-encoder concentration. Defaults to 1024.
            kappa_b (float): backward concentration = 1/temperature: give either (the other
                is derived). Defaults to 10; the shipped configs keep MoCo v3's temperature,
                0.2 (kappa_b 5), except ImageNet's 1.0 (kappa_b 1).
            beta (float): weight of the residual information. Defaults to 1.
            beta_schedule (str): constant | warmup | cosine. Defaults to constant.
            beta_warmup_epochs (float): ramp length of ``warmup``. Defaults to 0.
            beta_guard (float | None): gamma of the guard, min(beta, gamma (D/A - 1) / A_d).
                Defaults to 0.5; None: the constant beta.
        """
        super().__init__(cfg)
        self._init_ceb(self.cfg)

    @staticmethod
    def add_and_assert_specific_cfg(cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """Fills and checks the CEB keys (deriving temperature = 1/kappa_b), then MoCo v3's."""
        cfg = fill_ceb_cfg(cfg, "c_mocov3")
        cfg = super(CMoCoV3, CMoCoV3).add_and_assert_specific_cfg(cfg)
        return cfg

    def training_step(self, batch: Sequence[Any], batch_idx: int) -> torch.Tensor:
        """C-MoCo v3 loss on the two views plus the online and momentum classifiers' losses."""
        out = self.shared_step(batch, batch_idx)
        q, k = out["q"], out["momentum_k"]
        beta: float | torch.Tensor = self.current_beta()
        extra: dict[str, Any] = {}
        if self.beta_guard is not None:
            beta, extra[ALIGN_RATIO] = guarded_beta(torch.cat(q), torch.cat([k[1], k[0]]),
                                                    beta, self.kappa_e, self.beta_guard)
        ceb = c_mocov3_loss(q, k, kappa_e=self.kappa_e, kappa_b=self.kappa_b, beta=beta)
        extra.update({CONTRASTIVE_LOSS: ceb.contrastive, I_YZ: ceb.i_yz})
        self._log_ceb(ceb.loss, ceb.residual, beta, z_std(torch.stack(out["z"])), "c_mocov3",
                      extra)
        return ceb.loss + out["loss"]
