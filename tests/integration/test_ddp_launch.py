"""``cvr-solo pretrain`` on 2 CPU processes (gloo) under every launcher a user has: Lightning's
``ddp`` (it re-executes the command for rank 1; through ``python -m cvr_solo.cli`` and through
the installed ``cvr-solo`` script), ``ddp_spawn``, ``ddp_fork``, torchrun and SLURM (srun's
processes and variables, emulated on one node). Each run must
start, say how many processes run, train, leave one run folder with one checkpoint written
by rank 0, print one summary, exit 0 and leave no rank behind. Under ``ddp`` a run resumes.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from .helpers import PRETRAIN, fashion_mnist_folder

STEPS = 2  # per epoch: 20 images, 2 processes x batch 4, drop_last
SMALL = {"c_simclr": ["proj_hidden_dim=32"],
         "c_byol": ["proj_hidden_dim=32", "pred_hidden_dim=32", "b_hidden_dim=32"]}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """20 train / 10 val Fashion-MNIST images (2 / 1 per class)."""
    return fashion_mnist_folder(tmp_path_factory, "fmnist-tiny", 20, 10)


def _overrides(data: Path, ckpt: Path, method: str, strategy: str, epochs: int = 1,
               extra: tuple[str, ...] = ()) -> list[str]:
    crops = [f"augmentations.{i}.crop_size=16" for i in range(2 if method == "c_byol" else 1)]
    return ["--config-path", str(PRETRAIN), "--config-name", f"{method}.yaml",
            f"data.train_path={data / 'train'}", f"data.val_path={data / 'val'}",
            f"checkpoint.dir={ckpt}", f"max_epochs={epochs}", "optimizer.batch_size=4",
            "data.num_workers=0", "accelerator=cpu", 'devices="2"', f"strategy={strategy}",
            "++log_every_n_steps=1", "++enable_progress_bar=False",
            "++enable_model_summary=False", "++scheduler.warmup_epochs=0",
            "++limit_val_batches=1", *crops, *(f"method_kwargs.{o}" for o in SMALL[method]),
            *extra]


def _leftovers(session: int, marker: str) -> list[str]:
    """Live processes still in the run's session, or with ``marker`` on their command line
    (zombies, exited and waiting for init to reap them, do not count)."""
    left = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            state, sid = stat[0], int(stat[3])
        except (OSError, ValueError, IndexError):
            continue
        if state != "Z" and (sid == session or marker in cmd):
            left.append(f"{proc.name}: {cmd[:200]}")
    return left


def _launch(argv: list[str], marker: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Runs argv in a session of its own; fails on a hang or a rank left running."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"hung for {timeout} s; stdout tail:\n{out[-2000:]}\nstderr:\n{err[-3000:]}")
    deadline = time.monotonic() + 10  # helpers such as multiprocessing's resource tracker
    while (left := _leftovers(proc.pid, marker)) and time.monotonic() < deadline:
        time.sleep(0.5)  # end when they see the launcher gone
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
    assert not left, f"ranks left running: {left}"
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out[-2000:]}\n{err[-4000:]}"
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


#: what ``srun --ntasks-per-node=2 cvr-solo pretrain ...`` does on one node: a process per
#: task with SLURM's variables (Lightning's SLURMEnvironment reads them), all waited for.
SRUN = """
import os, subprocess, sys
env = {**os.environ, "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "1",
       "SLURM_NODEID": "0", "SLURM_JOB_NAME": "cvr", "SLURM_JOB_ID": "4242",
       "SLURM_NODELIST": "127.0.0.1", "MASTER_PORT": sys.argv[1]}
tasks = [subprocess.Popen(sys.argv[2:], env={**env, "SLURM_PROCID": str(r),
                                              "SLURM_LOCALID": str(r)}) for r in range(2)]
sys.exit(max(t.wait() for t in tasks))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(launcher: str) -> list[str]:
    if launcher == "slurm":
        return [sys.executable, "-c", SRUN, str(_free_port()), sys.executable, "-m",
                "cvr_solo.cli", "pretrain"]
    if launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node=2", "-m", "cvr_solo.cli", "pretrain"]
    if launcher == "script":
        script = shutil.which("cvr-solo")
        if script is None:
            pytest.skip("the cvr-solo script is not installed")
        return [sys.executable, script, "pretrain"]
    return [sys.executable, "-m", "cvr_solo.cli", "pretrain"]


def _one_run_folder(ckpt_dir: Path, method: str) -> Path:
    folders = list((ckpt_dir / method).iterdir())
    assert len(folders) == 1, folders
    return folders[0]


def _check_run(proc: subprocess.CompletedProcess, folder: Path, method: str,
               epochs: int) -> None:
    assert proc.stdout.count("cvr-solo pretrain: training on 2 processes (2 cpu") == 1
    assert proc.stdout.count("cvr-solo pretrain: done, epoch") == 1
    ckpt = max(folder.glob("*.ckpt"))
    assert ckpt.name.endswith(f"-ep={epochs - 1}.ckpt")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert state["global_step"] == STEPS * epochs
    rows = list(csv.DictReader((folder / "metrics.csv").open()))
    steps = [int(r["step"]) for r in rows if r.get(f"train_{method}_loss_step")]
    assert steps and len(steps) == len(set(steps))  # one writer: no step twice
    assert (folder / "args.json").is_file()


@pytest.mark.parametrize(("launcher", "strategy", "method"), [
    ("module", "ddp", "c_byol"),  # ddp for C-SimCLR through the script: the resume test
    pytest.param("module", "ddp_spawn", "c_simclr", marks=pytest.mark.pins_only),
    ("module", "ddp_spawn", "c_byol"),
    ("module", "ddp_fork", "c_byol"),
    pytest.param("torchrun", "ddp", "c_simclr", marks=pytest.mark.pins_only),
    ("torchrun", "ddp", "c_byol"),
    ("slurm", "ddp", "c_byol"),
])
def test_two_processes_train_to_a_checkpoint(tmp_path, tiny_data, launcher, strategy, method):
    over = _overrides(tiny_data, tmp_path / "ck", method, strategy,
                      extra=("auto_resume.enabled=False",))
    proc = _launch([*_command(launcher), *over], marker=str(tmp_path))
    _check_run(proc, _one_run_folder(tmp_path / "ck", method), method, epochs=1)
    assert len(list(_one_run_folder(tmp_path / "ck", method).glob("*.ckpt"))) == 1


def test_a_ddp_run_resumes_in_its_folder(tmp_path, tiny_data):
    """Through the installed script: two epochs keeping both checkpoints; the second removed
    (as if killed during the second epoch), the same command resumes from the first in the
    same folder."""
    over = _overrides(tiny_data, tmp_path / "ck", "c_simclr", "ddp", epochs=2,
                      extra=("++checkpoint.keep_prev=True",))
    proc = _launch([*_command("script"), *over], marker=str(tmp_path))
    folder = _one_run_folder(tmp_path / "ck", "c_simclr")
    _check_run(proc, folder, "c_simclr", epochs=2)
    first, second = sorted(folder.glob("*.ckpt"))
    second.unlink()
    proc = _launch([*_command("script"), *over], marker=str(tmp_path))
    assert f"resuming {folder} from {first}" in proc.stdout
    assert _one_run_folder(tmp_path / "ck", "c_simclr") == folder
    assert sorted(folder.glob("*.ckpt")) == [first, second]
    state = torch.load(second, map_location="cpu", weights_only=False)
    assert state["global_step"] == 2 * STEPS and state["epoch"] == 1
