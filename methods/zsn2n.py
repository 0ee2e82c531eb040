"""ZS-N2N, Zero-Shot Noise2Noise (Mansour and Heckel, CVPR 2023), written from the paper.

Two fixed 2 x 2 kernels, one averaging the main diagonal and one the other, split the
noisy image into two half-resolution images whose noise is independent while their
content is nearly the same. A tiny network (about 22K parameters) predicts the noise of
each from the other (the residual loss), and its denoising must commute with the
downsampling (the consistency loss)."""
from __future__ import annotations

import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from config import Settings
from methods.interface import Denoised, Method
from utils import UserError, synchronize

# The paper's settings: 48 channels; Adam at 1e-3, halved after 1500 of 2000 iterations.
WIDTH = 48
ITERATIONS = 2000
LEARNING_RATE = 1e-3
LR_STEP = 1500
LR_GAMMA = 0.5
NEGATIVE_SLOPE = 0.2


class ZSN2NNet(nn.Module):
    """conv3x3(C->48), LeakyReLU, conv3x3(48->48), LeakyReLU, conv1x1(48->C): the noise."""

    def __init__(self, channels: int):
        super().__init__()
        self.first = nn.Conv2d(channels, WIDTH, 3, padding=1)
        self.second = nn.Conv2d(WIDTH, WIDTH, 3, padding=1)
        self.head = nn.Conv2d(WIDTH, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.first(x), NEGATIVE_SLOPE)
        x = F.leaky_relu(self.second(x), NEGATIVE_SLOPE)
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
    image = noisy[None]  # 1 x C x H x W
    with torch.random.fork_rng(devices=[]):  # the default initialisation, from this run's seed alone
        torch.manual_seed(settings.seed)
        model = ZSN2NNet(noisy.shape[0]).to(noisy.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=LR_STEP, gamma=LR_GAMMA)
    losses = torch.empty(settings.max_epoch, device=noisy.device)  # on the device: no host sync a step
    for iteration in tqdm(range(settings.max_epoch), desc=name, disable=settings.no_progress, leave=False,
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
    return 4 * height * width * (2 * WIDTH * 3 + 8 * channels)


METHOD = Method(denoise=denoise, tag=lambda settings: ["zsn2n", f"it{settings.max_epoch}", f"seed{settings.seed}"],
                check_image=check_image, iterations=ITERATIONS)
