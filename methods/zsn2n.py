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
    """conv3x3(C->48), LeakyReLU, conv3x3(48->48), LeakyReLU, conv1x1(48->C): the noise.
    With groups G, G such networks side by side, image g in channels g*C .. (g+1)*C - 1."""

    def __init__(self, channels: int, params: ZSN2NSettings = ZSN2NSettings(), groups: int = 1):
        super().__init__()
        width = params.width * groups
        self.first = nn.Conv2d(channels * groups, width, 3, padding=1, groups=groups)
        self.second = nn.Conv2d(width, width, 3, padding=1, groups=groups)
        self.head = nn.Conv2d(width, channels * groups, 1, groups=groups)
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


def _mse(a: torch.Tensor, b: torch.Tensor, groups: int) -> torch.Tensor:
    """1 x G*C x H x W pair -> G mean squared errors, one per image."""
    return ((a.float() - b.float()) ** 2).reshape(groups, -1).mean(dim=1)


def loss(model: nn.Module, noisy: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """The residual loss (each half predicts the other) plus the consistency loss
    (denoising then downsampling equals downsampling then denoising), one per image.
    noisy: 1 x G*C x H x W, G images side by side in the channels. Returns G values."""
    first, second = downsample_pair(noisy)
    denoised_first, denoised_second = first - model(first), second - model(second)
    residual = (_mse(first, denoised_second, groups) + _mse(second, denoised_first, groups)) / 2
    whole_first, whole_second = downsample_pair(noisy - model(noisy))
    consistency = (_mse(denoised_first, whole_first, groups) + _mse(denoised_second, whole_second, groups)) / 2
    return residual + consistency


def grouped_network(channels: int, params: ZSN2NSettings, seeds: list[int]) -> ZSN2NNet:
    """G networks as one grouped network, network g initialised as one trained alone with
    seeds[g] is (PyTorch's default initialisation, from that seed)."""
    singles = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):  # from this seed alone, whatever ran before
            torch.manual_seed(seed)
            singles.append(ZSN2NNet(channels, params))
    if len(seeds) == 1:
        return singles[0]
    model = ZSN2NNet(channels, params, groups=len(seeds))
    with torch.no_grad():
        for name, tensor in model.state_dict().items():  # weights: G*out x in x k x k; biases: G*out
            tensor.copy_(torch.cat([single.state_dict()[name] for single in singles]))
    return model


def uses_channels_last(precision: str, device: torch.device) -> bool:
    """NHWC for bf16, and for fp32 on an AVX-512 CPU: 1.3x and 1.9x faster than NCHW there
    at 256 x 256 (results/benchmarks/zsn2n_speed_cpu_noamx.txt). NCHW elsewhere, as the
    paper's code runs: on AVX2 NHWC was no faster (1.03x slower, zsn2n_speed_cpu_avx2.txt)."""
    return precision == "bf16" or (device.type == "cpu" and torch.backends.cpu.get_cpu_capability() == "AVX512")


def denoise_together(noisy_images: list[torch.Tensor], settings: Settings, names: list[str],
                     channels_last: bool | None = None) -> list[Denoised]:
    """Images of one shape trained at once as one grouped network: each sees what it
    would alone (its own initialisation and loss; Adam is elementwise), so each result
    matches training it alone up to floating-point summation order. An image's seconds:
    its share of the joint run. channels_last: the layout; None: uses_channels_last's."""
    start = time.perf_counter()
    params, groups = settings.params, len(noisy_images)
    device = noisy_images[0].device
    image = torch.cat(noisy_images)[None]  # G x C x H x W -> 1 x G*C x H x W
    model = grouped_network(noisy_images[0].shape[0], params, [settings.seed] * groups).to(device)
    if uses_channels_last(settings.precision, device) if channels_last is None else channels_last:
        model = model.to(memory_format=torch.channels_last)
        image = image.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=params.lr_step, gamma=params.lr_gamma)
    losses = torch.empty(params.max_epoch, groups, device=device)  # on the device: no host sync a step
    description = names[0] if groups == 1 else f"{groups} images"
    fast = settings.precision == "bf16"
    for iteration in tqdm(range(params.max_epoch), desc=description, disable=settings.no_progress, leave=False,
                          mininterval=1.0):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
            values = loss(model, image, groups)
        optimizer.zero_grad(set_to_none=True)
        values.sum().backward()
        optimizer.step()
        scheduler.step()
        losses[iteration] = values.detach()
    with torch.no_grad():  # in fp32, as the weights are
        denoised = torch.clamp(image - model(image), 0, 1)[0]  # G*C x H x W
    synchronize(device)
    seconds = (time.perf_counter() - start) / groups
    return [Denoised(part, {"train": seconds}, image_losses) for part, image_losses in
            zip(denoised.chunk(groups), losses.T.cpu())]


def denoise(noisy: torch.Tensor, settings: Settings, name: str = "image") -> Denoised:
    return denoise_together([noisy], settings, [name])[0]


def check_image(height: int, width: int, channels: int, settings: Settings) -> int:
    if min(height, width) < 2:
        raise UserError(f"{height} x {width} pixels: ZS-N2N needs both sides of at least 2 to downsample")
    # Activations of the whole image and both halves, kept for the backward pass: about
    # 2 x 48 floats a pixel in each of 1.5 images' worth, with margin.
    return 4 * height * width * (2 * settings.params.width * 3 + 8 * channels)


# bf16's quality: as good as fp32 on the CPU, and 1.9x (AVX-512 bf16) to 2.1x (AMX) faster
# (results/benchmarks/zsn2n_quality_cpu_noamx.csv: -0.02 dB over 16 full-length development
# runs); on CUDA not yet checked.
METHOD = Method(settings=ZSN2NSettings, denoise=denoise, denoise_together=denoise_together, check_image=check_image,
                tag=lambda settings: ["zsn2n", f"it{settings.params.max_epoch}", f"seed{settings.seed}"],
                tagged=("max_epoch",), csv_fields=("train_seconds",), precisions=("fp32", "bf16"),
                bf16_shown_on=("cpu",))
