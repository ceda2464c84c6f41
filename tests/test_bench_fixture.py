"""A finished bench --out folder in miniature (tests/fixtures/bench_report: 3 methods x 2 seeds
of a real `cpu` run, simclr/c_simclr a baseline + C-variant pair) gives the report.md and
results.csv in its expected/ folder, which the bench wrote before its refactor into one
pipeline (issue #25; the records converted once to the one-record format since).

results.csv is compared exactly; report.md exactly once its tables are unpadded (they are
pandas' ``to_markdown`` now, whose columns are padded with spaces and whose rules mark the
alignment: :func:`tests.test_bench_report.unpad`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cvr_solo.bench.plan import parse_methods, parse_seeds
from cvr_solo.bench.result import RunResult
from cvr_solo.bench.run import write_outputs
from cvr_solo.bench.stages import cost_and_curves
from cvr_solo.evaluation.protocol import Scores
from tests.test_bench_report import unpad

FIXTURE = Path(__file__).parent / "fixtures" / "bench_report"


def _write_report(src: Path, out: Path) -> None:
    header = json.loads((src / "bench.json").read_text())
    results = [RunResult.load(src / "runs" / label / f"seed-{seed}" / "result.json")
               for seed in parse_seeds(header["seeds"])
               for label, _, _ in parse_methods(header["methods"])]
    ref = json.loads((src / "reference.json").read_text())["rows"]
    write_outputs(out, results, header, {k: Scores.from_dict(v) for k, v in ref.items()})


def test_the_fixture_gives_the_expected_report_and_csv(tmp_path):
    _write_report(FIXTURE, tmp_path)
    expected = FIXTURE / "expected"
    assert (tmp_path / "results.csv").read_text() == (expected / "results.csv").read_text()
    got = (tmp_path / "report.md").read_text()
    assert got != unpad(got)  # pandas pads the columns
    assert unpad(got) == (expected / "report.md").read_text()
    for name in ("accuracy.png", "corruptions.png", "training.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


@pytest.mark.parametrize("label", ["simclr", "c_simclr", "byol"])
def test_the_fixtures_metrics_give_its_recorded_cost_and_curves(label, tmp_path):
    run = FIXTURE / "runs" / label / "seed-5"
    result = json.loads((run / "result.json").read_text())
    cost, curves = cost_and_curves(run / "pretrain", label)
    assert cost == result["cost"] and curves == result["curves"]
    json.dumps([cost, curves])
