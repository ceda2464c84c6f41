"""What keeps a DDP run from hanging: the strategy with the process group's timeout, the one
line of a rank whose collective timed out, and the loader workers fitted to the machine
(Lightning only, no solo-learn; the runs themselves: tests/integration/test_ddp_launch.py)."""

from __future__ import annotations

import inspect
from datetime import timedelta

import pytest

pytest.importorskip("lightning", reason="Lightning comes with solo-learn (cvr-solo "
                    "install-solo); the DDP strategy and callbacks build on it")

from omegaconf import OmegaConf

from cvr_solo.config.trainer import DDP_TIMEOUT_S
from cvr_solo.launch import devices
from cvr_solo.launch.hang import ddp_strategy, is_collective_timeout, waited_for

#: a stand-in for torch's distributed_c10d.py: its collective raises gloo's timeout message
_C10D = compile("def all_reduce(tensor):\n"
                "    raise RuntimeError('[gloo/transport/tcp/unbound_buffer.cc:81] Timed out "
                "waiting 15000ms for recv operation to complete')\n",
                "/env/site-packages/torch/distributed/distributed_c10d.py", "exec")
_LIGHTNING = compile("def reduce(fn):\n    fn(None)\n",
                     "/env/site-packages/lightning/fabric/utilities/distributed.py", "exec")


def _timed_out() -> tuple[RuntimeError, int]:
    """A gloo timeout raised two library frames below this function; and the caller's line."""
    c10d: dict = {}
    exec(_C10D, c10d)
    lightning: dict = {}
    exec(_LIGHTNING, lightning)
    line = inspect.currentframe().f_lineno + 2
    try:
        lightning["reduce"](c10d["all_reduce"])
    except RuntimeError as err:
        return err, line
    raise AssertionError("no error")


def test_a_timed_out_collective_names_the_op_and_its_caller():
    err, line = _timed_out()
    assert waited_for(err) == (f"torch.distributed.all_reduce, called from {__file__}:{line} "
                               "(_timed_out)")
    assert is_collective_timeout(err)


@pytest.mark.parametrize("err", [RuntimeError("Timed out"), RuntimeError("bad shape"),
                                 ValueError("timed out in all_reduce")])
def test_other_errors_are_not_collective_timeouts(err):
    assert waited_for(err) is None and not is_collective_timeout(err)


def test_a_spawned_ranks_timeout_is_recognised_from_its_text():
    from torch.multiprocessing import ProcessRaisedException

    text = ("-- Process 0 terminated with the following error:\nTraceback ...\n  File "
            '".../torch/distributed/distributed_c10d.py", line 3913, in all_reduce\n'
            "RuntimeError: [gloo] Timed out waiting 15000ms for recv operation to complete")
    assert is_collective_timeout(ProcessRaisedException(text, 0, 4242))
    assert not is_collective_timeout(ProcessRaisedException("RuntimeError: out of memory", 0,
                                                            4242))


@pytest.mark.parametrize(("name", "start"), [("ddp", "popen"), ("ddp_spawn", "spawn"),
                                             ("ddp_fork", "fork")])
def test_ddp_strategies_carry_the_timeout(name, start):
    strategy = ddp_strategy(name, 42)
    assert strategy._start_method == start and strategy._timeout == timedelta(seconds=42)
    assert ddp_strategy(name, None)._timeout == timedelta(seconds=DDP_TIMEOUT_S)
    assert ddp_strategy("auto", 42) == "auto"


@pytest.mark.parametrize(("asked", "cpus", "kept"), [(4, 2, 2), (2, 2, 2), (0, 2, 0),
                                                     (8, 16, 8)])
def test_loader_workers_fit_the_machine(monkeypatch, capsys, asked, cpus, kept):
    monkeypatch.setattr(devices, "available_cpus", lambda: cpus)
    cfg = OmegaConf.create({"data": {"num_workers": asked}})
    devices.fit_loader_workers(cfg, "pretrain")
    assert cfg.data.num_workers == kept
    said = capsys.readouterr().out
    assert said == ("" if kept == asked else
                    f"cvr-solo pretrain: data.num_workers={asked} lowered to {cpus}, the CPUs "
                    "this machine gives the run\n")
