"""C-BYOL's two extra heads as plain modules (Lee et al. 2021, Sec. 4.2; arXiv 2109.12909).

- :class:`StochasticPredictor`, a predictor MLP made a vMF encoder e(z|x):
  mu_e = l2norm(MLP(y)), z ~ vMF(mu_e, kappa_e) while training (z = mu_e in eval), p = W z.
- :class:`BackwardEncoder`, the backward encoder b(z|y): mu_b = l2norm(MLP(l2norm(t))).

In the authors' release both MLPs are Linear(hidden)-BN-ReLU-Linear(d, no bias)
(:func:`release_mlp`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from cvr_solo.ceb.vmf import vmf_rsample
from cvr_solo.common.checks import check_positive

__all__ = ["BackwardEncoder", "StochasticPrediction", "StochasticPredictor", "drop_last_bias",
           "release_mlp"]


def release_mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    """Linear(d_in, hidden)-BN-ReLU-Linear(hidden, d_out, no bias): the release's predictor
    and backward-encoder MLP (solo-learn's BYOL predictor is the same with a last bias).

    Example:
        >>> release_mlp(256, 4096, 256)[-1].bias is None
        True
    """
    return nn.Sequential(nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, d_out, bias=False))


def drop_last_bias(mlp: nn.Sequential) -> nn.Sequential:
    """Removes the bias of ``mlp``'s last Linear in place (the weights stay) and returns it:
    solo-learn's BYOL predictor made the release's (:func:`release_mlp`).

    Raises:
        TypeError: the last module is not an ``nn.Linear``.

    Example:
        >>> mlp = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
        >>> drop_last_bias(mlp)[-1].bias is None
        True
    """
    last = mlp[-1]
    if not isinstance(last, nn.Linear):
        raise TypeError(f"the MLP's last module must be an nn.Linear, got {type(last).__name__}")
    last.bias = None
    return mlp


class StochasticPrediction(NamedTuple):
    """What :class:`StochasticPredictor` returns for a batch.

    p: the online prediction W z, (B, d). mu_e: the l2-normalised forward-encoder mean, (B, d).
    z: the vMF sample (mu_e in eval), (B, d). cos: mu_e^T z, the exact cosine Wood's sampler
    drew (1 in eval), (B,), which makes log e(z|x) exact.
    """

    p: torch.Tensor
    mu_e: torch.Tensor
    z: torch.Tensor
    cos: torch.Tensor


class StochasticPredictor(nn.Module):
    """A predictor MLP made a von Mises-Fisher encoder e(z|x) (C-BYOL, Sec. 4.2).

        mu_e = l2norm(mlp(y)),
        z ~ vMF(mu_e, kappa_e) in training mode, z = mu_e in eval mode,
        p = W z,  W = Linear(d, d, no bias).

    The MLP is the baseline's own predictor, wrapped as built (C-BYOL: BYOL's, its last bias
    dropped as in the release, :func:`drop_last_bias`), so the C-variant builds no second one.

    Args:
        mlp: the predictor MLP, ``(..., d_in) -> (..., dim)``.
        dim: d, the MLP's output dimension.
        kappa_e: the concentration of e(z|x); published 16384.

    Raises:
        ValueError: if kappa_e is not a positive number.

    Example:
        >>> head = StochasticPredictor(release_mlp(256, 512, 256), 256, kappa_e=16384.0)
        >>> out = head(torch.randn(8, 256))
        >>> out.p.shape, bool(torch.allclose(out.mu_e.norm(dim=-1), torch.ones(8)))
        (torch.Size([8, 256]), True)
    """

    def __init__(self, mlp: nn.Module, dim: int, kappa_e: float) -> None:
        super().__init__()
        self.kappa_e = check_positive("kappa_e", kappa_e)
        self.mlp = mlp
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, y: torch.Tensor) -> StochasticPrediction:
        mu_e = F.normalize(self.mlp(y), dim=-1)
        if self.training:
            z, cos = vmf_rsample(mu_e, self.kappa_e)
        else:
            z, cos = mu_e, torch.ones(mu_e.shape[:-1], dtype=mu_e.dtype, device=mu_e.device)
        return StochasticPrediction(self.out(z), mu_e, z, cos)


class BackwardEncoder(nn.Module):
    """C-BYOL's backward encoder b(z|y) = vMF(mu_b, kappa_b) on the target projection t:

        mu_b = l2norm(Linear(d, h)-BN-ReLU-Linear(h, d, no bias)(l2norm(t))).

    Trainable and never EMA-updated; it learns only through the beta * (-log b) term, and t
    is detached (the target branch stays gradient-free).

    Args:
        dim: d, the projection dimension.
        hidden_dim: h, the hidden width (published 4096).

    Example:
        >>> b = BackwardEncoder(256, 512)
        >>> b(torch.randn(8, 256)).norm(dim=-1).allclose(torch.ones(8))
        True
    """

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.mlp = release_mlp(dim, hidden_dim, dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(F.normalize(t.detach(), dim=-1)), dim=-1)
