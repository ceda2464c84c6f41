"""The benchmark's records, typed: :class:`Scores` of one frozen backbone under the evaluation
protocol, and :class:`RunResult`, one pretraining run with its scores, cost and curves.

Both are written as flat JSON (result.json, reference.json) and read back with a check of
their keys, so that a result written by another version of the bench fails with its file's
name instead of a ``KeyError`` in the report. No solo-learn or torch needed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["RunResult", "Scores"]

_T = TypeVar("_T", bound="Scores")


@dataclass(kw_only=True)
class Scores:
    """Top-1 accuracies (%) of one frozen backbone (bench/evaluate.py).

    Attributes:
        clean: the linear probe on the clean validation images.
        knn_acc1: weighted kNN; None for a row without one (the raw-pixel probe).
        clean_corruption_subset: the probe on the clean images of the corruption subset.
        corruptions: corruption name -> the probe's accuracy at each of ``severities``.
        severities: the corruption severities evaluated.
        mean_corruption: mean over every (corruption, severity).
        relative_drop: (clean_corruption_subset - mean_corruption) / clean_corruption_subset.
        corruption_images: the size of the corruption subset.
    """

    clean: float
    knn_acc1: float | None
    clean_corruption_subset: float | None = None
    corruptions: dict[str, list[float]] = field(default_factory=dict)
    severities: list[int] = field(default_factory=list)
    mean_corruption: float | None = None
    relative_drop: float | None = None
    corruption_images: int | None = None

    def mean_over_severities(self, corruption: str) -> float:
        """The probe's accuracy under ``corruption``, averaged over the severities.

        Example:
            >>> Scores(clean=90.0, knn_acc1=None, corruptions={"blur": [80.0, 70.0]}
            ...        ).mean_over_severities("blur")
            75.0
        """
        vals = self.corruptions[corruption]
        return sum(vals) / len(vals) if vals else math.nan

    def to_dict(self) -> dict[str, Any]:
        """The record as a flat JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[_T], data: dict[str, Any], source: str = "a result") -> _T:
        """The record in ``data``; keys of no field are an error.

        Raises:
            ValueError: naming ``source`` and the keys that are missing or unknown.

        Example:
            >>> Scores.from_dict({"clean": 84.2, "knn_acc1": None}).clean
            84.2
        """
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING}
        unknown, missing = sorted(set(data) - names), sorted(required - set(data))
        if unknown or missing:
            raise ValueError(f"{source} is not a {cls.__name__} of this cvr-solo version "
                             f"(unknown keys {unknown}, missing keys {missing}): give "
                             "another --out, or delete it to evaluate again")
        return cls(**data)


@dataclass(kw_only=True)
class RunResult(Scores):
    """One run of the benchmark: what was trained, its :class:`Scores`, what it cost and
    its per-step curves (bench/curves.py).

    Attributes:
        label: the run's row name (``c_byol@b_view=other``).
        method: its key in :data:`cvr_solo.common.catalog.METHODS`.
        seed: the seed of the subset, the initialisation and the augmentation.
        method_kwargs: the CEB overrides given on the command line.
        pretrain_checkpoint: the checkpoint that was evaluated.
        pretrain_seconds / pretrain_cpu_seconds: wall and CPU (children) time of the
            pretraining, summed over its launches (CPU None if a launch was killed).
        pretrain_attempts: launches of the pretraining (more than 1: resumed).
        evaluate_seconds / evaluate_cpu_seconds: the evaluation's wall and CPU time.
        cost: step time, images/s and peak memory (medians over the logged steps).
        curves: metric -> values, and ``<metric>_step`` -> their steps.
    """

    label: str
    method: str
    seed: int
    method_kwargs: dict[str, str] = field(default_factory=dict)
    pretrain_checkpoint: str | None = None
    pretrain_seconds: float | None = None
    pretrain_cpu_seconds: float | None = None
    pretrain_attempts: int = 1
    evaluate_seconds: float | None = None
    evaluate_cpu_seconds: float | None = None
    cost: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, list] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        """Writes the record to ``path`` as JSON."""
        path.write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: Path) -> RunResult:
        """The record written by :meth:`save`.

        Raises:
            ValueError: if ``path`` holds another version's record.
        """
        return cls.from_dict(json.loads(path.read_text()), source=str(path))
