"""Pixel2Pixel (Ma et al., IEEE TPAMI 2025), as released: a pixel bank from non-local
block matching (pixel_bank.py), pseudo instances sampled from it pixel by pixel, and a
small CNN trained to map one to another (network.py), run on the noisy image itself.

Ours around it, none of which changes a result: the bank cache, retries of a collapsed
training run, several images trained at once, and random-crop training with tiled
inference for images too large to train whole."""
from __future__ import annotations

import os
import sys
import time

import torch

import network
import pixel_bank
from config import CROP_TRAINING_ABOVE, INFERENCE_TILE, RETRY_SEED_STEP, TRAINING_CROP, Settings
from methods.interface import Denoised, Method
from utils import synchronize

# Full-image fp32 training on a CPU peaks near 2 KB a pixel (measured: 2,047 bytes
# between 128 x 128 and 384 x 384 RGB); with margin.
TRAIN_BYTES_PER_PIXEL = 2500
MATCH_BYTES_PER_ENTRY = 8  # a bank entry while matching: int16 dy, dx and a float32 distance


def training_crop(height: int, width: int, train_crop: int | None) -> int | None:
    """The side of the random crops an image trains on, or None for the whole image."""
    if train_crop is None:
        return TRAINING_CROP if height * width > CROP_TRAINING_ABOVE else None
    if train_crop == 0 or (train_crop >= height and train_crop >= width):
        return None
    return train_crop


def tag(settings: Settings) -> list[str]:
    crop = "" if settings.train_crop is None else f"crop{settings.train_crop}"
    parts = [f"ws{settings.ws}", f"ps{settings.ps}", f"nn{settings.nn}", f"mm{settings.mm}", settings.loss,
             f"it{settings.max_epoch}", f"seed{settings.seed}", settings.bank_method, crop]
    return [part for part in parts if part]


def check_image(height: int, width: int, channels: int, settings: Settings) -> int:
    pixel_bank.check_image_size(height, width, settings.ws, settings.ps)
    crop = training_crop(height, width, settings.train_crop)
    entries = settings.nn if crop is None else settings.mm
    trained = height * width if crop is None else min(crop, height) * min(crop, width)
    image = 4 * channels * height * width * 3  # the image, its padded copy and the output
    matching = MATCH_BYTES_PER_ENTRY * entries * height * width + pixel_bank.SHIFT_MEMORY_BUDGET["cpu"] * 2
    bank = (4 * channels if crop is None else 2) * settings.mm * height * width
    return image + max(matching, bank + TRAIN_BYTES_PER_PIXEL * trained * settings.batch_images)


def bank_of(noisy: torch.Tensor, settings: Settings, name: str):
    """(bank, seconds, cached): the first mm entries as mm x C x H x W pixels, or, for an
    image that trains on crops, as a pixel_bank.OffsetBank of crops. Prints the release's line."""
    start = time.perf_counter()
    channels, height, width = noisy.shape
    crop = training_crop(height, width, settings.train_crop)
    # A large image keeps only the entries training reads, and is not cached (GBs on disk).
    entries = settings.nn if crop is None else settings.mm
    key = pixel_bank.bank_key(noisy, settings.ws, settings.ps, entries, settings.bank_distance, settings.bank_method)
    path = os.path.join(settings.save, f"{os.path.splitext(name)[0]}_{key}.npz") if settings.save else None
    cached = pixel_bank.load_cached_bank(path, key) if path and crop is None else None
    if cached is not None:
        offsets = cached[0]
    else:
        offsets, distances = pixel_bank.match_offsets(noisy, settings.ws, settings.ps, entries,
                                                      settings.bank_distance, settings.bank_method)
        if path and crop is None:
            pixel_bank.save_cached_bank(path, key, offsets, distances)
        del distances
    offsets = offsets[:settings.mm].to(noisy.device)
    if crop is None:
        bank = pixel_bank.gather_bank(noisy, offsets)  # mm x C x H x W
    else:
        bank = pixel_bank.OffsetBank(noisy, offsets, crop)
    synchronize(noisy.device)
    seconds = time.perf_counter() - start
    # The release's line; its bank was stored H x W x nn x C.
    print(f"Processed {name} in {seconds:.2f} seconds. Pixel bank shape: "
          f"{torch.Size([height, width, entries, channels])}" + (" (cached)" if cached is not None else ""),
          flush=True)
    return bank, seconds, cached is not None


def denoise_together(noisy_images: list[torch.Tensor], settings: Settings, names: list[str]) -> list[Denoised]:
    """Images of one shape, trained at once as one grouped network (network.train_networks);
    an image whose training diverged or collapsed is retrained alone with seed + 1000,
    up to max_retries times. An image's train seconds: its share of the joint training,
    its inference and its retries."""
    device = noisy_images[0].device
    banks = [bank_of(noisy, settings, name) for noisy, name in zip(noisy_images, names)]
    description = os.path.splitext(names[0])[0] if len(names) == 1 else f"{len(names)} images"
    start = time.perf_counter()
    models, losses = network.train_networks([bank for bank, _, _ in banks], settings,
                                            [settings.seed] * len(banks), description)
    synchronize(device)
    shared_seconds = (time.perf_counter() - start) / len(banks)
    results = []
    for noisy, name, (bank, bank_seconds, cached), model, image_losses in zip(noisy_images, names, banks, models,
                                                                              losses):
        start = time.perf_counter()
        attempt = 0
        denoised = network.denoise(model, noisy, INFERENCE_TILE)
        failure = network.training_failure(image_losses, denoised, noisy)
        while failure is not None:
            seed = settings.seed + attempt * RETRY_SEED_STEP
            retrying = attempt < settings.max_retries
            print(f"warning: {name}: training with seed {seed} gave a {failure}"
                  + (f"; retrying with seed {seed + RETRY_SEED_STEP}" if retrying else ""), file=sys.stderr, flush=True)
            if not retrying:
                break
            attempt += 1
            model, image_losses = network.train_network(bank, settings, seed + RETRY_SEED_STEP,
                                                         os.path.splitext(name)[0])
            denoised = network.denoise(model, noisy, INFERENCE_TILE)
            failure = network.training_failure(image_losses, denoised, noisy)
        synchronize(device)
        crop = 0 if isinstance(bank, torch.Tensor) else bank.shape[-1]
        results.append(Denoised(denoised, {"bank": bank_seconds, "train": shared_seconds + time.perf_counter() - start},
                                image_losses, attempt + 1, failure or "ok",
                                {"bank_cached": int(cached), "train_crop": crop}))
    return results


def denoise(noisy: torch.Tensor, settings: Settings, name: str = "image") -> Denoised:
    return denoise_together([noisy], settings, [name])[0]


METHOD = Method(denoise=denoise, tag=tag, check_image=check_image, denoise_together=denoise_together,
                iterations=Settings.max_epoch)
