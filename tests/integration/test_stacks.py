"""What differs between the two Lightning stacks CI runs: solo-learn's pins (lightning 2.1.2,
torchmetrics 0.11) build solo-learn's online kNN metric; the current release (lightning 2.6,
torchmetrics 1.x) cannot, and the launchers then switch ``knn_eval`` off with one line."""

from __future__ import annotations

import csv

import pytest
from omegaconf import OmegaConf

from cvr_solo.solo.env import online_knn_problem


def test_knn_problem_matches_the_torchmetrics_version():
    import torchmetrics

    from cvr_solo.solo.env import _version_tuple

    problem = online_knn_problem()
    if _version_tuple(torchmetrics.__version__) < (0, 12):
        assert problem is None
    else:
        assert problem is not None and "compute_on_step" in problem
        assert f"torchmetrics {torchmetrics.__version__}" in problem


@pytest.mark.parametrize("problem", [None, "the metric cannot be built (compute_on_step)"])
def test_switch_off_only_when_the_metric_cannot_be_built(monkeypatch, capsys, problem):
    import cvr_solo.solo.env
    from cvr_solo.solo.env import switch_off_unbuildable_knn

    monkeypatch.setattr(cvr_solo.solo.env, "online_knn_problem", lambda: problem)
    cfg = OmegaConf.create({"knn_eval": {"enabled": True, "k": 20}})
    line = switch_off_unbuildable_knn(cfg, "pretrain")
    err = capsys.readouterr().err
    if problem is None:
        assert line is None and cfg.knn_eval.enabled and err == ""
    else:
        assert not cfg.knn_eval.enabled
        assert err == line + "\n"
        assert line == ("cvr-solo pretrain: knn_eval.enabled=True switched off: the metric "
                        "cannot be built (compute_on_step); the run goes on without online kNN")
    off = OmegaConf.create({"knn_eval": {"enabled": False}})
    assert switch_off_unbuildable_knn(off, "pretrain") is None and not off.knn_eval.enabled


def test_pretrain_with_online_knn_on_this_stack(tiny_runs):
    """Pins: solo-learn's online kNN runs and logs val_knn_acc1. Current Lightning: the run
    completes without it, after one line saying why (no torchmetrics traceback)."""
    proc = tiny_runs("c_byol-same")  # helpers.TINY_RUNS: knn_eval on, k=5; shared
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list((proc.models / "c_byol").rglob("*.ckpt"))
    rows = [row for f in (proc.models / "c_byol").rglob("metrics.csv")
            for row in csv.DictReader(f.open())]
    knn = [float(r["val_knn_acc1"]) for r in rows if r.get("val_knn_acc1")]
    switched = [line for line in proc.stderr.splitlines() if "knn_eval.enabled=True" in line]
    if online_knn_problem() is None:
        assert knn and all(0 <= x <= 100 for x in knn)
        assert switched == []
    else:
        assert knn == []
        assert len(switched) == 1 and switched[0].startswith(
            "cvr-solo pretrain: knn_eval.enabled=True switched off: solo-learn's online kNN "
            "metric cannot be built with torchmetrics")
        assert "Traceback" not in proc.stderr
