"""Benchmark of the CEB core: the vMF sampler and the losses' forward + backward.

    python benchmarks/bench_core.py [--batch 4096] [--dim 256] [--device cpu]

Prints markdown tables. The sampler is compared with scipy.stats.vonmises_fisher.rvs (one
mean, ``batch`` draws: scipy has no batch of means, so this is its best case), with the
floor, the time torch takes to draw the batch x d standard normal numbers the sampler needs,
and with the previous sampler ("before": a rejection loop that redraws the rejected entries
until none is left, one host decision per round, a device sync on a GPU; kept below only for
this comparison). Goals (issues 2, 9): >= 8x faster than scipy on CPU, <= 2.5x the floor.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

from cvr_solo import c_byol_loss, c_simclr_loss, vmf_rsample
from cvr_solo.ceb.vmf import _rowdot
from cvr_solo.ceb.wood import _wood_constants


def _loop_cosine(n: int, d: int, kappa: float, device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """BEFORE (commit d641096): Wood's cosine by a rejection loop over the rejected entries;
    ``todo.numel()`` decides on the host each round. Returns (w, 1 - w), float64."""
    f64, dm1 = torch.float64, d - 1.0
    b, x0, one_m_x0, log_1m_x0sq = _wood_constants(d, kappa)
    half = torch.full((n,), dm1 / 2, dtype=f64, device=device)
    one_m_w = torch.empty(n, dtype=f64, device=device)
    todo = torch.arange(n, device=device)
    for _ in range(64):
        m = todo.numel()
        g1, g2 = torch._standard_gamma(half[:m]), torch._standard_gamma(half[:m])
        s = g1 / (g1 + g2)
        prop = 2 * b * s / (1 - (1 - b) * s)
        log_u = torch.log(torch.rand(m, dtype=f64, device=device))
        t = kappa * (one_m_x0 - prop) + dm1 * (torch.log(one_m_x0 + x0 * prop) - log_1m_x0sq)
        accept = t >= log_u
        one_m_w[todo] = prop
        todo = todo[~accept]
        if todo.numel() == 0:
            break
    return 1 - one_m_w, one_m_w


def loop_vmf_rsample(loc: torch.Tensor, kappa: float) -> torch.Tensor:
    """BEFORE (commit d641096): the loop's cosine, then the same Householder reflection as
    now with its own Gaussian draw (forward only)."""
    f64 = torch.float64
    n, d = loc.shape
    w, one_m_w = _loop_cosine(n, d, kappa, loc.device)
    z = torch.randn(loc.shape, dtype=loc.dtype, device=loc.device)
    z[:, 0] = 0
    z.mul_((torch.sqrt(one_m_w * (1 + w)) / torch.linalg.vector_norm(z, dim=1).to(f64))
           .to(z.dtype).unsqueeze(1))
    one_m_mu1 = 1 - loc[:, 0].to(f64)
    den = one_m_mu1.square() + torch.linalg.vector_norm(loc[:, 1:], dim=1).to(f64).square()
    num = w * one_m_mu1 - _rowdot(z, loc).to(f64)
    c = torch.where(den > 1e-12, 2 * num / den.clamp_min(1e-12), torch.zeros_like(den))
    z.addcmul_(c.to(z.dtype).unsqueeze(1), loc)
    z[:, 0] += (w - c).to(z.dtype)
    return z


#: The clock: wall time, or with --cpu-time this process's CPU time (all its threads), which
#: other processes competing for the cores inflate far less than wall time.
CLOCK = {"timer": time.perf_counter}


def _ms(stmt: str, globals_: dict, min_run_time: float) -> float:
    """Median ms per call after 5 warm-up calls (the first large allocations pay page faults
    that later ones, served from the allocator's reuse, do not)."""
    timer = Timer(stmt=stmt, globals=globals_, num_threads=torch.get_num_threads(),
                  timer=CLOCK["timer"])
    timer.timeit(5)
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def _sync(device: str) -> str:
    return "; torch.cuda.synchronize()" if device.startswith("cuda") else ""


def bench_sampler(batch: int, dim: int, device: str, min_run_time: float,
                  rounds: int = 3) -> list[dict]:
    """The floor, and the sampler before and after for each kappa, measured in interleaved
    rounds; the best round's median counts (one-off allocator and frequency effects hit
    whichever runs first)."""
    mu = F.normalize(torch.randn(batch, dim, device=device), dim=-1)
    env = {"torch": torch, "vmf_rsample": vmf_rsample, "loop_vmf_rsample": loop_vmf_rsample,
           "mu": mu, "batch": batch, "dim": dim}
    kappas = (10.0, 1024.0, 16384.0)
    stmts = {"floor": f"torch.randn(batch, dim, device=mu.device){_sync(device)}"}
    for k in kappas:
        stmts[("before", k)] = f"loop_vmf_rsample(mu, {k}){_sync(device)}"
        stmts[("after", k)] = f"vmf_rsample(mu, {k}){_sync(device)}"
    best = dict.fromkeys(stmts, float("inf"))
    for _ in range(rounds):
        for key, stmt in stmts.items():
            best[key] = min(best[key], _ms(stmt, env, min_run_time / rounds))
    try:
        from scipy.stats import vonmises_fisher
    except ImportError:  # pragma: no cover
        vonmises_fisher = None
    rows = []
    for kappa in kappas:
        ref = float("nan")
        if vonmises_fisher is not None:
            dist = vonmises_fisher(mu[0].double().cpu().numpy(), kappa)
            ref = _ms("dist.rvs(batch, random_state=rng)",
                      {"dist": dist, "batch": batch, "rng": __import__("numpy").random
                       .default_rng(0)}, min_run_time)
        rows.append({"kappa": kappa, "before_ms": best[("before", kappa)],
                     "ours_ms": best[("after", kappa)], "scipy_ms": ref,
                     "floor_ms": best["floor"]})
    return rows


def bench_losses(batch: int, dim: int, device: str, min_run_time: float) -> list[dict]:
    g = torch.Generator(device=device).manual_seed(0)
    leaves = [torch.randn(batch, dim, device=device, generator=g, requires_grad=True)
              for _ in range(8)]

    def simclr():
        c_simclr_loss(leaves[0], leaves[1], kappa_e=1024.0, kappa_b=10.0).loss.backward()

    def byol():
        e = (F.normalize(leaves[0], dim=-1), F.normalize(leaves[1], dim=-1))
        zs = [vmf_rsample(m, 16384.0) for m in e]
        b = (F.normalize(leaves[6], dim=-1), F.normalize(leaves[7], dim=-1))
        c_byol_loss((leaves[2], leaves[3]), (leaves[4], leaves[5]), [z for z, _ in zs], e, b,
                    e_cos=[c for _, c in zs]).loss.backward()

    def nt_xent():  # the SimCLR baseline at the same shapes, for the CEB overhead
        z = F.normalize(torch.cat([leaves[0], leaves[1]]), dim=-1)
        logits = 10.0 * z @ z.T
        logits.fill_diagonal_(float("-inf"))
        target = torch.arange(2 * batch, device=z.device).roll(batch)
        F.cross_entropy(logits, target).backward()

    env = {"simclr": simclr, "byol": byol, "nt_xent": nt_xent, "torch": torch}
    return [
        {"loss": "reference: plain NT-Xent, same shapes",
         "ms": _ms(f"nt_xent(){_sync(device)}", env, min_run_time)},
        {"loss": "c_simclr_loss (2B x 2B logits)",
         "ms": _ms(f"simclr(){_sync(device)}", env, min_run_time)},
        {"loss": "c_byol_loss (incl. 2 vMF draws)",
         "ms": _ms(f"byol(){_sync(device)}", env, min_run_time)},
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--min-run-time", type=float, default=2.0,
                        help="seconds per measurement (torch.utils.benchmark)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time this process's CPU time instead of wall time (CPU only)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cpu_time:
        CLOCK["timer"] = time.process_time
    print(f"# cvr-solo core benchmark: batch {args.batch}, d {args.dim}, device {args.device}")
    print(f"{'CPU' if args.cpu_time else 'wall'} time, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, load average "
          f"{os.getloadavg()[0]:.2f}\n")
    print("| kappa | before: loop (ms) | after: fixed shapes (ms) | scipy rvs (ms) | "
          "floor: randn (ms) | after vs scipy | after x floor | before x floor |")
    print("|---|---|---|---|---|---|---|---|")
    for r in bench_sampler(args.batch, args.dim, args.device, args.min_run_time):
        vs_scipy = r["scipy_ms"] / r["ours_ms"]
        print(f"| {r['kappa']:g} | {r['before_ms']:.2f} | {r['ours_ms']:.2f} | "
              f"{r['scipy_ms']:.2f} | {r['floor_ms']:.2f} | "
              f"{'n/a' if math.isnan(vs_scipy) else f'{vs_scipy:.1f}x'} | "
              f"{r['ours_ms'] / r['floor_ms']:.2f} | {r['before_ms'] / r['floor_ms']:.2f} |")
    print("\n| loss, forward + backward | ms |")
    print("|---|---|")
    for r in bench_losses(args.batch, args.dim, args.device, args.min_run_time):
        print(f"| {r['loss']} | {r['ms']:.1f} |")
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
