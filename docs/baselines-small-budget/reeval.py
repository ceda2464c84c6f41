"""Re-evaluate bench runs' final checkpoints (folders under /work/exp23/runs) with the current
protocol: kNN, and the probe with its weight decay chosen on held-out training images.
Prints run, kNN, probe, chosen weight decay. ``untrained:<run>`` evaluates a random backbone
of that run's architecture on its images. Usage: python reeval.py s_D y_D untrained:s_D"""

import glob
import json
import sys
from pathlib import Path

import torch

from cvr_solo.evaluation.frozen import (
    features,
    knn_accuracy,
    load_image_folder,
    load_validation,
    random_backbone,
    run_backbone,
)
from cvr_solo.evaluation.probe import probe_accuracy, select_probe
from cvr_solo.evaluation.protocol import PROTOCOL

RUNS = "/work/exp23/runs"
torch.set_num_threads(1)
val = load_validation("/work/data/fmnist/val", None)
cpu = torch.device("cpu")
for name in sys.argv[1:]:
    ref = name.removeprefix("untrained:")
    run = glob.glob(f"{RUNS}/{ref}/runs/*/seed-*/pretrain/*/run-*")[0]
    args = json.loads(Path(run, "args.json").read_text())
    train = load_image_folder(glob.glob(f"{RUNS}/{ref}/data/seed-*")[0])
    if name.startswith("untrained:"):
        bb = random_backbone(args["backbone"]["name"], args["backbone"].get("kwargs") or {})
    else:
        bb = run_backbone(args, glob.glob(run + "/*.ckpt")[0])
    bb = bb.to(memory_format=torch.channels_last).eval()
    mean, std = args["augmentations"][0]["mean"], args["augmentations"][0]["std"]
    ft = features(bb, train.images, mean, std, cpu)
    fv = features(bb, val.images, mean, std, cpu)
    knn = knn_accuracy(ft, train.labels, fv, val.labels, k=PROTOCOL.knn_k,
                       temperature=PROTOCOL.knn_temperature)
    probe, wd = select_probe(ft, train.labels)
    print(f"{name}\t{knn:.2f}\t{probe_accuracy(probe, fv, val.labels):.2f}\t{wd:g}", flush=True)
