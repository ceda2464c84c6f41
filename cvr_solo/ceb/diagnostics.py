"""Diagnostics of the CEB residual: its floor and a Lipschitz lower bound.

E_z[R] = KL(e || b) for z ~ e (Lee et al. 2021, Sec. 3). For vMF encoders of the same d,

    KL = (kappa_e - kappa_b mu_e^T mu_b) A_d(kappa_e) + log C_d(kappa_e) - log C_d(kappa_b),

which is smallest, the *floor*, when mu_e = mu_b: R is a large positive number even at
perfect agreement (184.68 nats for (1024, 10), 522.36 for (16384, 10), d = 256).

For C-SimCLR mu_e = mu_b = h (the normalised projector), so solving for the distance gives

    ‖h(x) - h(y)‖² = 2 [KL - (kappa_e - kappa_b) A_d(kappa_e) - log C_d(kappa_e)
                       + log C_d(kappa_b)] / (kappa_b A_d(kappa_e)),

and Lip(h) >= ‖h(x) - h(y)‖ / ‖x - y‖ for any two views x, y of an image. (Derived here from
the CEB bound; not stated in the paper's text.) Given the cosine itself, the distance is
‖h(x) - h(y)‖ = sqrt(2 - 2 h(x)^T h(y)) (:func:`lipschitz_lower_bound_from_cos`), exact where
the KL route subtracts a floor of hundreds of nats.
"""

from __future__ import annotations

import torch

from cvr_solo.ceb.special import _mean_resultant_length
from cvr_solo.ceb.vmf import vmf_kl
from cvr_solo.common.checks import (
    check_dim,
    check_features,
    check_positive,
    check_same_shape,
)

__all__ = ["embedding_distance_from_kl", "lipschitz_lower_bound",
           "lipschitz_lower_bound_from_cos", "pair_distances", "residual_floor"]


def residual_floor(d: int, kappa_e: float, kappa_b: float) -> float:
    """min over mu_b of KL(vMF(mu, kappa_e) || vMF(mu_b, kappa_b)), reached at mu_b = mu."""
    return float(vmf_kl(d, check_positive("kappa_e", kappa_e),
                        check_positive("kappa_b", kappa_b), 1.0))


def pair_distances(h1: torch.Tensor, h2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, D) of unit vectors: A = mean_i ‖h1_i - h2_i‖², D = mean over i != j of
    ‖h_i - h_j‖² within each view, averaged over the two views; O(n d), detached, no sync.

    D = 2 - 2 (‖sum_i h_i‖² - n) / (n (n - 1)). Inputs: (n >= 2, d), rows of unit norm.

    Example:
        >>> a, d = pair_distances(torch.eye(3), torch.eye(3))
        >>> float(a), float(d)
        (0.0, 2.0)
    """
    with torch.no_grad():
        h = torch.stack([h1, h2]).detach()
        n = h.shape[1]
        positive = (h[0] - h[1]).square().sum(-1).mean()
        mean_cos = (h.sum(1).square().sum(-1) - n) / (n * (n - 1))
        return positive, (2 - 2 * mean_cos).mean()


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


def _check_pairs(name: str, per_pair: object, x: object, y: object) -> None:
    """``per_pair`` holds one value per pair of views ``x``, ``y`` (B, ...)."""
    if not isinstance(per_pair, torch.Tensor) or per_pair.dim() != 1:
        raise ValueError(f"{name} must be a 1-d tensor (one value per pair), got "
                         f"{getattr(per_pair, 'shape', type(per_pair).__name__)}")
    check_features("x", x, ndim=None)
    check_features("y", y, ndim=None)
    check_same_shape(("x", "y"), (x, y))
    if x.shape[0] != per_pair.shape[0]:
        raise ValueError(f"x must have one row per {name} value ({per_pair.shape[0]}), got "
                         f"{x.shape[0]}")


def _max_ratio(dist_h: torch.Tensor, x: torch.Tensor, y: torch.Tensor, eps: float,
               like: torch.Tensor) -> torch.Tensor:
    """max_i dist_h_i / ‖x_i - y_i‖ over the pairs with ‖x_i - y_i‖ > eps (0 if none), in
    ``like``'s floating dtype (float32 for an integer one)."""
    dist_x = (x.detach().double() - y.detach().double()).flatten(1).norm(dim=1)
    ratio = torch.where(dist_x > eps, dist_h / dist_x.clamp_min(eps), torch.zeros_like(dist_h))
    return ratio.max().to(like.dtype if like.is_floating_point() else torch.float32)


def lipschitz_lower_bound(kl: torch.Tensor, x: torch.Tensor, y: torch.Tensor, d: int,
                          kappa_e: float, kappa_b: float, eps: float = 1e-12) -> torch.Tensor:
    """max over pairs i of ‖h(x_i) - h(y_i)‖ / ‖x_i - y_i‖, a lower bound on Lip(h), with the
    distance from :func:`embedding_distance_from_kl`.

    kl: KL(e(.|x_i) || b(.|y_i)) per pair, shape (B,) (closed form or the residual R as a
    one-sample estimate); x, y: the two views, shape (B, ...). Pairs with ‖x_i - y_i‖ <= eps
    are skipped (0 if all are). Given the cosines, :func:`lipschitz_lower_bound_from_cos`.
    """
    _check_pairs("kl", kl, x, y)
    dist_h = embedding_distance_from_kl(kl.detach().double(), d, kappa_e, kappa_b)
    return _max_ratio(dist_h, x, y, eps, kl)


def lipschitz_lower_bound_from_cos(cos: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                                   eps: float = 1e-12) -> torch.Tensor:
    """max over pairs i of ‖h(x_i) - h(y_i)‖ / ‖x_i - y_i‖ with ‖h(x) - h(y)‖ = sqrt(2 - 2 cos)
    for unit h: :func:`lipschitz_lower_bound` without the KL.

    cos: h(x_i)^T h(y_i) per pair, shape (B,); x, y, eps: as in :func:`lipschitz_lower_bound`.
    """
    _check_pairs("cos", cos, x, y)
    return _max_ratio((2 - 2 * cos.detach().double()).clamp_min(0).sqrt(), x, y, eps, cos)
