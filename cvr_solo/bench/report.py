"""The benchmark's outputs: results.csv, report.md and PNG plots (no solo-learn needed)."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cvr_solo.catalog import BASELINE_OF

COLUMNS = ("label", "method", "clean_acc1", "mean_corruption_acc1", "relative_drop",
           "knn_acc1", "images_per_sec", "step_time_ms", "step_time_ratio", "peak_mem_mib",
           "final_loss", "final_residual_above_floor")


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


SMOOTH = 10


def _moving_average(xs: Sequence[float | None], n: int = SMOOTH) -> list[float]:
    """Trailing mean over up to n values (R is a one-sample estimate: +-sqrt((d-1)/2) nats)."""
    vals = [math.nan if x is None else x for x in xs]
    out = []
    for i in range(len(vals)):
        win = [v for v in vals[max(0, i - n + 1):i + 1] if not math.isnan(v)]
        out.append(sum(win) / len(win) if win else math.nan)
    return out


def step_time_ratios(results: Sequence[dict[str, Any]]) -> dict[str, float]:
    """label -> step time / the step time of its baseline's first run (C-variants only)."""
    by_method: dict[str, float] = {}
    for r in results:
        by_method.setdefault(r["method"], r["cost"].get("step_time"))
    out = {}
    for r in results:
        base = by_method.get(BASELINE_OF.get(r["method"], ""))
        st = r["cost"].get("step_time")
        if base and st:
            out[r["label"]] = st / base
    return out


def rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per run, in COLUMNS order."""
    ratios = step_time_ratios(results)
    out = []
    for r in results:
        cost, curves = r["cost"], r.get("curves", {})
        mem = cost.get("peak_gpu_mem_mib") or cost.get("peak_rss_mib")
        out.append({
            "label": r["label"], "method": r["method"], "clean_acc1": r["clean"],
            "mean_corruption_acc1": r["mean_corruption"], "relative_drop": r["relative_drop"],
            "knn_acc1": r["knn_acc1"], "images_per_sec": cost.get("images_per_sec"),
            "step_time_ms": (cost["step_time"] * 1e3) if cost.get("step_time") else None,
            "step_time_ratio": ratios.get(r["label"]), "peak_mem_mib": mem,
            "final_loss": (curves.get("loss") or [None])[-1],
            "final_residual_above_floor": (curves.get("residual_above_floor") or [None])[-1],
        })
    return out


def write_csv(results: Sequence[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for row in rows(results):
            w.writerow({k: ("" if v is None else v) for k, v in row.items()})


def plot(results: Sequence[dict[str, Any]], out_dir: Path) -> list[Path]:
    """accuracy.png (clean vs mean corruption, accuracy per severity), training.png (loss and
    residual information above its floor over steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r["label"] for r in results]
    paths = []
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    xs = range(len(results))
    w = 0.38
    ax1.bar([x - w / 2 for x in xs], [r["clean"] for r in results], w, label="clean")
    ax1.bar([x + w / 2 for x in xs], [r["mean_corruption"] for r in results], w,
            label="mean over corruptions")
    ax1.set_xticks(list(xs), labels, rotation=20, ha="right")
    ax1.set_ylabel("linear probe top-1 (%)")
    ax1.set_title("Clean and corrupted accuracy")
    ax1.legend(loc="upper right")
    lo = min(min(r["mean_corruption"], r["clean"]) for r in results)
    ax1.set_ylim(max(0, lo - 10), 105)
    for r in results:
        sev = r["severities"]
        mean_per_sev = [sum(v[i] for v in r["corruptions"].values()) / len(r["corruptions"])
                        for i in range(len(sev))]
        ax2.plot([0, *sev], [r["clean"], *mean_per_sev], marker="o", label=r["label"])
    ax2.set_xlabel("corruption severity (0 = clean)")
    ax2.set_ylabel("top-1 (%), mean over corruptions")
    ax2.set_title("Accuracy per severity")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out_dir / "accuracy.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    n_cor = len(results[0]["corruptions"])
    fig, axes = plt.subplots(1, n_cor, figsize=(2.6 * n_cor, 3.0), sharey=True)
    for ax, name in zip(axes, results[0]["corruptions"], strict=True):
        for r in results:
            ax.plot(r["severities"], r["corruptions"][name], marker=".", label=r["label"])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("severity")
    axes[0].set_ylabel("top-1 (%)")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    paths.append(out_dir / "corruptions.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.0))
    for r in results:
        c = r.get("curves", {})
        if c.get("loss"):
            ax1.plot(c["step"], c["loss"], label=r["label"])
        if c.get("residual_above_floor"):
            ax2.plot(c["step"], _moving_average(c["residual_above_floor"]), label=r["label"])
    ax1.set_xlabel("step")
    ax1.set_ylabel("loss term")
    ax1.set_yscale("log")
    ax1.set_title("Training loss: contrastive / regression term (Barlow: its loss)")
    ax1.legend(fontsize=8)
    ax2.set_xlabel("step")
    ax2.set_ylabel("R - floor (nats)")
    ax2.set_title(f"R above its floor (C-variants; mean of {SMOOTH} logged steps)")
    if ax2.lines:
        ax2.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out_dir / "training.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def write_markdown(results: Sequence[dict[str, Any]], path: Path, header: str,
                   figures: Sequence[Path]) -> None:
    """report.md: the main table, per-corruption accuracies, cost, figures."""
    table = rows(results)
    lines = [header.rstrip(), "", "## Accuracy (linear probe, frozen backbone)", "",
             "| run | clean top-1 | mean corruption top-1 | relative drop | kNN top-1 |",
             "|---|---|---|---|---|"]
    for row in table:
        lines.append(f"| {row['label']} | {_fmt(row['clean_acc1'])} | "
                     f"{_fmt(row['mean_corruption_acc1'])} | "
                     f"{_fmt(100 * row['relative_drop'], 1)}% | {_fmt(row['knn_acc1'])} |")
    names = list(results[0]["corruptions"])
    lines += ["", "## Top-1 per corruption (mean over severities 1-5)", "",
              "| run | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for r in results:
        vals = [sum(v) / len(v) for v in r["corruptions"].values()]
        lines.append(f"| {r['label']} | " + " | ".join(_fmt(v, 1) for v in vals) + " |")
    lines += ["", "## Cost", "",
              "| run | images/s | step time (ms) | step time / baseline | peak memory (MiB) |",
              "|---|---|---|---|---|"]
    for row in table:
        lines.append(f"| {row['label']} | {_fmt(row['images_per_sec'], 1)} | "
                     f"{_fmt(row['step_time_ms'], 1)} | {_fmt(row['step_time_ratio'], 3)} | "
                     f"{_fmt(row['peak_mem_mib'], 0)} |")
    lines += ["", "## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figures]
    path.write_text("\n".join(lines) + "\n")
