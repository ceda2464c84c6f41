"""The whole ``cvr-solo pretrain`` Trainer (method, ThroughputMonitor on its CUDA-event clock,
progress bar, diagnostics, checkpointer, CSV logger) runs non-logging training steps without
a device sync or host copy made by cvr-solo's code; on a CPU.

Patched and counted from the start of batch 3 to the start of batch 5 (two whole steps, the
module's batch-end hooks and Lightning's bookkeeping included; neither is a logging step; by
then Lightning has registered every logged key, which costs it one host copy per key, once):
``torch.cuda.synchronize``, ``Event.synchronize``, ``Tensor.item / tolist / cpu / numpy`` and
``float / int / bool`` of a tensor, ``torch.tensor`` / ``torch.as_tensor`` (the host-to-device
copy of a Python number on a GPU). A call is cvr-solo's when the first frame above it outside
torch and Lightning, inside ``Trainer.fit``, is in the cvr_solo package: a Python number that
cvr-solo hands to ``self.log`` counts, Lightning's own reads on its logging steps do not, and
solo-learn's code is solo-learn's. The CUDA clock runs on fake events that count a wait.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from .conftest import SOLO_SKIP_REASON

if SOLO_SKIP_REASON is not None:  # the module imports Lightning, which comes with solo-learn
    pytest.skip(SOLO_SKIP_REASON, allow_module_level=True)

from lightning.pytorch import Callback

import cvr_solo
from cvr_solo.launch import callbacks as cb

from .helpers import PRETRAIN

OURS = str(Path(cvr_solo.__file__).resolve().parent)
FOREIGN = (str(Path(torch.__file__).resolve().parent),
           str(Path(sys.modules["lightning"].__file__).resolve().parent))
CHECKED = (3, 5)  # batch indices: opened at the start of the first, closed at the second's


def _our_caller() -> str | None:
    """``file:line`` of the cvr-solo code that made the call, or None if it is not ours."""
    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "fit" and code.co_filename.endswith("trainer/trainer.py"):
            return None  # reached the loop's boundary: Lightning's own
        if not code.co_filename.startswith(FOREIGN):
            if code.co_filename.startswith(OURS):
                return f"{Path(code.co_filename).name}:{frame.f_lineno}"
            return None
        frame = frame.f_back
    return None


class Counting:
    """Counts the patched calls made by cvr-solo's code while :attr:`on`."""

    def __init__(self) -> None:
        self.on = False
        self.seen: Counter[str] = Counter()
        self.where: set[str] = set()
        self.steps = 0

    def wrap(self, name: str, real):
        def counted(*args, **kwargs):
            where = _our_caller() if self.on else None
            if where is not None:
                self.seen[name] += 1
                self.where.add(f"{name} from {where}")
            return real(*args, **kwargs)
        return counted

    def sync(self, name: str):
        def counted(*args, **kwargs):
            if self.on:
                self.seen[name] += 1
        return counted


class Window(Callback):
    def __init__(self, counting: Counting) -> None:
        self.counting = counting

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == CHECKED[0]:
            self.counting.on = True
        elif batch_idx == CHECKED[1] and self.counting.on:
            self.counting.on = False
            self.counting.steps = CHECKED[1] - CHECKED[0]


def _fake_event(counting: Counting):
    class FakeEvent:
        def __init__(self, enable_timing: bool = False) -> None:
            self.t = 0.0

        def record(self, stream=None) -> None:
            self.t = time.perf_counter()

        def query(self) -> bool:
            return True

        def elapsed_time(self, end) -> float:
            return (end.t - self.t) * 1000.0

        synchronize = staticmethod(counting.sync("Event.synchronize"))

    return FakeEvent


def _patch(monkeypatch, counting: Counting) -> None:
    for name in ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__"):
        monkeypatch.setattr(torch.Tensor, name, counting.wrap(f"Tensor.{name}",
                                                              getattr(torch.Tensor, name)))
    for name in ("tensor", "as_tensor"):
        monkeypatch.setattr(torch, name, counting.wrap(f"torch.{name}", getattr(torch, name)))
    monkeypatch.setattr(torch.cuda, "synchronize", counting.sync("torch.cuda.synchronize"))
    monkeypatch.setattr(torch.cuda, "Event", _fake_event(counting))


def _run(monkeypatch, tmp_path, data: Path, method: str) -> Counting:
    from hydra import compose, initialize_config_dir

    from cvr_solo.launch import trainer as launch_trainer
    from cvr_solo.launch.pretrain import run

    counting = Counting()
    real_build = launch_trainer.build_trainer

    def build_trainer(*args, **kwargs):
        trainer = real_build(*args, **kwargs)
        for c in trainer.callbacks:
            if isinstance(c, cb.ThroughputMonitor):
                c.clock_kind = "cuda"  # the GPU's clock, on fake events
        trainer.callbacks.insert(0, Window(counting))
        return trainer

    monkeypatch.setattr(launch_trainer, "build_trainer", build_trainer)
    _patch(monkeypatch, counting)
    crops = [f"augmentations.{i}.crop_size=16" for i in range(2 if method == "c_byol" else 1)]
    heads = [f"method_kwargs.{k}_hidden_dim=64"
             for k in (("proj", "pred", "b") if method == "c_byol" else ("proj",))]
    with initialize_config_dir(config_dir=str(PRETRAIN), version_base="1.2"):
        cfg = compose(config_name=method, overrides=[
            f"data.train_path={data / 'train'}", f"data.val_path={data / 'val'}",
            f"checkpoint.dir={tmp_path}", "optimizer.batch_size=4", "max_epochs=1",
            "++max_steps=7", "data.num_workers=0", "accelerator=cpu",
            "++log_every_n_steps=50", "++scheduler.warmup_epochs=0", "++limit_val_batches=0",
            "diagnostics.enabled=True", "diagnostics.every_n_steps=50",
            "diagnostics.num_images=4", *crops, *heads])
    trainer = run(cfg)
    assert trainer.global_step == 7
    return counting


@pytest.mark.parametrize("method", ["c_simclr", "c_byol"])
def test_non_logging_steps_make_no_sync_or_host_copy(monkeypatch, tmp_path, fm_data, method):
    counting = _run(monkeypatch, tmp_path, fm_data, method)
    assert counting.steps == 2
    assert counting.seen == Counter(), f"cvr-solo's code synchronised: {sorted(counting.where)}"


def test_the_check_fails_when_a_sync_is_put_back_in_the_callback(monkeypatch, tmp_path,
                                                                 fm_data):
    """The detector itself: the old ThroughputMonitor's torch.cuda.synchronize at each stamp,
    and a Python float handed to self.log in the callback, are both seen."""
    real_stamp, real_end = cb.CudaClock.stamp, cb.ThroughputMonitor.on_train_batch_end

    def stamp_with_sync(self):
        torch.cuda.synchronize()
        return real_stamp(self)

    # compiled as a line of callbacks.py: the caller must be cvr-solo's code to count
    ns = {"real_end": real_end}
    exec(compile("def logs_a_float(self, trainer, pl_module, *args):\n"
                 "    real_end(self, trainer, pl_module, *args)\n"
                 "    pl_module.log('train_extra', 1.0, on_step=True, on_epoch=False)\n",
                 cb.__file__, "exec"), ns)
    monkeypatch.setattr(cb.CudaClock, "stamp", stamp_with_sync)
    monkeypatch.setattr(cb.ThroughputMonitor, "on_train_batch_end", ns["logs_a_float"])
    counting = _run(monkeypatch, tmp_path, fm_data, "c_simclr")
    assert counting.seen["torch.cuda.synchronize"] == 2 * 2  # two stamps a step
    assert counting.seen["torch.tensor"] == 2
