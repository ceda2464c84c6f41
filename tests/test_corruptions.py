"""CIFAR-10-C style corruptions: contract, determinism, severity order, and each corruption
against an independent reference (scipy, Pillow, colorsys, noise statistics)."""

from __future__ import annotations

import colorsys
import gzip
import io
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cvr_solo.evaluation.corruptions import CORRUPTIONS, SEVERITIES, corrupt, corrupted_views

FMNIST_TEST_IMAGES = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
ALL = [(n, s) for n in CORRUPTIONS for s in SEVERITIES]
NOISE = ("gaussian_noise", "shot_noise")


def natural_images(c: int, b: int = 128, seed: int = 0, size: int = 32) -> torch.Tensor:
    """Natural-ish test images: 1/f-like noise (octaves of upsampled noise, amplitude halving
    per octave) plus flat rectangles (edges), mostly within [0.02, 0.9]."""
    g = torch.Generator().manual_seed(seed)
    img = torch.zeros(b, c, size, size)
    for k in range(2, 6):
        noise = torch.rand(b, c, 2**k, 2**k, generator=g) - 0.5
        img += 0.35 / 2 ** (k - 2) * F.interpolate(noise, size=(size, size), mode="bilinear",
                                                   align_corners=False)
    for i in range(b):
        for _ in range(4):
            y0, x0 = torch.randint(0, size - 6, (2,), generator=g).tolist()
            h, w = torch.randint(5, size // 2, (2,), generator=g).tolist()
            img[i, :, y0:y0 + h, x0:x0 + w] += (torch.rand(c, 1, 1, generator=g) - 0.5) * 0.5
    return (img + 0.45).clamp(0.02, 0.9)


def fashion_mnist_images(n: int = 64) -> torch.Tensor:
    """The first n Fashion-MNIST test images, padded to 32x32, (n, 1, 32, 32) in [0, 1]."""
    raw = gzip.decompress(FMNIST_TEST_IMAGES.read_bytes())
    assert int.from_bytes(raw[:4], "big") == 0x803
    a = np.frombuffer(raw, np.uint8, count=n * 784, offset=16).reshape(n, 28, 28)
    return torch.from_numpy(np.pad(a, ((0, 0), (2, 2), (2, 2))) / 255).float()[:, None]


def random_images(c: int, b: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, 32, 32, generator=torch.Generator().manual_seed(seed))


# --- contract ---------------------------------------------------------------------------------

@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize(("name", "severity"), ALL)
def test_shape_dtype_range(name, severity, c):
    x = random_images(c)
    y = corrupt(x, name, severity)
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    assert not torch.equal(y, x)
    assert torch.equal(x, random_images(c))  # input untouched


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_other_float_dtypes(name, dtype):
    x = random_images(3).to(dtype)
    y = corrupt(x, name, 3)
    assert y.dtype == dtype and y.shape == x.shape
    assert y.min() >= 0 and y.max() <= 1


def test_empty_batch_and_non_square():
    assert corrupt(torch.rand(0, 3, 32, 32), "jpeg", 2).shape == (0, 3, 32, 32)
    for name in CORRUPTIONS:
        x = torch.rand(2, 3, 24, 40, generator=torch.Generator().manual_seed(1))
        assert corrupt(x, name, 5).shape == (2, 3, 24, 40)


def test_corrupted_views_yields_everything_in_order():
    x = random_images(3, b=2)
    views = list(corrupted_views(x, seed=3))
    assert [(n, s) for n, s, _ in views] == ALL
    for n, s, y in views:
        assert torch.equal(y, corrupt(x, n, s, seed=3))


# --- determinism ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CORRUPTIONS)
def test_deterministic_and_leaves_global_rng_alone(name):
    x = random_images(3)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = corrupt(x, name, 3, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(999)  # a different global state changes nothing
    b = corrupt(x, name, 3, seed=7)
    assert torch.equal(a, b)
    c = corrupt(x, name, 3, seed=8)
    if name in NOISE:
        assert not torch.equal(a, c)
        # independent noise per severity (the generator is seeded from it too), not one
        # noise draw rescaled: the residuals of two severities are uncorrelated
        r3 = (corrupt(torch.full_like(x, 0.5), name, 3, seed=7) - 0.5).flatten()
        r4 = (corrupt(torch.full_like(x, 0.5), name, 4, seed=7) - 0.5).flatten()
        assert abs(torch.corrcoef(torch.stack([r3, r4]))[0, 1].item()) < 0.1
    else:
        assert torch.equal(a, c)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_cuda_matches_cpu(name):
    x = random_images(3)
    y_cpu = corrupt(x, name, 4, seed=1)
    y_gpu = corrupt(x.cuda(), name, 4, seed=1)
    assert y_gpu.is_cuda
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, atol=1e-5, rtol=0)


# --- severity order ---------------------------------------------------------------------------

def _image_sets() -> list:
    sets = [
        pytest.param(lambda: natural_images(1), id="natural-grey"),
        pytest.param(lambda: natural_images(3), id="natural-rgb"),
    ]
    skip = pytest.mark.skipif(not FMNIST_TEST_IMAGES.is_file(),
                              reason=f"{FMNIST_TEST_IMAGES} absent (dataset-fashion-mnist)")
    sets += [
        pytest.param(fashion_mnist_images, id="fashion-mnist", marks=skip),
        pytest.param(lambda: fashion_mnist_images().repeat(1, 3, 1, 1), id="fashion-mnist-rgb",
                     marks=skip),
    ]
    return sets


@pytest.mark.parametrize("make_images", _image_sets())
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_severity_strictly_increases_mse(name, make_images):
    """The mean squared change grows strictly with severity, for every corruption.

    On a set of images, not per image: pixelate's down/up resampling error depends on how
    edges fall on the sampling grid, so a single image can rank sizes 28 and 27 either way;
    averaged over 64-128 natural(-ish) images the order is the intended one.
    """
    x = make_images()
    mse = [float(((corrupt(x, name, s) - x) ** 2).mean()) for s in SEVERITIES]
    assert mse[0] > 1e-6, f"{name} barely changes the test images: {mse}"
    assert all(b > a for a, b in itertools.pairwise(mse)), f"{name}: {mse}"


# --- each corruption against an independent reference ------------------------------------------

@pytest.mark.parametrize(("severity", "sigma"), enumerate([0.04, 0.06, 0.08, 0.09, 0.10], 1))
def test_gaussian_noise_statistics(severity, sigma):
    x = torch.full((16, 3, 32, 32), 0.5)  # far from 0 and 1: clipping is negligible
    r = corrupt(x, "gaussian_noise", severity) - x
    assert abs(r.mean().item()) < 3 * sigma / r.numel() ** 0.5 + 1e-4
    assert r.std().item() == pytest.approx(sigma, rel=0.02)


@pytest.mark.parametrize(("severity", "lam"), enumerate([500, 250, 100, 75, 50], 1))
def test_shot_noise_statistics(severity, lam):
    p = 0.4
    x = torch.full((16, 3, 32, 32), p)
    y = corrupt(x, "shot_noise", severity)
    counts = y * lam  # Poisson(p * lam): integer counts with mean = variance = p * lam
    assert torch.allclose(counts, counts.round(), atol=1e-3)
    assert counts.mean().item() == pytest.approx(p * lam, rel=0.01)
    assert counts.var().item() == pytest.approx(p * lam, rel=0.05)
    assert torch.equal(corrupt(torch.zeros(1, 1, 8, 8), "shot_noise", severity),
                       torch.zeros(1, 1, 8, 8))


@pytest.mark.parametrize(("severity", "sigma"), enumerate([0.4, 0.6, 0.7, 0.8, 1.0], 1))
def test_gaussian_blur_matches_scipy(severity, sigma):
    ndimage = pytest.importorskip("scipy.ndimage")
    x = random_images(3).double()
    y = corrupt(x, "gaussian_blur", severity)
    # torch's "reflect" padding (edge pixel not repeated) is scipy's "mirror"
    ref = ndimage.gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), mode="mirror",
                                  truncate=4.0)
    np.testing.assert_allclose(y.numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("c", [0.75, 0.5, 0.4, 0.3, 0.15])
def test_contrast_keeps_means_and_scales_deviations(c):
    severity = [0.75, 0.5, 0.4, 0.3, 0.15].index(c) + 1
    x = natural_images(3, b=8).double()
    y = corrupt(x, "contrast", severity)
    mean_x, mean_y = x.mean(dim=(2, 3)), y.mean(dim=(2, 3))
    torch.testing.assert_close(mean_y, mean_x, atol=1e-12, rtol=0)  # per image and channel
    torch.testing.assert_close(y.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-12, rtol=0)
    torch.testing.assert_close(y.std(dim=(2, 3)), c * x.std(dim=(2, 3)), atol=1e-12, rtol=0)


@pytest.mark.parametrize(("severity", "c"), enumerate([0.05, 0.1, 0.15, 0.2, 0.3], 1))
def test_brightness_rgb_keeps_hue_and_saturation(severity, c):
    x = natural_images(3, b=8).double()
    x[0, :, 0, 0] = 0.0  # a black pixel
    x[0, :, 0, 1] = torch.tensor([1.0, 0.2, 0.1], dtype=x.dtype)  # already at V = 1
    y = corrupt(x, "brightness", severity)
    v, v_new = x.amax(dim=1), y.amax(dim=1)
    torch.testing.assert_close(v_new, (v + c).clamp(max=1), atol=1e-12, rtol=0)
    # RGB = V f(H, S): every channel is scaled by the same V'/V, so channel ratios are kept
    unclipped = (v + c < 1) & (v > 0)
    assert unclipped.float().mean() > 0.9
    scale = (v_new / v)[unclipped]
    for ch in range(3):
        torch.testing.assert_close(y[:, ch][unclipped], x[:, ch][unclipped] * scale,
                                   atol=1e-12, rtol=0)
    assert torch.allclose(y[0, :, 0, 0], torch.full((3,), c, dtype=x.dtype))  # black -> grey
    assert torch.equal(y[0, :, 0, 1], x[0, :, 0, 1])
    # against a full HSV round trip (colorsys) on a sample of pixels
    pixels = x.permute(0, 2, 3, 1).reshape(-1, 3)[::97]
    got = y.permute(0, 2, 3, 1).reshape(-1, 3)[::97]
    for p, q in zip(pixels.tolist(), got.tolist(), strict=True):
        h, s, val = colorsys.rgb_to_hsv(*p)
        np.testing.assert_allclose(q, colorsys.hsv_to_rgb(h, s, min(val + c, 1.0)), atol=1e-12)


def test_brightness_grey_adds_and_clips():
    x = torch.tensor([0.0, 0.5, 0.8, 0.9, 1.0], dtype=torch.float64).view(1, 1, 1, 5)
    y = corrupt(x, "brightness", 5)  # c = 0.3
    torch.testing.assert_close(y.flatten(), torch.tensor([0.3, 0.8, 1.0, 1.0, 1.0],
                                                         dtype=torch.float64))


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize(("severity", "quality"), enumerate([80, 65, 58, 50, 40], 1))
def test_jpeg_matches_pillow(severity, quality, c):
    x = natural_images(c, b=3)
    x = (x * 255).round() / 255  # exact 8-bit values, so only the codec differs
    y = corrupt(x, "jpeg", severity)
    for i in range(len(x)):
        arr = (x[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        pil = Image.fromarray(arr[:, :, 0] if c == 1 else arr)
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=quality)
        ref = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float32) / 255
        ref = ref.reshape(32, 32, c).transpose(2, 0, 1)
        np.testing.assert_allclose(y[i].numpy(), ref, atol=1e-6)
    assert not torch.equal(y, x)


@pytest.mark.parametrize("size", [(32, 32), (28, 28), (31, 17)])
@pytest.mark.parametrize(("severity", "c"), enumerate([0.95, 0.9, 0.85, 0.75, 0.65], 1))
def test_pixelate_matches_pillow_box_resize(severity, c, size):
    h, w = size
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(severity))
    y = corrupt(x, "pixelate", severity)
    small = (int(w * c), int(h * c))
    for i in range(2):
        for ch in range(3):
            im = Image.fromarray(x[i, ch].numpy(), mode="F")  # 32-bit float: no rounding
            ref = np.asarray(im.resize(small, Image.BOX).resize((w, h), Image.BOX))
            np.testing.assert_allclose(y[i, ch].numpy(), ref, atol=1e-5)


# --- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "match"), [
    ({"name": "fog"}, "corruption name"),
    ({"name": "Gaussian_Noise"}, "corruption name"),
    ({"severity": 0}, "severity"),
    ({"severity": 6}, "severity"),
    ({"severity": 2.0}, "severity"),
    ({"severity": True}, "severity"),
    ({"seed": 1.5}, "seed"),
])
def test_bad_arguments(kwargs, match):
    args = {"images": random_images(3), "name": "jpeg", "severity": 1, **kwargs}
    with pytest.raises(ValueError, match=match) as err:
        corrupt(**args)
    assert repr(next(iter(kwargs.values()))) in str(err.value)


@pytest.mark.parametrize(("images", "match"), [
    (torch.rand(3, 32, 32), "shape"),
    (torch.rand(2, 2, 32, 32), "shape"),
    (torch.rand(2, 4, 32, 32), "shape"),
    (torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8), "floating-point"),
    (torch.full((2, 3, 8, 8), 255.0), r"\[0, 1\]"),
    (torch.full((2, 3, 8, 8), -0.01), r"\[0, 1\]"),
    (torch.full((2, 3, 8, 8), 1 + 1e-5), r"\[0, 1\]"),
    (torch.full((2, 3, 8, 8), float("nan")), r"\[0, 1\]"),
    (np.zeros((2, 3, 8, 8), np.float32), "torch.Tensor"),
])
def test_bad_images(images, match):
    with pytest.raises(ValueError, match=match):
        corrupt(images, "contrast", 1)
    with pytest.raises(ValueError, match=match):
        corrupted_views(images)  # checked at the call, not at the first next()


def test_range_tolerance():
    x = torch.full((1, 3, 8, 8), 1 + 5e-7)
    y = corrupt(x, "contrast", 1)
    assert y.max() <= 1
    x = torch.full((1, 3, 8, 8), -5e-7)
    assert corrupt(x, "gaussian_blur", 1).min() >= 0
