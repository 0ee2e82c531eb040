"""What both entry scripts share: the common flags, dataset listing, the bundled
sample, and the per-image pipeline (bank with cache -> training -> metrics ->
outputs). The method itself lives in pixel_bank.py and network.py."""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

import network
import pixel_bank
import utils
from utils import UserError

CSV_FIELDS = ["image", "psnr", "ssim", "noisy_psnr", "bank_seconds", "train_seconds", "bank_cached", "device",
              "precision", "train_crop", "attempts", "status"]
RETRY_SEED_STEP = 1000  # attempt k trains with seed + k * RETRY_SEED_STEP
# Full-image fp32 training on the CPU peaks near 2 KB a pixel (measured: 2,047 bytes
# between 128 x 128 and 384 x 384 RGB); with margin, for refusing images up front.
TRAIN_BYTES_PER_PIXEL = 2500
# Full-image training costs grow with the pixel count (3000 iterations of a 12-megapixel
# photo: days on a 2-core CPU). Above this many pixels an image trains on random crops
# of its pseudo instances (--train_crop auto); what that costs in PSNR is measured in
# results/benchmarks/README.md. 600 x 600 keeps every image of the paper's tables
# (256 x 256) and the 500 x 500 McMaster frames on full-image training.
CROP_TRAINING_ABOVE = 600 * 600
TRAINING_CROP = 256  # side of those crops: the size of the paper's benchmark images
INFERENCE_TILE = 512  # photos are denoised in tiles of this side: same result, bounded memory (~70 MB an activation)
# Block matching (shift method, ws 40, ps 7) took 9.0 s for one megapixel on the project's
# 2-core CPU (results/benchmarks/bank_cpu.txt): for time estimates only.
BANK_SECONDS_PER_MEGAPIXEL = {"cpu": 9.0}


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes are a UserError (one line), not usage text and exit."""

    def error(self, message):
        raise UserError(message)


class SkippedImage(UserError):
    """A problem with one file of a dataset: the file is skipped, the run goes on."""


SAMPLE_DATASET = "sample"
SAMPLE_CROP = 128  # sample images are 128 x 128 crops: see make_sample_dataset


def add_common_arguments(parser: argparse.ArgumentParser, *, dataset: str, num_neighbors: int,
                         loss: str, mm_help: str, mm_default: int | None) -> None:
    """The release's flags and defaults, plus --device, --seed, --max_epoch, --bank_method,
    --max_retries, --images and --no_progress."""
    parser.add_argument("--data_path", default="./data", help="folder holding the datasets (default: ./data)")
    parser.add_argument("--dataset", default=dataset,
                        help=f"dataset folder under --data_path (default: {dataset}); "
                             f"'{SAMPLE_DATASET}' is made on first use from photos bundled with scikit-image")
    parser.add_argument("--save", default="./bank_cache",
                        help="folder for cached pixel banks, keyed by everything that determines them "
                             "(default: ./bank_cache)")
    parser.add_argument("--out_image", default="./results_image",
                        help="folder for outputs: <out_image>/<dataset>/<setting>/ gets the denoised and "
                             "noisy PNGs and results.csv (default: ./results_image)")
    parser.add_argument("--ws", type=int, default=40, help="block-matching window size (default: 40)")
    parser.add_argument("--ps", type=int, default=7, help="patch size, odd (default: 7)")
    parser.add_argument("--nn", type=int, default=num_neighbors,
                        help=f"neighbours kept in the pixel bank (default: {num_neighbors})")
    parser.add_argument("--mm", type=int, default=mm_default, help=mm_help)
    parser.add_argument("--loss", default=loss, choices=list(network.LOSSES),
                        help=f"training loss, L1 or L2 (default: {loss})")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--seed", type=int, default=network.SEED,
                        help=f"seed of the noise, the network initialisation and the sampler "
                             f"(default: {network.SEED}, as released)")
    parser.add_argument("--max_epoch", type=int, default=network.ITERATIONS,
                        help=f"training iterations per image (default: {network.ITERATIONS})")
    parser.add_argument("--bank_method", default="shift", choices=list(pixel_bank.BANK_METHODS),
                        help="block matching: shift (per-offset, fast, default) or unfold (the release's "
                             "patch materialisation); both give the same bank")
    parser.add_argument("--max_retries", type=int, default=2,
                        help="retrain an image whose training diverged or collapsed (non-finite loss, flat "
                             f"output far from the input) up to this many times, seed + {RETRY_SEED_STEP} "
                             "each time (default: 2; 0 keeps the release's behaviour)")
    parser.add_argument("--precision", default=network.DEFAULT_PRECISION, choices=list(network.PRECISIONS),
                        help="training arithmetic: fp32 (the release's), bf16 (autocast, channels_last; "
                             "about 4x faster on a CPU with AVX-512 bf16) or auto (bf16 where it is proven "
                             f"equal in PSNR on this device type, else fp32) (default: {network.DEFAULT_PRECISION})")
    parser.add_argument("--batch_images", type=int, default=1, metavar="N",
                        help="train up to N images of one size at once as one grouped network, to fill a "
                             "GPU; each image's result matches training it alone up to floating-point "
                             "rounding (default: 1)")
    parser.add_argument("--train_crop", default="auto", metavar="N",
                        help=f"train on random N x N crops of the pseudo instances instead of the whole image; "
                             f"0 = always the whole image (the release); auto = {TRAINING_CROP} x {TRAINING_CROP} "
                             f"crops above {CROP_TRAINING_ABOVE:,} pixels (default: auto)")
    parser.add_argument("--images", nargs="+", metavar="NAME",
                        help="process only these file names of the dataset (default: all)")
    parser.add_argument("--shard", metavar="I/N",
                        help="run every N-th image starting at the I-th (0 <= I < N) into its own CSV of the "
                             "same run folder; under a Slurm job array I and N default to the task's index "
                             "and the array's size")
    parser.add_argument("--time_limit", type=float, metavar="SECONDS",
                        help="datasets: start no image (or batch) that would end more than SECONDS after "
                             "the start, judged by the time the images before it took (the first always "
                             "starts), and exit with status 75; the same command resumes. For a scheduler's "
                             "wall-clock limit or a timed session (default: none)")
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bars")


@dataclass
class Settings:
    """Everything that determines one image's result, plus where outputs go."""
    window_size: int
    patch_size: int
    num_neighbors: int
    mm: int
    bank_distance: str
    loss: str
    out_activation: str
    iterations: int
    seed: int
    bank_method: str
    device: str
    cache_dir: str
    run_dir: str
    max_retries: int = 2
    progress: bool = True
    shard: tuple[int, int] | None = None  # (I, N): this process runs images I, I + N, ...
    precision: str = "fp32"  # resolved: fp32 or bf16
    batch_images: int = 1  # images of one shape trained together as one grouped network
    inference_tile: int | None = INFERENCE_TILE  # denoise in tiles of this side (same result, bounded memory)
    train_crop: int | None = None  # --train_crop: None = auto, 0 = whole image, N = N x N crops
    time_limit: float | None = None  # --time_limit: seconds from the start of the run, or None


def check_arguments(args: argparse.Namespace, mm: int, bank_distance: str) -> None:
    """Every flag checked before any work starts."""
    pixel_bank.check_matching_parameters(args.ws, args.ps, args.nn, bank_distance)
    if args.max_retries < 0:
        raise UserError(f"--max_retries {args.max_retries}: must be >= 0")
    parse_shard(args.shard)
    parse_train_crop(args.train_crop)
    if args.batch_images < 1:
        raise UserError(f"--batch_images {args.batch_images}: must be >= 1")
    if args.max_epoch < 1:
        raise UserError(f"--max_epoch {args.max_epoch}: must be >= 1")
    if args.time_limit is not None and not args.time_limit > 0:
        raise UserError(f"--time_limit {args.time_limit:g}: must be a positive number of seconds")
    if mm < 2:
        raise UserError(f"--mm {mm}: training pairs two different bank entries, so --mm must be >= 2")
    if mm > args.nn:
        raise UserError(f"--mm {mm}: cannot exceed --nn {args.nn}, the entries the bank keeps")


def parse_shard(text: str | None, environment=os.environ) -> tuple[int, int] | None:
    """'I/N' -> (I, N); without it, a Slurm array task's (index from the array's
    lowest, array size); None when neither: the whole dataset."""
    if text is None:
        task, count = environment.get("SLURM_ARRAY_TASK_ID"), environment.get("SLURM_ARRAY_TASK_COUNT")
        if task is None or count is None:
            return None
        text = f"{int(task) - int(environment.get('SLURM_ARRAY_TASK_MIN', 0))}/{count}"
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UserError(f"--shard {text}: expected I/N, for example 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise UserError(f"--shard {text}: needs 0 <= I < N")
    return index, count


def shard_names(names: list[str], shard: tuple[int, int] | None) -> list[str]:
    """Every N-th name starting at the I-th: shards of one listing never overlap and
    together cover it."""
    if shard is None:
        return names
    index, count = shard
    return names[index::count]


def results_csv_name(shard: tuple[int, int] | None) -> str:
    """One CSV per shard, so that shards sharing a run folder (a cluster's shared
    disk) never write the same file; readers take the union of results*.csv."""
    return "results.csv" if shard is None else f"results_shard{shard[0]}of{shard[1]}.csv"


def finished_rows(run_dir: str) -> dict[str, dict]:
    """image -> its row, from every results*.csv of a run folder (all shards)."""
    rows = {}
    for name in sorted(os.listdir(run_dir)) if os.path.isdir(run_dir) else []:
        if name.startswith("results") and name.endswith(".csv"):
            for row in utils.read_result_rows(os.path.join(run_dir, name), CSV_FIELDS):
                rows[row["image"]] = row
    return rows


def run_one_image(script_main: Callable[[list[str]], dict], argv: list[str], image: str) -> dict:
    """Run an entry script's main on one image of its dataset and return the image's
    results row (the benchmarks compare settings image by image this way)."""
    summary = script_main([*argv, "--images", image])
    return next(row for row in utils.read_result_rows(summary["csv"], CSV_FIELDS) if row["image"] == image)


def parse_train_crop(text: str) -> int | None:
    """'auto' -> None (decided per image), else the crop side (0: whole image)."""
    if text == "auto":
        return None
    try:
        side = int(text)
    except ValueError:
        raise UserError(f"--train_crop {text}: expected auto or a whole number") from None
    if side < 0 or 0 < side < 16:
        raise UserError(f"--train_crop {text}: use 0 (whole image), auto, or a side of at least 16")
    return side


def crop_tag(text: str) -> str:
    """The run folder names an explicit --train_crop; auto leaves it as before."""
    return "" if text == "auto" else f"crop{parse_train_crop(text)}"


def training_crop(height: int, width: int, setting: int | None) -> int | None:
    """The crop side an image trains on, or None for the whole image."""
    if setting is None:
        return TRAINING_CROP if height * width > CROP_TRAINING_ABOVE else None
    if setting == 0 or (setting >= height and setting >= width):
        return None
    return setting


def setting_tag(parts: list) -> str:
    return "_".join(str(part) for part in parts if part != "")


def script_command(script_path: str, argv: list[str] | None) -> str:
    """The command line that reruns a script with these arguments: the list a caller
    (results/reproduce.py, a test) gave to main(), else the shell's."""
    words = sys.argv[1:] if argv is None else [str(word) for word in argv]
    return shlex.join(["python", os.path.basename(script_path), *words])


def prepare_run_dir(out_image: str, dataset: str, tag: str, args: argparse.Namespace, identity: dict,
                    command: str) -> str:
    """The run folder for these settings. A folder holding results of other settings
    (what the tag does not name: `identity`) is refused rather than mixed."""
    run_dir = os.path.join(out_image, dataset, tag)
    info_path = os.path.join(run_dir, "run.json")
    if os.path.exists(info_path):
        try:
            with open(info_path) as handle:
                stored = json.load(handle).get("identity")
        except (OSError, ValueError):
            stored = None
        if stored is not None and stored != identity:
            raise UserError(f"--out_image: {run_dir} holds results made with other settings ({stored}); "
                            f"use another --out_image or remove that folder")
    try:
        os.makedirs(run_dir, exist_ok=True)
        info = {"command": command, "identity": identity,
                "arguments": vars(args), **environment_info()}
        utils.atomic_write_text(info_path, json.dumps(info, indent=2) + "\n")
    except OSError as error:
        raise UserError(f"--out_image {out_image}: cannot write there ({error.strerror})") from None
    return run_dir


def environment_info() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__)), timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"commit": commit or "unknown", "torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "processor": platform.processor() or platform.machine()}


# ----------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------
def list_images(folder: str, flag: str = "--dataset", only: list[str] | None = None) -> list[str]:
    """Sorted image file names in folder (only those named in `only`, when given);
    a UserError when it is missing or holds none."""
    if not os.path.isdir(folder):
        raise UserError(f"{flag}: folder {folder} does not exist; check --data_path and --dataset, or fetch the "
                        f"benchmark sets with: python data/download.py kodak mcmaster polyu "
                        f"(--dataset {SAMPLE_DATASET} runs offline)")
    names = sorted(name for name in os.listdir(folder)
                   if utils.is_image_file(name) and os.path.isfile(os.path.join(folder, name)))
    if not names:
        raise UserError(f"{flag}: folder {folder} holds no images ({', '.join(utils.IMAGE_EXTENSIONS)})")
    if only:
        absent = sorted(set(only) - set(names))
        if absent:
            raise UserError(f"--images: {folder} has no image named {absent[0]}")
        names = [name for name in names if name in set(only)]
    return names


def make_sample_dataset(folder: str) -> None:
    """A dataset that needs no download: 128 x 128 crops of two colour photographs that
    scikit-image installs with itself. Clean images at the top (synthetic script) and
    GT/ + Noisy/ pairs (real script), whose noise is a fixed-seed Poisson-Gaussian
    stand-in for camera noise, stored as 8-bit PNG. Small enough that the README's
    first command finishes in minutes on a 2-core CPU. Built beside the target and
    renamed into place, so an interrupted first run leaves no half-made dataset."""
    from skimage import data as skdata

    crops = {"astronaut": skdata.astronaut()[40:40 + SAMPLE_CROP, 180:180 + SAMPLE_CROP],
             "coffee": skdata.coffee()[150:150 + SAMPLE_CROP, 200:200 + SAMPLE_CROP]}
    rng = np.random.default_rng(20250101)
    building = folder.rstrip(os.sep) + ".partial"
    shutil.rmtree(building, ignore_errors=True)
    for sub in ("", "GT", "Noisy"):
        os.makedirs(os.path.join(building, sub), exist_ok=True)
    for name, crop in crops.items():
        clean = crop.astype(np.float32) / 255.0
        noisy = rng.poisson(clean * 60.0) / 60.0 + rng.normal(0.0, 0.02, clean.shape)
        for sub, pixels in (("", clean), ("GT", clean), ("Noisy", noisy)):
            utils.save_image(os.path.join(building, sub, f"{name}.png"),
                             np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8))
    os.rename(building, folder)


def dataset_folder(args: argparse.Namespace) -> str:
    folder = os.path.join(args.data_path, args.dataset)
    if args.dataset == SAMPLE_DATASET and not os.path.isdir(folder):
        try:
            make_sample_dataset(folder)
        except OSError as error:
            raise UserError(f"--data_path {args.data_path}: cannot create the sample dataset there "
                            f"({error.strerror})") from None
    return folder


# ----------------------------------------------------------------------------
# One image
# ----------------------------------------------------------------------------
def get_offsets(noisy: torch.Tensor, stem: str, settings: Settings) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Block matching, or its cached result; returns (offsets, distances, from_cache)."""
    key = pixel_bank.bank_key(noisy, settings.window_size, settings.patch_size, settings.num_neighbors,
                              settings.bank_distance, settings.bank_method)
    path = os.path.join(settings.cache_dir, f"{stem}_{key}.npz")
    cached = pixel_bank.load_cached_bank(path, key)
    if cached is not None:
        return cached[0], cached[1], True
    offsets, distances = pixel_bank.match_offsets(noisy, settings.window_size, settings.patch_size,
                                                  settings.num_neighbors, settings.bank_distance,
                                                  settings.bank_method)
    try:
        pixel_bank.save_cached_bank(path, key, offsets, distances)
    except OSError as error:
        raise UserError(f"--save {settings.cache_dir}: cannot write the bank cache ({error.strerror})") from None
    return offsets, distances, False


def train_with_retries(file_name: str, bank, noisy: torch.Tensor, settings: Settings,
                       first_attempt: int = 0) -> tuple[torch.Tensor, int, str, torch.Tensor]:
    """Train on bank (mm x C x H x W, or a pixel_bank.OffsetBank) and denoise; a
    diverged or collapsed run is retried with another seed. Returns (denoised
    C x H x W, attempts, status: 'ok' or the last failure, the last run's losses)."""
    for attempt in range(first_attempt, settings.max_retries + 1):
        seed = settings.seed + attempt * RETRY_SEED_STEP
        model, losses = network.train_network(bank, settings.loss, settings.out_activation, settings.iterations,
                                              seed, progress=settings.progress,
                                              description=os.path.splitext(file_name)[0],
                                              precision=settings.precision)
        denoised = network.denoise(model, noisy, settings.inference_tile)
        failure = network.training_failure(losses, denoised, noisy)
        if failure is None:
            return denoised, attempt + 1, "ok", losses
        warn_failure(file_name, seed, failure, retrying=attempt < settings.max_retries)
    return denoised, settings.max_retries + 1, failure, losses


def warn_failure(file_name: str, seed: int, failure: str, retrying: bool) -> None:
    retry = f"; retrying with seed {seed + RETRY_SEED_STEP}" if retrying else ""
    print(f"warning: {file_name}: training with seed {seed} gave a {failure}{retry}", file=sys.stderr, flush=True)


@dataclass
class PreparedImage:
    file_name: str
    noisy: utils.Image
    clean: utils.Image
    noisy_tensor: torch.Tensor  # C x H x W on the device
    bank: object  # mm x C x H x W tensor on the device, or a pixel_bank.OffsetBank of crops
    bank_seconds: float
    bank_cached: bool


def prepare_image(file_name: str, noisy: utils.Image, clean: utils.Image, settings: Settings) -> PreparedImage:
    """The bank of one image (cached or matched). Prints the release's first line."""
    device = torch.device(settings.device)
    noisy_tensor = utils.to_tensor(noisy.pixels, device)  # C x H x W
    start = time.perf_counter()
    offsets, _, cached = get_offsets(noisy_tensor, os.path.splitext(file_name)[0], settings)
    height, width = noisy_tensor.shape[1:]
    crop = training_crop(height, width, settings.train_crop)
    if crop is None:
        bank = pixel_bank.gather_bank(noisy_tensor, offsets.to(device), settings.mm)  # mm x C x H x W
    else:
        bank = pixel_bank.OffsetBank(noisy_tensor, offsets[:settings.mm].to(device), crop)
    utils.synchronize(device)
    bank_seconds = time.perf_counter() - start
    # The release's line; its bank was stored H x W x nn x C.
    bank_shape = torch.Size([height, width, settings.num_neighbors, noisy_tensor.shape[0]])
    print(f"Processed {file_name} in {bank_seconds:.2f} seconds. Pixel bank shape: {bank_shape}"
          + (" (cached)" if cached else ""), flush=True)
    return PreparedImage(file_name, noisy, clean, noisy_tensor, bank, bank_seconds, cached)


def finish_image(image: PreparedImage, denoised_tensor: torch.Tensor, attempts: int, status: str,
                 train_seconds: float, settings: Settings, losses: torch.Tensor) -> dict:
    """Outputs, metrics and the CSV row of one trained image. Prints the release's line.
    Besides the release's images: <stem>_compare.png (noisy | denoised | clean) and
    the training loss, <stem>_loss.csv and <stem>_loss.png."""
    stem = os.path.splitext(image.file_name)[0]
    noisy, clean = image.noisy, image.clean
    denoised = utils.to_numpy(denoised_tensor)
    denoised_integers = utils.quantize(denoised, clean.bit_depth)
    utils.save_image(os.path.join(settings.run_dir, f"{stem}_noisy.png"), utils.quantize(noisy.pixels, clean.bit_depth))
    utils.save_image(os.path.join(settings.run_dir, f"{stem}_compare.png"),
                     utils.side_by_side([np.clip(noisy.pixels, 0, 1), denoised, clean.pixels]))
    utils.save_loss_curve(os.path.join(settings.run_dir, stem), losses.numpy(),
                          f"{image.file_name}: {settings.loss} loss, {settings.precision}")
    # The denoised image last: its presence marks the image as done, with its CSV row.
    utils.save_image(os.path.join(settings.run_dir, f"{stem}.png"), denoised_integers)
    psnr_value = utils.psnr(clean.pixels, denoised)
    ssim_value = utils.ssim(utils.quantize(clean.pixels, clean.bit_depth), denoised_integers, clean.max_value)
    print(f"Image: {image.file_name} | PSNR: {psnr_value:.2f} dB | SSIM: {ssim_value:.4f}", flush=True)
    return {"image": image.file_name, "psnr": f"{psnr_value:.4f}", "ssim": f"{ssim_value:.6f}",
            "noisy_psnr": f"{utils.psnr(clean.pixels, noisy.pixels):.4f}",
            "bank_seconds": f"{image.bank_seconds:.2f}", "train_seconds": f"{train_seconds:.2f}",
            "bank_cached": int(image.bank_cached), "device": describe_device(torch.device(settings.device)),
            "precision": settings.precision,
            "train_crop": 0 if isinstance(image.bank, torch.Tensor) else image.bank.shape[-1],
            "attempts": attempts, "status": status}


def process_image(file_name: str, noisy: utils.Image, clean: utils.Image, settings: Settings) -> dict:
    """Bank, training, evaluation and outputs for one image."""
    return process_batch([(file_name, noisy, clean)], settings)[0]


def process_batch(items: list[tuple[str, utils.Image, utils.Image]], settings: Settings) -> list[dict]:
    """(file name, noisy, clean) of images of one shape, trained together as one grouped
    network (network.train_networks); an image whose training failed is retried alone.
    Each image's train_seconds is its share of the joint training plus its retries."""
    device = torch.device(settings.device)
    prepared = [prepare_image(name, noisy, clean, settings) for name, noisy, clean in items]
    if len(prepared) == 1:
        image = prepared[0]
        start = time.perf_counter()
        denoised, attempts, status, losses = train_with_retries(image.file_name, image.bank, image.noisy_tensor,
                                                                settings)
        utils.synchronize(device)
        return [finish_image(image, denoised, attempts, status, time.perf_counter() - start, settings, losses)]
    start = time.perf_counter()
    models, losses = network.train_networks(
        [image.bank for image in prepared], settings.loss, settings.out_activation, settings.iterations,
        [settings.seed] * len(prepared), progress=settings.progress,
        description=f"{len(prepared)} images", precision=settings.precision)
    utils.synchronize(device)
    shared_seconds = (time.perf_counter() - start) / len(prepared)
    rows = []
    for image, model, image_losses in zip(prepared, models, losses):
        start = time.perf_counter()
        denoised = network.denoise(model, image.noisy_tensor, settings.inference_tile)
        attempts, status = 1, network.training_failure(image_losses, denoised, image.noisy_tensor)
        if status is not None:
            warn_failure(image.file_name, settings.seed, status, retrying=settings.max_retries > 0)
            if settings.max_retries > 0:
                denoised, attempts, status, image_losses = train_with_retries(
                    image.file_name, image.bank, image.noisy_tensor, settings, first_attempt=1)
        utils.synchronize(device)
        rows.append(finish_image(image, denoised, attempts, status or "ok",
                                 shared_seconds + time.perf_counter() - start, settings, image_losses))
    return rows


# ----------------------------------------------------------------------------
# Photos without ground truth (--input)
# ----------------------------------------------------------------------------
def list_photos(path: str) -> list[str]:
    """A file, or the image files of a folder (sorted)."""
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(path):
        return [os.path.join(path, name) for name in list_images(path, "--input")]
    raise UserError(f"--input {path}: no such file or folder")


def estimate_seconds(height: int, width: int, channels: int, settings: Settings) -> tuple[float | None, float]:
    """(block matching, training) seconds for a photo: matching from the measured rate
    per megapixel (None where none was measured), training from timing a few
    iterations of this very crop size here."""
    device = torch.device(settings.device)
    rate = BANK_SECONDS_PER_MEGAPIXEL.get(device.type)
    bank = None if rate is None else rate * height * width / 1e6 * (settings.window_size / 40) ** 2
    crop = training_crop(height, width, settings.train_crop)
    crop_h, crop_w = (height, width) if crop is None else (min(crop, height), min(crop, width))
    per_iteration = network.measure_iteration_seconds(channels, crop_h, crop_w, settings.precision, device)
    return bank, per_iteration * settings.iterations


def denoise_photo(path: str, settings: Settings) -> None:
    """Denoise one photo of any size into settings.run_dir: <stem>_denoised.png (the
    input's bit depth), <stem>_compare.png (noisy | denoised) and the loss files. The
    bank is kept as offsets of its first mm entries, large photos train on crops, and
    inference runs in tiles: a 12-megapixel photo peaked 2.0 GB above the baseline
    (results/benchmarks/photo_12mp_cpu.txt), mostly matching's mm offsets and distances."""
    device = torch.device(settings.device)
    name = os.path.basename(path)
    stem = os.path.splitext(name)[0]
    photo = utils.load_image(path)
    height, width, channels = photo.pixels.shape
    pixel_bank.check_image_size(height, width, settings.window_size, settings.patch_size, name)
    crop = training_crop(height, width, settings.train_crop)
    bank_estimate, train_estimate = estimate_seconds(height, width, channels, settings)
    print(f"{name}: {height} x {width}, training on {'the whole image' if crop is None else f'{crop} x {crop} crops'}"
          f"; estimated {'?' if bank_estimate is None else f'{bank_estimate:.0f} s'} block matching + "
          f"{train_estimate / 60:.1f} min training on {describe_device(device)}", flush=True)
    start = time.perf_counter()
    noisy = utils.to_tensor(photo.pixels, device)  # C x H x W
    # Only the mm nearest are ever sampled: matching for mm gives the same first entries.
    offsets, distances = pixel_bank.match_offsets(noisy, settings.window_size, settings.patch_size, settings.mm,
                                                  settings.bank_distance, settings.bank_method)
    del distances
    bank = pixel_bank.OffsetBank(noisy, offsets, crop)
    del offsets
    print(f"Processed {name} in {time.perf_counter() - start:.2f} seconds", flush=True)
    train_start = time.perf_counter()
    denoised, attempts, status, losses = train_with_retries(name, bank, noisy, settings)
    utils.synchronize(device)
    print(f"Trained and denoised {name} in {time.perf_counter() - train_start:.1f} seconds "
          f"({attempts} x {settings.iterations} iterations)", flush=True)
    if status != "ok":
        raise SkippedImage(f"{name}: training failed ({status}) after {attempts} attempt(s)")
    pixels = utils.to_numpy(denoised)
    out = os.path.join(settings.run_dir, f"{stem}_denoised.png")
    utils.save_loss_curve(os.path.join(settings.run_dir, stem), losses.numpy(), f"{name}: {settings.loss} loss")
    utils.save_image(os.path.join(settings.run_dir, f"{stem}_compare.png"),
                     utils.side_by_side([np.clip(photo.pixels, 0, 1), pixels]))
    utils.save_image(out, utils.quantize(pixels, photo.bit_depth, rounding=True))
    print(f"Denoised {name} in {time.perf_counter() - start:.1f} seconds: {out}", flush=True)


def denoise_photos(paths: list[str], settings: Settings) -> dict:
    """--input: every photo in turn; one that cannot be read or denoised is skipped
    with a warning and the rest still run."""
    if settings.time_limit is not None:
        raise UserError("--time_limit: photos (--input) are not resumed, so a run cannot stop part-way; "
                        "give it fewer photos")
    skipped = []
    try:
        os.makedirs(settings.run_dir, exist_ok=True)
    except OSError as error:
        raise UserError(f"--out_image {settings.run_dir}: cannot write there ({error.strerror})") from None
    for path in paths:
        try:
            denoise_photo(path, settings)
        except UserError as error:
            print(f"warning: skipping {error}", file=sys.stderr, flush=True)
            skipped.append(str(error))
    return {"images": len(paths) - len(skipped), "skipped": skipped}


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    # The vector unit, since it sets the speed: bf16 is fast only with AMX (network.bf16_fast).
    vector_unit = "AMX" if network.cpu_has_amx() else torch.backends.cpu.get_cpu_capability()
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {vector_unit})"


def available_memory_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None  # unknown: no refusal


def check_dataset(names: list[str], read: Callable[[str], tuple[utils.Image, utils.Image]],
                  settings: Settings) -> tuple[list[str], list[str]]:
    """Read every image once before any work, so a bad file is found in seconds, not
    hours in. Returns (names to process, 'name: reason' of each skipped file): a file
    that cannot be read, does not match its pair, is too small for the window, or
    needs more memory than the machine has is skipped with a warning."""
    usable, skipped = [], []
    available = available_memory_bytes(torch.device(settings.device))
    for name in names:
        try:
            noisy, _ = read(name)
            height, width = noisy.pixels.shape[:2]
            pixel_bank.check_image_size(height, width, settings.window_size, settings.patch_size, name)
            crop = training_crop(height, width, settings.train_crop)
            trained_pixels = height * width if crop is None else min(crop, height) * min(crop, width)
            needed = TRAIN_BYTES_PER_PIXEL * trained_pixels * settings.batch_images
            if available is not None and needed > available:
                raise SkippedImage(f"{name}: {height} x {width} needs about {needed / 2 ** 30:.1f} GiB to train, "
                                   f"{available / 2 ** 30:.1f} GiB is free (--train_crop trains on crops)")
        except UserError as error:
            print(f"warning: skipping {error}", file=sys.stderr, flush=True)
            skipped.append(str(error))
            continue
        usable.append(name)
    return usable, skipped


class TimeBudget:
    """--time_limit: whether the next image (or batch) would still end within the limit,
    judged by the seconds per image this run has taken so far (reading, bank, training,
    outputs)."""

    def __init__(self, limit: float | None, clock: Callable[[], float] = time.perf_counter):
        self.limit = limit
        self.clock = clock
        self.start = clock()
        self.images = 0
        self.busy = 0.0  # seconds from the start to the end of the last image finished

    def elapsed(self) -> float:
        return self.clock() - self.start

    def finished(self, images: int) -> None:
        self.images += images
        self.busy = self.elapsed()

    def allows(self, images: int) -> bool:
        """With nothing finished yet, only whether time is left."""
        if self.limit is None:
            return True
        needed = self.busy / self.images * images if self.images else 0.0
        return self.elapsed() + needed <= self.limit

    def stop_message(self, left: int) -> str:
        rate = f"; an image took {self.busy / self.images:.0f} s" if self.images else ""
        return (f"Stopping: --time_limit {self.limit:g} s with {left} image(s) left ({self.elapsed():.0f} s used"
                f"{rate}); run the same command again to resume")


def run_dataset(names: list[str], read: Callable[[str], tuple[utils.Image, utils.Image]],
                settings: Settings) -> dict:
    """read(name) -> (noisy, clean). Images with a row in any results CSV of the run
    folder are not redone (a CSV alone resumes a run, on another machine too); each
    new row is written as soon as its image finishes. Prints the release's average
    line over every image of this run (this shard) that has a row."""
    names = shard_names(names, settings.shard)
    results = utils.ResultsCSV(os.path.join(settings.run_dir, results_csv_name(settings.shard)), CSV_FIELDS)
    usable, skipped = check_dataset(names, read, settings)
    finished = finished_rows(settings.run_dir)
    rows = []
    waiting: dict[tuple, list] = {}  # image shape -> images read, waiting for a full batch
    budget = TimeBudget(settings.time_limit)
    to_do = [name for name in usable if name not in finished]

    def run_batch(batch: list) -> bool:
        """False, with nothing done, when the batch would overrun --time_limit."""
        if not budget.allows(len(batch)):
            return False
        for row in process_batch(batch, settings):
            results.add(row)
            rows.append(row)
        budget.finished(len(batch))
        return True

    stopped = False
    for file_name in usable:
        if file_name in finished:
            row = finished[file_name]
            print(f"Skipping {file_name}: already in a results CSV of this run (PSNR {float(row['psnr']):.2f} dB)",
                  flush=True)
            rows.append(row)
            continue
        if stopped:
            continue
        noisy, clean = read(file_name)
        batch = waiting.setdefault(noisy.pixels.shape, [])
        batch.append((file_name, noisy, clean))
        if len(batch) == settings.batch_images:
            stopped = not run_batch(waiting.pop(noisy.pixels.shape))
    for batch in waiting.values():
        stopped = stopped or not run_batch(batch)
    summary = {"images": len(rows), "new_images": budget.images, "csv": results.path, "skipped": skipped,
               "stopped": len(to_do) - budget.images if stopped else 0, "psnr": float("nan"), "ssim": float("nan")}
    if stopped:
        print(budget.stop_message(summary["stopped"]), flush=True)
    if rows:
        summary["psnr"] = float(np.mean([float(row["psnr"]) for row in rows]))
        summary["ssim"] = float(np.mean([float(row["ssim"]) for row in rows]))
        print(f"Average PSNR: {summary['psnr']:.2f} dB, Average SSIM: {summary['ssim']:.4f}", flush=True)
    return summary


def settings_summary(settings: Settings) -> str:
    fields = asdict(settings)
    return ", ".join(f"{name}={fields[name]}" for name in ("window_size", "patch_size", "num_neighbors", "mm",
                                                            "loss", "iterations", "seed", "device",
                                                            "precision"))


EXIT_STOPPED = 75  # --time_limit stopped the run with images left (sysexits' EX_TEMPFAIL: run it again)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def cli(main) -> None:
    """Run an entry script's main: a user's mistake is one line on stderr and exit 2;
    skipped files exit 1 after the rest ran; a run that --time_limit stopped exits 75;
    Ctrl-C or SIGTERM exit 130, with every finished image kept (rows and images are
    written atomically)."""
    signal.signal(signal.SIGTERM, _interrupt)
    utils.flush_subnormals()  # before any tensor operation starts the worker threads
    try:
        summary = main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: finished images are kept; run the same command again to resume", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # The reader of our output went away (`... | head`): quiet, as other command-line tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    if summary["skipped"]:
        print(f"error: skipped {len(summary['skipped'])} image(s): {'; '.join(summary['skipped'])}",
              file=sys.stderr)
    if summary.get("stopped"):
        sys.exit(EXIT_STOPPED)
    if summary["skipped"]:
        sys.exit(1)
