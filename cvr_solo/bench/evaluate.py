"""Evaluation of frozen backbones for the benchmark: linear probe under corruptions, and kNN.

Needs solo-learn (its backbones and kNN classifier). Robustness follows the paper's claim
(Lee et al. 2021, Sec. 5.3): the probe trained on clean images is evaluated on a corrupted copy
of the validation set, CIFAR-10-C style, computed on the fly and deterministic per seed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from torchvision import datasets, transforms
from tqdm import tqdm

from cvr_solo.robustness import CORRUPTIONS, SEVERITIES, corrupt


@dataclass
class ImageSet:
    """Images in [0, 1], (N, 3, H, W), with their labels."""

    images: torch.Tensor
    labels: torch.Tensor


def load_image_folder(root: str | Path) -> ImageSet:
    """An ImageFolder as tensors (fine for the small images the benchmark uses)."""
    ds = datasets.ImageFolder(str(root), transform=transforms.ToTensor())
    images = torch.stack([ds[i][0] for i in range(len(ds))])
    return ImageSet(images, torch.tensor(ds.targets))


def load_backbone(run_args: dict[str, Any], checkpoint: str | Path) -> nn.Module:
    """The pretrained backbone of a pretrain run (its args.json) from ``checkpoint``'s
    ``backbone.*`` tensors, built and checked like ``cvr-solo linear`` does."""
    from cvr_solo.launch.linear import load_backbone as _load

    cfg = OmegaConf.create({
        "backbone": {"name": run_args["backbone"]["name"],
                     "kwargs": run_args["backbone"].get("kwargs", {}) or {}},
        "pretrain_method": run_args["method"],
        "data": {"dataset": run_args["data"]["dataset"]},
        "pretrained_feature_extractor": str(checkpoint),
    })
    return _load(cfg).eval()


def load_probe(checkpoint: str | Path, num_classes: int, features_dim: int) -> nn.Linear:
    """The linear classifier trained by ``cvr-solo linear`` (its ``classifier.*`` tensors)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    probe = nn.Linear(features_dim, num_classes)
    probe.load_state_dict({"weight": state["classifier.weight"],
                           "bias": state["classifier.bias"]})
    return probe.eval()


@torch.no_grad()
def features(backbone: nn.Module, images: torch.Tensor, mean: Sequence[float],
             std: Sequence[float], device: torch.device, batch_size: int = 512
             ) -> torch.Tensor:
    """Backbone features of [0, 1] images normalised with (mean, std)."""
    norm = transforms.Normalize(list(mean), list(std))
    out = []
    for i in range(0, len(images), batch_size):
        x = norm(images[i:i + batch_size]).to(device)
        out.append(backbone(x).float().cpu())
    return torch.cat(out)


def knn_accuracy(train_feats: torch.Tensor, train_labels: torch.Tensor,
                 test_feats: torch.Tensor, test_labels: torch.Tensor, k: int = 20,
                 temperature: float = 0.07) -> float:
    """Weighted kNN top-1 (%) with cosine similarity (Wu et al. 2018), via solo-learn's
    WeightedKNNClassifier; where that cannot be built (torchmetrics >= 0.12 rejects its
    ``compute_on_step``), the same rule written out: votes exp(cos/T) over the k nearest."""
    try:
        from solo.utils.knn import WeightedKNNClassifier

        knn = WeightedKNNClassifier(k=k, T=temperature, distance_fx="cosine")
    except (TypeError, ValueError):  # torchmetrics 1.x raises ValueError
        knn = None
    if knn is not None:
        knn(train_features=train_feats, train_targets=train_labels,
            test_features=test_feats, test_targets=test_labels)
        return float(knn.compute()[0])
    sims = F.normalize(test_feats, dim=1) @ F.normalize(train_feats, dim=1).T
    top, idx = sims.topk(min(k, len(train_labels)), dim=1)
    n_cls = int(max(train_labels.max(), test_labels.max())) + 1
    votes = torch.zeros(len(test_labels), n_cls).scatter_add_(
        1, train_labels[idx], (top / temperature).exp())
    return float((votes.argmax(1) == test_labels).float().mean() * 100)


@torch.no_grad()
def probe_accuracy_under_corruptions(
    backbone: nn.Module, probe: nn.Module, val: ImageSet, mean: Sequence[float],
    std: Sequence[float], device: torch.device, seed: int = 0, batch_size: int = 256,
    corruptions: Sequence[str] = CORRUPTIONS, severities: Sequence[int] = SEVERITIES,
    progress: bool = True,
) -> dict[str, Any]:
    """Top-1 (%) of backbone + probe on clean val and on every (corruption, severity).

    Returns {"clean": acc, "corruptions": {name: [acc per severity]}, "mean_corruption":
    mean over all, "relative_drop": (clean - mean_corruption) / clean}.
    """
    norm = transforms.Normalize(list(mean), list(std))
    model = nn.Sequential(backbone, probe).to(device).eval()
    keys = [("clean", 0)] + [(c, s) for c in corruptions for s in severities]
    correct = dict.fromkeys(keys, 0)
    bar = tqdm(total=len(val.images) * len(keys), desc="robustness", unit="img",
               disable=not progress, leave=False)
    for start in range(0, len(val.images), batch_size):
        x = val.images[start:start + batch_size]
        y = val.labels[start:start + batch_size].to(device)
        for name, sev in keys:
            # a per-batch seed: deterministic, and different noise for each batch
            xc = x if name == "clean" else corrupt(x, name, sev, seed=seed * 100003 + start)
            pred = model(norm(xc).to(device)).argmax(1)
            correct[(name, sev)] += int((pred == y).sum())
            bar.update(len(x))
    bar.close()
    n = len(val.images)
    acc = {k: 100.0 * v / n for k, v in correct.items()}
    per = {c: [acc[(c, s)] for s in severities] for c in corruptions}
    mean_c = sum(sum(v) for v in per.values()) / (len(corruptions) * len(severities))
    clean = acc[("clean", 0)]
    return {"clean": clean, "corruptions": per, "severities": list(severities),
            "mean_corruption": mean_c,
            "relative_drop": (clean - mean_c) / clean if clean > 0 else float("nan")}


def evaluate_run(pretrain_ckpt: str | Path, linear_ckpt: str | Path, train: ImageSet,
                 val: ImageSet, mean: Sequence[float], std: Sequence[float], device: str,
                 seed: int, progress: bool = True) -> dict[str, Any]:
    """kNN of the pretrained backbone and probe accuracy, clean and corrupted."""
    dev = torch.device(device)
    args = json.loads((Path(pretrain_ckpt).parent / "args.json").read_text())
    backbone = load_backbone(args, pretrain_ckpt).to(dev)
    f_train = features(backbone, train.images, mean, std, dev)
    f_val = features(backbone, val.images, mean, std, dev)
    knn = knn_accuracy(f_train, train.labels, f_val, val.labels)
    probe_backbone = load_backbone(args, linear_ckpt)
    n_classes = int(train.labels.max()) + 1
    probe = load_probe(linear_ckpt, n_classes, f_train.shape[1])
    robust = probe_accuracy_under_corruptions(probe_backbone, probe, val, mean, std, dev, seed,
                                              progress=progress)
    return {"knn_acc1": knn, **robust}
