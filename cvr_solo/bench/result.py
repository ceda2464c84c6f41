"""The benchmark's record of a run, flat JSON (runs/LABEL/seed-S/result.json), that every
stage reads and writes: :class:`RunResult`, a frozen backbone's
:class:`~cvr_solo.evaluation.protocol.Scores` and what made them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvr_solo.evaluation.protocol import Scores


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
