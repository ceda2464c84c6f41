"""Two processes at batch B/2 train like one at batch B; the ranks draw their own vMF noise.

The processes (gloo, CPU) train through cvr-solo's own Trainer (:func:`build_trainer`: the
``ddp`` strategy, every callback) on fixed batches, two optimiser steps (the config's
optimiser, solo-learn's lr scaling by the device count), in float64. What the check needs
from outside:
- the vMF draws are a fixed function of their mean (identical however the batch is split);
- BatchNorm is synchronised across the processes, as solo-learn's ``sync_batchnorm: True``
  does on GPUs. torch's SyncBatchNorm refuses CPU tensors, so each BatchNorm here computes
  its statistics over the global batch through a differentiable all-gather (what SyncBN
  computes). Without it the processes normalise over B/2 each and the weights differ
  (checked too): SyncBN is needed, and the shipped configs set ``sync_batchnorm: True``.
"""

from __future__ import annotations

import os
import types
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from .helpers import PRETRAIN, crop_overrides

B, CROP, STEPS = 8, 16, 2
#: the C-variants: each baseline's training path (solo-learn's class, our Trainer) runs inside
#: its C-variant's, which adds the CEB terms, so a baseline alone would check nothing more
METHODS = ("c_simclr", "c_byol", "c_mocov3", "c_simsiam")
SMALL = {"c_simclr": ["proj_hidden_dim=32", "proj_output_dim=16"],
         "c_byol": ["proj_hidden_dim=32", "proj_output_dim=16", "pred_hidden_dim=32",
                    "b_hidden_dim=32"],
         "c_mocov3": ["proj_hidden_dim=32", "proj_output_dim=16", "pred_hidden_dim=32"],
         "c_simsiam": ["proj_hidden_dim=32", "proj_output_dim=16", "pred_hidden_dim=32",
                       "b_hidden_dim=32"]}
#: 2-process runs: (method, mode); mode equal: fixed vMF draws + synchronised BN, plain_bn:
#: fixed draws, per-process BN, noise: the real sampler, the same images on both ranks.
TWO = [*((m, "equal") for m in METHODS), ("c_simclr", "plain_bn"), ("c_simclr", "noise")]
ONE = [(m, "equal") for m in METHODS]
#: tolerance on each weight tensor's relative difference ||a - b|| / ||a||. In float64 the
#: runs agree to ~2e-13; in float32 rounding (the order of the sums differs) is amplified by
#: C-SimCLR's kappa_e = 1024 to ~3e-3 after two steps, so the check runs in float64.
RTOL = 1e-9


def _fixed_vmf(loc: torch.Tensor, kappa: float, sample_shape=()) -> tuple[torch.Tensor,
                                                                          torch.Tensor]:
    z = F.normalize(loc + 0.05 * torch.sin(50.0 * loc), dim=-1)
    return z, (loc * z).sum(-1)


def _global_bn_forward(bn: torch.nn.modules.batchnorm._BatchNorm, x: torch.Tensor):
    """BatchNorm over the batches of all ranks (training), differentiable."""
    from cvr_solo.ceb.distributed import gather_rows

    if not bn.training:
        return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False,
                            0.0, bn.eps)
    dims = [0, *range(2, x.dim())]
    c = x.shape[1]
    n = x.new_full((1,), x.numel() / c)
    total = gather_rows(torch.cat([x.sum(dims), (x * x).sum(dims), n]).unsqueeze(0))[0].sum(0)
    count = total[-1]
    mean = total[:c] / count
    var = total[c:2 * c] / count - mean * mean
    with torch.no_grad():
        m = bn.momentum
        bn.running_mean.mul_(1 - m).add_(m * mean)
        bn.running_var.mul_(1 - m).add_(m * var * count / (count - 1))
        bn.num_batches_tracked += 1
    shape = [1, c, *[1] * (x.dim() - 2)]
    y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + bn.eps)
    return y * bn.weight.view(shape) + bn.bias.view(shape) if bn.affine else y


class _Views(torch.utils.data.Dataset):
    def __init__(self, rows: list[int]) -> None:
        g = torch.Generator().manual_seed(3)
        n = B * STEPS
        self.x = [torch.rand(n, 3, CROP, CROP, generator=g) for _ in range(2)]
        self.y = torch.randint(0, 10, (n,), generator=g)
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        r = self.rows[i]
        return r, [self.x[0][r], self.x[1][r]], self.y[r]


def _rows(rank: int, world: int, same: bool) -> list[int]:
    per = B // world
    return [s * B + (0 if same else rank * per) + j for s in range(STEPS) for j in range(per)]


def _train(rank: int, world: int, method: str, mode: str, tmp: Path):
    from hydra import compose, initialize_config_dir
    from PIL import Image

    import cvr_solo.ceb.heads as heads
    import cvr_solo.ceb.losses as losses
    import cvr_solo.ceb.losses_beyond as beyond
    from cvr_solo.launch.pretrain import build_model
    from cvr_solo.launch.resume import ResumePoint
    from cvr_solo.launch.trainer import build_trainer

    train = tmp / "classes"  # what the start-up checks read; the batches are fixed tensors
    for c in range(10):
        (train / f"c{c}").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (CROP, CROP)).save(train / f"c{c}" / "0.png")
    crops = crop_overrides(method, CROP)
    with initialize_config_dir(config_dir=str(PRETRAIN), version_base="1.2"):
        cfg = compose(config_name=method, overrides=[
            f"data.train_path={train}", "data.val_path=null", f"checkpoint.dir={tmp / 'ck'}",
            "checkpoint.enabled=False", "auto_resume.enabled=False", "accelerator=cpu",
            f"devices=\"{world}\"", f"strategy={'ddp' if world > 1 else 'auto'}",
            "sync_batchnorm=False", f"optimizer.batch_size={B // world}", "max_epochs=1",
            "precision=64",
            f"++max_steps={STEPS}", "++use_distributed_sampler=False",
            "++enable_progress_bar=False", "++enable_model_summary=False",
            "++limit_val_batches=0", "++scheduler.warmup_epochs=0", "data.num_workers=0",
            *crops, *(f"method_kwargs.{o}" for o in SMALL[method])])
    sampler = {"losses": losses.vmf_rsample, "heads": heads.vmf_rsample,
               "beyond": beyond.vmf_rsample}
    drawn: list[torch.Tensor] = []
    if mode == "noise":
        def recording(loc, kappa, sample_shape=()):
            z, cos = sampler["losses"](loc, kappa, sample_shape)
            drawn.append(z.detach().clone())
            return z, cos
        losses.vmf_rsample = heads.vmf_rsample = beyond.vmf_rsample = recording
    else:
        losses.vmf_rsample = heads.vmf_rsample = beyond.vmf_rsample = _fixed_vmf
    try:
        cfg, model = build_model(cfg)
        if mode == "equal":
            for mod in model.modules():
                if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                    mod.forward = types.MethodType(_global_bn_forward, mod)
        trainer = build_trainer(cfg, str(tmp / "ck" / method), ResumePoint())
        loader = torch.utils.data.DataLoader(_Views(_rows(rank, world, mode == "noise")),
                                             batch_size=B // world, shuffle=False)
        trainer.fit(model, train_dataloaders=loader)
        assert trainer.global_step == STEPS
    finally:
        losses.vmf_rsample, heads.vmf_rsample = sampler["losses"], sampler["heads"]
        beyond.vmf_rsample = sampler["beyond"]
    if mode == "noise":
        return drawn[0]
    return {k: v.detach().double().clone() for k, v in model.state_dict().items()
            if v.is_floating_point()}


def _worker(rank: int, world: int, jobs: list[tuple[str, str]], out: str) -> None:
    os.environ.update(LOCAL_RANK=str(rank), NODE_RANK="0", RANK=str(rank),
                      WORLD_SIZE=str(world), PYTHONWARNINGS="ignore")
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{out}/rendezvous", rank=rank,
                                world_size=world)
    try:
        results = {}
        for method, mode in jobs:
            result = _train(rank, world, method, mode, Path(out) / f"r{rank}")
            if rank == 0 or mode == "noise":
                results[(method, mode)] = result
        torch.save(results, os.path.join(out, f"world{world}-rank{rank}.pt"))
        if world > 1:
            dist.barrier()
    finally:
        if world > 1:
            dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("ddp-equivalence")
    for world, jobs in ((1, ONE), (2, TWO)):
        folder = out / f"w{world}"
        folder.mkdir()
        mp.spawn(_worker, args=(world, jobs, str(folder)), nprocs=world, join=True)
    load = lambda p: torch.load(p, weights_only=False)  # noqa: E731
    return {"one": load(out / "w1" / "world1-rank0.pt"),
            "two": load(out / "w2" / "world2-rank0.pt"),
            "two_rank1": load(out / "w2" / "world2-rank1.pt")}


def _worst(a: dict, b: dict) -> tuple[float, str]:
    """The largest relative difference ||a - b|| / ||a|| over the weight tensors (BatchNorm
    running statistics included), and its name. ||a|| is floored at 1e-6: a tensor that is 0
    in exact arithmetic holds rounding noise (the running mean of MoCo v3's and SimSiam's
    predictor BatchNorm, after a bias-free Linear on an affine-free BatchNorm, has norm
    ~6e-17), whose relative difference means nothing."""
    assert a.keys() == b.keys()
    return max((((a[k] - b[k]).norm() / a[k].norm().clamp_min(1e-6)).item(), k)
               for k in a if a[k].numel())


@pytest.mark.parametrize("method", METHODS)
def test_two_processes_at_half_batch_equal_one_process(runs, method):
    diff, name = _worst(runs["one"][(method, "equal")], runs["two"][(method, "equal")])
    assert diff < RTOL, f"{method}: {name} differs by {diff:.2e} (relative)"


def test_without_synchronised_batchnorm_the_processes_differ(runs):
    diff, _ = _worst(runs["one"][("c_simclr", "equal")],
                     runs["two"][("c_simclr", "plain_bn")])
    assert diff > 1e-3


def test_ranks_draw_different_vmf_noise(runs):
    z0, z1 = runs["two"][("c_simclr", "noise")], runs["two_rank1"][("c_simclr", "noise")]
    assert z0.shape == z1.shape
    # the same images on both ranks: the same means, so any difference is the noise
    assert not torch.allclose(z0, z1)
    assert (z0 - z1).norm(dim=-1).min() > 1e-3
