"""docs/development.md's layout names every module of the package, and only those; the
top level holds only ``__init__.py``, ``cli.py`` and packages; no import cycle at module level.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "cvr_solo"


def _layout_block() -> list[str]:
    text = (REPO / "docs" / "development.md").read_text()
    section = text.split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```\n", 2)[1].splitlines()


def _listed() -> set[str]:
    """The repository paths of the modules and packages the layout block names."""
    listed, package = set(), None
    for line in _layout_block():
        if line.startswith("cvr_solo/"):
            path = line.split()[0]
            listed.add(path)
            package = path if path.endswith("/") else None
        elif package and (m := re.match(r"^ {4}(\w+\.py)\s", line)):
            listed.add(package + m.group(1))
    return listed


def _tree() -> set[str]:
    paths = set()
    for f in PACKAGE.rglob("*.py"):
        rel = f.relative_to(REPO).as_posix()
        if "__pycache__" in rel:
            continue
        if f.name == "__init__.py" and f.parent != PACKAGE:
            paths.add(f.parent.relative_to(REPO).as_posix() + "/")
        else:
            paths.add(rel)
    return paths


def test_the_layout_names_every_module_and_nothing_else() -> None:
    listed, tree = _listed(), _tree()
    assert listed - tree == set(), "listed in docs/development.md but not in the tree"
    assert tree - listed == set(), "in the tree but missing from docs/development.md's layout"


def test_the_top_level_holds_only_the_cli_init_and_packages() -> None:
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert top == {"__init__.py", "cli.py"}


def _module_imports(path: Path) -> set[str]:
    deps = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cvr_solo"):
            deps.add(node.module)
        elif isinstance(node, ast.Import):
            deps |= {a.name for a in node.names if a.name.startswith("cvr_solo")}
    return deps


def _graph() -> dict[str, set[str]]:
    graph = {}
    for f in PACKAGE.rglob("*.py"):
        name = ".".join(f.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        graph[name] = _module_imports(f)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                found.append([*stack[stack.index(dep):], dep])
            elif dep in graph and dep not in state:
                visit(dep, [*stack, dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_cycle_at_module_level() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_sees_a_cycle() -> None:
    # the detector itself, on a made-up graph: a -> b -> c -> a
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_errors_imports_nothing_from_the_package() -> None:
    assert _module_imports(PACKAGE / "config" / "errors.py") == set()
