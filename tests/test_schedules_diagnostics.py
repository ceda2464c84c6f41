"""beta schedules and the CEB diagnostics."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import kl_divergence

from cvr_solo import (
    BETA_SCHEDULES,
    VonMisesFisher,
    beta_at,
    embedding_distance_from_kl,
    lipschitz_lower_bound,
    lipschitz_lower_bound_from_cos,
    residual_floor,
    vmf_kl,
)


def test_constant_schedule():
    assert [beta_at(s, 100, 10, 0.8, "constant") for s in (0, 5, 99, 500)] == [0.8] * 4


def test_linear_warmup_schedule():
    vals = [beta_at(s, 100, 10, 2.0, "warmup") for s in range(0, 15)]
    assert vals[0] == 0.0
    assert vals[5] == pytest.approx(1.0)
    assert vals[10:] == [2.0] * 5
    assert all(b >= a for a, b in itertools.pairwise(vals))
    assert beta_at(3, 100, 0, 2.0, "warmup") == 2.0  # no warm-up: full beta at once


def test_cosine_ramp_schedule():
    total = 200
    vals = [beta_at(s, total, 0, 1.5, "cosine") for s in range(total + 1)]
    assert vals[0] == 0.0 and vals[total] == pytest.approx(1.5)
    assert vals[total // 2] == pytest.approx(0.75)
    for s in (17, 63, 150):
        assert vals[s] == pytest.approx(1.5 * (1 - math.cos(math.pi * s / total)) / 2)
    assert all(b >= a for a, b in itertools.pairwise(vals))
    assert beta_at(10 * total, total, 0, 1.5, "cosine") == pytest.approx(1.5)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"schedule": "linear"}, "beta_schedule must be one of 'constant', 'warmup', 'cosine', "
                             "got 'linear'"),
    ({"beta": -0.1}, "beta must be a finite number >= 0, got -0.1"),
    ({"beta": float("nan")}, "beta must be a finite number >= 0, got nan"),
    ({"step": -1}, "step must be an integer >= 0, got -1"),
    ({"total_steps": 0}, "total_steps must be an integer >= 1, got 0"),
    ({"warmup_steps": 101}, r"warmup_steps must be <= total_steps \(100\), got 101"),
    ({"step": 1.5}, "step must be an integer >= 0, got 1.5"),
])
def test_schedule_errors(kwargs, match):
    args = {"step": 0, "total_steps": 100, "warmup_steps": 10, "beta": 1.0,
            "schedule": "warmup"} | kwargs
    with pytest.raises(ValueError, match=match):
        beta_at(**args)


def test_schedule_names():
    assert BETA_SCHEDULES == ("constant", "warmup", "cosine")


@pytest.mark.parametrize(("d", "ke", "kb"), [(256, 1024.0, 10.0), (256, 16384.0, 10.0),
                                             (16, 50.0, 5.0)])
def test_embedding_distance_inverts_the_closed_form_kl(d, ke, kb):
    g = torch.Generator().manual_seed(0)
    hx = F.normalize(torch.randn(20, d, generator=g, dtype=torch.float64), dim=-1)
    hy = F.normalize(hx + 0.3 * torch.randn(20, d, generator=g, dtype=torch.float64), dim=-1)
    kl = kl_divergence(VonMisesFisher(hx, ke), VonMisesFisher(hy, kb))
    dist = embedding_distance_from_kl(kl, d, ke, kb)
    assert torch.allclose(dist, (hx - hy).norm(dim=-1), atol=1e-6)
    assert torch.allclose(embedding_distance_from_kl(torch.full((3,), residual_floor(d, ke, kb),
                                                                dtype=torch.float64), d, ke, kb),
                          torch.zeros(3, dtype=torch.float64), atol=1e-6)


def test_lipschitz_lower_bound_is_max_ratio():
    d, ke, kb = 32, 1024.0, 10.0
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 3, 4, 4, generator=g, dtype=torch.float64)
    y = x + 0.1 * torch.randn(6, 3, 4, 4, generator=g, dtype=torch.float64)
    h = torch.nn.Linear(48, d).double()
    hx, hy = F.normalize(h(x.flatten(1)), dim=-1), F.normalize(h(y.flatten(1)), dim=-1)
    kl = vmf_kl(d, ke, kb, (hx * hy).sum(-1)).detach()
    bound = lipschitz_lower_bound(kl, x, y, d, ke, kb)
    ratios = (hx - hy).norm(dim=-1) / (x - y).flatten(1).norm(dim=-1)
    assert bound.item() == pytest.approx(ratios.max().item(), rel=1e-6)
    # identical views carry no information and are skipped
    assert lipschitz_lower_bound(kl, x, x, d, ke, kb).item() == 0.0
    # from the cosine directly: the same bound, without the KL's floor of hundreds of nats
    cos = (hx * hy).sum(-1).detach()
    assert lipschitz_lower_bound_from_cos(cos, x, y).item() == pytest.approx(
        ratios.max().item(), rel=1e-12)
    assert lipschitz_lower_bound_from_cos(cos, x, x).item() == 0.0
    assert lipschitz_lower_bound_from_cos(cos.float(), x, y).dtype == torch.float32


def test_lipschitz_bound_from_float32_cosines_keeps_small_distances():
    """A distance of 1e-2 between unit vectors (d = 256) from float32 cosines, to 1 %."""
    d = 256
    hx = F.normalize(torch.randn(4, d, generator=torch.Generator().manual_seed(2),
                                 dtype=torch.float64), dim=-1)
    hy = F.normalize(hx + 1e-2 / math.sqrt(d) * torch.randn(4, d, dtype=torch.float64,
                                                            generator=torch.Generator()
                                                            .manual_seed(3)), dim=-1)
    x = torch.zeros(4, 2, dtype=torch.float64)  # ‖x - y‖ = 1: the bound is the distance
    y = torch.tensor([[1.0, 0.0]] * 4, dtype=torch.float64)
    exact = (hx - hy).norm(dim=-1).max().item()
    cos = (hx * hy).sum(-1)
    assert lipschitz_lower_bound_from_cos(cos.float(), x, y).item() == pytest.approx(
        exact, rel=1e-2)
    with pytest.raises(ValueError, match=r"cos must be a 1-d tensor .one value per pair."):
        lipschitz_lower_bound_from_cos(cos[:, None], x, y)


def test_diagnostic_errors():
    kl = torch.zeros(4)
    with pytest.raises(ValueError, match="kl must be a 1-d tensor"):
        lipschitz_lower_bound(torch.zeros(4, 1), torch.zeros(4, 3), torch.zeros(4, 3), 8, 10, 5)
    with pytest.raises(ValueError, match=r"y must have the shape of x \(4, 3\), got \(4, 2\)"):
        lipschitz_lower_bound(kl, torch.zeros(4, 3), torch.zeros(4, 2), 8, 10, 5)
    with pytest.raises(ValueError, match=r"x must have one row per kl value \(4\), got 2"):
        lipschitz_lower_bound(kl, torch.zeros(2, 3), torch.zeros(2, 3), 8, 10, 5)
    with pytest.raises(ValueError, match="d must be an integer >= 2, got 1"):
        embedding_distance_from_kl(kl, 1, 10.0, 5.0)


def test_schedule_defaults_and_boundaries():
    # defaults: no warm-up, beta = 1, constant
    assert beta_at(5, 10) == 1.0
    assert beta_at(0, 10, schedule="warmup") == 1.0  # W = 0: full beta at once
    assert beta_at(0, 10, 10, 0.5, "warmup") == 0.0  # W = T is allowed
    with pytest.raises(ValueError, match=r"warmup_steps must be an integer >= 0, got -1"):
        beta_at(0, 10, -1)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: embedding_distance_from_kl(torch.zeros(2), 8, -1.0, 5.0),
     "kappa_e must be a finite number > 0, got -1.0"),
    (lambda: embedding_distance_from_kl(torch.zeros(2), 8, 10.0, 0.0),
     "kappa_b must be a finite number > 0, got 0.0"),
    (lambda: lipschitz_lower_bound(torch.zeros(2), [0.0], torch.zeros(2, 3), 8, 10, 5),
     "x must be a torch.Tensor, got list"),
    (lambda: lipschitz_lower_bound(torch.zeros(2), torch.zeros(2, 3), [0.0], 8, 10, 5),
     "y must be a torch.Tensor, got list"),
    (lambda: lipschitz_lower_bound([0.0], torch.zeros(2, 3), torch.zeros(2, 3), 8, 10, 5),
     "kl must be a 1-d tensor .one value per pair., got list"),
    (lambda: lipschitz_lower_bound(torch.zeros(2, 1), torch.zeros(2, 3), torch.zeros(2, 3), 8,
                                   10, 5),
     r"kl must be a 1-d tensor .*, got torch.Size\(\[2, 1\]\)"),
])
def test_diagnostic_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_lipschitz_bound_skips_pairs_at_eps_and_keeps_the_dtype():
    d, ke, kb = 8, 100.0, 5.0
    kl = torch.tensor([residual_floor(d, ke, kb) + 3.0], dtype=torch.float64)
    x, y = torch.zeros(1, 2, dtype=torch.float64), torch.tensor([[0.5, 0.0]],
                                                                dtype=torch.float64)
    assert lipschitz_lower_bound(kl, x, y, d, ke, kb, eps=0.5).item() == 0.0  # <= eps: skipped
    assert lipschitz_lower_bound(kl, x, y, d, ke, kb, eps=0.4).item() > 0
    assert lipschitz_lower_bound(kl, x, y, d, ke, kb).dtype == torch.float64
    assert lipschitz_lower_bound(kl.float(), x, y, d, ke, kb).dtype == torch.float32
    assert lipschitz_lower_bound(kl.round().long(), x, y, d, ke, kb).dtype == torch.float32
