"""c_simclr_loss over 2 gloo processes equals one process on the whole batch."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cvr_solo import c_simclr_loss

B, D, WORLD = 8, 16, 2
KW = {"kappa_e": 1024.0, "kappa_b": 10.0, "beta": 0.5, "sample": False}


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    r1 = torch.randn(B, D, generator=g, dtype=torch.float64)
    return r1, r1 + 0.5 * torch.randn(B, D, generator=g, dtype=torch.float64)


def _worker(rank: int, out_dir: str) -> None:
    # file rendezvous: no TCP port to race for
    dist.init_process_group("gloo", init_method=f"file://{out_dir}/rendezvous", rank=rank,
                            world_size=WORLD)
    try:
        r1, r2 = _inputs()
        s = slice(rank * B // WORLD, (rank + 1) * B // WORLD)
        a, b = r1[s].clone().requires_grad_(), r2[s].clone().requires_grad_()
        out = c_simclr_loss(a, b, **KW)
        out.loss.backward()
        torch.save({"loss": out.loss.detach(), "g1": a.grad, "g2": b.grad,
                    "i_yz": out.i_yz, "residual": out.residual},
                   os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()  # no rank tears gloo down while the other still talks to it
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_process_gloo_matches_single_process(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path),), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]

    r1, r2 = _inputs()
    a, b = r1.clone().requires_grad_(), r2.clone().requires_grad_()
    ref = c_simclr_loss(a, b, **KW)
    ref.loss.backward()

    # DDP averages over ranks: the mean of the rank losses is the whole-batch loss ...
    mean_loss = sum(r["loss"] for r in ranks) / WORLD
    assert mean_loss.item() == pytest.approx(ref.loss.item(), rel=1e-12)
    # ... and each rank's input gradient (summed over all ranks' losses through the
    # all-gather), divided by the world size, is the whole-batch gradient of its rows.
    g1 = torch.cat([r["g1"] for r in ranks]) / WORLD
    g2 = torch.cat([r["g2"] for r in ranks]) / WORLD
    assert torch.allclose(g1, a.grad, rtol=1e-10, atol=1e-12)
    assert torch.allclose(g2, b.grad, rtol=1e-10, atol=1e-12)
    # the candidates are the global batch (log(2N - 1) with N = 8, not N = 4)
    mean_i_yz = sum(r["i_yz"] for r in ranks) / WORLD
    assert mean_i_yz.item() == pytest.approx(ref.i_yz.item(), rel=1e-12)
    res = torch.cat([torch.cat([r["residual"][: B // WORLD] for r in ranks]),
                     torch.cat([r["residual"][B // WORLD:] for r in ranks])])
    assert torch.allclose(res, ref.residual)


@pytest.mark.parametrize("world", [1, 3])
def test_gather_rows_as_rank_1_in_process(monkeypatch, world):
    """gather_rows' own arithmetic with torch.distributed's collectives stood in for, as rank
    1 of 3: rows in rank order and this rank's offset; the backward all-reduces the gradient
    of the concatenation and keeps this rank's rows. With one process: the rows themselves.
    (The gloo test above runs it across processes, out of a mutation tester's sight.)"""
    from cvr_solo.ceb.distributed import gather_rows

    others = {0: torch.full((2, 3), 10.0), 2: torch.full((2, 3), 30.0)}
    from_others = torch.full((2 * world, 3), 0.5)  # what the other ranks add to the gradient

    def all_gather(parts, x):
        for r, part in enumerate(parts):
            part.copy_(x if r == 1 else others[r])

    def all_reduce(grad):
        assert grad.is_contiguous()
        grad.add_(from_others)

    for name, value in {"is_available": lambda: True, "is_initialized": lambda: True,
                        "get_world_size": lambda: world, "get_rank": lambda: 1 % world,
                        "all_gather": all_gather, "all_reduce": all_reduce}.items():
        monkeypatch.setattr(dist, name, value)
    x = torch.arange(6.0).reshape(2, 3).requires_grad_()
    rows, offset = gather_rows(x)
    if world == 1:
        assert rows is x and offset == 0
        return
    assert offset == 2
    assert torch.equal(rows, torch.cat([others[0], x.detach(), others[2]]))
    weight = torch.arange(18.0).reshape(6, 3)
    (rows * weight).sum().backward()
    assert torch.equal(x.grad, (weight + from_others)[2:4])
