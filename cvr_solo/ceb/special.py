"""Float64 constants of the vMF distribution, computed once per (d, kappa) and cached.

    C_d(kappa) = kappa^{d/2-1} / ((2 pi)^{d/2} I_{d/2-1}(kappa)),
    A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa) = E[mu^T z].

The concentration is a fixed number (as in Lee et al. 2021, Sec. 3), so these are Python
floats. They are marked ``torch.compiler.assume_constant_result``: compiled code (the losses,
the sampler) calls them like constants instead of tracing the series.
"""

from __future__ import annotations

import functools
import math

import torch

from cvr_solo.common.checks import check_non_negative, check_positive

__all__ = ["log_bessel_iv"]


@functools.lru_cache(maxsize=4096)
def log_bessel_iv(order: float, x: float) -> float:
    """log I_v(x) in float64 for v >= 0, x > 0, by a log-space power series.

    I_v(x) = sum_k (x/2)^{2k+v} / (k! Gamma(k+v+1)). The terms peak at
    k* = (sqrt(v^2 + x^2) - v)/2 - 1 and fall off like a Gaussian of width <= sqrt(k*+1);
    summing to k* + 40 sqrt(k*+1) + 60 with logsumexp neither under- nor overflows for any
    (v, x) a vMF needs (d <= 2048, kappa <= 1e5 take < 60k terms, once per constant).

    Args:
        order: v, a finite number >= 0.
        x: a finite number > 0.

    Returns:
        log I_v(x) as a Python float.

    Raises:
        ValueError: order or x out of range.

    Example:
        >>> round(log_bessel_iv(0.5, 1.0), 6)  # I_{1/2}(1) = sqrt(2/pi) sinh(1)
        -0.064352
    """
    order, x = check_non_negative("order", order), check_positive("x", x)
    k_star = max(0.0, (math.sqrt(order * order + x * x) - order) / 2 - 1)
    n_terms = math.ceil(k_star + 40 * math.sqrt(k_star + 1)) + 60
    k = torch.arange(n_terms, dtype=torch.float64)
    log_terms = (
        (2 * k + order) * math.log(x / 2) - torch.lgamma(k + 1) - torch.lgamma(k + order + 1)
    )
    return float(torch.logsumexp(log_terms, dim=0))


@functools.lru_cache(maxsize=4096)
def _log_normalizer_cached(d: int, kappa: float) -> float:
    v = d / 2 - 1
    return v * math.log(kappa) - (d / 2) * math.log(2 * math.pi) - log_bessel_iv(v, kappa)


@functools.lru_cache(maxsize=4096)
def _mean_resultant_length_cached(d: int, kappa: float) -> float:
    v = d / 2 - 1
    return math.exp(log_bessel_iv(v + 1, kappa) - log_bessel_iv(v, kappa))


# Plain wrappers carry the constant mark: dynamo traces through lru_cache wrappers.
@torch.compiler.assume_constant_result
def _log_normalizer(d: int, kappa: float) -> float:
    return _log_normalizer_cached(d, kappa)


@torch.compiler.assume_constant_result
def _mean_resultant_length(d: int, kappa: float) -> float:
    return _mean_resultant_length_cached(d, kappa)
