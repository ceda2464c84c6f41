"""The von Mises-Fisher distribution on the unit sphere S^{d-1}, reparameterised.

    vMF(z; mu, kappa) = C_d(kappa) exp(kappa mu^T z),
    C_d(kappa) = kappa^{d/2-1} / ((2 pi)^{d/2} I_{d/2-1}(kappa)),
    A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa) = E[mu^T z].

Lee et al., "Compressive Visual Representations", NeurIPS 2021, Sec. 3 use vMF encoders for
the Conditional Entropy Bottleneck. The sampler is Wood (1994): the cosine w = mu^T z is drawn
by rejection in fixed-shape batches (:mod:`cvr_solo.ceb.wood`, free of device syncs), a
uniform direction is appended, and a Householder reflection maps e_1 onto mu, so gradients
reach mu. The concentration is a fixed number (as in the paper), so the
normaliser is a float64 constant computed once per (d, kappa) without underflow.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch.distributions import Distribution, constraints
from torch.distributions.kl import register_kl

from cvr_solo.ceb.special import _log_normalizer, _mean_resultant_length, log_bessel_iv
from cvr_solo.ceb.wood import sampler_failures, wood_cosine
from cvr_solo.common.checks import (
    check_dim,
    check_features,
    check_positive,
    check_unit,
    unit_norm_tol,
)

__all__ = [
    "VonMisesFisher",
    "log_bessel_iv",
    "log_normalizer",
    "mean_resultant_length",
    "sampler_failures",
    "vmf_kl",
    "vmf_rsample",
]


def log_normalizer(d: int, kappa: float) -> float:
    """log C_d(kappa), float64, cached per (d, kappa)."""
    return _log_normalizer(check_dim("d", d), check_positive("kappa", kappa))


def mean_resultant_length(d: int, kappa: float) -> float:
    """A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa) = E[mu^T z], cached per (d, kappa)."""
    return _mean_resultant_length(check_dim("d", d), check_positive("kappa", kappa))


def vmf_kl(d: int, kappa_1: float, kappa_2: float, cos_12: torch.Tensor | float):
    """KL(vMF(mu_1, k_1) || vMF(mu_2, k_2)) = (k_1 - k_2 mu_1^T mu_2) A_d(k_1)
    + log C_d(k_1) - log C_d(k_2), given cos_12 = mu_1^T mu_2 (tensor or number)."""
    d, k1, k2 = check_dim("d", d), check_positive("kappa_1", kappa_1), check_positive(
        "kappa_2", kappa_2)
    a1 = _mean_resultant_length(d, k1)
    return (k1 - k2 * cos_12) * a1 + _log_normalizer(d, k1) - _log_normalizer(d, k2)


def _rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products of two (n, d) tensors as a batched matmul: unlike
    ``(a * b).sum(1)`` (and ``vecdot`` on CPU) it allocates no n x d temporary."""
    return torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).view(a.shape[0])


class _HouseholderSample(torch.autograd.Function):
    """z = H(mu) z0 for z0 = [w, sqrt(1 - w^2) v], v uniform on S^{d-2}, with one n x d buffer.

    One Gaussian draw x ~ N(0, I_d) per row gives both v = x_{2:d} / ‖x_{2:d}‖ and the
    first Wood proposal of w (from x_1 and ‖x_{2:d}‖² ~ chi^2_{d-1}, independent of v;
    :func:`cvr_solo.ceb.wood.wood_cosine`; for float32 rows these two inputs carry float32
    rounding, relative 1e-7, as the direction does). H is the reflection that maps e_1 onto mu:
    z = z0 - c (e_1 - mu) with c = 2 z0^T(e_1 - mu) / ‖e_1 - mu‖², evaluated without
    cancellation as z0^T(e_1 - mu) = w (1 - mu_1) - g^T mu (g = the tangent part of z0) and
    ‖e_1 - mu‖² = (1 - mu_1)² + ‖mu_{2:d}‖². Rows with mu == e_1 (‖e_1 - mu‖² <= 1e-12)
    keep z = z0, c = 0 (torch.where: no host branch). With w and g fixed,
    dz/dmu = c I + (mu - e_1) dc/dmu^T and dc/dmu = -2 z / ‖e_1 - mu‖², so the backward pass
    needs only z itself: dL/dmu = c dL/dz - (2 (dL/dz)^T (mu - e_1) / ‖e_1 - mu‖²) z.
    Outputs: z, w (float64) and the rows whose w had no accepted proposal (bool).
    """

    @staticmethod
    def forward(ctx, mu: torch.Tensor, kappa: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f64 = torch.float64
        n, d = mu.shape
        z = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device)
        norm_g = torch.linalg.vector_norm(z[:, 1:], dim=1).to(f64)
        w, one_m_w, failed = wood_cosine(n, d, kappa, mu.device,
                                         first=(z[:, 0].to(f64), norm_g.square()))
        z[:, 0] = 0
        scale = torch.sqrt(one_m_w * (1 + w)) / norm_g
        z.mul_(scale.to(z.dtype).unsqueeze(1))  # z = g, the tangent part of z0
        one_m_mu1 = 1 - mu[:, 0].to(f64)
        den = one_m_mu1.square() + torch.linalg.vector_norm(mu[:, 1:], dim=1).to(f64).square()
        ok = den > 1e-12
        num = w * one_m_mu1 - _rowdot(z, mu).to(f64)
        c = torch.where(ok, 2 * num / den.clamp_min(1e-12), torch.zeros_like(den))
        z.addcmul_(c.to(z.dtype).unsqueeze(1), mu)
        z[:, 0] += (w - c).to(z.dtype)
        ctx.save_for_backward(z, mu, c, den, ok)
        ctx.mark_non_differentiable(w, failed)
        return z, w, failed

    @staticmethod
    def backward(ctx, grad: torch.Tensor, *_: torch.Tensor) -> tuple[torch.Tensor, None]:
        z, mu, c, den, ok = ctx.saved_tensors
        gc = (_rowdot(grad, mu) - grad[:, 0]).to(torch.float64)  # dL/dc
        a = torch.where(ok, 2 * gc / den.clamp_min(1e-12), torch.zeros_like(den))
        out = grad * c.to(grad.dtype).unsqueeze(1)
        out.addcmul_(a.to(grad.dtype).unsqueeze(1), z, value=-1)
        return out, None


def vmf_rsample(loc: torch.Tensor, kappa: float, sample_shape: torch.Size | tuple = ()
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Reparameterised draws z ~ vMF(loc, kappa) and their cosines w = loc^T z.

    The cosine comes from Wood's proposals in fixed-shape batches (:mod:`cvr_solo.ceb.wood`:
    no data-dependent host control flow, no device sync, ``torch.compile(fullgraph=True)``
    traces it); an entry has no accepted proposal with P < 1e-12 and is then counted in
    :func:`sampler_failures`. z depends on loc only through the Householder reflection
    (:class:`_HouseholderSample`).

    Args:
        loc: unit mean directions, shape (*batch, d), d >= 2 (not checked for unit norm).
        kappa: the concentration, a finite number > 0 (fixed: no gradient).
        sample_shape: leading shape of the draws.

    Returns:
        (z, w): z of shape (*sample_shape, *batch, d), w of shape (*sample_shape, *batch).
        w is exact (float64 from the rejection step, cast to z's dtype) and carries no
        gradient: with kappa fixed, log vMF(z; loc, kappa) = log C_d(kappa) + kappa w does not
        depend on loc. 16-bit locs are sampled in float32 and z is returned in float32.

    Raises:
        ValueError: loc is not a floating-point tensor with last dim >= 2, or kappa is not
            a finite number > 0.

    Example:
        >>> z, w = vmf_rsample(torch.nn.functional.normalize(torch.randn(4, 8), dim=-1), 50.0)
        >>> z.shape, w.shape
        (torch.Size([4, 8]), torch.Size([4]))
    """
    check_features("loc", loc, ndim=None)
    kappa = check_positive("kappa", kappa)
    d = loc.shape[-1]
    dtype = torch.float32 if loc.dtype in (torch.float16, torch.bfloat16) else loc.dtype
    shape = torch.Size(sample_shape) + loc.shape
    n = math.prod(shape[:-1])
    if n == 0:
        return loc.new_empty(shape, dtype=dtype), loc.new_empty(shape[:-1], dtype=dtype)
    mu = loc.to(dtype).expand(shape).reshape(n, d)
    z, w, failed = _HouseholderSample.apply(mu, kappa)
    sampler_failures(loc.device).add_(failed.sum())
    return z.reshape(shape), w.to(dtype).reshape(shape[:-1])


class _UnitSphere(constraints.Constraint):
    """Vectors with |‖x‖ - 1| within the dtype's tolerance
    (:func:`cvr_solo.common.checks.unit_norm_tol`)."""

    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        return (value.norm(dim=-1) - 1).abs() <= unit_norm_tol(value.dtype)

    def __repr__(self) -> str:
        return "UnitSphere()"


unit_sphere = _UnitSphere()


class VonMisesFisher(Distribution):
    """vMF(mu, kappa) on S^{d-1}, shaped like a ``torch.distributions`` class.

    Args:
        loc: unit mean directions mu, shape (*batch_shape, d), d >= 2.
        concentration: kappa, one finite number > 0 shared by the batch (fixed, no gradient).
        validate_args: check loc is unit-norm (|‖mu‖ - 1| <= 1e-4, 1e-2 for bfloat16, one
            device sync) and samples passed to ``log_prob``; defaults to torch's setting.

    ``rsample`` is Wood's (1994) sampler with a Householder reflection, differentiable in loc.
    ``log_prob(z) = log C_d(kappa) + kappa mu^T z``; ``entropy = -log C_d(kappa) - kappa A_d``;
    ``mean = A_d(kappa) mu``; ``mode = mu``. KL(vMF || vMF) is registered in closed form.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "loc": unit_sphere, "concentration": constraints.positive}
    support = unit_sphere
    has_rsample = True

    def __init__(self, loc: torch.Tensor, concentration: float | torch.Tensor,
                 validate_args: bool | None = None) -> None:
        check_features("loc", loc, ndim=None)
        self._kappa = check_positive("concentration", concentration)
        self._d = loc.shape[-1]
        validate = Distribution._validate_args if validate_args is None else validate_args
        if validate:
            check_unit("loc", loc)
        self.loc = loc
        # torch.full, not torch.tensor: no host-to-device copy (a sync on a GPU)
        self.concentration = torch.full((), self._kappa, dtype=loc.dtype, device=loc.device)
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=False)
        self._validate_args = bool(validate)

    @property
    def kappa(self) -> float:
        """The concentration as a Python float."""
        return self._kappa

    @property
    def log_normalizer(self) -> float:
        """log C_d(kappa) (float64 constant)."""
        return _log_normalizer(self._d, self._kappa)

    @property
    def mean_resultant_length(self) -> float:
        """A_d(kappa) = E[mu^T z]."""
        return _mean_resultant_length(self._d, self._kappa)

    @property
    def mean(self) -> torch.Tensor:
        return self.mean_resultant_length * self.loc

    @property
    def mode(self) -> torch.Tensor:
        return self.loc

    def expand(self, batch_shape: torch.Size | tuple, _instance=None) -> VonMisesFisher:
        loc = self.loc.expand(torch.Size(batch_shape) + self.event_shape)
        return VonMisesFisher(loc, self._kappa, validate_args=False)

    def rsample(self, sample_shape: torch.Size | tuple = ()) -> torch.Tensor:
        return vmf_rsample(self.loc, self._kappa, sample_shape)[0]

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if value.shape[-1:] != self.event_shape:
            raise ValueError(f"value must have last dim d = {self._d}, got shape "
                             f"{tuple(value.shape)}")
        if self._validate_args:
            check_unit("value", value)
        return self.log_normalizer + self._kappa * (value * self.loc).sum(-1)

    def entropy(self) -> torch.Tensor:
        h = -self.log_normalizer - self._kappa * self.mean_resultant_length
        return torch.full(self.batch_shape, h, dtype=self.loc.dtype, device=self.loc.device)

    def __repr__(self) -> str:
        return (f"VonMisesFisher(loc: {tuple(self.loc.shape)}, concentration: {self._kappa:g})")


@register_kl(VonMisesFisher, VonMisesFisher)
def _kl_vmf_vmf(p: VonMisesFisher, q: VonMisesFisher) -> torch.Tensor:
    if p.event_shape != q.event_shape:
        raise ValueError(f"KL needs the same d, got {p.event_shape[0]} and {q.event_shape[0]}")
    return vmf_kl(p._d, p.kappa, q.kappa, (p.loc * q.loc).sum(-1))
