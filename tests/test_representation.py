"""Representation diagnostics: the maths on hand-made inputs, and the callback on a toy model."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch

from cvr_solo.launch.diagnostics import RepresentationMonitor
from cvr_solo.representation import (
    alignment,
    effective_rank,
    normalised_std,
    summary,
    uniformity,
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


class _Toy(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 6))
        self.bn = torch.nn.BatchNorm1d(6)

    def forward(self, x):
        feats = self.bn(self.backbone(x))
        return {"feats": feats, "z": feats[:, :4]}


def _views(n: int) -> list:
    g = torch.Generator().manual_seed(2)
    return [([torch.rand(3, 2, 2, generator=g), torch.rand(3, 2, 2, generator=g)], i % 2)
            for i in range(n)]


def test_monitor_fixed_batch_eval_mode_and_values():
    data = _views(10)
    mon = RepresentationMonitor(data, every_n_steps=3, num_images=8, seed=4)
    first = mon.fixed_views()
    assert first[0].shape == (8, 3, 2, 2) and mon.fixed_views() is first
    model = _Toy().train()
    running = model.bn.running_mean.clone()
    got = mon.compute(model)
    assert model.training  # restored
    assert torch.equal(model.bn.running_mean, running)  # eval mode: BN stats untouched
    with torch.no_grad():
        model.eval()
        o1, o2 = model(first[0]), model(first[1])
    assert got == pytest.approx(summary(o1["feats"], o1["z"], o2["z"]))
    with pytest.raises(ValueError, match="every_n_steps"):
        RepresentationMonitor(data, 0, 8)


def test_monitor_schedule():
    mon = RepresentationMonitor(_views(4), every_n_steps=5, num_images=4)

    class T:
        estimated_stepping_batches = 12
        global_step = 0

    t = T()
    due = []
    for step in range(1, 13):
        t.global_step = step
        if mon._due(t):
            due.append(step)
            mon._last_step = step
    assert due == [1, 5, 10, 12]
