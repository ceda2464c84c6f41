"""C-SimCLR's beta guard: the shrink threshold, beta held below it, and where it lets go.

Near a concentrated representation the C-SimCLR loss per anchor is about
(kappa_b / 2) [(1 + beta A_d(kappa_e)) A - D] (A, D: the mean squared distances of positive
and negative pairs of unit projections), so while A/D > 1 / (1 + beta A_d) shrinking every
projection towards one point lowers it: with the published constant beta = 1 C-SimCLR
collapses in its first steps on the shipped configs (docs/c-simclr-stability.md). The guard
(``method_kwargs.beta_guard``, gamma, default 0.5; null: the release's constant beta) uses

    beta_eff = min(beta, gamma (D/A - 1) / A_d(kappa_e))

of the gathered batch. At the shipped values (d = 256, kappa_e = 1024, beta = 1, gamma = 0.5)
the threshold is A/D = 0.531, and the guard passes the whole beta only once
A/D <= gamma / (gamma + beta A_d) = 0.361 (:func:`full_beta_ratio`); beta_eff falls to 0 as
A/D reaches 1. None of this is in the paper or the release.
"""

from __future__ import annotations

import torch

from cvr_solo.ceb.diagnostics import pair_distances
from cvr_solo.ceb.distributed import gather_rows
from cvr_solo.ceb.losses import _upcast
from cvr_solo.ceb.special import _mean_resultant_length
from cvr_solo.common.checks import (
    check_dim,
    check_features,
    check_fraction,
    check_non_negative,
    check_positive,
    check_same_shape,
)

__all__ = ["full_beta_ratio", "guarded_beta", "held_back_beta", "shrink_threshold"]


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


def full_beta_ratio(d: int, kappa_e: float, beta: float, guard: float) -> float:
    """The alignment ratio A/D at and below which the guard passes the whole beta:

        gamma (D/A - 1) / A_d(kappa_e) >= beta  <=>  A/D <= gamma / (gamma + beta A_d(kappa_e)).

    Args:
        d: the projection dimension.
        kappa_e: the forward encoder's concentration.
        beta: the scheduled beta (> 0).
        guard: gamma, in (0, 1].

    Returns:
        The ratio, in (0, 1).

    Raises:
        ValueError: an argument out of range.

    Example:
        >>> round(full_beta_ratio(256, 1024.0, 1.0, 0.5), 3)  # the shipped C-SimCLR
        0.361
    """
    d = check_dim("d", d)
    kappa_e = check_positive("kappa_e", kappa_e)
    beta = check_positive("beta", beta)
    guard = check_fraction("guard", guard)
    return guard / (guard + beta * _mean_resultant_length(d, kappa_e))


def guarded_beta(r1: torch.Tensor, r2: torch.Tensor, beta: float, kappa_e: float,
                 guard: float) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`held_back_beta` of the global batch: the projections are l2-normalised and,
    under torch.distributed, gathered from every rank, so every rank gets the same beta.
    Detached; no host sync.

    Args:
        r1: ``(B, d)`` projections of the first views (any scale).
        r2: ``(B, d)`` projections of the second views.
        beta: the scheduled beta (>= 0).
        kappa_e: the forward encoder's concentration.
        guard: gamma, in (0, 1].

    Returns:
        ``(beta_eff, ratio)``, 0-d float tensors: the beta to pass to
        :func:`cvr_solo.ceb.c_simclr_loss`, and A/D of the batch.

    Raises:
        ValueError: an argument out of range, or r1, r2 of different shapes.

    Example:
        >>> r = torch.randn(8, 16)
        >>> float(guarded_beta(r, r, 1.0, 1024.0, 0.5)[0])  # views equal: the whole beta
        1.0
    """
    check_features("r1", r1)
    check_features("r2", r2)
    check_same_shape(("r1", "r2"), (r1, r2))
    with torch.no_grad(), torch.autocast(r1.device.type, enabled=False):
        h1, h2 = (torch.nn.functional.normalize(_upcast(r.detach()), dim=-1) for r in (r1, r2))
        return held_back_beta(beta, gather_rows(h1)[0], gather_rows(h2)[0], kappa_e, guard)
