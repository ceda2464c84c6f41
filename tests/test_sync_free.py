"""No host control flow in the sampler and the losses: they trace with
torch.compile(fullgraph=True) (a graph break would mean a host decision), and on a GPU they run
under torch.cuda.set_sync_debug_mode("error") (skipped without one)."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
import torch.nn.functional as F

from cvr_solo import (
    c_byol_loss,
    c_simclr_loss,
    mean_resultant_length,
    sampler_failures,
    vmf_rsample,
)

CUDA = torch.cuda.is_available()
#: Graph breaks are found by dynamo whatever the backend; aot_eager also traces autograd
#: (the sampler's autograd.Function) but skips code generation, which takes most of the time.
#: One test compiles with the default backend, inductor.
BACKEND = "aot_eager"
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device: the sync check needs a GPU")


@pytest.fixture(autouse=True)
def _keep_distribution_validation():
    """torch.compile's first use switches torch.distributions' default argument validation
    off for the whole process (dynamo patches it); later tests expect it on."""
    from torch.distributions import Distribution

    before = Distribution._validate_args
    yield
    Distribution.set_default_validate_args(before)


def _unit(*shape: int, seed: int = 0, device: str = "cpu", dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=dtype), dim=-1).to(device)


def _leaves(b: int, d: int, device: str = "cpu", seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, d, generator=g).to(device).requires_grad_() for _ in range(8)]


def _byol_args(leaves: list[torch.Tensor]):
    """The C-BYOL loss's arguments built from 8 leaves (two vMF draws included)."""
    e = [F.normalize(x, dim=-1) for x in leaves[:2]]
    draws = [vmf_rsample(m, 16384.0) for m in e]
    b_loc = [F.normalize(x, dim=-1) for x in leaves[6:]]
    args = ((leaves[2], leaves[3]), (leaves[4], leaves[5]), [z for z, _ in draws], e, b_loc)
    return args, [c for _, c in draws]


def test_vmf_rsample_compiles_with_fullgraph():
    torch._dynamo.reset()
    f = torch.compile(vmf_rsample, fullgraph=True, backend=BACKEND)
    d, kappa = 16, 100.0
    mu = _unit(20000, d, seed=1).requires_grad_()
    z, w = f(mu, kappa)
    assert z.shape == (20000, d) and w.shape == (20000,)
    assert torch.allclose(z.norm(dim=-1), torch.ones(20000), atol=1e-5)
    assert torch.allclose((z * mu).sum(-1), w, atol=1e-5)
    stderr = w.std().item() / math.sqrt(w.numel())
    assert abs(w.mean().item() - mean_resultant_length(d, kappa)) <= 5 * stderr
    (z * torch.linspace(-1, 1, d)).sum().backward()
    assert torch.isfinite(mu.grad).all() and mu.grad.abs().sum() > 0
    # another batch shape and sample_shape recompile (the plan is per shape), no graph break
    z, w = f(_unit(3, 7, d, seed=2, dtype=torch.float64), kappa, (2,))
    assert z.shape == (2, 3, 7, d) and z.dtype == torch.float64
    assert torch.allclose(z.norm(dim=-1), torch.ones(2, 3, 7, dtype=torch.float64))


def test_vmf_rsample_compiles_with_inductor():
    torch._dynamo.reset()
    f = torch.compile(vmf_rsample, fullgraph=True)
    mu = _unit(256, 32, seed=4).requires_grad_()
    z, w = f(mu, 1024.0)
    assert torch.allclose(z.norm(dim=-1), torch.ones(256), atol=1e-5)
    assert torch.allclose((z * mu).sum(-1), w, atol=1e-5)
    z.sum().backward()
    assert torch.isfinite(mu.grad).all()


def test_losses_compile_with_fullgraph_and_match_eager():
    torch._dynamo.reset()
    r1, r2 = (torch.randn(12, 16, generator=torch.Generator().manual_seed(s))
              .requires_grad_() for s in (0, 1))
    simclr = torch.compile(c_simclr_loss, fullgraph=True, backend=BACKEND)
    eager = c_simclr_loss(r1, r2, kappa_b=10.0, beta=0.5, sample=False)
    out = simclr(r1, r2, kappa_b=10.0, beta=0.5, sample=False)
    assert out.loss.item() == pytest.approx(eager.loss.item(), rel=1e-5)
    assert torch.allclose(out.residual, eager.residual, rtol=1e-5)
    for beta in (1.0, 2.0, 3.0):  # a changing beta (a schedule) becomes a traced symbol
        sampled = simclr(r1, r2, kappa_e=1024.0, kappa_b=10.0, beta=beta)
    sampled.loss.backward()
    assert torch.isfinite(r1.grad).all()
    with pytest.raises(Exception, match="beta must be a finite number >= 0"):
        simclr(r1, r2, kappa_e=1024.0, kappa_b=10.0, beta=-1.0)

    leaves = _leaves(12, 16)
    args, cos = _byol_args(leaves)
    byol = torch.compile(c_byol_loss, fullgraph=True, backend=BACKEND)
    out = byol(*args, e_cos=cos, w=2.0, beta=1.0)
    eager = c_byol_loss(*args, e_cos=cos, w=2.0, beta=1.0)
    assert out.loss.item() == pytest.approx(eager.loss.item(), rel=1e-5)
    out.loss.backward()
    assert all(torch.isfinite(x.grad).all() for x in leaves if x.grad is not None)


@contextlib.contextmanager
def _sync_is_an_error():
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_vmf_rsample_does_not_sync_on_cuda(dtype):
    mu = _unit(4096, 256, seed=3, device="cuda").to(dtype).requires_grad_()
    for kappa in (10.0, 1024.0, 16384.0):
        vmf_rsample(mu, kappa)  # warm-up: the cached constants and plan, cuBLAS handles
        with _sync_is_an_error():
            z, _ = vmf_rsample(mu, kappa)
            z.sum().backward()
            count = sampler_failures(mu.device) + 0
        torch.cuda.synchronize()
        assert torch.isfinite(z).all() and torch.isfinite(mu.grad).all()
        assert count.item() == 0


@needs_cuda
def test_losses_do_not_sync_on_cuda():
    r1, r2 = (torch.randn(512, 256, device="cuda").requires_grad_() for _ in range(2))
    leaves = _leaves(512, 256, device="cuda")  # host-to-device copies: outside the check
    c_simclr_loss(r1, r2)  # warm-up
    c_byol_loss(*_byol_args(leaves)[0])
    for autocast in (False, True):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast), \
                _sync_is_an_error():
            out = c_simclr_loss(r1, r2, kappa_e=1024.0, kappa_b=10.0, beta=1.0)
            out.loss.backward()
            args, cos = _byol_args(leaves)
            c_byol_loss(*args, e_cos=cos).loss.backward()
        torch.cuda.synchronize()
        assert torch.isfinite(r1.grad).all() and torch.isfinite(leaves[0].grad).all()
