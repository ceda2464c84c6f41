"""``cvr-solo pretrain`` on 2 CPU processes (gloo) under every launcher a user has: Lightning's
``ddp`` (it re-executes the command for rank 1; through ``python -m cvr_solo.cli`` and through
the installed ``cvr-solo`` script), ``ddp_spawn``, ``ddp_fork``, torchrun and SLURM (srun's
processes and variables, emulated on one node), with the shipped config's defaults: progress
bar on, validation on, the config's loader workers (``ddp_spawn``: one; why at its test); only
the size knobs change. Each run must
start, say how many processes run, train, leave one run folder with one checkpoint written
by rank 0, print one summary, exit 0 within a timeout that fails the test on a hang, and leave
no rank behind; no rank may print a registration warning. Under ``ddp`` a run resumes. A
collective planted on rank 0 only makes the run stop with one line, not hang.
"""

from __future__ import annotations

import contextlib
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

from .helpers import PRETRAIN, crop_overrides, fashion_mnist_folder

STEPS = 2  # per epoch: 20 images, 2 processes x batch 4, drop_last
SMALL = {"c_simclr": ["proj_hidden_dim=32"],
         "c_byol": ["proj_hidden_dim=32", "pred_hidden_dim=32", "b_hidden_dim=32"]}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """20 train / 10 val Fashion-MNIST images (2 / 1 per class)."""
    return fashion_mnist_folder(tmp_path_factory, "fmnist-tiny", 20, 10)


def _overrides(data: Path, ckpt: Path, method: str, strategy: str, epochs: int = 1,
               extra: tuple[str, ...] = ()) -> list[str]:
    """The shipped config with the data, where to write, two CPU processes, and the size
    knobs only: images (the tiny folder, 16 px crops), batch, epochs, head widths."""
    return ["--config-path", str(PRETRAIN), "--config-name", f"{method}.yaml",
            f"data.train_path={data / 'train'}", f"data.val_path={data / 'val'}",
            f"checkpoint.dir={ckpt}", f"max_epochs={epochs}", "optimizer.batch_size=4",
            "accelerator=cpu", 'devices="2"', f"strategy={strategy}",
            # a 2-step epoch logs nothing at Lightning's default of every 50 steps: log each
            # step, so metrics.csv has rows to check and the progress bar reads the metrics on
            # every step (reading them at the wrong time on one rank is what deadlocked)
            "++log_every_n_steps=1",
            *crop_overrides(method), *(f"method_kwargs.{o}" for o in SMALL[method]), *extra]


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


def _launch(argv: list[str], marker: str, timeout: int = 300, expect: int = 0
            ) -> subprocess.CompletedProcess:
    """Runs argv in a session of its own (with the user's warning settings); fails on a hang,
    a rank left running, another exit code than ``expect`` or a registration warning."""
    # PYTHONFAULTHANDLER changes nothing until a fatal signal: then each process prints its
    # threads' Python stacks, which is what a hang report needs
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGABRT)  # every rank and loader worker: stacks, then exit
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # something outlived SIGABRT
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the session
        pytest.fail(f"hung for {timeout} s; stdout tail:\n{out[-2000:]}\nstderr (the "
                    f"stacks of every process at SIGABRT):\n{err[-20000:]}")
    deadline = time.monotonic() + 10  # helpers such as multiprocessing's resource tracker
    while (left := _leftovers(proc.pid, marker)) and time.monotonic() < deadline:
        time.sleep(0.5)  # end when they see the launcher gone
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
    assert not left, f"ranks left running: {left}"
    assert proc.returncode == expect, f"exit {proc.returncode}\n{out[-2000:]}\n{err[-4000:]}"
    assert "could not register" not in err, err[-3000:]
    assert "Overwriting" not in err, err[-3000:]  # the ranks are as quiet as the main process
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


#: each launcher once (what differs between them is how the ranks start); what differs between
#: the methods under DDP (C-SimCLR's gather, C-BYOL's momentum update) is
#: test_ddp_equivalence's, and C-SimCLR runs under ddp below (resume, planted collective)
@pytest.mark.parametrize(("launcher", "strategy", "method"), [
    ("module", "ddp", "c_byol"),
    ("module", "ddp_spawn", "c_simclr"),
    ("module", "ddp_fork", "c_byol"),
    ("torchrun", "ddp", "c_byol"),
    ("slurm", "ddp", "c_byol"),
])
def test_two_processes_train_to_a_checkpoint(tmp_path, tiny_data, launcher, strategy, method):
    # ddp_spawn: one loader worker, not the config's 4. Each spawned worker imports torch and
    # solo-learn again (seconds of CPU), in each of the 2 ranks, for the sanity check, the
    # training and the validation (alone on 2 idle cores: 39 s with 4 workers, 26 s with
    # one); what spawn needs, the dataset pickled into a worker, is the same for one. The
    # other launchers keep the config's 4 (forked, cheap).
    extra = ("data.num_workers=1",) if strategy == "ddp_spawn" else ()
    proc = _launch([*_command(launcher), *_overrides(tiny_data, tmp_path / "ck", method,
                                                     strategy, extra=extra)],
                   marker=str(tmp_path))
    _check_run(proc, _one_run_folder(tmp_path / "ck", method), method, epochs=1)
    assert len(list(_one_run_folder(tmp_path / "ck", method).glob("*.ckpt"))) == 1


#: ``cvr-solo pretrain`` with a collective planted on rank 0 only (a test double of a
#: callback that reduces a metric on one rank): Lightning's ``ddp`` re-executes this script
#: for rank 1 through cvr_solo.launch.ddp_rank, without the plant
PLANTED = """
import sys
from cvr_solo.common.quiet import silence_known_warnings
silence_known_warnings()  # as cvr_solo.cli does, before the imports below warn
import torch
import torch.distributed as dist
from lightning.pytorch import Callback
from cvr_solo import cli
from cvr_solo.launch import pretrain

class RankZeroCollective(Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.global_rank == 0:
            dist.all_reduce(torch.ones(1))

planted = pretrain.run
pretrain.main = pretrain.hydra_entry(
    lambda cfg: planted(cfg, [RankZeroCollective()]), "pretrain")
sys.exit(cli.main(["pretrain", *sys.argv[1:]]))
"""


def test_a_collective_on_one_rank_stops_the_run_with_one_line(tmp_path, tiny_data):
    """The rank that waits in the planted all_reduce gives up after ddp_timeout_s and says so
    in one line (rank, collective, caller); the run exits 1, with no traceback and no rank
    left, instead of hanging."""
    script = tmp_path / "planted.py"
    script.write_text(PLANTED)
    over = _overrides(tiny_data, tmp_path / "ck", "c_simclr", "ddp",
                      extra=("++ddp_timeout_s=15",))  # the setting under test, kept short
    proc = _launch([sys.executable, str(script), *over], marker=str(tmp_path), timeout=240,
                   expect=1)
    lines = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert lines, proc.stderr[-3000:]
    assert all(line.startswith("cvr-solo pretrain: error: rank ") for line in lines), lines
    assert any("rank 0 of 2 waited 15 s in torch.distributed.all_reduce, called from "
               f"{script}" in line for line in lines), lines
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


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


def test_the_pretraining_dataset_pickles_for_spawned_workers():
    """What a ``spawn`` loader worker receives: solo-learn's dataset_with_index dataset, whose
    class is local to that function, pickled and rebuilt with its state and index."""
    import pickle

    from solo.data.pretrain_dataloader import dataset_with_index
    from torch.utils.data import Subset
    from torchvision.datasets import FakeData

    from cvr_solo.launch.loaders import picklable_with_index

    data = dataset_with_index(FakeData)(size=4, image_size=(3, 8, 8), num_classes=2)
    with pytest.raises((AttributeError, pickle.PicklingError), match="local"):
        pickle.dumps(dataset_with_index(FakeData)(size=4))  # solo-learn's, as it comes
    subset = picklable_with_index(Subset(data, [1, 3]))
    back = pickle.loads(pickle.dumps(subset))
    assert [back[i][0] for i in range(2)] == [1, 3]  # the index leads, as solo-learn's does
    assert back[1][2] == data[3][2] and back.dataset.size == 4
