"""The benchmark scripts run end to end against the current code (tiny sizes): a script that
the launchers' checks have overtaken fails here, not when someone wants its figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
