"""Pixel2Pixel (Ma et al., IEEE TPAMI 2025), as released: a pixel bank from non-local
block matching (pixel_bank.py), pseudo instances sampled from it pixel by pixel, and a
small CNN trained to map one to another (network.py), run on the noisy image itself.

Ours around it, none of which changes a result: the bank cache, retries of a collapsed
training run, several images trained at once, and random-crop training with tiled
inference for images too large to train whole."""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass

import torch

import config
import network
import pixel_bank
from config import SEED_MARGIN, Settings, check, setting, synchronize
from methods.interface import Denoised, Method
from utils import UserError

LOSSES = ("L1", "L2")
BANK_METHODS = ("shift", "unfold")
RETRY_SEED_STEP = 1000  # attempt k trains with seed + k * RETRY_SEED_STEP
# Above this many pixels an image trains on random TRAINING_CROP crops of its pseudo
# instances (full-image training of a 12-megapixel photo takes days on a CPU). 600 x 600
# keeps the paper's 256 x 256 images and the 500 x 500 McMaster frames whole; what crops
# cost is in results/benchmarks/crop_mcmaster500_cpu.txt.
CROP_TRAINING_ABOVE = 600 * 600
TRAINING_CROP = 256
INFERENCE_TILE = 512  # inference in tiles of this side: the same result in bounded memory
# Full-image fp32 training on a CPU peaks near 2 KB a pixel (measured: 2,047 bytes
# between 128 x 128 and 384 x 384 RGB); with margin.
TRAIN_BYTES_PER_PIXEL = 2500
MATCH_BYTES_PER_ENTRY = 8  # a bank entry while matching: int16 dy, dx and a float32 distance


def paper_mm(nt: str, nl: float) -> int:
    """Bank entries used for training, the rule the release applies (SPEC section 3):
    2 for gauss sigma 10 and for bernoulli, 4 for gauss sigma 25, 8 otherwise."""
    if nt == "bernoulli" or (nt == "gauss" and nl == 10):
        return 2
    if nt == "gauss" and nl == 25:
        return 4
    return 8


def parse_train_crop(text: str) -> int | None:
    """'auto' -> None, decided per image; else the crop side, 0 = whole image."""
    if text == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise UserError(f"--train_crop {text}: expected auto or a whole number") from None


@dataclass(frozen=True)
class Pixel2PixelSettings:
    """The paper's values for real noise (SPEC sections 2 and 3); PRESETS["syn"] holds what
    the synthetic script changes. The first six are the release's flags."""
    ws: int = setting(40, "block-matching window: offsets -(ws//2) .. ws-ws//2-1 (-20..19 for 40)")
    ps: int = setting(7, "patch size, odd: a patch is centred on its pixel")
    nn: int = setting(100, "neighbours the bank keeps per pixel")
    mm: int | None = setting(20, "bank entries training draws pairs from",
                             none="the paper's rule: 2 for gauss 10 and bernoulli, 4 for gauss 25, 8 otherwise")
    loss: str = setting("L2", "training loss", choices=LOSSES)
    max_epoch: int = setting(3000, "training iterations, a pseudo-instance pair each")
    bank_distance: str | None = setting("L2", "patch distance of block matching", choices=LOSSES,
                                        none="the training loss, as the synthetic script matches")
    out_activation: str = setting("none", "on the network's output", choices=("sigmoid", "none"))
    width: int = setting(64, "feature channels of every hidden convolution")
    depth: int = setting(4, "3x3 convolutions after the first, before the 1x1 head")
    negative_slope: float = setting(0.2, "of the LeakyReLU after every convolution but the head")
    lr: float = setting(1e-3, "AdamW's learning rate (its default weight decay, 0.01)")
    lr_milestones: tuple[int, ...] = setting((1500, 2000, 2500), "iterations where the rate is multiplied by "
                                                                 "lr_gamma")
    lr_gamma: float = setting(0.5, "the rate's factor at each milestone")
    # --- Ours: the same results, at other costs ------------------------------------
    bank_method: str = setting("shift", "block matching: shift (per offset, fast) or unfold (the release's patch "
                                        "materialisation); both give the same bank", choices=BANK_METHODS)
    train_crop: int | None = setting(None, "train on random N x N crops of the pseudo instances; 0: always the "
                                           "whole image (the release)", parse=parse_train_crop,
                                     none=f"auto: {TRAINING_CROP} x {TRAINING_CROP} crops above "
                                          f"{CROP_TRAINING_ABOVE:,} pixels")
    max_retries: int = setting(2, f"retrain an image whose training diverged or collapsed, with seed + "
                                  f"{RETRY_SEED_STEP} each time; 0 keeps the release's behaviour")

    def resolved(self, nt: str | None, nl: float | None) -> "Pixel2PixelSettings":
        mm = paper_mm(nt, nl) if self.mm is None else self.mm
        return dataclasses.replace(self, mm=mm, bank_distance=self.bank_distance or self.loss)

    def check(self) -> None:
        ws, ps, nn, mm = self.ws, self.ps, self.nn, self.mm
        check([
            (ws >= 1, f"--ws {ws}: the window size must be >= 1"),
            (ps >= 1 and ps % 2 == 1, f"--ps {ps}: the patch size must be odd and >= 1 (a patch is centred on its "
                                      f"pixel)"),
            (1 <= nn <= ws * ws, f"--nn {nn}: must be between 1 and ws*ws = {ws * ws}"),
            (mm >= 2, f"--mm {mm}: training pairs two different bank entries, so --mm must be >= 2"),
            (mm <= nn, f"--mm {mm}: cannot exceed --nn {nn}, the entries the bank keeps"),
            (1 <= self.max_epoch <= 10 ** 9, f"--max_epoch {self.max_epoch}: must be between 1 and 10^9"),
            (1 <= self.width <= 4096, f"--width {self.width}: must be between 1 and 4096"),
            (0 <= self.depth <= 100, f"--depth {self.depth}: must be between 0 and 100"),
            (0 <= self.negative_slope <= 1, f"--negative_slope {self.negative_slope}: must be in [0, 1]"),
            (0 < self.lr < 1e3, f"--lr {self.lr}: must be positive"),  # not NaN either
            (0 < self.lr_gamma <= 1, f"--lr_gamma {self.lr_gamma}: must be in (0, 1]"),
            (all(step >= 1 for step in self.lr_milestones), f"--lr_milestones {self.lr_milestones}: iterations >= 1"),
            (self.train_crop is None or self.train_crop == 0 or self.train_crop >= 16,
             f"--train_crop {self.train_crop}: use 0 (whole image), auto, or a side of at least 16"),
            (0 <= self.max_retries <= SEED_MARGIN // RETRY_SEED_STEP,
             f"--max_retries {self.max_retries}: must be between 0 and {SEED_MARGIN // RETRY_SEED_STEP}"),
        ])


# The synthetic script's differences from the real one (SPEC sections 3 and 5): a preset,
# not another method. mm None: paper_mm's rule; bank_distance None: the training loss.
PRESETS = {"syn": dict(nn=16, mm=None, loss="L1", bank_distance=None, out_activation="sigmoid")}


def training_crop(height: int, width: int, train_crop: int | None) -> int | None:
    """The side of the random crops an image trains on, or None for the whole image."""
    if train_crop is None:
        return TRAINING_CROP if height * width > CROP_TRAINING_ABOVE else None
    if train_crop == 0 or (train_crop >= height and train_crop >= width):
        return None
    return train_crop


# The settings tag() names (max_retries: the run folder's identity); the pipeline adds
# any other that differs from its default to the folder's name.
TAGGED = ("ws", "ps", "nn", "mm", "loss", "max_epoch", "bank_distance", "bank_method", "train_crop", "max_retries")


def tag(settings: Settings) -> list[str]:
    params = settings.params
    crop = "" if params.train_crop is None else f"crop{params.train_crop}"
    parts = [f"ws{params.ws}", f"ps{params.ps}", f"nn{params.nn}", f"mm{params.mm}", params.loss,
             f"it{params.max_epoch}", f"seed{settings.seed}", params.bank_method, crop]
    if params.bank_distance != params.loss and settings.nt is not None:  # the synthetic script matches with the loss
        parts.append(f"match{params.bank_distance}")
    return [part for part in parts if part]


def check_image(height: int, width: int, channels: int, settings: Settings) -> int:
    params = settings.params
    pixel_bank.check_image_size(height, width, params.ws, params.ps)
    crop = training_crop(height, width, params.train_crop)
    entries = params.nn if crop is None else params.mm
    trained = height * width if crop is None else min(crop, height) * min(crop, width)
    image = 4 * channels * height * width * 3  # the image, its padded copy and the output
    matching = MATCH_BYTES_PER_ENTRY * entries * height * width + pixel_bank.SHIFT_MEMORY_BUDGET["cpu"] * 2
    bank = (4 * channels if crop is None else 2) * params.mm * height * width
    return image + max(matching, bank + TRAIN_BYTES_PER_PIXEL * trained * settings.batch_images)


def bank_of(noisy: torch.Tensor, settings: Settings, name: str):
    """(bank, seconds, cached): the first mm entries as mm x C x H x W pixels, or, for an
    image that trains on crops, as a pixel_bank.OffsetBank of crops. Prints the release's line."""
    start = time.perf_counter()
    channels, height, width = noisy.shape
    params = settings.params
    crop = training_crop(height, width, params.train_crop)
    # A large image keeps only the entries training reads, and is not cached (GBs on disk).
    entries = params.nn if crop is None else params.mm
    key = pixel_bank.bank_key(noisy, params.ws, params.ps, entries, params.bank_distance, params.bank_method)
    path = os.path.join(settings.save, f"{os.path.splitext(name)[0]}_{key}.npz") if settings.save else None
    cached = pixel_bank.load_cached_bank(path, key) if path and crop is None else None
    if cached is not None:
        offsets = cached[0]
    else:
        offsets, distances = pixel_bank.match_offsets(noisy, params.ws, params.ps, entries,
                                                      params.bank_distance, params.bank_method)
        if path and crop is None:
            pixel_bank.save_cached_bank(path, key, offsets, distances)
        del distances
    offsets = offsets[:params.mm].to(noisy.device)
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


def network_estimate(model: network.Pixel2PixelNet, noisy: torch.Tensor, bank, settings: Settings) -> torch.Tensor:
    """The release's read-out: the network on the noisy image (C x H x W), in tiles."""
    return network.denoise(model, noisy, INFERENCE_TILE)


def denoise_together(noisy_images: list[torch.Tensor], settings: Settings, names: list[str],
                     estimate=network_estimate, pair_sampler=None, prepare=None) -> list[Denoised]:
    """Images of one shape, trained at once as one grouped network (network.train_networks);
    an image whose training diverged or collapsed is retrained alone with seed + 1000,
    up to max_retries times. An image's train seconds: its share of the joint training,
    its inference and its retries. estimate(model, noisy, bank, settings): the read-out
    of a trained network, judged for failure as it is returned. pair_sampler(noisy, crop):
    another sampler's pairs, trained on beside the bank's at settings.params.pairs_weight
    (network.train_networks' pairs; Pixel2Pixel+). prepare(noisy, bank) -> (noisy, bank):
    another view of an image and its bank, trained on and read out in their place
    (Pixel2Pixel+'s impulse-free bank)."""
    device = noisy_images[0].device
    banks = [bank_of(noisy, settings, name) for noisy, name in zip(noisy_images, names)]
    if prepare is not None:
        views = [prepare(noisy, bank) for noisy, (bank, _, _) in zip(noisy_images, banks)]
        noisy_images = [noisy for noisy, _ in views]
        banks = [(bank, seconds, cached) for (_, bank), (_, seconds, cached) in zip(views, banks)]
    description = os.path.splitext(names[0])[0] if len(names) == 1 else f"{len(names)} images"
    crop = training_crop(*noisy_images[0].shape[1:], settings.params.train_crop)
    pairs = None if pair_sampler is None else [pair_sampler(noisy, crop) for noisy in noisy_images]
    extra = {} if pairs is None else {"pairs_weight": settings.params.pairs_weight}
    start = time.perf_counter()
    models, losses = network.train_networks([bank for bank, _, _ in banks], settings,
                                            [settings.seed] * len(banks), description, pairs=pairs, **extra)
    synchronize(device)
    shared_seconds = (time.perf_counter() - start) / len(banks)
    results = []
    for index, (noisy, name, (bank, bank_seconds, cached), model, image_losses) in enumerate(
            zip(noisy_images, names, banks, models, losses)):
        start = time.perf_counter()
        attempt = 0
        denoised = estimate(model, noisy, bank, settings)
        failure = network.training_failure(image_losses, denoised, noisy)
        while failure is not None:
            seed = settings.seed + attempt * RETRY_SEED_STEP
            retrying = attempt < settings.params.max_retries
            print(f"warning: {name}: training with seed {seed} gave a {failure}"
                  + (f"; retrying with seed {seed + RETRY_SEED_STEP}" if retrying else ""), file=sys.stderr, flush=True)
            if not retrying:
                break
            attempt += 1
            [model], [image_losses] = network.train_networks(
                [bank], settings, [seed + RETRY_SEED_STEP], os.path.splitext(name)[0],
                pairs=None if pairs is None else [pairs[index]], **extra)
            denoised = estimate(model, noisy, bank, settings)
            failure = network.training_failure(image_losses, denoised, noisy)
        synchronize(device)
        crop = 0 if isinstance(bank, torch.Tensor) else bank.shape[-1]
        train_seconds = shared_seconds + time.perf_counter() - start
        results.append(Denoised(denoised, {"bank": bank_seconds, "train": train_seconds}, image_losses, attempt + 1,
                                failure or "ok", {"bank_cached": int(cached), "train_crop": crop}))
    return results


def denoise(noisy: torch.Tensor, settings: Settings, name: str = "image") -> Denoised:
    return denoise_together([noisy], settings, [name])[0]


def bf16_faster(device: torch.device) -> bool:
    """On a CPU only with AMX: 4.5x fp32 there, while without it oneDNN's bf16 is slower
    than fp32 (results/benchmarks/training_speed_cpu_noamx.txt)."""
    return device.type != "cpu" or config.cpu_has_amx()


# bf16's quality: as good as fp32 on the CPU (results/benchmarks/training_quality_cpu.txt:
# +0.001 dB over four Kodak images at full length); on CUDA not yet checked.
METHOD = Method(settings=Pixel2PixelSettings, denoise=denoise, tag=tag, check_image=check_image,
                denoise_together=denoise_together, presets=PRESETS, bf16_shown_on=("cpu",), bf16_faster=bf16_faster,
                csv_fields=("bank_seconds", "train_seconds", "bank_cached", "train_crop"),
                tagged=TAGGED, identity=lambda settings: {"max_retries": settings.params.max_retries})
