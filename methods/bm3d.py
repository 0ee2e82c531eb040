"""BM3D (Dabov et al., IEEE TIP 2007; CBM3D for colour), the `bm3d` package of its
authors' group: block matching and collaborative 3-D transform-domain filtering, the
classic non-learned baseline. It assumes additive white Gaussian noise of a known level:

- Gaussian noise: the known sigma (--nl / 255).
- Poisson noise: the Anscombe transform makes it near-Gaussian of unit variance; BM3D
  denoises that, and the exact unbiased inverse (Makitalo and Foi, IEEE TIP 2011) maps
  the result back, free of the bias a plain algebraic inverse leaves at low counts.
- Real noise: sigma estimated from the noisy image (scikit-image's wavelet estimate).
- Salt-and-pepper, bernoulli and impulse noise are not Gaussian in any transform: the
  method refuses them rather than report a meaningless number."""
from __future__ import annotations

import time
from dataclasses import dataclass

import bm3d as bm3d_package
import numpy as np
import torch
from scipy.stats import poisson
from skimage.restoration import estimate_sigma

from config import Settings
from methods.interface import Denoised, Method
from utils import UserError, to_numpy, to_tensor

NOISE_TYPES = ("gauss", "poiss")  # synthetic noise it applies to; real noise too (no --nt)


@dataclass(frozen=True)
class BM3DSettings:
    """None of its own: the bm3d package's profile, and the noise level as described above."""


def anscombe(counts: np.ndarray) -> np.ndarray:
    """Poisson counts -> values of near-unit variance."""
    return 2.0 * np.sqrt(np.maximum(counts, 0.0) + 3.0 / 8.0)


# The exact inverse is tabulated up to this mean; above it the asymptotic inverse is
# exact to 1e-4 counts (tests/test_baselines.py), and a table to lambda 1e6 would take 64 GB.
TABLE_MEAN_LIMIT = 400.0
MIN_SIDE = 9  # the bm3d package refuses sides under 8 and crashes (a segfault) on 8 x 8


def exact_unbiased_inverse(values: np.ndarray, largest_mean: float) -> np.ndarray:
    """The mean mu whose counts' expected Anscombe transform is each value:
    E[anscombe(Poisson(mu))] = value, tabulated over mu in [0, min(largest_mean,
    TABLE_MEAN_LIMIT)] and inverted by interpolation (it rises with mu); above the table,
    the asymptotic (v / 2)^2 - 1/8."""
    largest_mean = min(largest_mean, TABLE_MEAN_LIMIT)
    means = np.linspace(0.0, largest_mean, 8001)
    counts = np.arange(int(largest_mean + 10 * np.sqrt(largest_mean) + 40))
    expected = poisson.pmf(counts[None, :], means[:, None]) @ anscombe(counts)  # one expectation per mean
    inverse = np.interp(values, expected, means)
    beyond = values > expected[-1]
    inverse[beyond] = (values[beyond] / 2.0) ** 2 - 1.0 / 8.0
    return inverse


def bm3d_gaussian(pixels: np.ndarray, sigma: float) -> np.ndarray:
    """H x W x C with white Gaussian noise of this sigma -> the estimate: CBM3D in its
    opponent colour space for RGB, BM3D channel by channel otherwise."""
    if pixels.shape[2] == 3:
        return bm3d_package.bm3d_rgb(pixels, sigma)
    return np.stack([bm3d_package.bm3d(pixels[:, :, channel], sigma) for channel in range(pixels.shape[2])], axis=2)


def denoise(noisy: torch.Tensor, settings: Settings, name: str = "image") -> Denoised:
    start = time.perf_counter()
    pixels = to_numpy(noisy).astype(np.float64)  # H x W x C
    if settings.nt == "gauss":
        estimate = bm3d_gaussian(pixels, settings.nl / 255.0)
    elif settings.nt == "poiss":  # pixels are Poisson(nl * clean) / nl
        transformed = anscombe(pixels * settings.nl)
        low, span = transformed.min(), np.ptp(transformed) or 1.0  # BM3D's profiles expect [0, 1]-like data
        filtered = bm3d_gaussian((transformed - low) / span, 1.0 / span) * span + low
        estimate = exact_unbiased_inverse(filtered, settings.nl * pixels.max() + 1.0) / settings.nl
    else:  # real noise: its level estimated from the image itself
        estimate = bm3d_gaussian(pixels, float(np.mean(estimate_sigma(pixels, channel_axis=-1))))
    image = to_tensor(np.clip(estimate, 0, 1).astype(np.float32).reshape(pixels.shape), noisy.device)
    return Denoised(image, {"denoise": time.perf_counter() - start})


def check_image(height: int, width: int, channels: int, settings: Settings) -> int:
    if min(height, width) < MIN_SIDE:
        raise UserError(f"{height} x {width} pixels: BM3D needs both sides of at least {MIN_SIDE}")
    return 40 * 8 * height * width * channels  # float64 copies: its groups of blocks and their aggregation


METHOD = Method(settings=BM3DSettings, denoise=denoise, tag=lambda settings: ["bm3d", f"seed{settings.seed}"],
                check_image=check_image, noise_types=NOISE_TYPES, precisions=())
