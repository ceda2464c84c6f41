"""max |BN weight| and max |BN bias| of the backbone (init 1 and 0) in runs' last checkpoints.

    python bnstats.py RUN [RUN ...]     (RUN: a folder under /work/exp23/runs)
"""

import glob
import sys

import torch

for n in sys.argv[1:]:
    ps = sorted(glob.glob(f"runs/{n}/runs/*/seed-*/pretrain/*/run-*/*.ckpt"))
    if not ps:
        print(n, "no checkpoint")
        continue
    sd = torch.load(ps[-1], map_location="cpu", weights_only=False)["state_dict"]
    bn = [k[: -len(".running_var")] for k in sd
          if k.startswith("backbone.") and k.endswith(".running_var")]
    g = max(sd[k + ".weight"].abs().max().item() for k in bn)
    b = max(sd[k + ".bias"].abs().max().item() for k in bn)
    g1 = sd["backbone.bn1.weight"].abs().max().item()
    print(f"{n}: backbone BN max|gamma| {g:.2f} (stem bn1 {g1:.2f}), max|beta| {b:.2f}")
