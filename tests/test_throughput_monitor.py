"""ThroughputMonitor on its CUDA-event clock (fake events, on CPU): a step is read only once the
device has passed its end, values go to the logger as tensors, the epoch figures cover every
step, and the one wait is at the epoch's end."""

from __future__ import annotations

from types import SimpleNamespace
from typing import ClassVar

import pytest
import torch

pytest.importorskip("lightning", reason="Lightning comes with solo-learn (cvr-solo "
                    "install-solo); the callbacks build on it")

from cvr_solo.launch import callbacks as cb


class FakeEvent:
    """A CUDA event whose time is set by the test and which is 'done' only when released."""

    clock = 0.0
    created: ClassVar[list[FakeEvent]] = []

    def __init__(self, enable_timing: bool = False) -> None:
        self.t, self.done, self.waited = 0.0, False, False
        FakeEvent.created.append(self)

    def record(self, stream=None) -> None:
        self.t = FakeEvent.clock

    def query(self) -> bool:
        return self.done

    def synchronize(self) -> None:
        self.waited = True
        for e in FakeEvent.created:
            e.done = True

    def elapsed_time(self, end: FakeEvent) -> float:
        return (end.t - self.t) * 1000.0


class Module:
    device = torch.device("cpu")

    def __init__(self) -> None:
        self.logged: list[dict] = []

    def log_dict(self, metrics, **kwargs) -> None:
        self.logged.append(dict(metrics))

    def log(self, name, value, **kwargs) -> None:
        self.logged.append({name: value})


@pytest.fixture
def monitor(monkeypatch):
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    FakeEvent.clock, FakeEvent.created = 0.0, []
    mon = cb.ThroughputMonitor(skip=1, clock="cuda")
    module = Module()
    mon.on_fit_start(None, module)
    mon.on_train_epoch_start(None, module)
    return mon, module


def _step(mon, module, idx: int, seconds: float, done: bool) -> dict:
    batch = [torch.arange(4), [torch.zeros(4)], torch.zeros(4)]
    mon.on_train_batch_start(None, module, batch, idx)
    FakeEvent.clock += seconds
    mon.on_train_batch_end(None, module, None, batch, idx)
    if done:
        for e in FakeEvent.created:
            e.done = True
    return module.logged[-1]


def test_a_step_is_read_only_once_the_device_passed_it(monitor):
    mon, module = monitor
    assert isinstance(mon._clock, cb.CudaClock)
    _step(mon, module, 0, 1.0, done=True)          # warm-up: not logged
    first = _step(mon, module, 1, 2.0, done=False)  # its end not reached: nothing to read
    assert "train_step_time" not in first
    second = _step(mon, module, 2, 3.0, done=False)
    assert "train_step_time" not in second
    for e in FakeEvent.created:  # the device caught up: both are read at the next batch end
        e.done = True
    third = _step(mon, module, 3, 4.0, done=False)
    assert third["train_step_time"].item() == pytest.approx(3.0)
    assert third["train_images_per_sec"].item() == pytest.approx(4 / 3.0)
    assert all(isinstance(v, torch.Tensor) for row in module.logged for v in row.values())
    assert not any(e.waited for e in FakeEvent.created)

    module.logged.clear()
    mon.on_train_epoch_end(None, module)
    epoch = {k: v for row in module.logged for k, v in row.items()}
    assert epoch["train_step_time_epoch"] == pytest.approx(3.0)  # median of 2, 3, 4
    assert sum(e.waited for e in FakeEvent.created) == 1  # one wait, at the epoch end


def test_host_clock_on_cpu_and_bad_clock_name():
    mon = cb.ThroughputMonitor()
    mon.on_fit_start(None, SimpleNamespace(device=torch.device("cpu")))
    assert isinstance(mon._clock, cb.HostClock)
    with pytest.raises(ValueError, match="clock must be"):
        cb.ThroughputMonitor(clock="wall")
