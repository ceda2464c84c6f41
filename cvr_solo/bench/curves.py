"""Cost and per-step curves of a benchmark's pretraining run, read from its metrics.csv files
(every launch of the run, later launches overriding the steps they redid)."""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path
from typing import Any

from cvr_solo.common.catalog import METHODS
from cvr_solo.common.metric_names import DIAG_KEYS, DIAG_PREFIX

__all__ = ["DIAG_KEYS", "cost_and_curves"]


def _read_metrics(root: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for f in sorted(root.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime):
        rows += list(csv.DictReader(f.open()))
    return rows


def _median(xs: list[float]) -> float | None:
    """:func:`statistics.median` of the finite values; None if there is none."""
    finite = [x for x in xs if math.isfinite(x)]
    return statistics.median(finite) if finite else None


def cost_and_curves(root: Path, method: str) -> tuple[dict[str, Any], dict[str, list]]:
    """Cost (median step time and images/s, peak memory) and per-step curves (loss, R, R above
    its floor, the ``diag_*`` diagnostics) from the CSV logs of a pretraining run (all its
    launches, later ones overriding earlier steps).

    Step time and images/s count each optimiser step once: a step logged by two launches (a
    resumed run redoes the steps after its last checkpoint) keeps the later launch's value,
    as the curves do. Peak memory is the maximum over every launch.
    """
    rows = _read_metrics(root)

    def col(key: str) -> list[float]:
        return [float(r[key]) for r in rows if r.get(key) not in (None, "")]

    def per_step(key: str) -> list[float]:
        last = {int(r["step"]): float(r[key]) for r in rows if r.get(key) not in (None, "")}
        return list(last.values())

    cost = {"step_time": _median(per_step("train_step_time")),
            "images_per_sec": _median(per_step("train_images_per_sec")),
            "peak_rss_mib": max(col("peak_rss_mib"), default=None),
            "peak_gpu_mem_mib": max(col("peak_gpu_mem_mib"), default=None)}
    keys = {"loss": METHODS[method].loss_key, "residual": "train_residual_step",
            "residual_above_floor": "train_residual_above_floor_step",
            **{k[len(DIAG_PREFIX):]: k for k in DIAG_KEYS}}
    curves: dict[str, list] = {}
    for name, key in keys.items():
        by_step = {int(r["step"]): float(r[key]) for r in rows if r.get(key) not in (None, "")}
        steps = sorted(by_step)
        curves[name] = [by_step[s] for s in steps]
        curves[f"{name}_step"] = steps
    curves["step"] = curves["loss_step"]
    return cost, curves
