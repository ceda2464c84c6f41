"""CIFAR-10-C style image corruptions, computed on the fly on batches of tensors.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019. The severity parameters are those of the CIFAR-10-C variant of the
authors' corruption code (github.com/hendrycks/robustness, ``make_cifar_c.py``). Seven of its
nineteen corruptions (15 benchmark + 4 extra; gaussian_blur is an extra), those that need no
external assets (frost) and no slow simulation (motion, glass, zoom blur, snow, fog, elastic):

    gaussian_noise  x + N(0, s^2)                       s      = .04 .06 .08 .09 .10
    shot_noise      Poisson(x * lam) / lam              lam    = 500 250 100  75  50
    gaussian_blur   Gaussian filter of std s pixels     s      = .4  .6  .7  .8  1.0
    contrast        (x - m) * c + m, m = channel mean   c      = .75 .5  .4  .3  .15
    brightness      HSV value V -> min(V + c, 1)        c      = .05 .1  .15 .2  .3
    jpeg            JPEG round trip at quality q        q      = 80  65  58  50  40
    pixelate        box-resize to int(c * size), back   c      = .95 .9  .85 .75 .65

Every result is clipped to [0, 1]. Randomness comes from a CPU ``torch.Generator`` seeded
from (seed, name, severity), never the global RNG, so a call is reproducible on any device.

Differences from the released CIFAR-10-C files: results stay float (the files are 8-bit; only
``jpeg`` quantises here), and the blur pads by reflection where skimage's ``gaussian``, which
the original calls, repeats the edge pixel ('nearest'); both differ only near the border.
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cvr_solo.common.checks import check_choice, check_number

__all__ = ["CORRUPTIONS", "SEVERITIES", "corrupt", "corrupted_views"]

CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "gaussian_blur",
    "contrast",
    "brightness",
    "jpeg",
    "pixelate",
)
SEVERITIES = (1, 2, 3, 4, 5)

#: Parameter per severity 1..5 (Hendrycks & Dietterich 2019, CIFAR-10-C settings).
PARAMETERS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "jpeg": (80, 65, 58, 50, 40),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
}

#: Slack on the [0, 1] input range check.
RANGE_TOL = 1e-6
#: Gaussian kernel radius = int(TRUNCATE * sigma + 0.5), scipy.ndimage's (and skimage's) rule.
TRUNCATE = 4.0


# --------------------------------------------------------------------------------------------
# Checks and seeding
# --------------------------------------------------------------------------------------------

def _check_images(images: object) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if not images.is_floating_point():
        raise ValueError(f"images must be a floating-point tensor in [0, 1], got dtype "
                         f"{images.dtype}")
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (B, C, H, W) with C = 1 or 3, got shape "
                         f"{tuple(images.shape)}")
    if images.numel():
        lo, hi = images.min().item(), images.max().item()
        if not (lo >= -RANGE_TOL and hi <= 1 + RANGE_TOL):  # also catches NaN
            raise ValueError(f"images must have values in [0, 1] (tolerance {RANGE_TOL:g}), "
                             f"got min {lo:.6g} and max {hi:.6g}")
    return images


def _generator(seed: int, name: str, severity: int) -> torch.Generator:
    """CPU generator seeded by a stable hash of (seed, name, severity) (not ``hash()``,
    which is salted per process)."""
    digest = hashlib.sha256(f"{seed}|{name}|{severity}".encode()).digest()
    return torch.Generator(device="cpu").manual_seed(int.from_bytes(digest[:8], "little") >> 1)


# --------------------------------------------------------------------------------------------
# The corruptions; x is (B, C, H, W) float32/float64 in [0, 1]
# --------------------------------------------------------------------------------------------

def _gaussian_noise(x: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    return x + sigma * noise.to(x.device)


def _shot_noise(x: torch.Tensor, lam: float, gen: torch.Generator) -> torch.Tensor:
    rate = (x * lam).to("cpu", torch.float64)
    return (torch.poisson(rate, generator=gen) / lam).to(x.device, x.dtype)


def _gaussian_kernel(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Normalised 1-D kernel exp(-k^2 / (2 sigma^2)), k = -r..r, r = int(4 sigma + 0.5)."""
    radius = int(TRUNCATE * sigma + 0.5)
    k = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (k / sigma) ** 2)
    return (w / w.sum()).to(device, dtype)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian filter per channel with reflect padding (edge pixel not repeated,
    scipy's 'mirror'); replicate padding where the image is too small to reflect."""
    b, c, h, w = x.shape
    kernel = _gaussian_kernel(sigma, x.dtype, x.device)
    r = (len(kernel) - 1) // 2
    y = x.reshape(b * c, 1, h, w)
    mode = "reflect" if r < min(h, w) else "replicate"
    y = F.pad(y, (r, r, r, r), mode=mode)
    y = F.conv2d(y, kernel.view(1, 1, 1, -1))
    y = F.conv2d(y, kernel.view(1, 1, -1, 1))
    return y.reshape(b, c, h, w)


def _contrast(x: torch.Tensor, c: float) -> torch.Tensor:
    """(x - m) c + m with m the mean of each channel of each image (as the original, which
    averages an HxWxC array over axes (0, 1)); never leaves [0, 1], keeps the means."""
    m = x.mean(dim=(2, 3), keepdim=True)
    return (x - m) * c + m


def _brightness(x: torch.Tensor, c: float) -> torch.Tensor:
    """V -> min(V + c, 1) in HSV without the round trip.

    With V = max(R, G, B), an RGB pixel is V * f(H, S), so the new pixel is x * V' / V; a black
    pixel (V = 0, hence S = 0) becomes grey (V', V', V'). One channel: x -> min(x + c, 1).
    """
    if x.shape[1] == 1:
        return (x + c).clamp(max=1)
    v = x.amax(dim=1, keepdim=True)
    v_new = (v + c).clamp(max=1)
    positive = v > 0
    ratio = x / torch.where(positive, v, torch.ones_like(v))  # in [0, 1], no overflow
    return torch.where(positive, ratio * v_new, v_new.expand_as(x))


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """PIL JPEG encode/decode of each image (8-bit, PIL's default chroma subsampling)."""
    arr = (x.detach().to("cpu", torch.float64) * 255).round().clamp(0, 255).to(torch.uint8)
    arr = arr.permute(0, 2, 3, 1).numpy()
    out = np.empty_like(arr)
    for i, img in enumerate(arr):
        pil = Image.fromarray(img[:, :, 0]) if img.shape[2] == 1 else Image.fromarray(img)
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        decoded = np.asarray(Image.open(buf))
        out[i] = decoded.reshape(img.shape)
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(x.device, x.dtype) / 255


@functools.lru_cache(maxsize=64)
def _box_weights(n_in: int, n_out: int) -> tuple[tuple[float, ...], ...]:
    """(n_out, n_in) weights of Pillow's BOX resampling along one axis.

    Pillow (libImaging/Resample.c): s = n_in / n_out, f = max(s, 1); output pixel i has centre
    c = (i + 1/2) s and averages the input pixels j in [int(c - f/2 + 1/2), int(c + f/2 + 1/2))
    with box((j - c + 1/2) / f) = 1, box being 1 on (-1/2, 1/2]. Downsampling averages the
    pixels whose centres fall in the output pixel; upsampling (s < 1) is nearest neighbour.
    The arithmetic follows Pillow's double-precision order so that ties break the same way.
    """
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    ss = 1.0 / filterscale
    rows = []
    for i in range(n_out):
        centre = (i + 0.5) * scale
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), n_in)
        row = [0.0] * n_in
        for j in range(lo, hi):
            t = (j - centre + 0.5) * ss
            row[j] = 1.0 if -0.5 < t <= 0.5 else 0.0
        total = sum(row)
        rows.append(tuple(w / total for w in row) if total else tuple(row))
    return tuple(rows)


def _box_resize(x: torch.Tensor, h_out: int, w_out: int) -> torch.Tensor:
    mh = torch.tensor(_box_weights(x.shape[2], h_out), dtype=x.dtype, device=x.device)
    mw = torch.tensor(_box_weights(x.shape[3], w_out), dtype=x.dtype, device=x.device)
    return torch.einsum("ih,bchw,jw->bcij", mh, x, mw)


def _pixelate(x: torch.Tensor, c: float) -> torch.Tensor:
    """BOX-resize to int(c H) x int(c W) and BOX-resize back, as CIFAR-10-C does with PIL."""
    h, w = x.shape[2:]
    small = _box_resize(x, max(1, int(h * c)), max(1, int(w * c)))
    return _box_resize(small, h, w)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------

def corrupt(images: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """``images`` (B, C, H, W) in [0, 1], C = 1 or 3, corrupted by ``name`` at ``severity``.

    Returns a new tensor of the same shape, dtype and device, clipped to [0, 1]. The result is
    a deterministic function of (images, name, severity, seed); the noise is drawn on the CPU
    from a local generator, so CPU and GPU inputs give the same values. Parameters are in the
    module docstring. ``ValueError`` for an unknown name, a severity outside 1..5, a wrong
    shape or values outside [0, 1].
    """
    name = check_choice("corruption name", name, CORRUPTIONS)
    severity = check_number("severity", severity, low=SEVERITIES[0], high=SEVERITIES[-1],
                            integer=True)
    check_number("seed", seed, integer=True)
    images = _check_images(images)
    work_dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
    x = images.detach().to(work_dtype).clamp(0, 1)
    p = PARAMETERS[name][severity - 1]
    if x.numel() == 0:
        y = x.clone()
    elif name == "gaussian_noise":
        y = _gaussian_noise(x, p, _generator(int(seed), name, severity))
    elif name == "shot_noise":
        y = _shot_noise(x, p, _generator(int(seed), name, severity))
    elif name == "gaussian_blur":
        y = _gaussian_blur(x, p)
    elif name == "contrast":
        y = _contrast(x, p)
    elif name == "brightness":
        y = _brightness(x, p)
    elif name == "jpeg":
        y = _jpeg(x, int(p))
    else:
        y = _pixelate(x, p)
    return y.clamp(0, 1).to(images.dtype)


def corrupted_views(images: torch.Tensor, seed: int = 0
                    ) -> Iterator[tuple[str, int, torch.Tensor]]:
    """Every (name, severity, ``corrupt(images, name, severity, seed)``), names in
    ``CORRUPTIONS`` order, severities 1..5 within each. ``images`` is checked at the call."""
    _check_images(images)

    def views() -> Iterator[tuple[str, int, torch.Tensor]]:
        for name in CORRUPTIONS:
            for severity in SEVERITIES:
                yield name, severity, corrupt(images, name, severity, seed)

    return views()
