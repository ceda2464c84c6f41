"""Fails a CI stage whose integration tests did not all run; lists the tests a stage skipped.

    python .ci/check_integration.py STAGE JUNIT_XML
    python .ci/check_integration.py --skipped JUNIT_XML

Reads pytest's JUnit XML report of a stage that has solo-learn installed and exits 1 unless
integration tests were collected and every one of them executed (passed or failed: pytest's
own exit code judges those), apart from the skips in ALLOWED, each with the reason it must
give. A skip or xfail not listed there, or listed with another reason (say, Fashion-MNIST
missing instead of no GPU), fails the stage.

``--skipped`` prints, one per line, the pytest node id (or, for a module skipped whole, the
file) of every test outside tests/integration that the stage skipped: run on stage 1's report
(no solo-learn, no Lightning), these are the unit tests that need the stack, the ones stage 3
(another Lightning) runs beside the integration tests.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

#: test (file::function, without parameters) -> text its skip reason must contain.
ALLOWED = {
    "tests/integration/test_solo_methods.py::test_c_byol_with_dali_on_gpu":
        "needs a CUDA GPU and NVIDIA DALI",
    "tests/integration/test_sync_free_step.py::test_training_step_does_not_sync":
        "no CUDA device: the sync check needs a GPU",
    "tests/integration/test_solo_methods.py::"
    "test_solo_learns_own_main_pretrain_and_main_knn_take_c_byol_on_gpu":
        "needs a CUDA GPU (solo-learn's main_knn.py moves data to CUDA)",
}


def _test_id(case: ET.Element) -> str:
    path = case.get("classname", "").replace(".", "/") + ".py"
    return f"{path}::{case.get('name', '').split('[')[0]}"


def skipped_tests(junit_xml: str, root: Path = Path()) -> list[str]:
    """Node ids (``tests/test_x.py::test_y[p]``; a file for a module skipped at collection)
    of the tests outside tests/integration that the report ``junit_xml`` marks skipped."""
    out: list[str] = []
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        if case.find("skipped") is None:
            continue
        cls, name = case.get("classname", ""), case.get("name", "")
        parts = (cls or name).split(".")
        for i in range(len(parts), 0, -1):  # the module: the longest prefix that is a file
            path = "/".join(parts[:i]) + ".py"
            if (root / path).is_file():
                node = "::".join([path, *parts[i:], *([name] if cls else [])])
                break
        else:
            raise ValueError(f"{junit_xml}: no test file for {cls or name!r} under {root}")
        if not node.startswith("tests/integration/") and node not in out:
            out.append(node)
    return out


def check(stage: str, junit_xml: str) -> int:
    """Prints the stage's integration counts; returns the exit code (0 or 1)."""
    cases = [c for c in ET.parse(junit_xml).getroot().iter("testcase")
             if c.get("classname", "").startswith("tests.integration.")]
    outcome: Counter[str] = Counter()
    bad: list[str] = []
    allowed: list[str] = []
    for case in cases:
        skipped = case.find("skipped")
        if skipped is None:
            outcome["executed"] += 1
            continue
        test_id, reason = _test_id(case), skipped.get("message", "")
        kind = "xfail" if skipped.get("type") == "pytest.xfail" else "skip"
        outcome[kind] += 1
        want = ALLOWED.get(test_id)
        if want is not None and want in reason and kind == "skip":
            allowed.append(f"{test_id} ({reason})")
        else:
            bad.append(f"{kind}: {case.get('classname')}::{case.get('name')}: {reason}")
    print(f"CI {stage}: {len(cases)} integration tests collected, {outcome['executed']} "
          f"executed, {len(allowed)} skipped as allowed, {len(bad)} skipped not allowed")
    for line in allowed:
        print(f"CI {stage}:   allowed skip: {line}")
    if not cases or outcome["executed"] == 0:
        print(f"CI {stage}: FAILED: no integration test executed", file=sys.stderr)
        return 1
    if bad:
        print(f"CI {stage}: FAILED: integration tests must run on this stack; these did not "
              "(mark one allowed only in .ci/check_integration.py ALLOWED, with its reason):",
              file=sys.stderr)
        for line in bad:
            print(f"CI {stage}:   {line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        raise SystemExit(2)
    if sys.argv[1] == "--skipped":
        print("\n".join(skipped_tests(sys.argv[2])))
        raise SystemExit(0)
    raise SystemExit(check(sys.argv[1], sys.argv[2]))
