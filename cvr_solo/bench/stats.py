"""Summary statistics over seeds for the benchmark's report (no solo-learn needed)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

__all__ = ["mean_std", "paired_t_interval"]


def _finite(xs: Sequence[float | None]) -> list[float]:
    return [float(x) for x in xs if x is not None and math.isfinite(x)]


def mean_std(xs: Sequence[float | None]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (n - 1 in the denominator; nan for one value) and the
    count of the finite values of ``xs``.

    Raises:
        ValueError: if no value is finite.

    Example:
        >>> mean_std([1.0, 2.0, 3.0])
        (2.0, 1.0, 3)
    """
    v = _finite(xs)
    if not v:
        raise ValueError("mean_std: no finite value")
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else math.nan
    return m, sd, len(v)


def paired_t_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95
                      ) -> tuple[float, float, float, int]:
    """Mean of the paired differences ``a_i - b_i`` (same seed) and its two-sided Student-t
    confidence interval ``mean +- t_{(1+level)/2, n-1} * sd / sqrt(n)``
    (``scipy.stats.ttest_rel(a, b).confidence_interval``), over the pairs whose difference
    is finite.

    Args:
        a: the C-variant's values, one per seed.
        b: the baseline's values for the same seeds, in the same order.
        level: the confidence level.

    Returns:
        (mean difference, lower, upper, n); the bounds are nan for n = 1.

    Raises:
        ValueError: if the lengths differ or are 0, or level is not in (0, 1).

    Example:
        >>> [round(x, 3) for x in paired_t_interval([3.0, 4.0, 5.0], [1.0, 1.0, 1.0])[:3]]
        [3.0, 0.516, 5.484]
    """
    from scipy.stats import ttest_rel

    if len(a) != len(b) or not a:
        raise ValueError(f"paired_t_interval: need equal non-empty lengths, got {len(a)} and "
                         f"{len(b)}")
    if not 0 < level < 1:
        raise ValueError(f"paired_t_interval: level must be in (0, 1), got {level}")
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if math.isfinite(x - y)]
    m, _, n = mean_std([x - y for x, y in pairs])
    if n < 2:
        return m, math.nan, math.nan, n
    with warnings.catch_warnings():  # equal differences: a zero-width interval, no warning
        warnings.simplefilter("ignore", RuntimeWarning)
        a_f, b_f = [x for x, _ in pairs], [y for _, y in pairs]
        ci = ttest_rel(a_f, b_f).confidence_interval(confidence_level=level)
    return m, float(ci.low), float(ci.high), n
