"""docs/usage.md's table of bad inputs holds, row by row, the cases the integration test runs
(tests/bad_inputs.py) with the messages it asserts."""

from __future__ import annotations

from pathlib import Path

from tests.bad_inputs import BAD_INPUTS

DOC = Path(__file__).resolve().parents[1] / "docs" / "usage.md"


def _table_rows() -> list[tuple[str, ...]]:
    lines = DOC.read_text().split("## Bad inputs and what they get", 1)[1].splitlines()
    rows = [tuple(c.strip() for c in line.strip().strip("|").split("|"))
            for line in lines if line.startswith("| ")]
    return rows[1:]  # the header


def test_the_docs_table_is_the_tested_cases():
    assert _table_rows() == [(c.command, c.what, c.message) for c in BAD_INPUTS]
