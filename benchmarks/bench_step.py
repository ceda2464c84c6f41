"""Training-step overhead of the C-variants inside solo-learn, against their baselines.

    python benchmarks/bench_step.py [--device cpu|cuda] [--batch-sizes 64] [--steps 30]
        [--warmup 5] [--pairs simclr:c_simclr,byol:c_byol]

Every method is built as ``cvr-solo pretrain`` builds it (:func:`cvr_solo.launch.pretrain.
build_model`): the shipped Hydra config of scripts/pretrain/fashion-mnist composed (a C-config
is its baseline's plus the CEB keys, nothing else), solo-learn's parse_cfg, then
``solo.methods.METHODS[method](cfg)``; it trains in a Lightning Trainer with solo-learn's own
optimiser (LARS), scheduler and EMA, on one fixed synthetic batch of the config's crop size
(no data loading or augmentation is timed). On a GPU: bf16 autocast (precision bf16-mixed).

Interleaving: the methods of one batch size train at the same time, in threads that take
turns, one step each per round (simclr, c_simclr, byol, c_byol, simclr, ...), so a drift of the
machine's speed hits all of them alike. A step is timed from one on_train_batch_start to the
next: training_step (forward, loss, logging into Lightning's result collection), backward,
optimiser step, solo-learn's EMA update and Lightning's loop; on a GPU between two
torch.cuda.synchronize() calls. Printed: the median over --steps steps after --warmup steps,
and for each pair the ratio of the medians and the median of the per-round ratios.
No logger is attached (a real run also converts the logged values to numbers every
log_every_n_steps steps, 50 by default).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "scripts" / "pretrain" / "fashion-mnist"


class _Turns:
    """Round-robin turns among threads: ``wait(i)`` blocks until it is i's turn, ``done(i)``
    passes it on to the next thread that has not finished."""

    def __init__(self, n: int) -> None:
        self.n, self.turn, self.finished = n, 0, set()
        self.failed = False
        self.cond = threading.Condition()

    def wait(self, i: int) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.turn == i or self.failed)
            if self.failed:
                raise RuntimeError("another benchmark thread failed")

    def done(self, i: int, finished: bool = False) -> None:
        with self.cond:
            if finished:
                self.finished.add(i)
            for k in range(1, self.n + 1):
                nxt = (i + k) % self.n
                if nxt not in self.finished:
                    self.turn = nxt
                    break
            self.cond.notify_all()

    def fail(self) -> None:
        with self.cond:
            self.failed = True
            self.cond.notify_all()


def _step_timer(turns: _Turns, index: int, sync: Any, clock: Any) -> Any:
    from lightning.pytorch import Callback

    class StepTimer(Callback):
        """Times each step (start of one batch to the start of the next) during its turn."""

        def __init__(self) -> None:
            self.start: float | None = None
            self.times: list[float] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if self.start is not None:
                sync()
                self.times.append(clock() - self.start)
                turns.done(index)
            turns.wait(index)
            sync()
            self.start = clock()

        def on_train_end(self, trainer, pl_module) -> None:
            turns.done(index, finished=True)  # the last step is not timed

    return StepTimer()


class _SameBatch:
    """An iterable of ``n`` times the same batch, with a length (for Lightning)."""

    def __init__(self, batch: Any, n: int) -> None:
        self.batch, self.n = batch, n

    def __iter__(self):
        return itertools.repeat(self.batch, self.n)

    def __len__(self) -> int:
        return self.n


def _class_folders(root: str, n: int = 10) -> None:
    """``n`` class folders with one tiny image each: what the config checks ask of
    data.train_path (the timed batches are synthetic)."""
    from PIL import Image

    for c in range(n):
        os.makedirs(os.path.join(root, f"class{c}"))
        Image.new("RGB", (4, 4)).save(os.path.join(root, f"class{c}", "0.png"))


def build(method: str, batch_size: int, train_dir: str) -> tuple[Any, Any]:
    """(cfg, model) for the shipped fashion-mnist config of ``method`` at ``batch_size``."""
    from hydra import compose, initialize_config_dir

    from cvr_solo.launch.pretrain import build_model

    name = {"barlow_twins": "barlow"}.get(method, method)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.2"):
        cfg = compose(config_name=name, overrides=[
            f"data.train_path={train_dir}", "data.val_path=null",
            f"optimizer.batch_size={batch_size}",
            "checkpoint.enabled=False", "auto_resume.enabled=False"])
    return build_model(cfg)


def synthetic_batch(cfg: Any, batch_size: int, device: str) -> list[Any]:
    """solo-learn's pretraining batch [indexes, [view 1, view 2], targets], random images of
    the config's crop size."""
    g = torch.Generator().manual_seed(0)
    crop = int(cfg.augmentations[0].crop_size)
    views = [torch.randn(batch_size, 3, crop, crop, generator=g).to(device)
             for _ in range(int(cfg.data.num_large_crops))]
    targets = torch.randint(0, int(cfg.data.num_classes), (batch_size,), generator=g)
    return [torch.arange(batch_size, device=device), views, targets.to(device)]


def time_steps(methods: list[str], batch_size: int, device: str, steps: int, warmup: int,
               clock: Any = time.perf_counter) -> dict[str, list[float]]:
    """Per-method step times (s), ``steps`` of them after ``warmup``, interleaved.
    ``clock``: time.perf_counter (wall) or time.process_time (this process's CPU time: the
    other threads only wait while one steps)."""
    from lightning.pytorch import Trainer

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    n_batches = warmup + steps + 1
    turns = _Turns(len(methods))
    timers, jobs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        _class_folders(tmp)
        for i, method in enumerate(methods):
            cfg, model = build(method, batch_size, tmp)
            timer = _step_timer(turns, i, sync, clock)
            trainer = Trainer(
                accelerator="gpu" if device.startswith("cuda") else "cpu", devices=1,
                precision="bf16-mixed" if device.startswith("cuda") else "32-true",
                max_epochs=1, max_steps=n_batches, logger=False, enable_checkpointing=False,
                enable_progress_bar=False, enable_model_summary=False,
                num_sanity_val_steps=0, limit_val_batches=0, callbacks=[timer])
            data = _SameBatch(synthetic_batch(cfg, batch_size, device), n_batches)
            timers.append(timer)
            jobs.append((trainer, model, data))
    errors: list[BaseException] = []

    def fit(trainer, model, data) -> None:
        try:
            trainer.fit(model, train_dataloaders=data)
        except BaseException as err:  # surface it in the main thread
            errors.append(err)
            turns.fail()

    threads = [threading.Thread(target=fit, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return {m: t.times[warmup:] for m, t in zip(methods, timers, strict=True)}


def count_flops(method: str, batch_size: int) -> int:
    """Matmul/conv FLOPs of one training step's forward + backward (torch.utils.flop_counter;
    elementwise work, the optimiser and the EMA are not counted), on CPU, without a Trainer
    (logging is then skipped)."""
    from torch.utils.flop_counter import FlopCounterMode

    with tempfile.TemporaryDirectory() as tmp:
        _class_folders(tmp)
        cfg, model = build(method, batch_size, tmp)
    model.train()
    batch = synthetic_batch(cfg, batch_size, "cpu")
    with FlopCounterMode(display=False) as counter:
        out = model.training_step(batch, 0)
        (out["loss"] if isinstance(out, dict) else out).backward()
    return counter.get_total_flops()


def _commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-sizes", default=None,
                        help="comma-separated; default 64 on CPU, 256,1024 on a GPU")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per method (default 30 on CPU, 100 on a GPU)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed steps first (default 5 on CPU, 20 on a GPU)")
    parser.add_argument("--pairs", default="simclr:c_simclr,byol:c_byol",
                        help="baseline:variant pairs, comma-separated")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--flops", action="store_true",
                        help="also count each method's matmul/conv FLOPs per step (on CPU)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time this process's CPU time instead of wall time (CPU only: "
                             "other processes on the cores inflate it far less; with "
                             "--threads 1, since idle OpenMP threads spin and count too)")
    args = parser.parse_args(argv)
    gpu = args.device.startswith("cuda")
    if args.threads:
        torch.set_num_threads(args.threads)
    if gpu and args.cpu_time:
        parser.error("--cpu-time measures the host's CPU, not the GPU: use it on CPU only")
    sizes = [int(b) for b in (args.batch_sizes or ("256,1024" if gpu else "64")).split(",")]
    steps = args.steps or (100 if gpu else 30)
    warmup = args.warmup if args.warmup is not None else (20 if gpu else 5)
    pairs = [tuple(p.split(":")) for p in args.pairs.split(",")]
    methods = [m for p in pairs for m in p]

    import logging
    import warnings

    import lightning.pytorch  # noqa: F401  (its import resets its loggers' levels)

    for name in ("", "lightning.pytorch", "lightning.fabric"):  # "" = root: solo-learn's
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    device_name = torch.cuda.get_device_name() if gpu else (platform.processor()
                                                            or platform.machine())
    print(f"# cvr-solo step benchmark: {args.device} ({device_name}), "
          f"{'bf16-mixed' if gpu else 'fp32'}, {'CPU' if args.cpu_time else 'wall'} time, "
          f"torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, commit {_commit()}")
    print(f"{steps} timed steps after {warmup} warm-up steps, methods interleaved; "
          f"load average at start {os.getloadavg()[0]:.2f}\n")
    print("| batch | method | median step (ms) | p25-p75 (ms) |")
    print("|---|---|---|---|")
    ratios = []
    for bs in sizes:
        times = time_steps(methods, bs, args.device, steps, warmup,
                           time.process_time if args.cpu_time else time.perf_counter)
        for m in methods:
            q = statistics.quantiles(times[m], n=4)
            print(f"| {bs} | {m} | {statistics.median(times[m]) * 1e3:.1f} | "
                  f"{q[0] * 1e3:.1f}-{q[2] * 1e3:.1f} |")
        for base, variant in pairs:
            med = statistics.median(times[variant]) / statistics.median(times[base])
            paired = statistics.median(v / b for v, b in zip(times[variant], times[base],
                                                             strict=True))
            ratios.append((bs, f"{variant}/{base}", med, paired))
    print("\n| batch | ratio | of medians | median per-round ratio |")
    print("|---|---|---|---|")
    for bs, name, med, paired in ratios:
        print(f"| {bs} | {name} | {med:.3f} | {paired:.3f} |")
    if args.flops:
        print("\n| batch | ratio of matmul/conv FLOPs per step (forward + backward) |")
        print("|---|---|")
        for bs in sizes:
            flops = {m: count_flops(m, bs) for m in methods}
            for base, variant in pairs:
                print(f"| {bs} | {variant}/{base} = {flops[variant] / 1e9:.2f} / "
                      f"{flops[base] / 1e9:.2f} GFLOP = {flops[variant] / flops[base]:.3f} |")
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
