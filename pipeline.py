"""One pipeline for every denoiser and source of images: noisy image -> method -> metrics
-> outputs, a results row written as each image finishes; --shard and --time_limit split it."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from typing import Callable

import numpy as np
import torch

import datasets
import methods
import runs
import utils
from config import Run, Settings, describe_device
from datasets import SkippedImage, Source
from methods import METHODS, Denoised
from utils import UserError


def available_memory_bytes(device: torch.device) -> int | None:
    """None where unknown (no /proc/meminfo): then no image is refused for its size."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    with contextlib.suppress(OSError):
        with open("/proc/meminfo") as handle:
            return next((int(line.split()[1]) * 1024 for line in handle if line.startswith("MemAvailable:")), None)
    return None


def check_images(source: Source, names: list[str], settings: Settings) -> tuple[list[str], list[str]]:
    """Read every image before any work, so a bad file is found in seconds, not hours in:
    (names to run, 'name: reason' of each file unreadable, unfit for the method or too big)."""
    usable, skipped = [], []
    available = available_memory_bytes(torch.device(settings.device))
    settings = dataclasses.replace(settings, batch_images=min(settings.batch_images, len(names)))  # sizes memory
    for name in names:
        try:
            noisy, _ = source.read(name)
            height, width, channels = noisy.pixels.shape
            needed = METHODS[settings.method].check_image(height, width, channels, settings)
            if not source.photos and min(height, width) < utils.SSIM_MIN_SIDE:
                raise SkippedImage(f"{name}: {height} x {width} pixels is too small to score: SSIM needs sides of "
                                   f"at least {utils.SSIM_MIN_SIDE}")
            if available is not None and needed > available:
                raise SkippedImage(f"{name}: {height} x {width} needs about {needed / 2 ** 30:.1f} GiB, "
                                   f"{available / 2 ** 30:.1f} GiB is free (--train_crop trains on smaller crops)")
        except UserError as error:
            skip(skipped, str(error) if name in str(error) else f"{name}: {error}")
            continue
        usable.append(name)
    return usable, skipped


def skip(skipped: list[str], message: str) -> None:
    print(f"warning: skipping {message}", file=sys.stderr, flush=True)
    skipped.append(message)


# What a photo run writes beside <stem>: never taken back as an input of the same folder.
PHOTO_OUTPUTS = ("_denoised.png", "_compare.png", "_loss.png", "_loss.csv")


def check_photos(source: Source, names: list[str], finished: dict[str, dict]) -> tuple[list[str], list[str]]:
    """(photos to run or resume, 'name: reason' of each refused), before any work. The
    folder's own outputs are left out (--input is --out_image); refused: a photo whose
    name a row of another content (sha256) holds, or whose stem an earlier photo took."""
    outputs = {os.path.splitext(done)[0] + suffix for done in finished for suffix in PHOTO_OUTPUTS}
    stems = {os.path.splitext(done)[0]: done for done in finished}
    kept, refused = [], []
    for name in names:
        if name in outputs:
            continue
        stem, row = os.path.splitext(name)[0], finished.get(name)
        if row is None and stem in stems:
            skip(refused, f"{name}: --out_image already holds the outputs of {stems[stem]}, which shares its "
                          f"stem; use another --out_image or rename it")
        elif row is not None and row.get("photo_sha256") not in ("", None, utils.file_sha256(os.path.join(
                source.folder, name))):
            skip(refused, f"{name}: --out_image already holds another photo of this name; use another "
                          f"--out_image or rename it")
        else:
            kept.append(name)
    return kept, refused


def check_writable(folder: str, flag: str) -> None:
    """The folder, or its nearest existing parent, is one we may write into: checked for
    every output place before any is made."""
    existing = os.path.abspath(folder)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f"{flag} {folder}: cannot write there ({existing} is not a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {folder}: cannot write there (permission denied)")


class TimeBudget:
    """--time_limit: whether the next batch would end within it, at this run's rate so far."""

    def __init__(self, limit: float | None, clock: Callable[[], float] = time.perf_counter):
        self.limit, self.clock, self.start = limit, clock, clock()
        self.images, self.busy = 0, 0.0  # images finished; seconds from the start to the last

    def finished(self, images: int) -> None:
        self.images += images
        self.busy = self.clock() - self.start

    def allows(self, images: int) -> bool:
        """The first batch always starts: with nothing done, nothing says how long it takes."""
        if self.limit is None or not self.images:
            return True
        return self.clock() - self.start + self.busy / self.images * images <= self.limit

    def stop_message(self, left: int) -> str:
        rate = f"; an image took {self.busy / self.images:.0f} s" if self.images else ""
        return (f"Stopping: --time_limit {self.limit:g} s with {left} image(s) left "
                f"({self.clock() - self.start:.0f} s used{rate}); run the same command again to resume")


def write_outputs(name: str, noisy: utils.Image, clean: utils.Image | None, result: Denoised, settings: Settings,
                  run_dir: str) -> dict:
    """The denoised image and its companions, and the image's results row. Benchmark
    outputs are truncated to integers as the release saves them; a photo's rounded."""
    stem = os.path.join(run_dir, os.path.splitext(name)[0])
    denoised = utils.to_numpy(result.image)
    noisy_pixels = np.clip(noisy.pixels, 0, 1)
    panels = [noisy_pixels, denoised] + ([] if clean is None else [clean.pixels])
    utils.save_image(f"{stem}_compare.png", utils.side_by_side(panels))
    if result.losses is not None:
        utils.save_loss_curve(stem, result.losses.numpy(), f"{name}: {settings.method} training loss, {settings.precision}")
    stages = {f"{stage}_seconds": f"{seconds:.2f}" for stage, seconds in result.seconds.items()
              if f"{stage}_seconds" in METHODS[settings.method].csv_fields}  # the method's own columns
    row = {"image": name, "psnr": "", "ssim": "", "noisy_psnr": "", **result.fields, **stages,
           "seconds": f"{sum(result.seconds.values()):.2f}", "device": describe_device(result.image.device),
           "precision": settings.precision, "attempts": result.attempts, "status": result.status}
    if clean is None:
        utils.save_image(f"{stem}_denoised.png", utils.quantize(denoised, noisy.bit_depth, rounding=True))
        print(f"Denoised {name} in {row['seconds']} seconds: {stem}_denoised.png", flush=True)
        return row
    integers = utils.quantize(denoised, clean.bit_depth)
    utils.save_image(f"{stem}_noisy.png", utils.quantize(noisy.pixels, clean.bit_depth))
    utils.save_image(f"{stem}.png", integers)
    psnr = utils.psnr(clean.pixels, denoised)
    if not np.isfinite(denoised).all():  # whatever the method: such a row is not ok
        row["status"] = "non-finite output"
    ssim = utils.ssim(utils.quantize(clean.pixels, clean.bit_depth), integers, clean.max_value)
    print(f"Image: {name} | PSNR: {psnr:.2f} dB | SSIM: {ssim:.4f}", flush=True)  # the release's line
    return {**row, "psnr": f"{psnr:.4f}", "ssim": f"{ssim:.6f}", "noisy_psnr": f"{utils.psnr(clean.pixels, noisy.pixels):.4f}"}


def denoise_batch(batch: list[tuple[str, utils.Image, utils.Image | None]], settings: Settings,
                  source: Source, run_dir: str) -> list[dict]:
    method = METHODS[settings.method]
    tensors = [utils.to_tensor(noisy.pixels, torch.device(settings.device)) for _, noisy, _ in batch]  # C x H x W
    names = [name for name, _, _ in batch]
    results = [method.denoise(tensors[0], settings, names[0])] if len(batch) == 1 else \
        method.denoise_together(tensors, settings, names)
    rows = []
    for (name, noisy, clean), result in zip(batch, results):
        if source.photos and result.status != "ok":  # no clean image to be scored against: nothing to keep
            raise SkippedImage(f"{name}: training failed ({result.status}) after {result.attempts} attempt(s)")
        rows.append(write_outputs(name, noisy, clean, result, settings, run_dir))
    return rows


def run_folder(run: Run, settings: Settings, noise: list[str]) -> str:
    """<out_image>/<dataset>/<tag>: the noise, then the method's settings that change results."""
    return os.path.join(run.out_image, run.dataset, "_".join(noise + methods.folder_words(settings)))


def run(source: Source, settings: Settings, run: Run, command: str, budget: TimeBudget | None = None) -> dict:
    """Denoise the source's images into their run folder, or --out_image itself for photos.
    An image with a row in any results CSV of the folder is not redone (a CSV alone resumes
    a run, anywhere). budget: one shared with other runs (reproduce's cells), else the run's."""
    run_dir = run.out_image if source.photos else run_folder(run, settings, source.noise)
    tag = os.path.basename(run_folder(run, settings, source.noise))
    names = datasets.shard_names(source.names, run.shard)
    for folder, flag in ((run_dir, "--out_image"), (settings.save, "--save")):
        if folder:
            check_writable(folder, flag)
    identity = {"tag": tag, **METHODS[settings.method].identity(settings)}
    runs.prepare_run_dir(run_dir, identity, {"run": dataclasses.asdict(run), "settings": dataclasses.asdict(settings)},
                         command)
    results = runs.ResultsCSV(os.path.join(run_dir, runs.results_csv_name(run.shard)),
                              runs.csv_fields(METHODS[settings.method].csv_fields))
    print(f"Denoising {len(names)} image(s) of {source.folder} with {settings.method} ({tag}) on "
          f"{settings.device}, {settings.precision}", flush=True)
    finished = runs.finished_rows(run_dir)
    names, refused = check_photos(source, names, finished) if source.photos else (names, [])
    usable, skipped = check_images(source, names, settings)
    skipped = refused + skipped
    others = {finished[name]["precision"] for name in usable if name in finished} - {settings.precision, ""}
    if others and any(name not in finished for name in usable):
        print(f"Note: this run folder holds rows made in {', '.join(sorted(others))}; new rows are made in "
              f"{settings.precision} (every row records its precision)", flush=True)
    rows, waiting = [], {}
    budget = budget or TimeBudget(run.time_limit)
    images_before = budget.images
    to_do = [name for name in usable if name not in finished]

    def run_batch(batch: list) -> bool:
        """False, with nothing done, when the batch would overrun --time_limit."""
        if not budget.allows(len(batch)):
            return False
        try:
            new_rows = denoise_batch(batch, settings, source, run_dir)
        except SkippedImage as error:
            skip(skipped, str(error))
            new_rows = []
        for (name, _, _), row in zip(batch, new_rows):
            if source.photos:  # which photo it was: another of the same name is not taken for it
                row["photo_sha256"] = utils.file_sha256(os.path.join(source.folder, name))
            results.add(row)
            rows.append(row)
        budget.finished(len(batch))
        return True

    stopped = False
    for name in usable:
        if name in finished:
            score = f"PSNR {float(finished[name]['psnr']):.2f} dB" if finished[name]["psnr"] else "done"
            print(f"Skipping {name}: already in a results CSV of this run ({score})", flush=True)
            rows.append(finished[name])
            continue
        if stopped:
            continue
        noisy, clean = source.read(name)
        batch = waiting.setdefault(noisy.pixels.shape, [])
        batch.append((name, noisy, clean))
        if len(batch) == settings.batch_images:
            stopped = not run_batch(waiting.pop(noisy.pixels.shape))
    for batch in waiting.values():
        stopped = stopped or not run_batch(batch)
    new_images = budget.images - images_before
    summary = {"images": len(rows), "new_images": new_images, "csv": results.path, "run_dir": run_dir,
               "skipped": skipped, "stopped": len(to_do) - new_images if stopped else 0}
    if stopped:
        print(budget.stop_message(summary["stopped"]), flush=True)
    scored = [row for row in rows if row["psnr"]]
    summary.update({key: float(np.mean([float(row[key]) for row in scored])) if scored else float("nan")
                    for key in ("psnr", "ssim")})
    if scored:
        print(f"Average PSNR: {summary['psnr']:.2f} dB, Average SSIM: {summary['ssim']:.4f}", flush=True)
    return summary
