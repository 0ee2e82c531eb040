"""Non-local means (Buades, Coll and Morel, CVPR 2005): scikit-image's implementation, a
baseline that needs no training. Each pixel becomes a weighted mean of the pixels whose
surrounding patches look like its own, with the noise level estimated from the image."""
from __future__ import annotations

import time

import numpy as np
import torch
from skimage.restoration import denoise_nl_means, estimate_sigma

from config import Settings
from methods.interface import Denoised, Method
from utils import to_numpy, to_tensor

# scikit-image's documented choice for its fast mode: 5 x 5 patches searched within 6
# pixels (a 13 x 13 window), filter strength h = 0.8 sigma.
PATCH_SIZE = 5
PATCH_DISTANCE = 6
H_PER_SIGMA = 0.8


def denoise(noisy: torch.Tensor, settings: Settings, name: str = "image") -> Denoised:
    start = time.perf_counter()
    pixels = to_numpy(noisy).astype(np.float64)  # H x W x C
    # Robust wavelet estimate (Donoho's MAD) per channel, averaged: one strength for the image.
    sigma = float(np.mean(estimate_sigma(pixels, channel_axis=-1)))
    output = denoise_nl_means(pixels, h=H_PER_SIGMA * sigma, sigma=sigma, fast_mode=True, patch_size=PATCH_SIZE,
                              patch_distance=PATCH_DISTANCE, channel_axis=-1)
    image = to_tensor(np.clip(output, 0, 1).astype(np.float32).reshape(pixels.shape), noisy.device)  # gray: H x W back
    return Denoised(image, {"denoise": time.perf_counter() - start})


def check_image(height: int, width: int, channels: int, settings: Settings) -> int:
    return 10 * 8 * height * width * channels  # float64 copies of the image: input, output, weights


METHOD = Method(denoise=denoise, tag=lambda settings: ["nlm", f"seed{settings.seed}"], check_image=check_image)
