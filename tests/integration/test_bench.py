"""The benchmark inside solo-learn: the diagnostics callback in a C-SimCLR pretraining, and a tiny
multi-seed ``cvr-solo bench`` with its relaunch skipping finished (method, seed) runs."""

from __future__ import annotations

import csv
import json
import math

import pytest

from tests.test_bench_report import unpad

from .helpers import PRETRAIN, run_cli, small_run_overrides


def test_bench_diagnostics_callback_in_a_pretraining(tmp_path, fm_data, tiny_runs):
    run = tiny_runs("c_simclr")  # 5 steps, diagnostics every 2nd of 24 training images; shared
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [r for f in run.models.rglob("metrics.csv") for r in csv.DictReader(f.open())
            if r.get("diag_rankme_feats")]
    assert [int(r["step"]) for r in rows] == [1, 2, 4, 5]  # first, every 2nd, last
    for r in rows:
        assert 1 <= float(r["diag_rankme_feats"]) <= 24  # at most the batch size
        assert 1 <= float(r["diag_rankme_z"]) <= 24
        assert 0 <= float(r["diag_alignment"]) <= 4
        assert -4 <= float(r["diag_uniformity"]) <= 0
        assert 0 <= float(r["diag_z_std"]) <= 1
        assert float(r["diag_z_std_ref"]) == 1 / math.sqrt(256)  # simclr.yaml's proj_output_dim
    over = small_run_overrides(fm_data, tmp_path / "models")
    bad = run_cli("pretrain", "--config-path", str(PRETRAIN), "--config-name", "simclr.yaml",
                  *over, "diagnostics.enabled=True", "diagnostics.every_n_steps=0")
    assert bad.returncode == 2
    assert "diagnostics.every_n_steps must be an integer >= 1, got 0" in bad.stderr


@pytest.mark.pins_only  # the frontier test below runs the bench end to end on every stack
def test_bench_two_methods_two_seeds_and_relaunch_skips(tmp_path, fm_data):
    out = tmp_path / "bench"
    args = ["bench", "--data", str(fm_data), "--methods", "byol,c_byol:beta=0.5",
            "--seeds", "1,2", "--subset", "80", "--val-subset", "50",
            "--corruption-subset", "20", "--severities", "1,3", "--pretrain-epochs", "1",
            "--batch-size", "20", "--diag-every", "2", "--diag-images", "16",
            # the ImageNet stem (the cpu budget's): a sixteenth of the small stem's compute
            # at 32 px. The small stem's plan and reference are test_bench_plan's, its
            # training the tiny runs' (the shipped configs)
            "--no-small-stem", "--out", str(out), "--no-progress"]
    first = run_cli(*args, timeout=1800)  # four pretrainings of 4 steps
    assert first.returncode == 0, first.stderr[-3000:]
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["label"], r["seed"]) for r in rows] == [
        ("byol", "1"), ("c_byol@beta=0.5", "1"), ("byol", "2"), ("c_byol@beta=0.5", "2")]
    for r in rows:
        for key in ("clean_acc1", "mean_corruption_acc1", "knn_acc1", "images_per_sec",
                    "step_time_ms", "peak_mem_mib", "final_loss", "rankme_feats",
                    "rankme_z", "alignment", "uniformity", "z_std", "pretrain_cpu_seconds"):
            assert math.isfinite(float(r[key])), (r["label"], key)
    assert rows[1]["final_residual_above_floor"] != "" and rows[0]["step_time_ratio"] == ""
    res = json.loads((out / "runs" / "c_byol@beta=0.5" / "seed-2" / "result.json").read_text())
    assert res["method_kwargs"] == {"beta": "0.5"} and res["seed"] == 2
    assert res["corruption_images"] == 20 and res["severities"] == [1, 3]
    args_json = json.loads(next((out / "runs" / "c_byol@beta=0.5" / "seed-2" / "pretrain")
                                .rglob("args.json")).read_text())
    assert args_json["method_kwargs"]["beta"] == 0.5 and args_json["seed"] == 2
    # the seed draws the subset
    s1 = sorted(p.name for p in (out / "data" / "seed-1").rglob("*.png"))
    s2 = sorted(p.name for p in (out / "data" / "seed-2").rglob("*.png"))
    assert len(s1) == len(s2) == 80 and s1 != s2
    ref = json.loads((out / "reference.json").read_text())["rows"]
    assert set(ref) == {"raw pixels (linear probe)", "random resnet18 (untrained)"}
    md = unpad((out / "report.md").read_text())
    assert "| c_byol@beta=0.5 - byol | 2 |" in md and "*reference: raw pixels" in md
    for png in ("accuracy.png", "corruptions.png", "training.png"):
        assert (out / png).stat().st_size > 10_000

    # a relaunch (here with one of the seeds) skips every finished run, and redoes a lost
    # evaluation from its finished checkpoint: nothing is retrained
    logs = {p: p.stat().st_mtime for p in out.rglob("*.log")}
    ref_time = (out / "reference.json").stat().st_mtime
    (out / "runs" / "byol" / "seed-1" / "result.json").unlink()
    again = run_cli(*[("1" if a == "1,2" else a) for a in args])
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime for p in out.rglob("*.log")} == logs
    assert (out / "reference.json").stat().st_mtime == ref_time
    redone, kept = list(csv.DictReader((out / "results.csv").open()))
    assert kept == rows[1]  # read back as it was
    assert (redone["label"], redone["seed"]) == ("byol", "1")
    assert math.isfinite(float(redone["clean_acc1"]))

    # finished runs are never reused under another budget
    other = run_cli(*[("2" if a == "1" and args[i - 1] == "--pretrain-epochs" else a)
                      for i, a in enumerate(args)])
    assert other.returncode == 2
    assert "holds runs made with other settings (pretrain_epochs: 1 -> 2)" in other.stderr


def test_frontier_of_an_imagenet_stem_bench_with_every_checkpoint_kept(tmp_path, fm_data):
    """The cpu budget's knobs end to end (tiny): the ImageNet stem reaches the runs, the
    checkpoints and the untrained reference; --keep-checkpoints keeps every epoch, and
    benchmarks/frontier.py evaluates each against the untrained backbone."""
    import subprocess
    import sys

    from .helpers import REPO

    out = tmp_path / "bench"
    res = run_cli("bench", "--data", str(fm_data), "--budget", "cpu", "--methods", "simclr",
                  "--subset", "80", "--val-subset", "50", "--corruption-subset", "20",
                  "--pretrain-epochs", "2", "--batch-size", "20", "--diag-every", "2",
                  "--diag-images", "16", "--keep-checkpoints", "--out", str(out),
                  "--no-progress", timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    ckpts = sorted(p.name[-9:] for p in (out / "runs" / "simclr").rglob("*.ckpt"))
    assert ckpts == ["ep=0.ckpt", "ep=1.ckpt"]
    args_json = json.loads(next((out / "runs").rglob("args.json")).read_text())
    assert args_json["backbone"]["kwargs"]["small_stem"] is False
    assert args_json["scheduler"]["warmup_epochs"] == 0  # a tenth of 2 epochs, rounded
    ref = json.loads((out / "reference.json").read_text())
    assert ref["key"]["backbone_kwargs"] == {"small_stem": False}
    assert "ResNet ImageNet (7x7/2 + pool) stem" in (out / "report.md").read_text()
    front = subprocess.run([sys.executable, str(REPO / "benchmarks" / "frontier.py"), str(out),
                            "--val-subset", "50", "--jsonl", str(tmp_path / "f.jsonl")],
                           capture_output=True, text=True, timeout=600)
    assert front.returncode == 0, front.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["steps"]) for r in rows] == [(1, 4), (2, 8)]
    untrained = next(v for k, v in ref["rows"].items() if "untrained" in k)
    last = json.loads((out / "runs" / "simclr" / "seed-5" / "result.json").read_text())
    assert rows[-1]["knn"] == last["knn_acc1"]  # the same evaluation as the bench's
    assert rows[-1]["knn_gain"] == rows[-1]["knn"] - untrained["knn_acc1"]
    assert rows[-1]["budget"] == "cpu" and rows[-1]["epochs"] == 2
    assert (f"| simclr | 5 | {rows[0]['knn_gain']:+.1f} / {rows[0]['probe_gain']:+.1f} | "
            f"{rows[1]['knn_gain']:+.1f} / {rows[1]['probe_gain']:+.1f} |") in front.stdout
