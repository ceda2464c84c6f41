"""faster_views gives solo-learn's pretraining views pixel for pixel: the same tensors from
the same seeds, for grey images (kept one-channel through the augmentations), colour ones
(only Normalize's lists change) and a mix, with every augmentation solo-learn builds switched
on."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from cvr_solo.launch.fast_views import ThreeChannels, faster_views, grey_or_rgb_loader

AUG = {"crop_size": 24, "mean": [0.2, 0.3, 0.4], "std": [0.3, 0.2, 0.1],
       "rrc": {"enabled": True, "crop_min_scale": 0.08, "crop_max_scale": 1.0},
       "color_jitter": {"prob": 0.8, "brightness": 0.4, "contrast": 0.4, "saturation": 0.2,
                        "hue": 0.1},
       "grayscale": {"prob": 0.5}, "gaussian_blur": {"prob": 0.5},
       "solarization": {"prob": 0.5}, "equalization": {"prob": 0.5},
       "horizontal_flip": {"prob": 0.5}, "num_crops": 2}


def _images(root: Path, grey: bool | str, n: int = 12) -> Path:
    """n images in two classes: grey (saved as RGB, as our export does), colour, or "mixed"
    (every third one grey)."""
    g = torch.Generator().manual_seed(1 + (grey is True) + 2 * (grey == "mixed"))
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(n // 2):
            one = grey is True or (grey == "mixed" and i % 3 == 0)
            px = torch.randint(0, 256, (30, 28, 1 if one else 3), generator=g,
                               dtype=torch.uint8)
            img = px.expand(-1, -1, 3) if one else px
            Image.fromarray(img.contiguous().numpy(), "RGB").save(root / c / f"{i}.png")
    return root


def _dataset(root: Path, aug: dict):
    from solo.data.pretrain_dataloader import (
        FullTransformPipeline,
        NCropAugmentation,
        build_transform_pipeline,
        prepare_datasets,
    )

    cfg = OmegaConf.create(aug)
    pipe = FullTransformPipeline([NCropAugmentation(build_transform_pipeline("custom", cfg),
                                                    cfg.num_crops)])
    return prepare_datasets("custom", pipe, train_data_path=root)


def _views(dataset, seed: int) -> list[list[torch.Tensor]]:
    out = []
    for i in range(len(dataset)):
        torch.manual_seed(seed + i)
        random.seed(seed + i)  # solo-learn's GaussianBlur draws its sigma from random
        out.append(dataset[i][1])
    return out


@pytest.mark.parametrize("grey", [True, False, "mixed"])
def test_faster_views_are_solo_learns_views(tmp_path, grey):
    from torchvision.datasets.folder import default_loader

    root = _images(tmp_path / "data", grey)
    plain, fast = _dataset(root, AUG), faster_views(_dataset(root, AUG))
    # every step here is grey-safe: the grey path is taken where the probes find a grey image
    assert fast.loader is (grey_or_rgb_loader if grey else default_loader)
    assert any(isinstance(s, ThreeChannels) for s in fast.transform.transforms[0]
               .transform.transforms) is bool(grey)
    modes = {fast.loader(path).mode for path, _ in fast.samples}
    assert modes == {True: {"L"}, False: {"RGB"}, "mixed": {"L", "RGB"}}[grey]
    for seed in (0, 100):
        a, b = _views(plain, seed), _views(fast, seed)
        for va, vb in zip(a, b, strict=True):
            assert len(va) == len(vb) == 2
            for x, y in zip(va, vb, strict=True):
                assert x.shape == y.shape == (3, 24, 24)
                assert torch.equal(x, y)


def test_an_unknown_step_keeps_rgb(tmp_path):
    from torchvision import transforms

    root = _images(tmp_path / "data", grey=True, n=2)
    data = _dataset(root, AUG)
    compose = data.transform.transforms[0].transform
    compose.transforms.insert(1, transforms.Lambda(lambda x: x))  # e.g. a user's step
    faster_views(data)
    assert data.loader is not grey_or_rgb_loader
    assert not any(isinstance(s, ThreeChannels) for s in compose.transforms)
    assert all(isinstance(v, float) for s in compose.transforms
               if isinstance(s, transforms.Normalize) for v in s.mean)
