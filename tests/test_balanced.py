"""The project's one class-balanced draw (cvr_solo.data.balanced)."""

from __future__ import annotations

import pytest
import torch

from cvr_solo.data.balanced import balanced_indices


def test_balanced_indices():
    labels = torch.tensor([0, 1, 2] * 10)
    idx = balanced_indices(labels, 9, seed=3)
    assert torch.bincount(labels[idx]).tolist() == [3, 3, 3]
    assert torch.equal(idx, balanced_indices(labels, 9, seed=3))
    assert not torch.equal(idx, balanced_indices(labels, 9, seed=4))
    assert torch.equal(idx, idx.sort().values)
    assert torch.equal(balanced_indices(labels, None), torch.arange(30))
    assert torch.equal(balanced_indices(labels, 30, seed=5), torch.arange(30))
    with pytest.raises(ValueError, match="multiple of 3"):
        balanced_indices(labels, 10)
    with pytest.raises(ValueError, match="multiple of 3 classes, got 0"):
        balanced_indices(labels, 0)
    with pytest.raises(ValueError, match="class 2 has 1 items, fewer than 2"):
        balanced_indices(torch.tensor([0, 0, 1, 1, 2, 0, 1]), 6)
