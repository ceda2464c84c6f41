"""A run's stages, each reading and writing its one record (runs/LABEL/seed-S/result.json):
:func:`draw_subset`, :func:`pretrain` (a ``cvr-solo pretrain`` child, each launch recorded,
resumed from its last checkpoint), :func:`evaluate` (the run is finished); and
:func:`reference`, the reference rows once per data set and budget (reference.json)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvr_solo.bench.plan import Budget, RunSpec, hydra_args
from cvr_solo.bench.result import RunResult
from cvr_solo.common.catalog import METHODS
from cvr_solo.common.metric_names import DIAG_KEYS, DIAG_PREFIX
from cvr_solo.evaluation.protocol import PROTOCOL, Scores


@dataclass
class Context:
    """What the stages of one benchmark share: settings and the images, loaded once."""

    budget: Budget
    out: Path
    data: Path
    config_dir: Path
    progress: bool = True
    #: shows a running stage's progress (the bench's console bar), if set
    status: Callable[[str], None] | None = None
    _train: dict[Path, Any] = field(default_factory=dict)
    _val: Any = None

    @property
    def device(self) -> str:
        return "cpu" if self.budget.device == "cpu" else "cuda"

    def train_set(self, folder: Path) -> Any:
        from cvr_solo.evaluation.frozen import load_image_folder

        if folder not in self._train:
            self._train[folder] = load_image_folder(folder)
        return self._train[folder]

    def val_set(self) -> tuple[Any, Any]:
        """The validation images and the indices of the corruption subset among them."""
        from cvr_solo.data.balanced import balanced_indices
        from cvr_solo.evaluation.frozen import load_validation

        if self._val is None:
            val = load_validation(self.data / "val", self.budget.val_subset)
            self._val = val, balanced_indices(val.labels, self.budget.corruption_subset, seed=0)
        return self._val


def balanced_subset(src: Path, dst: Path, per_class: int | None, seed: int) -> Path:
    """A class-balanced image folder of symlinks into ``src`` (``src`` itself if ``per_class``
    is None), the ``balanced_indices`` draw of ``seed``; built aside and renamed, so an
    existing ``dst`` is complete and reused. ValueError if a class has too few images."""
    import torch

    from cvr_solo.data.balanced import balanced_indices

    if per_class is None or dst.is_dir():
        return src if per_class is None else dst
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    classes = sorted(p for p in src.iterdir() if p.is_dir())
    files, labels = [], []
    for c, cls in enumerate(classes):
        found = sorted(cls.iterdir())
        if len(found) < per_class:
            raise ValueError(f"{cls} has {len(found)} images, fewer than the {per_class} per "
                             "class the budget asks for; lower --subset")
        files += found
        labels += [c] * len(found)
        (tmp / cls.name).mkdir(parents=True)
    for i in balanced_indices(torch.tensor(labels), per_class * len(classes), seed).tolist():
        (tmp / files[i].parent.name / files[i].name).symlink_to(files[i].resolve())
    tmp.rename(dst)
    return dst


def draw_subset(ctx: Context, seed: int, dst: Path) -> Path:
    """The class-balanced train subset of ``seed`` in ``dst`` (the train folder itself when
    the budget uses every image)."""
    train, n = ctx.data / "train", ctx.budget.subset
    classes = sum(p.is_dir() for p in train.iterdir())
    return balanced_subset(train, dst, None if n is None else n // classes, seed)


def epoch_checkpoints(root: Path) -> dict[int, Path]:
    """epoch -> the newest ``*-ep=<epoch>.ckpt`` (solo-learn's names) under ``root``, sorted."""
    found: dict[int, Path] = {}
    for p in sorted(root.rglob("*-ep=*.ckpt"), key=lambda q: q.stat().st_mtime):
        if m := re.search(r"-ep=(\d+)\.ckpt$", p.name):
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def record(spec: RunSpec) -> RunResult:
    """The run's record: its result.json, or a new one."""
    path = spec.run_dir / "result.json"
    if path.is_file():
        return RunResult.load(path)
    return RunResult(label=spec.label, method=spec.method, seed=spec.seed,
                     method_kwargs=dict(spec.method_kwargs))


def pretrain(ctx: Context, spec: RunSpec, rec: RunResult) -> Path:
    """The last epoch's checkpoint of ``spec``, pretrained (or resumed) by ``cvr-solo
    pretrain`` unless it exists; each launch's wall and CPU seconds go to ``rec.attempts``,
    saved as it starts and as it ends. RuntimeError if it fails or ends without it."""
    root, last = spec.run_dir / "pretrain", ctx.budget.pretrain_epochs - 1
    if (ckpt := epoch_checkpoints(root).get(last)) is not None:
        return ckpt
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    rec.close_attempts(root)
    t0, cpu0 = time.time(), _children_cpu()
    rec.attempts.append({"start": t0})
    rec.save(spec.run_dir / "result.json")
    try:
        run_cli("pretrain", ctx.config_dir, spec.config, hydra_args(spec.overrides),
                spec.run_dir / "pretrain.log", ctx.status)
    finally:
        rec.attempts[-1].update(wall=time.time() - t0, cpu=_children_cpu() - cpu0)
        rec.save(spec.run_dir / "result.json")
    if (ckpt := epoch_checkpoints(root).get(last)) is None:
        raise RuntimeError(f"{spec.label} seed {spec.seed}: pretraining ended without its "
                           "last checkpoint")
    return ckpt


def run_cli(command: str, config_dir: Path, config_name: str, overrides: list[str],
            log: Path, status: Callable[[str], None] | None = None) -> None:
    """``python -m cvr_solo.cli COMMAND``, its output appended to ``log``, its step file's
    "step s/total" to ``status`` every 2 s; RuntimeError with the log's end if it fails."""
    from cvr_solo.common.progress_file import PROGRESS_FILE_ENV, read_step_file

    cmd = [sys.executable, "-m", "cvr_solo.cli", command, "--config-path", str(config_dir),
           "--config-name", config_name, *overrides]
    steps = log.with_name(log.stem + ".step")
    env = {**os.environ, "PYTHONWARNINGS": "ignore", PROGRESS_FILE_ENV: str(steps)}
    with log.open("a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
        try:
            while proc.poll() is None:
                if status is not None and (seen := read_step_file(steps)) is not None:
                    status(f"step {seen[0]}/{seen[1] or '?'}")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=2.0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    if proc.returncode != 0:
        tail = log.read_text().splitlines()[-25:]
        raise RuntimeError(f"cvr-solo {command} failed (exit {proc.returncode}); the end of "
                           f"{log}:\n" + "\n".join(tail))


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished children: a load-proof cost figure."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def cost_and_curves(root: Path, method: str) -> tuple[dict[str, Any], dict[str, list]]:
    """Cost (median step time and images/s, peak memory) and per-step curves from a run's
    metrics.csv files; a step that two launches logged (a resume redoes the steps after its
    checkpoint) counts once, with the later value."""
    import pandas as pd

    from cvr_solo.bench.report import finite

    files = sorted(root.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    rows = pd.concat([pd.read_csv(f, float_precision="round_trip") for f in files] or
                     [pd.DataFrame({"step": []})], ignore_index=True)

    def per_step(key: str) -> pd.Series:
        if key not in rows:
            return pd.Series(dtype=float)
        logged = rows.dropna(subset=[key]).drop_duplicates("step", keep="last")
        return logged.set_index(logged["step"].astype(int))[key].sort_index()

    def agg(s: pd.Series, how: str) -> float | None:
        return None if (s := finite(s)).empty else float(s.agg(how))

    cost = {"step_time": agg(per_step("train_step_time"), "median"),
            "images_per_sec": agg(per_step("train_images_per_sec"), "median"),
            **{k: agg(rows.get(k, pd.Series(dtype=float)), "max")
               for k in ("peak_rss_mib", "peak_gpu_mem_mib")}}
    keys = {"loss": METHODS[method].loss_key, "residual": "train_residual_step",
            "residual_above_floor": "train_residual_above_floor_step",
            **{k[len(DIAG_PREFIX):]: k for k in DIAG_KEYS}}
    curves: dict[str, list] = {}
    for name, key in keys.items():
        s = per_step(key)
        curves[name], curves[f"{name}_step"] = s.tolist(), s.index.tolist()
    curves["step"] = curves["loss_step"]
    return cost, curves


def evaluate(ctx: Context, spec: RunSpec, rec: RunResult, checkpoint: Path) -> RunResult:
    """``rec`` with the kNN, probe and corruption suite of ``checkpoint`` and the run's cost
    and curves, saved: the run is finished."""
    from cvr_solo.evaluation.frozen import evaluate_backbone, run_backbone

    t0, cpu0 = time.time(), time.process_time()
    val, corruption_idx = ctx.val_set()
    args = json.loads((checkpoint.parent / "args.json").read_text())
    aug = args["augmentations"][0]  # the run's normalisation
    scores = evaluate_backbone(run_backbone(args, checkpoint), ctx.train_set(spec.train_dir),
                               val, corruption_idx, ctx.budget.severities, aug["mean"],
                               aug["std"], ctx.device, ctx.progress, ctx.budget.precision)
    rec.cost, rec.curves = cost_and_curves(spec.run_dir / "pretrain", spec.method)
    vars(rec).update(scores.to_dict(), pretrain_checkpoint=str(checkpoint),
                     evaluate_seconds=time.time() - t0,
                     evaluate_cpu_seconds=time.process_time() - cpu0)
    rec.close_attempts(spec.run_dir / "pretrain")
    rec.save(spec.run_dir / "result.json")
    return rec


def reference_args(cfg: Any) -> dict[str, Any]:
    """What the reference rows need of the runs' composed config: its backbone and the
    mean/std of its first crop."""
    from omegaconf import OmegaConf

    backbone = OmegaConf.to_container(cfg.backbone, resolve=True)
    aug = cfg.augmentations[0]
    return {"backbone": {"name": backbone["name"], "kwargs": backbone.get("kwargs") or {}},
            "augmentations": [{"mean": list(aug.mean), "std": list(aug.std)}]}


def reference_key(ctx: Context, run_args: dict[str, Any]) -> dict[str, Any]:
    """What the reference rows depend on, the evaluation protocol included; reference.json
    is reused while it matches."""
    b, bb = ctx.budget, run_args["backbone"]
    return {"data": str(ctx.data.resolve()), "subset": b.subset, "val_subset": b.val_subset,
            "corruption_subset": b.corruption_subset, "severities": list(b.severities),
            "precision": b.precision, "backbone": bb["name"], "backbone_kwargs": bb["kwargs"],
            "protocol": PROTOCOL.key()}


def reference(ctx: Context, run_args: dict[str, Any]) -> dict[str, Scores]:
    """Row name -> :class:`Scores` of the reference rows (raw pixels; an untrained backbone as
    in ``run_args``, :func:`reference_args`) on the train subset of seed 0, computed once
    while reference.json's key is :func:`reference_key`."""
    from cvr_solo.evaluation.frozen import reference_rows

    path, key = ctx.out / "reference.json", reference_key(ctx, run_args)
    saved = json.loads(path.read_text()) if path.is_file() else {}
    if saved.get("key") == key:
        return {name: Scores.from_dict(row, source=f"{path} ({name})")
                for name, row in saved["rows"].items()}
    folder = draw_subset(ctx, 0, ctx.out / "data" / "reference")
    aug, bb = run_args["augmentations"][0], run_args["backbone"]
    t0 = time.time()
    val, corruption_idx = ctx.val_set()
    rows = reference_rows(ctx.train_set(folder), val, corruption_idx, ctx.budget.severities,
                          bb["name"], dict(bb["kwargs"]), aug["mean"], aug["std"],
                          ctx.device, ctx.progress, ctx.budget.precision)
    path.write_text(json.dumps({"key": key, "rows": {n: r.to_dict() for n, r in rows.items()},
                                "seconds": time.time() - t0}, indent=1))
    return rows
