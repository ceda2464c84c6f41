"""metrics.csv of a run: one file per run folder, appended to on resume, stable columns.

Lightning's CSVLogger orders its columns by set iteration (a different order per run) and,
across versions, either rewrites metrics.csv from memory (2.1) or deletes it when the writer
starts and then appends (newer), so a resumed run loses or splits its history.
:class:`RunCSVLogger` writes through its own ``save``: columns ``step``, ``epoch``, then the
others sorted; rows are appended; a new column rewrites the file once with the wider header
(old rows keep their values, the new column is empty there). An existing metrics.csv in the
run folder (a resumed run) is continued, and every row says which launch wrote it: column
``attempt`` (1 for the first launch, 2 for the first resume, ...). A resumed run redoes the
steps after its last checkpoint, so a step can appear once per attempt; the row of the
highest attempt is the one the final weights went through.
"""

from __future__ import annotations

import csv
import os
import warnings
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.core.saving import save_hparams_to_yaml
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

__all__ = ["FIRST_COLUMNS", "RunCSVLogger", "column_order"]

#: The columns every metrics.csv starts with.
FIRST_COLUMNS = ("step", "epoch")


def column_order(keys: Any) -> list[str]:
    """``step``, ``epoch``, then the other keys sorted.

    Example:
        >>> column_order({"train_loss", "epoch", "val_acc1", "step"})
        ['step', 'epoch', 'train_loss', 'val_acc1']
    """
    keys = set(keys)
    return [k for k in FIRST_COLUMNS if k in keys] + sorted(keys - set(FIRST_COLUMNS))


class _RunWriter(ExperimentWriter):
    def __init__(self, log_dir: str) -> None:
        with warnings.catch_warnings():  # "... will be deleted": not by this writer
            warnings.filterwarnings("ignore", message="Experiment logs directory")
            super().__init__(log_dir=log_dir)
        self.metrics_keys = []
        self.attempt = 1
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = next(csv.reader(f), [])
                old = [r.get("attempt") for r in csv.DictReader(f, self.metrics_keys)]
            if old:  # rows written before this column existed count as attempt 1
                self.attempt = max((int(a) for a in old if a), default=1) + 1

    def _check_log_dir_exists(self) -> None:
        """Keep a resumed run's metrics.csv: Lightning >= 2.2 deletes it here (2.1 only warns)."""

    def save(self) -> None:
        if self.hparams:
            save_hparams_to_yaml(os.path.join(self.log_dir, self.NAME_HPARAMS_FILE),
                                 self.hparams)
        if not self.metrics:
            return
        self.metrics = [{**m, "attempt": self.attempt} for m in self.metrics]
        keys = column_order(set(self.metrics_keys).union(*self.metrics))
        exists = os.path.isfile(self.metrics_file_path)
        if exists and keys != self.metrics_keys:
            with open(self.metrics_file_path, newline="") as f:
                old = list(csv.DictReader(f))
            tmp = self.metrics_file_path + ".tmp"
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=keys, restval="")
                writer.writeheader()
                writer.writerows(old)
            os.replace(tmp, self.metrics_file_path)
        with open(self.metrics_file_path, "a" if exists else "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys, restval="")
            if not exists:
                writer.writeheader()
            writer.writerows(self.metrics)
        self.metrics_keys = keys
        self.metrics = []


class RunCSVLogger(CSVLogger):
    """Lightning's CSVLogger writing ``save_dir/name/version/metrics.csv`` as described in
    the module docstring.

    Example:
        >>> import tempfile
        >>> logger = RunCSVLogger(tempfile.mkdtemp(), name="c_byol", version="run-1")
        >>> logger.log_metrics({"train_loss": 1.0, "epoch": 0}, step=0)
        >>> logger.save()
        >>> open(logger.experiment.metrics_file_path).readline().strip()
        'step,epoch,attempt,train_loss'
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> _RunWriter:  # type: ignore[override]
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _RunWriter(log_dir=self.log_dir)
        return self._experiment
