"""The benchmark's stages, one function each, in the order a run meets them. Each takes the
:class:`Context` and returns its product; each does nothing when its output is already on
disk, so a relaunch continues where the last one stopped.

- :func:`finished`: the result of a run evaluated before (its result.json), or None.
- :func:`draw_subset`: a seed's class-balanced train subset (symlinks).
- :func:`pretrain`: ``cvr-solo pretrain`` of one :class:`~cvr_solo.bench.plan.RunSpec`
  (solo-learn underneath; an interrupted run resumes from its last checkpoint) -> its final
  checkpoint.
- :func:`evaluate`: kNN, probe and corruptions of that checkpoint -> a
  :class:`~cvr_solo.bench.result.RunResult` (result.json).
- :func:`reference`: the reference rows, once per data set and budget -> reference.json.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvr_solo.bench.child import _children_cpu, run_cli
from cvr_solo.bench.curves import cost_and_curves
from cvr_solo.bench.plan import Budget, RunSpec, hydra_args
from cvr_solo.bench.result import RunResult, Scores

__all__ = ["SUBSET_DRAW", "Context", "balanced_subset", "cost_and_curves", "draw_subset",
           "epoch_checkpoints", "evaluate", "finished", "pretrain", "reference",
           "reference_args"]

#: the version of the train-subset draw, in bench.json, reference.json and each subset's
#: marker: 1 drew with ``random.Random`` per class (cpu and smoke reports before 2026-12-06),
#: 2 with :func:`cvr_solo.data.balanced.balanced_indices`, the project's one balanced draw
SUBSET_DRAW = 2


def balanced_subset(src: Path, dst: Path, per_class: int | None, seed: int) -> Path:
    """A class-balanced image folder of symlinks into ``src`` (``src`` itself if None): the
    :func:`~cvr_solo.data.balanced.balanced_indices` draw (``seed``) over its files.

    Raises:
        ValueError: if a class folder has fewer than ``per_class`` images.
    """
    import torch

    from cvr_solo.data.balanced import balanced_indices

    if per_class is None:
        return src
    marker = dst / ".subset.json"
    want = {"src": str(src.resolve()), "per_class": per_class, "seed": seed,
            "draw": SUBSET_DRAW}
    if marker.is_file() and json.loads(marker.read_text()) == want:
        return dst
    if dst.exists():
        for p in sorted(dst.rglob("*"), reverse=True):
            p.unlink() if p.is_symlink() or p.is_file() else p.rmdir()
    classes = sorted(p for p in src.iterdir() if p.is_dir())
    files, labels = [], []
    for c, cls in enumerate(classes):
        found = sorted(cls.iterdir())
        if len(found) < per_class:
            raise ValueError(f"{cls} has {len(found)} images, fewer than the {per_class} per "
                             "class the budget asks for; lower --subset")
        files += found
        labels += [c] * len(found)
        (dst / cls.name).mkdir(parents=True, exist_ok=True)
    for i in balanced_indices(torch.tensor(labels), per_class * len(classes), seed).tolist():
        f = files[i]
        (dst / f.parent.name / f.name).symlink_to(f.resolve())
    marker.write_text(json.dumps(want))
    return dst


def epoch_checkpoints(root: Path) -> dict[int, Path]:
    """epoch -> the newest ``*-ep=<epoch>.ckpt`` under ``root`` (solo-learn's Checkpointer
    names), in epoch order."""
    import re

    found: dict[int, Path] = {}
    for p in sorted(root.rglob("*-ep=*.ckpt"), key=lambda q: q.stat().st_mtime):
        m = re.search(r"-ep=(\d+)\.ckpt$", p.name)
        if m:
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def _last_checkpoint(ctx: Context, spec: RunSpec) -> Path | None:
    """The checkpoint of the budget's last epoch of ``spec``, if it exists."""
    root = spec.run_dir / "pretrain"
    return epoch_checkpoints(root).get(ctx.budget.pretrain_epochs - 1) if root.is_dir() else None


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
    _corruption_idx: Any = None

    @property
    def device(self) -> str:
        return "cpu" if self.budget.device == "cpu" else "cuda"

    def train_set(self, folder: Path) -> Any:
        from cvr_solo.bench.evaluate import load_image_folder

        if folder not in self._train:
            self._train[folder] = load_image_folder(folder)
        return self._train[folder]

    def val_set(self) -> Any:
        """The validation images of probe and kNN (all unless the budget restricts them)."""
        from cvr_solo.bench.evaluate import load_validation
        from cvr_solo.data.balanced import balanced_indices

        if self._val is None:
            self._val = load_validation(self.data / "val", self.budget.val_subset)
            self._corruption_idx = balanced_indices(self._val.labels,
                                                    self.budget.corruption_subset, seed=0)
        return self._val

    def corruption_idx(self) -> Any:
        self.val_set()
        return self._corruption_idx


def finished(spec: RunSpec) -> RunResult | None:
    """The result of ``spec`` if it was evaluated before: it stands even with its
    checkpoints gone."""
    path = spec.run_dir / "result.json"
    return RunResult.load(path) if path.is_file() else None


def draw_subset(ctx: Context, seed: int, dst: Path) -> Path:
    """The class-balanced train subset of ``seed`` in ``dst`` (the train folder itself when
    the budget uses every image)."""
    train = ctx.data / "train"
    if ctx.budget.subset is None:
        return train
    n_cls = sum(p.is_dir() for p in train.iterdir())
    return balanced_subset(train, dst, ctx.budget.subset // n_cls, seed)


def pretrain(ctx: Context, spec: RunSpec) -> Path:
    """Runs (or resumes) ``cvr-solo pretrain`` of ``spec`` unless its last epoch's checkpoint
    exists; pretrain_seconds.json gets the wall and CPU seconds summed over every launch of
    the run (pretrain_attempts.json).

    Returns:
        The last epoch's checkpoint.

    Raises:
        RuntimeError: if the pretraining fails or ends without that checkpoint.
    """
    ckpt = _last_checkpoint(ctx, spec)
    if ckpt is not None:
        return ckpt
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    log = spec.run_dir / "pretrain_attempts.json"
    attempts = close_attempts(log, spec.run_dir / "pretrain")
    t0, cpu0 = time.time(), _children_cpu()
    attempts.append({"start": t0})
    log.write_text(json.dumps(attempts))
    try:
        run_cli("pretrain", ctx.config_dir, spec.config, hydra_args(spec.overrides),
                spec.run_dir / "pretrain.log", ctx.status)
    finally:
        attempts[-1].update(wall=time.time() - t0, cpu=_children_cpu() - cpu0)
        log.write_text(json.dumps(attempts))
    ckpt = _last_checkpoint(ctx, spec)
    if ckpt is None:
        raise RuntimeError(f"{spec.label} seed {spec.seed}: pretraining ended without its "
                           "last checkpoint")
    cpu = [a.get("cpu") for a in attempts]
    (spec.run_dir / "pretrain_seconds.json").write_text(json.dumps(
        {"wall": sum(a["wall"] for a in attempts),
         "cpu": None if None in cpu else sum(cpu), "attempts": len(attempts)}))
    return ckpt


def close_attempts(log: Path, run_root: Path) -> list[dict[str, Any]]:
    """The launches recorded in ``log``; one killed before it could record its end (kill -9,
    a lost machine) is given the wall time up to its last write under ``run_root`` (a lower
    bound) and no CPU time."""
    attempts = json.loads(log.read_text()) if log.is_file() else []
    for a in attempts:
        if "wall" not in a:
            writes = [f.stat().st_mtime for f in run_root.rglob("*") if f.is_file()]
            a.update(wall=max([a["start"], *writes]) - a["start"], cpu=None)
    return attempts


def evaluate(ctx: Context, spec: RunSpec, checkpoint: Path) -> RunResult:
    """kNN, probe and corruption suite of ``checkpoint``, with the run's cost and curves
    (its metrics.csv files) -> result.json.

    Returns:
        The run's :class:`~cvr_solo.bench.result.RunResult`.
    """
    from cvr_solo.bench.evaluate import evaluate_run

    t0, cpu0 = time.time(), time.process_time()
    scores = evaluate_run(checkpoint, ctx.train_set(spec.train_dir), ctx.val_set(),
                          ctx.corruption_idx(), ctx.budget.severities, ctx.device,
                          progress=ctx.progress, precision=ctx.budget.precision)
    cost, curves = cost_and_curves(spec.run_dir / "pretrain", spec.method)
    secs = spec.run_dir / "pretrain_seconds.json"
    pre = json.loads(secs.read_text()) if secs.is_file() else {}
    result = RunResult(
        label=spec.label, method=spec.method, method_kwargs=dict(spec.method_kwargs),
        seed=spec.seed, pretrain_checkpoint=str(checkpoint),
        pretrain_seconds=pre.get("wall"), pretrain_cpu_seconds=pre.get("cpu"),
        pretrain_attempts=pre.get("attempts", 1), evaluate_seconds=time.time() - t0,
        evaluate_cpu_seconds=time.process_time() - cpu0, cost=cost, curves=curves,
        **scores.to_dict())
    result.save(spec.run_dir / "result.json")
    return result


def reference_args(cfg: Any) -> dict[str, Any]:
    """What the reference rows need of a run's composed config: its backbone and the
    mean/std of its first crop (the runs of one benchmark share both)."""
    from omegaconf import OmegaConf

    backbone = OmegaConf.to_container(cfg.backbone, resolve=True)
    aug = cfg.augmentations[0]
    return {"backbone": {"name": backbone["name"], "kwargs": backbone.get("kwargs") or {}},
            "augmentations": [{"mean": list(aug.mean), "std": list(aug.std)}]}


def reference_key(ctx: Context, run_args: dict[str, Any]) -> dict[str, Any]:
    """What the reference rows depend on; reference.json is reused while it matches."""
    b, bb = ctx.budget, run_args["backbone"]
    return {"data": str(ctx.data.resolve()), "subset": b.subset, "val_subset": b.val_subset,
            "corruption_subset": b.corruption_subset, "severities": list(b.severities),
            "precision": b.precision, "backbone": bb["name"],
            "backbone_kwargs": bb.get("kwargs") or {}, "subset_draw": SUBSET_DRAW}


def cached_reference(ctx: Context, run_args: dict[str, Any]) -> dict[str, Scores] | None:
    """The rows of ``<out>/reference.json`` if its key is :func:`reference_key`, else None."""
    path = ctx.out / "reference.json"
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    if saved["key"] != reference_key(ctx, run_args):
        return None
    return {name: Scores.from_dict(row, source=f"{path} ({name})")
            for name, row in saved["rows"].items()}


def reference(ctx: Context, run_args: dict[str, Any]) -> dict[str, Scores]:
    """The reference rows (raw pixels; an untrained backbone of the runs' architecture and
    stem, from :func:`reference_args` of their composed config), computed once per data set
    and budget, before the first run, on the train subset drawn with seed 0.

    Returns:
        Row name -> :class:`~cvr_solo.bench.result.Scores`, also in reference.json.
    """
    from cvr_solo.bench.evaluate import reference_rows

    rows = cached_reference(ctx, run_args)
    if rows is not None:
        return rows
    folder = draw_subset(ctx, 0, ctx.out / "data" / "reference")
    aug, bb = run_args["augmentations"][0], run_args["backbone"]
    t0 = time.time()
    rows = reference_rows(ctx.train_set(folder), ctx.val_set(), ctx.corruption_idx(),
                          ctx.budget.severities, bb["name"], dict(bb.get("kwargs") or {}),
                          aug["mean"], aug["std"], ctx.device, ctx.progress,
                          ctx.budget.precision)
    (ctx.out / "reference.json").write_text(json.dumps(
        {"key": reference_key(ctx, run_args),
         "rows": {name: row.to_dict() for name, row in rows.items()},
         "seconds": time.time() - t0}, indent=1))
    return rows
