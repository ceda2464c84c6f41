"""Wood's (1994) sampler of the vMF cosine w = mu^T z, with no host-side control flow.

w has density proportional to exp(kappa w) (1 - w^2)^{(d-3)/2} on (-1, 1). Wood proposes

    b = (d-1) / (2 kappa + sqrt(4 kappa^2 + (d-1)^2)),  x0 = (1-b)/(1+b),
    c = kappa x0 + (d-1) log(1 - x0^2),
    s ~ Beta(a, a), a = (d-1)/2,  w = (1 - (1+b) s) / (1 - (1-b) s),

and accepts when kappa w + (d-1) log(1 - x0 w) - c >= log u, u ~ U(0, 1). Each proposal is
accepted with the same probability (derived from the proposal's density, exact):

    P_acc(d, kappa) = 2 b^a (1+b)^{-2a} e^{-c} sqrt(pi) Gamma(a) (2/kappa)^nu I_nu(kappa) / B(a, a),
    nu = d/2 - 1,

(about 0.71 for kappa >> d, near 1 for kappa << d; :func:`wood_acceptance`). Instead of
redrawing rejected entries until none is left (one host decision per round, a device sync
on a GPU), every call draws a fixed number of proposals in two fixed-shape stages
(:func:`wood_plan`, chosen once per (n, d, kappa) and cached):

1. k1 proposals for each of the n entries; an entry keeps its first accepted one;
2. a pool of m slots with k2 proposals each; the entries that accepted nothing in stage 1
   take, in order (a cumulative sum ranks them), the first accepted proposal of a slot.

k1 + k2 = K = ceil(log(eps/2) / log(1 - P_acc)) and m is the smallest pool for which a
Chernoff bound puts P(more than m - 1 of the other n - 1 entries need a slot) below
eps / (2 q1), q1 = (1 - P_acc)^k1, so that for every entry

    P(no accepted proposal) <= q1 (1 - P_acc)^k2 + q1 P(Bin(n-1, q1) >= m) <= eps = 1e-12.

(k1, m, k2) minimise the number of proposals n k1 + m k2. Accepted values are exact draws
(the proposals a slot holds are independent of which entry takes them). An entry that
accepts nothing keeps a proposal: the output's law is then within total variation 1e-12 of
the vMF's per entry; such entries are counted on the device (:func:`sampler_failures`),
never inspected on the host.
"""

from __future__ import annotations

import functools
import math
import operator

import torch

from cvr_solo.ceb.special import log_bessel_iv
from cvr_solo.common.checks import check_dim, check_number, check_positive

__all__ = ["FAILURE_BOUND", "sampler_failures", "wood_acceptance", "wood_cosine", "wood_plan"]

#: Bound on the chance that an entry gets no accepted proposal in one call.
FAILURE_BOUND = 1e-12

_FAILURES: dict[torch.device, torch.Tensor] = {}


def sampler_failures(device: torch.device | str) -> torch.Tensor:
    """The running count of entries (on ``device``, this process) that got no accepted
    proposal: a 0-dim int64 tensor on the device, updated in place by every draw, so that it
    can be logged without a sync. Expected to stay 0 (each entry fails with P < 1e-12).

    Example:
        >>> int(sampler_failures("cpu")) >= 0
        True
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    counter = _FAILURES.get(device)
    if counter is None:
        counter = torch.zeros((), dtype=torch.int64, device=device)
        _FAILURES[device] = counter
    return counter


def _wood_constants(d: int, kappa: float) -> tuple[float, float, float, float]:
    """(b, x0, 1 - x0, log(1 - x0^2)), the last two without cancellation for kappa >> d."""
    dm1 = d - 1.0
    b = dm1 / (2 * kappa + math.sqrt(4 * kappa * kappa + dm1 * dm1))
    one_m_x0 = 2 * b / (1 + b)
    x0 = 1 - one_m_x0
    return b, x0, one_m_x0, math.log(one_m_x0) + math.log1p(x0)


@functools.lru_cache(maxsize=4096)
def _acceptance(d: int, kappa: float) -> float:
    a, nu = (d - 1) / 2, d / 2 - 1
    b, x0, _, log_1m_x0sq = _wood_constants(d, kappa)
    log_c = kappa * x0 + (d - 1) * log_1m_x0sq
    log_beta = 2 * math.lgamma(a) - math.lgamma(2 * a)
    log_int = (0.5 * math.log(math.pi) + math.lgamma(a) + nu * math.log(2 / kappa)
               + log_bessel_iv(nu, kappa))  # log of the integral of e^{kw} (1-w^2)^{a-1}
    log_p = (math.log(2) + a * math.log(b) - 2 * a * math.log1p(b) - log_beta - log_c
             + log_int)
    return min(1.0, math.exp(log_p))


def wood_acceptance(d: int, kappa: float) -> float:
    """P_acc(d, kappa): the chance that one Wood proposal is accepted (formula above).

    Args:
        d: the dimension (sphere S^{d-1}), an integer >= 2.
        kappa: the concentration, a finite number > 0.

    Returns:
        The acceptance probability in (0, 1].

    Raises:
        ValueError: d or kappa out of range.

    Example:
        >>> round(wood_acceptance(256, 16384.0), 3)
        0.71
    """
    return _acceptance(check_dim("d", d), check_positive("kappa", kappa))


def _chernoff_log_tail(n: int, q: float, m: int) -> float:
    """log of a bound on P(Bin(n, q) >= m): 0 if m <= nq, -inf if m > n, else
    -n KL(m/n || q) (Chernoff)."""
    if m > n:
        return -math.inf
    if m <= n * q:
        return 0.0
    r = m / n
    kl = r * math.log(r / q) + (0.0 if r == 1 else (1 - r) * math.log((1 - r) / (1 - q)))
    return -n * kl


def _pool_size(n_other: int, q: float, log_eps: float) -> int:
    """Smallest m >= 1 with bound(P(Bin(n_other, q) >= m)) <= eps."""
    lo, hi = 1, n_other + 1  # hi always satisfies it (the tail is empty)
    while lo < hi:
        mid = (lo + hi) // 2
        if _chernoff_log_tail(n_other, q, mid) <= log_eps:
            hi = mid
        else:
            lo = mid + 1
    return lo


@functools.lru_cache(maxsize=4096)
def _plan_cached(n: int, d: int, kappa: float) -> tuple[int, int, int]:
    p = _acceptance(d, kappa)
    log_r = math.log1p(-p) if p < 1 else -math.inf
    log_half = math.log(FAILURE_BOUND / 2)
    if log_r == -math.inf:  # P_acc == 1 in float64: rejection below 1e-16
        return 1, 0, 0
    k = max(1, math.ceil(log_half / log_r))
    best = (n * k, k, 0, 0)  # one stage: k proposals per entry
    for k1 in range(1, k):
        log_q1 = k1 * log_r
        m = _pool_size(n - 1, math.exp(log_q1), log_half - log_q1)
        cost = n * k1 + m * (k - k1) + n  # + n: ranking and gathering the stage-1 failures
        if cost < best[0]:
            best = (cost, k1, m, k - k1)
    return best[1], best[2], best[3]


@torch.compiler.assume_constant_result  # a plain wrapper: dynamo traces through lru_cache
def _plan(n: int, d: int, kappa: float) -> tuple[int, int, int]:
    return _plan_cached(n, d, kappa)


def wood_plan(n: int, d: int, kappa: float) -> tuple[int, int, int]:
    """(k1, m, k2): proposals per entry, pool slots and proposals per slot for n entries.

    Args:
        n: number of entries drawn at once, an integer >= 1.
        d: the dimension, an integer >= 2.
        kappa: the concentration, a finite number > 0.

    Returns:
        (k1, m, k2) as described in the module docstring (m = k2 = 0: one stage).

    Raises:
        ValueError: an argument out of range.

    Example:
        >>> wood_plan(4096, 256, 16384.0)[0] >= 1
        True
    """
    return _plan(check_number("n", n, low=1, integer=True), check_dim("d", d),
                 check_positive("kappa", kappa))


def _proposals(shape: tuple[int, int], d: int, kappa: float, device: torch.device,
               first: tuple[torch.Tensor, torch.Tensor] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Wood proposals of shape ``shape`` = (rows, k): (1 - w, accepted), float64 and bool.

    s ~ Beta(a, a) is drawn as s = (1 + y)/2 with y = g / sqrt(g^2 + X), g ~ N(0, 1),
    X ~ chi^2_{d-1} (y is the first coordinate of a uniform point on S^{d-1}, whose density
    is proportional to (1 - y^2)^{(d-3)/2}): one gamma and one normal per proposal. With
    P = r + |g| and Q = X / P = r - |g| (r = sqrt(g^2 + X)), s = P'/(P'+Q') where
    (P', Q') = (P, Q) for g >= 0 and (Q, P) otherwise, and 1 - w = 2 b P' / (Q' + b P'):
    nothing cancels, even for kappa >> d where 1 - w ~ b. ``first``: (g, X) of each row's
    first proposal, shape (rows,), given by the caller (drawn here otherwise).
    """
    f64 = torch.float64
    rows, k = shape
    b, x0, one_m_x0, log_1m_x0sq = _wood_constants(d, kappa)
    fresh = (rows, k if first is None else k - 1)
    chi2 = 2 * torch._standard_gamma(torch.full(fresh, (d - 1) / 2, dtype=f64, device=device))
    # float32 normals (6x faster than float64 ones on CPU), as in the direction's draw: their
    # rounding (relative 6e-8) is far below anything a sample could detect
    g = torch.randn(fresh, device=device).to(f64)
    if first is not None:
        g = torch.cat([first[0].unsqueeze(1), g], dim=1)
        chi2 = torch.cat([first[1].unsqueeze(1), chi2], dim=1)
    big = torch.sqrt(g * g + chi2) + g.abs()
    small = chi2 / big
    pos = g >= 0
    num = torch.where(pos, big, small)
    one_m_w = 2 * b * num / (torch.where(pos, small, big) + b * num)
    t = kappa * (one_m_x0 - one_m_w) + (d - 1) * (torch.log(one_m_x0 + x0 * one_m_w)
                                                  - log_1m_x0sq)
    accepted = t >= torch.log(torch.rand(shape, dtype=f64, device=device))
    return one_m_w, accepted


def _first_accepted(one_m_w: torch.Tensor, accepted: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: the first accepted proposal (the first one if none is) and whether any is."""
    first = accepted.to(torch.uint8).argmax(dim=1, keepdim=True)  # first maximum
    return one_m_w.gather(1, first).squeeze(1), accepted.gather(1, first).squeeze(1)


def wood_cosine(n: int, d: int, kappa: float, device: torch.device | str,
                first: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n independent cosines w ~ vMF cosine law, with fixed shapes throughout (no sync).

    Args:
        n: number of draws, an integer >= 1.
        d: the dimension, an integer >= 2.
        kappa: the concentration, a finite number > 0.
        device: where to draw.
        first: optional (g, X), float64 (n,) tensors, g ~ N(0, 1) and X ~ chi^2_{d-1}
            independent, used for each entry's first proposal (the vMF sampler passes the
            first coordinate and the squared norm of the rest of its Gaussian direction
            draw, which are independent of that direction).

    Returns:
        (w, 1 - w, failed): float64 (n,) tensors and a bool (n,) tensor marking the entries
        that got no accepted proposal (P < 1e-12 each; they hold an unaccepted proposal).

    Raises:
        ValueError: an argument out of range.

    Example:
        >>> w, one_m_w, failed = wood_cosine(8, 16, 10.0, "cpu")
        >>> bool(((w > -1) & (w < 1)).all()), int(failed.sum())
        (True, 0)
    """
    # operator.index: under torch.compile a symbolic n or d is specialised (a guard), since
    # the plan, a per-shape constant, needs Python numbers
    n, d = operator.index(n), operator.index(d)
    k1, m, k2 = wood_plan(n, d, kappa)
    device = torch.device(device)
    one_m_w, ok = _first_accepted(*_proposals((n, k1), d, kappa, device, first))
    if m:
        fail = ~ok
        rank = torch.cumsum(fail, 0) - 1  # stage-1 failures take slots in order
        slot = rank.clamp(0, m - 1)
        pool_value, pool_ok = _first_accepted(*_proposals((m, k2), d, kappa, device))
        take = fail & (rank < m)
        one_m_w = torch.where(take, pool_value.index_select(0, slot), one_m_w)
        ok = ok | (take & pool_ok.index_select(0, slot))
    return 1 - one_m_w, one_m_w, ~ok
