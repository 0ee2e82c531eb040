"""A run's settings: every hyperparameter with its paper default, in one place, and
the one function that builds and checks a run's settings from the flags.

Field names are the command-line flags' names (--ws is `ws` everywhere), so a
setting keeps one name from the command line to the code that uses it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from utils import UserError, resolve_device

LOSSES = ("L1", "L2")
OUT_ACTIVATIONS = ("sigmoid", "none")
BANK_METHODS = ("shift", "unfold")
PRECISIONS = ("fp32", "bf16", "auto")
MAX_SEED = 2 ** 63 - 1  # torch and numpy take seeds below 2**64; the retries add to it


@dataclass(frozen=True)
class Settings:
    """What a denoiser needs besides the noisy image. Defaults: the paper's (SPEC
    sections 2 and 3) for real noise; PRESETS holds what the synthetic script changes."""
    method: str = "pixel2pixel"  # a name in methods.METHODS
    nt: str | None = None  # synthetic noise type and level, for methods that model the noise (bm3d)
    nl: float | None = None  # and for the mm rule; None: real noise, unknown
    # --- Pixel2Pixel, as published -------------------------------------------------
    ws: int = 40  # block-matching window: offsets -(ws//2) .. ws-ws//2-1 (-20..19 for 40)
    ps: int = 7  # patch size, odd: a patch is centred on its pixel
    nn: int = 100  # neighbours the bank keeps per pixel (synthetic: 16)
    mm: int = 20  # bank entries training draws pairs from (synthetic: paper_mm's rule)
    loss: str = "L2"  # training loss (synthetic: L1)
    bank_distance: str = "L2"  # patch distance of block matching (synthetic: the loss)
    out_activation: str = "none"  # on the network's output (synthetic: sigmoid)
    width: int = 64  # feature channels of every hidden convolution
    depth: int = 4  # 3x3 convolutions after the first, before the 1x1 head
    negative_slope: float = 0.2  # LeakyReLU after every convolution but the head
    lr: float = 1e-3  # AdamW, its default weight decay (0.01)
    lr_milestones: tuple[int, ...] = (1500, 2000, 2500)  # iterations where the rate is halved
    lr_gamma: float = 0.5
    max_epoch: int = 3000  # training iterations, a pseudo-instance pair each; other methods: their own
    seed: int = 123  # the noise (with each image's name), initial weights and sampler
    # --- Ours: the same results, at other costs ------------------------------------
    bank_method: str = "shift"  # shift (per offset, fast) or unfold (the release's, the reference)
    train_crop: int | None = None  # None: auto (crops above CROP_TRAINING_ABOVE); 0: whole image
    max_retries: int = 2  # retrain a diverged or collapsed run with seed + RETRY_SEED_STEP
    batch_images: int = 1  # images of one size trained at once as one grouped network
    precision: str = "fp32"  # fp32 (the release's) or bf16; build() resolves --precision auto
    device: str = "cpu"  # build() resolves --device auto
    save: str | None = None  # bank cache folder; None: no cache
    no_progress: bool = False


# The synthetic script's differences from the real one (SPEC sections 3 and 5): a preset,
# not another method. mm None: paper_mm's rule; bank_distance None: the training loss.
PRESETS = {
    "real": {},
    "syn": dict(nn=16, mm=None, loss="L1", bank_distance=None, out_activation="sigmoid"),
}


def paper_mm(nt: str, nl: float) -> int:
    """Bank entries used for training, the rule the release applies (SPEC section 3):
    2 for gauss sigma 10 and for bernoulli, 4 for gauss sigma 25, 8 otherwise."""
    if nt == "bernoulli" or (nt == "gauss" and nl == 10):
        return 2
    if nt == "gauss" and nl == 25:
        return 4
    return 8


RETRY_SEED_STEP = 1000  # attempt k trains with seed + k * RETRY_SEED_STEP
# Above this many pixels an image trains on random TRAINING_CROP crops of its pseudo
# instances (full-image training of a 12-megapixel photo takes days on a CPU). 600 x 600
# keeps the paper's 256 x 256 images and the 500 x 500 McMaster frames whole; what crops
# cost is in results/benchmarks/crop_mcmaster500_cpu.txt.
CROP_TRAINING_ABOVE = 600 * 600
TRAINING_CROP = 256
INFERENCE_TILE = 512  # inference in tiles of this side: the same result in bounded memory


def parse_train_crop(text: str | int | None) -> int | None:
    """'auto' (or None) -> None, decided per image; else the crop side, 0 = whole image."""
    if text in ("auto", None):
        return None
    try:
        side = int(text)
    except ValueError:
        raise UserError(f"--train_crop {text}: expected auto or a whole number") from None
    if side < 0 or 0 < side < 16:
        raise UserError(f"--train_crop {text}: use 0 (whole image), auto, or a side of at least 16")
    return side


def build(preset: str = "real", nt: str | None = None, nl: float | None = None, **flags) -> Settings:
    """The run's settings: the preset, then the flags given (None: the preset's value),
    with every value checked here, once. nt, nl: the synthetic noise, for the mm rule."""
    import methods  # the registry imports the methods, which import this module

    values = dict(PRESETS[preset], nt=nt, nl=nl)
    values.update({name: value for name, value in flags.items() if value is not None})
    unknown = set(values) - {field.name for field in dataclasses.fields(Settings)}
    if unknown:
        raise UserError(f"unknown setting {sorted(unknown)[0]}")
    method = values.setdefault("method", Settings.method)
    if method not in methods.METHODS:
        raise UserError(f"--method {method}: unknown; choose one of {', '.join(methods.METHODS)}")
    if values.get("max_epoch") is None:  # not given: the method's own training length
        values["max_epoch"] = methods.METHODS[method].iterations or Settings.max_epoch
    modelled = methods.METHODS[method].noise_types
    if nt is not None and modelled is not None and nt not in modelled:
        raise UserError(f"--method {method} does not apply to --nt {nt}: it models {' and '.join(modelled)} noise only")
    if values.get("mm", 0) is None:
        values["mm"] = paper_mm(nt, nl)
    if values.get("bank_distance", "") is None:
        values["bank_distance"] = values.get("loss", Settings.loss)
    values["train_crop"] = parse_train_crop(values.get("train_crop"))
    device = resolve_device(values.pop("device", "auto"))
    precision = values.pop("precision", "auto")
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
    settings = Settings(**values, device=str(device))
    check_values(settings)
    if settings.batch_images > 1 and methods.METHODS[settings.method].denoise_together is None:
        raise UserError(f"--batch_images {settings.batch_images}: {settings.method} denoises one image at a time")
    return dataclasses.replace(settings, precision=resolve_precision(precision, device))


def check_values(settings: Settings) -> None:
    """Raise UserError for a value no run can use."""
    ws, ps, nn, mm = settings.ws, settings.ps, settings.nn, settings.mm
    checks = [
        (ws >= 1, f"--ws {ws}: the window size must be >= 1"),
        (ps >= 1 and ps % 2 == 1, f"--ps {ps}: the patch size must be odd and >= 1 (a patch is centred on its pixel)"),
        (1 <= nn <= ws * ws, f"--nn {nn}: must be between 1 and ws*ws = {ws * ws}"),
        (mm >= 2, f"--mm {mm}: training pairs two different bank entries, so --mm must be >= 2"),
        (mm <= nn, f"--mm {mm}: cannot exceed --nn {nn}, the entries the bank keeps"),
        (settings.loss in LOSSES, f"--loss {settings.loss}: choose one of {', '.join(LOSSES)}"),
        (settings.bank_distance in LOSSES, f"bank distance {settings.bank_distance}: choose L1 or L2"),
        (settings.out_activation in OUT_ACTIVATIONS, f"out_activation {settings.out_activation}: unknown"),
        (settings.bank_method in BANK_METHODS, f"--bank_method {settings.bank_method}: choose shift or unfold"),
        (1 <= settings.max_epoch <= 10 ** 9, f"--max_epoch {settings.max_epoch}: must be between 1 and 10^9"),
        (0 <= settings.seed <= MAX_SEED - 100 * RETRY_SEED_STEP,
         f"--seed {settings.seed}: must be between 0 and 2^63 - {100 * RETRY_SEED_STEP}"),
        (0 <= settings.max_retries <= 100, f"--max_retries {settings.max_retries}: must be between 0 and 100"),
        (settings.batch_images >= 1, f"--batch_images {settings.batch_images}: must be >= 1"),
        (math.isfinite(settings.lr) and settings.lr > 0, f"lr {settings.lr}: must be positive"),
    ]
    for passed, message in checks:
        if not passed:
            raise UserError(message)


# bf16 trains 4.5x faster than fp32 with AMX and is as good (results/benchmarks/
# training_quality_cpu.txt: +0.001 dB over four Kodak images); without AMX oneDNN's bf16 is
# slower than fp32 (training_speed_cpu_noamx.txt). On CUDA its quality is not yet checked.
BF16_PROVEN = {"cpu": True, "cuda": False}


def bf16_supported(device: torch.device) -> bool:
    """Native bf16 convolutions: CUDA from Ampere on, or a CPU with AVX-512 bf16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_has_amx() -> bool:
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe()) if probe else False


def resolve_precision(precision: str, device: torch.device) -> str:
    """auto -> bf16 where it is proven as good and faster on this device, else fp32; an
    explicit bf16 where the hardware lacks it is refused rather than emulated slowly."""
    if precision == "auto":
        fast = bf16_supported(device) and (device.type != "cpu" or cpu_has_amx())
        return "bf16" if BF16_PROVEN.get(device.type, False) and fast else "fp32"
    if precision == "bf16" and not bf16_supported(device):
        raise UserError(f"--precision bf16: {device} has no native bf16 arithmetic; use --precision fp32")
    return precision
