"""results.csv (one row per method and seed) and report.md (mean ± std over seeds, paired
differences with Student-t intervals, reference rows, diagnostics, cost) from the records:
tables by pandas (``to_markdown`` needs tabulate), intervals by scipy. No solo-learn needed."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from scipy import stats

from cvr_solo.bench.result import RunResult
from cvr_solo.common.catalog import BASELINE_OF
from cvr_solo.common.metric_names import DIAGNOSTICS
from cvr_solo.common.representation import COLLAPSE_FRACTION
from cvr_solo.evaluation.protocol import PROTOCOL, Scores

#: the diagnostics reported at the last logged step (z_std_ref is a constant, 1/sqrt(d))
LAST_DIAGNOSTICS = tuple(k for k in DIAGNOSTICS if k != "z_std_ref")
COLUMNS = ("label", "method", "seed", "clean_acc1", "knn_acc1", "mean_corruption_acc1",
           "relative_drop", "images_per_sec", "step_time_ms", "step_time_ratio",
           "peak_mem_mib", "pretrain_seconds", "evaluate_seconds", "pretrain_cpu_seconds",
           "evaluate_cpu_seconds", "final_loss", "final_residual_above_floor",
           *LAST_DIAGNOSTICS)
PAIRED = (("clean_acc1", "probe top-1"), ("knn_acc1", "kNN top-1"),
          ("mean_corruption_acc1", "mean-corruption top-1"))
SMOOTH = 10


def finite(s: pd.Series) -> pd.Series:
    """The finite values of ``s`` as floats (missing, non-numeric and infinite ones dropped).

    Example:
        >>> finite(pd.Series([1, None, float("inf"), "x", 2.5])).tolist()
        [1.0, 2.5]
    """
    s = pd.to_numeric(s, errors="coerce").astype(float)
    return s[s.abs() < math.inf]


def smooth(xs: Sequence[float | None], n: int = SMOOTH) -> list[float]:
    """Trailing mean over up to ``n`` values, missing ones skipped (R, a one-sample estimate).

    Example:
        >>> smooth([1.0, 3.0, None, 5.0], 2)
        [1.0, 2.0, 3.0, 5.0]
    """
    return pd.Series(xs, dtype=float).rolling(n, min_periods=1).mean().tolist()


def baseline_label(results: Sequence[RunResult], label: str) -> str | None:
    """``label``'s baseline among ``results``: the plain baseline method's label if present,
    else the first label of that method; None for a baseline."""
    base = BASELINE_OF.get(next(r.method for r in results if r.label == label))
    cands = [r.label for r in results if r.method == base]
    return None if base is None or not cands else base if base in cands else cands[0]


def step_time_ratios(results: Sequence[RunResult]) -> dict[tuple[str, int], float]:
    """(label, seed) -> step time / its baseline run's of the same seed (C-variants only)."""
    by = {(r.label, r.seed): r.cost.get("step_time") for r in results}
    base = {(r.label, r.seed): by.get((baseline_label(results, r.label), r.seed))
            for r in results}
    return {k: by[k] / b for k, b in base.items() if b and by[k]}


def _last(curves: Mapping[str, list], key: str) -> float | None:
    return (curves.get(key) or [None])[-1]


def table(results: Sequence[RunResult]) -> pd.DataFrame:
    """One row per (method, seed) run, in :data:`COLUMNS` order (None: missing)."""
    ratios = step_time_ratios(results)
    rows = [{"label": r.label, "method": r.method, "seed": r.seed, "clean_acc1": r.clean,
             "knn_acc1": r.knn_acc1, "mean_corruption_acc1": r.mean_corruption,
             "relative_drop": r.relative_drop,
             "images_per_sec": r.cost.get("images_per_sec"),
             "step_time_ms": r.cost["step_time"] * 1e3 if r.cost.get("step_time") else None,
             "step_time_ratio": ratios.get((r.label, r.seed)),
             "peak_mem_mib": r.cost.get("peak_gpu_mem_mib") or r.cost.get("peak_rss_mib"),
             "pretrain_seconds": r.pretrain_seconds, "evaluate_seconds": r.evaluate_seconds,
             "pretrain_cpu_seconds": r.pretrain_cpu_seconds,
             "evaluate_cpu_seconds": r.evaluate_cpu_seconds,
             "final_loss": _last(r.curves, "loss"),
             "final_residual_above_floor": _last(r.curves, "residual_above_floor"),
             **{k: _last(r.curves, k) for k in LAST_DIAGNOSTICS}} for r in results]
    return pd.DataFrame(rows, columns=list(COLUMNS)).astype(object)


def write_csv(results: Sequence[RunResult], path: Path) -> None:
    """results.csv: :func:`table`, empty cells for missing values."""
    table(results).to_csv(path, index=False)


def paired_t_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95
                      ) -> tuple[float, float, float, int]:
    """(mean, lower, upper, n) of the finite paired differences ``a_i - b_i`` (same seed):
    the two-sided Student-t interval ``mean +- t_{(1+level)/2, n-1} * sd / sqrt(n)``, nan
    bounds for n = 1. ValueError for unequal or empty inputs or no finite difference.

    Example:
        >>> [round(x, 3) for x in paired_t_interval([3.0, 4.0, 5.0], [1.0, 1.0, 1.0])[:3]]
        [3.0, 0.516, 5.484]
    """
    if len(a) != len(b) or not a or not 0 < level < 1:
        raise ValueError(f"paired_t_interval: need equal non-empty lengths and a level in "
                         f"(0, 1), got {len(a)}, {len(b)} and {level}")
    d = finite(pd.Series(a, dtype=float) - pd.Series(b, dtype=float))
    if d.empty:
        raise ValueError("paired_t_interval: no finite difference")
    m, n = float(d.mean()), len(d)
    if n < 2:
        return m, math.nan, math.nan, n
    half = float(stats.t.ppf((1 + level) / 2, n - 1) * d.sem())  # t.interval: nan for sd 0
    return m, m - half, m + half, n


def paired_differences(results: Sequence[RunResult], level: float = 0.95
                       ) -> list[dict[str, Any]]:
    """Per C-variant label: its baseline, the seeds both have, and per :data:`PAIRED` metric
    :func:`paired_t_interval` of (variant - baseline) over those seeds."""
    by = table(results).set_index(["label", "seed"])
    out = []
    for label in dict.fromkeys(r.label for r in results):
        if (base := baseline_label(results, label)) is None:
            continue
        seeds = [s for (lab, s) in by.index if lab == label and (base, s) in by.index]
        entry: dict[str, Any] = {"label": label, "baseline": base, "seeds": seeds}
        for key, _ in PAIRED:
            a, b = ([by.loc[(x, s), key] for s in seeds] for x in (label, base))
            entry[key] = paired_t_interval(a, b, level) if seeds else None
        out.append(entry)
    return out


def _pm(s: Sequence[float | None], digits: int = 2) -> str:
    """'mean ± sd' over seeds (sample sd; 'mean' alone for one value, 'n/a' for none)."""
    v = finite(pd.Series(list(s), dtype=object))
    if v.empty:
        return "n/a"
    m = f"{v.mean():.{digits}f}"
    return m if len(v) < 2 else f"{m} ± {v.std():.{digits}f}"


def _interval(t: tuple[float, float, float, int] | None) -> str:
    if t is None:
        return "n/a"
    m, lo, hi, n = t
    return f"{m:+.2f} (one seed: no interval)" if n < 2 else f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def flags(results: Sequence[RunResult],
          reference: Mapping[str, Scores] | None = None) -> list[str]:
    """What a reader must not miss, one sentence each: a collapsed run (judged as
    ``cvr-solo pretrain``'s warning does) and a method whose mean probe or kNN top-1 is below
    an untrained backbone's (the reference rows named ``... (untrained)``)."""
    out = []
    for r in results:
        std, ref = _last(r.curves, "z_std"), _last(r.curves, "z_std_ref")
        if std is not None and ref and std < COLLAPSE_FRACTION * ref:
            align = _last(r.curves, "alignment")
            out.append(f"**{r.label} seed {r.seed} collapsed**: std of z/|z| {std:.4f}, "
                       f"under {COLLAPSE_FRACTION:.0%} of the isotropic {ref:.4f}"
                       + (f", alignment {align:.3f}" if align is not None else "")
                       + ": the projector maps the images to nearly one point.")
    untrained = {n: row for n, row in (reference or {}).items() if "untrained" in n}
    for label, g in table(results).groupby("label", sort=False):
        for key, ref_key, title in (("clean_acc1", "clean", "probe"),
                                    ("knn_acc1", "knn_acc1", "kNN")):
            vals = g[key].dropna().astype(float)
            for name, row in untrained.items():
                floor = getattr(row, ref_key)
                if len(vals) and floor is not None and vals.mean() < floor:
                    out.append(f"**{label} is below the untrained backbone** in {title} top-1: "
                               f"{vals.mean():.2f} (mean of {len(vals)} seeds) < "
                               f"{floor:.2f} ({name}): pretraining made the features "
                               "worse than none at this budget.")
    return out


def report_header(h: Mapping[str, Any]) -> str:
    """The report's first lines, from bench.json's header."""
    sev = ",".join(map(str, h["severities"]))
    stem = "small-image (3x3, stride 1)" if h["small_stem"] else "ImageNet (7x7/2 + pool)"
    return "\n".join([
        "# cvr-solo benchmark", "",
        f"Budget `{h['budget']}`: {h['pretrain_epochs']} pretraining epochs at batch "
        f"{h['batch_size']} on {h['subset'] or 'all'} class-balanced train images per seed "
        f"(seeds {h['seeds']}; the seed draws the subset, the initialisation and the "
        f"augmentation), ResNet {stem} stem, augmentations `{h['augmentations']}`, "
        f"device {h['device']} (precision {h['precision']}). Evaluation: "
        f"{PROTOCOL.describe()} on frozen backbone features, on {h['val_subset'] or 'all'} "
        f"validation images; the corruption suite on a fixed class-balanced subset of "
        f"{h['corruption_subset'] or 'all'} of them at severities {sev}. Machine: "
        f"{h['machine']}.", "", f"Command: `{h['command']}`"])


def _md(rows: list[list[str]], head: Sequence[str]) -> list[str]:
    return pd.DataFrame(rows, columns=list(head)).to_markdown(
        index=False, disable_numparse=True).splitlines()


#: the representation and cost tables: (table column, report title, digits)
REPRESENTATION = (("rankme_feats", "RankMe feats", 1), ("rankme_z", "RankMe z", 1),
                  ("alignment", "alignment", 3), ("uniformity", "uniformity", 3),
                  ("z_std", "std of z/\\|z\\|", 4), ("final_residual_above_floor", "R - floor", 1),
                  ("final_loss", "loss", 3))
COST = (("images_per_sec", "images/s", 1), ("step_time_ms", "step time (ms)", 1),
        ("step_time_ratio", "step time / baseline (same seed)", 3),
        ("peak_mem_mib", "peak memory (MiB)", 0), ("pretrain_seconds", "pretraining wall (s)", 0),
        ("evaluate_seconds", "evaluation wall (s)", 0),
        ("pretrain_cpu_seconds", "pretraining CPU (s)", 0),
        ("evaluate_cpu_seconds", "evaluation CPU (s)", 0))


def _summary(groups: Any, spec: Sequence[tuple[str, str, int]],
             mark: Callable[[str, str], str] = lambda label, column: "") -> list[str]:
    """A markdown table of a row per run: :func:`_pm` of each (column, title, digits) of
    ``spec`` over the run's seeds, with ``mark(label, column)`` after it."""
    rows = [[n, *(_pm(g[col], d) + mark(n, col) for col, _, d in spec)] for n, g in groups]
    return _md(rows, ["run", *(title for _, title, _ in spec)])


def write_markdown(results: Sequence[RunResult], path: Path, header: str,
                   figures: Sequence[Path],
                   reference: Mapping[str, Scores] | None = None) -> None:
    """report.md: accuracy (with the reference rows), flags, paired differences, the
    diagnostics at the last step, corruptions, cost and ``figures`` under ``header``."""
    reference = reference or {}
    groups = table(results).groupby("label", sort=False)
    acc = [[n, str(len(g)), _pm(g["clean_acc1"]), _pm(g["knn_acc1"]),
            _pm(g["mean_corruption_acc1"]),
            _pm([None if x is None else 100 * x for x in g["relative_drop"]], 1)]
           for n, g in groups]
    acc += [[f"*reference: {n}*", "-", _pm([r.clean]), _pm([r.knn_acc1]),
             _pm([r.mean_corruption]),
             _pm([None if r.relative_drop is None else 100 * r.relative_drop], 1)]
            for n, r in reference.items()]
    lines = [header.rstrip(), "", "## Accuracy (frozen backbone; mean ± std over seeds, "
             "sample std)", "", *_md(acc, ["run", "seeds", "probe top-1", "kNN top-1",
                                           "mean-corruption top-1", "relative drop (%)"])]
    lines += ["", "## Flags", "", *([f"- {f}" for f in flags(results, reference)] or [
        "None: no run collapsed and no method is below the untrained backbone."])]
    if pairs := paired_differences(results):
        lines += ["", "## Paired differences: C-variant minus its baseline, same seed", "",
                  "Mean over seeds of (variant - baseline) in points, with a 95% Student-t "
                  "interval over seeds (mean ± t(0.975, n-1) · sd / sqrt(n)); an interval "
                  "that contains 0 does not separate the two; with one seed there is no "
                  "interval, only the one difference.", "",
                  *_md([[f"{p['label']} - {p['baseline']}", str(len(p["seeds"])),
                         *(_interval(p[k]) for k, _ in PAIRED)] for p in pairs],
                       ["variant - baseline", "seeds", *(t for _, t in PAIRED)])]
    lines += ["", "## Representation at the last step (fixed held-out batch; mean ± std)", "",
              "RankMe: effective rank (Garrido et al. 2023); alignment and uniformity of the "
              "l2-normalised projector output (Wang & Isola 2020); std of z/|z|: mean "
              "per-dimension std, 1/sqrt(d) when isotropic, 0 when collapsed.", "",
              *_summary(groups, REPRESENTATION)]
    corr = list(results[0].corruptions)
    per = [[n, _pm([r.clean_corruption_subset for r in rs], 1),
            *(_pm([r.mean_over_severities(c) for r in rs], 1) for c in corr)]
           for n, rs in ((n, [r for r in results if r.label == n]) for n, _ in groups)]
    lines += ["", "## Probe top-1 per corruption (mean over seeds and severities "
              f"{','.join(map(str, results[0].severities))})", "",
              *_md(per, ["run", "clean (same images)", *corr])]
    resumed = [r for r in results if len(r.attempts) > 1]
    again = {r.label for r in resumed}
    lines += ["", "## Cost (mean ± std over seeds)", "",
              *_summary(groups, COST, lambda n, col: " †" if col == "pretrain_seconds"
                        and n in again else "")]
    if resumed:
        runs = ", ".join(f"{r.label} seed {r.seed} ({len(r.attempts)} launches)"
                         for r in resumed)
        lines += ["", "† Resumed: the pretraining times are summed over the launches of "
                  f"{runs}; a launch that was killed counts up to its last write, and its CPU "
                  "time is not known."]
    lines += ["", "Wall times depend on the machine's load; CPU seconds (user + system, all "
              "threads) much less so: on an idle machine wall is about CPU / cores.", "",
              "## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figures]
    path.write_text("\n".join(lines) + "\n")
