"""The benchmark's outputs: results.csv (one row per method and seed), report.md (mean +- std
over seeds, paired differences with 95% t-intervals, reference rows, diagnostics) and PNG plots.
No solo-learn needed.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cvr_solo.bench.result import RunResult, Scores
from cvr_solo.bench.stats import mean_std, paired_t_interval
from cvr_solo.common.catalog import BASELINE_OF
from cvr_solo.common.metric_names import DIAGNOSTICS
from cvr_solo.common.representation import COLLAPSE_FRACTION

COLUMNS = ("label", "method", "seed", "clean_acc1", "knn_acc1", "mean_corruption_acc1",
           "relative_drop", "images_per_sec", "step_time_ms", "step_time_ratio",
           "peak_mem_mib", "pretrain_seconds", "evaluate_seconds", "pretrain_cpu_seconds",
           "evaluate_cpu_seconds", "final_loss",
           "final_residual_above_floor", "rankme_feats", "rankme_z", "alignment",
           "uniformity", "z_std")
#: the diagnostics reported at the last logged step (z_std_ref is a constant, 1/sqrt(d))
LAST_DIAGNOSTICS = tuple(k for k in DIAGNOSTICS if k != "z_std_ref")
SMOOTH = 10


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _pm(xs: Sequence[float | None], digits: int = 2) -> str:
    """'mean ± std' over seeds ('mean' alone for one value, 'n/a' for none)."""
    try:
        m, sd, n = mean_std(xs)
    except ValueError:
        return "n/a"
    return f"{m:.{digits}f}" if n < 2 else f"{m:.{digits}f} ± {sd:.{digits}f}"


def _moving_average(xs: Sequence[float | None], n: int = SMOOTH) -> list[float]:
    """Trailing mean over up to n values (R is a one-sample estimate: +-sqrt((d-1)/2) nats)."""
    vals = [math.nan if x is None else x for x in xs]
    out = []
    for i in range(len(vals)):
        win = [v for v in vals[max(0, i - n + 1):i + 1] if not math.isnan(v)]
        out.append(sum(win) / len(win) if win else math.nan)
    return out


def labels(results: Sequence[RunResult]) -> list[str]:
    """The run labels in first-seen order."""
    return list(dict.fromkeys(r.label for r in results))


def baseline_label(results: Sequence[RunResult], label: str) -> str | None:
    """The label of ``label``'s baseline among ``results``: the plain baseline method's
    label if present, else the first label of that method; None for a baseline."""
    method = next(r.method for r in results if r.label == label)
    base = BASELINE_OF.get(method)
    if base is None:
        return None
    cands = [r.label for r in results if r.method == base]
    return base if base in cands else (cands[0] if cands else None)


def step_time_ratios(results: Sequence[RunResult]) -> dict[tuple[str, int], float]:
    """(label, seed) -> step time / the step time of its baseline run of the same seed
    (C-variants only)."""
    by = {(r.label, r.seed): r.cost.get("step_time") for r in results}
    out = {}
    for r in results:
        base = baseline_label(results, r.label)
        b, st = by.get((base, r.seed)), r.cost.get("step_time")
        if base is not None and b and st:
            out[(r.label, r.seed)] = st / b
    return out


def _last(curves: Mapping[str, list], key: str) -> float | None:
    vals = curves.get(key) or []
    return vals[-1] if vals else None


def rows(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    """One flat row per (method, seed) run, in COLUMNS order."""
    ratios = step_time_ratios(results)
    out = []
    for r in results:
        cost, curves = r.cost, r.curves
        mem = cost.get("peak_gpu_mem_mib") or cost.get("peak_rss_mib")
        row = {
            "label": r.label, "method": r.method, "seed": r.seed,
            "clean_acc1": r.clean, "knn_acc1": r.knn_acc1,
            "mean_corruption_acc1": r.mean_corruption, "relative_drop": r.relative_drop,
            "images_per_sec": cost.get("images_per_sec"),
            "step_time_ms": (cost["step_time"] * 1e3) if cost.get("step_time") else None,
            "step_time_ratio": ratios.get((r.label, r.seed)), "peak_mem_mib": mem,
            "pretrain_seconds": r.pretrain_seconds,
            "evaluate_seconds": r.evaluate_seconds,
            "pretrain_cpu_seconds": r.pretrain_cpu_seconds,
            "evaluate_cpu_seconds": r.evaluate_cpu_seconds,
            "final_loss": _last(curves, "loss"),
            "final_residual_above_floor": _last(curves, "residual_above_floor"),
        }
        row.update({k: _last(curves, k) for k in LAST_DIAGNOSTICS})
        out.append(row)
    return out


def write_csv(results: Sequence[RunResult], path: Path) -> None:
    """results.csv: :func:`rows`, empty cells for missing values."""
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for row in rows(results):
            w.writerow({k: ("" if v is None else v) for k, v in row.items()})


def aggregate(results: Sequence[RunResult]) -> dict[str, dict[str, list]]:
    """label -> column -> the per-seed values (seed order), from :func:`rows`."""
    out: dict[str, dict[str, list]] = {}
    for row in rows(results):
        col = out.setdefault(row["label"], {})
        for k, v in row.items():
            col.setdefault(k, []).append(v)
    return out


PAIRED = (("clean_acc1", "probe top-1"), ("knn_acc1", "kNN top-1"),
          ("mean_corruption_acc1", "mean-corruption top-1"))


def paired_differences(results: Sequence[RunResult], level: float = 0.95
                       ) -> list[dict[str, Any]]:
    """Per C-variant label: its baseline, the seeds both have, and per metric of
    :data:`PAIRED` the mean of (variant - baseline) over those seeds with its Student-t
    interval (:func:`~cvr_solo.bench.stats.paired_t_interval`)."""
    by = {(r.label, r.seed): row for r, row in zip(results, rows(results), strict=True)}
    out = []
    for label in labels(results):
        base = baseline_label(results, label)
        if base is None:
            continue
        seeds = [s for (lab, s) in by if lab == label and (base, s) in by]
        entry: dict[str, Any] = {"label": label, "baseline": base, "seeds": seeds}
        for key, _ in PAIRED:
            a = [by[(label, s)][key] for s in seeds]
            b = [by[(base, s)][key] for s in seeds]
            entry[key] = paired_t_interval(a, b, level) if seeds else None
        out.append(entry)
    return out


def _interval(t: tuple[float, float, float, int] | None) -> str:
    if t is None:
        return "n/a"
    m, lo, hi, n = t
    return f"{m:+.2f} (one seed: no interval)" if n < 2 else f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def flags(results: Sequence[RunResult],
          reference: Mapping[str, Scores] | None = None) -> list[str]:
    """What the report's reader must not miss, one sentence each: a collapsed run (std of z/|z|
    at the last step under :data:`cvr_solo.common.representation.COLLAPSE_FRACTION` of its isotropic
    value, as the collapse warning of ``cvr-solo pretrain`` judges) and a method whose mean
    probe or kNN top-1 is below an untrained backbone's (the reference rows named
    ``... (untrained)``)."""
    out = []
    for r in results:
        curves = r.curves
        std, ref = _last(curves, "z_std"), _last(curves, "z_std_ref")
        if std is not None and ref and std < COLLAPSE_FRACTION * ref:
            align = _last(curves, "alignment")
            out.append(f"**{r.label} seed {r.seed} collapsed**: std of z/|z| {std:.4f}, "
                       f"under {COLLAPSE_FRACTION:.0%} of the isotropic {ref:.4f}"
                       + (f", alignment {align:.3f}" if align is not None else "")
                       + ": the projector maps the images to nearly one point.")
    agg = aggregate(results)
    untrained = {n: row for n, row in (reference or {}).items() if "untrained" in n}
    for label in labels(results):
        for key, ref_key, title in (("clean_acc1", "clean", "probe"), ("knn_acc1", "knn_acc1",
                                                                       "kNN")):
            vals = [v for v in agg[label][key] if v is not None]
            for name, row in untrained.items():
                floor = getattr(row, ref_key)
                if vals and floor is not None and sum(vals) / len(vals) < floor:
                    out.append(f"**{label} is below the untrained backbone** in {title} top-1: "
                               f"{sum(vals) / len(vals):.2f} (mean of {len(vals)} seeds) < "
                               f"{floor:.2f} ({name}): pretraining made the features "
                               "worse than none at this budget.")
    return out


def _resumed(results: Sequence[RunResult]) -> list[str]:
    """'label seed s (n launches)' for each run whose pretraining was resumed."""
    return [f"{r.label} seed {r.seed} ({r.pretrain_attempts} launches)"
            for r in results if r.pretrain_attempts > 1]


def write_markdown(results: Sequence[RunResult], path: Path, header: str,
                   figures: Sequence[Path],
                   reference: Mapping[str, Scores] | None = None) -> None:
    """report.md: accuracy (mean ± std over seeds, with the reference rows), paired
    differences with 95% t-intervals, diagnostics at the last step, corruptions, cost,
    figures."""
    reference = reference or {}
    agg = aggregate(results)
    names = labels(results)
    lines = [header.rstrip(), "",
             "## Accuracy (frozen backbone; mean ± std over seeds, sample std)", "",
             "| run | seeds | probe top-1 | kNN top-1 | mean-corruption top-1 | "
             "relative drop (%) |", "|---|---|---|---|---|---|"]
    for n in names:
        a = agg[n]
        lines.append(f"| {n} | {len(a['seed'])} | {_pm(a['clean_acc1'])} | "
                     f"{_pm(a['knn_acc1'])} | {_pm(a['mean_corruption_acc1'])} | "
                     f"{_pm([None if x is None else 100 * x for x in a['relative_drop']], 1)} |")
    for rname, r in reference.items():
        drop = r.relative_drop
        lines.append(f"| *reference: {rname}* | - | {_fmt(r.clean)} | "
                     f"{_fmt(r.knn_acc1)} | {_fmt(r.mean_corruption)} | "
                     f"{_fmt(None if drop is None else 100 * drop, 1)} |")
    found = flags(results, reference)
    lines += ["", "## Flags", "", *([f"- {f}" for f in found] or [
        "None: no run collapsed and no method is below the untrained backbone."])]
    pairs = paired_differences(results)
    if pairs:
        lines += ["", "## Paired differences: C-variant minus its baseline, same seed", "",
                  "Mean over seeds of (variant - baseline) in points, with a 95% Student-t "
                  "interval over seeds (mean ± t(0.975, n-1) · sd / sqrt(n)); an interval "
                  "that contains 0 does not separate the two; with one seed there is no "
                  "interval, only the one difference.", "",
                  "| variant - baseline | seeds | " + " | ".join(t for _, t in PAIRED) + " |",
                  "|---|---|" + "---|" * len(PAIRED)]
        for p in pairs:
            lines.append(f"| {p['label']} - {p['baseline']} | {len(p['seeds'])} | "
                         + " | ".join(_interval(p[k]) for k, _ in PAIRED) + " |")
    lines += ["", "## Representation at the last step (fixed held-out batch; mean ± std)", "",
              "RankMe: effective rank (Garrido et al. 2023); alignment and uniformity of the "
              "l2-normalised projector output (Wang & Isola 2020); std of z/|z|: mean "
              "per-dimension std, 1/sqrt(d) when isotropic, 0 when collapsed.", "",
              "| run | RankMe feats | RankMe z | alignment | uniformity | std of z/\\|z\\| | "
              "R - floor | loss |", "|---|---|---|---|---|---|---|---|"]
    for n in names:
        a = agg[n]
        lines.append(f"| {n} | {_pm(a['rankme_feats'], 1)} | {_pm(a['rankme_z'], 1)} | "
                     f"{_pm(a['alignment'], 3)} | {_pm(a['uniformity'], 3)} | "
                     f"{_pm(a['z_std'], 4)} | {_pm(a['final_residual_above_floor'], 1)} | "
                     f"{_pm(a['final_loss'], 3)} |")
    corr = list(results[0].corruptions)
    lines += ["", "## Probe top-1 per corruption (mean over seeds and severities "
              f"{','.join(map(str, results[0].severities))})", "",
              "| run | clean (same images) | " + " | ".join(corr) + " |",
              "|---|---|" + "---|" * len(corr)]
    for n in names:
        runs = [r for r in results if r.label == n]
        clean = [r.clean_corruption_subset for r in runs]
        vals = [[r.mean_over_severities(c) for r in runs] for c in corr]
        lines.append(f"| {n} | {_pm(clean, 1)} | " + " | ".join(_pm(v, 1) for v in vals)
                     + " |")
    lines += ["", "## Cost (mean ± std over seeds)", "",
              "| run | images/s | step time (ms) | step time / baseline (same seed) | "
              "peak memory (MiB) | pretraining wall (s) | evaluation wall (s) | "
              "pretraining CPU (s) | evaluation CPU (s) |",
              "|---|---|---|---|---|---|---|---|---|"]
    resumed = _resumed(results)
    for n in names:
        a = agg[n]
        mark = " †" if any(x.startswith(f"{n} seed ") for x in resumed) else ""
        lines.append(f"| {n} | {_pm(a['images_per_sec'], 1)} | {_pm(a['step_time_ms'], 1)} |"
                     f" {_pm(a['step_time_ratio'], 3)} | {_pm(a['peak_mem_mib'], 0)} | "
                     f"{_pm(a['pretrain_seconds'], 0)}{mark} | {_pm(a['evaluate_seconds'], 0)} | "
                     f"{_pm(a['pretrain_cpu_seconds'], 0)} | "
                     f"{_pm(a['evaluate_cpu_seconds'], 0)} |")
    if resumed:
        lines += ["", "† Resumed: the pretraining times are summed over the launches of "
                  f"{', '.join(resumed)}; a launch that was killed counts up to its last "
                  "write, and its CPU time is not known."]
    lines += ["", "Wall times depend on the machine's load; CPU seconds (user + system, all "
              "threads) much less so: on an idle machine wall is about CPU / cores.", "",
              "## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figures]
    path.write_text("\n".join(lines) + "\n")
