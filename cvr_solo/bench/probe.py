"""The linear probe of the benchmark: multinomial logistic regression on frozen, standardised
features (or pixels), trained by full-batch L-BFGS; deterministic for a seed."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cvr_solo.bench.plan import PROTOCOL

__all__ = ["Probe", "probe_accuracy", "train_probe"]


class Probe(nn.Module):
    """A linear classifier on standardised inputs: ``W (x - mu) / sigma + b``."""

    def __init__(self, mu: torch.Tensor, sigma: torch.Tensor, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("mu", mu)
        self.register_buffer("sigma", sigma)
        self.linear = nn.Linear(len(mu), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x.flatten(1) - self.mu) / self.sigma)


def train_probe(x: torch.Tensor, y: torch.Tensor,
                weight_decay: float = PROTOCOL.probe_weight_decay,
                max_iter: int = PROTOCOL.probe_max_iter, seed: int = 0) -> Probe:
    """Multinomial logistic regression on frozen inputs (standardised per dimension):
    cross-entropy + ``weight_decay * ||W||^2``, full-batch L-BFGS (deterministic).

    Args:
        x: ``(n, ...)`` features or pixels (flattened).
        y: ``(n,)`` integer labels.
        weight_decay: the L2 penalty on W.
        max_iter: L-BFGS iterations.
        seed: the initialisation.

    Returns:
        The trained :class:`Probe`, in eval mode.

    Example:
        >>> x = torch.tensor([[0.0], [1.0], [4.0], [5.0]]); y = torch.tensor([0, 0, 1, 1])
        >>> probe_accuracy(train_probe(x, y), x, y)
        100.0
    """
    x = x.flatten(1).float()
    mu, sigma = x.mean(0), x.std(0).clamp_min(1e-6)
    torch.manual_seed(seed)
    probe = Probe(mu, sigma, int(y.max()) + 1)
    opt = torch.optim.LBFGS(probe.linear.parameters(), lr=1, max_iter=max_iter,
                            history_size=20, line_search_fn="strong_wolfe")
    xs = (x - mu) / sigma

    def closure() -> torch.Tensor:
        opt.zero_grad()
        w = probe.linear.weight
        loss = F.cross_entropy(probe.linear(xs), y) + weight_decay * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return probe.eval()


@torch.no_grad()
def probe_accuracy(probe: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 (%) of ``probe`` on inputs ``x``."""
    return float((probe(x.float()).argmax(1) == y).float().mean() * 100)
