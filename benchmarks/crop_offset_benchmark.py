"""How much the choice of 256 x 256 crop moves a McMaster18 table cell's mean PSNR.

    python benchmarks/crop_offset_benchmark.py --data_path ../shared/data --frames McMaster500 \
        results/tables/McMaster/gauss_25_*/ results/tables/McMaster/gauss_50_*/ \
        --report results/benchmarks/crop_offsets_mcmaster_cpu.txt

The paper scores McMaster18 on 256 x 256 crops of the 500 x 500 frames and does not say
which; ours are the centre crops. Training the method on every other crop costs hours, so
this uses a proxy that costs a second an image: the mean of the cell's own pixel bank
(the same block matching, window, patch, neighbours and distance), a non-local-means
estimate of the clean image. On the centre crops, where the cell trained, the proxy's
PSNR is fitted to the cell's PSNR image by image (failed runs left out) and the report
says how well it tracks it (r); the fit then turns the proxy's mean over the frames at
each crop offset into a predicted mean for the method. Every crop of a frame gets the
same noise (the scripts' seed for that image name), so at the centre offset the noisy
image is exactly the one the cell trained on (checked) and elsewhere only the content
changes. No training: a few minutes on a CPU. results/reproduce.py quotes the report.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
from tqdm import tqdm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import pixel_bank  # noqa: E402
import runner  # noqa: E402
from metric_benchmark import read_run, run_label  # noqa: E402  (benchmarks/ is on the path as the script's folder)
import utils  # noqa: E402
from utils import UserError  # noqa: E402

def crop_offsets(height: int, width: int, crop: int, step: int) -> list[tuple[int, int]]:
    """Top-left corners of crop x crop crops on a grid of `step` pixels that always holds
    the centre crop's corner and the frame's far edges."""
    def axis(size: int) -> list[int]:
        centre = (size - crop) // 2
        positions = set(range(centre, -1, -step)) | set(range(centre, size - crop + 1, step)) | {0, size - crop}
        return sorted(positions)
    if height < crop or width < crop:
        raise UserError(f"frames of {width} x {height} are smaller than the {crop} x {crop} crops")
    return [(top, left) for top in axis(height) for left in axis(width)]


def bank_mean_psnr(clean: np.ndarray, noise_type: str, level: float, seed: int, name: str,
                   arguments: dict) -> float:
    """PSNR of the pixel-bank mean for one crop, noised as the scripts noise an image of
    that name."""
    rng = np.random.default_rng(utils.image_seed(seed, name))
    noisy = utils.add_noise(clean, noise_type, level, rng)
    noisy_tensor = utils.to_tensor(noisy, torch.device("cpu"))  # C x H x W
    bank, _ = pixel_bank.build_pixel_bank(noisy_tensor, arguments["ws"], arguments["ps"], arguments["nn"],
                                          distance=arguments["loss"], method=arguments["bank_method"])
    estimate = utils.to_numpy(bank.mean(dim=0))  # nn x C x H x W -> C x H x W -> H x W x C
    return utils.psnr(clean, estimate)


def fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """Least squares y = slope * x + intercept: (slope, intercept, r, rms residual)."""
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    return float(slope), float(intercept), float(np.corrcoef(x, y)[0, 1]), float(np.sqrt(np.mean(residual ** 2)))


def offsets_report(run_dir: str, data_path: str, frames: str, step: int, progress: bool) -> list[str]:
    arguments, finished = read_run(run_dir)
    if "nt" not in arguments:
        raise UserError(f"{run_dir}: only synthetic-noise cells have clean frames to crop")
    crops_folder = os.path.join(data_path, arguments["dataset"])
    frames_folder = os.path.join(data_path, frames)
    names = runner.list_images(crops_folder)
    missing = [name for name in names if not os.path.exists(os.path.join(frames_folder, name))]
    if missing:
        raise UserError(f"{frames_folder} lacks {', '.join(missing)}: --frames must hold the full frames of "
                        f"{crops_folder}")
    healthy = [name for name in names if name in finished and finished[name]["status"] == "ok"]
    if len(healthy) < 3:
        raise UserError(f"{run_dir} has {len(healthy)} finished healthy images: too few to fit the proxy")
    clean_frames = {name: utils.load_image(os.path.join(frames_folder, name)).pixels for name in names}
    crops = {name: utils.load_image(os.path.join(crops_folder, name)).pixels for name in names}
    height, width = next(iter(clean_frames.values())).shape[:2]
    crop = next(iter(crops.values())).shape[0]
    for name in names:
        if clean_frames[name].shape[:2] != (height, width):
            raise UserError(f"{frames_folder}/{name}: frames differ in size")
        if crops[name].shape[:2] != (crop, crop):
            raise UserError(f"{crops_folder}/{name}: the crops must all be {crop} x {crop}")
    offsets = crop_offsets(height, width, crop, step)
    centre = ((height - crop) // 2, (width - crop) // 2)
    scores = {}  # (offset, name) -> proxy PSNR
    bar = tqdm(total=len(offsets) * len(names), disable=not progress, desc=run_label(arguments))
    for offset in offsets:
        for name in names:
            clean = np.ascontiguousarray(clean_frames[name][offset[0]:offset[0] + crop, offset[1]:offset[1] + crop])
            if offset == centre and not np.array_equal(clean, crops[name]):
                raise UserError(f"{crops_folder}/{name} is not the centre crop of {frames_folder}/{name}")
            scores[(offset, name)] = bank_mean_psnr(clean, arguments["nt"], float(arguments["nl"]),
                                                    arguments["seed"], name, arguments)
            bar.update()
    bar.close()
    proxy = np.array([scores[(centre, name)] for name in healthy])
    ours = np.array([float(finished[name]["psnr"]) for name in healthy])
    slope, intercept, correlation, residual = fit_line(proxy, ours)
    proxy_means = {offset: float(np.mean([scores[(offset, name)] for name in names])) for offset in offsets}
    predicted = {offset: slope * proxy_means[offset] + intercept for offset in offsets}
    shifts = {offset: predicted[offset] - predicted[centre] for offset in offsets}
    lowest, highest = min(shifts, key=shifts.get), max(shifts, key=shifts.get)
    lines = [f"Crop offsets, {run_label(arguments)}, {len(names)} frames of {frames}, {len(offsets)} offsets of "
             f"{crop} x {crop}, proxy: the mean of the cell's pixel bank (ws {arguments['ws']}, ps {arguments['ps']}, "
             f"nn {arguments['nn']}, {arguments['loss']} distance), fitted to {os.path.relpath(run_dir, ROOT)}",
             f"{'offset':<10}{'proxy':>8}{'predicted':>11}{'shift':>8}"]
    for offset in offsets:
        lines.append(f"{f'{offset[0]},{offset[1]}':<10}{proxy_means[offset]:8.2f}{predicted[offset]:11.2f}"
                     f"{shifts[offset]:+8.2f}")
    lines += [
        f"fit: method = {slope:.3f} * proxy {intercept:+.3f} over {len(healthy)} healthy images at the centre "
        f"crop, r {correlation:.3f}, rms residual {residual:.2f} dB",
        f"summary: crop choice moves the predicted mean from {shifts[lowest]:+.2f} ({lowest[0]},{lowest[1]}) to "
        f"{shifts[highest]:+.2f} ({highest[0]},{highest[1]}) dB against the centre crop over {len(offsets)} offsets; "
        f"top-left {shifts[(0, 0)]:+.2f} dB; r {correlation:.3f}",
    ]
    return lines


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", help="run folders of McMaster18 table cells (results/tables/...)")
    parser.add_argument("--data_path", default="./data", help="where the crops and the full frames are")
    parser.add_argument("--frames", default="McMaster500", help="the dataset of full frames (default: McMaster500)")
    parser.add_argument("--step", type=int, default=61, help="grid step of the crop offsets in pixels (default: 61)")
    parser.add_argument("--report", help="also write the printed table to this file")
    parser.add_argument("--no_progress", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.step < 1:
        raise UserError(f"--step {args.step}: must be >= 1")
    lines = []
    for run_dir in args.run_dirs:
        lines += offsets_report(run_dir.rstrip("/"), args.data_path, args.frames, args.step,
                                not args.no_progress) + [""]
    utils.print_report(lines[:-1], args.report)
    return {"skipped": []}


if __name__ == "__main__":
    runner.cli(main)
