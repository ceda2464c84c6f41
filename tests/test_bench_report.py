"""The benchmark's report, method parsing and subsets (no solo-learn needed)."""

from __future__ import annotations

import csv
import json
import math

import pytest

from cvr_solo.bench.report import rows, step_time_ratios, write_csv
from cvr_solo.bench.run import balanced_subset, cost_and_curves, parse_methods, write_outputs
from cvr_solo.robustness import CORRUPTIONS


def _result(label: str, method: str, clean: float, step_time: float) -> dict:
    per = {c: [clean - 2 * s - i for s in range(1, 6)] for i, c in enumerate(CORRUPTIONS)}
    mean_c = sum(sum(v) for v in per.values()) / 35
    return {"label": label, "method": method, "clean": clean, "corruptions": per,
            "severities": [1, 2, 3, 4, 5], "mean_corruption": mean_c,
            "relative_drop": (clean - mean_c) / clean, "knn_acc1": clean - 1,
            "cost": {"step_time": step_time, "images_per_sec": 64 / step_time,
                     "peak_rss_mib": 1000.0, "peak_gpu_mem_mib": None},
            "curves": {"step": [1, 2, 3], "loss": [3.0, 2.0, 1.5],
                       "residual": [530.0, 528.0, 525.0] if method.startswith("c_") else [],
                       "residual_above_floor": [8.0, 6.0, 3.0]
                       if method.startswith("c_") else []}}


RESULTS = [_result("simclr", "simclr", 80.0, 0.20), _result("c_simclr", "c_simclr", 81.0, 0.21),
           _result("byol", "byol", 82.0, 0.30),
           _result("c_byol@beta=0.1", "c_byol", 83.0, 0.33),
           _result("barlow_twins", "barlow_twins", 79.0, 0.25)]


def test_step_time_ratio_is_against_the_baseline():
    ratios = step_time_ratios(RESULTS)
    assert ratios == pytest.approx({"c_simclr": 1.05, "c_byol@beta=0.1": 1.1})


def test_csv_rows(tmp_path):
    write_csv(RESULTS, tmp_path / "results.csv")
    got = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [r["label"] for r in got] == [r["label"] for r in RESULTS]
    assert float(got[1]["step_time_ratio"]) == pytest.approx(1.05)
    assert got[0]["step_time_ratio"] == ""  # baselines have none
    assert float(got[3]["final_residual_above_floor"]) == 3.0
    flat = rows(RESULTS)
    assert flat[2]["mean_corruption_acc1"] == pytest.approx(RESULTS[2]["mean_corruption"])


def test_report_and_plots(tmp_path):
    header = {"budget": "smoke", "pretrain_epochs": 3, "linear_epochs": 3, "batch_size": 64,
              "seed": 5, "subset": 1000, "val_subset": 500, "augmentations": "asymmetric",
              "device": "cpu", "precision": "32", "machine": "x86_64, 2 CPUs",
              "command": "cvr-solo bench --data d --out o"}
    write_outputs(tmp_path, RESULTS, header)
    md = (tmp_path / "report.md").read_text()
    assert "| c_byol@beta=0.1 | 83.00 |" in md
    assert "| c_simclr | 304.8 | 210.0 | 1.050 | 1000 |" in md  # the cost table
    assert "| byol | 213.3 | 300.0 | n/a | 1000 |" in md
    assert "`cvr-solo bench --data d --out o`" in md
    for name in ("accuracy.png", "corruptions.png", "training.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
        assert f"![{name[:-4]}]({name})" in md


def test_parse_methods():
    assert parse_methods("simclr,c_byol:beta=0.1+b_view=same,barlow") == [
        ("simclr", "simclr", {}),
        ("c_byol@beta=0.1_b_view=same", "c_byol", {"beta": "0.1", "b_view": "same"}),
        ("barlow", "barlow_twins", {})]
    with pytest.raises(ValueError, match="unknown method 'moco'"):
        parse_methods("simclr,moco")
    with pytest.raises(ValueError, match="only c_simclr/c_byol take CEB overrides"):
        parse_methods("byol:beta=1")
    with pytest.raises(ValueError, match="give each run once"):
        parse_methods("byol,byol")
    with pytest.raises(ValueError, match="overrides are key=value"):
        parse_methods("c_byol:beta")


def test_balanced_subset(tmp_path):
    src = tmp_path / "src"
    for c in range(3):
        (src / f"c{c}").mkdir(parents=True)
        for i in range(10):
            (src / f"c{c}" / f"{i}.png").write_bytes(b"x")
    dst = balanced_subset(src, tmp_path / "dst", 4, seed=1)
    files = sorted(dst.rglob("*.png"))
    assert len(files) == 12 and all(f.is_symlink() for f in files)
    assert sorted(p.name for p in dst.iterdir() if p.is_dir()) == ["c0", "c1", "c2"]
    again = sorted(balanced_subset(src, tmp_path / "dst", 4, seed=1).rglob("*.png"))
    assert again == files
    other = sorted(p.name for p in balanced_subset(src, tmp_path / "dst", 4, seed=2)
                   .rglob("*.png"))
    assert len(other) == 12 and other != [f.name for f in files]
    assert balanced_subset(src, tmp_path / "x", None, seed=1) == src
    with pytest.raises(ValueError, match="fewer than the 11 per class"):
        balanced_subset(src, tmp_path / "y", 11, seed=1)


def test_cost_and_curves_merge_launches(tmp_path):
    a, b = tmp_path / "run-a", tmp_path / "run-b"
    a.mkdir()
    b.mkdir()
    (a / "metrics.csv").write_text(
        "step,train_step_time,train_images_per_sec,peak_rss_mib,train_neg_cos_sim_step,"
        "train_residual_step,train_residual_above_floor_step\n"
        "1,0.5,100,900,3.0,530,8\n2,0.7,90,950,2.5,529,7\n")
    (b / "metrics.csv").write_text(
        "step,train_step_time,train_images_per_sec,peak_rss_mib,train_neg_cos_sim_step,"
        "train_residual_step,train_residual_above_floor_step\n"
        "2,0.6,95,1000,2.4,528,6\n3,0.4,110,990,2.0,527,5\n")
    import os
    import time

    os.utime(a / "metrics.csv", (time.time() - 10, time.time() - 10))
    cost, curves = cost_and_curves(tmp_path, "c_byol")
    # one value per step, the resumed launch's at step 2: median of (0.5, 0.6, 0.4)
    assert cost["step_time"] == pytest.approx(0.5)
    assert cost["images_per_sec"] == pytest.approx(100.0)  # of (100, 95, 110)
    assert cost["peak_rss_mib"] == 1000  # the peak over both launches
    assert curves["step"] == [1, 2, 3]
    assert curves["loss"] == [3.0, 2.4, 2.0]  # the resumed launch wins at step 2
    assert curves["residual_above_floor"] == [8.0, 6.0, 5.0]
    json.dumps(curves)


def test_median_is_the_middle_value_or_the_mean_of_the_two_middle_ones():
    from cvr_solo.bench.run import _median

    assert _median([0.7, 0.5, 0.6]) == 0.6
    assert _median([0.4, 0.7, 0.5, 0.6]) == pytest.approx(0.55)
    assert _median([2.0, 1.0]) == pytest.approx(1.5)
    assert _median([3.0, float("nan"), 1.0, float("inf")]) == pytest.approx(2.0)
    assert _median([float("nan")]) is None and _median([]) is None


def test_moving_average_skips_missing_values():
    from cvr_solo.bench.report import _moving_average

    assert _moving_average([1.0, 3.0, None, 5.0], 2) == [1.0, 2.0, 3.0, 5.0]
    assert _moving_average([None, 2.0], 3)[1] == 2.0
    assert math.isnan(_moving_average([None], 3)[0])
