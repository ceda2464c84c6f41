"""The all-gather the contrastive loss and the beta guard need under torch.distributed."""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["gather_rows"]


class _AllGather(torch.autograd.Function):
    """Concatenated rows of every rank; the backward sums each rank's gradient of the
    concatenation (all-reduce) and returns this rank's rows. (torch's differentiable
    ``torch.distributed.nn.functional.all_gather`` is deprecated as of torch 2.14.)"""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.rows, ctx.rank = x.shape[0], dist.get_rank()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def gather_rows(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All ranks' rows of ``x`` in rank order, differentiable, and this rank's row offset.

    Without an initialised process group (or with one process) it returns ``(x, 0)``.
    Every rank must pass the same number of rows.

    Args:
        x: ``(B, ...)`` this rank's rows.

    Returns:
        ``(rows, offset)``: ``(world_size * B, ...)`` and ``rank * B``.

    Example:
        >>> rows, offset = gather_rows(torch.ones(4, 2))  # one process
        >>> rows.shape, offset
        (torch.Size([4, 2]), 0)
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    return _AllGather.apply(x), dist.get_rank() * x.shape[0]
