"""C-SimCLR / C-BYOL losses against independent hand computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cvr_solo import (
    c_byol_loss,
    c_simclr_loss,
    log_normalizer,
    residual_floor,
    residual_information,
    vmf_rsample,
)


def _nt_xent(r1: torch.Tensor, r2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent over 2B anchors, written from the SimCLR paper (Chen et al. 2020)."""
    z = F.normalize(torch.cat([r1, r2]), dim=-1)
    b = r1.shape[0]
    sim = z @ z.T / temperature
    losses = []
    for i in range(2 * b):
        j = (i + b) % (2 * b)
        others = [k for k in range(2 * b) if k != i]
        losses.append(-(sim[i, j] - torch.logsumexp(sim[i, others], dim=0)))
    return torch.stack(losses).mean()


def _feats(b: int, d: int, seed: int, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    r1 = torch.randn(b, d, generator=g, dtype=dtype)
    r2 = r1 + 0.7 * torch.randn(b, d, generator=g, dtype=dtype)
    return r1, r2


@pytest.mark.parametrize("kappa_b", [10.0, 5.0, 2.0])
def test_c_simclr_without_sampling_and_beta_zero_is_nt_xent(kappa_b):
    r1, r2 = _feats(12, 16, seed=0)
    out = c_simclr_loss(r1, r2, kappa_e=1024.0, kappa_b=kappa_b, beta=0.0, sample=False)
    ref = _nt_xent(r1, r2, temperature=1 / kappa_b)
    assert out.loss.item() == pytest.approx(ref.item(), abs=1e-6)
    # the InfoNCE estimate uses 2N - 1 candidates
    assert out.i_yz.item() == pytest.approx(math.log(23) - ref.item(), abs=1e-6)


def test_c_simclr_float32_matches_float64_nt_xent():
    r1, r2 = _feats(8, 32, seed=1, dtype=torch.float32)
    out = c_simclr_loss(r1, r2, kappa_b=10.0, beta=0.0, sample=False)
    ref = _nt_xent(r1.double(), r2.double(), temperature=0.1)
    assert out.loss.item() == pytest.approx(ref.item(), abs=1e-5)


def test_c_simclr_gradient_is_weighted_nt_xent_with_noisy_anchor():
    """grad of beta R + H == grad of NT-Xent whose positive logit is weighted (1 + beta)."""
    kappa_e, kappa_b, beta = 1024.0, 10.0, 0.7
    r1, r2 = _feats(6, 16, seed=2)
    a1, a2 = r1.clone().requires_grad_(), r2.clone().requires_grad_()
    torch.manual_seed(5)
    c_simclr_loss(a1, a2, kappa_e, kappa_b, beta).loss.backward()

    b1, b2 = r1.clone().requires_grad_(), r2.clone().requires_grad_()
    n1, n2 = F.normalize(b1, dim=-1), F.normalize(b2, dim=-1)
    torch.manual_seed(5)  # same draws: the loss samples all 2B anchors in one call
    z, _ = vmf_rsample(torch.cat([n1, n2]), kappa_e)
    cand = torch.cat([n1, n2])
    b = r1.shape[0]
    total = 0.0
    for i in range(2 * b):
        pos = (i + b) % (2 * b)
        logits = kappa_b * cand @ z[i]
        mask = torch.ones(2 * b, dtype=torch.bool)
        mask[i] = False
        total = total - (1 + beta) * logits[pos] + torch.logsumexp(logits[mask], dim=0)
    (total / (2 * b)).backward()
    assert torch.allclose(a1.grad, b1.grad, atol=1e-8)
    assert torch.allclose(a2.grad, b2.grad, atol=1e-8)


def test_c_simclr_residual_is_log_e_minus_log_b():
    kappa_e, kappa_b = 1024.0, 10.0
    r1, r2 = _feats(5, 256, seed=3)
    torch.manual_seed(0)
    out = c_simclr_loss(r1, r2, kappa_e, kappa_b, beta=1.0)
    n1, n2 = F.normalize(r1, dim=-1), F.normalize(r2, dim=-1)
    torch.manual_seed(0)
    z, _ = vmf_rsample(torch.cat([n1, n2]), kappa_e)
    mu_e, mu_b = torch.cat([n1, n2]), torch.cat([n2, n1])
    ref = (log_normalizer(256, kappa_e) + kappa_e * (z * mu_e).sum(-1)
           - log_normalizer(256, kappa_b) - kappa_b * (z * mu_b).sum(-1))
    assert torch.allclose(out.residual, ref, rtol=1e-9, atol=1e-6)
    # E[R] >= floor, and the floor is reached when the views agree
    same = c_simclr_loss(r1, r1, kappa_e, kappa_b, beta=1.0, sample=False)
    floor = residual_floor(256, kappa_e, kappa_b)
    assert out.residual.mean().item() > floor
    # without sampling R = log e(mu|x) - log b(mu|x) = kappa_e A-free value at agreement
    expected = (log_normalizer(256, kappa_e) + kappa_e
                - log_normalizer(256, kappa_b) - kappa_b)
    assert torch.allclose(same.residual, torch.full((10,), expected, dtype=torch.float64))


def test_c_simclr_loss_combines_beta_and_contrastive():
    r1, r2 = _feats(7, 16, seed=4)
    a = c_simclr_loss(r1, r2, beta=0.0, sample=False)
    b = c_simclr_loss(r1, r2, beta=2.5, sample=False)
    assert b.loss.item() == pytest.approx(a.loss.item() + 2.5 * b.residual.mean().item(),
                                          rel=1e-10)
    assert b.contrastive.item() == pytest.approx(a.loss.item(), rel=1e-10)


def _hand_c_byol(p, t, z, e_loc, b_loc, kappa_e, kappa_b, beta, w, b_view):
    """Float64, per-example loops, straight from the spec."""
    bsz, d = p[0].shape
    lc_e, lc_b = log_normalizer(d, kappa_e), log_normalizer(d, kappa_b)
    total = 0.0
    for i in range(bsz):
        ph = [p[v][i] / p[v][i].norm() for v in (0, 1)]
        th = [t[v][i] / t[v][i].norm() for v in (0, 1)]
        reg = ((ph[0] - th[1]) ** 2).sum() + ((ph[1] - th[0]) ** 2).sum()
        res = 0.0
        for v in (0, 1):
            y = 1 - v if b_view == "other" else v
            log_e = lc_e + kappa_e * float(e_loc[v][i] @ z[v][i])
            log_b = lc_b + kappa_b * float(b_loc[y][i] @ z[v][i])
            res += log_e - log_b
        total += w * float(reg) + beta * res
    return total / bsz


@pytest.mark.parametrize("b_view", ["other", "same"])
def test_c_byol_matches_hand_computation(b_view):
    g = torch.Generator().manual_seed(7)
    bsz, d, kappa_e, kappa_b, beta, w = 5, 16, 300.0, 10.0, 0.5, 2.0

    def unit():
        return F.normalize(torch.randn(bsz, d, generator=g, dtype=torch.float64), dim=-1)

    e_loc = (unit(), unit())
    torch.manual_seed(1)
    z = tuple(vmf_rsample(m, kappa_e)[0] for m in e_loc)
    p = (torch.randn(bsz, d, generator=g, dtype=torch.float64),
         torch.randn(bsz, d, generator=g, dtype=torch.float64))
    t = (torch.randn(bsz, d, generator=g, dtype=torch.float64),
         torch.randn(bsz, d, generator=g, dtype=torch.float64))
    b_loc = (unit(), unit())
    out = c_byol_loss(p, t, z, e_loc, b_loc, kappa_e=kappa_e, kappa_b=kappa_b, beta=beta, w=w,
                      b_view=b_view)
    ref = _hand_c_byol(p, t, z, e_loc, b_loc, kappa_e, kappa_b, beta, w, b_view)
    assert out.loss.item() == pytest.approx(ref, rel=1e-10)
    assert out.residual.shape == (2, bsz)


def test_c_byol_pairings_differ_and_gradients_reach_the_right_places():
    g = torch.Generator().manual_seed(8)
    bsz, d = 4, 8
    leaf = {k: torch.randn(bsz, d, generator=g, dtype=torch.float64).requires_grad_()
            for k in ("p1", "p2", "t1", "t2", "e1", "e2", "b1", "b2")}
    e = (F.normalize(leaf["e1"], dim=-1), F.normalize(leaf["e2"], dim=-1))
    z = tuple(vmf_rsample(m, 100.0) for m in e)
    b = (F.normalize(leaf["b1"], dim=-1), F.normalize(leaf["b2"], dim=-1))
    kw = {"kappa_e": 100.0, "kappa_b": 10.0, "beta": 1.0, "w": 2.0,
          "e_cos": (z[0][1], z[1][1])}
    other = c_byol_loss((leaf["p1"], leaf["p2"]), (leaf["t1"], leaf["t2"]),
                        (z[0][0], z[1][0]), e, b, b_view="other", **kw)
    same = c_byol_loss((leaf["p1"], leaf["p2"]), (leaf["t1"], leaf["t2"]),
                       (z[0][0], z[1][0]), e, b, b_view="same", **kw)
    assert other.loss.item() != pytest.approx(same.loss.item())
    other.loss.backward()
    assert leaf["t1"].grad is None and leaf["t2"].grad is None  # targets are stop-gradient
    for k in ("p1", "p2", "e1", "e2", "b1", "b2"):
        assert leaf[k].grad is not None and leaf[k].grad.abs().sum() > 0, k


def test_c_byol_with_w_one_beta_zero_is_solo_byol_loss():
    """solo-learn's BYOL: sum over the two ordered pairs of 2 - 2 cos(p, t)."""
    g = torch.Generator().manual_seed(9)
    p = (torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g))
    t = (torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g))
    unit = F.normalize(torch.randn(6, 8, generator=g), dim=-1)
    out = c_byol_loss(p, t, (unit, unit), (unit, unit), (unit, unit), beta=0.0, w=1.0)
    ref = (2 - 2 * F.cosine_similarity(p[0], t[1]).mean()
           + 2 - 2 * F.cosine_similarity(p[1], t[0]).mean())
    assert out.loss.item() == pytest.approx(ref.item(), abs=1e-5)


def test_residual_information_matches_distributions():
    from cvr_solo import VonMisesFisher

    g = torch.Generator().manual_seed(10)
    mu_e = F.normalize(torch.randn(9, 12, generator=g, dtype=torch.float64), dim=-1)
    mu_b = F.normalize(torch.randn(9, 12, generator=g, dtype=torch.float64), dim=-1)
    z, cos = vmf_rsample(mu_e, 50.0)
    ref = VonMisesFisher(mu_e, 50.0).log_prob(z) - VonMisesFisher(mu_b, 3.0).log_prob(z)
    assert torch.allclose(residual_information(z, mu_e, mu_b, 50.0, 3.0), ref)
    assert torch.allclose(residual_information(z, mu_e, mu_b, 50.0, 3.0, e_cos=cos), ref)


@pytest.mark.parametrize("which", ["simclr", "byol"])
def test_bf16_autocast_large_kappa_is_finite(which):
    torch.manual_seed(0)
    d, bsz = 256, 32
    lin = torch.nn.Linear(d, d)
    x1, x2 = torch.randn(bsz, d), torch.randn(bsz, d)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h1, h2 = lin(x1), lin(x2)
        assert h1.dtype == torch.bfloat16
        if which == "simclr":
            out = c_simclr_loss(h1, h2, kappa_e=16384.0, kappa_b=10.0, beta=1.0)
        else:
            e = (F.normalize(h1, dim=-1), F.normalize(h2, dim=-1))
            zs = [vmf_rsample(m, 16384.0) for m in e]
            p = tuple(lin(z) for z, _ in zs)
            out = c_byol_loss(p, (x2, x1), tuple(z for z, _ in zs), e, e,
                              kappa_e=16384.0, e_cos=tuple(c for _, c in zs))
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    out.loss.backward()
    for prm in lin.parameters():
        assert torch.isfinite(prm.grad).all() and prm.grad.abs().sum() > 0
    assert torch.isfinite(out.residual).all()
    # R keeps its precision: never below the floor by more than noise, and for C-BYOL, where
    # b is given e's own means (agreement), its mean is the floor E[R] = KL = 522.36 nats.
    r = out.residual.flatten()
    floor = residual_floor(d, 16384.0, 10.0)
    stderr = r.std().item() / math.sqrt(r.numel())
    if which == "simclr":
        assert r.mean().item() > floor
    else:
        assert abs(r.mean().item() - floor) <= 4 * stderr + 0.5


def test_losses_have_no_python_loop_over_the_batch():
    """A per-example Python loop would grow the autograd graph with B: it must not."""

    def n_nodes(loss: torch.Tensor) -> int:
        seen, stack = set(), [loss.grad_fn]
        while stack:
            f = stack.pop()
            if f is None or f in seen:
                continue
            seen.add(f)
            stack.extend(nf for nf, _ in f.next_functions)
        return len(seen)

    counts = []
    for b in (8, 512):
        r1, r2 = (torch.randn(b, 32, requires_grad=True) for _ in range(2))
        counts.append(n_nodes(c_simclr_loss(r1, r2).loss))
    assert counts[0] == counts[1]
    counts = []
    for b in (8, 512):
        ts = [torch.randn(b, 32, requires_grad=True) for _ in range(4)]
        e = tuple(F.normalize(x, dim=-1) for x in ts[:2])
        zs = [vmf_rsample(m, 100.0)[0] for m in e]
        counts.append(n_nodes(c_byol_loss(ts[:2], ts[2:], zs, e, e).loss))
    assert counts[0] == counts[1]


def test_c_byol_defaults_loss_is_the_release_method_is_solo_learns_scale():
    """docs/c-byol-scale.md: c_byol_loss defaults to the release's w = 2, beta = 1; the method
    runs at solo-learn's w = 1 with the same beta / w; kappas and b_view agree."""
    import inspect

    from cvr_solo.config.validate import CEB_DEFAULTS

    loss = {k: p.default for k, p in inspect.signature(c_byol_loss).parameters.items()}
    method = CEB_DEFAULTS["c_byol"]
    assert (loss["w"], loss["beta"]) == (2.0, 1.0)
    assert (method["w"], method["beta"]) == (1.0, 0.5)
    assert loss["beta"] / loss["w"] == method["beta"] / method["w"]
    assert all(loss[k] == method[k] for k in ("kappa_e", "kappa_b", "b_view"))
