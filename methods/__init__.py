"""The denoisers, one file each, behind one interface (methods/interface.py): the one
place that knows them all. settings() builds a run's settings for any of them, and
denoise() runs any of them from Python, without the command line.

Adding a method: a file here that defines its settings class and METHOD, and one line
in METHODS."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

import config
from methods import bm3d, nlm, pixel2pixel, zsn2n
from methods.interface import Denoised, Method
from utils import UserError, to_numpy, to_tensor

METHODS: dict[str, Method] = {
    "pixel2pixel": pixel2pixel.METHOD,  # the faithful method, the default
    "bm3d": bm3d.METHOD,
    "nlm": nlm.METHOD,
    "zsn2n": zsn2n.METHOD,
}


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
    if nt is not None and chosen.noise_types is not None and nt not in chosen.noise_types:
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
    common = config.shared({**values, "nt": nt, "nl": nl})
    if not chosen.precisions:
        common["precision"] = "n/a"
    elif common["precision"] not in chosen.precisions:
        if asked != "auto":
            raise UserError(f"--precision {asked}: {method} computes in {' or '.join(chosen.precisions)}")
        common["precision"] = chosen.precisions[0]
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
    defaults = default_params(settings.method, settings.preset)
    if hasattr(defaults, "resolved"):
        defaults = defaults.resolved(settings.nt, settings.nl)
    changed = [f"{name}{_word(getattr(settings.params, name))}" for name in own_settings(settings.method)
               if name not in method.tagged and getattr(settings.params, name) != getattr(defaults, name)]
    return method.tag(settings) + changed


def _word(value) -> str:
    return "-".join(map(str, value)) if isinstance(value, tuple) else f"{value:g}" if isinstance(value, float) \
        else str(value)


def denoise(noisy, method: str = "pixel2pixel", noise: tuple[str, float] | None = None, **values):
    """Denoise one image. noisy: an H x W or H x W x C numpy array, or a C x H x W tensor,
    of floats in [0, 1] (a synthetic noisy image may stray outside). noise: (type, level)
    of synthetic noise, e.g. ("gauss", 25), for the synthetic script's settings and the
    paper's mm rule; None (real noise, your photos) for the real script's. values: any
    of the method's own settings (e.g. max_epoch=1000) or the shared ones (device="cuda").
    Returns the denoised image in the form and on the device it was given."""
    preset, noise_type, level = ("real", None, None) if noise is None else ("syn", *noise)
    chosen = settings(method, preset, noise_type, level, **values)
    device = torch.device(chosen.device)
    if isinstance(noisy, torch.Tensor):
        tensor = noisy.detach().float().to(device)
    else:
        array = np.asarray(noisy, dtype=np.float32)
        tensor = to_tensor(array[:, :, None] if array.ndim == 2 else array, device)
    if tensor.dim() != 3:
        raise ValueError(f"expected an H x W (x C) array or a C x H x W tensor, got shape {tuple(noisy.shape)}")
    METHODS[method].check_image(*tensor.shape[1:], tensor.shape[0], chosen)
    result: Denoised = METHODS[method].denoise(tensor, chosen, "image")
    if isinstance(noisy, torch.Tensor):
        return result.image.to(noisy.device)
    output = to_numpy(result.image)
    return output[:, :, 0] if np.ndim(noisy) == 2 else output
