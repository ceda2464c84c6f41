"""CI's rule for the stages with solo-learn (.ci/check_integration.py): every integration test
runs, bar the allow-listed GPU-only skip with its own reason."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "check_integration.py"
spec = importlib.util.spec_from_file_location("check_integration", SCRIPT)
check_integration = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_integration)

MOD = "tests.integration.test_solo_methods"
RAN = f'<testcase classname="{MOD}" name="test_pretrain_linear_and_knn_load[c_byol]" />'
UNIT = ('<testcase classname="tests.test_vmf" name="test_cuda"><skipped type="pytest.skip" '
        'message="needs a CUDA device" /></testcase>')
DALI = (f'<testcase classname="{MOD}" name="test_c_byol_with_dali_on_gpu"><skipped '
        'type="pytest.skip" message="needs a CUDA GPU and NVIDIA DALI (pip install ...)" />'
        '</testcase>')


def _xml(tmp_path: Path, *cases: str) -> str:
    path = tmp_path / "junit.xml"
    path.write_text('<?xml version="1.0"?><testsuites><testsuite name="pytest">'
                    + "".join(cases) + "</testsuite></testsuites>")
    return str(path)


def _skip(name: str, message: str, kind: str = "pytest.skip") -> str:
    return (f'<testcase classname="{MOD}" name="{name}"><skipped type="{kind}" '
            f'message="{message}" /></testcase>')


def test_all_ran_bar_the_allowed_gpu_skip(tmp_path, capsys):
    assert check_integration.check("pins", _xml(tmp_path, RAN, RAN, DALI, UNIT)) == 0
    out = capsys.readouterr().out
    assert "3 integration tests collected, 2 executed, 1 skipped as allowed, 0 " in out
    assert "allowed skip: tests/integration/test_solo_methods.py::test_c_byol_with_dali" in out


@pytest.mark.parametrize("case", [
    _skip("test_pretrain_linear_and_knn_load[simclr]", "solo-learn is not usable here"),
    _skip("test_c_byol_with_dali_on_gpu", "Fashion-MNIST is missing"),  # allowed test, other why
    _skip("test_auto_resume_continues_from_the_checkpoint", "flaky", "pytest.xfail"),
])
def test_any_other_skip_fails_the_stage(tmp_path, capsys, case):
    assert check_integration.check("pins", _xml(tmp_path, RAN, case)) == 1
    assert "skipped not allowed" in capsys.readouterr().out


def test_no_integration_test_fails_the_stage(tmp_path, capsys):
    assert check_integration.check("current", _xml(tmp_path, UNIT)) == 1
    assert check_integration.check("current", _xml(tmp_path, DALI)) == 1
    assert "no integration test executed" in capsys.readouterr().err


def test_the_gpu_sync_test_may_skip_only_for_want_of_a_gpu(tmp_path, capsys):
    mod = "tests.integration.test_sync_free_step"
    name = "test_training_step_does_not_sync[c_byol-bf16-mixed]"

    def sync(message: str) -> str:
        return (f'<testcase classname="{mod}" name="{name}"><skipped type="pytest.skip" '
                f'message="{message}" /></testcase>')

    no_gpu = sync("no CUDA device: the sync check needs a GPU")
    assert check_integration.check("pins", _xml(tmp_path, RAN, no_gpu, DALI)) == 0
    assert "2 skipped as allowed" in capsys.readouterr().out
    assert check_integration.check("pins", _xml(tmp_path, RAN, sync("flaky"))) == 1


def test_stage_three_gets_the_unit_tests_stage_one_skipped(tmp_path):
    """A module skipped whole is its file; a test is its node id, class and parameters kept;
    integration tests and tests that ran are left out (stage 3 runs tests/integration)."""
    for name in ("tests/test_lightning_only.py", "tests/test_vmf.py", "tests/test_cls.py",
                 f"{MOD.replace('.', '/')}.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    module = ('<testcase classname="" name="tests.test_lightning_only"><skipped '
              'type="pytest.skip" message="collection skipped" /></testcase>')
    in_class = ('<testcase classname="tests.test_cls.TestA" name="test_b[x-1]"><skipped '
                'type="pytest.skip" message="needs solo-learn" /></testcase>')
    ran = '<testcase classname="tests.test_vmf" name="test_ran" />'
    xml = _xml(tmp_path, module, UNIT, UNIT, in_class, ran, DALI, RAN)
    assert check_integration.skipped_tests(xml, tmp_path) == [
        "tests/test_lightning_only.py", "tests/test_vmf.py::test_cuda",
        "tests/test_cls.py::TestA::test_b[x-1]"]
    lost = ('<testcase classname="tests.gone" name="test_c"><skipped type="pytest.skip" '
            'message="m" /></testcase>')
    with pytest.raises(ValueError, match="no test file for 'tests.gone'"):
        check_integration.skipped_tests(_xml(tmp_path, lost), tmp_path)
