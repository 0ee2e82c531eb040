"""The denoisers, one file each, behind one interface (methods/interface.py), and
denoise(): any of them from Python, without the command line.

Adding a method: a file here that defines METHOD, and one line in METHODS."""
from __future__ import annotations

import numpy as np
import torch

import config
from methods import bm3d, nlm, pixel2pixel, zsn2n
from methods.interface import Denoised, Method
from utils import to_numpy, to_tensor

METHODS: dict[str, Method] = {
    "pixel2pixel": pixel2pixel.METHOD,  # the faithful method, the default
    "bm3d": bm3d.METHOD,
    "nlm": nlm.METHOD,
    "zsn2n": zsn2n.METHOD,
}


def denoise(noisy, method: str = "pixel2pixel", noise: tuple[str, float] | None = None, **settings):
    """Denoise one image. noisy: an H x W or H x W x C numpy array, or a C x H x W tensor,
    of floats in [0, 1] (a synthetic noisy image may stray outside). noise: (type, level)
    of synthetic noise, e.g. ("gauss", 25), for the synthetic script's settings and the
    paper's mm rule; None (real noise, your photos) for the real script's. settings:
    any field of config.Settings, e.g. max_epoch=1000, device="cuda". Returns the
    denoised image in the form and on the device it was given."""
    preset, noise_type, level = ("real", None, None) if noise is None else ("syn", *noise)
    chosen = config.build(preset, noise_type, level, method=method, **settings)
    device = torch.device(chosen.device)
    if isinstance(noisy, torch.Tensor):
        tensor = noisy.detach().float().to(device)
    else:
        array = np.asarray(noisy, dtype=np.float32)
        tensor = to_tensor(array[:, :, None] if array.ndim == 2 else array, device)
    if tensor.dim() != 3:
        raise ValueError(f"expected an H x W (x C) array or a C x H x W tensor, got shape {tuple(noisy.shape)}")
    METHODS[method].check_image(*tensor.shape[1:], tensor.shape[0], chosen)
    result: Denoised = METHODS[method].denoise(tensor, chosen, "image")
    if isinstance(noisy, torch.Tensor):
        return result.image.to(noisy.device)
    output = to_numpy(result.image)
    return output[:, :, 0] if np.ndim(noisy) == 2 else output
