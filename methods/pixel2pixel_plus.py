"""Pixel2Pixel+: the faithful method's bank, sampler and network, trained for a length
that follows the image's size, watched on bank entries training never draws, and read
out by averaging the network over several pseudo instances instead of the noisy image.

Opt-in (--method pixel2pixel_plus); the faithful method (methods/pixel2pixel.py) is
unchanged. Zero-shot still: the noisy image alone, no clean data, no pretrained weights.

Why each part (the measurements are in results/recipe/):
- Length: a fixed 3000 iterations over-trains a 128 x 128 image by 0.5 to 0.9 dB and
  under-trains nothing at 256 x 256 by much (issue #29's pilot), so iterations scale
  with the pixel count.
- Held-out entries: the bank keeps nn neighbours per pixel but training draws pairs
  from the first mm only. The mean of entries mm..nn-1 is a target whose noise training
  never saw; the network's distance to it, checked as training goes, keeps the best
  weights and says when a run ends worse than the noisy image itself (a collapse, or a
  network that learned the noise), all without the clean image.
- Ensemble read-out: the network was trained on pseudo instances, so at inference it
  is fed pseudo instances too, several of them, and its outputs averaged.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch

import network
import pixel_bank
from config import Settings, synchronize
from methods.interface import Denoised


@dataclass(frozen=True)
class Recipe:
    """Pixel2Pixel+'s own hyperparameters; the bank's (ws, ps, nn, mm) and the network's
    depth and slope are the faithful method's. Values before the development sweep are
    the issue's pilot's; results/recipe/README.md says what each was chosen on."""
    iterations_at_256: int = 1000  # training length of a 256 x 256 image (faithful: 3000 at any size)
    length_exponent: float = 1.0  # iterations grow as (pixels / 256^2) ** length_exponent
    min_iterations: int = 200  # no image trains shorter
    max_iterations: int = 3000  # nor longer than the faithful method
    width: int = 64  # hidden channels (faithful: 64; ZS-HPD uses 48)
    lr: float = 1e-3  # AdamW; halved at 1/2, 2/3 and 5/6 of the length, as the faithful 1500/2000/2500 of 3000
    out_activation: str = "none"  # "none" cannot saturate into a black image as a sigmoid can
    ensemble: int = 8  # pseudo instances averaged at inference; 0: the network on the noisy image
    check_every: int = 50  # iterations between checks on the held-out entries; 0: no checks
    keep_best: bool = True  # end with the weights that were closest to the held-out entries


def iterations_for(height: int, width: int, recipe: Recipe) -> int:
    scaled = recipe.iterations_at_256 * (height * width / 256 ** 2) ** recipe.length_exponent
    return int(min(recipe.max_iterations, max(recipe.min_iterations, round(scaled))))


def training_settings(settings: Settings, recipe: Recipe, height: int, width: int) -> Settings:
    """The faithful training loop's settings for this recipe and image size."""
    length = iterations_for(height, width, recipe)
    milestones = tuple(round(length * fraction) for fraction in (1 / 2, 2 / 3, 5 / 6))
    params = dataclasses.replace(settings.params, max_epoch=length, lr=recipe.lr, width=recipe.width,
                                 lr_milestones=milestones, out_activation=recipe.out_activation)
    return dataclasses.replace(settings, params=params)


@torch.no_grad()
def ensemble_estimate(model: network.Pixel2PixelNet, noisy: torch.Tensor, bank: torch.Tensor, draws: int,
                      generator: torch.Generator) -> torch.Tensor:
    """The mean of clamp(model(x)) over `draws` pseudo instances x of the training bank
    (mm x C x H x W); with draws 0, clamp(model(noisy)). C x H x W."""
    if draws == 0:
        return network.denoise(model, noisy)
    total = torch.zeros_like(noisy)
    for _ in range(draws):
        instance, _ = pixel_bank.sample_pseudo_instances(bank, generator)  # 1 x C x H x W
        total += network.denoise(model, instance[0])
    return total / draws


class HeldOutWatch:
    """Distance of the network's output on the noisy image to the mean of the bank
    entries training never draws, checked every `every` iterations; keeps the weights of
    the nearest. `identity` is the noisy image's own distance, which a useful network beats."""

    def __init__(self, noisy: torch.Tensor, held_out: torch.Tensor, every: int):
        self.noisy, self.every = noisy, every
        self.target = held_out.mean(dim=0)  # (nn - mm) x C x H x W -> C x H x W
        self.identity = self.distance(noisy)
        self.history: list[tuple[int, float]] = []
        self.best_state: dict | None = None

    def distance(self, image: torch.Tensor) -> float:
        return float(torch.mean((image - self.target) ** 2))

    @torch.no_grad()
    def __call__(self, iteration: int, model: network.Pixel2PixelNet) -> None:
        if self.every <= 0 or iteration % self.every:
            return
        value = self.distance(torch.clamp(model(self.noisy[None]), 0, 1)[0])
        if not self.history or value < min(v for _, v in self.history):
            self.best_state = {key: tensor.detach().clone() for key, tensor in model.state_dict().items()}
        self.history.append((iteration, value))

    @property
    def best(self) -> tuple[int, float]:
        return min(self.history, key=lambda item: item[1])


def build_bank(noisy: torch.Tensor, settings: Settings) -> tuple[torch.Tensor, torch.Tensor]:
    """(training entries mm x C x H x W, held-out entries (nn - mm) x C x H x W)."""
    params = settings.params
    offsets, _ = pixel_bank.match_offsets(noisy, params.ws, params.ps, params.nn, params.bank_distance,
                                          params.bank_method)
    entries = pixel_bank.gather_bank(noisy, offsets.to(noisy.device))  # nn x C x H x W
    return entries[:params.mm], entries[params.mm:]


def train(noisy: torch.Tensor, bank: torch.Tensor, held_out: torch.Tensor, settings: Settings, recipe: Recipe,
          name: str = "image", observe=None) -> tuple[network.Pixel2PixelNet, torch.Tensor, HeldOutWatch | None]:
    """The network (the best checked weights with keep_best), its losses, and the watch
    on the held-out entries (None without checks or held-out entries)."""
    trained = training_settings(settings, recipe, *noisy.shape[1:])
    watch = HeldOutWatch(noisy, held_out, recipe.check_every) if len(held_out) and recipe.check_every else None

    def watched(iteration, model):
        if watch is not None:
            watch(iteration, model)
        if observe is not None:
            observe(iteration, model)

    models, losses = network.train_networks([bank], trained, [settings.seed], name, observe=watched)
    if watch is not None and recipe.keep_best and watch.history:
        models[0].load_state_dict(watch.best_state)
    return models[0], losses[0], watch


def denoise(noisy: torch.Tensor, settings: Settings, name: str = "image", recipe: Recipe = Recipe()) -> Denoised:
    """noisy: C x H x W on the device to run on. settings: the faithful method's (the
    bank's ws, ps, nn, mm, loss and bank distance; seed, precision, device)."""
    start = time.perf_counter()
    bank, held_out = build_bank(noisy, settings)
    synchronize(noisy.device)
    bank_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model, losses, watch = train(noisy, bank, held_out, settings, recipe, name)
    fields = {"iterations": len(losses)}
    if watch is not None and watch.history:
        best_iteration, best_distance = watch.best
        fields = {"iterations": best_iteration if recipe.keep_best else len(losses),
                  "held_out_gain": f"{watch.identity / best_distance:.4f}"}
    generator = torch.Generator(device=noisy.device).manual_seed(settings.seed)
    denoised = ensemble_estimate(model, noisy, bank, recipe.ensemble, generator)
    failure = network.training_failure(losses, denoised, noisy)
    synchronize(noisy.device)
    return Denoised(denoised, {"bank": bank_seconds, "train": time.perf_counter() - start}, losses,
                    status=failure or "ok", fields=fields)
