"""Our saved outputs' SSIM and PSNR under the conventions papers use, to compare with quoted numbers.

    python benchmarks/metric_benchmark.py --data_path ../shared/data \
        results/tables/kodak/gauss_25_*/ results/tables/kodak/gauss_50_*/

The release's SSIM (SPEC section 4, utils.ssim) is scikit-image's default: a 7 x 7
uniform window over the RGB channels of the 8-bit images. Papers also use an 11 x 11
Gaussian window (Wang et al. 2004, MATLAB's ssim, KAIR) and the luma channel only.
The same denoised PNGs can score several hundredths apart under these, more than the
gaps between methods in the paper's tables, so a quoted SSIM that does not match ours
may be a convention, not a result. The release's PSNR is on the float output; a paper
may have scored the saved 8-bit image instead (truncated, as the release saves it). For
each run folder this prints the mean of its finished images under each convention
(reading its denoised PNGs, which must still be on this machine, and the clean images);
results/reproduce.py quotes the report for the cell. No training: it takes seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from skimage.color import rgb2gray
from skimage.metrics import structural_similarity

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import runner  # noqa: E402
import utils  # noqa: E402
from utils import UserError  # noqa: E402

GAUSSIAN = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}  # Wang et al.'s window


def luma(integers: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 Y on the 16..235 scale (MATLAB's rgb2ycbcr), from 8-bit RGB."""
    if integers.ndim == 2 or integers.shape[2] == 1:
        return integers.reshape(integers.shape[:2]).astype(np.float64)
    red, green, blue = (integers[:, :, channel].astype(np.float64) for channel in range(3))
    return 16.0 + (65.481 * red + 128.553 * green + 24.966 * blue) / 255.0


def grey(integers: np.ndarray) -> np.ndarray:
    """scikit-image's rgb2gray (BT.709 weights), in [0, 1]."""
    if integers.ndim == 2 or integers.shape[2] == 1:
        return integers.reshape(integers.shape[:2]) / 255.0
    return rgb2gray(integers)


def colour_gaussian(clean: np.ndarray, estimate: np.ndarray) -> float:
    channel_axis = -1 if clean.ndim == 3 and clean.shape[2] > 1 else None
    if channel_axis is None:
        clean, estimate = clean.reshape(clean.shape[:2]), estimate.reshape(estimate.shape[:2])
    return structural_similarity(clean, estimate, data_range=255, channel_axis=channel_axis, **GAUSSIAN)


# name -> SSIM(clean 8-bit, denoised 8-bit); the first is the release's, the one our CSVs hold.
SSIM_CONVENTIONS = {
    "colour, 7x7 uniform window": utils.ssim,
    "colour, 11x11 Gaussian window": colour_gaussian,
    "luma Y (BT.601), 7x7 uniform window":
        lambda clean, estimate: structural_similarity(luma(clean), luma(estimate), data_range=255),
    "luma Y (BT.601), 11x11 Gaussian window":
        lambda clean, estimate: structural_similarity(luma(clean), luma(estimate), data_range=255, **GAUSSIAN),
    "grey (BT.709), 11x11 Gaussian window":
        lambda clean, estimate: structural_similarity(grey(clean), grey(estimate), data_range=1.0, **GAUSSIAN),
}


def run_label(arguments: dict) -> str:
    """The cell label results/reproduce.py gives this run's setting ("kodak gauss 25")."""
    if "nt" not in arguments:
        return f"{arguments['dataset']} real"
    return f"{arguments['dataset']} {arguments['nt']} {float(arguments['nl']):g}"


def clean_path(arguments: dict, data_path: str, image: str) -> str:
    folder = os.path.join(data_path, arguments["dataset"])
    return os.path.join(folder, "GT", image) if "nt" not in arguments else os.path.join(folder, image)


def read_integers(path: str) -> np.ndarray:
    image = utils.load_image(path)
    if image.bit_depth != 8:
        raise UserError(f"{path}: the conventions compared here are for 8-bit images")
    return utils.quantize(image.pixels, 8, rounding=True)  # exact for pixels read from a file


def read_run(run_dir: str) -> tuple[dict, dict[str, dict]]:
    """A table cell's run folder: its script arguments (run.json) and finished rows by image."""
    info_path = os.path.join(run_dir, "run.json")
    if not os.path.exists(info_path):
        raise UserError(f"{run_dir} is not a run folder (no run.json)")
    with open(info_path) as handle:
        arguments = json.load(handle)["arguments"]
    return arguments, runner.finished_rows(run_dir)


def denoised_path(run_dir: str, row: dict) -> str:
    return os.path.join(run_dir, os.path.splitext(row["image"])[0] + ".png")


def conventions_report(run_dir: str, data_path: str, saved_only: bool = False) -> list[str]:
    """Report lines for one run folder: a header naming its setting, then the mean SSIM and
    PSNR of its finished images under each convention; with saved_only, of those finished
    images whose denoised PNG is here."""
    arguments, finished = read_run(run_dir)
    rows = sorted(finished.values(), key=lambda row: row["image"])
    if saved_only:
        rows = [row for row in rows if os.path.exists(denoised_path(run_dir, row))]
        if not rows:
            raise UserError(f"{run_dir}: none of its finished images has its denoised PNG here")
    scores = {name: [] for name in SSIM_CONVENTIONS}
    png_psnrs = []
    for row in rows:
        denoised_file = denoised_path(run_dir, row)
        if not os.path.exists(denoised_file):
            raise UserError(f"{denoised_file} is missing: run this where the cell ran (a clone has only CSVs), "
                            "or pass --saved_only")
        clean = read_integers(clean_path(arguments, data_path, row["image"]))
        denoised = read_integers(denoised_file)
        for name, convention in SSIM_CONVENTIONS.items():
            scores[name].append(float(convention(clean, denoised)))
        png_psnrs.append(utils.psnr(clean / 255.0, denoised / 255.0))
    release = next(iter(SSIM_CONVENTIONS))
    if not np.allclose(scores[release], [float(row["ssim"]) for row in rows], atol=1e-4):
        raise UserError(f"{run_dir}: the release's SSIM recomputed from the PNGs differs from its results CSV")
    lines = [f"Metric conventions, {run_label(arguments)}, {len(rows)} images, {os.path.relpath(run_dir, ROOT)} "
             "(the first SSIM and the first PSNR are the release's, as its results CSV holds)"
             + (f"; {len(finished) - len(rows)} finished images left out, their PNGs not here"
                if len(rows) < len(finished) else "")]
    lines += [f"SSIM {name:<44}{np.mean(values):8.4f}" for name, values in scores.items()]
    lines += [f"PSNR {'float output':<44}{np.mean([float(row['psnr']) for row in rows]):8.4f}",
              f"PSNR {'8-bit PNG as saved (truncated)':<44}{np.mean(png_psnrs):8.4f}"]
    return lines


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", help="run folders of table cells (results/tables/...)")
    parser.add_argument("--data_path", default="./data", help="where the clean images are")
    parser.add_argument("--report", help="also write the printed table to this file")
    parser.add_argument("--saved_only", action="store_true",
                        help="score only the finished images whose denoised PNG is here, not refuse")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    lines = []
    for run_dir in args.run_dirs:
        lines += conventions_report(run_dir.rstrip("/"), args.data_path, args.saved_only) + [""]
    utils.print_report(lines[:-1], args.report)
    return {"skipped": []}


if __name__ == "__main__":
    runner.cli(main)
