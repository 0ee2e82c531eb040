"""Image I/O (files written whole or not at all) and the metrics. Images travel as float32
H x W x C arrays in [0, 1] with the bit depth they were stored at, which outputs keep."""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass

import imagecodecs
import numpy as np
import torch
from skimage import io as skio
from skimage.metrics import structural_similarity

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class UserError(Exception):
    """A mistake in the user's input: reported as one line, never a traceback."""


# ------------------------------------------------------------------------------------------------------ images
@dataclass
class Image:
    pixels: np.ndarray  # H x W x C float32 in [0, 1]
    bit_depth: int  # 8 or 16: the depth outputs are written at

    @property
    def max_value(self) -> int:
        return (1 << self.bit_depth) - 1


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


# Where a photo's EXIF orientation says its pixels are turned: how to turn them upright
# (the tag's values 2 to 8, as Pillow's ImageOps.exif_transpose reads them).
UPRIGHT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
           8: lambda a: np.rot90(a, 1)}
# Pillow modes read as they are (alpha is dropped later), and those converted to RGB first.
PILLOW_MODES = {"1": "L", "L": None, "LA": None, "RGB": None, "RGBA": None, "I;16": None, "CMYK": "RGB",
                "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB", "P": "RGBA", "PA": "RGBA"}


def _read_pixels(path: str) -> np.ndarray:
    """The stored integers, upright, with colour as R, G, B (A)."""
    from PIL import Image as PillowImage

    PillowImage.MAX_IMAGE_PIXELS = None  # the pipeline judges an image's size by the memory it needs
    try:
        with PillowImage.open(path) as opened:  # the header only
            orientation, mode = opened.getexif().get(0x0112, 1), opened.mode
    except OSError:
        if not path.lower().endswith((".png", ".tif", ".tiff")):
            raise
        orientation, mode = 1, None  # libpng or tifffile may still read it
    if path.lower().endswith(".png"):  # libpng (imagecodecs): Pillow reads 16-bit RGB as 8 bits
        with open(path, "rb") as handle:
            array = imagecodecs.png_decode(handle.read())
    elif path.lower().endswith((".tif", ".tiff")):  # tifffile: 16-bit colour too
        if mode == "CMYK":
            raise UserError(f"{path}: a CMYK TIFF; convert it to RGB")
        array = skio.imread(path)
    else:
        if mode not in PILLOW_MODES:
            raise UserError(f"{path}: unsupported colour mode {mode}; convert it to RGB or gray")
        with PillowImage.open(path) as opened:
            array = np.asarray(opened.convert(PILLOW_MODES[mode]) if PILLOW_MODES[mode] else opened)
    return UPRIGHT.get(orientation, lambda a: a)(array)


def load_image(path: str) -> Image:
    """An 8- or 16-bit image, upright as its EXIF says, alpha dropped, other modes as RGB."""
    try:
        array = _read_pixels(path)
    except OSError as error:
        if error.errno is None:  # Pillow's "cannot identify image file"
            raise UserError(f"{path} is not a readable image (corrupt, or not the format its name says)") from None
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    except UserError:
        raise
    except Exception:  # the decoders raise many types, with messages of many lines, for a corrupt file
        raise UserError(f"{path} is not a readable image (corrupt, or not the format its name says)") from None
    bit_depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(array.dtype)
    if bit_depth is None:
        raise UserError(f"{path}: unsupported pixel type {array.dtype}; use 8- or 16-bit images")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise UserError(f"{path}: unsupported image shape {array.shape}")
    if array.shape[2] in (2, 4):  # gray+alpha or RGBA: the alpha plane is not image content
        array = array[:, :, :-1]
    pixels = array.astype(np.float32) / np.float32((1 << bit_depth) - 1)
    return Image(np.ascontiguousarray(pixels), bit_depth)


def quantize(pixels: np.ndarray, bit_depth: int = 8, rounding: bool = False) -> np.ndarray:
    """Float [0, 1] (clipped first) -> integers by truncation, floor(max * x), as the
    release's to_pil_image does; with rounding, to the nearest level (photos outside a
    benchmark, where truncation would only darken them by half a level)."""
    scaled = np.clip(pixels, 0.0, 1.0) * np.float32((1 << bit_depth) - 1)
    return (np.round(scaled) if rounding else np.floor(scaled)).astype(np.uint8 if bit_depth == 8 else np.uint16)


def save_image(path: str, integers: np.ndarray) -> None:
    """Write atomically: a killed run never leaves a half-written image behind."""
    if integers.ndim == 3 and integers.shape[2] == 1:
        integers = integers[:, :, 0]

    def write(tmp: str) -> None:
        if path.lower().endswith(".png"):  # libpng writes 16-bit colour too
            with open(tmp, "wb") as handle:
                handle.write(imagecodecs.png_encode(np.ascontiguousarray(integers)))
        else:
            skio.imsave(tmp, integers, check_contrast=False)

    atomic_write(path, write)


SIDE_BY_SIDE_GAP = 4  # white pixels between the panels


def side_by_side(panels: list[np.ndarray]) -> np.ndarray:
    """H x W x C float images in [0, 1], left to right with a white gap, as 8-bit."""
    channels = max(panel.shape[2] for panel in panels)
    height = panels[0].shape[0]
    gap = np.ones((height, SIDE_BY_SIDE_GAP, channels), np.float32)
    pieces = []
    for panel in panels:
        if panel.shape[0] != height:
            raise ValueError(f"panels differ in height: {panel.shape[0]} and {height}")
        pieces += [np.repeat(panel, channels // panel.shape[2], axis=2), gap]
    return quantize(np.concatenate(pieces[:-1], axis=1), rounding=True)


def save_loss_curve(stem_path: str, losses: np.ndarray, title: str) -> None:
    """<stem>_loss.csv and <stem>_loss.png: the loss per iteration, with its running mean."""
    lines = ["iteration,loss"] + [f"{index + 1},{value:.6g}" for index, value in enumerate(losses)]
    atomic_write_text(f"{stem_path}_loss.csv", "\n".join(lines) + "\n")
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=100)
    iterations = np.arange(1, len(losses) + 1)
    axes.plot(iterations, losses, linewidth=0.5, alpha=0.4, label="per iteration")
    window = min(100, len(losses))
    running = np.convolve(losses, np.ones(window) / window, mode="valid")
    axes.plot(iterations[window - 1:], running, linewidth=1.5, label=f"mean of {window}")
    if np.all(np.asarray(losses) > 0):
        axes.set_yscale("log")
    axes.set(xlabel="iteration", ylabel="training loss")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8)
    figure.tight_layout()
    try:
        atomic_write(f"{stem_path}_loss.png", figure.savefig)
    finally:
        plt.close(figure)


def to_tensor(pixels: np.ndarray, device) -> torch.Tensor:
    """H x W x C numpy -> C x H x W float32 tensor on device."""
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).to(device)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """C x H x W tensor -> H x W x C float32 numpy."""
    return np.ascontiguousarray(tensor.detach().float().cpu().numpy().transpose(1, 2, 0))


# --------------------------------------------------------------------------- metrics (defined once; SPEC section 4)
def _check_same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")


def psnr(clean: np.ndarray, estimate: np.ndarray) -> float:
    """10 log10(1 / MSE) on float images in [0, 1]."""
    _check_same_shape(clean, estimate)
    mse = float(np.mean((clean.astype(np.float64) - estimate.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


SSIM_MIN_SIDE = 7  # scikit-image's SSIM window: images with a smaller side cannot be scored


def ssim(clean_integers: np.ndarray, estimate_integers: np.ndarray, max_value: int = 255) -> float:
    """scikit-image SSIM of integer images as stored, as the release scores the saved output."""
    _check_same_shape(clean_integers, estimate_integers)
    if clean_integers.ndim == 3 and clean_integers.shape[2] == 1:
        clean_integers, estimate_integers = clean_integers[:, :, 0], estimate_integers[:, :, 0]
    channel_axis = -1 if clean_integers.ndim == 3 else None
    return float(structural_similarity(clean_integers, estimate_integers,
                                       data_range=max_value, channel_axis=channel_axis))


# ----------------------------------------------------------------------- files: written whole or not at all; sha256
UMASK = os.umask(0o022)  # the process's umask, read (and put back at once) for the files it writes
os.umask(UMASK)


def atomic_write(path: str, write) -> None:
    """write(temporary path), then rename it into place: a killed run, two writers or a full
    disk never leave a half-written file, and a failure names the file."""
    directory, name = os.path.split(path)
    stem, extension = os.path.splitext(name)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=directory or ".", prefix=f".{stem}.", suffix=f".partial{extension}")
        os.close(fd)
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes it private; the file is not
        write(tmp)
        os.replace(tmp, path)
    except BaseException as error:
        if tmp:
            with contextlib.suppress(OSError):
                os.remove(tmp)
        if isinstance(error, OSError):
            raise UserError(f"cannot write {path}: {error.strerror or error}") from None
        raise


def atomic_write_text(path: str, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    atomic_write(path, write)


def file_sha256(path: str) -> str:
    """Of the file's bytes, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
