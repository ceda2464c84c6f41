"""``cvr-solo install-solo``: the sources it accepts, the pip command lines it runs (pip
mocked), and how it judges the result. The real install of the pinned archive into a fresh
environment is CI's second stage (.ci/run), which then runs the whole suite on it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from cvr_solo import cli
from cvr_solo.solo import install as ins
from cvr_solo.solo.env import SOLO_COMMIT, SOLO_COMMIT_SHA, solo_available

#: cvr-solo's methods as the verification prints them (sorted), written out.
OURS = ["c_byol", "c_mocov3", "c_simclr", "c_simsiam"]

OTHER_SHA = "0123456789abcdef0123456789abcdef01234567"


def _archive(path: Path, commit: str | None) -> Path:
    """A tiny ``git archive``-like .tar.gz (commit in the pax global header)."""
    headers = {"comment": commit} if commit else {}
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT, pax_headers=headers) as tf:
        data = b"from setuptools import setup\nsetup(name='solo-learn')\n"
        info = tarfile.TarInfo("solo-learn-x/setup.py")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return path


def _checkout(path: Path) -> Path:
    (path / "solo").mkdir(parents=True)
    (path / "setup.py").write_text("")
    return path


def test_default_source_is_github_at_the_supported_commit():
    src = ins.resolve_source()
    assert src.kind == "git" and src.commit == SOLO_COMMIT_SHA
    assert src.requirement == ("solo-learn @ git+https://github.com/vturrisi/solo-learn@"
                               + SOLO_COMMIT_SHA)


@pytest.mark.parametrize(("url", "commit"), [
    ("git+https://github.com/vturrisi/solo-learn@9187ea3", "9187ea3"),
    ("git+ssh://git@github.com/vturrisi/solo-learn@" + OTHER_SHA, OTHER_SHA),
    ("git+https://github.com/vturrisi/solo-learn", None),
    ("git+https://github.com/vturrisi/solo-learn@main", None),
])
def test_git_urls_and_their_commit(url, commit):
    src = ins.resolve_source(url)
    assert (src.kind, src.commit, src.requirement) == ("git", commit, f"solo-learn @ {url}")


def test_archive_url_and_a_bad_url():
    url = f"https://github.com/vturrisi/solo-learn/archive/{SOLO_COMMIT_SHA}.tar.gz"
    assert ins.resolve_source(url).kind == "url"
    with pytest.raises(ins.InstallSoloError, match=r"a URL must be git\+https://...@COMMIT"):
        ins.resolve_source("https://github.com/vturrisi/solo-learn")


def test_local_archive_and_checkout(tmp_path):
    src = ins.resolve_source(str(_archive(tmp_path / "solo.tar.gz", SOLO_COMMIT_SHA)))
    assert src.kind == "archive" and src.commit == SOLO_COMMIT_SHA
    assert src.requirement == f"solo-learn @ {(tmp_path / 'solo.tar.gz').as_uri()}"
    assert ins.resolve_source(str(_archive(tmp_path / "x.tgz", None))).commit is None
    checkout = ins.resolve_source(str(_checkout(tmp_path / "co")))
    assert (checkout.kind, checkout.commit) == ("dir", None)
    assert checkout.requirement == f"solo-learn @ {(tmp_path / 'co').as_uri()}"


@pytest.mark.parametrize("name", ["solo-learn", "solo_learn==1.0.2", "Solo-Learn>=1.0"])
def test_the_registry_package_is_refused(name):
    with pytest.raises(ins.InstallSoloError, match=r"registry's solo-learn is 1.0.2"):
        ins.resolve_source(name)


def test_bad_paths(tmp_path):
    with pytest.raises(ins.InstallSoloError, match="no such file or directory"):
        ins.resolve_source(str(tmp_path / "missing.tar.gz"))
    with pytest.raises(ins.InstallSoloError, match=r"holds no solo-learn checkout"):
        ins.resolve_source(str(tmp_path))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ins.InstallSoloError, match=r"an archive must end in .tar.gz"):
        ins.resolve_source(str(tmp_path / "notes.txt"))
    (tmp_path / "broken.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(ins.InstallSoloError, match="not a readable archive"):
        ins.resolve_source(str(tmp_path / "broken.tar.gz"))


class FakeRun:
    """Stands in for subprocess.run: records pip calls (and the constraints they name) and
    answers the verification with ``found``."""

    def __init__(self, found: dict, fail_on: str | None = None):
        self.found, self.fail_on = found, fail_on
        self.pip: list[list[str]] = []
        self.constraints: list[str] = []
        self.verify: list[list[str]] = []

    def __call__(self, cmd, **kwargs):
        if cmd[1:3] == ["-m", "pip"]:
            self.pip.append(cmd)
            if "-c" in cmd:
                self.constraints.append(Path(cmd[cmd.index("-c") + 1]).read_text())
            rc = 1 if self.fail_on and self.fail_on in cmd else 0
            return subprocess.CompletedProcess(cmd, rc)
        self.verify.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, json.dumps(self.found) + "\n", "")


BEFORE = {"setuptools": "82.0.0", "wheel": None, "solo-learn": "1.0.2",
          "torch": "2.99.0+cu130", "torchvision": "0.30.0", "lightning": None}


def _found(**over):
    found = {"versions": {"solo-learn": "1.0.6", "torch": "2.99.0+cu130",
                          "torchvision": "0.30.0", "lightning": "2.1.2",
                          "torchmetrics": "0.11.4", "setuptools": "80.10.2"},
             "location": "/env/site-packages/solo", "hook": OURS, "methods": OURS,
             "knn": None}
    found.update(over)
    return found


def _install(monkeypatch, tmp_path, before=BEFORE, found=None, fail_on=None):
    monkeypatch.setattr(ins, "_installed", lambda names: {n: before.get(n) for n in names})
    run = FakeRun(found or _found(), fail_on)
    lines: list[str] = []
    src = ins.resolve_source(str(_archive(tmp_path / "solo.tar.gz", SOLO_COMMIT_SHA)))
    try:
        ins.install_solo(src, run=run, echo=lines.append)
    finally:
        run.lines = lines
    return run


def test_pip_command_lines_pin_torch_and_build_without_isolation(monkeypatch, tmp_path):
    run = _install(monkeypatch, tmp_path)
    pip = [sys.executable, "-m", "pip"]
    build, solo = run.pip
    assert build == [*pip, "install", "setuptools<81", "wheel"]
    c = solo.index("-c")
    assert solo[:c] == [*pip, "install", "--no-build-isolation"]
    assert solo[c + 2:] == [f"solo-learn @ {(tmp_path / 'solo.tar.gz').as_uri()}"]
    assert run.constraints == ["torch==2.99.0+cu130\ntorchvision==0.30.0\nsetuptools<82\n"]
    assert run.verify and run.verify[0][0] == sys.executable and "-c" in run.verify[0]
    text = "\n".join(run.lines)
    assert f"commit {SOLO_COMMIT}, the one cvr-solo is tested against" in text
    assert "keeping torch 2.99.0+cu130, torchvision 0.30.0" in text
    assert "replacing the installed solo-learn 1.0.2" in text
    assert "solo-learn 1.0.6 at /env/site-packages/solo" in text
    assert ("c_byol, c_mocov3, c_simclr, c_simsiam registered by cvr-solo's start-up hook"
            in text)
    assert "torch 2.99.0+cu130 (kept)" in text and "online kNN (knn_eval): available" in text


def test_no_build_tool_step_when_setuptools_fits(monkeypatch, tmp_path):
    before = {**BEFORE, "setuptools": "80.10.2", "wheel": "0.45.0", "solo-learn": None,
              "torch": None, "torchvision": None}
    run = _install(monkeypatch, tmp_path, before,
                   _found(versions={**_found()["versions"], "torch": "2.14.1"}))
    assert len(run.pip) == 1 and "--no-build-isolation" in run.pip[0]
    assert run.constraints == ["setuptools<82\n"]  # no torch to keep: solo-learn pulls one
    assert any("no torch installed" in line for line in run.lines)


def test_pip_failure_says_torch_is_kept(monkeypatch, tmp_path):
    with pytest.raises(ins.InstallSoloError,
                       match=r"pip failed \(exit 1\) while keeping torch 2.99.0\+cu130, "
                             r"torchvision 0.30.0: cvr-solo never replaces them"):
        _install(monkeypatch, tmp_path, fail_on="--no-build-isolation")


@pytest.mark.parametrize(("found", "message"), [
    (_found(versions={**_found()["versions"], "torch": "2.14.1"}),
     r"pip replaced torch 2.99.0\+cu130 -> 2.14.1 despite the constraints"),
    (_found(methods=[], hook=[]),
     r"c_byol, c_mocov3, c_simclr, c_simsiam are not all in solo.methods.METHODS: "
     r"cvr-solo's start-up hook"),
    ({"versions": {}, "error": "solo-learn 1.0.2 is installed, but cvr-solo needs >= 1.0.6"},
     r"installed but is not usable: solo-learn 1.0.2 is installed"),
])
def test_a_bad_result_is_an_error(monkeypatch, tmp_path, found, message):
    with pytest.raises(ins.InstallSoloError, match=message):
        _install(monkeypatch, tmp_path, found=found)


def test_other_commit_warns_and_knn_problem_is_reported(monkeypatch, tmp_path):
    monkeypatch.setattr(ins, "_installed", lambda names: {n: BEFORE.get(n) for n in names})
    run = FakeRun(_found(knn="cannot be built with torchmetrics 1.9.0"))
    lines: list[str] = []
    src = ins.resolve_source(str(_archive(tmp_path / "o.tar.gz", OTHER_SHA)))
    ins.install_solo(src, run=run, echo=lines.append)
    assert f"WARNING: commit 0123456, not {SOLO_COMMIT}" in lines[0]
    assert lines[-1].endswith("off here: cannot be built with torchmetrics 1.9.0")


def test_cli_dry_run_and_refusal(capsys):
    assert cli.main(["install-solo", "--dry-run", "-q"]) == 0
    out = capsys.readouterr().out
    assert "--no-build-isolation" in out and "-q" in out and SOLO_COMMIT_SHA in out
    assert "setuptools<82" in out.split("pip constraints:")[1].splitlines()[0]
    assert cli.main(["install-solo", "--source", "solo-learn==1.0.2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cvr-solo install-solo: error: --source solo-learn==1.0.2: the "
                          "package registry's solo-learn is 1.0.2")


def test_the_verification_code_runs_in_a_real_process():
    found = ins._verify(subprocess.run)
    if solo_available():
        assert found["methods"] == OURS
        assert ins._version_tuple(found["versions"]["solo-learn"]) >= (1, 0, 6)
        assert found["knn"] is None or "torchmetrics" in found["knn"]
    else:
        assert found["error"].startswith("solo-learn is not installed")
        assert found["versions"]["solo-learn"] is None


def test_offline_names_the_unresolved_host_and_the_source_way_out(monkeypatch, capsys):
    """Without a network the default source (GitHub) fails at the name lookup, before pip
    runs: the error names the host and ``--source``, not pip."""
    import socket

    def offline(host, *args, **kwargs):
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(ins.socket, "getaddrinfo", offline)
    monkeypatch.setattr(ins, "_installed", lambda names: {n: BEFORE.get(n) for n in names})
    ran: list[object] = []
    monkeypatch.setattr(ins.subprocess, "run", lambda *a, **k: ran.append(a))
    assert ins.main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cvr-solo install-solo: error: cannot resolve github.com "
                          "([Errno -3] Temporary failure in name resolution): this machine "
                          "looks offline"), err
    assert "cvr-solo install-solo --source PATH" in err and "pip failed" not in err
    assert ran == []  # pip never ran
