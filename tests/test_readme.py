"""The README's quick start runs, and its set-up commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
CI = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()


def test_quick_start_runs():
    block = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    out = namespace["out"]
    assert namespace["r1"].grad is not None and out.loss.isfinite()


def test_ci_runs_the_readme_commands():
    setup = re.search(r"## Set-up\n\n```bash\n(.*?)```", README, re.S).group(1)
    install, test = (line.split("#")[0].strip() for line in setup.strip().splitlines())
    assert install == 'pip install torch==2.14.1 torchvision==0.29.1 -e ".[dev]"'
    assert install.replace("pip install", "python -m pip install -q") in CI
    assert test in CI
