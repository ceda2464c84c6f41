"""C-BYOL (Lee et al., "Compressive Visual Representations", NeurIPS 2021, Sec. 4.2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import omegaconf
import torch
from solo.methods.byol import BYOL

from cvr_solo.ceb.losses import c_byol_loss
from cvr_solo.common.metric_names import NEG_COS_SIM
from cvr_solo.common.representation import z_std
from cvr_solo.methods._ceb import CEBMixin, StochasticHeads, fill_ceb_cfg


class CBYOL(StochasticHeads, CEBMixin, BYOL):
    baseline = BYOL

    def __init__(self, cfg: omegaconf.DictConfig):
        """BYOL with a stochastic vMF predictor and a trainable backward encoder.

        Online: backbone -> BYOL projector -> BYOL's predictor as built, its last Linear made
        bias-free as in the release and wrapped in a
        :class:`~cvr_solo.ceb.heads.StochasticPredictor` (both heads:
        :class:`~cvr_solo.methods._ceb.StochasticHeads`): mu_e = l2norm(MLP(y)), z ~ vMF(mu_e,
        kappa_e) while training, z = mu_e in eval, p = W z. Target: solo-learn's EMA backbone
        + projector -> t (no gradient). :class:`~cvr_solo.ceb.heads.BackwardEncoder` on
        l2norm(t) gives mu_b; it is trained (never EMA-updated) through beta * (-log b).
        Loss: :func:`cvr_solo.ceb.c_byol_loss`. Everything else (optimiser, lr, projector,
        EMA schedule, augmentations, backbone and stem) is BYOL's.

        Extra cfg settings (method_kwargs, besides BYOL's proj_hidden_dim, proj_output_dim,
        pred_hidden_dim); defaults in :data:`cvr_solo.config.validate.CEB_DEFAULTS`:
            kappa_e (float): forward-encoder concentration. Defaults to 16384.
            kappa_b (float): backward-encoder concentration. Defaults to 10.
            beta (float): weight of the residual information. Defaults to 0.5.
            beta_schedule (str): constant | warmup | cosine. Defaults to constant.
            beta_warmup_epochs (float): ramp length of ``warmup``. Defaults to 0.
            w (float): weight of the regression term. Defaults to 1, solo-learn's BYOL scale
                (w and beta: docs/c-byol-scale.md).
            b_view (str): condition b on the target of the ``same`` view as z (the public TF
                release, which produced the published numbers; default) or of the ``other``
                view (the CEB definition read literally).
            b_hidden_dim (int): hidden width of the backward encoder. Defaults to 4096.
        """
        super().__init__(cfg)
        self._init_ceb(self.cfg)
        self._init_heads(self.cfg.method_kwargs)
        self.w: float = float(self.cfg.method_kwargs.w)

    @staticmethod
    def add_and_assert_specific_cfg(cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """Fills and checks the CEB keys, then BYOL's."""
        cfg = fill_ceb_cfg(cfg, "c_byol")
        cfg = super(CBYOL, CBYOL).add_and_assert_specific_cfg(cfg)
        return cfg

    def training_step(self, batch: Sequence[Any], batch_idx: int) -> torch.Tensor:
        """C-BYOL loss on the two views plus the online (and momentum) classifiers' losses."""
        out = self.shared_step(batch, batch_idx)
        targets = out["momentum_z"]
        beta = self.current_beta()
        ceb = c_byol_loss(out["p"], targets, out["z_e"], out["mu_e"],
                          self.backward_means(targets), kappa_e=self.kappa_e,
                          kappa_b=self.kappa_b, beta=beta, w=self.w, b_view=self.b_view,
                          e_cos=out["e_cos"])
        self._log_ceb(ceb.loss, ceb.residual, beta, z_std(torch.stack(out["z"])), "c_byol",
                      {NEG_COS_SIM: ceb.regression})
        return ceb.loss + out["loss"]
