"""Without a usable solo-learn the commands fail with one clear message (no traceback)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cvr_solo import cli
from cvr_solo.solo.env import (
    SOLO_COMMIT,
    SoloLearnUnavailableError,
    _version_tuple,
    require_solo,
)

CONFIGS = Path(__file__).resolve().parents[1] / "scripts" / "pretrain" / "fashion-mnist"
ARGS = ["--config-path", str(CONFIGS), "--config-name", "c_byol.yaml"]


def _fake_find_spec(missing: set[str]):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name in missing else real(name, *args, **kwargs)

    return find_spec


@pytest.mark.parametrize("command", ["pretrain", "linear"])
def test_missing_solo_learn_message(monkeypatch, capsys, command):
    monkeypatch.setattr(importlib.util, "find_spec", _fake_find_spec({"solo"}))
    assert cli.main([command, *ARGS]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cvr-solo {command}: error: solo-learn is not installed")
    assert "cvr-solo install-solo" in err and SOLO_COMMIT in err
    assert "Traceback" not in err


def test_registry_version_is_rejected(monkeypatch, capsys):
    real_version = importlib.metadata.version

    def version(name):
        return "1.0.2" if name == "solo-learn" else real_version(name)

    monkeypatch.setattr(importlib.util, "find_spec", _fake_find_spec(set()))
    monkeypatch.setattr(importlib.metadata, "version", version)
    if importlib.util.find_spec("solo") is None:  # make the module look present
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a, **k: object() if name == "solo" else None)
    assert cli.main(["pretrain", *ARGS]) == 2
    err = capsys.readouterr().err
    assert "solo-learn 1.0.2 is installed, but cvr-solo needs solo-learn >= 1.0.6" in err
    assert "pip uninstall solo-learn" in err and "Traceback" not in err


def test_pkg_resources_trap_is_detected_before_import(monkeypatch):
    real_version = importlib.metadata.version

    def version(name):
        return {"solo-learn": "1.0.6", "lightning": "2.1.2",
                "setuptools": "84.0.0"}.get(name) or real_version(name)

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "pkg_resources"
                        else (object() if name == "solo" else real(name, *a, **k)))
    monkeypatch.setattr(importlib.metadata, "version", version)
    with pytest.raises(SoloLearnUnavailableError,
                       match=r"lightning 2.1.2 \(solo-learn's pin\) imports pkg_resources, which "
                             r"this environment's setuptools 84.0.0 no longer ships.*"
                             r"pip install 'setuptools<82'"):
        require_solo()


def _run(code: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=300)


def test_stale_solo_on_the_path_real_process(tmp_path):
    """A real process that finds the registry's 1.0.2 first on its path."""
    (tmp_path / "solo").mkdir()
    (tmp_path / "solo" / "__init__.py").write_text("")
    dist = tmp_path / "solo_learn-1.0.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: solo-learn\nVersion: 1.0.2\n")
    proc = _run(f"""
        import sys
        from cvr_solo.cli import main
        sys.exit(main(["pretrain", "--config-path", {str(CONFIGS)!r},
                       "--config-name", "c_byol.yaml"]))
        """, {"PYTHONPATH": str(tmp_path), "CVR_SOLO_NO_AUTOREGISTER": "1"})
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("cvr-solo pretrain: error: solo-learn 1.0.2 is "
                                          "installed")
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(importlib.util.find_spec("solo") is not None,
                    reason="solo-learn is installed here; the real missing-solo path runs where "
                           "it is not (CI's fresh environment); the message itself is tested "
                           "above in-process")
def test_missing_solo_real_console_script():
    proc = subprocess.run([sys.executable, "-m", "cvr_solo.cli", "pretrain", *ARGS],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.startswith("cvr-solo pretrain: error: solo-learn is not installed")
    assert "Traceback" not in proc.stderr
    proc = _run("import cvr_solo.methods")
    assert proc.returncode != 0 and "solo-learn is not installed" in proc.stderr


def _lightning_imports_pkg_resources() -> bool:
    try:
        return _version_tuple(importlib.metadata.version("lightning")) < (2, 2)
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.mark.skipif(importlib.util.find_spec("solo") is None
                    or not _lightning_imports_pkg_resources(),
                    reason="needs solo-learn and a lightning < 2.2 (solo-learn's pin 2.1.2) "
                           "installed: later Lightning releases do not import pkg_resources")
def test_pkg_resources_trap_real_import_failure():
    """Make ``import pkg_resources`` fail the way it does under setuptools >= 82."""
    proc = _run(f"""
        import importlib.abc, importlib.machinery, sys
        class Gone(importlib.abc.Loader):
            def create_module(self, spec):
                raise ModuleNotFoundError("No module named 'pkg_resources'",
                                          name="pkg_resources")
            def exec_module(self, module):
                pass
        class Finder(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "pkg_resources":
                    return importlib.machinery.ModuleSpec(name, Gone())
        sys.meta_path.insert(0, Finder())
        from cvr_solo.cli import main
        sys.exit(main(["pretrain", "--config-path", {str(CONFIGS)!r},
                       "--config-name", "c_byol.yaml"]))
        """, {"CVR_SOLO_NO_AUTOREGISTER": "1"})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "pkg_resources" in proc.stderr and "pip install 'setuptools<82'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_usage_and_unknown_command(capsys):
    assert cli.main([]) == 2
    out = capsys.readouterr().out
    assert all(f"  {name}" in out for name in cli.COMMANDS)
    assert cli.main(["train"]) == 2
    assert "unknown command 'train'" in capsys.readouterr().err


def test_relative_config_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = cli._absolute_config_path(["--config-path", "scripts/x", "--config-path=rel", "a=b"])
    assert out == ["--config-path", str(tmp_path / "scripts/x"),
                   f"--config-path={tmp_path / 'rel'}", "a=b"]


def test_data_subcommand_dispatches(tmp_path, capsys):
    from cvr_solo.data.fashion_mnist import DEFAULT_SOURCE

    if not (DEFAULT_SOURCE / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST is missing: apt-get install -y dataset-fashion-mnist")
    out = tmp_path / "fm"
    assert cli.main(["data", "fashion-mnist", "--out", str(out), "--subset", "20",
                     "--no-progress"]) == 0
    assert len(list((out / "train").rglob("*.png"))) == 20
    assert cli.main(["data", "mnist", "--out", str(out)]) == 2
