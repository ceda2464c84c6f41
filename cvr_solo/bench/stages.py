"""The benchmark's stages: each knows whether it is done (its output on disk) and how to run.

- :class:`SubsetStage`: a seed's class-balanced train subset (symlinks).
- :class:`PretrainStage`: ``cvr-solo pretrain`` of one :class:`~cvr_solo.bench.plan.RunSpec`
  (solo-learn underneath; an interrupted run resumes from its last checkpoint).
- :class:`EvaluateStage`: kNN, probe and corruptions of its final checkpoint -> result.json.
- :class:`ReferenceStage`: the reference rows, once per data set and budget -> reference.json.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvr_solo.bench.child import _children_cpu, run_cli
from cvr_solo.bench.curves import cost_and_curves
from cvr_solo.bench.plan import Budget, RunSpec, hydra_args

__all__ = ["Context", "EvaluateStage", "PretrainStage", "ReferenceStage", "SubsetStage",
           "balanced_subset", "cost_and_curves"]

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


def _final_checkpoint(root: Path, epochs: int) -> Path | None:
    found = sorted(root.rglob(f"*-ep={epochs - 1}.ckpt"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


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
        from cvr_solo.bench.evaluate import ImageSet, load_image_folder
        from cvr_solo.data.balanced import balanced_indices

        if self._val is None:
            full = load_image_folder(self.data / "val")
            idx = balanced_indices(full.labels, self.budget.val_subset, seed=0)
            self._val = ImageSet(full.images[idx], full.labels[idx])
            self._corruption_idx = balanced_indices(self._val.labels,
                                                    self.budget.corruption_subset, seed=0)
        return self._val

    def corruption_idx(self) -> Any:
        self.val_set()
        return self._corruption_idx


@dataclass
class SubsetStage:
    """The class-balanced train subset of one seed."""

    ctx: Context
    seed: int
    dst: Path

    def done(self) -> bool:
        return self.ctx.budget.subset is None or (self.dst / ".subset.json").is_file()

    def run(self) -> None:
        n_cls = sum(p.is_dir() for p in (self.ctx.data / "train").iterdir())
        balanced_subset(self.ctx.data / "train", self.dst, self.ctx.budget.subset // n_cls,
                        self.seed)


@dataclass
class PretrainStage:
    """``cvr-solo pretrain`` of one run; done when its last epoch's checkpoint exists."""

    ctx: Context
    spec: RunSpec

    def checkpoint(self) -> Path | None:
        return _final_checkpoint(self.spec.run_dir / "pretrain", self.ctx.budget.pretrain_epochs)

    def done(self) -> bool:
        return self.checkpoint() is not None

    def run(self) -> None:
        """Runs (or resumes) the pretraining; pretrain_seconds.json gets the wall and CPU
        seconds summed over every launch of this run (pretrain_attempts.json)."""
        self.spec.run_dir.mkdir(parents=True, exist_ok=True)
        log = self.spec.run_dir / "pretrain_attempts.json"
        attempts = close_attempts(log, self.spec.run_dir / "pretrain")
        t0, cpu0 = time.time(), _children_cpu()
        attempts.append({"start": t0})
        log.write_text(json.dumps(attempts))
        try:
            run_cli("pretrain", self.ctx.config_dir, self.spec.config,
                    hydra_args(self.spec.overrides), self.spec.run_dir / "pretrain.log",
                    self.ctx.status)
        finally:
            attempts[-1].update(wall=time.time() - t0, cpu=_children_cpu() - cpu0)
            log.write_text(json.dumps(attempts))
        if not self.done():
            raise RuntimeError(f"{self.spec.label} seed {self.spec.seed}: pretraining ended "
                               "without its last checkpoint")
        cpu = [a.get("cpu") for a in attempts]
        (self.spec.run_dir / "pretrain_seconds.json").write_text(json.dumps(
            {"wall": sum(a["wall"] for a in attempts),
             "cpu": None if None in cpu else sum(cpu), "attempts": len(attempts)}))


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


@dataclass
class EvaluateStage:
    """kNN, probe and corruption suite of a finished pretraining -> result.json."""

    ctx: Context
    spec: RunSpec

    @property
    def result_file(self) -> Path:
        return self.spec.run_dir / "result.json"

    def done(self) -> bool:
        return self.result_file.is_file()

    def result(self) -> dict[str, Any]:
        return json.loads(self.result_file.read_text())

    def run(self) -> None:
        from cvr_solo.bench.evaluate import evaluate_run

        ckpt = PretrainStage(self.ctx, self.spec).checkpoint()
        if ckpt is None:
            raise RuntimeError(f"{self.spec.label} seed {self.spec.seed}: no final checkpoint")
        t0, cpu0 = time.time(), time.process_time()
        ev = evaluate_run(ckpt, self.ctx.train_set(self.spec.train_dir), self.ctx.val_set(),
                          self.ctx.corruption_idx(), self.ctx.budget.severities,
                          self.ctx.device, progress=self.ctx.progress,
                          precision=self.ctx.budget.precision)
        cost, curves = cost_and_curves(self.spec.run_dir / "pretrain", self.spec.method)
        secs = self.spec.run_dir / "pretrain_seconds.json"
        pre = json.loads(secs.read_text()) if secs.is_file() else {}
        if not isinstance(pre, dict):
            pre = {"wall": pre}
        result = {"label": self.spec.label, "method": self.spec.method,
                  "method_kwargs": dict(self.spec.method_kwargs), "seed": self.spec.seed,
                  "pretrain_checkpoint": str(ckpt),
                  "pretrain_seconds": pre.get("wall"), "pretrain_cpu_seconds": pre.get("cpu"),
                  "pretrain_attempts": pre.get("attempts", 1),
                  "evaluate_seconds": time.time() - t0,
                  "evaluate_cpu_seconds": time.process_time() - cpu0, **ev, "cost": cost,
                  "curves": curves}
        self.result_file.write_text(json.dumps(result, indent=1))


def reference_args(cfg: Any) -> dict[str, Any]:
    """What the reference rows need of a run's composed config: its backbone and the
    mean/std of its first crop (the runs of one benchmark share both)."""
    from omegaconf import OmegaConf

    backbone = OmegaConf.to_container(cfg.backbone, resolve=True)
    aug = cfg.augmentations[0]
    return {"backbone": {"name": backbone["name"], "kwargs": backbone.get("kwargs") or {}},
            "augmentations": [{"mean": list(aug.mean), "std": list(aug.std)}]}


@dataclass
class ReferenceStage:
    """The reference rows (raw pixels; an untrained backbone of the runs' architecture and
    stem), planned with the runs from their composed config and computed once per data set
    and budget, before the first run, on the train subset drawn with seed 0; reused while
    reference.json's key matches."""

    ctx: Context
    run_args: dict[str, Any]

    @property
    def path(self) -> Path:
        return self.ctx.out / "reference.json"

    def key(self) -> dict[str, Any]:
        b = self.ctx.budget
        bb = self.run_args["backbone"]
        return {"data": str(self.ctx.data.resolve()), "subset": b.subset,
                "val_subset": b.val_subset, "corruption_subset": b.corruption_subset,
                "severities": list(b.severities), "precision": b.precision,
                "backbone": bb["name"],
                "backbone_kwargs": bb.get("kwargs") or {}}

    def done(self) -> bool:
        return self.path.is_file() and json.loads(self.path.read_text())["key"] == self.key()

    def rows(self) -> dict[str, Any]:
        return json.loads(self.path.read_text())["rows"]

    def run(self) -> None:
        from cvr_solo.bench.evaluate import reference_rows

        folder = self.ctx.data / "train"
        if self.ctx.budget.subset is not None:
            folder = self.ctx.out / "data" / "reference"
            SubsetStage(self.ctx, 0, folder).run()
        aug = self.run_args["augmentations"][0]
        bb = self.run_args["backbone"]
        t0 = time.time()
        rows = reference_rows(self.ctx.train_set(folder), self.ctx.val_set(),
                              self.ctx.corruption_idx(), self.ctx.budget.severities,
                              bb["name"], dict(bb.get("kwargs") or {}), aug["mean"],
                              aug["std"], self.ctx.device, self.ctx.progress,
                              self.ctx.budget.precision)
        self.path.write_text(json.dumps({"key": self.key(), "rows": rows,
                                         "seconds": time.time() - t0}, indent=1))
