"""The development sweep that chooses Pixel2Pixel+'s recipe, on images no table uses.

    python -m benchmarks.recipe_sweep --side 128 --variants length250 length500 length1000
    python -m benchmarks.recipe_sweep --side 256 --variants faithful plus --images astronaut rocket

The development set: the centre side x side crops of eight colour photographs that
scikit-image installs with itself, at eight noise settings: gauss 25 and 50, poiss 50,
saltpepper 0.1, bernoulli 0.2 and impulse 0.1 (the synthetic script's settings, at the
levels of the tables' cells) and 'boxgauss 25' and 'boxgauss 5', stand-ins for real camera
noise: Gaussian noise averaged over 2 x 2 pixels (per-pixel sigma 25 or 5), so that
neighbouring pixels' noise is correlated, denoised with the real script's settings. At 5
the noisy crops are about 34 dB, a camera's noise in good light; at 25 about 20 dB.
Each image's noise is seeded by its name and the setting, as the scripts seed theirs.

A variant is a Pixel2Pixel+ recipe (VARIANTS). Every training run is read out four ways
from one network: the last or the held-out-best weights, on the noisy image or averaged
over 8 pseudo instances; and the best weights over 0, 4, 8 and 16 pseudo instances. Its
curve (PSNR and held-out distance every 50 iterations) goes to --curves. 'faithful' and
'plus' are the registered methods pixel2pixel and pixel2pixel_plus as the scripts run
them; a Method variant may change one of the method's own settings. One row per
(variant, noise, image), appended as each finishes; a rerun skips the rows already there.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

import cli
import config
import methods
import network
import pipeline
import pixel_bank
import utils
from methods import METHODS
from methods import pixel2pixel_plus as plus
from noise import add_noise, image_seed

PHOTOGRAPHS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "retina",
               "stereo_motorcycle")
# Crop centres (row, column) other than the photograph's centre: the retina's is flat.
CROP_CENTRES = {"retina": (560, 360)}
NOISES = (("gauss", 25.0), ("gauss", 50.0), ("poiss", 50.0), ("saltpepper", 0.1), ("bernoulli", 0.2),
          ("impulse", 0.1), ("boxgauss", 25.0), ("boxgauss", 5.0))
SEED = 123  # the scripts' default seed
READOUT_DRAWS = (0, 4, 8, 16)


# ---------------------------------------------------------------------------- the instruments: recipes, held-out watch
@dataclass(frozen=True)
class Recipe:
    """A candidate recipe: the levers the sweep varies, over the faithful method's bank
    (ws, ps, nn, mm), network depth and slope. The defaults are issue #29's pilot's."""
    iterations_at_256: int = 1000  # training length of a 256 x 256 image (faithful: 3000 at any size)
    length_exponent: float = 1.0  # iterations grow as (pixels / 256^2) ** length_exponent
    min_iterations: int = 200  # no image trains shorter
    max_iterations: int = 3000  # nor longer than the faithful method
    width: int = 64  # hidden channels (faithful: 64; ZS-HPD uses 48)
    lr: float = 1e-3  # AdamW; halved at 1/2, 2/3 and 5/6 of the length, as the faithful 1500/2000/2500 of 3000
    out_activation: str = "none"  # "none" cannot saturate into a black image as a sigmoid can
    loss: str | None = None  # the training loss; None: the script's (L1 synthetic, L2 real); the bank keeps its own
    check_every: int = 50  # iterations between checks on the held-out entries; 0: no checks
    keep_best: bool = True  # end with the weights that were closest to the held-out entries
    pairs_weight: float = 0.0  # weight of a loss on ZS-HPD's 2 x 2 pairs (plus.gradient_sorted_pairs); 0: none
    pairs_guide: str = "noisy"  # whose gradient ranks a block's pixels: "noisy", or "bank" (the training entries' mean)
    pairs_per_block: bool = False  # each draw picks a pair per 2 x 2 block, not one of four for the image
    impulse_free: bool = False  # pseudo instances and read-out without the 0s and 1s of salt and pepper


def iterations_for(height: int, width: int, recipe: Recipe) -> int:
    scaled = recipe.iterations_at_256 * (height * width / 256 ** 2) ** recipe.length_exponent
    return int(min(recipe.max_iterations, max(recipe.min_iterations, round(scaled))))


def training_settings(settings: config.Settings, recipe: Recipe, height: int, width: int) -> config.Settings:
    """The faithful training loop's settings for this recipe and image size."""
    length = iterations_for(height, width, recipe)
    milestones = tuple(round(length * fraction) for fraction in (1 / 2, 2 / 3, 5 / 6))
    params = dataclasses.replace(settings.params, max_epoch=length, lr=recipe.lr, width=recipe.width,
                                 lr_milestones=milestones, out_activation=recipe.out_activation,
                                 loss=recipe.loss or settings.params.loss)
    return dataclasses.replace(settings, params=params)


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


def build_bank(noisy: torch.Tensor, settings: config.Settings) -> tuple[torch.Tensor, torch.Tensor]:
    """(training entries mm x C x H x W, held-out entries (nn - mm) x C x H x W)."""
    params = settings.params
    offsets, _ = pixel_bank.match_offsets(noisy, params.ws, params.ps, params.nn, params.bank_distance,
                                          params.bank_method)
    entries = pixel_bank.gather_bank(noisy, offsets.to(noisy.device))  # nn x C x H x W
    return entries[:params.mm], entries[params.mm:]


def train(noisy: torch.Tensor, bank: torch.Tensor, held_out: torch.Tensor, settings: config.Settings, recipe: Recipe,
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

    guide = bank.mean(dim=0) if recipe.pairs_guide == "bank" else None  # mm x C x H x W -> C x H x W
    pairs = [plus.GradientSortedPairs(noisy, guide=guide, per_block=recipe.pairs_per_block)] \
        if recipe.pairs_weight else None
    models, losses = network.train_networks([bank], trained, [settings.seed], name, observe=watched, pairs=pairs,
                                            pairs_weight=recipe.pairs_weight)
    if watch is not None and recipe.keep_best and watch.history:
        models[0].load_state_dict(watch.best_state)
    return models[0], losses[0], watch


@dataclass(frozen=True)
class Method:
    """A registered method as the scripts run it, with these of its own settings changed."""
    name: str
    own: tuple[tuple[str, object], ...] = ()  # (setting, value) pairs


BASE = Recipe(keep_best=False)  # the sweep reads the best weights out itself
VARIANTS = {
    "faithful": Method("pixel2pixel"),
    "plus": Method("pixel2pixel_plus"),
    # Whether bernoulli's dropped elements (0s) are left out as salt-and-pepper's 0s and 1s are:
    # its rows made before plus left them out by default (issue #32) are plus_impulses_kept's.
    "plus_impulses_out": Method("pixel2pixel_plus", (("impulses", "leave_out"),)),
    "plus_impulses_kept": Method("pixel2pixel_plus", (("impulses", "keep"),)),
    "zsn2n": Method("zsn2n"),  # for issue #31's precision study: one --out per --precision
    # Length alone, at the faithful settings otherwise (no ensemble is in the training).
    "length250": dataclasses.replace(BASE, iterations_at_256=1000, length_exponent=1.0),
    "length500": dataclasses.replace(BASE, iterations_at_256=1000, length_exponent=0.5),
    "length1000": dataclasses.replace(BASE, iterations_at_256=1000, length_exponent=0.0),
    "lr2e-3": dataclasses.replace(BASE, iterations_at_256=1000, length_exponent=0.5, lr=2e-3),
    "width48": dataclasses.replace(BASE, iterations_at_256=1000, length_exponent=0.5, width=48),
    "sigmoid": dataclasses.replace(BASE, iterations_at_256=1000, length_exponent=0.5, out_activation="sigmoid"),
    # lr2e-3, half the faithful length at 256 x 256
    "lr2e-3_1500": dataclasses.replace(BASE, iterations_at_256=1500, length_exponent=0.5, lr=2e-3),
    # lr2e-3 with L2's mean in place of L1's median (the synthetic script trains on L1).
    "l2_lr2e-3": dataclasses.replace(BASE, iterations_at_256=1000, length_exponent=0.5, lr=2e-3, loss="L2"),
    # lr2e-3 trained on L1 of Fourier coefficients (network.fourier_l1): ZS-HPD's low
    # frequencies at half weight, and flat, to tell the weighting from the domain.
    "fourier_lr2e-3": dataclasses.replace(BASE, iterations_at_256=1000, length_exponent=0.5, lr=2e-3,
                                          loss="fourier"),
    "fourier_flat_lr2e-3": dataclasses.replace(BASE, iterations_at_256=1000, length_exponent=0.5, lr=2e-3,
                                               loss="fourier_flat"),
    "fourier_flat_lr2e-3_1500": dataclasses.replace(BASE, iterations_at_256=1500, length_exponent=0.5, lr=2e-3,
                                                    loss="fourier_flat"),
    # lr2e-3 plus ZS-HPD's gradient-sorted 2 x 2 pairs, one a step at the bank pair's weight
    "pairs_lr2e-3": dataclasses.replace(BASE, iterations_at_256=1000, length_exponent=0.5, lr=2e-3,
                                        pairs_weight=1.0),
    # ranked on the bank's mean, a non-local estimate, so that a pixel's own noise does not rank it
    "pairs_guided_lr2e-3": dataclasses.replace(BASE, iterations_at_256=1000, length_exponent=0.5, lr=2e-3,
                                               pairs_weight=1.0, pairs_guide="bank"),
    # a pair picked per 2 x 2 block at every draw: nothing fixed to memorise
    "pairs_mixed_lr2e-3": dataclasses.replace(BASE, iterations_at_256=1000, length_exponent=0.5, lr=2e-3,
                                              pairs_weight=1.0, pairs_per_block=True),
    # for salt-and-pepper, which wants longer training: half as long again, or a faster rate
    "pairs_mixed_lr2e-3_1500": dataclasses.replace(BASE, iterations_at_256=1500, length_exponent=0.5, lr=2e-3,
                                                   pairs_weight=1.0, pairs_per_block=True),
    "pairs_mixed_lr4e-3": dataclasses.replace(BASE, iterations_at_256=1000, length_exponent=0.5, lr=4e-3,
                                              pairs_weight=1.0, pairs_per_block=True),
    # for salt-and-pepper: L1 that ignores the targets' impulses (network.impulse_l1)
    "pairs_mixed_lr2e-3_impulse": dataclasses.replace(BASE, iterations_at_256=1000, length_exponent=0.5, lr=2e-3,
                                                      pairs_weight=1.0, pairs_per_block=True, loss="impulse_L1"),
    # for salt-and-pepper: pseudo instances that leave its impulses out (plus.ImpulseFreeBank)
    "pairs_mixed_lr2e-3_impulse_free": dataclasses.replace(BASE, iterations_at_256=1000, length_exponent=0.5,
                                                           lr=2e-3, pairs_weight=1.0, pairs_per_block=True,
                                                           impulse_free=True),
}
ROW_FIELDS = ["variant", "noise", "image", "side", "noisy_psnr", "psnr", "last_k0", "last_k8", "best_k0", "best_k4",
              "best_k8", "best_k16", "best_iteration", "iterations", "held_out_gain", "bank_seconds", "train_seconds",
              "precision", "device", "status"]
CURVE_FIELDS = ["variant", "noise", "image", "side", "iteration", "psnr", "held_out_distance"]


def development_set(side: int) -> dict[str, np.ndarray]:
    """name -> a side x side crop around the photograph's centre (CROP_CENTRES), H x W x 3
    floats in [0, 1]."""
    from skimage import data as skdata
    from skimage.util import img_as_float32

    crops = {}
    for name in PHOTOGRAPHS:
        photograph = getattr(skdata, name)()
        photograph = photograph[0] if isinstance(photograph, tuple) else photograph  # the stereo pair's left
        image = img_as_float32(photograph)[:, :, :3]
        centre_row, centre_column = CROP_CENTRES.get(name, (image.shape[0] // 2, image.shape[1] // 2))
        top, left = centre_row - side // 2, centre_column - side // 2
        crops[name] = np.ascontiguousarray(image[top:top + side, left:left + side])
    return crops


def box_gauss(clean: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of sigma 2 * level averaged over 2 x 2 pixels: per-pixel sigma `level`
    (on 0..255), correlated with the neighbours it shares draws with; clipped as gauss is."""
    height, width, channels = clean.shape
    draws = rng.standard_normal((height + 1, width + 1, channels), dtype=np.float32) * np.float32(2 * level / 255)
    noise = (draws[:-1, :-1] + draws[1:, :-1] + draws[:-1, 1:] + draws[1:, 1:]) / 4
    return np.clip(clean + noise, 0.0, 1.0).astype(np.float32)


def noisy_version(clean: np.ndarray, name: str, noise: tuple[str, float]) -> np.ndarray:
    nt, nl = noise
    rng = np.random.default_rng(image_seed(SEED, f"{name}:{nt}:{nl:g}"))
    return box_gauss(clean, nl, rng) if nt == "boxgauss" else add_noise(clean, nt, nl, rng)


def settings_for(noise: tuple[str, float], precision: str, method: Method = Method("pixel2pixel"),
                 device: str = "cpu") -> config.Settings:
    """The script's settings: the real script's for the real-noise stand-in."""
    nt, nl = noise
    common = dict(precision=precision, device=device, no_progress=True, **dict(method.own))
    if nt == "boxgauss":
        return methods.settings(method.name, **common)
    return methods.settings(method.name, "syn", nt, nl, **common)


def score(clean: np.ndarray, estimate: torch.Tensor) -> float:
    return utils.psnr(clean, utils.to_numpy(estimate))


def run_plus(recipe: Recipe, clean: np.ndarray, noisy: torch.Tensor, settings: config.Settings,
             name: str, outputs: dict | None = None) -> tuple[dict, list[dict]]:
    """The row and curve of a candidate recipe; outputs, if given, gets its last weights'
    estimates by read-out column (last_k0, last_k8), H x W x C."""
    start = time.perf_counter()
    bank, held_out = build_bank(noisy, settings)
    if recipe.impulse_free:
        bank = plus.ImpulseFreeBank(bank)
        noisy = bank.cleaned  # what the network is read out on
    bank_seconds = time.perf_counter() - start
    curve = []

    def observe(iteration, model):
        if iteration % 50 == 0:
            with torch.no_grad():
                curve.append({"iteration": iteration, "psnr": f"{score(clean, network.denoise(model, noisy)):.4f}"})

    start = time.perf_counter()
    model, losses, watch = train(noisy, bank, held_out, settings, recipe, name, observe)
    train_seconds = time.perf_counter() - start
    for point, (iteration, distance) in zip(curve, watch.history):
        point["held_out_distance"] = f"{distance:.6e}"

    def readout(draws, keep_as=None):
        generator = torch.Generator(device=noisy.device).manual_seed(settings.seed)
        estimate = utils.to_numpy(plus.ensemble_estimate(model, noisy, bank, draws, generator))
        if outputs is not None and keep_as:
            outputs[keep_as] = estimate
        return utils.psnr(clean, estimate)

    row = {"last_k0": readout(0, "last_k0"), "last_k8": readout(8, "last_k8"), "iterations": len(losses),
           "bank_seconds": f"{bank_seconds:.2f}", "train_seconds": f"{train_seconds:.2f}",
           "status": network.training_failure(losses, network.denoise(model, noisy), noisy) or "ok"}
    best_iteration, best_distance = watch.best
    model.load_state_dict(watch.best_state)
    row.update({f"best_k{draws}": readout(draws) for draws in READOUT_DRAWS})
    row.update(best_iteration=best_iteration, held_out_gain=f"{watch.identity / best_distance:.4f}")
    row["psnr"] = row["best_k8"]
    return row, curve


def run_method(clean: np.ndarray, noisy: torch.Tensor, settings: config.Settings, name: str,
               outputs: dict | None = None) -> dict:
    result = METHODS[settings.method].denoise(noisy, settings, name)
    estimate = utils.to_numpy(result.image)  # H x W x C, converted once for the score and the saved copy
    if outputs is not None:
        outputs["psnr"] = estimate
    return {"psnr": utils.psnr(clean, estimate), "iterations": settings.params.max_epoch, "status": result.status,
            "bank_seconds": f"{result.seconds.get('bank', 0):.2f}", "train_seconds": f"{result.seconds['train']:.2f}"}


def done_keys(path: str) -> set[tuple[str, str, str, str]]:
    if not os.path.exists(path):
        return set()
    with open(path, newline="") as handle:
        return {(row["variant"], row["noise"], row["image"], row["side"]) for row in csv.DictReader(handle)}


def append_rows(path: str, fields: list[str], rows: list[dict]) -> None:
    new = not os.path.exists(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerows(rows)


# How a candidate recipe's network is read out, by its CSV column; a method's row has its own psnr.
READOUTS = {"last_k0": "on the noisy image", "last_k8": "mean over 8 pseudo instances"}


def table(rows: list[dict], against: str = "faithful") -> str:
    """Markdown, one table per crop side: mean PSNR (dB) per variant and read-out (rows)
    and noise (columns), then, in brackets, its difference from `against`'s mean over the
    same images (a recipe's same read-out; a method's own) and how many images that is."""
    lines = []
    for side in sorted({row["side"] for row in rows}, key=int):
        here = [row for row in rows if row["side"] == side]
        noises = [f"{nt}{nl:g}" for nt, nl in NOISES if any(row["noise"] == f"{nt}{nl:g}" for row in here)]
        psnr = {(row["variant"], row["noise"], row["image"]): row for row in here}
        lines += [f"### {side} x {side}", "", "| variant | read-out | " + " | ".join(noises) + " |",
                  "|---|---|" + "---|" * len(noises)]
        for variant in [name for name in VARIANTS if any(row["variant"] == name for row in here)]:
            for column, readout in ((("psnr", "the method's"),) if isinstance(VARIANTS[variant], Method)
                                    else READOUTS.items()):
                cells = []
                # A method's own read-out; a recipe's like this one's, or on the noisy image against a method's.
                reference_column = ("psnr" if isinstance(VARIANTS[against], Method) else
                                    "last_k0" if column == "psnr" else column)
                for noise in noises:
                    images = [image for (name, kind, image) in psnr if name == variant and kind == noise]
                    paired = [image for image in images if (against, noise, image) in psnr]
                    if not images:
                        cells.append("")
                        continue
                    mean = np.mean([float(psnr[variant, noise, image][column]) for image in images])
                    reference = [float(psnr[against, noise, image][reference_column]) for image in paired]
                    ours = [float(psnr[variant, noise, image][column]) for image in paired]
                    gain = np.mean(np.subtract(ours, reference)) if paired else float("nan")
                    difference = f"{gain:+.2f}" if paired else f"no {against} row"
                    cells.append(f"{mean:.2f} ({difference}, {len(paired)})" if variant != against
                                 else f"{mean:.2f} ({len(images)})")
                lines.append(f"| {variant} | {readout} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = cli.tool_parser("recipe_sweep.py", __doc__)
    parser.add_argument("--side", type=int, default=128, help="crop side (default 128; the choice is confirmed at 256)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="the recipes to run")
    parser.add_argument("--images", nargs="+", choices=PHOTOGRAPHS, help="default: all eight")
    parser.add_argument("--noises", nargs="+", choices=[f"{nt}{nl:g}" for nt, nl in NOISES], help="default: all eight")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--out", default="results/recipe/sweep.csv", help="the rows, appended as they come")
    parser.add_argument("--curves", default="results/recipe/curves.csv", help="each run's curve, appended")
    parser.add_argument("--save_outputs", metavar="DIR",
                        help="also save each estimate as DIR/VARIANT_NOISE_IMAGE_SIDE_COLUMN.npy (H x W x C floats), "
                             "for read-outs studied after training")
    parser.add_argument("--table", metavar="FILE", help="run nothing: write the means of --out's rows to FILE "
                                                        "(markdown)")
    parser.add_argument("--against", choices=list(VARIANTS), default="faithful",
                        help="with --table: the variant each mean is differenced with (default: faithful)")
    args = parser.parse_args(argv)
    if not args.variants and not args.table:
        parser.error("name the --variants to run (or --table FILE to tabulate --out)")
    if not 64 <= args.side <= 512:
        parser.error(f"--side {args.side}: choose a side from 64 to 512")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.table:
        if not os.path.isfile(args.out):
            raise utils.UserError(f"--out {args.out}: no such file to tabulate")
        with open(args.out, newline="") as handle:
            utils.atomic_write_text(args.table, table(list(csv.DictReader(handle)), args.against))
        return {"skipped": []}
    folders = [(os.path.dirname(args.out) or ".", "--out"), (os.path.dirname(args.curves) or ".", "--curves")]
    if args.save_outputs:
        os.makedirs(args.save_outputs, exist_ok=True)
        folders.append((args.save_outputs, "--save_outputs"))
    for folder, flag in folders:  # before hours of training, not after
        pipeline.check_writable(folder, flag)
    crops = development_set(args.side)
    images = args.images or list(PHOTOGRAPHS)
    noises = [noise for noise in NOISES if args.noises is None or f"{noise[0]}{noise[1]:g}" in args.noises]
    done = done_keys(args.out)
    # Every variant of one (noise, image) before the next: an interrupted sweep leaves comparable rows.
    for noise in noises:
        noise_name = f"{noise[0]}{noise[1]:g}"
        for name in images:
            for variant in args.variants:
                if (variant, noise_name, name, str(args.side)) in done:
                    continue
                method = VARIANTS[variant] if isinstance(VARIANTS[variant], Method) else Method("pixel2pixel")
                settings = settings_for(noise, args.precision, method, args.device)
                clean = crops[name]
                noisy_pixels = noisy_version(clean, name, noise)
                noisy = utils.to_tensor(noisy_pixels, torch.device(settings.device))
                key = {"variant": variant, "noise": noise_name, "image": name, "side": args.side}
                outputs = {} if args.save_outputs else None
                if isinstance(VARIANTS[variant], Method):
                    row, curve = run_method(clean, noisy, settings, name, outputs), []
                else:
                    row, curve = run_plus(VARIANTS[variant], clean, noisy, settings, name, outputs)
                for column, estimate in (outputs or {}).items():
                    np.save(os.path.join(args.save_outputs, f"{variant}_{noise_name}_{name}_{args.side}_{column}.npy"),
                            estimate)
                row = {**key, **row, "noisy_psnr": utils.psnr(clean, noisy_pixels), "precision": settings.precision,
                       "device": config.describe_device(noisy.device)}
                row = {field: f"{value:.4f}" if isinstance(value, float) else value for field, value in row.items()}
                append_rows(args.curves, CURVE_FIELDS, [{**key, **point} for point in curve])
                append_rows(args.out, ROW_FIELDS, [row])
                print(f"{variant} {noise_name} {name}: {row.get('last_k0', row['psnr'])} dB (noisy {row['noisy_psnr']}), "
                      f"{float(row['train_seconds']):.0f} s", flush=True)
    return {"skipped": []}


if __name__ == "__main__":
    cli.run(main)
