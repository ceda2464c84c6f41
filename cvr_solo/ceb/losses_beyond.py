"""CEB losses beyond the paper: C-MoCo v3 and C-SimSiam (issue 26; docs/faithfulness.md).

Lee et al. (2021, Sec. 3) add beta R, R = log e(z|x) - log b(z|y), to a decoder term that
reads a sample z of the forward encoder e(z|x) = vMF(mu_e(x), kappa_e). C-SimCLR and C-BYOL
(:mod:`cvr_solo.ceb.losses`) are the paper's; the same construction on two more of
solo-learn's methods:

- C-MoCo v3, the contrastive family: mu_e the query (predictor output), b(z|y) = vMF(key of
  y from the momentum encoder, kappa_b = 1/temperature), MoCo v3's InfoNCE over the batch's
  keys at z, everything times MoCo v3's 2 tau;
- C-SimSiam, the regression family: C-BYOL's loss at SimSiam's scale (w = 1/4, minus the
  constant 1), SimSiam's stop-gradient projection as the target.

At beta = 0 with the sampling off each is its baseline's loss exactly. Same numerics as
:mod:`cvr_solo.ceb.losses`: float32 (float64 for float64 inputs) with autocast off, no host
sync, no loop over the batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cvr_solo.ceb.distributed import gather_rows
from cvr_solo.ceb.losses import (
    _device_or_checked_beta,
    _pair,
    _upcast,
    c_byol_loss,
    residual_information,
)
from cvr_solo.ceb.vmf import vmf_rsample
from cvr_solo.common.checks import check_positive, check_same_shape

__all__ = [
    "SIMSIAM_W",
    "CMoCoV3LossOutput",
    "CSimSiamLossOutput",
    "c_mocov3_loss",
    "c_simsiam_loss",
]

#: SimSiam's loss -(c1 + c2)/2 is w (‖p̂1 - t̂2‖² + ‖p̂2 - t̂1‖²) - 1 at this w.
SIMSIAM_W = 0.25


@dataclass(frozen=True)
class CMoCoV3LossOutput:
    """What :func:`c_mocov3_loss` returns; everything but ``loss`` is detached, for logging.

    loss: 2 tau sum over directions of mean_i [H_i + beta R_i] (differentiable).
    residual: R_i per query, shape (2B,), direction 1->2 first.
    contrastive: 2 tau (mean H of 1->2 + mean H of 2->1), MoCo v3's logged loss, at z.
    i_yz: the InfoNCE estimate of I(Y;Z), log N - mean H (N keys, the global batch).
    """

    loss: torch.Tensor
    residual: torch.Tensor
    contrastive: torch.Tensor
    i_yz: torch.Tensor


def c_mocov3_loss(
    q: Sequence[torch.Tensor],
    k: Sequence[torch.Tensor],
    kappa_e: float = 1024.0,
    kappa_b: float = 5.0,
    beta: float | torch.Tensor = 1.0,
    sample: bool = True,
) -> CMoCoV3LossOutput:
    """C-MoCo v3: MoCo v3's InfoNCE with a vMF-noised query plus beta times the residual.

    For the direction 1->2 and query i: mu_e = q̂1_i, z_i ~ vMF(mu_e, kappa_e) (z_i = mu_e if
    ``sample`` is off), b = vMF(k̂2_i, kappa_b) with k2 the momentum key of the other view
    (detached), R_i = log e(z_i) - log b(z_i), logits kappa_b z_i^T k̂2_j over the keys of the
    global batch (gathered without gradient, as solo-learn's ``mocov3_loss_func``), H_i the
    cross-entropy picking j = i; 2->1 swaps the views. With tau = 1/kappa_b:

        loss = 2 tau (mean_i [H_i + beta R_i]_{1->2} + mean_i [H_i + beta R_i]_{2->1}),

    the paper's contrastive CEB (Lee et al. 2021, Eq. 6, up to the constant log N) with the
    key as the backward encoder, at MoCo v3's loss scale 2 tau (which multiplies both terms,
    so beta weighs R against H as in C-SimCLR). beta = 0 with sampling off is
    ``mocov3_loss_func(q1, k2) + mocov3_loss_func(q2, k1)``. The C-variant's beta guard
    applies to the query-key pairs (:func:`cvr_solo.ceb.guarded_beta`).

    Args:
        q: the queries (predictor outputs) of the two views, each ``(B, d)``.
        k: the momentum keys of the two views (detached here).
        kappa_e: the forward encoder's concentration (> 0).
        kappa_b: 1/temperature (> 0); MoCo v3's solo-learn configs: tau 0.2, kappa_b 5.
        beta: the weight of R (>= 0): a number, or a 0-d tensor used as it is.
        sample: draw z from e(z|x); off, z = mu_e.

    Returns:
        :class:`CMoCoV3LossOutput`.

    Raises:
        ValueError: a bad kappa or beta, a pair that is not two tensors, or shapes that differ.

    Example:
        >>> q, k = [torch.randn(8, 16) for _ in range(2)], [torch.randn(8, 16) for _ in range(2)]
        >>> out = c_mocov3_loss(q, k, beta=0.0, sample=False)  # MoCo v3's loss at tau 0.2
        >>> out.loss.shape, out.residual.shape
        (torch.Size([]), torch.Size([16]))
    """
    kappa_e = check_positive("kappa_e", kappa_e)
    kappa_b = check_positive("kappa_b", kappa_b)
    beta = _device_or_checked_beta(beta)
    q, k = _pair("q", q), _pair("k", k)
    check_same_shape(("q[0]", "q[1]", "k[0]", "k[1]"), (*q, *k))
    b = q[0].shape[0]
    with torch.autocast(q[0].device.type, enabled=False):
        mu_e = F.normalize(_upcast(torch.cat(q)), dim=-1)  # (2B, d): 1->2, then 2->1
        keys = [F.normalize(_upcast(x.detach()), dim=-1) for x in k]
        if sample:
            z, cos_e = vmf_rsample(mu_e, kappa_e)
        else:
            z, cos_e = mu_e, torch.ones(2 * b, dtype=mu_e.dtype, device=mu_e.device)
        residual = residual_information(z, mu_e, torch.cat([keys[1], keys[0]]), kappa_e,
                                        kappa_b, e_cos=cos_e)
        all2, offset = gather_rows(keys[1])
        all1, _ = gather_rows(keys[0])
        logits = kappa_b * torch.stack([z[:b] @ all2.T, z[b:] @ all1.T])  # (2, B, N)
        labels = torch.arange(b, device=z.device) + offset
        contrastive = F.cross_entropy(logits.flatten(0, 1), labels.repeat(2),
                                      reduction="none").view(2, b)
        scale = 2.0 / kappa_b
        loss = scale * (contrastive + beta * residual.view(2, b)).mean(1).sum()
    h = contrastive.detach().mean(1)
    return CMoCoV3LossOutput(loss=loss, residual=residual.detach(),
                             contrastive=scale * h.sum(),
                             i_yz=math.log(all1.shape[0]) - h.mean())


@dataclass(frozen=True)
class CSimSiamLossOutput:
    """What :func:`c_simsiam_loss` returns; everything but ``loss`` is detached, for logging.

    loss: mean over the batch of -(ĉ1 + ĉ2)/2 + beta (R(v1) + R(v2)).
    neg_cos_sim: -(ĉ1 + ĉ2)/2, SimSiam's loss (ĉ1 = p̂1^T t̂2, ĉ2 = p̂2^T t̂1).
    residual: R per example and view, shape (2, B).
    """

    loss: torch.Tensor
    neg_cos_sim: torch.Tensor
    residual: torch.Tensor


def c_simsiam_loss(
    p: Sequence[torch.Tensor],
    t: Sequence[torch.Tensor],
    z: Sequence[torch.Tensor],
    e_loc: Sequence[torch.Tensor],
    b_loc: Sequence[torch.Tensor],
    kappa_e: float = 16384.0,
    kappa_b: float = 10.0,
    beta: float = 0.0125,
    b_view: str = "same",
    e_cos: Sequence[torch.Tensor] | None = None,
) -> CSimSiamLossOutput:
    """C-SimSiam: SimSiam's negative cosine plus beta times the residual of both views.

    The arguments are :func:`cvr_solo.ceb.c_byol_loss`'s, with t the stop-gradient
    projections of SimSiam (detached here) instead of BYOL's EMA targets. Since
    ‖p̂ - t̂‖² = 2 - 2 p̂^T t̂,

        loss = mean_i -(ĉ1 + ĉ2)/2 + beta (R(v1) + R(v2))
             = c_byol_loss(w = 1/4, beta) - 1,

    the regression CEB of C-BYOL (Lee et al. 2021, Sec. 4.2) at SimSiam's loss scale. The
    default beta = 0.0125 is a tenth of the 1/8 that keeps C-BYOL's published beta / w = 1/2
    at w = 1/4 (1/8 collapsed SimSiam, which has no EMA target, at the cpu budget); kappa_e
    and kappa_b are C-BYOL's published ones. beta = 0 with z = mu_e is SimSiam's loss
    ``simsiam_loss_func(p1, z2) / 2 + simsiam_loss_func(p2, z1) / 2``.

    Args:
        p: the online predictions of the two views, each ``(B, d)``.
        t: SimSiam's projections of the two views (the targets; detached here).
        z: the vMF samples of the two views.
        e_loc: mu_e of the two views (unit rows).
        b_loc: mu_b of the two views' targets (unit rows).
        kappa_e: the forward encoder's concentration (> 0).
        kappa_b: the backward encoder's concentration (> 0).
        beta: the weight of R (>= 0).
        b_view: ``same`` or ``other`` (:data:`cvr_solo.ceb.B_VIEWS`).
        e_cos: mu_e^T z of the two views from the sampler; None: computed from z.

    Returns:
        :class:`CSimSiamLossOutput`.

    Raises:
        ValueError: as :func:`cvr_solo.ceb.c_byol_loss`.

    Example:
        >>> u = F.normalize(torch.randn(4, 8), dim=-1)
        >>> v = [u, u]  # predictions equal to targets: cosine 1
        >>> c_simsiam_loss(v, v, v, v, v, beta=0.0).loss.item()
        -1.0
    """
    out = c_byol_loss(p, t, z, e_loc, b_loc, kappa_e=kappa_e, kappa_b=kappa_b, beta=beta,
                      w=SIMSIAM_W, b_view=b_view, e_cos=e_cos)
    return CSimSiamLossOutput(loss=out.loss - 1.0,
                              neg_cos_sim=SIMSIAM_W * out.regression - 1.0,
                              residual=out.residual)
