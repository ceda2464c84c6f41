"""Every docstring example in the package runs and prints what it says (the examples are
the first code a reader copies). A module that needs what is not installed (solo-learn,
Lightning: CI's first stage) is skipped, and CI's later stages run it."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import cvr_solo
from cvr_solo.solo_env import SoloLearnUnavailableError


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(cvr_solo.__path__, "cvr_solo."))


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except SoloLearnUnavailableError as err:
        pytest.skip(f"{name} needs solo-learn: {err}")
    except ModuleNotFoundError as err:
        if (err.name or "").startswith("cvr_solo"):
            raise
        pytest.skip(f"{name} needs {err.name}, not installed")
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(module, name, globs={**vars(module)}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
