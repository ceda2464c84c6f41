"""Every docstring example in the package runs and prints what it says (the examples are
the first code a reader copies). A module that needs what is not installed (solo-learn,
Lightning: CI's first stage) is skipped, and CI's later stages run it."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

import cvr_solo
from cvr_solo.solo.env import SoloLearnUnavailableError


def _modules() -> list[str]:
    """Every module of the package, read off the files (importing a package to walk it
    would fail collection where solo-learn is missing)."""
    root = Path(cvr_solo.__file__).parent
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


#: an import of solo-learn or Lightning, at any indentation (inside a function too)
_HOST_IMPORT = re.compile(r"^\s*(from|import) (solo|lightning|pytorch_lightning)\b", re.M)


def _solo_usable() -> bool:
    from cvr_solo.solo.env import require_solo

    try:
        require_solo()
        importlib.import_module("lightning.pytorch")
    except (SoloLearnUnavailableError, ImportError):
        return False
    return True


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
    source = Path(module.__file__).read_text()
    if _HOST_IMPORT.search(source) and not _solo_usable():
        # function-level imports of solo-learn or Lightning, which the examples may reach
        pytest.skip(f"{name} imports solo-learn or Lightning inside its functions")
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(module, name, globs={**vars(module)}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
