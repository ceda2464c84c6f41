"""CEB losses of C-SimCLR and C-BYOL (Lee et al., NeurIPS 2021, Sec. 3-4).

Both minimise beta I(X;Z|Y) - I(Y;Z) with vMF forward and backward encoders
e(z|x) = vMF(mu_e(x), kappa_e), b(z|y) = vMF(mu_b(y), kappa_b). The residual information
I(X;Z|Y) is bounded per example by R = log e(z|x) - log b(z|y), z ~ e(z|x); beta multiplies
R only. All arithmetic runs in float32 with autocast off, whatever the inputs' dtype, so the
large log-densities (|log C_256(16384)| ~ 1.5e4 nats) keep their precision under bf16/fp16.

Neither loss synchronises with the device: the checks read shapes, dtypes and Python numbers
only (kappa, beta and w are numbers; a 1-element tensor passed instead is read once with
``.item()``, a sync: pass numbers in a training step), nothing branches on tensor values, and
both trace with ``torch.compile(fullgraph=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cvr_solo.ceb.distributed import gather_rows
from cvr_solo.ceb.special import _log_normalizer
from cvr_solo.ceb.vmf import vmf_rsample
from cvr_solo.common.checks import (
    check_choice,
    check_features,
    check_non_negative,
    check_positive,
    check_same_shape,
)

__all__ = [
    "B_VIEWS",
    "CBYOLLossOutput",
    "CSimCLRLossOutput",
    "c_byol_loss",
    "c_simclr_loss",
    "residual_information",
]

#: Pairings of the C-BYOL backward encoder: condition b on the target of the other view
#: (the CEB definition) or of the same view as z (the public TF release; the default).
B_VIEWS = ("other", "same")


def residual_information(
    z: torch.Tensor,
    e_loc: torch.Tensor,
    b_loc: torch.Tensor,
    kappa_e: float,
    kappa_b: float,
    e_cos: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-example residual information R = log e(z|x) - log b(z|y), in nats.

    R = log C_d(kappa_e) + kappa_e mu_e^T z - log C_d(kappa_b) - kappa_b mu_b^T z
    (CEB, Fischer 2020; Lee et al. 2021 Eq. 3). Shapes: (..., d) -> (...). Means are used
    as given (l2-normalise them first). ``e_cos``: the cosine mu_e^T z returned by
    :func:`vmf_rsample` when z was drawn from e; it is exact and, kappa_e being fixed,
    log e(z|x) then carries no gradient, as it should.

    Args:
        z: the samples, ``(..., d)``.
        e_loc: mu_e, the forward encoder's means (unit rows).
        b_loc: mu_b, the backward encoder's means (unit rows).
        kappa_e: the forward encoder's concentration (> 0).
        kappa_b: the backward encoder's concentration (> 0).
        e_cos: mu_e^T z from the sampler, ``(...)``; None: computed from z and e_loc.

    Returns:
        R, ``(...)``, float32 (float64 for float64 inputs).

    Raises:
        ValueError: a bad kappa, or inputs of different shapes.

    Example:
        >>> mu = torch.eye(3)
        >>> r = residual_information(mu, mu, mu, kappa_e=1024.0, kappa_b=10.0)  # z = means
        >>> bool(torch.allclose(r, r[0].expand(3)))  # the same R for every row
        True
    """
    kappa_e = check_positive("kappa_e", kappa_e)
    kappa_b = check_positive("kappa_b", kappa_b)
    for name, t in (("z", z), ("e_loc", e_loc), ("b_loc", b_loc)):
        check_features(name, t, ndim=None)
    check_same_shape(("z", "e_loc", "b_loc"), (z, e_loc, b_loc))
    d = z.shape[-1]
    with torch.autocast(z.device.type, enabled=False):
        z, b_loc = _upcast(z), _upcast(b_loc)
        cos_e = (z * _upcast(e_loc)).sum(-1) if e_cos is None else _upcast(e_cos)
        cos_b = (z * b_loc).sum(-1)
        return (_log_normalizer(d, kappa_e) - _log_normalizer(d, kappa_b)
                + kappa_e * cos_e - kappa_b * cos_b)


def _device_or_checked_beta(beta: float | torch.Tensor) -> float | torch.Tensor:
    """A 0-d tensor beta detached and used as it is (a guard's beta on the device: reading it
    to check it would sync); anything else checked as a number >= 0."""
    if isinstance(beta, torch.Tensor) and beta.dim() == 0:
        return beta.detach()
    return check_non_negative("beta", beta)


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """x in float32, or float64 if it already is."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


@dataclass(frozen=True)
class CSimCLRLossOutput:
    """What :func:`c_simclr_loss` returns; everything but ``loss`` is detached, for logging.

    loss: mean over anchors of beta R_i + H_i (differentiable).
    residual: R_i per anchor, shape (2B,), both directions (x->y first).
    contrastive: mean H_i, the cross-entropy over 2N-1 candidates (N = global batch).
    i_yz: the InfoNCE estimate of I(Y;Z), log(2N-1) - mean H_i.
    """

    loss: torch.Tensor
    residual: torch.Tensor
    contrastive: torch.Tensor
    i_yz: torch.Tensor


def c_simclr_loss(
    r1: torch.Tensor,
    r2: torch.Tensor,
    kappa_e: float = 1024.0,
    kappa_b: float = 10.0,
    beta: float | torch.Tensor = 1.0,
    sample: bool = True,
) -> CSimCLRLossOutput:
    """C-SimCLR: SimCLR's NT-Xent with a vMF-noised anchor plus beta times the residual.

    r1, r2: projector outputs of the two views, (B, d); they are l2-normalised here. For the
    direction x->y and anchor i: z_i ~ vMF(r1_i, kappa_e) (z_i = r1_i if ``sample`` is off),
    R_i = log vMF(z_i; r1_i, kappa_e) - log vMF(z_i; r2_i, kappa_b), logits kappa_b z_i^T r2_j
    for all j and kappa_b z_i^T r1_j for j != i ("double batch", 2N-1 candidates), H_i the
    cross-entropy picking r2_i; y->x swaps the views. Under torch.distributed the candidates
    are gathered from all ranks (with gradient), anchors stay local, so the rank-mean of the
    losses is the single-process loss on the whole batch.

        loss = mean_i [beta R_i + H_i] = mean_i [beta R_i - (log(2N-1) - H_i)] + log(2N-1),

    i.e. Lee et al. (2021) Eq. 6 up to the constant log(2N-1), which is dropped so that
    beta = 0 with sampling off is exactly NT-Xent at temperature 1/kappa_b (kappa_b = 10 is
    SimCLR's tau = 0.1). Gradient-wise it is NT-Xent with a noisy anchor whose positive term
    is weighted (1 + beta). Published values: kappa_e = 1024, kappa_b = 10, beta = 1.

    This is the release's objective and nothing else: ``method=c_simclr`` computes its beta
    with the guard (:func:`cvr_solo.ceb.guarded_beta`) and passes it here.

    Args:
        r1: ``(B, d)`` projections of the first views.
        r2: ``(B, d)`` projections of the second views.
        kappa_e: the forward encoder's concentration (> 0).
        kappa_b: the backward encoder's concentration, 1/temperature (> 0).
        beta: the weight of R (>= 0): a number, or a 0-d tensor used as it is (not checked,
            so that a beta computed on the device, e.g. the guard's, costs no host sync).
        sample: draw z from e(z|x); off, z = mu_e.

    Returns:
        :class:`CSimCLRLossOutput`.

    Raises:
        ValueError: a bad kappa or beta, or r1, r2 of different or non-matrix shapes.

    Example:
        >>> r1, r2 = torch.randn(8, 16), torch.randn(8, 16)
        >>> out = c_simclr_loss(r1, r2, beta=0.0, sample=False)  # NT-Xent at tau 0.1
        >>> out.loss.shape, out.residual.shape
        (torch.Size([]), torch.Size([16]))
    """
    kappa_e = check_positive("kappa_e", kappa_e)
    kappa_b = check_positive("kappa_b", kappa_b)
    beta = _device_or_checked_beta(beta)
    check_features("r1", r1)
    check_features("r2", r2)
    check_same_shape(("r1", "r2"), (r1, r2))
    b = r1.shape[0]
    with torch.autocast(r1.device.type, enabled=False):
        r1 = F.normalize(_upcast(r1), dim=-1)
        r2 = F.normalize(_upcast(r2), dim=-1)
        all1, offset = gather_rows(r1)
        all2, _ = gather_rows(r2)
        n = all1.shape[0]
        anchors_mu = torch.cat([r1, r2])  # (2B, d): direction x->y, then y->x
        if sample:
            anchors, cos_e = vmf_rsample(anchors_mu, kappa_e)
        else:
            anchors, cos_e = anchors_mu, torch.ones(2 * b, dtype=r1.dtype, device=r1.device)
        residual = residual_information(anchors, anchors_mu, torch.cat([r2, r1]), kappa_e,
                                        kappa_b, e_cos=cos_e)

        # candidates: [all r1 ; all r2]; anchor i of x->y has its positive at n + offset + i
        # and itself at offset + i; y->x the other way round.
        logits = kappa_b * anchors @ torch.cat([all1, all2]).T  # (2B, 2N)
        local = torch.arange(b, device=r1.device) + offset
        own = torch.cat([local, local + n])
        pos = torch.cat([local + n, local])
        # scatter_ with a number: a fill kernel, no host-to-device copy (a sync on a GPU)
        logits.scatter_(1, own.unsqueeze(1), float("-inf"))
        contrastive = F.cross_entropy(logits, pos, reduction="none")
        loss = (beta * residual + contrastive).mean()
    h = contrastive.detach().mean()
    return CSimCLRLossOutput(loss=loss, residual=residual.detach(), contrastive=h,
                             i_yz=math.log(2 * n - 1) - h)


@dataclass(frozen=True)
class CBYOLLossOutput:
    """What :func:`c_byol_loss` returns; everything but ``loss`` is detached, for logging.

    loss: mean over the batch of w (‖p̂1 - t̂2‖² + ‖p̂2 - t̂1‖²) + beta (R(v1) + R(v2)).
    regression: the mean of ‖p̂1 - t̂2‖² + ‖p̂2 - t̂1‖² (solo-learn's BYOL loss, unweighted).
    residual: R per example and view, shape (2, B).
    """

    loss: torch.Tensor
    regression: torch.Tensor
    residual: torch.Tensor


def _pair(name: str, x: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(x, Sequence) or len(x) != 2:
        raise ValueError(f"{name} must be a pair (view 1, view 2) of tensors, got "
                         f"{type(x).__name__}" + (f" of length {len(x)}"
                                                  if isinstance(x, Sequence) else ""))
    return check_features(f"{name}[0]", x[0]), check_features(f"{name}[1]", x[1])


def c_byol_loss(
    p: Sequence[torch.Tensor],
    t: Sequence[torch.Tensor],
    z: Sequence[torch.Tensor],
    e_loc: Sequence[torch.Tensor],
    b_loc: Sequence[torch.Tensor],
    kappa_e: float = 16384.0,
    kappa_b: float = 10.0,
    beta: float = 1.0,
    w: float = 2.0,
    b_view: str = "same",
    e_cos: Sequence[torch.Tensor] | None = None,
) -> CBYOLLossOutput:
    """C-BYOL: BYOL's regression with weight w plus beta times the residual of both views.

    Per view v: e_loc[v] = mu_e, the l2-normalised stochastic-predictor mean; z[v] ~
    vMF(mu_e, kappa_e); p[v] = W z[v] the online prediction; t[v] the target projection
    (detached here); b_loc[v] = mu_b, the l2-normalised backward-encoder output on
    l2norm(t[v]). With hats for l2-normalisation (Lee et al. 2021, Sec. 4.2):

        loss = mean_i  w ‖p̂1 - t̂2‖² + w ‖p̂2 - t̂1‖² + beta (R(v1) + R(v2)),
        R(v) = log vMF(z[v]; mu_e[v], kappa_e) - log vMF(z[v]; mu_b[v'], kappa_b),

    with v' = v when ``b_view="same"`` (the public TF release, whose second pass swaps the
    views; it produced the published numbers, so it is the default) and v' the other view
    when ``b_view="other"`` (y = the other view, the CEB definition read literally).
    ``e_cos``: the cosines from :func:`vmf_rsample` (exact log e). The defaults are the
    release's objective (kappa_e = 16384, kappa_b = 10, beta = 1, w = 2); the solo-learn
    method runs at solo-learn's BYOL scale, w = 1 and beta = 0.5 (docs/c-byol-scale.md).

    Args:
        p: the online predictions of the two views, each ``(B, d)``.
        t: the target projections of the two views (detached here).
        z: the vMF samples of the two views.
        e_loc: mu_e of the two views (unit rows).
        b_loc: mu_b of the two views' targets (unit rows), :class:`BackwardEncoder`'s.
        kappa_e: the forward encoder's concentration (> 0).
        kappa_b: the backward encoder's concentration (> 0).
        beta: the weight of R (>= 0).
        w: the weight of the regression term (> 0).
        b_view: ``same`` or ``other`` (:data:`B_VIEWS`).
        e_cos: mu_e^T z of the two views from the sampler; None: computed from z.

    Returns:
        :class:`CBYOLLossOutput`.

    Raises:
        ValueError: a bad number or b_view, a pair that is not two tensors, or shapes that
            differ.

    Example:
        >>> u = F.normalize(torch.randn(4, 8), dim=-1)
        >>> v = [u, u]  # two views that agree, predictions equal to targets
        >>> out = c_byol_loss(v, v, v, v, v, beta=0.0, w=1.0)
        >>> out.loss.item(), tuple(out.residual.shape)
        (0.0, (2, 4))
    """
    kappa_e = check_positive("kappa_e", kappa_e)
    kappa_b = check_positive("kappa_b", kappa_b)
    beta = check_non_negative("beta", beta)
    w = check_positive("w", w)
    b_view = check_choice("b_view", b_view, B_VIEWS)
    pairs = {n: _pair(n, x) for n, x in (("p", p), ("t", t), ("z", z), ("e_loc", e_loc),
                                         ("b_loc", b_loc))}
    names = [f"{n}[{v}]" for n in pairs for v in (0, 1)]
    check_same_shape(tuple(names), tuple(x for pr in pairs.values() for x in pr))
    cos = (None, None) if e_cos is None else e_cos
    with torch.autocast(pairs["p"][0].device.type, enabled=False):
        p_hat = [F.normalize(_upcast(x), dim=-1) for x in pairs["p"]]
        t_hat = [F.normalize(_upcast(x.detach()), dim=-1) for x in pairs["t"]]
        regression = ((p_hat[0] - t_hat[1]).square().sum(-1)
                      + (p_hat[1] - t_hat[0]).square().sum(-1))
        cond = (1, 0) if b_view == "other" else (0, 1)
        residual = torch.stack([
            residual_information(pairs["z"][v], pairs["e_loc"][v], pairs["b_loc"][cond[v]],
                                 kappa_e, kappa_b, e_cos=cos[v])
            for v in (0, 1)
        ])
        loss = (w * regression + beta * residual.sum(0)).mean()
    return CBYOLLossOutput(loss=loss, regression=regression.detach().mean(),
                           residual=residual.detach())
