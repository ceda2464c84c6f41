"""The class-balanced draw of the project: the same number of items from every class,
without replacement, from a seeded ``torch.Generator`` (never the global RNG)."""

from __future__ import annotations

import torch

__all__ = ["balanced_indices"]


def balanced_indices(labels: torch.Tensor, n: int | None, seed: int = 0) -> torch.Tensor:
    """Sorted indices of a class-balanced, seeded draw of ``n`` items (all when None or
    ``n >= len(labels)``): for each class c in ``labels.unique()`` order, the first n / C of
    ``torch.randperm`` (one generator, ``manual_seed(seed)``) of its items.

    Raises:
        ValueError: if ``n`` is not a positive multiple of the class count C or a class has
            fewer than ``n / C`` items.

    Example:
        >>> balanced_indices(torch.tensor([0, 1, 0, 1, 0, 1]), 4, seed=1).tolist()  # 2 a class
        [1, 2, 3, 4]
    """
    if n is None or n >= len(labels):
        return torch.arange(len(labels))
    classes = labels.unique()
    if n <= 0 or n % len(classes):
        raise ValueError(f"subset size must be a positive multiple of {len(classes)} "
                         f"classes, got {n}")
    per_class = n // len(classes)
    gen = torch.Generator().manual_seed(seed)
    picked = []
    for c in classes:
        idx = (labels == c).nonzero().flatten()
        if len(idx) < per_class:
            raise ValueError(f"class {int(c)} has {len(idx)} items, fewer than {per_class}")
        picked.append(idx[torch.randperm(len(idx), generator=gen)[:per_class]])
    return torch.cat(picked).sort().values
