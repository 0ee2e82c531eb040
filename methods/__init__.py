"""The denoisers, one file each, behind one interface (methods/interface.py): the one
place that knows them all. settings() builds a run's settings for any of them, and
denoise() runs any of them from Python, without the command line.

Adding a method: a file here that defines its settings class and METHOD, and one line
in METHODS."""
from __future__ import annotations

import dataclasses
import numbers

import numpy as np
import torch
from skimage.util import img_as_float32

import config
from methods import bm3d, nlm, pixel2pixel, pixel2pixel_plus, zsn2n
from methods.interface import Denoised, Method
from noise import check_noise_level
from utils import UserError, to_numpy, to_tensor

METHODS: dict[str, Method] = {
    "pixel2pixel": pixel2pixel.METHOD,  # the faithful method, the default
    "bm3d": bm3d.METHOD,
    "nlm": nlm.METHOD,
    "zsn2n": zsn2n.METHOD,
    "pixel2pixel_plus": pixel2pixel_plus.METHOD,  # opt-in: the recipe of results/recipe/
}


def applies(method: str, nt: str | None) -> bool:
    """Whether the method models this synthetic noise (None: real noise, which all take)."""
    types = METHODS[method].noise_types
    return nt is None or types is None or nt in types


def own_settings(method: str) -> dict[str, dataclasses.Field]:
    """A method's own settings: name -> field (default, help, choices)."""
    return {item.name: item for item in dataclasses.fields(METHODS[method].settings)}


def default_params(method: str, preset: str = "real"):
    """A method's settings as the entry script `preset` ("real" or "syn") starts them,
    before the noise resolves what follows from it."""
    return METHODS[method].settings(**METHODS[method].presets.get(preset, {}))


def settings(method: str = "pixel2pixel", preset: str = "real", nt: str | None = None, nl: float | None = None,
             **values) -> config.Settings:
    """A run's settings: the method's defaults, the preset's changes, then `values` (any
    of the method's own settings and of config.Settings' shared ones; None: not given),
    each checked once, here. nt, nl: the synthetic noise (None: real noise)."""
    if not isinstance(method, str) or method not in METHODS:
        raise UserError(f"--method {method}: unknown; choose one of {', '.join(METHODS)}")
    chosen = METHODS[method]
    if not applies(method, nt):
        raise UserError(f"--method {method} does not apply to --nt {nt}: it models "
                        f"{' and '.join(chosen.noise_types)} noise only")
    values = {name: value for name, value in values.items() if value is not None}
    own = {name: values.pop(name) for name in list(values) if name in own_settings(method)}
    strangers = sorted(set(values) - set(config.SHARED))
    if strangers:
        owners = [name for name in METHODS if strangers[0] in own_settings(name)]
        raise UserError(f"--{strangers[0]}: a setting of {' and '.join(owners)}, not of --method {method}" if owners
                        else f"unknown setting {strangers[0]}")
    asked = values.get("precision", "auto")
    if not chosen.precisions and asked in config.PRECISIONS:  # n/a: no hardware's arithmetic is asked for
        values["precision"] = "fp32"
    common = config.shared({**values, "nt": nt, "nl": nl},
                           lambda device: device.type in chosen.bf16_shown_on and chosen.bf16_faster(device))
    if not chosen.precisions:
        common["precision"] = "n/a"
    elif common["precision"] not in chosen.precisions:
        raise UserError(f"--precision {asked}: {method} computes in {' or '.join(chosen.precisions)}")
    if common["batch_images"] > 1 and chosen.denoise_together is None:
        raise UserError(f"--batch_images {common['batch_images']}: {method} denoises one image at a time")
    params = config.typed(chosen.settings, {**chosen.presets.get(preset, {}), **own})
    if hasattr(params, "resolved"):
        params = params.resolved(nt, nl)
    if hasattr(params, "check"):
        params.check()
    return config.Settings(**{**common, "method": method, "params": params, "preset": preset})


def folder_words(settings: config.Settings) -> list[str]:
    """What names a run folder after the noise: the method's tag, then each setting the
    tag does not name that differs from its default, e.g. width32."""
    method = METHODS[settings.method]
    # With the tagged settings' own values, so that what follows from them (milestones
    # from the length, say) is not named again.
    defaults = dataclasses.replace(default_params(settings.method, settings.preset),
                                   **{name: getattr(settings.params, name) for name in method.tagged})
    if hasattr(defaults, "resolved"):
        defaults = defaults.resolved(settings.nt, settings.nl)
    changed = [f"{name}{_word(getattr(settings.params, name))}" for name in own_settings(settings.method)
               if name not in method.tagged and getattr(settings.params, name) != getattr(defaults, name)]
    return method.tag(settings) + changed


def _word(value) -> str:
    return "-".join(map(str, value)) if isinstance(value, tuple) else f"{value:g}" if isinstance(value, float) \
        else str(value)


class TrainingFailed(RuntimeError):
    """A method's training failed (Denoised.status says how); its image is not returned."""

    def __init__(self, status: str, attempts: int):
        super().__init__(f"training failed ({status}) after {attempts} attempt(s)")
        self.status, self.attempts = status, attempts


# A float image is taken as it is; beyond these it is surely not on 0..1 (0..255, say).
# Synthetic noise strays outside [0, 1]: Poisson counts at lambda 10 reach 2.5.
FLOAT_RANGE = (-1.0, 8.0)


def as_image(noisy, device: torch.device) -> torch.Tensor:
    """The API's input contract: an H x W or H x W x C numpy array, or a C x H x W tensor
    (C from 1 to 4). Integers (and booleans) are scaled by their type's range, as
    scikit-image's img_as_float does; floats are taken as they are, and refused when not
    finite or far outside [0, 1] (FLOAT_RANGE). Returns C x H x W float32 on device."""
    if isinstance(noisy, torch.Tensor):
        shape = tuple(noisy.shape)
        if noisy.dim() != 3:
            raise UserError(f"a tensor must be C x H x W, got shape {shape}")
        array = noisy.detach().cpu().numpy().transpose(1, 2, 0)  # H x W x C: one path for both
    else:
        array = np.asarray(noisy)
        shape = array.shape
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3:
            raise UserError(f"an array must be H x W or H x W x C, got shape {shape}")
    height, width, channels = array.shape
    if not (height and width and 1 <= channels <= 4):
        raise UserError(f"shape {shape}: expected sides of at least 1 pixel and 1 to 4 channels")
    if array.dtype == bool or np.issubdtype(array.dtype, np.integer):
        array = img_as_float32(array)
    elif np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise UserError("the image has NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low < FLOAT_RANGE[0] or high > FLOAT_RANGE[1]:
            raise UserError(f"float values from {low:g} to {high:g}: floats are taken on 0..1 "
                            f"(divide 0..255 values by 255, or pass the integer array itself)")
    else:
        raise UserError(f"an image of {array.dtype} values: expected integers, booleans or floats")
    return to_tensor(array, device)


def parse_noise(noise) -> tuple[str, str | None, float | None]:
    """noise=None (real) or (type, level): the preset and the noise, checked as --nt, --nl are."""
    if noise is None:
        return "real", None, None
    if not isinstance(noise, (tuple, list)) or len(noise) != 2 or not isinstance(noise[0], str) \
            or isinstance(noise[1], bool) or not isinstance(noise[1], numbers.Real):
        raise UserError(f"noise={noise!r}: expected (type, level), e.g. ('gauss', 25), or None for real noise")
    check_noise_level(noise[0], float(noise[1]))
    return "syn", noise[0], float(noise[1])


def denoise(noisy, method: str = "pixel2pixel", noise: tuple[str, float] | None = None, **values):
    """Denoise one image. noisy: an H x W or H x W x C numpy array, or a C x H x W tensor
    (as_image says what it takes: integers scaled by their type's range, floats on 0..1).
    noise: (type, level) of synthetic noise, e.g. ("gauss", 25), for the synthetic
    script's settings and the paper's mm rule; None (real noise, your photos) for the real
    script's. values: any of the method's own settings (e.g. max_epoch=1000) or the shared
    ones (device="cuda"), checked as the command line checks its flags. Returns the
    denoised image, floats in [0, 1], in the form (array or tensor, same shape) and on the
    device it was given. Raises UserError for a bad image or setting, TrainingFailed when
    training diverged or collapsed on every attempt."""
    preset, noise_type, level = parse_noise(noise)
    chosen = settings(method, preset, noise_type, level, **values)
    tensor = as_image(noisy, torch.device(chosen.device))  # C x H x W
    METHODS[method].check_image(*tensor.shape[1:], tensor.shape[0], chosen)
    result: Denoised = METHODS[method].denoise(tensor, chosen, "image")
    if result.status != "ok":
        raise TrainingFailed(result.status, result.attempts)
    if isinstance(noisy, torch.Tensor):
        return result.image.to(noisy.device)
    output = to_numpy(result.image)
    return output[:, :, 0] if np.ndim(noisy) == 2 else output
