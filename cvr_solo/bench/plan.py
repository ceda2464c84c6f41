"""The benchmark's shape, as data: budgets, the methods and seeds asked for, and one
:class:`RunSpec` per (method, seed) with its pretraining overrides (the evaluation protocol:
cvr_solo/evaluation/protocol.py). Pure: no disk, solo-learn or torch."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cvr_solo.common.catalog import CEB_METHODS, METHODS, lookup


@dataclasses.dataclass(frozen=True)
class Budget:
    """What every method gets. The subsets are class-balanced image counts (None: all): train
    images per seed, validation images of probe and kNN, and of the corruption suite (a fixed
    draw). ``small_stem``: the ResNet's 3x3 stride-1 stem without max-pool, else the ImageNet
    one (about 5x cheaper at 32 px), for every run and the untrained reference."""

    subset: int | None
    val_subset: int | None
    corruption_subset: int | None
    severities: tuple[int, ...]
    pretrain_epochs: int
    batch_size: int
    device: str
    precision: str
    num_workers: int
    log_every: int
    diag_every: int
    diag_images: int
    small_stem: bool = True


BUDGETS: dict[str, Budget] = {
    # a pipeline check on CPU: 3 seeds x 6 runs in about 30 min on 2 idle cores with native
    # bf16 (docs/benchmarks.md, "Smoke budget, 3 seeds"); fp32 on a CPU without it
    "smoke": Budget(subset=1000, val_subset=None, corruption_subset=500, severities=(3,),
                    pretrain_epochs=2, batch_size=64, device="cpu", precision="bf16-mixed",
                    num_workers=1, log_every=1, diag_every=4, diag_images=128),
    # the CPU ranking budget (issues #16, #23; sized in docs/cpu-budget-notes.md): ImageNet
    # stem at 32 px (about 5x cheaper per view), 10k images x 20 epochs = 1,560 steps
    "cpu": Budget(subset=10000, val_subset=None, corruption_subset=1000, severities=(3,),
                  pretrain_epochs=20, batch_size=128, device="cpu", precision="bf16-mixed",
                  num_workers=1, log_every=10, diag_every=52, diag_images=256,
                  small_stem=False),
    # one H100, about 20 minutes for five methods (docs/usage.md, "The gpu budget")
    "gpu": Budget(subset=None, val_subset=None, corruption_subset=2000,
                  severities=(1, 2, 3, 4, 5), pretrain_epochs=25, batch_size=256,
                  device="cuda", precision="bf16-mixed", num_workers=12, log_every=20,
                  diag_every=100, diag_images=512),
}
# for users with more time on one GPU
BUDGETS["full"] = dataclasses.replace(BUDGETS["gpu"], corruption_subset=None,
                                      pretrain_epochs=100, diag_every=200)


def describe_budget(name: str) -> str:
    """One line of what the budget ``name`` gives every method."""
    b = BUDGETS[name]
    train, val, corr = (n or "all" for n in (b.subset, b.val_subset, b.corruption_subset))
    return (f"{name}: {train} train images per seed, {b.pretrain_epochs} pretraining epochs "
            f"at batch {b.batch_size}, {'small' if b.small_stem else 'ImageNet'} stem, "
            f"{b.device} ({b.precision}); probe and kNN on {val} validation images; "
            f"corruptions on {corr} validation images at severities "
            f"{','.join(map(str, b.severities))}")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One pretraining run: its row name (``c_byol@b_view=other``), catalog key, CEB
    overrides (strings, typed by Hydra), seed, ``<out>/runs/<label>/seed-<seed>``, train
    subset, pretrain config file and ``cvr-solo pretrain`` overrides."""

    label: str
    method: str
    method_kwargs: Mapping[str, str]
    seed: int
    run_dir: Path
    train_dir: Path
    config: str
    overrides: Mapping[str, Any]


def parse_methods(spec: str) -> list[tuple[str, str, dict[str, str]]]:
    """'simclr,c_byol:beta=0.1+b_view=same' -> [(label, method, method_kwargs overrides)];
    ValueError for an unknown method, a malformed override, overrides on a baseline or a run
    given twice.

    Example:
        >>> parse_methods("byol,c_byol:b_view=other")[1]
        ('c_byol@b_view=other', 'c_byol', {'b_view': 'other'})
    """
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
        if kwargs and info.name not in CEB_METHODS:
            raise ValueError(f"--methods: {item!r}: only {'/'.join(CEB_METHODS)} take CEB "
                             "overrides")
        out.append((item.replace(":", "@").replace("+", "_"), info.name, kwargs))
    labels = [label for label, _, _ in out]
    if len(set(labels)) != len(labels) or not out:
        raise ValueError(f"--methods: give each run once, got {spec!r}")
    return out


def parse_seeds(spec: str) -> list[int]:
    """'5,6,7' -> [5, 6, 7]; ValueError for a non-integer, negative or repeated seed.

    Example:
        >>> parse_seeds("5, 6,7")
        [5, 6, 7]
    """
    try:
        seeds = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds: comma-separated integers, got {spec!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"--seeds: distinct non-negative integers, got {spec!r}")
    return seeds


def _value(value: Any) -> str:
    if isinstance(value, Raw):
        return value
    if value is None:
        return "null"
    if isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(_value, value)) + "]"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def hydra_args(overrides: Mapping[str, Any]) -> list[str]:
    """Hydra override strings: strings and paths quoted (they may hold '=', ',' or spaces),
    None as null, lists as [a,b]; a :class:`Raw` value is passed as written (Hydra types it).

    Example:
        >>> hydra_args({"seed": 5, "name": "a=b", "++x.y": None, "m.beta": Raw("0.5")})
        ['seed=5', "name='a=b'", '++x.y=null', 'm.beta=0.5']
    """
    return [f"{k}={_value(v)}" for k, v in overrides.items()]


class Raw(str):
    """An override value given on the command line, passed to Hydra unquoted."""


def plan_runs(methods: Sequence[tuple[str, str, Mapping[str, str]]], seeds: Sequence[int],
              budget: Budget, out: Path, data: Path, augmentations: str = "asymmetric",
              dali: bool = False, keep_checkpoints: bool = False) -> list[RunSpec]:
    """Every (method, seed) run, seed after seed so that an interrupted benchmark leaves
    whole seeds; ``augmentations`` is every method's config, or 'native' for each one's own."""
    accel = "cpu" if budget.device == "cpu" else "gpu"
    warmup = min(10, round(budget.pretrain_epochs / 10))  # a tenth of the run, at most 10
    specs = []
    for seed in seeds:
        train = data / "train" if budget.subset is None else out / "data" / f"seed-{seed}"
        for label, method, kwargs in methods:
            run_dir = out / "runs" / label / f"seed-{seed}"
            over: dict[str, Any] = {
                "name": f"{label}-seed{seed}", "seed": seed, "data.train_path": train,
                "data.val_path": None, "data.num_workers": budget.num_workers,
                "optimizer.batch_size": budget.batch_size, "accelerator": accel,
                "devices": Raw('"1"'), "precision": Raw(budget.precision),
                "max_epochs": budget.pretrain_epochs, "checkpoint.dir": run_dir / "pretrain",
                "auto_resume.enabled": True, "++auto_resume.max_hours": 1000000,
                "++log_every_n_steps": budget.log_every, "++enable_progress_bar": False,
                "++scheduler.warmup_epochs": warmup,
                "++diagnostics.enabled": True, "++diagnostics.every_n_steps": budget.diag_every,
                "++diagnostics.num_images": budget.diag_images,
                "++diagnostics.data_path": data / "val", "++diagnostics.seed": 0,
                "++backbone.kwargs.small_stem": budget.small_stem,
            }
            if keep_checkpoints:
                over["++checkpoint.keep_prev"] = True
            if dali:
                over["data.format"] = "dali"
            if augmentations != "native":
                over["augmentations"] = Raw(f"{augmentations}.yaml")
            over.update({f"method_kwargs.{k}": Raw(v) for k, v in kwargs.items()})
            specs.append(RunSpec(label, method, dict(kwargs), seed, run_dir, train,
                                 f"{METHODS[method].config}.yaml", over))
    return specs
