"""The representation-diagnostics callback on a toy Lightning model (needs Lightning, which
comes with solo-learn: skipped in the stage without it)."""

from __future__ import annotations

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch", reason="Lightning comes with solo-learn "
                         "(cvr-solo install-solo); the callback needs it")

from cvr_solo.common.representation import summary  # noqa: E402
from cvr_solo.launch.monitor import RepresentationMonitor  # noqa: E402


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
