"""What a run is, apart from its method: the settings every method shares, where a run
reads and writes (Run), how a method declares its own settings (setting(), typed()), and
the devices with their arithmetic. It knows no method. Field names are the flags' names."""
from __future__ import annotations

import dataclasses
import numbers
import platform
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from utils import UserError

PRECISIONS = ("fp32", "bf16", "auto")
SEED_MARGIN = 100_000  # methods may add up to this to the seed (Pixel2Pixel's retries)
MAX_SEED = 2 ** 63 - 1 - SEED_MARGIN  # torch and numpy take seeds below 2**64


def setting(default, help: str, choices: tuple | None = None, none: str | None = None, parse=None):
    """A field of a method's settings class: its default, what it is (--help, and the
    reader's comment), its choices, what None means, and how to parse it if not by type."""
    return field(default=default, metadata={"help": help, "choices": choices, "none": none, "parse": parse})


def _coerce(name: str, value, kind):
    """value as the annotation `kind` says, or a UserError naming the flag."""
    options = typing.get_args(kind) if typing.get_origin(kind) in (types.UnionType, typing.Union) else (kind,)
    if value is None and type(None) in options:
        return None
    for option in options:
        if typing.get_origin(option) is tuple:
            item = typing.get_args(option)[0]
            if isinstance(value, (tuple, list)):
                return tuple(_coerce(name, element, item) for element in value)
        elif option is bool and isinstance(value, (bool, np.bool_)):
            return bool(value)
        elif option is int and isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        elif option is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
        elif option is str and isinstance(value, str):
            return value
    expected = " or ".join(getattr(option, "__name__", str(option)) for option in options if option is not type(None))
    raise UserError(f"--{name} {value!r}: expected {expected}")


def typed(cls: type, values: dict) -> Any:
    """An instance of the dataclass cls from values (the rest its defaults), each checked
    against its type and choices: the one place, for the command line and Python alike."""
    hints = typing.get_type_hints(cls)
    fields = {item.name: item for item in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UserError(f"unknown setting {unknown[0]}")
    checked = {}
    for name, value in values.items():
        checked[name] = _coerce(name, value, hints[name])
        choices = fields[name].metadata.get("choices")
        if choices and checked[name] is not None and checked[name] not in choices:
            raise UserError(f"--{name} {checked[name]}: choose one of {', '.join(map(str, choices))}")
    return cls(**checked)


def check(conditions: list[tuple[bool, str]]) -> None:
    """Raise UserError with the message of the first condition that fails."""
    for passed, message in conditions:
        if not passed:
            raise UserError(message)


@dataclass(frozen=True)
class Settings:
    """What a denoiser needs besides the noisy image: its own settings (`params`, an
    instance of its settings class) and what every method shares."""
    method: str = "pixel2pixel"  # a name in methods.METHODS
    params: Any = None  # the method's own hyperparameters, e.g. methods.pixel2pixel.Pixel2PixelSettings
    preset: str = "real"  # whose defaults params started from: the real script's or the synthetic ("syn")
    nt: str | None = None  # synthetic noise type and level, for methods that model the noise;
    nl: float | None = None  # None: real noise, unknown
    seed: int = 123  # the noise (with each image's name), initial weights and sampler; the release's
    batch_images: int = 1  # images of one size denoised at once, by methods that can
    precision: str = "fp32"  # fp32 (the release's) or bf16, resolved from auto; n/a: the method trains no network
    device: str = "cpu"  # resolved from auto by shared()
    save: str | None = None  # cache folder (Pixel2Pixel's banks); None: no cache
    no_progress: bool = False


SHARED = tuple(item.name for item in dataclasses.fields(Settings) if item.name not in ("method", "params", "preset"))


def shared(values: dict, auto_bf16: Callable[[torch.device], bool] = lambda device: False) -> dict:
    """Settings' shared fields from values (missing: the defaults), checked, with device and
    precision resolved (auto_bf16: the method's rule for auto)."""
    values = {name: value for name, value in values.items() if value is not None}
    precision = values.pop("precision", "auto")
    device = resolve_device(values.pop("device", "auto"))
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
    chosen = typed(Settings, values)
    check([(0 <= chosen.seed <= MAX_SEED, f"--seed {chosen.seed}: must be between 0 and 2^63 - {SEED_MARGIN + 1}"),
           (chosen.batch_images >= 1, f"--batch_images {chosen.batch_images}: must be >= 1")])
    return {**dataclasses.asdict(chosen), "params": None, "device": str(device),
            "precision": resolve_precision(precision, device, auto_bf16)}


@dataclass(frozen=True)
class Run:
    """Where a run writes and how its work is split: the command line less the method."""
    out_image: str = "./results_image"  # outputs: <out_image>/<dataset>/<setting>/, photos in out_image itself
    dataset: str = "kodak"  # names the run folder
    shard: tuple[int, int] | None = None  # (I, N): every N-th image from the I-th, into its own CSV
    time_limit: float | None = None  # seconds: start no image that would end later

    def __post_init__(self):
        if self.time_limit is not None and not self.time_limit > 0:  # NaN too
            raise UserError(f"--time_limit {self.time_limit:g}: must be a positive number of seconds")


# ----------------------------------------------------------------------------
# Devices and their arithmetic
# ----------------------------------------------------------------------------
def resolve_device(name: str | None) -> torch.device:
    """'auto' (or None): CUDA when present, else CPU."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise UserError(f"--device {name}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise UserError(f"--device {name}: only cpu and cuda are supported")
    return device


def flush_subnormals() -> bool:
    """Subnormal floats as zero on the CPU: a network collapsing on a dark image fills its
    gradients with them, slow on x86 (McMaster 8.png: 471 s for 150 iterations, not 36).
    Worker threads copy it when created: call it first."""
    return torch.set_flush_denormal(True)


def cpu_has_amx() -> bool:
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe()) if probe else False


def describe_device(device: torch.device) -> str:
    """The GPU's name, or the CPU with its threads and vector unit (which sets its speed)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    vector_unit = "AMX" if cpu_has_amx() else torch.backends.cpu.get_cpu_capability()
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {vector_unit})"


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so wall-clock timings measure the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bf16_supported(device: torch.device) -> bool:
    """Native bf16 convolutions: CUDA from Ampere on, or a CPU with AVX-512 bf16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(precision: str, device: torch.device,
                      auto_bf16: Callable[[torch.device], bool] = lambda device: False) -> str:
    """auto -> bf16 where the hardware has it and auto_bf16 (the method's rule) says so, else
    fp32; bf16 where the hardware lacks it is refused rather than emulated slowly."""
    if precision == "auto":
        return "bf16" if bf16_supported(device) and auto_bf16(device) else "fp32"
    if precision == "bf16" and not bf16_supported(device):
        raise UserError(f"--precision bf16: {device} has no native bf16 arithmetic; use --precision fp32")
    return precision
