"""The noise models that define the benchmark (SPEC section 1), and the per-image seed
that gives every method the same noisy image."""
from __future__ import annotations

import hashlib

import numpy as np

from utils import UserError

NOISE_TYPES = ("gauss", "poiss", "saltpepper", "bernoulli", "impulse")


def image_seed(run_seed: int, image_name: str) -> int:
    """Of the run seed and the image's name only: any subset, in any order, gets the same noise."""
    digest = hashlib.sha256(f"{run_seed}:{image_name}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def check_noise_level(noise_type: str, level: float) -> None:
    if noise_type not in NOISE_TYPES:
        raise UserError(f"--nt {noise_type}: unknown noise type; choose one of {', '.join(NOISE_TYPES)}")
    if not np.isfinite(level):
        raise UserError(f"--nl {level}: must be a finite number")
    if noise_type in ("gauss", "poiss") and not 0 < level <= 1e6:  # 1e6: noise far below one 16-bit level
        raise UserError(f"--nl {level:g}: {noise_type} takes a level in (0, 1e6]")
    if noise_type == "saltpepper" and not 0 <= level <= 0.5:
        raise UserError(f"--nl {level}: saltpepper takes half the corruption rate, in [0, 0.5]")
    if noise_type in ("bernoulli", "impulse") and not 0 <= level < 1:
        raise UserError(f"--nl {level}: {noise_type} takes a probability in [0, 1)")


def add_noise(clean: np.ndarray, noise_type: str, level: float, rng: np.random.Generator) -> np.ndarray:
    """SPEC section 1: drawn for each channel of each pixel, kept float (not rounded to 8 bits)."""
    shape = clean.shape
    if noise_type == "gauss":  # level = sigma on the 0..255 scale
        noisy = np.clip(clean + rng.standard_normal(shape, dtype=np.float32) * np.float32(level / 255.0), 0.0, 1.0)
    elif noise_type == "poiss":  # level = lambda; deliberately not clipped, as released
        noisy = rng.poisson(level * clean.astype(np.float64)) / level
    elif noise_type == "saltpepper":  # level = half the corruption rate
        u = rng.random(shape, dtype=np.float32)
        noisy = clean.copy()
        noisy[u < level] = 0.0
        noisy[u > 1 - level] = 1.0
    elif noise_type == "bernoulli":  # level = drop probability
        u = rng.random(shape, dtype=np.float32)
        noisy = clean * (u > level)
    elif noise_type == "impulse":  # level = half the corruption rate, replaced by uniform values
        u = rng.random(shape, dtype=np.float32)
        values = rng.random(shape, dtype=np.float32)
        noisy = np.where(u < level, values, clean)
    else:
        raise ValueError(f"unknown noise type {noise_type!r}")
    return np.ascontiguousarray(noisy, dtype=np.float32)
