"""beta schedules for the CEB residual term (Lee et al. 2021 use a constant beta).

All are pure functions of (step, total_steps, warmup_steps):

    constant:  beta_t = beta
    warmup:    beta_t = beta * min(1, t / W)                    (W = warm-up steps; W = 0: beta)
    cosine:    beta_t = beta * (1 - cos(pi * min(t, T) / T)) / 2  (T = total steps)
"""

from __future__ import annotations

import math

from cvr_solo.common.checks import check_choice, check_non_negative, check_number, fail

__all__ = ["BETA_SCHEDULES", "beta_at"]

BETA_SCHEDULES = ("constant", "warmup", "cosine")


def beta_at(step: int, total_steps: int, warmup_steps: int = 0, beta: float = 1.0,
            schedule: str = "constant") -> float:
    """beta at optimiser step ``step`` (0-based) of ``total_steps`` under ``schedule``.

    ``warmup_steps`` (0 <= W <= total_steps) is the ramp length of ``warmup``; ``cosine``
    ramps over the whole run. Steps past the end keep the final value.
    """
    schedule = check_choice("beta_schedule", schedule, BETA_SCHEDULES)
    beta = check_non_negative("beta", beta)
    step = check_number("step", step, low=0, integer=True)
    total_steps = check_number("total_steps", total_steps, low=1, integer=True)
    warmup_steps = check_number("warmup_steps", warmup_steps, low=0, integer=True)
    if warmup_steps > total_steps:
        fail("warmup_steps", f"<= total_steps ({total_steps})", warmup_steps)
    if schedule == "constant":
        return beta
    if schedule == "warmup":
        return beta if warmup_steps == 0 else beta * min(1.0, step / warmup_steps)
    return beta * (1 - math.cos(math.pi * min(step, total_steps) / total_steps)) / 2
