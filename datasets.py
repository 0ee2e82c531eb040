"""Where a run's images come from: clean images (noise added, seeded per image), GT/ +
Noisy/ pairs of real noise, your own photos; the bundled sample; shards of a listing."""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import utils
from noise import add_noise, image_seed
from utils import Image, UserError

SAMPLE_DATASET = "sample"
SAMPLE_CROP = 128  # sample images are 128 x 128 crops: the README's first command takes minutes


class SkippedImage(UserError):
    """A problem with one file: it is skipped, the run goes on."""


@dataclass
class Source:
    folder: str  # for messages
    names: list[str]  # file names, in order
    read: Callable[[str], tuple[Image, Image | None]]  # name -> (noisy, clean; None for a photo)
    noise: list[str] = field(default_factory=list)  # the run folder's first words, e.g. ["gauss", "25"]
    photos: bool = False  # a photo's outputs: <stem>_denoised.png, rounded, in --out_image itself


def list_images(folder: str, flag: str = "--dataset", only: list[str] | None = None) -> list[str]:
    """Sorted image file names in folder (those in `only`, when given); a UserError when it
    is missing or holds none, or when two share a stem (their outputs would collide)."""
    if not os.path.isdir(folder):
        raise UserError(f"{flag}: folder {folder} does not exist; check --data_path and --dataset, or fetch the "
                        f"benchmark sets with: python -m data.download kodak mcmaster polyu "
                        f"(--dataset {SAMPLE_DATASET} runs offline)")
    names = [name for name in sorted(os.listdir(folder)) if utils.is_image_file(name)]
    for name in [name for name in names if not os.path.isfile(os.path.join(folder, name))]:
        print(f"warning: skipping {os.path.join(folder, name)}: not a file (a broken link?)", file=sys.stderr)
        names.remove(name)
    if not names:
        raise UserError(f"{flag}: folder {folder} holds no images ({', '.join(utils.IMAGE_EXTENSIONS)})")
    if only:
        absent = sorted(set(only) - set(names))
        if absent:
            raise UserError(f"--images: {folder} has no image named {absent[0]}")
        names = [name for name in names if name in set(only)]
    stems = {}
    for name in names:
        twin = stems.setdefault(os.path.splitext(name)[0], name)
        if twin != name:
            raise UserError(f"{flag}: {twin} and {name} in {folder} share a name stem, so their outputs would "
                            f"overwrite each other; rename one")
    return names


def make_sample_dataset(folder: str) -> None:
    """No download: 128 x 128 crops of two photographs scikit-image ships, clean (synthetic
    script) and as GT/ + Noisy/ pairs (real script; fixed-seed Poisson-Gaussian noise for
    a camera's), built beside the target and renamed into place, so never half-made."""
    from skimage import data as skdata

    crops = {"astronaut": skdata.astronaut()[40:40 + SAMPLE_CROP, 180:180 + SAMPLE_CROP],
             "coffee": skdata.coffee()[150:150 + SAMPLE_CROP, 200:200 + SAMPLE_CROP]}
    rng = np.random.default_rng(20250101)
    building = f"{folder.rstrip(os.sep)}.partial{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    for sub in ("", "GT", "Noisy"):
        os.makedirs(os.path.join(building, sub), exist_ok=True)
    for name, crop in crops.items():
        clean = crop.astype(np.float32) / 255.0
        noisy = rng.poisson(clean * 60.0) / 60.0 + rng.normal(0.0, 0.02, clean.shape)
        for sub, pixels in (("", clean), ("GT", clean), ("Noisy", noisy)):
            utils.save_image(os.path.join(building, sub, f"{name}.png"),
                             np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8))
    try:
        os.rename(building, folder)
    except OSError:  # another run made it first
        shutil.rmtree(building, ignore_errors=True)


def dataset_folder(data_path: str, dataset: str) -> str:
    """<data_path>/<dataset>, made first when it is the sample and not there yet."""
    folder = os.path.join(data_path, dataset)
    if dataset == SAMPLE_DATASET and not os.path.isdir(folder):
        try:
            make_sample_dataset(folder)
        except OSError as error:
            raise UserError(f"--data_path {data_path}: cannot create the sample dataset there "
                            f"({error.strerror})") from None
    return folder


def synthetic(folder: str, nt: str, nl: float, seed: int, only: list[str] | None = None,
              noise=add_noise) -> Source:
    """The clean images of a folder with noise nt at level nl, seeded by the run's seed and
    the image's name only: every method and subset sees the same noisy image. noise: the
    model, a hook for studies of others."""
    def read(name: str) -> tuple[Image, Image]:
        clean = utils.load_image(os.path.join(folder, name))
        rng = np.random.default_rng(image_seed(seed, name))
        return Image(noise(clean.pixels, nt, nl, rng), clean.bit_depth), clean

    return Source(folder, list_images(folder, only=only), read, noise_words(nt, nl))


def noise_words(nt: str, nl: float) -> list[str]:
    """How a run folder's name starts: gauss_25_..."""
    return [nt, f"{nl:g}"]


def real_pairs(folder: str, gt: str = "GT", noisy: str = "Noisy", only: list[str] | None = None) -> Source:
    """The folders gt/ and noisy/ of a dataset folder, holding the same file names."""
    gt_folder, noisy_folder = os.path.join(folder, gt), os.path.join(folder, noisy)
    names = list_images(noisy_folder, "--Noisy", only)
    unpaired = sorted(set(names) ^ set(list_images(gt_folder, "--GT", only)))
    if unpaired:
        where = noisy_folder if unpaired[0] in names else gt_folder
        raise UserError(f"{len(unpaired)} file(s) lack a partner of the same name, e.g. {unpaired[0]} in {where}; "
                        f"{gt}/ and {noisy}/ need the same names")

    def read(name: str) -> tuple[Image, Image]:
        noisy_image = utils.load_image(os.path.join(noisy_folder, name))
        clean = utils.load_image(os.path.join(gt_folder, name))
        if noisy_image.pixels.shape != clean.pixels.shape:
            raise SkippedImage(f"{name}: {gt} is {clean.pixels.shape[:2]} x {clean.pixels.shape[2]} "
                               f"but {noisy} is {noisy_image.pixels.shape[:2]} x {noisy_image.pixels.shape[2]}")
        return noisy_image, clean

    return Source(folder, names, read, ["real"])


def photos(path: str, only: list[str] | None = None) -> Source:
    """--input: one photo, or the images of a folder; no clean reference."""
    if os.path.isfile(path):
        folder, names = os.path.dirname(path) or ".", [os.path.basename(path)]
    elif os.path.isdir(path):
        folder, names = path, list_images(path, "--input", only)
    else:
        raise UserError(f"--input {path}: no such file or folder")
    return Source(folder, names, lambda name: (utils.load_image(os.path.join(folder, name)), None), photos=True)


def parse_shard(text: str | None, environment=os.environ) -> tuple[int, int] | None:
    """'I/N' -> (I, N); else a Slurm array task's (index from the lowest, size); else None."""
    if text is None:
        task, count = environment.get("SLURM_ARRAY_TASK_ID"), environment.get("SLURM_ARRAY_TASK_COUNT")
        if task is None or count is None:
            return None
        try:
            text = f"{int(task) - int(environment.get('SLURM_ARRAY_TASK_MIN', 0))}/{int(count)}"
        except ValueError:
            raise UserError(f"SLURM_ARRAY_TASK_ID {task}, SLURM_ARRAY_TASK_COUNT {count}: not whole numbers; "
                            f"pass --shard I/N") from None
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UserError(f"--shard {text}: expected I/N, for example 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise UserError(f"--shard {text}: needs 0 <= I < N")
    return index, count


def shard_names(names: list[str], shard: tuple[int, int] | None) -> list[str]:
    """Every N-th name from the I-th: shards never overlap and together cover the listing."""
    return names if shard is None else names[shard[0]::shard[1]]
