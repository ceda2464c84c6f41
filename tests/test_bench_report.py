"""The benchmark's report: per-seed rows, mean ± std, paired differences, reference rows
(hand-computed numbers from stub results; no solo-learn needed)."""

from __future__ import annotations

import csv
import json
import math
import re

import pytest

from cvr_solo.bench.report import (
    baseline_label,
    paired_differences,
    smooth,
    step_time_ratios,
    table,
    write_csv,
)
from cvr_solo.bench.result import RunResult
from cvr_solo.bench.run import write_outputs
from cvr_solo.bench.stages import balanced_subset, cost_and_curves
from cvr_solo.evaluation.corruptions import CORRUPTIONS
from cvr_solo.evaluation.protocol import Scores


def unpad(md: str) -> str:
    """report.md with its tables unpadded (``| a | b |``, rules ``|---|---|``), as the report
    wrote them before pandas' ``to_markdown``: the tests read cells, not column widths."""
    lines = []
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            rule = all(re.fullmatch(r":?-+:?", c) for c in cells)
            line = "|" + "|".join("---" if rule else f" {c} " for c in cells) + "|"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _result(label: str, method: str, seed: int, clean: float, knn: float,
            step_time: float) -> RunResult:
    per = {c: [clean - 10 - i] for i, c in enumerate(CORRUPTIONS)}
    mean_c = sum(sum(v) for v in per.values()) / len(CORRUPTIONS)
    ceb = method.startswith("c_")
    data = {"label": label, "method": method, "seed": seed, "clean": clean,
            "clean_corruption_subset": clean + 1, "corruptions": per, "severities": [3],
            "mean_corruption": mean_c, "relative_drop": (clean + 1 - mean_c) / (clean + 1),
            "knn_acc1": knn, "attempts": [{"start": 0.0, "wall": 100.0, "cpu": None}],
            "evaluate_seconds": 30.0,
            "cost": {"step_time": step_time, "images_per_sec": 64 / step_time,
                     "peak_rss_mib": 1000.0, "peak_gpu_mem_mib": None},
            "curves": {"step": [0, 1, 2], "loss": [3.0, 2.0, 1.5],
                       "residual_step": [0, 1, 2] if ceb else [],
                       "residual": [530.0, 528.0, 525.0] if ceb else [],
                       "residual_above_floor": [8.0, 6.0, 3.0] if ceb else [],
                       "rankme_feats_step": [1, 2], "rankme_feats": [20.0, 30.0 + seed],
                       "rankme_z_step": [1, 2], "rankme_z": [10.0, 12.0],
                       "alignment_step": [1, 2], "alignment": [0.5, 0.4],
                       "uniformity_step": [1, 2], "uniformity": [-1.0, -2.0],
                       "z_std_step": [1, 2], "z_std": [0.03, 0.05],
                       "z_std_ref_step": [1, 2], "z_std_ref": [0.0625, 0.0625]}}
    return RunResult.from_dict(data)


# probe (clean) and kNN per seed, chosen so the hand computations below are short:
#   simclr 70, 72, 74 (mean 72, sd 2); c_simclr 71, 75, 76 -> paired diffs 1, 3, 2
#   (mean 2, sd 1, 95% t-interval 2 -+ 4.302653 / sqrt(3) = [-0.48, 4.48])
RESULTS = [
    _result("simclr", "simclr", 5, 70.0, 60.0, 0.20),
    _result("c_simclr", "c_simclr", 5, 71.0, 60.0, 0.21),
    _result("byol", "byol", 5, 80.0, 65.0, 0.30),
    _result("c_byol@b_view=other", "c_byol", 5, 78.0, 66.0, 0.33),
    _result("simclr", "simclr", 6, 72.0, 62.0, 0.20),
    _result("c_simclr", "c_simclr", 6, 75.0, 61.0, 0.22),
    _result("byol", "byol", 6, 82.0, 65.0, 0.30),
    _result("c_byol@b_view=other", "c_byol", 6, 79.0, 66.0, 0.30),
    _result("simclr", "simclr", 7, 74.0, 64.0, 0.20),
    _result("c_simclr", "c_simclr", 7, 76.0, 66.0, 0.20),
]
_UNTRAINED = _result("r", "simclr", 0, 66.5, 55.5, 1.0)
REFERENCE = {"raw pixels (linear probe)": Scores(clean=84.25, knn_acc1=None),
             "random resnet18 (untrained)": Scores.from_dict(
                 {f: getattr(_UNTRAINED, f) for f in Scores.__dataclass_fields__})}


def test_step_time_ratio_is_against_the_baseline_of_the_same_seed():
    ratios = step_time_ratios(RESULTS)
    assert ratios == pytest.approx({("c_simclr", 5): 1.05, ("c_simclr", 6): 1.1,
                                    ("c_simclr", 7): 1.0, ("c_byol@b_view=other", 5): 1.1,
                                    ("c_byol@b_view=other", 6): 1.0})


def test_baseline_label_prefers_the_plain_baseline():
    assert baseline_label(RESULTS, "c_byol@b_view=other") == "byol"
    assert baseline_label(RESULTS, "byol") is None


def test_csv_has_one_row_per_method_and_seed(tmp_path):
    write_csv(RESULTS, tmp_path / "results.csv")
    got = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [(r["label"], int(r["seed"])) for r in got] == [
        (r.label, r.seed) for r in RESULTS]
    assert float(got[1]["step_time_ratio"]) == pytest.approx(1.05)
    assert got[0]["step_time_ratio"] == ""  # baselines have none
    assert float(got[3]["final_residual_above_floor"]) == 3.0
    assert got[0]["final_residual_above_floor"] == ""
    assert float(got[4]["rankme_feats"]) == 36.0  # the last logged step
    assert float(got[0]["uniformity"]) == -2.0
    flat = table(RESULTS)
    assert flat["mean_corruption_acc1"][2] == pytest.approx(RESULTS[2].mean_corruption)
    assert got[0]["pretrain_cpu_seconds"] == "" and float(got[0]["pretrain_seconds"]) == 100


def test_paired_differences_with_t_interval_by_hand():
    flat = table(RESULTS)
    assert flat[flat.label == "simclr"]["clean_acc1"].tolist() == [70.0, 72.0, 74.0]
    pairs = {p["label"]: p for p in paired_differences(RESULTS)}
    assert set(pairs) == {"c_simclr", "c_byol@b_view=other"}
    p = pairs["c_simclr"]
    assert p["baseline"] == "simclr" and p["seeds"] == [5, 6, 7]
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) * sd (1) / sqrt(3)
    assert p["clean_acc1"] == pytest.approx((2.0, 2.0 - half, 2.0 + half, 3))
    # kNN diffs 0, -1, 2: mean 1/3, sd sqrt(7/3)
    sd = math.sqrt(7 / 3)
    h = 4.302652729911275 * sd / math.sqrt(3)
    assert p["knn_acc1"] == pytest.approx((1 / 3, 1 / 3 - h, 1 / 3 + h, 3))
    # byol has seeds 5, 6 only: diffs -2, -3 -> mean -2.5, sd sqrt(0.5), t(0.975, 1)
    q = pairs["c_byol@b_view=other"]
    h = 12.706204736174696 * math.sqrt(0.5) / math.sqrt(2)
    assert q["seeds"] == [5, 6]
    assert q["clean_acc1"] == pytest.approx((-2.5, -2.5 - h, -2.5 + h, 2))


def test_report_numbers_reference_rows_and_plots(tmp_path):
    header = {"budget": "smoke", "pretrain_epochs": 2, "batch_size": 64, "seeds": "5,6,7",
              "subset": 1000, "val_subset": None, "corruption_subset": 500,
              "severities": [3], "small_stem": True, "augmentations": "asymmetric", "device": "cpu",
              "precision": "32", "machine": "x86_64, 2 CPUs",
              "command": "cvr-solo bench --data d --out o"}
    write_outputs(tmp_path, RESULTS, header, REFERENCE)
    md = unpad((tmp_path / "report.md").read_text())
    # simclr probe 70/72/74 -> 72.00 ± 2.00; kNN 60/62/64 -> 62.00 ± 2.00
    assert "| simclr | 3 | 72.00 ± 2.00 | 62.00 ± 2.00 |" in md
    # c_simclr probe 71/75/76: mean 74, sd sqrt(7) = 2.6458
    assert "| c_simclr | 3 | 74.00 ± 2.65 |" in md
    assert "| c_simclr - simclr | 3 | +2.00 [-0.48, +4.48] |" in md
    assert "95% Student-t" in md
    assert "| *reference: raw pixels (linear probe)* | - | 84.25 | n/a |" in md
    assert "| *reference: random resnet18 (untrained)* | - | 66.50 | 55.50 |" in md
    assert "on all validation images" in md and "subset of 500 of them at severities 3" in md
    # RankMe of the features at the last step: 35, 36, 37 -> 36.0 ± 1.0
    assert "| simclr | 36.0 ± 1.0 | 12.0 ± 0.0 | 0.400 ± 0.000 |" in md
    # cost: c_simclr step times 210, 220, 200 ms (64/t: 304.76, 290.91, 320.00 images/s,
    # mean 305.22, sd 14.55); ratios to simclr 1.05, 1.10, 1.00
    assert "| c_simclr | 305.2 ± 14.6 | 210.0 ± 10.0 | 1.050 ± 0.050 | 1000 ± 0 |" in md
    assert "`cvr-solo bench --data d --out o`" in md
    for name in ("accuracy.png", "corruptions.png", "training.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
        assert f"![{name[:-4]}]({name})" in md


def test_report_of_a_single_seed_shows_no_interval(tmp_path):
    one = [r for r in RESULTS if r.seed == 5]
    pairs = {p["label"]: p for p in paired_differences(one)}
    m, lo, hi, n = pairs["c_simclr"]["clean_acc1"]
    assert (m, n) == (1.0, 1) and math.isnan(lo) and math.isnan(hi)


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


def test_cost_medians_are_of_the_finite_values_the_middle_two_averaged(tmp_path):
    (tmp_path / "metrics.csv").write_text(
        "step,train_step_time,train_images_per_sec,train_neg_cos_sim_step\n"
        "1,0.4,inf,1\n2,0.7,,1\n3,0.5,80,1\n4,0.6,100,1\n")
    cost, _ = cost_and_curves(tmp_path, "byol")
    assert cost["step_time"] == pytest.approx(0.55) and cost["images_per_sec"] == 90.0
    assert cost["peak_rss_mib"] is None and cost["peak_gpu_mem_mib"] is None


def test_smooth_is_a_trailing_mean_that_skips_missing_values():
    assert smooth([1.0, 3.0, None, 5.0], 2) == [1.0, 2.0, 3.0, 5.0]
    assert smooth([None, 2.0], 3)[1] == 2.0
    assert math.isnan(smooth([None], 3)[0])
