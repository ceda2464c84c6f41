"""The README's first run on a CPU, as written: its three commands in a fresh folder, through
the installed ``cvr-solo`` script, end with a pretraining checkpoint and a linear probe."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import REPO


def _quick_block() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## A first run on a CPU", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


# the README installs solo-learn's pins (CI's stage 2), where this runs as written; on the
# current Lightning (stage 3) its pretrain and linear paths are test_solo_methods' tiny runs
@pytest.mark.pins_only
def test_the_readme_quick_run_runs_as_written(tmp_path):
    if not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST is missing: apt-get install -y dataset-fashion-mnist")
    bin_dir = str(Path(sys.executable).parent)
    if shutil.which("cvr-solo", path=bin_dir) is None:
        pytest.skip("the cvr-solo script is not installed beside this Python")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", _quick_block()], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "cvr-solo pretrain: done, epoch 1/1" in proc.stdout
    assert "cvr-solo linear: done, epoch 1/1" in proc.stdout
    assert "linear probe val acc@1:" in proc.stdout
    assert list((tmp_path / "trained_models" / "quick" / "linear").glob("*/*.ckpt"))
    assert "Traceback" not in proc.stderr
