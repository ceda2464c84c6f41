"""The benchmark scripts run end to end against the current code (tiny sizes): a script that
the launchers' checks have overtaken fails here, not when someone wants its figures.

They are a developer's tools, not a user's path, and their figures are taken on the stack the
README installs (solo-learn's pins): CI's stage 3, the current Lightning, deselects them
(pins_only)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.pins_only
ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def test_bench_step_times_each_pair_and_prints_the_ratio():
    out = _run("benchmarks/bench_step.py", "--device", "cpu", "--batch-sizes", "4",
               "--steps", "2", "--warmup", "1", "--pairs", "byol:c_byol", "--flops")
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in out.splitlines()
             if line.startswith("| 4 |")]
    steps = {c[1]: float(c[2]) for c in cells if len(c) == 4 and "/" not in c[1]}
    assert set(steps) == {"byol", "c_byol"} and min(steps.values()) > 0, out
    ratio = [line for line in out.splitlines() if line.startswith("| 4 | c_byol/byol |")]
    assert len(ratio) == 1 and float(ratio[0].split("|")[3]) > 0, out
    assert "c_byol/byol = " in out  # the FLOP ratio


def test_bench_views_prints_a_rate_per_method_and_variant(fm_data):
    out = _run("benchmarks/bench_views.py", "--data", str(fm_data), "--methods", "simclr",
               "--precisions", "32", "--workers", "0", "--batch-size", "20", "--steps", "4")
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in out.splitlines()
            if line.startswith("| simclr |")]
    assert len(rows) == 1 and rows[0][1:3] == ["32", "0"], out
    assert float(rows[0][3]) > 0 and float(rows[0][4]) > 0, out


def test_study_c_simclr_keeps_the_real_lr_schedule_and_tables_its_runs(fm_data, tmp_path):
    """full stops after --steps without squeezing the warm-up (the lr stays far below its
    peak); probe runs the projector alone; table reads both."""
    import json

    out = tmp_path / "study"
    common = ["--batch-size", "8", "--workers", "0", "--data", str(fm_data), "--out", str(out)]
    _run("benchmarks/study_c_simclr.py", "full", "--method", "c_simclr", "--steps", "2",
         "--log-every", "1", *common)
    _run("benchmarks/study_c_simclr.py", "probe", "--method", "c_simclr", "--steps", "3",
         "--every", "1", "--images", "16", *common)
    files = sorted(out.glob("*.jsonl"))
    # the run's own folder (metrics.csv) is under --out too, not in the working directory
    assert len(list((out / "runs" / "c_simclr").glob("run-*/metrics.csv"))) == 1
    assert [f.name for f in files] == ["full-c_simclr-b8-guard0.5.jsonl",
                                       "probe-c_simclr-b8-guard0.5.jsonl"]
    full = [json.loads(x) for x in files[0].read_text().splitlines()]
    assert full[0]["header"]["beta_guard"] == 0.5
    rows = full[1:]
    assert [r["step"] for r in rows] == [1, 2]
    peak = 0.4 * 8 / 256  # the shipped lr, scaled by solo-learn to batch 8
    # 100 images / batch 8 = 12 steps an epoch, 120 warm-up steps: step 2 is near the start
    assert rows[0]["lr"] < rows[1]["lr"] < peak / 20
    for r in rows:
        assert 0 < r["z_std"] < 1 and r["A"] >= 0 and r["D"] > 0 and 0 <= r["beta"] <= 1
        assert r["A_over_D"] == pytest.approx(r["A"] / r["D"], rel=1e-4)
    probe = [json.loads(x) for x in files[1].read_text().splitlines()][1:]
    assert [r["step"] for r in probe] == [0, 1, 2] and probe[0]["lr"] < probe[2]["lr"] < peak
    table = _run("benchmarks/study_c_simclr.py", "table", *map(str, files))
    assert "| full c_simclr b8 guard 0.5 | 2 |" in table
    assert "| probe c_simclr b8 guard 0.5 | 2 |" in table
