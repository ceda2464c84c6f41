"""Does the shipped C-SimCLR collapse under the learning-rate schedule of a real run? (#15)

    python benchmarks/study_c_simclr.py full  --method c_simclr --batch-size 256 --steps 60 \
        [--data /work/data/fmnist] [--set method_kwargs.beta_schedule=warmup ...] --out DIR
    python benchmarks/study_c_simclr.py probe --method c_simclr --batch-size 256 \
        --steps 2400 [--images 8192] [--set ...] --out DIR
    python benchmarks/study_c_simclr.py table DIR/*.jsonl

``full`` trains the shipped Fashion-MNIST config (scripts/pretrain/fashion-mnist, ResNet-18
with the small stem, all 60k images, bf16) through ``cvr-solo pretrain``'s own code and stops
after ``--steps`` optimiser steps *without telling the scheduler*: solo-learn's warm-up cosine
still spans the configured 200 epochs (10 warm-up epochs = 2,340 steps at batch 256), unlike
``+max_steps=N``, which squeezes the warm-up into N steps.

``probe`` is the cheap stand-in for horizons the full model cannot reach on 2 CPU cores: the
backbone of the same method is frozen at initialisation, its features of two augmented views
of ``--images`` training images are computed once, and only the projector trains, with the
method's own loss, LARS settings and the real schedule (warm-up and total steps of the full
run at this batch size), on batches drawn from those features.

Every step both record, as one JSON line: the lr, the method's loss, and of the projections
z1, z2 of the batch: the std of z/|z| per dimension, A (mean ‖h1_i - h2_i‖²), D (mean ‖h_i -
h_j‖², i != j), A/D, and the noise-free contrastive cross-entropy at the method's temperature
minus log(2B-1) (0 = no information about the positive). ``table`` summarises the files.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "scripts" / "pretrain" / "fashion-mnist"


def _cfg(args: argparse.Namespace) -> Any:
    from cvr_solo.config.compose import compose_and_validate

    over = [f"data.train_path={args.data}/train", "data.val_path=null",
            f"optimizer.batch_size={args.batch_size}", "accelerator=cpu", "devices='1'",
            "precision=bf16-mixed", f"data.num_workers={args.workers}",
            "checkpoint.enabled=False", f"checkpoint.dir={args.out}/runs",
            "auto_resume.enabled=False",
            "+enable_progress_bar=False", f"+log_every_n_steps={args.log_every}",
            f"seed={args.seed}", *args.set]
    return compose_and_validate(CONFIG_DIR, f"{args.method}.yaml", over)


def _temperature(cfg: Any) -> float:
    """The method's NT-Xent temperature; 0.2 (the shipped SimCLR's) for methods without one,
    whose contrastive gap is then only a reference."""
    return float(cfg.method_kwargs.get("temperature", 0.2))


def _contrastive_gap(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    """Noise-free NT-Xent of (z1, z2) at ``temperature`` minus log(2B-1)."""
    from cvr_solo.ceb.losses import c_simclr_loss

    out = c_simclr_loss(z1.float(), z2.float(), kappa_b=1.0 / temperature, beta=0.0,
                        sample=False)
    return float(out.contrastive) - math.log(2 * z1.shape[0] - 1)


def _row(step: int, lr: float, loss: float, z1: torch.Tensor, z2: torch.Tensor,
         temperature: float, **extra: Any) -> dict[str, Any]:
    from cvr_solo.common.representation import spread

    s = spread(z1, z2)
    return {"step": step, "lr": lr, "loss": loss, "z_std": float(s.z_std),
            "A": float(s.positive), "D": float(s.negative), "A_over_D": float(s.ratio),
            "contrastive_gap": _contrastive_gap(z1, z2, temperature), **extra}


def _writer(args: argparse.Namespace, kind: str, cfg: Any) -> Any:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mk = cfg.method_kwargs
    guard = [f"guard{mk.get('beta_guard')}"] if args.method == "c_simclr" else []
    tag = "-".join([kind, args.method, f"b{args.batch_size}", *guard,
                    *[s.replace("method_kwargs.", "").lstrip("+") for s in args.set
                      if "beta_guard" not in s]])
    path = out / f"{tag.replace('/', '_')}.jsonl"
    f = path.open("w")
    head = {"kind": kind, "method": args.method, "batch_size": args.batch_size,
            "overrides": args.set, "beta": mk.get("beta", 0.0),
            "beta_schedule": mk.get("beta_schedule", "constant"),
            "beta_guard": mk.get("beta_guard"),
            "kappa_e": mk.get("kappa_e"), "temperature": _temperature(cfg), "seed": args.seed,
            "command": " ".join(sys.argv), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    f.write(json.dumps({"header": head}) + "\n")
    print(f"study: writing {path}", flush=True)
    return f


def run_full(args: argparse.Namespace) -> None:
    """The shipped config through cvr-solo pretrain's code, stopped after --steps steps."""
    from lightning.pytorch import Callback

    from cvr_solo.launch import pretrain

    cfg = _cfg(args)
    f = _writer(args, "full", cfg)
    temperature = _temperature(cfg)

    class Record(Callback):
        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            self.z: list[torch.Tensor] = []
            pl_module.projector.register_forward_hook(lambda m, i, o: self.z.append(o.detach()))

        def on_train_batch_start(self, trainer: Any, *_: Any) -> None:
            self.z.clear()
            self.lr = trainer.optimizers[0].param_groups[0]["lr"]

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any,
                               *_: Any) -> None:
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            logged = trainer.callback_metrics.get("train_beta_step",
                                                  trainer.callback_metrics.get("train_beta"))
            beta = float(logged) if logged is not None else 0.0
            row = _row(trainer.global_step, self.lr, float(loss), self.z[0], self.z[1],
                       temperature, beta=beta)
            f.write(json.dumps(row) + "\n")
            f.flush()
            print(f"study: {row}", flush=True)
            if trainer.global_step >= args.steps:
                trainer.should_stop = True

    pretrain.run(cfg, extra_callbacks=[Record()])


def _features(model: Any, cfg: Any, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Backbone features (bf16 autocast, BN on batch statistics) of two augmented views of n
    training images, and the size of the training set."""
    from solo.data.pretrain_dataloader import (
        FullTransformPipeline,
        NCropAugmentation,
        build_transform_pipeline,
        prepare_datasets,
    )

    pipes = [NCropAugmentation(build_transform_pipeline(cfg.data.dataset, a), a.num_crops)
             for a in cfg.augmentations]
    ds = prepare_datasets(cfg.data.dataset, FullTransformPipeline(pipes),
                          train_data_path=cfg.data.train_path, data_format="image_folder")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=g)[:n].tolist()
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, idx), batch_size=256,
                                         num_workers=cfg.data.num_workers)
    f1, f2 = [], []
    model.backbone.train()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for _, views, _ in loader:
            f1.append(model.backbone(views[0]).float())
            f2.append(model.backbone(views[1]).float())
            print(f"study: features {sum(len(x) for x in f1)}/{n}", flush=True)
    return torch.cat(f1), torch.cat(f2), len(ds)


def run_probe(args: argparse.Namespace) -> None:
    """The projector alone on frozen features, with the method's loss and the real schedule."""
    from solo.losses.simclr import simclr_loss_func
    from solo.utils.lars import LARS
    from solo.utils.lr_scheduler import LinearWarmupCosineAnnealingLR
    from solo.utils.misc import remove_bias_and_norm_from_weight_decay

    from cvr_solo.ceb.guard import guarded_beta
    from cvr_solo.ceb.losses import c_simclr_loss
    from cvr_solo.ceb.schedules import beta_at
    from cvr_solo.launch.pretrain import build_model

    cfg, model = build_model(_cfg(args))
    f = _writer(args, "probe", cfg)
    cache = Path(args.out) / f"features-b{args.images}-s{args.seed}.pt"
    if cache.is_file():
        x1, x2, n_train = torch.load(cache)
    else:
        x1, x2, n_train = _features(model, cfg, args.images, args.seed)
        torch.save((x1, x2, n_train), cache)
    per_epoch = n_train // args.batch_size  # the full run's steps per epoch (drop_last)
    total, warmup = per_epoch * int(cfg.max_epochs), per_epoch * cfg.scheduler.warmup_epochs
    groups = remove_bias_and_norm_from_weight_decay(
        [{"name": "projector", "params": model.projector.parameters()}])
    opt = LARS(groups, lr=cfg.optimizer.lr, weight_decay=cfg.optimizer.weight_decay,
               **cfg.optimizer.kwargs)
    sched = LinearWarmupCosineAnnealingLR(opt, warmup_epochs=warmup, max_epochs=total,
                                          warmup_start_lr=cfg.scheduler.warmup_start_lr)
    mk, temperature = cfg.method_kwargs, float(cfg.method_kwargs.temperature)
    g = torch.Generator().manual_seed(args.seed)
    for step in range(args.steps):
        idx = torch.randint(len(x1), (args.batch_size,), generator=g)
        z1, z2 = model.projector(x1[idx]), model.projector(x2[idx])
        if args.method == "c_simclr":
            ramp = min(total, round(float(mk.beta_warmup_epochs) * per_epoch))
            beta = beta_at(step, total, ramp, float(mk.beta), str(mk.beta_schedule))
            guard = mk.get("beta_guard")
            if guard is not None:  # as method=c_simclr does (CSimCLR.training_step)
                beta = float(guarded_beta(z1, z2, beta, float(mk.kappa_e), float(guard))[0])
            loss = c_simclr_loss(z1, z2, float(mk.kappa_e), float(mk.kappa_b), beta).loss
        else:
            beta = 0.0
            loss = simclr_loss_func(torch.cat([z1, z2]), torch.arange(args.batch_size).repeat(2),
                                    temperature)
        lr = opt.param_groups[0]["lr"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % args.every == 0 or step == args.steps - 1:
            row = _row(step, lr, float(loss), z1, z2, temperature, beta=beta)
            f.write(json.dumps(row) + "\n")
            f.flush()
            if step % (args.every * 10) == 0:
                print(f"study: {row}", flush=True)


def table(paths: list[str]) -> str:
    """A markdown table: per file, the std of z/|z| at init / min / last, A/D at init / last,
    the contrastive gap at the end, the lr at the end and whether it collapsed (std < 0.005
    and gap > -0.05 at the end)."""
    lines = ["| run | steps | lr at end | std z/\\|z\\| init / min / last | A/D init / max / "
             "last | contrastive - log(2B-1), last | collapsed |", "|---|---|---|---|---|---|---|"]
    for p in paths:
        rows = [json.loads(x) for x in Path(p).read_text().splitlines()]
        head, rows = rows[0]["header"], rows[1:]
        if not rows:
            continue
        std = [r["z_std"] for r in rows]
        ratio = [r["A_over_D"] for r in rows]
        last = rows[-1]
        collapsed = last["z_std"] < 0.005 and last["contrastive_gap"] > -0.05
        guard = (f" guard {head.get('beta_guard')}" if head["method"] == "c_simclr" else "")
        name = f"{head['kind']} {head['method']} b{head['batch_size']}{guard} " + " ".join(
            o.replace("method_kwargs.", "") for o in head["overrides"]
            if "beta_guard" not in o)
        lines.append(f"| {name.strip()} | {last['step']} | {last['lr']:.4f} | {std[0]:.4f} / "
                     f"{min(std):.4f} / {std[-1]:.4f} | {ratio[0]:.2f} / {max(ratio):.2f} / "
                     f"{ratio[-1]:.2f} | {last['contrastive_gap']:+.3f} | "
                     f"{'yes' if collapsed else 'no'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=("full", "probe", "table"))
    ap.add_argument("files", nargs="*", help="table: the .jsonl files")
    ap.add_argument("--method", default="c_simclr",
                    choices=("simclr", "c_simclr", "byol", "c_byol", "barlow"))
    ap.add_argument("--log-every", type=int, default=5,
                    help="full: Lightning's log_every_n_steps (the collapse warning's cadence)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--images", type=int, default=8192, help="probe: images featurised")
    ap.add_argument("--every", type=int, default=10, help="probe: record every N steps")
    ap.add_argument("--data", default="datasets/fashion-mnist")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--set", action="append", default=[], help="a Hydra override")
    ap.add_argument("--out", default="results/study-c-simclr")
    args = ap.parse_args(argv)
    if args.mode == "table":
        print(table(args.files))
        return
    torch.set_num_threads(max(1, torch.get_num_threads()))
    (run_full if args.mode == "full" else run_probe)(args)


if __name__ == "__main__":
    main()
