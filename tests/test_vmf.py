"""The von Mises-Fisher distribution against scipy and the spec's reference values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import kl_divergence

from cvr_solo import (
    VonMisesFisher,
    log_bessel_iv,
    log_normalizer,
    mean_resultant_length,
    residual_floor,
    vmf_rsample,
)

scipy_stats = pytest.importorskip("scipy.stats")
scipy_special = pytest.importorskip("scipy.special")

DIMS = (3, 16, 256)
KAPPAS = (1.0, 10.0, 1024.0, 16384.0)
GRID = [(d, k) for d in DIMS for k in KAPPAS]


def _unit(*shape: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=dtype), dim=-1)


@pytest.mark.parametrize(("kappa", "a_d", "log_c"), [
    (10.0, 0.0390, 344.14),
    (1024.0, 0.88316, -366.70),
    (16384.0, 0.99225, -15380.57),
])
def test_spec_reference_table_d256(kappa, a_d, log_c):
    assert mean_resultant_length(256, kappa) == pytest.approx(a_d, abs=5e-5)
    assert log_normalizer(256, kappa) == pytest.approx(log_c, abs=5e-3)


def test_residual_floor_matches_spec():
    assert residual_floor(256, 1024.0, 10.0) == pytest.approx(184.68, abs=5e-3)
    assert residual_floor(256, 16384.0, 10.0) == pytest.approx(522.36, abs=5e-3)


@pytest.mark.parametrize(("order", "x"), [(0.5, 3.0), (127.0, 10.0), (127.0, 1024.0),
                                          (7.0, 16384.0), (1023.0, 5000.0), (0.5, 1e5)])
def test_log_bessel_matches_scipy_where_scipy_does_not_underflow(order, x):
    ref = math.log(scipy_special.ive(order, x)) + x
    assert log_bessel_iv(order, x) == pytest.approx(ref, rel=1e-12, abs=1e-9)


def test_log_bessel_closed_form_half_order():
    # I_{1/2}(x) = sqrt(2 / (pi x)) sinh(x)
    for x in (0.01, 1.0, 50.0, 700.0):
        ref = 0.5 * math.log(2 / (math.pi * x)) + x + math.log1p(-math.exp(-2 * x)) - math.log(2)
        assert log_bessel_iv(0.5, x) == pytest.approx(ref, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(("d", "kappa"), [(2048, 10.0), (2048, 1e5), (3, 1e5), (2048, 1e-3)])
def test_log_normalizer_finite_at_the_extremes(d, kappa):
    # I_1023(10) ~ e^-4420 underflows float64; the log-space series must not.
    value = log_normalizer(d, kappa)
    assert math.isfinite(value)
    # consistency: A_d from the same series is in (0, 1)
    assert 0 < mean_resultant_length(d, kappa) < 1


def test_log_normalizer_recurrence_large_d():
    # I_{v-1}(x) - I_{v+1}(x) = (2v/x) I_v(x) checks the series far outside scipy's range.
    v, x = 1000.0, 30.0
    lm, l0, lp = (log_bessel_iv(v - 1, x), log_bessel_iv(v, x), log_bessel_iv(v + 1, x))
    lhs = lm + math.log1p(-math.exp(lp - lm))
    assert lhs == pytest.approx(math.log(2 * v / x) + l0, rel=1e-12)


@pytest.mark.parametrize(("d", "kappa"), GRID)
def test_log_prob_and_entropy_match_scipy(d, kappa):
    mu = _unit(d, seed=d)
    ref = scipy_stats.vonmises_fisher(mu.numpy(), kappa)
    z = ref.rvs(64, random_state=np.random.default_rng(1))
    dist = VonMisesFisher(mu, kappa)
    ours = dist.log_prob(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(ours, ref.logpdf(z), rtol=1e-6)
    assert float(dist.entropy()) == pytest.approx(float(ref.entropy()), rel=1e-6)


@pytest.mark.parametrize(("d", "kappa"), GRID)
def test_sample_moments(d, kappa):
    n = 20000
    mu = _unit(d, seed=7 * d + int(kappa)).to(torch.float32)
    torch.manual_seed(d + int(kappa))
    z = VonMisesFisher(mu, kappa).sample((n,))
    assert z.shape == (n, d)
    assert torch.allclose(z.norm(dim=-1), torch.ones(n), atol=1e-5)
    cos = (z.double() @ mu.double())
    a_d = mean_resultant_length(d, kappa)
    stderr = cos.std().item() / math.sqrt(n)
    assert abs(cos.mean().item() - a_d) <= 4 * stderr
    # rotation consistency: the sample mean points at mu, and the tangent part averages out
    m = z.double().mean(0)
    tangent = m - (m @ mu.double()) * mu.double()
    sin_std = (1 - cos.square()).clamp_min(0).sqrt().mean().item()
    assert tangent.norm().item() <= 4 * sin_std / math.sqrt(n) * math.sqrt(2) + 1e-12


def test_scipy_sampler_agrees_on_mean_cosine():
    d, kappa, n = 16, 10.0, 20000
    mu = _unit(d, seed=3)
    ref = scipy_stats.vonmises_fisher(mu.numpy(), kappa).rvs(n, random_state=1) @ mu.numpy()
    torch.manual_seed(0)
    ours = (VonMisesFisher(mu, kappa).sample((n,)) @ mu).numpy()
    pooled = math.sqrt(ref.var() / n + ours.var() / n)
    assert abs(ref.mean() - ours.mean()) <= 4 * pooled


def test_rsample_cosine_is_exact_and_batch_shapes():
    mu = _unit(4, 5, 32, seed=2, dtype=torch.float32)
    z, w = vmf_rsample(mu, 50.0, sample_shape=(3,))
    assert z.shape == (3, 4, 5, 32) and w.shape == (3, 4, 5)
    assert torch.allclose((z * mu).sum(-1), w, atol=1e-5)
    dist = VonMisesFisher(mu, 50.0)
    assert dist.batch_shape == (4, 5) and dist.event_shape == (32,)
    assert dist.rsample((2,)).shape == (2, 4, 5, 32)
    assert torch.allclose(dist.mean, mean_resultant_length(32, 50.0) * mu)
    assert torch.equal(dist.mode, mu)
    assert dist.expand((2, 4, 5)).batch_shape == (2, 4, 5)


@pytest.mark.parametrize("near_e1", [0.0, 2.0])
def test_rsample_is_differentiable_gradcheck(near_e1):
    """Random means, and means near e1, where the Householder reflection's denominator
    |e1 - mu|^2 = 2 - 2 mu_1 is below 1."""
    mu0 = F.normalize(_unit(3, 5, seed=4) + near_e1 * torch.eye(5, dtype=torch.float64)[0],
                      dim=-1)
    assert (mu0[:, 0] > 0.5).all() == bool(near_e1)

    def f(loc):
        torch.manual_seed(123)
        return vmf_rsample(F.normalize(loc, dim=-1), 20.0)[0]

    assert torch.autograd.gradcheck(f, (mu0.clone().requires_grad_(),), eps=1e-6, atol=1e-6)


def test_rsample_gradient_matches_analytic_expectation():
    # d/dmu E[c^T z] = A_d c projected on the tangent plane (for unit mu under normalisation)
    d, kappa = 8, 30.0
    c = torch.randn(d, dtype=torch.float64)
    raw = _unit(d, seed=5).clone().requires_grad_()
    torch.manual_seed(0)
    z, _ = vmf_rsample(F.normalize(raw, dim=-1).expand(200000, d), kappa)
    (z @ c).mean().backward()
    mu = raw.detach()
    expected = mean_resultant_length(d, kappa) * (c - (c @ mu) * mu)
    assert torch.allclose(raw.grad, expected, atol=0.03)


def test_mean_equal_to_e1_is_handled():
    e1 = torch.zeros(6, 8, dtype=torch.float64)
    e1[:, 0] = 1
    z, w = vmf_rsample(e1, 100.0)
    assert torch.isfinite(z).all()
    assert torch.allclose(z[:, 0], w)
    assert torch.allclose(z.norm(dim=-1), torch.ones(6, dtype=torch.float64))
    minus_e1 = -e1
    z, w = vmf_rsample(minus_e1, 100.0)
    assert torch.allclose(-z[:, 0], w)


@pytest.mark.parametrize(("d", "k1", "k2"), [(3, 5.0, 2.0), (16, 50.0, 10.0),
                                             (256, 1024.0, 10.0)])
def test_kl_closed_form_matches_monte_carlo(d, k1, k2):
    mu1, mu2 = _unit(d, seed=11), _unit(d, seed=12)
    mu2 = F.normalize(mu1 + 0.5 * mu2, dim=0)
    p, q = VonMisesFisher(mu1, k1), VonMisesFisher(mu2, k2)
    kl = kl_divergence(p, q)
    torch.manual_seed(1)
    z = p.sample((100000,))
    diff = p.log_prob(z) - q.log_prob(z)
    stderr = diff.std().item() / math.sqrt(diff.numel())
    assert abs(diff.mean().item() - kl.item()) <= 4 * stderr + 1e-9
    assert kl_divergence(p, p).item() == pytest.approx(0.0, abs=1e-8)


def test_entropy_is_negative_expected_log_prob():
    d, kappa = 16, 40.0
    p = VonMisesFisher(_unit(d, seed=9), kappa)
    torch.manual_seed(2)
    lp = p.log_prob(p.sample((50000,)))
    assert float(p.entropy()) == pytest.approx(-lp.mean().item(),
                                               abs=4 * lp.std().item() / math.sqrt(50000))


def test_16bit_locs_sample_in_float32():
    mu = _unit(64, 16, seed=1, dtype=torch.float32).to(torch.bfloat16)
    z, w = vmf_rsample(mu, 16384.0)
    assert w.dtype == torch.float32
    assert z.dtype == torch.float32 and torch.isfinite(z).all()
    assert torch.allclose(z.norm(dim=-1), torch.ones(64), atol=1e-5)


def test_a_batch_of_distributions_keeps_its_shape_dtype_and_device():
    """(2, 3) distributions on S^7 in float64: log_prob and entropy per distribution, the
    concentration in loc's dtype, all on loc's device (the meta device stands in for a GPU)."""
    loc = _unit(2, 3, 8, seed=4)
    p = VonMisesFisher(loc, 10.0, validate_args=True)
    z = _unit(2, 3, 8, seed=5)
    expected = log_normalizer(8, 10.0) + 10.0 * (z * loc).sum(-1)
    assert torch.allclose(p.log_prob(z), expected, rtol=0, atol=1e-12)
    assert p.entropy().shape == (2, 3) and p.entropy().dtype == torch.float64
    assert p.concentration.dtype == torch.float64 and float(p.concentration) == 10.0
    assert repr(p) == "VonMisesFisher(loc: (2, 3, 8), concentration: 10)"
    with pytest.raises(ValueError, match="value must have last dim d = 8"):
        p.log_prob(z[..., :4])
    meta = VonMisesFisher(torch.empty(2, 8, device="meta"), 10.0, validate_args=False)
    assert meta.concentration.device.type == "meta" and meta.entropy().device.type == "meta"


def test_the_support_is_the_unit_sphere_within_the_dtypes_tolerance():
    sphere = VonMisesFisher.support
    assert repr(sphere) == "UnitSphere()"
    z = _unit(2, 3, 8, seed=6)
    assert sphere.check(z).shape == (2, 3) and bool(sphere.check(z).all())
    assert not bool(sphere.check(1.001 * z).any())
    near = (1.001 * z).to(torch.float16)  # off by 1e-3: inside float16's 2e-3, not 1e-4
    assert bool(sphere.check(near).all())
    p = VonMisesFisher(_unit(8, seed=7), 10.0, validate_args=True)
    with pytest.raises(ValueError, match="value"):
        p.log_prob(2 * z)


def test_rsample_of_one_row_and_of_none():
    """One draw is a unit vector at its cosine; an empty batch gives empty draws of the
    promised shapes and dtype (float32 for a 16-bit loc); w carries no gradient."""
    loc = _unit(8, seed=3).requires_grad_()
    z, w = vmf_rsample(loc, 50.0)
    assert z.shape == (8,) and w.shape == ()
    zd = z.detach()
    assert abs(float(zd.norm()) - 1) < 1e-12 and abs(float(w) - float(zd @ loc.detach())) < 1e-12
    assert z.requires_grad and not w.requires_grad
    for dtype, out in ((torch.float64, torch.float64), (torch.bfloat16, torch.float32)):
        z, w = vmf_rsample(torch.empty(0, 3, 8, dtype=dtype), 50.0, (2,))
        assert (z.shape, w.shape) == ((2, 0, 3, 8), (2, 0, 3))
        assert z.dtype == w.dtype == out
