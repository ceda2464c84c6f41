"""C-SimSiam: SimSiam (Chen & He 2021) compressed as Lee et al. (2021, Sec. 4.2) compress
BYOL; beyond the paper (docs/faithfulness.md#c-simsiam)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import omegaconf
import torch
from solo.methods.simsiam import SimSiam

from cvr_solo.ceb.losses_beyond import c_simsiam_loss
from cvr_solo.common.metric_names import NEG_COS_SIM
from cvr_solo.common.representation import z_std
from cvr_solo.methods._ceb import CEBMixin, StochasticHeads, fill_ceb_cfg


class CSimSiam(StochasticHeads, CEBMixin, SimSiam):
    baseline = SimSiam

    def __init__(self, cfg: omegaconf.DictConfig):
        """SimSiam with C-BYOL's stochastic vMF predictor and trainable backward encoder.

        Online: backbone -> SimSiam projector -> SimSiam's predictor as built (fixed lr, as
        SimSiam's), its last bias dropped and wrapped in a
        :class:`~cvr_solo.ceb.heads.StochasticPredictor`: mu_e = l2norm(MLP(z)),
        z_e ~ vMF(mu_e, kappa_e) while training, p = W z_e. Target: the other view's
        projection with its gradient stopped (SimSiam's); a
        :class:`~cvr_solo.ceb.heads.BackwardEncoder` on it gives mu_b, trained through
        beta * (-log b) only. Loss: :func:`cvr_solo.ceb.c_simsiam_loss`, SimSiam's negative
        cosine plus beta (R(v1) + R(v2)). Everything else is SimSiam's.

        Extra cfg settings (method_kwargs, besides SimSiam's proj_hidden_dim,
        proj_output_dim, pred_hidden_dim); defaults in
        :data:`cvr_solo.config.validate.CEB_DEFAULTS`, C-BYOL's at SimSiam's loss scale:
            kappa_e (float): forward-encoder concentration. Defaults to 16384.
            kappa_b (float): backward-encoder concentration. Defaults to 10.
            beta (float): weight of the residual information. Defaults to 0.0125, a
                tenth of C-BYOL's published beta / w = 1/2 at SimSiam's w = 1/4 (which
                collapsed at the cpu budget).
            beta_schedule (str): constant | warmup | cosine. Defaults to constant.
            beta_warmup_epochs (float): ramp length of ``warmup``. Defaults to 0.
            b_view (str): condition b on the target of the ``same`` view as z (C-BYOL's
                release pairing; default) or of the ``other`` view.
            b_hidden_dim (int): hidden width of the backward encoder. Defaults to 512,
                SimSiam's predictor width.
        """
        super().__init__(cfg)
        self._init_ceb(self.cfg)
        self._init_heads(self.cfg.method_kwargs)

    @staticmethod
    def add_and_assert_specific_cfg(cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """Fills and checks the CEB keys, then SimSiam's."""
        cfg = fill_ceb_cfg(cfg, "c_simsiam")
        cfg = super(CSimSiam, CSimSiam).add_and_assert_specific_cfg(cfg)
        return cfg

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drops the ``get_lr`` that solo-learn puts on the lr scheduler for SimSiam's fixed
        predictor lr (a ``functools.partial``) from the saved scheduler state: with it, torch's
        default ``torch.load(weights_only=True)`` refuses the checkpoint (solo-learn's own
        main_linear.py, Lightning's ``load_from_checkpoint``). On resume, solo-learn's
        ``configure_optimizers`` sets it again before the state is loaded."""
        super().on_save_checkpoint(checkpoint)
        for state in checkpoint.get("lr_schedulers", []):
            state.pop("get_lr", None)

    def training_step(self, batch: Sequence[Any], batch_idx: int) -> torch.Tensor:
        """C-SimSiam loss on the two views plus the online classifier's loss."""
        out = self.shared_step(batch, batch_idx)
        targets = [z.detach() for z in out["z"]]
        beta = self.current_beta()
        ceb = c_simsiam_loss(out["p"], targets, out["z_e"], out["mu_e"],
                             self.backward_means(targets), kappa_e=self.kappa_e,
                             kappa_b=self.kappa_b, beta=beta, b_view=self.b_view,
                             e_cos=out["e_cos"])
        self._log_ceb(ceb.loss, ceb.residual, beta, z_std(torch.stack(out["z"])), "c_simsiam",
                      {NEG_COS_SIM: ceb.neg_cos_sim})
        return ceb.loss + out["loss"]
