"""Diagnostics of the CEB residual: its floor and a Lipschitz lower bound.

E_z[R] = KL(e || b) for z ~ e (Lee et al. 2021, Sec. 3). For vMF encoders of the same d,

    KL = (kappa_e - kappa_b mu_e^T mu_b) A_d(kappa_e) + log C_d(kappa_e) - log C_d(kappa_b),

which is smallest, the *floor*, when mu_e = mu_b: R is a large positive number even at
perfect agreement (184.68 nats for (1024, 10), 522.36 for (16384, 10), d = 256).

For C-SimCLR mu_e = mu_b = h (the normalised projector), so solving for the distance gives

    ‖h(x) - h(y)‖² = 2 [KL - (kappa_e - kappa_b) A_d(kappa_e) - log C_d(kappa_e)
                       + log C_d(kappa_b)] / (kappa_b A_d(kappa_e)),

and Lip(h) >= ‖h(x) - h(y)‖ / ‖x - y‖ for any two views x, y of an image. (Derived here from
the CEB bound; not stated in the paper's text.)
"""

from __future__ import annotations

import torch

from cvr_solo.ceb._checks import check_dim, check_features, check_positive, check_same_shape
from cvr_solo.ceb.special import _mean_resultant_length
from cvr_solo.ceb.vmf import vmf_kl

__all__ = ["embedding_distance_from_kl", "lipschitz_lower_bound", "residual_floor"]


def residual_floor(d: int, kappa_e: float, kappa_b: float) -> float:
    """min over mu_b of KL(vMF(mu, kappa_e) || vMF(mu_b, kappa_b)), reached at mu_b = mu."""
    return float(vmf_kl(d, kappa_e, kappa_b, 1.0))


def embedding_distance_from_kl(kl: torch.Tensor, d: int, kappa_e: float,
                               kappa_b: float) -> torch.Tensor:
    """‖h(x) - h(y)‖ implied by KL(e || b) (elementwise); clamped at 0 from below, since
    Monte Carlo estimates of KL can fall under the floor."""
    d = check_dim("d", d)
    kappa_e = check_positive("kappa_e", kappa_e)
    kappa_b = check_positive("kappa_b", kappa_b)
    sq = 2 * (kl - residual_floor(d, kappa_e, kappa_b)) / (
        kappa_b * _mean_resultant_length(d, kappa_e))
    return sq.clamp_min(0).sqrt()


def lipschitz_lower_bound(kl: torch.Tensor, x: torch.Tensor, y: torch.Tensor, d: int,
                          kappa_e: float, kappa_b: float, eps: float = 1e-12) -> torch.Tensor:
    """max over pairs i of ‖h(x_i) - h(y_i)‖ / ‖x_i - y_i‖, a lower bound on Lip(h).

    kl: KL(e(.|x_i) || b(.|y_i)) per pair, shape (B,) (closed form or the residual R as a
    one-sample estimate); x, y: the two views, shape (B, ...). Pairs with ‖x_i - y_i‖ <= eps
    are skipped (0 if all are).
    """
    if not isinstance(kl, torch.Tensor) or kl.dim() != 1:
        raise ValueError(f"kl must be a 1-d tensor (one value per pair), got "
                         f"{getattr(kl, 'shape', type(kl).__name__)}")
    check_features("x", x, ndim=None)
    check_features("y", y, ndim=None)
    check_same_shape(("x", "y"), (x, y))
    if x.shape[0] != kl.shape[0]:
        raise ValueError(f"x must have one row per kl value ({kl.shape[0]}), got {x.shape[0]}")
    dist_h = embedding_distance_from_kl(kl.detach().double(), d, kappa_e, kappa_b)
    dist_x = (x.detach().double() - y.detach().double()).flatten(1).norm(dim=1)
    ratio = torch.where(dist_x > eps, dist_h / dist_x.clamp_min(eps), torch.zeros_like(dist_h))
    return ratio.max().to(kl.dtype if kl.is_floating_point() else torch.float32)
