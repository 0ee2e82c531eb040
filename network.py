"""The compact CNN and its training (SPEC section 3)."""
from __future__ import annotations

import time
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from pixel_bank import sample_pseudo_instances
from utils import UserError, synchronize

# Paper defaults, in one place (SPEC section 3).
WIDTH = 64  # feature channels of every hidden convolution
HIDDEN_3X3_LAYERS = 4  # 3x3 convolutions after the first, before the final 1x1
NEGATIVE_SLOPE = 0.2  # LeakyReLU after every convolution but the last
LEARNING_RATE = 1e-3  # AdamW with its default weight decay (0.01)
ITERATIONS = 3000  # one pseudo-instance pair of the full image per iteration
LR_MILESTONES = (1500, 2000, 2500)  # the learning rate is halved at each
LR_GAMMA = 0.5
SEED = 123  # the release seeds torch and numpy with 123
LOSSES = {"L1": F.l1_loss, "L2": F.mse_loss}
OUT_ACTIVATIONS = ("sigmoid", "none")  # synthetic script: sigmoid; real script: none
# fp32 is the release's arithmetic. bf16 runs the 3x3 convolutions under bf16 autocast
# in channels_last layout (fp32 master weights, fp32 output layer and loss). auto picks
# bf16 only on a device type where benchmarks/training_benchmark.py showed it equal to
# fp32 in PSNR at full length (results/benchmarks/training_quality_*.txt) and where it
# is faster (bf16_fast), else fp32.
PRECISIONS = ("fp32", "bf16", "auto")
DEFAULT_PRECISION = "auto"
# CPU: 4 Kodak24 images, gauss 25, 3000 iterations: bf16 - fp32 = +0.001 dB on average,
# at most 0.03 dB on one image, 4.5x faster. CUDA: not yet measured on a GPU.
BF16_PROVEN = {"cpu": True, "cuda": False}


class Pixel2PixelNet(nn.Module):
    """conv3x3(C->64), four conv3x3(64->64), each followed by LeakyReLU(0.2), then
    conv1x1(64->C) and an optional sigmoid. 149,699 parameters for C = 3.

    With groups = G it is G independent networks side by side as grouped convolutions,
    input and output 1 x G*C x H x W, so that one device trains G images at once:
    network g is initialised from generator[g] exactly as a lone network from that
    generator would be, and nothing mixes between groups."""

    def __init__(self, channels: int, out_activation: str = "sigmoid", width: int = WIDTH,
                 generator: torch.Generator | Sequence[torch.Generator] | None = None, groups: int = 1):
        super().__init__()
        if out_activation not in OUT_ACTIVATIONS:
            raise ValueError(f"out_activation must be one of {OUT_ACTIVATIONS}, got {out_activation!r}")
        generators = list(generator) if isinstance(generator, (list, tuple)) else [generator] * groups
        if len(generators) != groups:
            raise ValueError(f"{groups} groups need {groups} generators, got {len(generators)}")
        self.out_activation, self.channels, self.width, self.groups = out_activation, channels, width, groups
        convs = [nn.Conv2d(groups * channels, groups * width, 3, padding=1, groups=groups)]
        convs += [nn.Conv2d(groups * width, groups * width, 3, padding=1, groups=groups)
                  for _ in range(HIDDEN_3X3_LAYERS)]
        self.hidden = nn.ModuleList(convs)
        self.head = nn.Conv2d(groups * width, groups * channels, 1, groups=groups)
        self.act = nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True)
        with torch.no_grad():
            for conv in [*self.hidden, self.head]:
                # G*out x in x k x k: rows [g*out, (g+1)*out) belong to network g.
                for group, weight in enumerate(conv.weight.chunk(groups, dim=0)):
                    weight.copy_(nn.init.orthogonal_(torch.empty_like(weight), generator=generators[group]))
                nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.hidden:
            x = self.act(conv(x))
        # The output layer in fp32 even under autocast: bf16 keeps 8 significant bits,
        # coarser than the 8- and 16-bit pixels the output is compared with. It is a
        # 1x1 convolution to C channels, a small part of the work.
        with torch.autocast(x.device.type, enabled=False):
            x = self.head(x.float())
        return torch.sigmoid(x) if self.out_activation == "sigmoid" else x

    def single(self, group: int) -> "Pixel2PixelNet":
        """Network `group` of a grouped network, as a lone network on the same device."""
        lone = Pixel2PixelNet(self.channels, self.out_activation, self.width).to(self.head.weight.device)
        with torch.no_grad():
            for mine, theirs in zip([*self.hidden, self.head], [*lone.hidden, lone.head]):
                theirs.weight.copy_(mine.weight.chunk(self.groups, dim=0)[group])
                theirs.bias.copy_(mine.bias.chunk(self.groups, dim=0)[group])
        return lone


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 convolutions are native here: CUDA with bf16 (Ampere and later) or
    a CPU with AVX-512 bf16 / AMX through oneDNN."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def cpu_has_amx() -> bool:
    """Intel AMX tiles, which oneDNN uses for bf16 convolutions (torch >= 2.3 can tell)."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe()) if probe else False


def bf16_fast(device: torch.device) -> bool:
    """Whether bf16 trains faster than fp32 here. On a CPU only with AMX: bf16 trained
    4.5x faster than fp32 on the CPU of results/benchmarks/training_speed_cpu.txt (AMX,
    judging by that speed: the file predates recording it) and 0.68x as fast, slower, on
    an AVX-512 bf16 CPU without AMX (results/benchmarks/training_speed_cpu_noamx.txt)."""
    if not bf16_supported(device):
        return False
    return device.type != "cpu" or cpu_has_amx()


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> 'bf16' where its quality is proven for this device type and it is
    faster, else 'fp32'; an explicit bf16 on hardware without it is refused rather than
    run slowly through emulation."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if BF16_PROVEN.get(device.type, False) and bf16_fast(device) else "fp32"
    if precision == "bf16" and not bf16_supported(device):
        raise UserError(f"--precision bf16: {device} has no native bf16 arithmetic; use --precision fp32")
    return precision


def uses_channels_last(precision: str, device: torch.device) -> bool:
    """Whether training runs in NHWC (channels_last) layout. oneDNN and cuDNN run bf16
    convolutions fastest in it, and oneDNN runs fp32 ones faster too (1.23x on a
    2-core AVX-512 CPU, results/benchmarks/training_speed_cpu_noamx.txt). fp32 on CUDA
    keeps NCHW, the layout the release used there; NHWC is not measured on a GPU."""
    return precision == "bf16" or device.type == "cpu"


def make_optimizer(model: nn.Module):
    """AdamW at lr 1e-3 (default weight decay), halved at iterations 1500, 2000, 2500."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(LR_MILESTONES), gamma=LR_GAMMA)
    return optimizer, scheduler


def train_network(bank: torch.Tensor, loss: str = "L1", out_activation: str = "sigmoid",
                  iterations: int = ITERATIONS, seed: int = SEED, progress: bool = True,
                  description: str | None = None, precision: str = "fp32") -> tuple[Pixel2PixelNet, torch.Tensor]:
    """Train a fresh network on pseudo-instance pairs drawn from bank (mm x C x H x W,
    on the device to train on). precision: 'fp32' or 'bf16' (resolve 'auto' first).
    Returns the network and the loss of every iteration."""
    models, losses = train_networks([bank], loss, out_activation, iterations, [seed], progress, description,
                                    precision)
    return models[0], losses[0]


def _image_losses(loss: str, prediction: torch.Tensor, target: torch.Tensor, groups: int) -> torch.Tensor:
    """1 x G*C x H x W pairs -> the G per-image losses. Their sum is minimised: its
    gradient for network g is exactly that of image g's own loss."""
    if groups == 1:
        return LOSSES[loss](prediction, target).view(1)
    # Mean over H x W per channel, then over each group's C channels: the same mean
    # as over its C x H x W, and indifferent to channels_last strides.
    per_channel = LOSSES[loss](prediction, target, reduction="none").mean(dim=(2, 3))  # 1 x G*C
    return per_channel.view(groups, -1).mean(dim=1)


def train_networks(banks: Sequence[torch.Tensor], loss: str = "L1", out_activation: str = "sigmoid",
                   iterations: int = ITERATIONS, seeds: Sequence[int] = (SEED,), progress: bool = True,
                   description: str | None = None, precision: str = "fp32",
                   channels_last: bool | None = None) -> tuple[list[Pixel2PixelNet], torch.Tensor]:
    """Train one network per bank, all at once as one grouped network: banks of one
    shape (mm x C x H x W tensors, or pixel_bank.OffsetBank) on one device, seeds[g]
    for network g's initialisation and sampler. Each network sees what it would see trained alone (same initial weights,
    same pseudo instances, its own loss, elementwise AdamW), so results match one-by-one
    training up to floating-point summation order. Returns the networks and their
    losses, G x iterations. channels_last: the tensor layout; None picks the faster
    measured one (uses_channels_last), the benchmark sets it to time the other."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {tuple(LOSSES)}, got {loss!r}")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16' (resolve 'auto' first), got {precision!r}")
    if len(banks) != len(seeds) or not banks:
        raise ValueError(f"need one seed per bank, got {len(banks)} banks and {len(seeds)} seeds")
    if len({(tuple(bank.shape), bank.device) for bank in banks}) != 1:
        raise ValueError("banks trained together must share shape and device")
    groups, device = len(banks), banks[0].device
    fast = precision == "bf16"
    # Initialise on the CPU from generators of their own: the same weights on every device.
    init_generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    model = Pixel2PixelNet(banks[0].shape[1], out_activation, generator=init_generators, groups=groups).to(device)
    if channels_last is None:
        channels_last = uses_channels_last(precision, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer, scheduler = make_optimizer(model)
    sampler_generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
    # Kept on the device: reading a loss every iteration would force a host sync.
    losses = torch.empty(iterations, groups, device=device)
    bar = tqdm(range(iterations), desc=description, disable=not progress, leave=False,
               mininterval=1.0, dynamic_ncols=True)
    # Every iteration has the same shape, so cuDNN's autotuner pays for itself; the
    # process's own setting is restored afterwards.
    autotune_before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = autotune_before or (fast and device.type == "cuda")
    try:
        for iteration in bar:
            pairs = [sample_pseudo_instances(bank, generator) if isinstance(bank, torch.Tensor)
                     else bank.sample(generator) for bank, generator in zip(banks, sampler_generators)]
            # G pairs of 1 x C x H x W -> 1 x G*C x H x W: image g feeds group g.
            noisy_input = pairs[0][0] if groups == 1 else torch.cat([pair[0] for pair in pairs], dim=1)
            noisy_target = pairs[0][1] if groups == 1 else torch.cat([pair[1] for pair in pairs], dim=1)
            if channels_last:
                noisy_input = noisy_input.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
                prediction = model(noisy_input)
            values = _image_losses(loss, prediction, noisy_target, groups)  # fp32: the head is fp32
            optimizer.zero_grad(set_to_none=True)
            values.sum().backward()
            optimizer.step()
            scheduler.step()
            losses[iteration] = values.detach()
            if progress and (iteration + 1) % 100 == 0:
                bar.set_postfix(loss=f"{losses[iteration].mean().item():.5f}", refresh=False)
    finally:
        torch.backends.cudnn.benchmark = autotune_before
    models = [model] if groups == 1 else [model.single(group) for group in range(groups)]
    return models, losses.T.cpu()


def measure_iteration_seconds(channels: int, height: int, width: int, precision: str, device: torch.device,
                              iterations: int = 3) -> float:
    """Seconds per training iteration on a C x H x W image here, after one warm-up."""
    bank = torch.rand(2, channels, height, width, generator=torch.Generator().manual_seed(0)).to(device)
    train_network(bank, iterations=1, progress=False, precision=precision)
    synchronize(device)
    start = time.perf_counter()
    train_network(bank, iterations=iterations, progress=False, precision=precision)
    synchronize(device)
    return (time.perf_counter() - start) / iterations


# Each 3x3 convolution sees one more pixel around: the output at a pixel depends on
# the input within this distance, so tiles overlapping by it infer exactly the whole.
RECEPTIVE_RADIUS = 1 + HIDDEN_3X3_LAYERS


@torch.no_grad()
def denoise(model: Pixel2PixelNet, noisy: torch.Tensor, tile: int | None = None) -> torch.Tensor:
    """C x H x W -> clamp(net(noisy), 0, 1), C x H x W, in fp32 whatever the training
    precision: one forward pass, and the weights are fp32. With `tile`, the image is
    run in tile x tile pieces, each read with RECEPTIVE_RADIUS more pixels around it
    (where the image has them), so memory stays bounded and the result is the same."""
    model.eval()
    channels, height, width = noisy.shape
    if tile is None or (height <= tile and width <= tile):
        return torch.clamp(model(noisy[None]), 0.0, 1.0)[0]
    margin = RECEPTIVE_RADIUS
    output = torch.empty_like(noisy)
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            top, left = max(0, y0 - margin), max(0, x0 - margin)
            piece = model(noisy[None, :, top:min(height, y1 + margin), left:min(width, x1 + margin)])[0]
            output[:, y0:y1, x0:x1] = piece[:, y0 - top:y1 - top, x0 - left:x1 - left]
    return output.clamp_(0.0, 1.0)


# A channel whose output is this flat and this far from the noisy input's mean has
# collapsed (the all-black images others saw with the release). A denoised image keeps
# its input's mean to within 0.1 for every noise model here, except heavy bernoulli or
# salt-and-pepper noise on a bright image; there, only an output flat to 1/255 over a
# whole channel is flagged, and a false alarm costs one retrain, not a wrong result.
COLLAPSE_STD = 1.0 / 255
COLLAPSE_MEAN_SHIFT = 0.1


def training_failure(losses: torch.Tensor, denoised: torch.Tensor, noisy: torch.Tensor) -> str | None:
    """Why this training run failed, or None: a non-finite loss or output, or an
    output channel collapsed to a constant far from the input (C x H x W tensors)."""
    if not torch.isfinite(losses).all():
        return "non-finite loss"
    if not torch.isfinite(denoised).all():
        return "non-finite output"
    flat = denoised.flatten(1).std(dim=1) < COLLAPSE_STD
    shifted = (denoised.flatten(1).mean(dim=1) - noisy.flatten(1).mean(dim=1)).abs() > COLLAPSE_MEAN_SHIFT
    if (flat & shifted).any():
        return "collapsed output"
    return None
