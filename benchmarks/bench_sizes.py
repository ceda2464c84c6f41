"""What a ResNet-18 training step costs on this CPU at each candidate input size and stem.

    python benchmarks/bench_sizes.py [--sizes 32,24,16] [--batch 128] [--steps 4] [--fp32]

For issue #16 (a CPU benchmark budget that learns): the forward + backward + SGD step of
torchvision's ResNet-18 (10 classes), channels-last, in bf16 autocast unless --fp32, on one
fixed random batch (no data loading, no augmentation, no SSL head or loss), with the
small-image stem (3x3 stride-1 conv1, no max-pool; cvr_solo.solo.stem) at each size and the
ImageNet stem at the largest. Prints a markdown table of the median images per second over
--steps steps after one warm-up step; ``--batch`` counts views (two per source image in SSL).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
import torchvision

from cvr_solo.solo.stem import use_small_stem


def images_per_second(small_stem: bool, px: int, batch: int, steps: int,
                      bf16: bool) -> float:
    """Median images/s of ``steps`` training steps (after one warm-up step)."""
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)
    if small_stem:
        net = use_small_stem(net)
    net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.randn(batch, 3, px, px).to(memory_format=torch.channels_last)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = net(x).float().logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - start)
    times.sort()
    return batch / times[len(times) // 2]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="32,24,16", help="input sizes in px, comma-separated")
    ap.add_argument("--batch", type=int, default=128, help="views per step")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}, "
          f"{'fp32' if args.fp32 else 'bf16'}, batch {args.batch}")
    print("| stem | px | images/s |\n|---|---|---|")
    for small, px in [*((True, s) for s in sizes), (False, max(sizes))]:
        rate = images_per_second(small, px, args.batch, args.steps, not args.fp32)
        print(f"| {'small' if small else 'ImageNet'} | {px} | {rate:.0f} |", flush=True)


if __name__ == "__main__":
    main()
