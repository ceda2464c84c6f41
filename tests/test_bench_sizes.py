"""benchmarks/bench_sizes.py runs against the current code (tiny sizes) and prints its table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_sizes.py"


def test_bench_sizes_prints_a_rate_per_stem_and_size(capsys):
    spec = importlib.util.spec_from_file_location("bench_sizes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--sizes", "8,4", "--batch", "2", "--steps", "1", "--fp32"])
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines()
            if line.startswith(("| small", "| ImageNet"))]
    assert [(r[0].strip(), int(r[1])) for r in rows] == [("small", 8), ("small", 4),
                                                         ("ImageNet", 8)]
    assert all(float(r[2]) > 0 for r in rows)
