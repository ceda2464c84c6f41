"""Is C-BYOL's low probe the probe's convergence or its fit? For bench runs (folders under
/work/exp23/runs): the final checkpoint's features, the probe at 200 (the bench's) and 1,000
L-BFGS iterations and at weight decays 1e-3 and 1e-2, train and val top-1, and the feature
spectrum. Usage: python probe_diag.py y_lr02_s7 cy_lr02_s7"""

import glob
import json
import sys
import time
from pathlib import Path

import torch

from cvr_solo.evaluation.frozen import features, load_image_folder, load_validation, run_backbone
from cvr_solo.evaluation.probe import probe_accuracy, train_probe

RUNS = "/work/exp23/runs"
torch.set_num_threads(1)
val = load_validation("/work/data/fmnist/val", None)
cpu = torch.device("cpu")
for name in sys.argv[1:]:
    run = glob.glob(f"{RUNS}/{name}/runs/*/seed-*/pretrain/*/run-*")[0]
    args = json.loads(Path(run, "args.json").read_text())
    train = load_image_folder(glob.glob(f"{RUNS}/{name}/data/seed-*")[0])
    bb = run_backbone(args, glob.glob(run + "/*.ckpt")[0]).to(memory_format=torch.channels_last)
    mean, std = args["augmentations"][0]["mean"], args["augmentations"][0]["std"]
    ft = features(bb, train.images, mean, std, cpu)
    fv = features(bb, val.images, mean, std, cpu)
    ev = torch.linalg.svdvals(ft - ft.mean(0)) ** 2
    ev = ev / ev.sum()
    print(name, "dims std<1e-4:", int((ft.std(0) < 1e-4).sum()),
          f"top1/top10 var share: {ev[0]:.3f} {ev[:10].sum():.3f}",
          f"mean |f| {ft.norm(dim=1).mean():.3f}", flush=True)
    for it in (200, 1000):
        t = time.time()
        p = train_probe(ft, train.labels, max_iter=it)
        print(f"  probe max_iter {it}: train {probe_accuracy(p, ft, train.labels):.2f} "
              f"val {probe_accuracy(p, fv, val.labels):.2f} ({time.time() - t:.0f} s)", flush=True)
    for wd in (1e-3, 1e-2):
        p = train_probe(ft, train.labels, weight_decay=wd)
        print(f"  probe wd {wd:g}: train {probe_accuracy(p, ft, train.labels):.2f} "
              f"val {probe_accuracy(p, fv, val.labels):.2f}", flush=True)
