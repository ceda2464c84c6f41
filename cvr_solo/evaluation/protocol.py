"""How every frozen backbone is evaluated (:class:`Protocol`) and what it gives
(:class:`Scores`, flat JSON). A record of another version fails, naming its file. Pure: no
torch."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar


@dataclass(frozen=True)
class Protocol:
    """How every frozen backbone is evaluated (frozen.py, probe.py): weighted kNN, and the
    probe's L2 weight chosen among several, since one fixed weight favours some feature
    spectra (docs/baselines-small-budget-byol.md, "The probe")."""

    knn_k: int = 20
    knn_temperature: float = 0.07
    probe_weight_decays: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)
    probe_holdout: float = 0.2
    probe_max_iter: int = 200

    def describe(self) -> str:
        """One sentence for the report."""
        decays = ", ".join(f"{w:g}" for w in self.probe_weight_decays)
        return (f"kNN (k={self.knn_k}, cosine, T={self.knn_temperature:g}) and a linear probe "
                f"(L-BFGS logistic regression, {self.probe_max_iter} iterations, weight decay "
                f"chosen from {decays} on a class-balanced held-out "
                f"{self.probe_holdout:.0%} of the training images, then refit on all)")

    def key(self) -> dict[str, Any]:
        """The protocol as JSON reads it back (lists): what a saved result's key holds."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}


#: the protocol every benchmark and study uses
PROTOCOL = Protocol()

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
