"""Evaluation of frozen backbones: kNN and linear probe on features computed once, the probe
on corrupted copies of a fixed validation subset (CIFAR-10-C style, fixed noise; Lee et al.
2021, Sec. 5.3), and the reference rows (raw pixels, an untrained backbone). Needs solo-learn."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn as nn
from torchvision import datasets, transforms
from tqdm import tqdm

from cvr_solo.evaluation.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from cvr_solo.evaluation.probe import Probe, probe_accuracy, select_probe
from cvr_solo.evaluation.protocol import PROTOCOL, Scores


@dataclass
class ImageSet:
    """Images in [0, 1], (N, 3, H, W), with their labels."""

    images: torch.Tensor
    labels: torch.Tensor


def load_image_folder(root: str | Path) -> ImageSet:
    """An ImageFolder as tensors (fine for the benchmark's small images)."""
    ds = datasets.ImageFolder(str(root), transform=transforms.ToTensor())
    return ImageSet(torch.stack([ds[i][0] for i in range(len(ds))]), torch.tensor(ds.targets))


def load_validation(root: str | Path, n: int | None) -> ImageSet:
    """The class-balanced draw (seed 0) of ``n`` images of ``root`` (None: all)."""
    from cvr_solo.data.balanced import balanced_indices

    full = load_image_folder(root)
    idx = balanced_indices(full.labels, n, seed=0)
    return ImageSet(full.images[idx], full.labels[idx])


def run_backbone(run_args: dict[str, Any], checkpoint: str | Path) -> nn.Module:
    """A run's backbone (``run_args``: its args.json) from ``checkpoint``, as ``cvr-solo
    linear`` builds it."""
    from cvr_solo.launch.linear import load_pretrained_backbone

    bb = run_args["backbone"]
    return load_pretrained_backbone(checkpoint, bb["name"], bb.get("kwargs") or {},
                                    run_args["method"], run_args["data"]["dataset"]).eval()


def _forward(backbone: nn.Module, x: torch.Tensor, device: torch.device, precision: str
             ) -> torch.Tensor:
    """Float32 features of ``x``, under bf16 autocast for a ``bf16`` precision (the
    pretraining's)."""
    x = x.to(device).contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled="bf16" in str(precision)):
        return backbone(x).float().cpu()


@torch.no_grad()
def features(backbone: nn.Module, images: torch.Tensor, mean: Sequence[float],
             std: Sequence[float], device: torch.device, batch_size: int = 512,
             precision: str = "32") -> torch.Tensor:
    """Backbone features of [0, 1] images normalised with (mean, std)."""
    norm = transforms.Normalize(list(mean), list(std))
    return torch.cat([_forward(backbone, norm(images[i:i + batch_size]), device, precision)
                      for i in range(0, len(images), batch_size)])


def knn_accuracy(train_feats: torch.Tensor, train_labels: torch.Tensor,
                 test_feats: torch.Tensor, test_labels: torch.Tensor,
                 k: int = PROTOCOL.knn_k, temperature: float = PROTOCOL.knn_temperature
                 ) -> float:
    """Weighted kNN top-1 (%), cosine, votes exp(cos/T) over the k nearest (Wu et al. 2018):
    solo-learn's ``WeightedKNNClassifier.compute`` on its state as a plain object, since the
    metric's constructor fails under torchmetrics >= 0.12 (it passes ``compute_on_step``) and
    the bench runs on both stacks."""
    from solo.utils.knn import WeightedKNNClassifier

    state = SimpleNamespace(k=k, T=temperature, distance_fx="cosine", epsilon=1e-5,
                            max_distance_matrix_size=int(5e6), train_features=[train_feats],
                            train_targets=[train_labels], test_features=[test_feats],
                            test_targets=[test_labels], reset=lambda: None)
    return float(WeightedKNNClassifier.compute(state)[0])


@torch.no_grad()
def probe_accuracy_under_corruptions(
    backbone: nn.Module, probe: nn.Module, val: ImageSet, mean: Sequence[float],
    std: Sequence[float], device: torch.device, batch_size: int = 256,
    corruptions: Sequence[str] = CORRUPTIONS, severities: Sequence[int] = SEVERITIES,
    progress: bool = True, precision: str = "32",
) -> dict[str, Any]:
    """Top-1 (%) of backbone + probe on clean ``val`` and on every (corruption, severity), as
    the keys of :class:`Scores` with "clean" for ``clean_corruption_subset``."""
    norm = transforms.Normalize(list(mean), list(std))
    backbone = backbone.to(device).eval()
    keys = [("clean", 0)] + [(c, s) for c in corruptions for s in severities]
    correct = dict.fromkeys(keys, 0)
    bar = tqdm(total=len(val.images) * len(keys), desc="robustness", unit="img",
               disable=not progress, leave=False)
    for start in range(0, len(val.images), batch_size):
        x, y = val.images[start:start + batch_size], val.labels[start:start + batch_size]
        for name, sev in keys:
            # seeded per batch: deterministic, and different noise for each batch
            xc = x if name == "clean" else corrupt(x, name, sev, seed=start)
            pred = probe(_forward(backbone, norm(xc), device, precision)).argmax(1)
            correct[(name, sev)] += int((pred == y).sum())
            bar.update(len(x))
    bar.close()
    acc = {k: 100.0 * v / len(val.images) for k, v in correct.items()}
    clean, mean_c = acc.pop(("clean", 0)), fmean(acc.values())
    return {"clean": clean, "corruptions": {c: [acc[(c, s)] for s in severities]
                                            for c in corruptions},
            "severities": list(severities), "mean_corruption": mean_c,
            "relative_drop": (clean - mean_c) / clean if clean > 0 else float("nan")}


def knn_and_probe(backbone: nn.Module, train: ImageSet, val: ImageSet, mean: Sequence[float],
                  std: Sequence[float], device: str, precision: str = "32"
                  ) -> tuple[float, float, Probe]:
    """(kNN top-1, probe top-1, the probe) on ``val`` of a frozen backbone run at
    ``precision``, with ``train`` the kNN bank and the probe's training set (:data:`PROTOCOL`;
    the features computed once, probe and kNN in float32)."""
    dev = torch.device(device)
    backbone = backbone.to(dev, memory_format=torch.channels_last).eval()
    f_train, f_val = (features(backbone, s.images, mean, std, dev, precision=precision)
                      for s in (train, val))
    knn = knn_accuracy(f_train, train.labels, f_val, val.labels)
    probe, _ = select_probe(f_train, train.labels)
    return knn, probe_accuracy(probe, f_val, val.labels), probe


def evaluate_backbone(backbone: nn.Module, train: ImageSet, val: ImageSet,
                      corruption_idx: torch.Tensor, severities: Sequence[int],
                      mean: Sequence[float], std: Sequence[float], device: str,
                      progress: bool = True, precision: str = "32") -> Scores:
    """:func:`knn_and_probe`, then the probe on corrupted copies of ``val[corruption_idx]``
    (noise seeded with 0 for every run; ``relative_drop`` against their clean accuracy)."""
    knn, clean, probe = knn_and_probe(backbone, train, val, mean, std, device, precision)
    sub = ImageSet(val.images[corruption_idx], val.labels[corruption_idx])
    robust = probe_accuracy_under_corruptions(backbone, probe, sub, mean, std,
                                              torch.device(device), severities=severities,
                                              progress=progress, precision=precision)
    return Scores(knn_acc1=knn, clean=clean, clean_corruption_subset=robust.pop("clean"),
                  corruption_images=len(sub.images), **robust)


def random_backbone(name: str, kwargs: dict[str, Any], seed: int = 0) -> nn.Module:
    """solo-learn's backbone ``name`` at its random initialisation, classifier removed."""
    from solo.methods.base import BaseMethod

    from cvr_solo.solo.registry import register

    register()
    torch.manual_seed(seed)
    backbone = BaseMethod._BACKBONES[name](method="simclr", **kwargs)
    if hasattr(backbone, "fc"):
        backbone.fc = nn.Identity()
    return backbone.eval()


def reference_rows(train: ImageSet, val: ImageSet, corruption_idx: torch.Tensor,
                   severities: Sequence[int], backbone_name: str,
                   backbone_kwargs: dict[str, Any], mean: Sequence[float],
                   std: Sequence[float], device: str, progress: bool = True,
                   precision: str = "32") -> dict[str, Scores]:
    """The floor rows: a linear probe on raw pixels (no kNN, no corruptions) and an
    untrained backbone (seed 0) of the benchmark's architecture and stem, evaluated as a run."""
    pixels, _ = select_probe(train.images, train.labels)
    return {"raw pixels (linear probe)": Scores(
                clean=probe_accuracy(pixels, val.images, val.labels), knn_acc1=None),
            f"random {backbone_name} (untrained)": evaluate_backbone(
                random_backbone(backbone_name, backbone_kwargs), train, val, corruption_idx,
                severities, mean, std, device, progress, precision)}
