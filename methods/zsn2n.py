"""ZS-N2N, Zero-Shot Noise2Noise (Mansour and Heckel, CVPR 2023), written from the paper.

Two fixed 2 x 2 kernels, one averaging the main diagonal and one the other, split the
noisy image into two half-resolution images whose noise is independent while their
content is nearly the same. A tiny network (about 22K parameters) predicts the noise of
each from the other (the residual loss), and its denoising must commute with the
downsampling (the consistency loss)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from config import Settings, check, setting, synchronize
from methods.interface import Denoised, Method
from utils import UserError


@dataclass(frozen=True)
class ZSN2NSettings:
    """The paper's: 48 channels; Adam at 1e-3, halved after 1500 of 2000 iterations."""
    width: int = setting(48, "feature channels of its two 3x3 convolutions")
    max_epoch: int = setting(2000, "training iterations on the whole image")
    lr: float = setting(1e-3, "Adam's learning rate")
    lr_step: int = setting(1500, "iterations after which the rate is multiplied by lr_gamma")
    lr_gamma: float = setting(0.5, "the rate's factor after lr_step")
    negative_slope: float = setting(0.2, "of the LeakyReLU after each 3x3 convolution")

    def check(self) -> None:
        check([(1 <= self.width <= 4096, f"--width {self.width}: must be between 1 and 4096"),
               (1 <= self.max_epoch <= 10 ** 9, f"--max_epoch {self.max_epoch}: must be between 1 and 10^9"),
               (0 < self.lr < 1e3, f"--lr {self.lr}: must be positive"),
               (self.lr_step >= 1, f"--lr_step {self.lr_step}: must be >= 1"),
               (0 < self.lr_gamma <= 1, f"--lr_gamma {self.lr_gamma}: must be in (0, 1]"),
               (0 <= self.negative_slope <= 1, f"--negative_slope {self.negative_slope}: must be in [0, 1]")])


class ZSN2NNet(nn.Module):
    """conv3x3(C->48), LeakyReLU, conv3x3(48->48), LeakyReLU, conv1x1(48->C): the noise."""

    def __init__(self, channels: int, params: ZSN2NSettings = ZSN2NSettings()):
        super().__init__()
        self.first = nn.Conv2d(channels, params.width, 3, padding=1)
        self.second = nn.Conv2d(params.width, params.width, 3, padding=1)
        self.head = nn.Conv2d(params.width, channels, 1)
        self.negative_slope = params.negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.first(x), self.negative_slope)
        x = F.leaky_relu(self.second(x), self.negative_slope)
        return self.head(x)


def downsample_pair(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """N x C x H x W -> two N x C x H//2 x W//2 images: each 2 x 2 block's two diagonals, averaged."""
    channels = images.shape[1]
    kernels = images.new_tensor([[[0.0, 0.5], [0.5, 0.0]], [[0.5, 0.0], [0.0, 0.5]]])
    pair = []
    for kernel in kernels:
        weight = kernel.expand(channels, 1, 2, 2)  # one kernel per channel: a grouped convolution
        pair.append(F.conv2d(images, weight, stride=2, groups=channels))
    return pair[0], pair[1]


def loss(model: nn.Module, noisy: torch.Tensor) -> torch.Tensor:
    """The residual loss (each half predicts the other) plus the consistency loss
    (denoising then downsampling equals downsampling then denoising). noisy: 1 x C x H x W."""
    first, second = downsample_pair(noisy)
    denoised_first, denoised_second = first - model(first), second - model(second)
    residual = (F.mse_loss(first, denoised_second) + F.mse_loss(second, denoised_first)) / 2
    whole_first, whole_second = downsample_pair(noisy - model(noisy))
    consistency = (F.mse_loss(denoised_first, whole_first) + F.mse_loss(denoised_second, whole_second)) / 2
    return residual + consistency


def denoise(noisy: torch.Tensor, settings: Settings, name: str = "image") -> Denoised:
    start = time.perf_counter()
    params = settings.params
    image = noisy[None]  # 1 x C x H x W
    with torch.random.fork_rng(devices=[]):  # the default initialisation, from this run's seed alone
        torch.manual_seed(settings.seed)
        model = ZSN2NNet(noisy.shape[0], params).to(noisy.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=params.lr_step, gamma=params.lr_gamma)
    losses = torch.empty(params.max_epoch, device=noisy.device)  # on the device: no host sync a step
    for iteration in tqdm(range(params.max_epoch), desc=name, disable=settings.no_progress, leave=False,
                          mininterval=1.0):
        value = loss(model, image)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        scheduler.step()
        losses[iteration] = value.detach()
    with torch.no_grad():
        denoised = torch.clamp(image - model(image), 0, 1)[0]
    synchronize(noisy.device)
    return Denoised(denoised, {"train": time.perf_counter() - start}, losses.cpu())


def check_image(height: int, width: int, channels: int, settings: Settings) -> int:
    if min(height, width) < 2:
        raise UserError(f"{height} x {width} pixels: ZS-N2N needs both sides of at least 2 to downsample")
    # Activations of the whole image and both halves, kept for the backward pass: about
    # 2 x 48 floats a pixel in each of 1.5 images' worth, with margin.
    return 4 * height * width * (2 * settings.params.width * 3 + 8 * channels)


METHOD = Method(settings=ZSN2NSettings, denoise=denoise, check_image=check_image,
                tag=lambda settings: ["zsn2n", f"it{settings.params.max_epoch}", f"seed{settings.seed}"],
                tagged=("max_epoch",), csv_fields=("train_seconds",), precisions=("fp32",))
