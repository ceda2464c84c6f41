"""Representation diagnostics: the maths on hand-made inputs (no Lightning needed; the
callback is tested in test_representation_monitor.py)."""

from __future__ import annotations

import math

import pytest
import torch

from cvr_solo.common.metric_names import DIAGNOSTICS
from cvr_solo.common.representation import (
    alignment,
    effective_rank,
    normalised_std,
    summary,
    uniformity,
    z_std,
)


def test_effective_rank_is_d_for_whitened_gaussian_features():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 16, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(x)  # whitened: orthonormal columns, all singular values equal
    assert effective_rank(q * 64) == pytest.approx(16, rel=1e-5)
    # a plain standard Gaussian sample is close to it
    assert effective_rank(x) == pytest.approx(16, rel=0.01)


def test_effective_rank_is_one_for_rank_one_features_and_k_for_rank_k():
    u, v = torch.randn(100, 1), torch.randn(1, 32)
    assert effective_rank(u @ v) == pytest.approx(1.0, abs=1e-4)
    x = torch.zeros(50, 10)
    x[:, :3] = torch.linalg.qr(torch.randn(50, 3))[0]  # 3 equal singular values
    assert effective_rank(x) == pytest.approx(3.0, rel=1e-4)
    assert effective_rank(torch.zeros(4, 3)) == 1.0


def test_alignment_by_hand():
    z1 = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    z2 = torch.tensor([[0.0, 5.0], [0.0, 1.0]])
    # normalised: pair 1 orthogonal (|d|^2 = 2), pair 2 identical (0): mean 1
    assert alignment(z1, z2) == pytest.approx(1.0)
    assert alignment(z1, -z1) == pytest.approx(4.0)
    assert alignment(z1, z2, alpha=1) == pytest.approx(math.sqrt(2) / 2)
    with pytest.raises(ValueError, match="one shape"):
        alignment(z1, torch.ones(3, 2))


def test_uniformity_by_hand():
    e = torch.eye(3) * 7  # orthonormal after normalising: every pair at |d|^2 = 2
    assert uniformity(e) == pytest.approx(-4.0)
    pts = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    # pairs: (0,1) 4, (0,2) 0, (1,2) 4 -> log((2 e^-8 + 1) / 3)
    assert uniformity(pts) == pytest.approx(math.log((2 * math.exp(-8) + 1) / 3))
    assert uniformity(torch.ones(5, 4)) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="at least two rows|n >= 2"):
        uniformity(torch.ones(1, 4))


def test_normalised_std_by_hand_and_collapse():
    assert normalised_std(torch.tensor([[3.0, 0.0], [0.0, 2.0]])) == pytest.approx(0.5)
    assert normalised_std(torch.ones(6, 5) * 3) == pytest.approx(0.0)
    g = torch.randn(20000, 64, generator=torch.Generator().manual_seed(1))
    assert normalised_std(g) == pytest.approx(1 / 8, rel=0.02)


def test_summary_keys():
    s = summary(torch.eye(4), torch.eye(4), torch.eye(4))
    assert s["alignment"] == pytest.approx(0.0)
    assert s["z_std_ref"] == 0.5 and s["rankme_feats"] == pytest.approx(4.0, rel=1e-5)
    assert set(summary(torch.eye(3), torch.eye(3))) == {
        "rankme_feats", "rankme_z", "uniformity", "z_std", "z_std_ref"}
    assert set(s) == set(DIAGNOSTICS)  # the logged diag_* names are these keys


def test_z_std_is_normalised_std_pooled_over_leading_dims():
    z = torch.randn(2, 16, 8, generator=torch.Generator().manual_seed(0))
    assert float(z_std(z)) == pytest.approx(normalised_std(z.flatten(0, 1)), rel=1e-5)
    assert z_std(z.half()).dtype == torch.float32 and not z_std(z.requires_grad_()).requires_grad
