"""benchmarks/bench_sizes.py runs against the current code (tiny sizes) and prints its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_sizes_prints_a_rate_per_stem_and_size():
    out = subprocess.run([sys.executable, "benchmarks/bench_sizes.py", "--sizes", "16,8",
                          "--batch", "4", "--steps", "1", "--fp32"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in out.stdout.splitlines()
            if line.startswith("| small") or line.startswith("| ImageNet")]
    assert [(r[0].strip(), int(r[1])) for r in rows] == [("small", 16), ("small", 8),
                                                         ("ImageNet", 16)]
    assert all(float(r[2]) > 0 for r in rows)
