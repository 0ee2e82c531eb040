"""What every denoiser gives the pipeline, and what the pipeline asks of it.

A method is one file in methods/ defining a settings class (a frozen dataclass whose
fields are config.setting()s: its hyperparameters with their defaults, each a flag of
the scripts under the method's name) and METHOD; and one line in methods.METHODS. A
settings class may define resolved(nt, nl), for defaults that follow from the noise, and
check(), raising UserError for values it cannot use."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from config import Settings

# How a run of a trained method can end; a results row's status is one of these.
FAILURES = ("non-finite loss", "non-finite output", "collapsed output")
STATUSES = ("ok", *FAILURES)


@dataclass
class Denoised:
    image: torch.Tensor  # C x H x W in [0, 1], on the noisy image's device
    seconds: dict[str, float]  # per stage, e.g. {"bank": 0.6, "train": 702.1}
    losses: torch.Tensor | None = None  # the training loss of every iteration, for trained methods
    attempts: int = 1  # training runs made (a failed run is retried with another seed)
    status: str = "ok"  # or the failure (FAILURES) of the last training run
    fields: dict = field(default_factory=dict)  # the method's own results-CSV fields (Method.csv_fields)


@dataclass(frozen=True)
class Method:
    settings: type  # its own hyperparameters: a dataclass of config.setting() fields
    # (noisy C x H x W tensor on the device to run on, settings, image name for messages)
    denoise: Callable[[torch.Tensor, Settings, str], Denoised]
    # What of the settings changes its results: names the run folder, after the noise.
    tag: Callable[[Settings], list[str]]
    # (height, width, channels, settings) -> peak bytes it needs; a UserError for an
    # image it cannot take. Checked for every image before any work starts.
    check_image: Callable[[int, int, int, Settings], int]
    # Several images of one shape at once (--batch_images), for methods that batch.
    denoise_together: Callable[[list[torch.Tensor], Settings, list[str]], list[Denoised]] | None = None
    presets: dict[str, dict] = field(default_factory=dict)  # per entry script ("syn"): the defaults it changes
    csv_fields: tuple[str, ...] = ()  # its own results-CSV columns; <stage>_seconds ones are filled from seconds
    tagged: tuple[str, ...] = ()  # the settings tag() names; any other that differs from its default is appended
    # What of the settings must match for a run folder to be resumed, beyond its name.
    identity: Callable[[Settings], dict] = lambda settings: {}
    noise_types: tuple[str, ...] | None = None  # the synthetic noise it applies to (None: any)
    precisions: tuple[str, ...] = ("fp32", "bf16")  # what it can compute in; none: n/a (not a trained network)
    # Where --precision auto picks bf16 (native bf16 hardware assumed): the device types on
    # which its quality was shown equal to fp32's, and where it is faster than fp32.
    bf16_shown_on: tuple[str, ...] = ()
    bf16_faster: Callable[[torch.device], bool] = lambda device: True
