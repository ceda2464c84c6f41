"""beta schedules for the CEB residual term (Lee et al. 2021 use a constant beta).

All are pure functions of (step, total_steps, warmup_steps):

    constant:  beta_t = beta
    warmup:    beta_t = beta * min(1, t / W)                    (W = warm-up steps; W = 0: beta)
    cosine:    beta_t = beta * (1 - cos(pi * min(t, T) / T)) / 2  (T = total steps)
"""

from __future__ import annotations

import math
import numbers

from cvr_solo.ceb._checks import check_choice, check_non_negative

__all__ = ["BETA_SCHEDULES", "beta_at"]

BETA_SCHEDULES = ("constant", "warmup", "cosine")


def _check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def beta_at(step: int, total_steps: int, warmup_steps: int = 0, beta: float = 1.0,
            schedule: str = "constant") -> float:
    """beta at optimiser step ``step`` (0-based) of ``total_steps`` under ``schedule``.

    ``warmup_steps`` (0 <= W <= total_steps) is the ramp length of ``warmup``; ``cosine``
    ramps over the whole run. Steps past the end keep the final value.
    """
    schedule = check_choice("beta_schedule", schedule, BETA_SCHEDULES)
    beta = check_non_negative("beta", beta)
    step = _check_int("step", step, 0)
    total_steps = _check_int("total_steps", total_steps, 1)
    warmup_steps = _check_int("warmup_steps", warmup_steps, 0)
    if warmup_steps > total_steps:
        raise ValueError(f"warmup_steps must be <= total_steps ({total_steps}), "
                         f"got {warmup_steps}")
    if schedule == "constant":
        return beta
    if schedule == "warmup":
        return beta if warmup_steps == 0 else beta * min(1.0, step / warmup_steps)
    return beta * (1 - math.cos(math.pi * min(step, total_steps) / total_steps)) / 2
