"""benchmarks/bench_core.py runs against the current core (tiny sizes; no solo-learn)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_core_prints_sampler_and_loss_tables():
    proc = subprocess.run([sys.executable, "benchmarks/bench_core.py", "--batch", "32",
                           "--min-run-time", "0.01"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line for line in proc.stdout.splitlines()
            if line.startswith("| ")}
    assert {"c_simclr_loss (2B x 2B logits)", "c_byol_loss (incl. 2 vMF draws)"} <= set(rows)
