"""Views per second of `cvr-solo pretrain` at a bench budget's input, per method and variant.

    python benchmarks/bench_views.py --data DIR [--train SUBSET] [--budget cpu]
        [--methods simclr,byol] [--precisions 32,bf16-mixed] [--workers 1] [--steps 40]
        [--threads N]

For issue #23 (a cheaper CPU step): each row is one `cvr-solo pretrain` run, in a fresh
process, with the overrides `cvr-solo bench` gives that budget's runs (crop size, stem,
batch, diagnostics, logging) and the variant's precision and loader workers, stopped after
``--steps`` steps (``limit_train_batches``, one epoch). It prints the median of the run's
ThroughputMonitor rate (two warm-up steps left out; data loading included), in views per
second (two views per source image), and the wall time of the process. To compare code
versions, run it twice with ``PYTHONPATH`` pointing at each checkout.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cvr_solo.bench.plan import BUDGETS, hydra_args, parse_methods, plan_runs  # noqa: E402
from cvr_solo.common.catalog import METHODS  # noqa: E402
from cvr_solo.common.metric_names import EPOCH, IMAGES_PER_SEC  # noqa: E402


def views_per_second(method: str, data: Path, train: Path, budget: str, precision: str,
                     workers: int, steps: int, threads: int | None,
                     batch_size: int | None = None) -> tuple[float, float]:
    """(median views/s of the run's steps, wall seconds of the process)."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = plan_runs(parse_methods(method), [5], BUDGETS[budget], Path(tmp),
                         data)[0]
        over = {**spec.overrides, "data.train_path": train, "max_epochs": 1,
                "data.num_workers": workers, "++limit_train_batches": steps,
                "++log_every_n_steps": 1}
        if batch_size:
            over["optimizer.batch_size"] = batch_size
        args = [*hydra_args(over), f"precision={precision}"]
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "cvr_solo.cli", "pretrain",
                               "--config-path", str(REPO / "scripts/pretrain/fashion-mnist"),
                               "--config-name", spec.config, *args],
                              capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if proc.returncode:
            raise SystemExit(f"{method} {precision}: failed\n{proc.stderr[-3000:]}")
        rows = [r for f in Path(tmp).rglob("metrics.csv") for r in csv.DictReader(f.open())]
        rates = [float(r[IMAGES_PER_SEC]) for r in rows if r.get(IMAGES_PER_SEC)]
        if not rates:
            rates = [float(r[IMAGES_PER_SEC + EPOCH]) for r in rows
                     if r.get(IMAGES_PER_SEC + EPOCH)]
        return 2 * statistics.median(rates), wall


def _commit() -> str:
    return subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                          capture_output=True, text=True).stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True,
                    help="the image folder with train/ and val/ (`cvr-solo data`)")
    ap.add_argument("--train", type=Path, default=None,
                    help="the train images (default: DATA/train), e.g. a bench seed subset")
    ap.add_argument("--budget", default="cpu", choices=sorted(BUDGETS))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--precisions", default="32,bf16-mixed")
    ap.add_argument("--workers", default=None,
                    help="loader workers, comma-separated (default: the budget's)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=None, help="default: the budget's")
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of each run")
    args = ap.parse_args(argv)
    budget = BUDGETS[args.budget]
    workers = [int(w) for w in (args.workers or str(budget.num_workers)).split(",")]
    import torch

    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, threads {args.threads or 'default'}, load "
          f"{os.getloadavg()[0]:.2f}, budget {args.budget}, {args.steps} steps, code "
          f"{_commit()}"
          f" (PYTHONPATH {os.environ.get('PYTHONPATH', '-')})")
    print("| method | precision | loader workers | views/s | process wall (s) |\n"
          "|---|---|---|---|---|")
    for method in args.methods.split(","):
        for precision in args.precisions.split(","):
            for w in workers:
                rate, wall = views_per_second(method, args.data, args.train or args.data / "train",
                                              args.budget, precision, w,
                                              args.steps, args.threads, args.batch_size)
                print(f"| {method} | {precision} | {w} | {rate:.0f} | {wall:.0f} |",
                      flush=True)


if __name__ == "__main__":
    main()
