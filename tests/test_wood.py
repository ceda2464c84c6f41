"""Wood's fixed-shape cosine sampler: acceptance formula, plan bound, pool logic, exactness."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cvr_solo.ceb.wood as wood
from cvr_solo import FAILURE_BOUND, sampler_failures, vmf_rsample, wood_acceptance, wood_plan

scipy_stats = pytest.importorskip("scipy.stats")
scipy_integrate = pytest.importorskip("scipy.integrate")

GRID = [(d, k) for d in (2, 3, 16, 256, 2048) for k in (0.01, 1.0, 10.0, 1024.0, 16384.0)]


def _acceptance_by_quadrature(d: int, kappa: float) -> float:
    """E_s[exp(t(s))], s ~ Beta(a, a): Wood's acceptance test integrated numerically."""
    b, x0, _, log_1m_x0sq = wood._wood_constants(d, kappa)
    a, log_c = (d - 1) / 2, kappa * x0 + (d - 1) * log_1m_x0sq

    def integrand(s: float) -> float:
        w = (1 - (1 + b) * s) / (1 - (1 - b) * s)
        t = kappa * w + (d - 1) * math.log(1 - x0 * w) - log_c
        return math.exp(scipy_stats.beta.logpdf(s, a, a) + t)

    return scipy_integrate.quad(integrand, 0, 1, limit=500, points=[0.5], epsabs=0,
                                epsrel=1e-11)[0]


@pytest.mark.parametrize(("d", "kappa"), GRID)
def test_acceptance_formula_matches_quadrature(d, kappa):
    assert wood_acceptance(d, kappa) == pytest.approx(_acceptance_by_quadrature(d, kappa),
                                                      rel=1e-8)


@pytest.mark.parametrize(("d", "kappa"), [(3, 10.0), (256, 1024.0), (256, 16384.0)])
@pytest.mark.parametrize("given_first", [False, True])
def test_acceptance_rate_of_the_proposals(d, kappa, given_first):
    n = 200_000 if d < 100 else 40_000
    torch.manual_seed(d)
    first = None
    if given_first:  # (g, chi^2_{d-1}) as the vMF sampler passes them: from one Gaussian row
        x = torch.randn(n, d, dtype=torch.float64)
        first = (x[:, 0], x[:, 1:].square().sum(1))
    _, accepted = wood._proposals((n, 1), d, kappa, torch.device("cpu"), first)
    p = wood_acceptance(d, kappa)
    assert abs(accepted.double().mean().item() - p) <= 5 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("n", [1, 2, 6, 64, 512, 4096, 65536])
@pytest.mark.parametrize(("d", "kappa"), [(3, 1.0), (16, 10.0), (256, 10.0), (256, 1024.0),
                                          (256, 16384.0), (2048, 16384.0)])
def test_plan_keeps_the_failure_chance_below_the_bound(n, d, kappa):
    """Per entry, with the exact binomial tail (scipy) instead of the plan's Chernoff bound:
    P(fail) = q1 [P(Bin(n-1, q1) >= m) + (1 - P)^k2] or (1 - P)^k1 with no pool."""
    k1, m, k2 = wood_plan(n, d, kappa)
    r = 1 - wood_acceptance(d, kappa)
    q1 = r ** k1
    if m == 0:
        assert k2 == 0 and q1 <= FAILURE_BOUND
    else:
        tail = scipy_stats.binom.sf(m - 1, n - 1, q1)
        assert q1 * (tail + r ** k2) <= FAILURE_BOUND
    assert k1 >= 1


@pytest.mark.parametrize(("kappa", "plans"), [
    (10.0, [(1, 8, 3), (1, 12, 3), (1, 21, 3), (1, 29, 3)]),
    (1024.0, [(3, 25, 18), (3, 51, 18), (3, 128, 18), (3, 215, 18)]),
    (16384.0, [(4, 18, 19), (3, 67, 20), (3, 178, 20), (3, 307, 20)])])
def test_plans_are_the_documented_ones(kappa, plans):
    """The (k1, m, k2) table of docs/faithfulness.md, "The vMF sampler" (d = 256; n = 256,
    1024, 4096, 8192): a bound that is safe but looser (more proposals, a larger pool) fails
    here."""
    assert [wood_plan(n, 256, kappa) for n in (256, 1024, 4096, 8192)] == plans


def test_plan_is_cheaper_than_one_stage_for_large_batches():
    k1, m, k2 = wood_plan(4096, 256, 16384.0)
    one_stage = math.ceil(math.log(FAILURE_BOUND / 2) / math.log1p(-wood_acceptance(256,
                                                                                   16384.0)))
    assert k1 + k2 == one_stage
    assert 4096 * k1 + m * k2 < 4096 * one_stage / 4


def test_pool_assigns_slots_to_failures_in_order(monkeypatch):
    """Rows 1 and 3 accept nothing in stage 1 and take slots 0 and 1 in that order; row 4,
    a third failure, finds no slot and is reported failed with its own first proposal."""
    stage1 = (torch.tensor([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.7, 0.8], [0.9, 1.0]],
                           dtype=torch.float64),
              torch.tensor([[True, False], [False, False], [False, True], [False, False],
                            [False, False]]))
    pool = (torch.tensor([[1.1, 1.2], [1.3, 1.4]], dtype=torch.float64),
            torch.tensor([[False, True], [True, True]]))
    calls = iter([stage1, pool])
    monkeypatch.setattr(wood, "_plan", lambda n, d, kappa: (2, 2, 2))
    monkeypatch.setattr(wood, "_proposals", lambda *args, **kwargs: next(calls))
    w, one_m_w, failed = wood.wood_cosine(5, 16, 10.0, "cpu")
    assert one_m_w.tolist() == [0.1, 1.2, 0.6, 1.3, 0.9]
    assert failed.tolist() == [False, False, False, False, True]
    assert torch.equal(w, 1 - one_m_w)


def _ks_cosines(d: int, kappa: float, n: int, seed: int) -> float:
    mu = F.normalize(torch.randn(d, dtype=torch.float64, generator=torch.Generator()
                                 .manual_seed(seed)), dim=0)
    torch.manual_seed(seed)
    z, w = vmf_rsample(mu.expand(n, d), kappa)
    assert torch.allclose((z * mu).sum(-1), w, atol=1e-12)
    ref = scipy_stats.vonmises_fisher(mu.numpy(), kappa).rvs(
        n, random_state=np.random.default_rng(seed)) @ mu.numpy()
    return scipy_stats.ks_2samp(w.numpy(), ref).pvalue


@pytest.mark.parametrize(("d", "kappa"), [(3, 10.0), (16, 1.0), (256, 10.0), (256, 1024.0),
                                          (256, 16384.0)])
def test_cosine_law_matches_scipy(d, kappa):
    assert _ks_cosines(d, kappa, 20000 if d < 100 else 8000, seed=d) > 1e-3


def test_cosines_from_the_pool_are_exact(monkeypatch):
    """One stage-1 proposal, a pool for every entry: ~29% of the draws come from the pool."""
    monkeypatch.setattr(wood, "_plan", lambda n, d, kappa: (1, n, 30))
    assert _ks_cosines(256, 16384.0, 8000, seed=1) > 1e-3


def test_direction_is_independent_of_the_cosine():
    """The first proposal uses x_1 and ‖x_{2:3}‖ of the Gaussian row whose direction
    becomes v; v must stay uniform whatever w is (d = 3, mu = e_1: v's angle)."""
    n = 40000
    e1 = torch.zeros(n, 3, dtype=torch.float64)
    e1[:, 0] = 1
    torch.manual_seed(3)
    z, w = vmf_rsample(e1, 2.0)
    angle = torch.atan2(z[:, 2], z[:, 1]).numpy()
    high = (w > w.median()).numpy()
    uniform = scipy_stats.uniform(loc=-math.pi, scale=2 * math.pi).cdf
    for part in (angle[high], angle[~high]):
        assert scipy_stats.kstest(part, uniform).pvalue > 1e-3


def test_failures_are_counted_on_the_device(monkeypatch):
    counter = sampler_failures("cpu")
    assert sampler_failures(torch.device("cpu")) is counter
    mu = F.normalize(torch.randn(1000, 16), dim=-1)
    before = counter.clone()
    vmf_rsample(mu, 16384.0)
    assert torch.equal(counter, before)  # the real plan: P(any failure) < 1e-9
    monkeypatch.setattr(wood, "_plan", lambda n, d, kappa: (1, 4, 1))  # starve the pool
    torch.manual_seed(0)
    _, _, failed = wood.wood_cosine(1000, 16, 16384.0, "cpu")
    expected = 1000 * (1 - wood_acceptance(16, 16384.0))
    assert abs(failed.sum().item() - expected) < 60
    before = counter.clone()
    z, _ = vmf_rsample(mu, 16384.0)
    assert 200 < (counter - before).item() < 400
    assert torch.isfinite(z).all() and torch.allclose(z.norm(dim=-1), torch.ones(1000))


@pytest.mark.parametrize(("args", "match"), [
    ((0, 16, 1.0), "n must be an integer >= 1, got 0"),
    ((4, 1, 1.0), "d must be an integer >= 2, got 1"),
    ((4, 16, -1.0), "kappa must be a finite number > 0, got -1.0"),
])
def test_plan_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        wood_plan(*args)


def test_chernoff_tail_bound_at_its_edges():
    """log bound on P(Bin(n, q) >= m): 0 up to the mean nq (inclusive), -inf past n, and at
    m = n the exact log q^n."""
    from cvr_solo.ceb.wood import _chernoff_log_tail

    assert _chernoff_log_tail(10, 0.3, 11) == -math.inf
    assert _chernoff_log_tail(10, 0.3, 3) == 0.0 and _chernoff_log_tail(10, 0.3, 2) == 0.0
    assert _chernoff_log_tail(10, 0.3, 10) == pytest.approx(10 * math.log(0.3), rel=1e-12)
    assert _chernoff_log_tail(10, 0.3, 4) < 0.0


@pytest.mark.parametrize("n_other", [0, 1, 7, 64, 1000])
@pytest.mark.parametrize("q", [0.01, 0.3, 0.9])
@pytest.mark.parametrize("log_eps", [-30.0, -3.0, -0.01])
def test_pool_size_is_the_smallest_m_whose_tail_bound_is_small_enough(n_other, q, log_eps):
    from cvr_solo.ceb.wood import _chernoff_log_tail, _pool_size

    brute = next(m for m in range(1, n_other + 2)
                 if _chernoff_log_tail(n_other, q, m) <= log_eps)
    assert _pool_size(n_other, q, log_eps) == brute


def test_a_proposal_from_given_normal_and_chi2_is_woods_formula():
    """1 - w of a proposal from (g, X): s = (1 + g / sqrt(g^2 + X)) / 2 ~ Beta(a, a) and
    1 - w = 2 b s / (1 - (1 - b) s) (Wood 1994), on either sign of g."""
    from cvr_solo.ceb.wood import _proposals, _wood_constants

    d, kappa = 16, 50.0
    b = _wood_constants(d, kappa)[0]
    g = torch.tensor([0.5, -0.5, 1.7, -2.2], dtype=torch.float64)
    chi2 = torch.tensor([3.0, 3.0, 20.0, 9.0], dtype=torch.float64)
    one_m_w, accepted = _proposals((4, 1), d, kappa, torch.device("cpu"), first=(g, chi2))
    s = (1 + g / torch.sqrt(g * g + chi2)) / 2
    assert torch.allclose(one_m_w[:, 0], 2 * b * s / (1 - (1 - b) * s), rtol=1e-12, atol=0)
    assert accepted.shape == (4, 1) and accepted.dtype == torch.bool
