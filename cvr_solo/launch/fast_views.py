"""The same pretraining views for less CPU: two changes to solo-learn's torchvision pipeline
that leave every pixel as it was.

solo-learn builds each view as ``Compose([RandomResizedCrop, ColorJitter, ..., ToTensor,
Normalize])`` on an RGB image. On CPU, at small images, two things cost more than the
augmentations themselves:

- **Normalize with OmegaConf lists.** The mean and std come from the config as ``ListConfig``;
  ``torch.as_tensor`` reads those element by element through OmegaConf's error handling on
  every call (~0.2 ms a view, a third of the pipeline at 32 px). Plain floats give the same
  tensors.
- **Grey images as RGB.** A grey image (Fashion-MNIST) read as RGB goes through every PIL
  operation three times. Kept as one channel (PIL mode ``L``) through the augmentations and
  repeated to three channels after ``ToTensor``, it gives the same tensor: each of solo-learn's
  torchvision augmentations acts on the channels of a grey image alike (brightness, contrast,
  crops, flips, blur, solarisation, equalisation), and those that mix channels leave a grey
  image unchanged (saturation, hue, grey-scale), also in RGB. The random draws are the same
  in both modes. Applied only where every step of every view is one of these
  (:data:`GREY_SAFE`), the dataset reads files with torchvision's default loader, and one
  of :data:`PROBES` images spread over the dataset is grey: a colour dataset keeps the
  default loader (the grey check costs ~16 % more decoding on a colour JPEG).

docs/benchmarks.md ("Views per second on CPU") has the measured effect; a test checks the
views are equal.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image
from torchvision import transforms
from torchvision.datasets.folder import default_loader, pil_loader

from cvr_solo.launch.loaders import innermost_dataset

__all__ = ["GREY_SAFE", "PROBES", "ThreeChannels", "faster_views", "grey_or_rgb_loader"]

#: images read at start-up, spread evenly over the dataset, to tell grey from colour data
PROBES = 8


def _solo_augmentations() -> tuple[type, ...]:
    from solo.data.pretrain_dataloader import Equalization, GaussianBlur, Solarization

    return GaussianBlur, Solarization, Equalization


#: torchvision steps of solo-learn's views that treat a grey image the same in L and RGB
GREY_SAFE: tuple[type, ...] = (
    transforms.RandomResizedCrop, transforms.Resize, transforms.CenterCrop,
    transforms.ColorJitter, transforms.RandomGrayscale, transforms.RandomHorizontalFlip,
    transforms.ToTensor, transforms.Normalize)


def grey_or_rgb_loader(path: str) -> Image.Image:
    """An image file as PIL mode ``L`` when it is grey (mode L, or RGB with three equal
    channels), else as RGB (what torchvision's ``pil_loader`` returns).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "a.png")
        >>> Image.new("RGB", (4, 4), (7, 7, 7)).save(path)
        >>> grey_or_rgb_loader(path).mode
        'L'
    """
    with open(path, "rb") as f:
        img = Image.open(f)
        img = img.convert("L") if img.mode == "L" else img.convert("RGB")
    if img.mode == "RGB":
        r, g, b = img.split()
        if r.tobytes() == g.tobytes() == b.tobytes():
            return r
    return img


class ThreeChannels:
    """A one-channel image tensor repeated to three channels (others pass unchanged): what
    ``ToTensor`` gives for the RGB version of a grey image.

    Example:
        >>> ThreeChannels()(torch.zeros(1, 2, 2)).shape
        torch.Size([3, 2, 2])
    """

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(3, -1, -1).contiguous() if x.shape[0] == 1 else x

    def __repr__(self) -> str:
        return "ThreeChannels()"


def _has_grey_images(dataset: Any) -> bool:
    """Whether one of :data:`PROBES` files spread over an ImageFolder's samples is grey."""
    samples = getattr(dataset, "samples", None) or []
    n = len(samples)
    picks = sorted({i * n // PROBES for i in range(PROBES)}) if n else []
    return any(grey_or_rgb_loader(samples[i][0]).mode == "L" for i in picks)


def _composes(pipeline: Any) -> list[transforms.Compose]:
    """The per-view Compose objects of solo-learn's FullTransformPipeline / NCropAugmentation
    (or of a bare Compose)."""
    if isinstance(pipeline, transforms.Compose):
        return [pipeline]
    found = []
    for part in getattr(pipeline, "transforms", None) or []:
        found += _composes(part)
    inner = getattr(pipeline, "transform", None)
    if inner is not None:
        found += _composes(inner)
    return found


def _steps(compose: transforms.Compose) -> list[Any]:
    out = []
    for step in compose.transforms:
        out += list(step.transforms) if isinstance(step, transforms.RandomApply) else [step]
    return out


def faster_views(dataset: Any) -> Any:
    """Makes solo-learn's pretraining dataset produce the same views for less CPU (see the
    module's docstring); returns ``dataset``. A dataset without a torchvision
    ``Compose`` pipeline is left alone; the grey path needs the default image loader and
    grey images too.

    Args:
        dataset: solo-learn's pretraining dataset (an ImageFolder, or a Subset of one).

    Returns:
        The same dataset, changed in place.

    Example:
        >>> from torchvision.datasets import FakeData
        >>> data = FakeData(size=1, transform=transforms.Compose([transforms.ToTensor(),
        ...                 transforms.Normalize(mean=[0.5], std=[0.5])]))
        >>> type(faster_views(data).transform.transforms[1].mean).__name__
        'tuple'
    """
    inner = innermost_dataset(dataset)
    composes = _composes(getattr(inner, "transform", None))
    for compose in composes:
        for step in compose.transforms:
            if isinstance(step, transforms.Normalize):
                step.mean = tuple(float(v) for v in step.mean)
                step.std = tuple(float(v) for v in step.std)
    safe = GREY_SAFE + _solo_augmentations()
    if (composes and getattr(inner, "loader", None) in (default_loader, pil_loader)
            and all(type(s) in safe for c in composes for s in _steps(c))
            and _has_grey_images(inner)):
        inner.loader = grey_or_rgb_loader
        for compose in composes:
            at = [i for i, s in enumerate(compose.transforms) if isinstance(s, transforms.ToTensor)]
            for i in reversed(at):
                compose.transforms.insert(i + 1, ThreeChannels())
    return dataset
