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

from cvr_solo.bench.stats import mean_std, paired_t_interval
from cvr_solo.catalog import BASELINE_OF

COLUMNS = ("label", "method", "seed", "clean_acc1", "knn_acc1", "mean_corruption_acc1",
           "relative_drop", "images_per_sec", "step_time_ms", "step_time_ratio",
           "peak_mem_mib", "pretrain_seconds", "evaluate_seconds", "pretrain_cpu_seconds",
           "evaluate_cpu_seconds", "final_loss",
           "final_residual_above_floor", "rankme_feats", "rankme_z", "alignment",
           "uniformity", "z_std")
#: the diagnostics reported at the last logged step
DIAGNOSTICS = ("rankme_feats", "rankme_z", "alignment", "uniformity", "z_std")
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


def _seed(r: Mapping[str, Any]) -> int | None:
    return r.get("seed")


def labels(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """The run labels in first-seen order."""
    return list(dict.fromkeys(r["label"] for r in results))


def baseline_label(results: Sequence[Mapping[str, Any]], label: str) -> str | None:
    """The label of ``label``'s baseline among ``results``: the plain baseline method's
    label if present, else the first label of that method; None for a baseline."""
    method = next(r["method"] for r in results if r["label"] == label)
    base = BASELINE_OF.get(method)
    if base is None:
        return None
    cands = [r["label"] for r in results if r["method"] == base]
    return base if base in cands else (cands[0] if cands else None)


def step_time_ratios(results: Sequence[Mapping[str, Any]]) -> dict[tuple[str, int | None],
                                                                    float]:
    """(label, seed) -> step time / the step time of its baseline run of the same seed
    (C-variants only)."""
    by = {(r["label"], _seed(r)): r["cost"].get("step_time") for r in results}
    out = {}
    for r in results:
        base = baseline_label(results, r["label"])
        b, st = by.get((base, _seed(r))), r["cost"].get("step_time")
        if base is not None and b and st:
            out[(r["label"], _seed(r))] = st / b
    return out


def _last(curves: Mapping[str, list], key: str) -> float | None:
    vals = curves.get(key) or []
    return vals[-1] if vals else None


def rows(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per (method, seed) run, in COLUMNS order."""
    ratios = step_time_ratios(results)
    out = []
    for r in results:
        cost, curves = r["cost"], r.get("curves", {})
        mem = cost.get("peak_gpu_mem_mib") or cost.get("peak_rss_mib")
        row = {
            "label": r["label"], "method": r["method"], "seed": _seed(r),
            "clean_acc1": r["clean"], "knn_acc1": r["knn_acc1"],
            "mean_corruption_acc1": r["mean_corruption"], "relative_drop": r["relative_drop"],
            "images_per_sec": cost.get("images_per_sec"),
            "step_time_ms": (cost["step_time"] * 1e3) if cost.get("step_time") else None,
            "step_time_ratio": ratios.get((r["label"], _seed(r))), "peak_mem_mib": mem,
            "pretrain_seconds": r.get("pretrain_seconds"),
            "evaluate_seconds": r.get("evaluate_seconds"),
            "pretrain_cpu_seconds": r.get("pretrain_cpu_seconds"),
            "evaluate_cpu_seconds": r.get("evaluate_cpu_seconds"),
            "final_loss": _last(curves, "loss"),
            "final_residual_above_floor": _last(curves, "residual_above_floor"),
        }
        row.update({k: _last(curves, k) for k in DIAGNOSTICS})
        out.append(row)
    return out


def write_csv(results: Sequence[Mapping[str, Any]], path: Path) -> None:
    """results.csv: :func:`rows`, empty cells for missing values."""
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for row in rows(results):
            w.writerow({k: ("" if v is None else v) for k, v in row.items()})


def aggregate(results: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, list]]:
    """label -> column -> the per-seed values (seed order), from :func:`rows`."""
    out: dict[str, dict[str, list]] = {}
    for row in rows(results):
        col = out.setdefault(row["label"], {})
        for k, v in row.items():
            col.setdefault(k, []).append(v)
    return out


PAIRED = (("clean_acc1", "probe top-1"), ("knn_acc1", "kNN top-1"),
          ("mean_corruption_acc1", "mean-corruption top-1"))


def paired_differences(results: Sequence[Mapping[str, Any]], level: float = 0.95
                       ) -> list[dict[str, Any]]:
    """Per C-variant label: its baseline, the seeds both have, and per metric of
    :data:`PAIRED` the mean of (variant - baseline) over those seeds with its Student-t
    interval (:func:`~cvr_solo.bench.stats.paired_t_interval`)."""
    by = {(r["label"], _seed(r)): row for r, row in zip(results, rows(results), strict=True)}
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
    return f"{m:+.2f}" if n < 2 else f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def _colors(names: Sequence[str]) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10")
    return {n: cmap(i % 10) for i, n in enumerate(names)}


def plot(results: Sequence[Mapping[str, Any]], out_dir: Path,
         reference: Mapping[str, Mapping[str, Any]] | None = None) -> list[Path]:
    """accuracy.png (probe and kNN per run, mean ± std and each seed, reference lines),
    corruptions.png (probe top-1 per corruption), training.png (loss, R and its floor, and the
    representation diagnostics over steps, one line per seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reference = reference or {}
    names = labels(results)
    agg = aggregate(results)
    colors = _colors(names)
    paths = []

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.4), sharey=True)
    ref_styles = ("--", ":", "-.")
    for ax, key, title, ref_key in ((axes[0], "clean_acc1", "Linear probe top-1", "clean"),
                                    (axes[1], "knn_acc1", "kNN top-1", "knn_acc1")):
        for i, n in enumerate(names):
            vals = [v for v in agg[n][key] if v is not None]
            m, sd, _ = mean_std(vals)
            ax.bar(i, m, 0.6, yerr=0 if math.isnan(sd) else sd, color=colors[n], alpha=0.7,
                   capsize=4)
            ax.scatter([i] * len(vals), vals, color="k", s=10, zorder=3)
        for j, (rname, rrow) in enumerate(reference.items()):
            if rrow.get(ref_key) is not None:
                ax.axhline(rrow[ref_key], color="gray", ls=ref_styles[j % 3],
                           label=f"{rname}: {rrow[ref_key]:.1f}")
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
        ax.set_title(title + " (bars: mean ± std over seeds; dots: seeds)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("top-1 (%), validation")
    fig.tight_layout()
    paths.append(out_dir / "accuracy.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    corr = list(results[0]["corruptions"])
    fig, ax = plt.subplots(figsize=(11, 4.0))
    xs = ["clean", *corr]
    for n in names:
        runs = [r for r in results if r["label"] == n]
        ys = [sum(r.get("clean_corruption_subset", r["clean"]) for r in runs) / len(runs)]
        ys += [sum(sum(r["corruptions"][c]) / len(r["corruptions"][c]) for r in runs)
               / len(runs) for c in corr]
        ax.plot(xs, ys, marker="o", color=colors[n], label=n)
    for rname, rrow in reference.items():
        if rrow.get("corruptions"):
            ys = [rrow.get("clean_corruption_subset", rrow["clean"])]
            ys += [sum(rrow["corruptions"][c]) / len(rrow["corruptions"][c]) for c in corr]
            ax.plot(xs, ys, ls="--", color="gray", label=rname)
    sev = ",".join(map(str, results[0]["severities"]))
    ax.set_ylabel("probe top-1 (%)")
    ax.set_title(f"Corruption suite (mean over seeds and severities {sev})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out_dir / "corruptions.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    panels = [("loss", "loss term (log)"), ("residual", "R and its floor (nats)"),
              ("residual_above_floor", f"R - floor (mean of {SMOOTH} steps)"),
              ("rankme_feats", "RankMe, backbone features"),
              ("rankme_z", "RankMe, projector output"), ("uniformity", "uniformity (t=2)"),
              ("alignment", "alignment (alpha=2)"), ("z_std", "std of z/|z| per dim")]
    fig, axes = plt.subplots(2, 4, figsize=(17, 7.5))
    for ax, (key, title) in zip(axes.flat, panels, strict=True):
        for r in results:
            c = r.get("curves", {})
            ys = c.get(key) or []
            if not ys:
                continue
            steps = c.get(f"{key}_step") or c.get("step")
            first = r is next(q for q in results if q["label"] == r["label"])
            lab = r["label"] if first else None
            if key == "residual_above_floor":
                ys = _moving_average(ys)
            ax.plot(steps, ys, color=colors[r["label"]], lw=1, alpha=0.8, label=lab)
            if key == "residual" and c.get("residual_above_floor"):
                floor = [a - b for a, b in zip(c["residual"], c["residual_above_floor"],
                                               strict=False)]
                ax.plot(steps[:len(floor)], floor, color=colors[r["label"]], lw=1, ls=":")
            if key == "z_std" and c.get("z_std_ref") and first:
                ax.axhline(c["z_std_ref"][0], color="gray", ls="--", lw=1)
        if key == "loss" and ax.lines:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        if ax.lines and key in ("loss", "rankme_feats", "residual"):
            ax.legend(fontsize=6)
    fig.suptitle("Training: one line per seed; R dotted: its floor; z std dashed: the "
                 "isotropic value 1/sqrt(d)", fontsize=10)
    fig.tight_layout()
    paths.append(out_dir / "training.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def write_markdown(results: Sequence[Mapping[str, Any]], path: Path, header: str,
                   figures: Sequence[Path],
                   reference: Mapping[str, Mapping[str, Any]] | None = None) -> None:
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
        drop = r.get("relative_drop")
        lines.append(f"| *reference: {rname}* | - | {_fmt(r.get('clean'))} | "
                     f"{_fmt(r.get('knn_acc1'))} | {_fmt(r.get('mean_corruption'))} | "
                     f"{_fmt(None if drop is None else 100 * drop, 1)} |")
    pairs = paired_differences(results)
    if pairs:
        lines += ["", "## Paired differences: C-variant minus its baseline, same seed", "",
                  "Mean over seeds of (variant - baseline) in points, with a 95% Student-t "
                  "interval over seeds (mean ± t(0.975, n-1) · sd / sqrt(n)); an interval "
                  "that contains 0 does not separate the two.", "",
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
    corr = list(results[0]["corruptions"])
    lines += ["", "## Probe top-1 per corruption (mean over seeds and severities "
              f"{','.join(map(str, results[0]['severities']))})", "",
              "| run | clean (same images) | " + " | ".join(corr) + " |",
              "|---|---|" + "---|" * len(corr)]
    for n in names:
        runs = [r for r in results if r["label"] == n]
        clean = [r.get("clean_corruption_subset") for r in runs]
        vals = [[sum(r["corruptions"][c]) / len(r["corruptions"][c]) for r in runs]
                for c in corr]
        lines.append(f"| {n} | {_pm(clean, 1)} | " + " | ".join(_pm(v, 1) for v in vals)
                     + " |")
    lines += ["", "## Cost (mean ± std over seeds)", "",
              "| run | images/s | step time (ms) | step time / baseline (same seed) | "
              "peak memory (MiB) | pretraining wall (s) | evaluation wall (s) | "
              "pretraining CPU (s) | evaluation CPU (s) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for n in names:
        a = agg[n]
        lines.append(f"| {n} | {_pm(a['images_per_sec'], 1)} | {_pm(a['step_time_ms'], 1)} |"
                     f" {_pm(a['step_time_ratio'], 3)} | {_pm(a['peak_mem_mib'], 0)} | "
                     f"{_pm(a['pretrain_seconds'], 0)} | {_pm(a['evaluate_seconds'], 0)} | "
                     f"{_pm(a['pretrain_cpu_seconds'], 0)} | "
                     f"{_pm(a['evaluate_cpu_seconds'], 0)} |")
    lines += ["", "Wall times depend on the machine's load; CPU seconds (user + system, all "
              "threads) much less so: on an idle machine wall is about CPU / cores.", "",
              "## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figures]
    path.write_text("\n".join(lines) + "\n")
