"""The benchmark's figures: accuracy.png, corruptions.png and training.png (matplotlib's
object API, no pyplot state). No solo-learn needed."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from cvr_solo.bench.report import SMOOTH, smooth, table
from cvr_solo.bench.result import RunResult
from cvr_solo.evaluation.protocol import Scores

PANELS = (("loss", "loss term (log)"), ("residual", "R and its floor (nats)"),
          ("residual_above_floor", f"R - floor (mean of {SMOOTH} steps)"),
          ("rankme_feats", "RankMe, backbone features"),
          ("rankme_z", "RankMe, projector output"), ("uniformity", "uniformity (t=2)"),
          ("alignment", "alignment (alpha=2)"), ("z_std", "std of z/|z| per dim"))


def _clean_subset(s: Scores) -> float:
    return s.clean if s.clean_corruption_subset is None else s.clean_corruption_subset


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot(results: Sequence[RunResult], out_dir: Path,
         reference: Mapping[str, Scores] | None = None) -> list[Path]:
    """accuracy.png (probe and kNN per run, mean ± std and each seed, reference lines),
    corruptions.png (probe top-1 per corruption), training.png (loss, R and its floor, and the
    representation diagnostics over steps, one line per seed)."""
    reference = reference or {}
    groups = table(results).groupby("label", sort=False)
    names = [n for n, _ in groups]
    cmap = matplotlib.colormaps["tab10"]
    colors = {n: cmap(i % 10) for i, n in enumerate(names)}

    fig = Figure(figsize=(13, 4.4))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, key, title, ref_key in ((axes[0], "clean_acc1", "Linear probe top-1", "clean"),
                                    (axes[1], "knn_acc1", "kNN top-1", "knn_acc1")):
        for i, (n, g) in enumerate(groups):
            vals = g[key].dropna().astype(float)
            sd = vals.std()
            ax.bar(i, vals.mean(), 0.6, yerr=0 if math.isnan(sd) else sd, color=colors[n],
                   alpha=0.7, capsize=4)
            ax.scatter([i] * len(vals), vals, color="k", s=10, zorder=3)
        for j, (rname, rrow) in enumerate(reference.items()):
            if (value := getattr(rrow, ref_key)) is not None:
                ax.axhline(value, color="gray", ls=("--", ":", "-.")[j % 3],
                           label=f"{rname}: {value:.1f}")
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
        ax.set_title(title + " (bars: mean ± std over seeds; dots: seeds)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("top-1 (%), validation")
    paths = [_save(fig, out_dir / "accuracy.png")]

    corr = list(results[0].corruptions)
    fig = Figure(figsize=(11, 4.0))
    ax = fig.subplots()
    xs = ["clean", *corr]
    for n in names:
        runs = [r for r in results if r.label == n]
        ys = [sum(_clean_subset(r) for r in runs) / len(runs)]
        ys += [sum(r.mean_over_severities(c) for r in runs) / len(runs) for c in corr]
        ax.plot(xs, ys, marker="o", color=colors[n], label=n)
    for rname, rrow in reference.items():
        if rrow.corruptions:
            ys = [_clean_subset(rrow)] + [rrow.mean_over_severities(c) for c in corr]
            ax.plot(xs, ys, ls="--", color="gray", label=rname)
    ax.set_ylabel("probe top-1 (%)")
    ax.set_title("Corruption suite (mean over seeds and severities "
                 f"{','.join(map(str, results[0].severities))})")
    ax.legend(fontsize=7)
    paths.append(_save(fig, out_dir / "corruptions.png"))

    fig = Figure(figsize=(17, 7.5))
    for ax, (key, title) in zip(fig.subplots(2, 4).flat, PANELS, strict=True):
        for r in results:
            c = r.curves
            if not (ys := c.get(key) or []):
                continue
            steps = c.get(f"{key}_step") or c.get("step")
            first = r is next(q for q in results if q.label == r.label)
            ax.plot(steps, smooth(ys) if key == "residual_above_floor" else ys,
                    color=colors[r.label], lw=1, alpha=0.8, label=r.label if first else None)
            if key == "residual" and c.get("residual_above_floor"):
                floor = [a - b for a, b in zip(c["residual"], c["residual_above_floor"],
                                               strict=False)]
                ax.plot(steps[:len(floor)], floor, color=colors[r.label], lw=1, ls=":")
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
    return [*paths, _save(fig, out_dir / "training.png")]
