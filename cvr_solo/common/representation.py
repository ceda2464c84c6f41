"""Representation diagnostics: collapse and spread of features, without solo-learn.

- :func:`effective_rank`: RankMe (Garrido et al. 2023, Eq. 1), ``exp`` of the entropy of the
  normalised singular values of a batch of features.
- :func:`alignment` and :func:`uniformity`: Wang & Isola (2020, Sec. 4.1) on l2-normalised
  embeddings of positive pairs.
- :func:`z_std`: the one definition of "z std" in cvr-solo, the mean over dimensions of the
  population standard deviation over a batch of the l2-normalised embeddings; about
  ``1/sqrt(d)`` for well-spread embeddings, 0 when they collapse to one point (the collapse
  signal of Chen & He 2021, Sec. 4.1). :func:`normalised_std` is it as a Python float.
- :func:`spread`: that std with the positive and negative squared distances of a
  training batch, as device tensors (no host sync), for logging inside a training step.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from cvr_solo.common.checks import check_number

__all__ = ["COLLAPSE_FRACTION", "Spread", "alignment", "collapse_threshold", "effective_rank",
           "normalised_std", "spread", "summary", "uniformity", "z_std"]

#: Projections count as collapsed when the per-dimension std of z/|z| is below this fraction
#: of its isotropic value 1/sqrt(d): 0.0031 at d = 256, where healthy runs stay above 0.01
#: and collapsed ones fall to 0.0002-0.003 (docs/c-simclr-stability.md). The collapse
#: warning of ``cvr-solo pretrain`` and the benchmark report's flags both use it.
COLLAPSE_FRACTION = 0.05


def collapse_threshold(d: int) -> float:
    """``COLLAPSE_FRACTION / sqrt(d)``: the std of z/|z| below which projections count as
    collapsed.

    Example:
        >>> collapse_threshold(256)
        0.003125
    """
    return COLLAPSE_FRACTION / math.sqrt(check_number("d", d, low=1, integer=True))


def _matrix(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] < 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a (n >= 2, d) tensor, got {shape}")
    return x.detach().double()


def effective_rank(feats: torch.Tensor, eps: float = 1e-7) -> float:
    """RankMe: ``exp(-sum_k p_k log p_k)``, ``p_k = s_k / sum(s) + eps`` over the singular values
    ``s`` of the (uncentred) ``(n, d)`` feature matrix (Garrido et al. 2023, Eq. 1).

    Between 1 (all features on one line) and ``min(n, d)`` (equal singular values).

    Args:
        feats: ``(n, d)`` features, one row per image.
        eps: the paper's epsilon, keeping ``log`` finite for zero singular values.

    Returns:
        The effective rank (a float).

    Raises:
        ValueError: if ``feats`` is not a matrix with at least two rows.

    Example:
        >>> round(effective_rank(torch.ones(8, 4)), 3)
        1.0
    """
    s = torch.linalg.svdvals(_matrix(feats, "feats"))
    total = s.sum()
    if total <= 0:
        return 1.0
    p = s / total + eps
    return float(torch.exp(-(p * p.log()).sum()))


def alignment(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 2.0) -> float:
    """``E ||f(x) - f(y)||^alpha`` over positive pairs of l2-normalised embeddings
    (Wang & Isola 2020, Eq. 2 with alpha = 2). 0 when views map to the same point, at most 4.

    Args:
        z1: ``(n, d)`` embeddings of the first views.
        z2: ``(n, d)`` embeddings of the second views, row i the positive of ``z1[i]``.
        alpha: the exponent.

    Returns:
        The mean alignment loss (lower is better aligned).

    Raises:
        ValueError: if the shapes differ or are not matrices.

    Example:
        >>> alignment(torch.tensor([[1.0, 0.0]] * 2), torch.tensor([[0.0, 1.0]] * 2))
        2.0000000000000004
    """
    a, b = _matrix(z1, "z1"), _matrix(z2, "z2")
    if a.shape != b.shape:
        raise ValueError(f"z1 and z2 must have one shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    return float((a - b).norm(dim=1).pow(alpha).mean())


def uniformity(z: torch.Tensor, t: float = 2.0) -> float:
    """``log E_{i != j} exp(-t ||f(x_i) - f(x_j)||^2)`` over distinct pairs of l2-normalised
    embeddings (Wang & Isola 2020, Eq. 3 with t = 2). 0 when all collapse to one point, more
    negative when spread over the sphere.

    Args:
        z: ``(n, d)`` embeddings.
        t: the Gaussian potential's scale.

    Returns:
        The uniformity loss (lower is more uniform).

    Raises:
        ValueError: if ``z`` is not a matrix with at least two rows.

    Example:
        >>> round(uniformity(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])), 6)
        -8.0
    """
    x = F.normalize(_matrix(z, "z"), dim=1)
    sq = torch.pdist(x).pow(2)
    return float(torch.logsumexp(-t * sq, dim=0) - math.log(len(sq)))


def z_std(z: torch.Tensor) -> torch.Tensor:
    """mean_k std_i(h_ik), h = z / ||z||: the population std over every row of ``z`` (the
    batch; both views when they are stacked), averaged over the last dimension.

    Args:
        z: ``(..., d)`` embeddings; 16-bit ones are upcast to float32.

    Returns:
        A 0-d tensor, detached, on z's device (no host sync).

    Example:
        >>> float(z_std(torch.tensor([[3.0, 0.0], [0.0, 2.0]])))
        0.5
    """
    z = z.detach()
    h = F.normalize(z if z.dtype == torch.float64 else z.float(), dim=-1)
    return h.reshape(-1, h.shape[-1]).std(dim=0, unbiased=False).mean()


def normalised_std(z: torch.Tensor) -> float:
    """:func:`z_std` of a batch ``z``, as a Python float.

    Args:
        z: ``(n, d)`` embeddings.

    Returns:
        The mean per-dimension std; ``1/sqrt(d)`` is the value of isotropic embeddings,
        0 that of a collapse to one point.

    Raises:
        ValueError: if ``z`` is not a matrix with at least two rows.

    Example:
        >>> normalised_std(torch.ones(5, 3))
        0.0
    """
    return float(z_std(_matrix(z, "z")))


def summary(feats: torch.Tensor, z1: torch.Tensor | None = None,
            z2: torch.Tensor | None = None) -> dict[str, float]:
    """The diagnostics of one batch: RankMe of the backbone features and, given projector
    outputs of two views, RankMe, alignment, uniformity and normalised std of those.

    Args:
        feats: ``(n, d)`` backbone features (of the first views).
        z1: ``(n, k)`` projector outputs of the first views, or None.
        z2: ``(n, k)`` projector outputs of the second views, or None.

    Returns:
        ``{"rankme_feats", "rankme_z", "alignment", "uniformity", "z_std", "z_std_ref"}``
        (only ``rankme_feats`` without ``z1``; no ``alignment`` without ``z2``).

    Raises:
        ValueError: on malformed inputs (see the functions above).

    Example:
        >>> sorted(summary(torch.eye(4)))
        ['rankme_feats']
    """
    out = {"rankme_feats": effective_rank(feats)}
    if z1 is not None:
        out.update(rankme_z=effective_rank(z1), uniformity=uniformity(z1),
                   z_std=normalised_std(z1), z_std_ref=1.0 / math.sqrt(z1.shape[1]))
        if z2 is not None:
            out["alignment"] = alignment(z1, z2)
    return out


class Spread(NamedTuple):
    """What :func:`spread` returns, each a 0-d float32 tensor on the inputs' device.

    z_std: :func:`z_std` of both views pooled.
    positive: A, the mean of ‖h1_i - h2_i‖² over the batch (Wang & Isola's alignment).
    negative: D, the mean of ‖h_i - h_j‖² over pairs i != j of one view (views averaged).
    ratio: A / D; 1 when the two views of an image are no closer than two images.
    """

    z_std: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor
    ratio: torch.Tensor


def spread(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-12) -> Spread:
    """How spread out, and how aligned, one batch of projections is; no host sync.

    With h = z/|z|: A = mean_i ‖h1_i - h2_i‖², D = 2 - 2 mean_{i != j} h_i^T h_j (from
    ‖sum_i h_i‖², so O(n d)), and A / D. In C-SimCLR's loss near a concentrated
    representation, shrinking every distance lowers the loss once
    A / D > 1 / (1 + beta A_d(kappa_e)) (:func:`cvr_solo.ceb.shrink_threshold`).

    Args:
        z1: ``(n, d)`` projections of the first views, n >= 2.
        z2: ``(n, d)`` projections of the second views, row i the positive of ``z1[i]``.
        eps: floor of D in the ratio.

    Returns:
        A :class:`Spread` of detached float32 tensors.

    Raises:
        ValueError: if the inputs are not matrices of one shape with n >= 2.

    Example:
        >>> s = spread(torch.eye(4), torch.eye(4))
        >>> float(s.positive), float(s.negative), float(s.ratio)
        (0.0, 2.0, 0.0)
    """
    for name, z in (("z1", z1), ("z2", z2)):
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[0] < 2:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"{name} must be a (n >= 2, d) tensor, got {shape}")
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have one shape, got {tuple(z1.shape)} and "
                         f"{tuple(z2.shape)}")
    from cvr_solo.ceb.diagnostics import pair_distances

    with torch.no_grad():
        pair = torch.stack([z1, z2]).detach().float()
        h = F.normalize(pair, dim=-1)  # (2, n, d)
        positive, negative = pair_distances(h[0], h[1])
    return Spread(z_std(pair), positive, negative, positive / negative.clamp_min(eps))
