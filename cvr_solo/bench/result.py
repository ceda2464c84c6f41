"""The benchmark's records, flat JSON: :class:`Scores` of one frozen backbone and
:class:`RunResult`, the one record of a run (runs/LABEL/seed-S/result.json) that every stage
reads and writes. A record of another version fails, naming its file."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

_T = TypeVar("_T", bound="Scores")


@dataclass(kw_only=True)
class Scores:
    """Top-1 accuracies (%) of one frozen backbone; None: not evaluated. ``clean``: the
    probe's, ``knn_acc1``: the kNN's, ``corruptions``: the probe's per corruption and
    severity on a subset whose clean images give ``clean_corruption_subset``;
    ``relative_drop`` = (clean_corruption_subset - mean_corruption) / clean_corruption_subset.
    """

    clean: float | None = None
    knn_acc1: float | None = None
    clean_corruption_subset: float | None = None
    corruptions: dict[str, list[float]] = field(default_factory=dict)
    severities: list[int] = field(default_factory=list)
    mean_corruption: float | None = None
    relative_drop: float | None = None
    corruption_images: int | None = None

    def mean_over_severities(self, corruption: str) -> float:
        """The probe's accuracy under ``corruption``, averaged over the severities.

        Example:
            >>> Scores(clean=90.0, corruptions={"blur": [80.0, 70.0]}).mean_over_severities("blur")
            75.0
        """
        vals = self.corruptions[corruption]
        return sum(vals) / len(vals) if vals else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[_T], data: dict[str, Any], source: str = "a result") -> _T:
        """The record in ``data``; ValueError naming ``source`` and the keys that are unknown
        or missing.

        Example:
            >>> Scores.from_dict({"clean": 84.2, "knn_acc1": None}).clean
            84.2
        """
        fields = dataclasses.fields(cls)
        unknown = sorted(set(data) - {f.name for f in fields})
        missing = [f.name for f in fields if f.name not in data
                   and f.default is f.default_factory is dataclasses.MISSING]
        if unknown or missing:
            raise ValueError(f"{source} is not a {cls.__name__} of this cvr-solo version "
                             f"(unknown keys {unknown}, missing keys {missing}): give another "
                             "--out, or delete it to evaluate again")
        return cls(**data)


@dataclass(kw_only=True)
class RunResult(Scores):
    """One run: what was trained, its pretraining's launches (``{"start", "wall", "cpu"}``
    each; a killed one lacks the last two until :meth:`close_attempts`), its :class:`Scores`
    once evaluated, its cost and its curves (metric -> values, ``<metric>_step`` -> steps)."""

    label: str
    method: str
    seed: int
    method_kwargs: dict[str, str] = field(default_factory=dict)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    pretrain_checkpoint: str | None = None
    evaluate_seconds: float | None = None
    evaluate_cpu_seconds: float | None = None
    cost: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, list] = field(default_factory=dict)

    @property
    def evaluated(self) -> bool:
        """Whether the scores are in: the run is finished."""
        return self.clean is not None

    @property
    def pretrain_seconds(self) -> float | None:
        """Wall seconds of the pretraining, summed over its launches."""
        return sum(a["wall"] for a in self.attempts) if self.attempts else None

    @property
    def pretrain_cpu_seconds(self) -> float | None:
        """CPU seconds of the pretraining's children; None if a launch's is unknown."""
        cpu = [a.get("cpu") for a in self.attempts]
        return None if not cpu or None in cpu else sum(cpu)

    def close_attempts(self, run_root: Path) -> None:
        """Gives a launch killed before it recorded its end (kill -9, a lost machine) the
        wall time up to its last write under ``run_root`` (a lower bound) and no CPU time."""
        for a in self.attempts:
            if "wall" not in a:
                writes = [f.stat().st_mtime for f in run_root.rglob("*") if f.is_file()]
                a.update(wall=max([a["start"], *writes]) - a["start"], cpu=None)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: Path) -> RunResult:
        return cls.from_dict(json.loads(path.read_text()), source=str(path))
