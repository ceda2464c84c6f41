"""C-BYOL's heads on their own (cvr_solo.ceb.heads; no solo-learn)."""

from __future__ import annotations

import torch

from cvr_solo.ceb.heads import BackwardEncoder


def test_backward_encoder_normalises_each_target_row_first():
    # mu_b = l2norm(MLP(l2norm(t))): rescaling a target row leaves its mean unchanged (eval
    # mode: BatchNorm uses its running statistics, so rows do not interact)
    torch.manual_seed(0)
    b = BackwardEncoder(16, 32).eval()
    t = torch.randn(6, 16)
    scaled = t * torch.tensor([0.5, 1.0, 2.0, 3.0, 10.0, 0.1]).unsqueeze(1)
    with torch.no_grad():
        mu, mu_scaled = b(t), b(scaled)
    assert torch.allclose(mu, mu_scaled, atol=1e-5)
    assert torch.allclose(mu.norm(dim=-1), torch.ones(6), atol=1e-6)
