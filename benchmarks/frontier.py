"""Steps against accuracy over the untrained backbone: every epoch checkpoint of a bench run.

    python benchmarks/frontier.py OUT [--val-subset N] [--every K] [--seeds 5] [--runs simclr,byol]
        [--jsonl F]

``OUT`` is a ``cvr-solo bench`` output folder (its runs, reference.json and train subsets).
For every run under ``OUT/runs`` and every K-th epoch checkpoint (and the last), the frozen
backbone is evaluated as the benchmark evaluates it
(:func:`cvr_solo.evaluation.frozen.knn_and_probe` under the evaluation protocol, on the run's
train images and the validation images),
without the corruption suite. Printed: one row per checkpoint with the optimiser steps
so far and kNN / probe minus the untrained backbone's (reference.json), then a markdown
table of those gains per run and step count.

A checkpoint inside a run is *not* the end of a shorter run: its lr has not decayed, so the
accuracy of a run that ends at that step under its own cosine schedule is usually higher. The
rows are a lower bound on the frontier (issue #16: docs/cpu-budget-notes.md says how they were
used).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def evaluate_checkpoints(out: Path, val_subset: int | None, every: int,
                         seeds: set[int] | None = None, labels: set[str] | None = None
                         ) -> list[dict[str, Any]]:
    """One record per evaluated checkpoint: label, seed, epoch, steps, knn, probe and their
    gains over the untrained backbone of ``out/reference.json``."""
    from cvr_solo.bench.stages import epoch_checkpoints
    from cvr_solo.evaluation.frozen import (
        knn_and_probe,
        load_image_folder,
        load_validation,
        run_backbone,
    )

    header = json.loads((out / "bench.json").read_text()) if (
        out / "bench.json").is_file() else {}
    ref = json.loads((out / "reference.json").read_text())
    untrained = next(v for k, v in ref["rows"].items() if "untrained" in k)
    data = Path(ref["key"]["data"])
    val = load_validation(data / "val", val_subset)
    precision = ref["key"]["precision"]
    rows: list[dict[str, Any]] = []
    trains: dict[str, Any] = {}
    for run_dir in sorted((out / "runs").glob("*/seed-*")):
        ckpts = list(epoch_checkpoints(run_dir / "pretrain").items())
        if (not ckpts or (seeds is not None and int(run_dir.name.split("-")[1]) not in seeds)
                or (labels is not None and run_dir.parent.name not in labels)):
            continue
        args = json.loads((ckpts[-1][1].parent / "args.json").read_text())
        train_dir = args["data"]["train_path"]
        if train_dir not in trains:
            trains[train_dir] = load_image_folder(train_dir)
        train = trains[train_dir]
        steps_per_epoch = len(train.labels) // int(args["optimizer"]["batch_size"])
        aug = args["augmentations"][0]
        last = ckpts[-1][0]
        for epoch, path in ckpts:
            if (epoch + 1) % every and epoch != last:
                continue
            knn, probe, _ = knn_and_probe(run_backbone(args, path), train, val, aug["mean"],
                                          aug["std"], "cpu", precision)
            row = {"label": run_dir.parent.name, "seed": int(run_dir.name.split("-")[1]),
                   "epoch": epoch + 1, "steps": (epoch + 1) * steps_per_epoch,
                   "knn": knn, "probe": probe, "knn_gain": knn - untrained["knn_acc1"],
                   "probe_gain": probe - untrained["clean"],
                   "budget": header.get("budget"), "epochs": header.get("pretrain_epochs")}
            rows.append(row)
            print(f"{row['label']:>14} seed {row['seed']} epoch {row['epoch']:>3} "
                  f"steps {row['steps']:>5}: kNN {knn:6.2f} ({row['knn_gain']:+6.2f})  "
                  f"probe {probe:6.2f} ({row['probe_gain']:+6.2f})", flush=True)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """A table of kNN / probe gain over the untrained backbone: a row per run and seed, a
    column per evaluated step count."""
    steps = sorted({r["steps"] for r in rows})
    by_run: dict[tuple[str, int], dict[int, dict[str, Any]]] = {}
    for r in rows:
        by_run.setdefault((r["label"], r["seed"]), {})[r["steps"]] = r
    lines = ["| run | seed | " + " | ".join(f"{s} steps" for s in steps) + " |",
             "|---|---|" + "---|" * len(steps)]
    for (label, seed), at in by_run.items():
        cells = [f"{at[s]['knn_gain']:+.1f} / {at[s]['probe_gain']:+.1f}" if s in at else ""
                 for s in steps]
        lines.append(f"| {label} | {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="a cvr-solo bench output folder")
    parser.add_argument("--val-subset", type=int, default=None,
                        help="class-balanced validation images (default: all)")
    parser.add_argument("--every", type=int, default=1, help="every K-th epoch (and the last)")
    parser.add_argument("--jsonl", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--seeds", default=None,
                        help="comma-separated seeds to evaluate (default: every seed)")
    parser.add_argument("--runs", default=None,
                        help="comma-separated run labels to evaluate (default: every run)")
    args = parser.parse_args(argv)
    if not (args.out / "reference.json").is_file():
        print(f"frontier: {args.out}/reference.json missing: run cvr-solo bench there first",
              file=sys.stderr)
        return 2
    seeds = None if args.seeds is None else {int(s) for s in args.seeds.split(",")}
    labels = None if args.runs is None else set(args.runs.split(","))
    rows = evaluate_checkpoints(args.out, args.val_subset, args.every, seeds, labels)
    if args.jsonl:
        args.jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print("\nkNN / probe minus the untrained backbone's (points):\n\n" + markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
