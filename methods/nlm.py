"""Non-local means (Buades, Coll and Morel, CVPR 2005): scikit-image's implementation, a
baseline that needs no training. Each pixel becomes a weighted mean of the pixels whose
surrounding patches look like its own, with the noise level estimated from the image."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from skimage.restoration import denoise_nl_means, estimate_sigma

from config import Settings, check, setting
from methods.interface import Denoised, Method
from utils import to_numpy, to_tensor


@dataclass(frozen=True)
class NLMSettings:
    """scikit-image's documented choice for its fast mode: 5 x 5 patches searched within
    6 pixels (a 13 x 13 window), filter strength h = 0.8 sigma."""
    patch_size: int = setting(5, "side of the patches compared")
    patch_distance: int = setting(6, "search radius: a (2 d + 1) square window")
    h_per_sigma: float = setting(0.8, "filter strength h, in units of the estimated noise sigma")

    def check(self) -> None:
        check([(1 <= self.patch_size <= 99, f"--patch_size {self.patch_size}: must be between 1 and 99"),
               (1 <= self.patch_distance <= 99, f"--patch_distance {self.patch_distance}: must be between 1 and 99"),
               (0 < self.h_per_sigma < 100, f"--h_per_sigma {self.h_per_sigma}: must be positive")])


def denoise(noisy: torch.Tensor, settings: Settings, name: str = "image") -> Denoised:
    start = time.perf_counter()
    params = settings.params
    pixels = to_numpy(noisy).astype(np.float64)  # H x W x C
    # Robust wavelet estimate (Donoho's MAD) per channel, averaged: one strength for the image.
    sigma = float(np.mean(estimate_sigma(pixels, channel_axis=-1)))
    output = denoise_nl_means(pixels, h=params.h_per_sigma * sigma, sigma=sigma, fast_mode=True,
                              patch_size=params.patch_size, patch_distance=params.patch_distance, channel_axis=-1)
    image = to_tensor(np.clip(output, 0, 1).astype(np.float32).reshape(pixels.shape), noisy.device)  # gray: H x W back
    return Denoised(image, {"denoise": time.perf_counter() - start})


def check_image(height: int, width: int, channels: int, settings: Settings) -> int:
    return 10 * 8 * height * width * channels  # float64 copies of the image: input, output, weights


METHOD = Method(settings=NLMSettings, denoise=denoise, tag=lambda settings: ["nlm", f"seed{settings.seed}"],
                check_image=check_image, precisions=())
