"""``cvr-solo bench``: every method under one budget, then accuracy, robustness and cost.

    cvr-solo bench --data DIR --methods simclr,c_simclr,byol,c_byol,barlow_twins \\
        --budget smoke|full --out results/NAME

Each method is pretrained through ``cvr-solo pretrain`` (solo-learn underneath) with the same
backbone, epochs, batch, augmentations and seed, its frozen backbone gets an offline linear
probe through ``cvr-solo linear`` and a kNN score, and the probe is evaluated on corrupted
validation images. A method may carry CEB overrides for sweeps: ``c_byol:beta=0.1+w=5``.
Interrupted runs resume: finished stages are skipped, a pretraining or probe in progress
continues from its last checkpoint (solo-learn's AutoResumer).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import platform
import random
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cvr_solo.catalog import CEB_METHODS, METHODS, lookup


@dataclasses.dataclass(frozen=True)
class Budget:
    """What every method gets. ``subset``/``val_subset``: class-balanced image counts."""

    subset: int | None
    val_subset: int | None
    pretrain_epochs: int
    linear_epochs: int
    batch_size: int
    linear_batch_size: int
    device: str
    precision: str
    num_workers: int
    log_every: int


BUDGETS = {
    # all five methods end to end on 2 CPU cores in well under 30 minutes
    "smoke": Budget(subset=2000, val_subset=500, pretrain_epochs=8, linear_epochs=10,
                    batch_size=64, linear_batch_size=128, device="cpu", precision="32",
                    num_workers=1, log_every=2),
    # the real comparison, for one GPU: all 60k/10k images, ResNet-18, 100 epochs, DALI when
    # installed
    "full": Budget(subset=None, val_subset=None, pretrain_epochs=100, linear_epochs=100,
                   batch_size=256, linear_batch_size=256, device="cuda", precision="16-mixed",
                   num_workers=8, log_every=20),
}


def parse_methods(spec: str) -> list[tuple[str, str, dict[str, str]]]:
    """'simclr,c_byol:beta=0.1+b_view=same' -> [(label, method, method_kwargs overrides)]."""
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, kw = item.partition(":")
        try:
            info = lookup(name)
        except KeyError as err:
            raise ValueError(f"--methods: {err.args[0]}") from None
        kwargs = {}
        for pair in filter(None, kw.split("+")):
            key, eq, value = pair.partition("=")
            if not eq or not key:
                raise ValueError(f"--methods: {item!r}: overrides are key=value joined by '+'")
            kwargs[key] = value
        method = info.name
        if kwargs and method not in CEB_METHODS:
            raise ValueError(f"--methods: {item!r}: only c_simclr/c_byol take CEB overrides")
        out.append((item.replace(":", "@").replace("+", "_"), method, kwargs))
    labels = [label for label, _, _ in out]
    if len(set(labels)) != len(labels) or not out:
        raise ValueError(f"--methods: give each run once, got {spec!r}")
    return out


def balanced_subset(src: Path, dst: Path, per_class: int | None, seed: int) -> Path:
    """A class-balanced image folder of symlinks into ``src`` (``src`` itself if None)."""
    if per_class is None:
        return src
    marker = dst / ".subset.json"
    want = {"src": str(src.resolve()), "per_class": per_class, "seed": seed}
    if marker.is_file() and json.loads(marker.read_text()) == want:
        return dst
    if dst.exists():
        for p in sorted(dst.rglob("*"), reverse=True):
            p.unlink() if p.is_symlink() or p.is_file() else p.rmdir()
    rng = random.Random(seed)
    for cls in sorted(p for p in src.iterdir() if p.is_dir()):
        files = sorted(cls.iterdir())
        if len(files) < per_class:
            raise ValueError(f"{cls} has {len(files)} images, fewer than the {per_class} per "
                             "class the budget asks for; lower --subset")
        (dst / cls.name).mkdir(parents=True, exist_ok=True)
        for f in rng.sample(files, per_class):
            (dst / cls.name / f.name).symlink_to(f.resolve())
    marker.write_text(json.dumps(want))
    return dst


def _q(value: object) -> str:
    """A Hydra override value quoted, so paths and labels may hold '=', ',' or spaces."""
    return "'" + str(value).replace("'", "\\'") + "'"


def _cli(command: str, config_dir: Path, config_name: str, overrides: list[str],
         log: Path) -> None:
    cmd = [sys.executable, "-m", "cvr_solo.cli", command, "--config-path", str(config_dir),
           "--config-name", config_name, *overrides]
    with log.open("a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if proc.returncode != 0:
        tail = log.read_text().splitlines()[-25:]
        raise RuntimeError(f"cvr-solo {command} failed (exit {proc.returncode}); the end of "
                           f"{log}:\n" + "\n".join(tail))


def _final_checkpoint(root: Path, epochs: int) -> Path | None:
    found = sorted(root.rglob(f"*-ep={epochs - 1}.ckpt"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _read_metrics(root: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for f in sorted(root.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime):
        rows += list(csv.DictReader(f.open()))
    return rows


def _median(xs: list[float]) -> float | None:
    """The median of the finite values (the mean of the two middle ones for an even count)."""
    xs = sorted(x for x in xs if math.isfinite(x))
    if not xs:
        return None
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def cost_and_curves(root: Path, method: str) -> tuple[dict[str, Any], dict[str, list]]:
    """Cost (median step time and images/s, peak memory) and per-step curves from the CSV
    logs of a pretraining run (all its launches, later ones overriding earlier steps).

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
    by_step: dict[int, dict[str, float]] = {}
    keys = {"loss": METHODS[method].loss_key, "residual": "train_residual_step",
            "residual_above_floor": "train_residual_above_floor_step"}
    for r in rows:
        for name, key in keys.items():
            if r.get(key) not in (None, ""):
                by_step.setdefault(int(r["step"]), {})[name] = float(r[key])
    steps = sorted(by_step)
    curves: dict[str, list] = {"step": steps}
    for name in keys:
        vals = [by_step[s].get(name) for s in steps]
        curves[name] = vals if any(v is not None for v in vals) else []
    return cost, curves


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cvr-solo bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path,
                        help="image folder with train/ and val/ (cvr-solo data fashion-mnist)")
    parser.add_argument("--methods", default="simclr,c_simclr,byol,c_byol,barlow_twins")
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="smoke")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--config-path", type=Path, default=None,
                        help="pretrain configs (default: the shipped fashion-mnist ones)")
    parser.add_argument("--augmentations", default="asymmetric",
                        help="augmentation config every method uses (asymmetric | symmetric), "
                             "or 'native' for each baseline's published choice")
    for field in dataclasses.fields(Budget):
        parser.add_argument(f"--{field.name.replace('_', '-')}", default=None,
                            type=str if field.name in ("device", "precision") else int,
                            help=f"override the budget's {field.name}")
    parser.add_argument("--no-progress", action="store_true")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return _bench(args)
    except (ValueError, RuntimeError, FileNotFoundError) as err:
        print(f"cvr-solo bench: error: {err}", file=sys.stderr)
        return 2


def _bench(args: argparse.Namespace) -> int:
    from cvr_solo.config import shipped_config_dir
    from cvr_solo.solo_env import require_solo

    with warnings.catch_warnings():  # solo-learn's and timm's import-time deprecations
        warnings.simplefilter("ignore")
        require_solo()
    runs = parse_methods(args.methods)
    budget = dataclasses.replace(BUDGETS[args.budget], **{
        f.name: getattr(args, f.name) for f in dataclasses.fields(Budget)
        if getattr(args, f.name) is not None})
    if budget.device in ("cuda", "gpu"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"the {args.budget!r} budget runs on a GPU and none is visible; "
                             "use --device cpu (slow) or --budget smoke")
    config_dir = args.config_path or shipped_config_dir("pretrain", "fashion-mnist")
    linear_dir = shipped_config_dir("linear", "fashion-mnist")
    for split in ("train", "val"):
        if not (args.data / split).is_dir():
            raise FileNotFoundError(f"--data {args.data} has no {split}/ folder; make one with "
                                    f"`cvr-solo data fashion-mnist --out {args.data}`")
    out = args.out
    (out / "runs").mkdir(parents=True, exist_ok=True)
    n_cls = sum(p.is_dir() for p in (args.data / "train").iterdir())
    train_dir = balanced_subset(args.data / "train", out / "data" / "train",
                                budget.subset // n_cls if budget.subset else None, args.seed)
    val_dir = balanced_subset(args.data / "val", out / "data" / "val",
                              budget.val_subset // n_cls if budget.val_subset else None,
                              args.seed)
    fmt = []
    if budget.device in ("cuda", "gpu"):
        import importlib.util

        if importlib.util.find_spec("nvidia.dali") is not None:
            fmt = ["data.format=dali"]
    accel = "cpu" if budget.device == "cpu" else "gpu"
    warmup = min(10, budget.pretrain_epochs // 10)
    common = [f"data.train_path={_q(train_dir)}", f"data.num_workers={budget.num_workers}",
              f"seed={args.seed}", f"optimizer.batch_size={budget.batch_size}",
              f"accelerator={accel}", 'devices="1"', f"precision={budget.precision}",
              f"++log_every_n_steps={budget.log_every}", "++enable_progress_bar=False",
              "auto_resume.enabled=True", "++auto_resume.max_hours=1000000"]
    header = {"budget": args.budget, **dataclasses.asdict(budget), "seed": args.seed,
              "methods": args.methods, "augmentations": args.augmentations,
              "data": str(args.data), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "command": "cvr-solo bench " + shlex.join(args.argv)}
    previous = out / "bench.json"
    if previous.is_file():  # finished runs are reused: only under the very same settings
        old = json.loads(previous.read_text())
        fixed = [k for k in header if k not in ("command", "methods", "machine")]
        changed = [k for k in fixed if old.get(k) != header[k]]
        if changed:
            diff = ", ".join(f"{k}: {old.get(k)!r} -> {header[k]!r}" for k in changed)
            raise ValueError(f"--out {out} holds runs made with other settings ({diff}); "
                             "give another --out")
    previous.write_text(json.dumps(header, indent=2))

    from cvr_solo.bench.evaluate import evaluate_run, load_image_folder

    train_set = val_set = None
    results = []
    bar = tqdm(runs, desc="bench", unit="method", disable=args.no_progress)
    for label, method, kwargs in bar:
        run_dir = out / "runs" / label
        run_dir.mkdir(parents=True, exist_ok=True)
        result_file = run_dir / "result.json"
        if result_file.is_file():
            bar.set_postfix_str(f"{label}: done, skipped")
            results.append(json.loads(result_file.read_text()))
            continue
        over = [*common, *fmt, f"name={_q(label)}"]
        if args.augmentations != "native":
            over.append(f"augmentations={args.augmentations}.yaml")
        over += [f"method_kwargs.{k}={v}" for k, v in kwargs.items()]  # values are typed
        pre_root = run_dir / "pretrain"
        ckpt = _final_checkpoint(pre_root, budget.pretrain_epochs)
        t0 = time.time()
        if ckpt is None:
            bar.set_postfix_str(f"{label}: pretraining")
            _cli("pretrain", config_dir, f"{METHODS[method].config}.yaml",
                 [*over, "data.val_path=null", f"checkpoint.dir={_q(pre_root)}",
                  f"max_epochs={budget.pretrain_epochs}",
                  f"++scheduler.warmup_epochs={warmup}"], run_dir / "pretrain.log")
            ckpt = _final_checkpoint(pre_root, budget.pretrain_epochs)
            if ckpt is None:
                raise RuntimeError(f"{label}: pretraining ended without its last checkpoint")
        lin_root = run_dir / "linear"
        lin_ckpt = _final_checkpoint(lin_root, budget.linear_epochs)
        if lin_ckpt is None:
            bar.set_postfix_str(f"{label}: linear probe")
            steps = sorted({max(1, round(budget.linear_epochs * f)) for f in (0.6, 0.8)})
            lin_over = [o for o in common if not o.startswith(("data.train_path",
                                                                 "optimizer.batch_size"))]
            lin_over.append(f"optimizer.batch_size={budget.linear_batch_size}")
            lin_over += [f"data.train_path={_q(train_dir)}", f"data.val_path={_q(val_dir)}",
                         f"pretrained_feature_extractor={_q(ckpt)}",
                         f"pretrain_method={method}", f"name={_q(label + '-linear')}",
                         f"checkpoint.dir={_q(lin_root)}",
                         f"max_epochs={budget.linear_epochs}",
                         f"scheduler.lr_decay_steps=[{','.join(map(str, steps))}]"]
            _cli("linear", linear_dir, "linear.yaml", lin_over, run_dir / "linear.log")
            lin_ckpt = _final_checkpoint(lin_root, budget.linear_epochs)
            if lin_ckpt is None:
                raise RuntimeError(f"{label}: the linear probe ended without its checkpoint")
        bar.set_postfix_str(f"{label}: evaluating")
        if train_set is None:
            train_set, val_set = load_image_folder(train_dir), load_image_folder(val_dir)
        run_args = json.loads((ckpt.parent / "args.json").read_text())
        aug = run_args["augmentations"][0]
        device = "cuda" if budget.device in ("cuda", "gpu") else "cpu"
        ev = evaluate_run(ckpt, lin_ckpt, train_set, val_set, aug["mean"], aug["std"], device,
                          args.seed, progress=not args.no_progress)
        cost, curves = cost_and_curves(pre_root, method)
        result = {"label": label, "method": method, "method_kwargs": kwargs,
                  "pretrain_checkpoint": str(ckpt), "linear_checkpoint": str(lin_ckpt),
                  "seconds_this_launch": time.time() - t0, **ev, "cost": cost,
                  "curves": curves}
        result_file.write_text(json.dumps(result, indent=1))
        results.append(result)
    bar.close()
    write_outputs(out, results, header)
    print(f"cvr-solo bench: wrote {out / 'results.csv'}, {out / 'report.md'} and plots")
    return 0


def write_outputs(out: Path, results: list[dict[str, Any]], header: dict[str, Any]) -> None:
    """results.csv, report.md and the PNG plots for ``results``."""
    from cvr_solo.bench.report import plot, write_csv, write_markdown

    write_csv(results, out / "results.csv")
    figs = plot(results, out)
    lines = ["# cvr-solo benchmark", "",
             f"Budget `{header['budget']}`: {header['pretrain_epochs']} pretraining epochs, "
             f"{header['linear_epochs']} linear-probe epochs, batch {header['batch_size']}, "
             f"seed {header['seed']}, {header['subset'] or 'all'} train / "
             f"{header['val_subset'] or 'all'} val images, augmentations "
             f"`{header['augmentations']}`, device {header['device']} "
             f"(precision {header['precision']}); machine: {header['machine']}.", "",
             f"Command: `{header['command']}`"]
    write_markdown(results, out / "report.md", "\n".join(lines), figs)
