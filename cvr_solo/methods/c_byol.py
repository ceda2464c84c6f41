"""C-BYOL (Lee et al., "Compressive Visual Representations", NeurIPS 2021, Sec. 4.2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import omegaconf
import torch
import torch.nn as nn
import torch.nn.functional as F
from solo.methods.base import BaseMomentumMethod
from solo.methods.byol import BYOL

from cvr_solo.ceb.losses import c_byol_loss
from cvr_solo.ceb.vmf import vmf_rsample
from cvr_solo.methods._ceb import CEBMixin, fill_ceb_cfg


class CBYOL(CEBMixin, BYOL):
    def __init__(self, cfg: omegaconf.DictConfig):
        """BYOL with a stochastic vMF predictor and a trainable backward encoder.

        Online: backbone -> BYOL projector -> predictor (solo-learn's, with its last Linear
        made bias-free) -> l2-normalise = mu_e; z ~ vMF(mu_e, kappa_e) while training,
        z = mu_e in eval; p = W z with W = ``predictor_out``, Linear(d, d, bias=False).
        Target: solo-learn's EMA backbone + projector -> t (no gradient).
        Backward encoder b = Linear(b_hidden_dim)-BN-ReLU-Linear(d) on l2norm(t), its
        l2-normalised output is mu_b; trained (never EMA-updated) through beta * (-log b).
        Loss: :func:`cvr_solo.ceb.c_byol_loss`.

        Extra cfg settings (method_kwargs, besides BYOL's proj_hidden_dim, proj_output_dim,
        pred_hidden_dim):
            kappa_e (float): forward-encoder concentration. Defaults to 16384.
            kappa_b (float): backward-encoder concentration. Defaults to 10.
            beta (float): weight of the residual information. Defaults to 1.
            beta_schedule (str): constant | warmup | cosine. Defaults to constant.
            beta_warmup_epochs (float): ramp length of ``warmup``. Defaults to 0.
            w (float): weight of the regression term (kappa_d / 2). Defaults to 2.
            b_view (str): condition b on the target of the ``other`` view (CEB definition,
                default) or the ``same`` view as z (the public TF release).
            b_hidden_dim (int): hidden width of the backward encoder. Defaults to 4096.
        """
        super().__init__(cfg)
        self._init_ceb(self.cfg)
        mk = self.cfg.method_kwargs
        d, hidden = int(mk.proj_output_dim), int(mk.pred_hidden_dim)
        self.w: float = float(mk.w)
        self.b_view: str = str(mk.b_view)
        last = self.predictor[-1]
        if not (isinstance(last, nn.Linear) and last.in_features == hidden
                and last.out_features == d):
            raise TypeError(f"unexpected solo-learn BYOL predictor layout: {self.predictor}")
        self.predictor[-1] = nn.Linear(hidden, d, bias=False)
        self.predictor_out = nn.Linear(d, d, bias=False)
        b_hidden = int(mk.b_hidden_dim)
        self.backward_encoder = nn.Sequential(
            nn.Linear(d, b_hidden),
            nn.BatchNorm1d(b_hidden),
            nn.ReLU(),
            nn.Linear(b_hidden, d),
        )

    @staticmethod
    def add_and_assert_specific_cfg(cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """Fills and checks the CEB keys, then BYOL's."""
        cfg = fill_ceb_cfg(cfg, "c_byol")
        cfg = super(CBYOL, CBYOL).add_and_assert_specific_cfg(cfg)
        return cfg

    @property
    def learnable_params(self) -> list[dict[str, Any]]:
        """BYOL's parameter groups plus the output layer and the backward encoder."""
        return [*super().learnable_params,
                {"name": "predictor_out", "params": self.predictor_out.parameters()},
                {"name": "backward_encoder", "params": self.backward_encoder.parameters()}]

    def forward(self, X: torch.Tensor) -> dict[str, Any]:
        """BYOL's forward, then the stochastic head: mu_e, its vMF sample and p = W z."""
        out = super().forward(X)
        mu_e = F.normalize(out["p"], dim=-1)
        if self.training:
            z_e, e_cos = vmf_rsample(mu_e, self.kappa_e)
        else:
            z_e, e_cos = mu_e, torch.ones(mu_e.shape[:-1], device=mu_e.device)
        out.update({"mu_e": mu_e, "z_e": z_e, "e_cos": e_cos, "p": self.predictor_out(z_e)})
        return out

    def backward_means(self, targets: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """mu_b = l2norm(b(l2norm(t))) for each view's target projection."""
        return [F.normalize(self.backward_encoder(F.normalize(t.detach(), dim=-1)), dim=-1)
                for t in targets]

    def training_step(self, batch: Sequence[Any], batch_idx: int) -> torch.Tensor:
        """C-BYOL loss on the two views plus the online (and momentum) classifiers' losses."""
        out = BaseMomentumMethod.training_step(self, batch, batch_idx)
        targets = out["momentum_z"]
        beta = self.current_beta()
        ceb = c_byol_loss(out["p"], targets, out["z_e"], out["mu_e"],
                          self.backward_means(targets), kappa_e=self.kappa_e,
                          kappa_b=self.kappa_b, beta=beta, w=self.w, b_view=self.b_view,
                          e_cos=out["e_cos"])
        with torch.no_grad():
            z_std = F.normalize(torch.stack(out["z"]).float(), dim=-1).std(dim=1).mean()
        self._log_ceb(ceb.loss, ceb.residual, beta, z_std, "c_byol",
                      neg_cos_sim=ceb.regression)
        return ceb.loss + out["loss"]
