"""The progress bar's items, the closing summary and the metrics.csv writer (Lightning only,
no solo-learn)."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("lightning", reason="Lightning comes with solo-learn (cvr-solo "
                    "install-solo); the progress bar and CSV writer build on it")

from cvr_solo.common.catalog import CEB_METHODS, METHODS
from cvr_solo.launch.csv_log import RunCSVLogger
from cvr_solo.launch.progress import MethodProgressBar, bar_items, run_summary


@pytest.mark.parametrize("method", list(METHODS))
def test_bar_items_follow_the_catalog(method):
    items = dict(bar_items(method))
    loss_key = METHODS[method].loss_key.removesuffix("_step")
    assert loss_key in items and items["val_acc1"] == "val_acc1"
    if method in CEB_METHODS:
        assert items[f"train_{method}_loss"] == "loss"
        assert items[loss_key] == {"c_simclr": "contrastive", "c_mocov3": "contrastive",
                                   "c_byol": "regression", "c_simsiam": "regression"}[method]
        assert items["train_residual_above_floor"] == "R-floor"
        assert items["train_beta"] == "beta"
    else:
        assert items[loss_key] == "loss" and "train_beta" not in items


def test_bar_shows_step_values_and_no_version():
    bar = MethodProgressBar("c_simclr")
    trainer = SimpleNamespace(callback_metrics={
        "train_c_simclr_loss_step": torch.tensor(190.25), "train_c_simclr_loss_epoch": 1.0,
        "train_contrastive_step": torch.tensor(4.5), "train_residual_above_floor_step":
        torch.tensor(-0.75), "train_beta_step": torch.tensor(1.0), "train_kappa_e_step": 1024.0,
        "val_acc1": torch.tensor(12.5), "train_lipschitz_lower_bound_step": 3.0})
    shown = {"loss": "190.2", "contrastive": "4.5", "R-floor": "-0.75", "beta": "1"}
    assert bar.get_metrics(trainer, None) == shown  # no validation of this run yet
    _end_validation(bar, sanity_checking=True)  # the sanity check's accuracy is no result
    assert bar.get_metrics(trainer, None) == shown
    _end_validation(bar, sanity_checking=False)
    assert bar.get_metrics(trainer, None) == {**shown, "val_acc1": "12.5"}
    lin = MethodProgressBar(None)
    assert lin.get_metrics(SimpleNamespace(callback_metrics={"train_loss_step": 2.0,
                                                             "train_acc1_step": 50.0}),
                           None) == {"loss": "2", "acc1": "50"}


def _end_validation(bar: MethodProgressBar, sanity_checking: bool) -> None:
    """Lightning's on_validation_end of ``bar``, outside a fit (no train bar to update)."""
    bar._val_progress_bar = SimpleNamespace(close=lambda: None)
    bar.on_validation_end(SimpleNamespace(sanity_checking=sanity_checking,
                                          state=SimpleNamespace(fn="validate")), None)


class _EpochEndTrainer:
    """A trainer whose metrics must not be read: at a training epoch's end they are still to
    be reduced across ranks, and only rank 0 has a bar."""

    @property
    def callback_metrics(self):
        raise AssertionError("the bar read the metrics at the end of a training epoch")


def test_bar_reads_no_metric_at_the_end_of_a_training_epoch():
    bar = MethodProgressBar("c_byol")
    shown: list[dict] = []
    bar._train_progress_bar = SimpleNamespace(disable=False, set_postfix=shown.append,
                                              close=lambda: None)
    bar._shown = {"loss": "3"}  # read on the last logging step
    bar.on_train_epoch_end(_EpochEndTrainer(), None)
    assert shown == [{"loss": "3"}]  # the values last read, kept
    assert bar._read  # and it reads again on the next logging step


def test_summary_without_checkpoint_or_validation():
    t = SimpleNamespace(max_epochs=1, current_epoch=1, global_step=4, callback_metrics={})
    text = run_summary("linear", t, None, None, None)
    assert text.splitlines() == ["cvr-solo linear: done, epoch 1/1, 4 steps",
                                 "  last checkpoint: none (checkpoint.enabled=False)"]


def _read(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_metrics_csv_column_order_new_columns_and_resume(tmp_path):
    logger = RunCSVLogger(tmp_path, name="c_byol", version="run-1")
    logger.log_metrics({"train_z": 1.0, "epoch": 0, "train_a": 2.0}, step=0)
    logger.save()
    path = tmp_path / "c_byol" / "run-1" / "metrics.csv"
    assert _read(path) == [["step", "epoch", "attempt", "train_a", "train_z"],
                           ["0", "0", "1", "2.0", "1.0"]]
    logger.log_metrics({"val_acc1": 10.0, "epoch": 0}, step=4)
    logger.save()  # a new column: the header widens, the old row keeps its values
    assert _read(path) == [["step", "epoch", "attempt", "train_a", "train_z", "val_acc1"],
                           ["0", "0", "1", "2.0", "1.0", ""], ["4", "0", "1", "", "", "10.0"]]
    # a resumed run: a new logger on the same folder appends instead of starting over, and
    # its rows say they are the second attempt (step 4 redone after the last checkpoint)
    again = RunCSVLogger(tmp_path, name="c_byol", version="run-1")
    again.log_metrics({"train_a": 3.0, "epoch": 0}, step=4)
    again.save()
    rows = _read(path)
    assert rows[0] == ["step", "epoch", "attempt", "train_a", "train_z", "val_acc1"]
    assert rows[1:] == [["0", "0", "1", "2.0", "1.0", ""], ["4", "0", "1", "", "", "10.0"],
                        ["4", "0", "2", "3.0", "", ""]]
    third = RunCSVLogger(tmp_path, name="c_byol", version="run-1")
    third.log_metrics({"train_a": 4.0, "epoch": 1}, step=5)
    third.save()
    assert _read(path)[-1] == ["5", "1", "3", "4.0", "", ""]


def test_a_metrics_csv_from_before_the_attempt_column_continues_as_attempt_2(tmp_path):
    path = tmp_path / "m" / "v" / "metrics.csv"
    path.parent.mkdir(parents=True)
    path.write_text("step,epoch,train_a\n0,0,1.0\n")
    logger = RunCSVLogger(tmp_path, name="m", version="v")
    logger.log_metrics({"train_a": 2.0, "epoch": 0}, step=1)
    logger.save()
    assert _read(path) == [["step", "epoch", "attempt", "train_a"], ["0", "0", "", "1.0"],
                           ["1", "0", "2", "2.0"]]


def test_summary_says_when_max_steps_cut_the_run():
    t = SimpleNamespace(max_epochs=200, current_epoch=1, global_step=5, max_steps=5,
                        callback_metrics={"val_acc1": torch.tensor(9.0)})
    first, *_, last = run_summary("pretrain", t, "r", "r/x.ckpt", "r/metrics.csv").splitlines()
    assert first == "cvr-solo pretrain: done, epoch 1/200, 5 steps (max_steps=5 reached)"
    assert last == "  online linear val acc@1: 9.00 %"
