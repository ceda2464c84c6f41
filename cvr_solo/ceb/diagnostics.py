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
from cvr_solo.checks import (
    check_dim,
    check_features,
    check_fraction,
    check_non_negative,
    check_positive,
    check_same_shape,
)

__all__ = ["embedding_distance_from_kl", "lipschitz_lower_bound",
           "lipschitz_lower_bound_from_cos", "pair_distances",
           "residual_floor", "shrink_threshold"]


def residual_floor(d: int, kappa_e: float, kappa_b: float) -> float:
    """min over mu_b of KL(vMF(mu, kappa_e) || vMF(mu_b, kappa_b)), reached at mu_b = mu."""
    return float(vmf_kl(d, kappa_e, kappa_b, 1.0))


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


def held_back_beta(beta: float, h1: torch.Tensor, h2: torch.Tensor, kappa_e: float,
                   guard: float) -> tuple[torch.Tensor, torch.Tensor]:
    """beta, held below the shrink threshold of this batch: (beta_eff, A/D), both 0-d tensors.

        beta_eff = min(beta, guard (D/A - 1) / A_d(kappa_e)),

    so that (1 + beta_eff A_d) A/D = A/D + guard (1 - A/D) < 1: the contrastive term's pull
    apart always outweighs the residual's pull together by the factor 1 - guard of SimCLR's
    own margin (see :func:`shrink_threshold`). With A/D small (views aligned, images apart)
    beta_eff = beta. Computed on the batch given (pass the gathered one under DDP), detached,
    without a host sync.

    Args:
        beta: the scheduled beta (>= 0).
        h1: ``(n, d)`` unit-norm projections of the first views.
        h2: ``(n, d)`` unit-norm projections of the second views.
        kappa_e: the forward encoder's concentration.
        guard: in (0, 1]; 1 holds beta at the threshold itself.

    Returns:
        ``(beta_eff, ratio)``, float tensors on the inputs' device.

    Raises:
        ValueError: beta, kappa_e or guard out of range.

    Example:
        >>> h = torch.eye(4)
        >>> float(held_back_beta(1.0, h, h, 1024.0, 0.5)[0])  # aligned: beta itself
        1.0
    """
    beta = check_non_negative("beta", beta)
    kappa_e = check_positive("kappa_e", kappa_e)
    guard = check_fraction("guard", guard)
    positive, negative = pair_distances(h1, h2)
    ratio = positive / negative.clamp_min(1e-12)
    a_d = _mean_resultant_length(check_dim("d", h1.shape[-1]), kappa_e)
    room = guard * (1 / ratio.clamp_min(1e-12) - 1) / a_d
    return room.clamp(min=0.0, max=beta), ratio


def shrink_threshold(d: int, kappa_e: float, beta: float) -> float:
    """The alignment ratio A/D above which C-SimCLR's loss falls as the projections shrink.

    Near a concentrated representation (all h = z/|z| close together) the C-SimCLR loss per
    anchor is about (kappa_b / 2) [(1 + beta A_d(kappa_e)) A - D] + const, with A and D the
    mean squared distances of positive and negative pairs: the contrastive term contributes
    (kappa_b / 2)(A - D) and beta R adds beta kappa_b A_d(kappa_e) A / 2. Scaling every
    distance by s < 1 scales the bracket by s, so when it is positive, i.e.

        A / D > 1 / (1 + beta A_d(kappa_e)),

    shrinking towards one point lowers the loss (0.531 at d = 256, kappa_e = 1024, beta = 1).

    Args:
        d: the projection dimension.
        kappa_e: the forward encoder's concentration.
        beta: the residual's weight (>= 0).

    Returns:
        The threshold, in (0, 1]; 1 at beta = 0 (SimCLR).

    Raises:
        ValueError: d, kappa_e or beta out of range.

    Example:
        >>> round(shrink_threshold(256, 1024.0, 1.0), 3)
        0.531
    """
    d = check_dim("d", d)
    kappa_e = check_positive("kappa_e", kappa_e)
    beta = check_non_negative("beta", beta)
    return 1.0 / (1.0 + beta * _mean_resultant_length(d, kappa_e))


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
