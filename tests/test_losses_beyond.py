"""C-MoCo v3 / C-SimSiam losses against independent float64 computations (no solo-learn:
the baselines' losses are written here from their papers; tests/integration compares them
with solo-learn's own functions)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from scipy.special import ive

import cvr_solo.ceb.losses_beyond as lb
from cvr_solo import SIMSIAM_W, c_byol_loss, c_mocov3_loss, c_simsiam_loss, vmf_rsample


def _log_c(d: int, kappa: float) -> float:
    """log C_d(kappa) of the vMF density, from scipy's scaled Bessel function."""
    nu = d / 2 - 1
    return nu * math.log(kappa) - (d / 2) * math.log(2 * math.pi) - (
        math.log(ive(nu, kappa)) + kappa)


def _views(b: int, d: int, seed: int, n: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(b, d, generator=g, dtype=torch.float64)
    return [base + 0.8 * torch.randn(b, d, generator=g, dtype=torch.float64)
            for _ in range(n)]


def _moco_direction(q: torch.Tensor, k: torch.Tensor, tau: float,
                    before: torch.Tensor | None = None) -> torch.Tensor:
    """MoCo v3's loss of one direction (Chen et al. 2021, Alg. 1): CE over the batch's keys
    at temperature tau, times 2 tau; a loop over queries. ``before``: other ranks' keys that
    the global batch holds ahead of ``k``, so that query i's positive is key len(before) + i."""
    offset = 0 if before is None else before.shape[0]
    qn = F.normalize(q, dim=-1)
    kn = F.normalize(k if before is None else torch.cat([before, k]), dim=-1)
    losses = [-(qn[i] @ kn[offset + i] / tau - torch.logsumexp(kn @ qn[i] / tau, 0))
              for i in range(q.shape[0])]
    return 2 * tau * torch.stack(losses).mean()


@pytest.mark.parametrize("tau", [0.2, 1.0, 0.1])
def test_c_mocov3_at_beta_zero_without_sampling_is_mocov3(tau):
    q1, q2, k1, k2 = _views(10, 16, seed=0, n=4)
    out = c_mocov3_loss([q1, q2], [k1, k2], kappa_e=1024.0, kappa_b=1 / tau, beta=0.0,
                        sample=False)
    ref = _moco_direction(q1, k2, tau) + _moco_direction(q2, k1, tau)
    assert out.loss.item() == pytest.approx(ref.item(), rel=1e-12)
    assert out.contrastive.item() == pytest.approx(ref.item(), rel=1e-12)
    # i_yz: log N minus the mean cross-entropy over both directions
    assert out.i_yz.item() == pytest.approx(math.log(10) - ref.item() / (4 * tau), rel=1e-12)


def _fixed_sampler(eps: torch.Tensor):
    """A deterministic, differentiable stand-in for vmf_rsample: z = l2norm(mu + eps)."""
    def sample(mu: torch.Tensor, kappa: float):
        z = F.normalize(mu + eps, dim=-1)
        return z, (z * mu).sum(-1)
    return sample


def test_c_mocov3_value_and_gradient_match_a_float64_reference(monkeypatch):
    """The whole objective, 2 tau sum_dir mean_i [H_i + beta R_i], with R from scipy's Bessel
    function, at a fixed noisy z: value and gradients w.r.t. both queries."""
    kappa_e, kappa_b, beta, b, d = 1024.0, 5.0, 0.7, 6, 16
    q1, q2, k1, k2 = _views(b, d, seed=1, n=4)
    eps = 0.05 * torch.randn(2 * b, d, generator=torch.Generator().manual_seed(9),
                             dtype=torch.float64)
    monkeypatch.setattr(lb, "vmf_rsample", _fixed_sampler(eps))
    a = [q1.clone().requires_grad_(), q2.clone().requires_grad_()]
    out = c_mocov3_loss(a, [k1, k2], kappa_e=kappa_e, kappa_b=kappa_b, beta=beta)
    out.loss.backward()

    r = [q1.clone().requires_grad_(), q2.clone().requires_grad_()]
    keys = [F.normalize(k1, dim=-1), F.normalize(k2, dim=-1)]
    total = 0.0
    for v, other in ((0, 1), (1, 0)):
        mu = F.normalize(r[v], dim=-1)
        z = F.normalize(mu + eps[v * b:(v + 1) * b], dim=-1)
        for i in range(b):
            logits = kappa_b * keys[other] @ z[i]
            h = torch.logsumexp(logits, 0) - logits[i]
            res = (_log_c(d, kappa_e) + kappa_e * (mu[i] @ z[i])
                   - _log_c(d, kappa_b) - kappa_b * (keys[other][i] @ z[i]))
            total = total + (2 / kappa_b) * (h + beta * res) / b
    total.backward()
    assert out.loss.item() == pytest.approx(total.item(), rel=1e-10)
    for mine, ref in zip(a, r, strict=True):
        assert torch.allclose(mine.grad, ref.grad, rtol=1e-9, atol=1e-12)


def test_c_mocov3_keys_get_no_gradient_and_beta_adds_the_residual():
    q1, q2, k1, k2 = _views(7, 16, seed=2, n=4)
    q = [q1.requires_grad_(), q2.requires_grad_()]
    k = [k1.clone().requires_grad_(), k2.clone().requires_grad_()]
    plain = c_mocov3_loss(q, k, beta=0.0, sample=False)
    heavy = c_mocov3_loss(q, k, beta=2.5, sample=False)
    # 2 tau (H + beta R): the residual enters at MoCo v3's scale, both directions summed
    expected = plain.loss + (2 / 5.0) * 2.5 * heavy.residual.view(2, 7).mean(1).sum()
    assert heavy.loss.item() == pytest.approx(expected.item(), rel=1e-12)
    heavy.loss.backward()
    assert k[0].grad is None and k[1].grad is None
    assert q[0].grad is not None and q[0].grad.abs().sum() > 0


def test_c_mocov3_samples_each_query_from_its_vmf():
    q1, q2, k1, k2 = _views(64, 32, seed=3, n=4)
    torch.manual_seed(4)
    out = c_mocov3_loss([q1, q2], [k1, k2], kappa_e=256.0, kappa_b=5.0, beta=1.0)
    torch.manual_seed(4)
    mu = F.normalize(torch.cat([q1, q2]), dim=-1)
    z, cos = vmf_rsample(mu, 256.0)
    keys = F.normalize(torch.cat([k2, k1]), dim=-1)
    ref = (_log_c(32, 256.0) + 256.0 * cos - _log_c(32, 5.0) - 5.0 * (z * keys).sum(-1))
    assert torch.allclose(out.residual, ref, rtol=1e-9)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"kappa_e": 0.0}, "kappa_e must be"),
    ({"kappa_b": -1.0}, "kappa_b must be"),
    ({"beta": -0.1}, "beta must be"),
])
def test_c_mocov3_bad_numbers_are_named(kwargs, match):
    q = _views(4, 8, seed=5)
    with pytest.raises(ValueError, match=match):
        c_mocov3_loss(q, q, **kwargs)


def test_c_mocov3_shapes_are_checked():
    q = _views(4, 8, seed=6)
    with pytest.raises(ValueError, match=r"q must be a pair"):
        c_mocov3_loss([q[0]], q)
    with pytest.raises(ValueError, match=r"k\[1\]"):
        c_mocov3_loss(q, [q[0], q[1][:3]])


def _siam_inputs(b: int, d: int, seed: int):
    p1, p2, t1, t2, z1, z2, bl1, bl2 = _views(b, d, seed=seed, n=8)
    unit = [F.normalize(x, dim=-1) for x in (z1, z2, bl1, bl2)]
    return [p1, p2], [t1, t2], unit[:2], unit[2:]


def test_c_simsiam_at_beta_zero_is_simsiam():
    """SimSiam's symmetrised negative cosine (Chen & He 2021, Eq. 2), whatever z."""
    p, t, z, b_loc = _siam_inputs(9, 16, seed=7)
    out = c_simsiam_loss(p, t, z, z, b_loc, beta=0.0)
    ref = -(F.cosine_similarity(p[0], t[1], dim=-1).mean()
            + F.cosine_similarity(p[1], t[0], dim=-1).mean()) / 2
    assert out.loss.item() == pytest.approx(ref.item(), rel=1e-12)
    assert out.neg_cos_sim.item() == pytest.approx(ref.item(), rel=1e-12)


@pytest.mark.parametrize("b_view", ["same", "other"])
def test_c_simsiam_is_c_byol_at_a_quarter_minus_one(b_view):
    p, t, z, b_loc = _siam_inputs(5, 16, seed=8)
    p = [x.clone().requires_grad_() for x in p]
    mine = c_simsiam_loss(p, t, z, z, b_loc, beta=0.3, b_view=b_view)
    byol = c_byol_loss(p, t, z, z, b_loc, kappa_e=16384.0, kappa_b=10.0, beta=0.3, w=0.25,
                       b_view=b_view)
    assert SIMSIAM_W == 0.25
    assert mine.loss.item() == pytest.approx(byol.loss.item() - 1.0, rel=1e-12)
    assert torch.equal(mine.residual, byol.residual)
    g_mine = torch.autograd.grad(mine.loss, p)
    g_byol = torch.autograd.grad(byol.loss, p)
    assert all(torch.allclose(a, b, rtol=1e-12) for a, b in zip(g_mine, g_byol, strict=True))


def test_c_simsiam_gradient_matches_a_float64_reference():
    """-(c1 + c2)/2 + beta sum_v R(v), per example, R with scipy's Bessel function; the
    gradient w.r.t. the predictions and the backward means (targets get none)."""
    # not the defaults (16384, 10): each reaches c_byol_loss, whose defaults are the same
    kappa_e, kappa_b, beta, b, d = 4096.0, 7.0, 0.125, 4, 16
    p, t, z, b_loc = _siam_inputs(b, d, seed=10)
    e_loc = [F.normalize(x + 0.01, dim=-1) for x in z]
    mine_p = [x.clone().requires_grad_() for x in p]
    mine_b = [x.clone().requires_grad_() for x in b_loc]
    tt = [x.clone().requires_grad_() for x in t]
    out = c_simsiam_loss(mine_p, tt, z, e_loc, mine_b, kappa_e, kappa_b, beta)
    out.loss.backward()
    ref_p = [x.clone().requires_grad_() for x in p]
    ref_b = [x.clone().requires_grad_() for x in b_loc]
    total = 0.0
    for i in range(b):
        cos = [F.cosine_similarity(ref_p[v][i], t[1 - v][i], dim=0) for v in (0, 1)]
        res = sum(_log_c(d, kappa_e) + kappa_e * (e_loc[v][i] @ z[v][i])
                  - _log_c(d, kappa_b) - kappa_b * (ref_b[v][i] @ z[v][i]) for v in (0, 1))
        total = total + (-(cos[0] + cos[1]) / 2 + beta * res) / b
    total.backward()
    assert out.loss.item() == pytest.approx(total.item(), rel=1e-10)
    for mine, ref in zip([*mine_p, *mine_b], [*ref_p, *ref_b], strict=True):
        assert torch.allclose(mine.grad, ref.grad, rtol=1e-9, atol=1e-12)
    assert tt[0].grad is None and tt[1].grad is None


def test_the_new_losses_default_to_their_familys_published_settings():
    import inspect

    moco = inspect.signature(c_mocov3_loss).parameters
    siam = inspect.signature(c_simsiam_loss).parameters
    assert (moco["kappa_e"].default, moco["beta"].default) == (1024.0, 1.0)  # C-SimCLR's
    assert moco["kappa_b"].default == 5.0  # MoCo v3's solo-learn temperature 0.2
    assert (siam["kappa_e"].default, siam["kappa_b"].default) == (16384.0, 10.0)  # C-BYOL's
    # a tenth of C-BYOL's published beta / w = 1/2 (which collapsed SimSiam at the cpu budget)
    assert siam["beta"].default / SIMSIAM_W == pytest.approx(0.05, rel=1e-12)
    assert siam["b_view"].default == "same"


def test_the_new_losses_compute_with_the_defaults_they_state():
    """A call without the settings equals one that spells out the stated defaults (the
    signature alone would not show a default the body reads differently)."""
    q = _views(6, 16, seed=14, n=4)
    explicit = dict(kappa_e=1024.0, kappa_b=5.0, beta=1.0, sample=True)
    torch.manual_seed(0)
    bare = c_mocov3_loss(q[:2], q[2:])
    torch.manual_seed(0)
    spelt = c_mocov3_loss(q[:2], q[2:], **explicit)
    assert bare.loss.item() == pytest.approx(spelt.loss.item(), rel=1e-12)
    unsampled = c_mocov3_loss(q[:2], q[2:], sample=False).loss.item()
    assert abs(bare.loss.item() - unsampled) > 1e-6  # sampled by default
    p, t, z, b_loc = _siam_inputs(4, 16, seed=15)
    e_loc = [F.normalize(x + 0.01, dim=-1) for x in z]
    bare = c_simsiam_loss(p, t, z, e_loc, b_loc)
    spelt = c_simsiam_loss(p, t, z, e_loc, b_loc, kappa_e=16384.0, kappa_b=10.0, beta=0.0125,
                           b_view="same")
    assert bare.loss.item() == pytest.approx(spelt.loss.item(), rel=1e-12)


def test_c_mocov3_takes_a_device_beta_as_the_same_number():
    q1, q2, k1, k2 = _views(6, 16, seed=11, n=4)
    as_number = c_mocov3_loss([q1, q2], [k1, k2], beta=0.3, sample=False)
    as_tensor = c_mocov3_loss([q1, q2], [k1, k2], beta=torch.tensor(0.3, dtype=torch.float64),
                              sample=False)
    assert as_tensor.loss.item() == pytest.approx(as_number.loss.item(), rel=1e-12)


def test_c_mocov3_shape_errors_name_both_tensors():
    q = _views(4, 8, seed=12)
    with pytest.raises(ValueError, match=r"q\[1\] must have the shape of q\[0\] \(4, 8\)"):
        c_mocov3_loss([q[0], q[1][:, :4]], q)
    for i in (0, 1):  # each key named as itself
        k = [q[0], q[1]]
        k[i] = k[i][:3]
        with pytest.raises(ValueError, match=rf"k\[{i}\] must have the shape of q\[0\]"):
            c_mocov3_loss(q, k)
    with pytest.raises(ValueError, match=r"k must be a pair"):
        c_mocov3_loss(q, [q[0]])


def test_c_mocov3_as_rank_1_of_2_finds_its_positives_after_rank_0s_keys(monkeypatch):
    """Under DDP the keys are the global batch's: this rank's positive for query i is key
    offset + i (gather_rows stood in for as rank 1 of 2, rank 0's keys first)."""
    b, d, tau = 5, 16, 0.2
    q1, q2, k1, k2 = _views(b, d, seed=16, n=4)
    r0_k1, r0_k2 = _views(b, d, seed=17)  # rank 0's keys
    theirs = [F.normalize(r0_k2, dim=-1), F.normalize(r0_k1, dim=-1)]  # asked for k2, then k1
    monkeypatch.setattr(lb, "gather_rows", lambda x: (torch.cat([theirs.pop(0), x]), b))
    out = c_mocov3_loss([q1, q2], [k1, k2], kappa_b=1 / tau, beta=0.0, sample=False)
    ref = _moco_direction(q1, k2, tau, before=r0_k2) + _moco_direction(q2, k1, tau, before=r0_k1)
    assert out.loss.item() == pytest.approx(ref.item(), rel=1e-12)
    assert out.i_yz.item() == pytest.approx(math.log(2 * b) - ref.item() / (4 * tau), rel=1e-12)
