"""What every denoiser gives the pipeline, and what the pipeline asks of it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from config import Settings


@dataclass
class Denoised:
    image: torch.Tensor  # C x H x W in [0, 1], on the noisy image's device
    seconds: dict[str, float]  # per stage, e.g. {"bank": 0.6, "train": 702.1}
    losses: torch.Tensor | None = None  # the training loss of every iteration, for trained methods
    attempts: int = 1  # training runs made (a failed run is retried with another seed)
    status: str = "ok"  # or why the last training run failed
    fields: dict = field(default_factory=dict)  # further results-CSV fields (runs.CSV_FIELDS)


@dataclass(frozen=True)
class Method:
    # (noisy C x H x W tensor on the device to run on, settings, image name for messages)
    denoise: Callable[[torch.Tensor, Settings, str], Denoised]
    # What of the settings changes its results: names the run folder, after the noise.
    tag: Callable[[Settings], list[str]]
    # (height, width, channels, settings) -> peak bytes it needs; a UserError for an
    # image it cannot take. Checked for every image before any work starts.
    check_image: Callable[[int, int, int, Settings], int]
    # Several images of one shape at once (--batch_images), for methods that batch.
    denoise_together: Callable[[list[torch.Tensor], Settings, list[str]], list[Denoised]] | None = None
    iterations: int = 0  # its paper's training length: max_epoch when --max_epoch is not given
    noise_types: tuple[str, ...] | None = None  # the synthetic noise it applies to (None: any)
