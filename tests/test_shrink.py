"""C-SimCLR's shrink threshold, the beta guard and the spread of a batch (issue #15)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cvr_solo.ceb import (
    c_simclr_loss,
    full_beta_ratio,
    guarded_beta,
    held_back_beta,
    mean_resultant_length,
    pair_distances,
    shrink_threshold,
)
from cvr_solo.common.representation import normalised_std, spread


def _unit(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    h1 = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1)
    h2 = F.normalize(h1 + 0.6 * torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1)
    return h1, h2


def test_pair_distances_match_brute_force():
    h1, h2 = _unit(9, 5, seed=0)
    a, d = pair_distances(h1, h2)
    assert a.item() == pytest.approx((h1 - h2).square().sum(-1).mean().item(), rel=1e-12)
    brute = [torch.pdist(h).square().mean() for h in (h1, h2)]  # over i < j = over i != j
    assert d.item() == pytest.approx(sum(b.item() for b in brute) / 2, rel=1e-12)


def test_spread_reports_std_distances_and_their_ratio():
    h1, h2 = _unit(16, 8, seed=1)
    s = spread(3 * h1, 0.5 * h2)  # norms do not matter
    a, d = pair_distances(h1, h2)
    assert s.positive.item() == pytest.approx(a.item(), rel=1e-6)
    assert s.negative.item() == pytest.approx(d.item(), rel=1e-6)
    assert s.ratio.item() == pytest.approx(a.item() / d.item(), rel=1e-6)
    assert s.z_std.item() == pytest.approx(normalised_std(torch.cat([h1, h2])), rel=1e-5)
    collapsed = spread(torch.ones(8, 4), torch.ones(8, 4))
    assert collapsed.z_std.item() == 0 and collapsed.negative.item() == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        spread(torch.ones(8, 4), torch.ones(7, 4))


def test_shrink_threshold_at_the_published_settings():
    # A_256(1024) = 0.88316 (the design notes' reference value)
    assert shrink_threshold(256, 1024.0, 1.0) == pytest.approx(1 / 1.88316, rel=1e-5)
    assert shrink_threshold(256, 1024.0, 0.0) == 1.0
    assert shrink_threshold(256, 1024.0, 0.5) > shrink_threshold(256, 1024.0, 1.0)
    with pytest.raises(ValueError, match="beta"):
        shrink_threshold(256, 1024.0, -1.0)


def _cap(n: int, d: int, eps: float, delta: float, seed: int) -> tuple[torch.Tensor, ...]:
    """n pairs concentrated around e1 at angular radius ~eps; positives displaced by delta
    (A/D about delta² / (2 + delta²))."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(n, d, generator=g, dtype=torch.float64)
    v = torch.randn(n, d, generator=g, dtype=torch.float64)
    u[:, 0] = v[:, 0] = 0
    e1 = torch.zeros(d, dtype=torch.float64)
    e1[0] = 1
    return e1 + eps * u, e1 + eps * (u + delta * v)


@pytest.mark.parametrize(("delta", "shrinks"), [(2.2, True), (0.9, False)])
def test_shrinking_lowers_the_loss_exactly_when_the_ratio_is_above_the_threshold(delta, shrinks):
    """The reading behind the guard, checked on the loss itself: scale every distance of a
    concentrated batch by 1/2; the loss falls iff A/D > 1/(1 + beta A_d). Without sampling
    z = mu_e, so A_d is 1 here (threshold 1/2 at beta 1)."""
    beta, kb = 1.0, 10.0
    r1, r2 = _cap(64, 32, eps=0.02, delta=delta, seed=3)
    a, d = pair_distances(F.normalize(r1, dim=-1), F.normalize(r2, dim=-1))
    ratio = (a / d).item()
    assert (ratio > 1 / (1 + beta)) is shrinks  # the cases sit on either side
    e1 = torch.zeros_like(r1[0])
    e1[0] = 1
    half1, half2 = e1 + (r1 - e1) / 2, e1 + (r2 - e1) / 2

    def loss(x, y):
        return c_simclr_loss(x, y, kappa_e=1e5, kappa_b=kb, beta=beta, sample=False).loss

    assert (loss(half1, half2) < loss(r1, r2)).item() is shrinks
    # and SimCLR (beta 0) never gains from shrinking here
    simclr = [c_simclr_loss(x, y, kappa_b=kb, beta=0.0, sample=False).loss
              for x, y in ((half1, half2), (r1, r2))]
    assert simclr[0] > simclr[1]


def test_held_back_beta_keeps_the_batch_below_the_threshold():
    r1, r2 = _cap(64, 256, eps=0.05, delta=2.2, seed=4)
    h1, h2 = F.normalize(r1, dim=-1), F.normalize(r2, dim=-1)
    a_d = mean_resultant_length(256, 1024.0)
    for guard in (0.25, 0.5, 1.0):
        beta, ratio = held_back_beta(1.0, h1, h2, 1024.0, guard)
        rho = ratio.item()
        assert rho > shrink_threshold(256, 1024.0, 1.0)  # beta 1 would shrink this batch
        assert 0 <= beta.item() < 1.0
        # (1 + beta_eff A_d) rho = rho + guard (1 - rho): SimCLR's margin, times 1 - guard
        assert (1 + beta.item() * a_d) * rho == pytest.approx(rho + guard * (1 - rho), rel=1e-9)
    aligned = held_back_beta(0.7, h1, h1, 1024.0, 0.5)
    assert aligned[0].item() == pytest.approx(0.7) and aligned[1].item() == 0
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="guard"):
            held_back_beta(1.0, h1, h2, 1024.0, bad)


def test_c_simclr_loss_at_the_guarded_beta_tensor_is_the_loss_at_that_number():
    r1, r2 = _cap(32, 64, eps=0.05, delta=2.2, seed=5)
    beta, ratio = guarded_beta(r1, r2, 1.0, 1024.0, 0.5)
    used = beta.item()
    assert 0 < used < 1 and beta.dim() == 0 and not beta.requires_grad
    a = r1.clone().requires_grad_()
    b = r2.clone().requires_grad_()
    out = c_simclr_loss(a, b, kappa_e=1024.0, kappa_b=5.0, beta=beta, sample=False)
    out.loss.backward()
    a2, b2 = r1.clone().requires_grad_(), r2.clone().requires_grad_()
    ref = c_simclr_loss(a2, b2, kappa_e=1024.0, kappa_b=5.0, beta=used, sample=False)
    ref.loss.backward()
    assert out.loss.item() == pytest.approx(ref.loss.item(), rel=1e-12)
    assert torch.allclose(a.grad, a2.grad, rtol=1e-10, atol=1e-14)  # no gradient via beta
    assert torch.allclose(b.grad, b2.grad, rtol=1e-10, atol=1e-14)
    expected = pair_distances(F.normalize(r1, dim=-1), F.normalize(r2, dim=-1))
    assert ratio.item() == pytest.approx((expected[0] / expected[1]).item())
    # guarded_beta normalises its inputs: any scale of the projections gives the same beta
    assert guarded_beta(3 * r1, 0.5 * r2, 1.0, 1024.0, 0.5)[0].item() == pytest.approx(used)
    with pytest.raises(ValueError, match="guard"):
        guarded_beta(r1, r2, 1.0, 1024.0, 2.0)
    with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
        c_simclr_loss(r1, r2, beta=-1.0)


def test_guard_passes_the_whole_beta_at_and_below_full_beta_ratio():
    # the facts README and faithfulness.md state, at the shipped C-SimCLR values
    d, kappa_e, gamma = 256, 1024.0, 0.5
    assert shrink_threshold(d, kappa_e, 1.0) == pytest.approx(0.531, abs=5e-4)
    rho = full_beta_ratio(d, kappa_e, 1.0, gamma)
    assert rho == pytest.approx(0.3615, abs=1e-4)
    a_d = mean_resultant_length(d, kappa_e)
    # held_back_beta is min(beta, gamma (1/rho - 1) / A_d): exactly beta at rho, less above
    assert gamma * (1 / rho - 1) / a_d == pytest.approx(1.0, rel=1e-12)
    for ratio, expect_full in ((0.9 * rho, True), (1.1 * rho, False)):
        h1, h2 = _with_ratio(ratio, n=64, d=d, seed=8)
        beta, got = held_back_beta(1.0, h1, h2, kappa_e, gamma)
        assert got.item() == pytest.approx(ratio, rel=1e-6)
        assert (beta.item() == 1.0) is expect_full
    h1, h2 = _with_ratio(0.999, n=64, d=d, seed=9)
    assert held_back_beta(1.0, h1, h2, kappa_e, gamma)[0].item() < 0.01  # towards 0 at A/D 1


def _with_ratio(target: float, n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit rows whose A/D (pair_distances) is ``target``: h2 slerps from h1 towards a
    shuffled h1, the mix found by bisection."""
    h1, _ = _unit(n, d, seed)
    other = h1[torch.roll(torch.arange(n), 1)]

    def pair(t: float) -> tuple[torch.Tensor, torch.Tensor]:
        return h1, F.normalize((1 - t) * h1 + t * other, dim=-1)

    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        a, dd = pair_distances(*pair(mid))
        lo, hi = (mid, hi) if (a / dd).item() < target else (lo, mid)
    return pair((lo + hi) / 2)


def test_guard_leaves_beta_zero_exactly_simclr():
    r1, r2 = _unit(12, 16, seed=6)
    beta, ratio = guarded_beta(r1, r2, 0.0, 1024.0, 0.5)
    guarded = c_simclr_loss(r1, r2, kappa_b=5.0, beta=beta, sample=False)
    plain = c_simclr_loss(r1, r2, kappa_b=5.0, beta=0.0, sample=False)
    assert beta.item() == 0.0 and guarded.loss.item() == plain.loss.item()
    assert math.isfinite(ratio.item())


def test_guarded_beta_is_float32_exact_and_zero_past_the_ratio_one():
    """In float32 (the usual training dtype), inside an autocast region or not, the guard
    matches the float64 computation to float32 rounding. Positives farther apart than
    negatives (A/D > 1) get beta 0, not a negative beta."""
    r1, r2 = _cap(32, 64, eps=0.05, delta=2.2, seed=5)
    exact = held_back_beta(1.0, F.normalize(r1, dim=-1), F.normalize(r2, dim=-1), 1024.0, 0.5)
    for autocast in (False, True):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            got = guarded_beta(r1.float(), r2.float(), 1.0, 1024.0, 0.5)
        assert got[0].dtype == torch.float32
        assert got[0].item() == pytest.approx(exact[0].item(), rel=1e-5)
        assert got[1].item() == pytest.approx(exact[1].item(), rel=1e-5)
    h = torch.eye(4, dtype=torch.float64)[:2]
    beta, ratio = held_back_beta(1.0, h, -h, 1024.0, 0.5)  # A = 4, D = 2
    assert ratio.item() == pytest.approx(2.0) and beta.item() == 0.0
