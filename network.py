"""The compact CNN and its training (SPEC section 3). Hyperparameters: methods/pixel2pixel.py's
Pixel2PixelSettings (`params` here; any object with its fields will do)."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from config import Settings
from pixel_bank import sample_pseudo_instances

LOW_FREQUENCY_RADIUS = 0.2  # cycles a pixel: ZS-HPD's split between low and high frequencies (SPEC section 8)


def fourier_l1(prediction: torch.Tensor, target: torch.Tensor, reduction: str = "mean",
               low_weight: float = 0.5) -> torch.Tensor:
    """L1 of the difference's 2-D Fourier coefficients (orthonormal: the pixels' scale),
    frequencies below LOW_FREQUENCY_RADIUS weighted low_weight, as ZS-HPD's loss. Each
    coefficient sums every pixel's noise, so it is near-Gaussian whatever the pixel noise:
    its median is its mean, where a pixel L1 estimates a biased median under Poisson noise."""
    height, width = prediction.shape[-2:]
    spectrum = torch.fft.fft2((prediction - target).float(), norm="ortho")  # N x C x H x W, complex
    radius = torch.hypot(*torch.meshgrid(torch.fft.fftfreq(height, device=prediction.device),
                                         torch.fft.fftfreq(width, device=prediction.device), indexing="ij"))
    weights = torch.where(radius < LOW_FREQUENCY_RADIUS, low_weight, 1.0)  # H x W
    values = spectrum.abs() * weights
    return values.mean() if reduction == "mean" else values


def impulse_l1(prediction: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """L1 over the target elements that are not exactly 0 or 1, the two values salt-and-pepper
    noise writes (SPEC section 1), counted as zero elsewhere: a target's impulses then teach
    nothing, where pixel L1 must outvote them with its median."""
    values = (prediction - target).abs() * ((target > 0) & (target < 1))
    return values.mean() if reduction == "mean" else values


# The faithful method's are L1 and L2 (its --loss); the others are recipe_sweep's levers.
LOSSES = {"L1": F.l1_loss, "L2": F.mse_loss, "fourier": fourier_l1, "impulse_L1": impulse_l1,
          "fourier_flat": lambda prediction, target, reduction="mean": fourier_l1(prediction, target, reduction, 1.0)}


class Pixel2PixelNet(nn.Module):
    """conv3x3(C->width), `depth` conv3x3(width->width), each followed by LeakyReLU, then
    conv1x1(width->C) and an optional sigmoid: 149,699 parameters for C = 3 and the
    paper's width 64 and depth 4.

    With groups = G it is G independent networks side by side as grouped convolutions,
    input and output 1 x G*C x H x W, so that one device trains G images at once:
    network g is initialised from generator[g] exactly as a lone network from that
    generator would be, and nothing mixes between groups."""

    def __init__(self, channels: int, params, generator: torch.Generator | Sequence[torch.Generator] | None = None,
                 groups: int = 1):
        super().__init__()
        generators = list(generator) if isinstance(generator, (list, tuple)) else [generator] * groups
        if len(generators) != groups:
            raise ValueError(f"{groups} groups need {groups} generators, got {len(generators)}")
        self.params, self.channels, self.groups = params, channels, groups
        width = params.width
        convs = [nn.Conv2d(groups * channels, groups * width, 3, padding=1, groups=groups)]
        convs += [nn.Conv2d(groups * width, groups * width, 3, padding=1, groups=groups)
                  for _ in range(params.depth)]
        self.hidden = nn.ModuleList(convs)
        self.head = nn.Conv2d(groups * width, groups * channels, 1, groups=groups)
        self.act = nn.LeakyReLU(params.negative_slope, inplace=True)
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
        return torch.sigmoid(x) if self.params.out_activation == "sigmoid" else x

    def single(self, group: int) -> "Pixel2PixelNet":
        """Network `group` of a grouped network, as a lone network on the same device."""
        lone = Pixel2PixelNet(self.channels, self.params).to(self.head.weight.device)
        with torch.no_grad():
            for mine, theirs in zip([*self.hidden, self.head], [*lone.hidden, lone.head]):
                theirs.weight.copy_(mine.weight.chunk(self.groups, dim=0)[group])
                theirs.bias.copy_(mine.bias.chunk(self.groups, dim=0)[group])
        return lone


def uses_channels_last(precision: str, device: torch.device) -> bool:
    """Whether training runs in NHWC (channels_last) layout: the faster one measured on
    each kind of device. oneDNN and cuDNN run bf16 convolutions fastest in it; fp32 on an
    AVX-512 CPU too (1.23x without AMX, 1.35x with it: results/benchmarks/
    training_speed_cpu_noamx.txt, training_speed_cpu_amx.txt), while on an AVX2 CPU fp32 NHWC
    was 2x slower than NCHW (training_speed_cpu_avx2.txt). fp32 on CUDA keeps NCHW, the
    layout the release used there; NHWC is not measured on a GPU."""
    return precision == "bf16" or (device.type == "cpu" and torch.backends.cpu.get_cpu_capability() == "AVX512")


def make_optimizer(model: nn.Module, params):
    """AdamW (default weight decay) at params.lr, multiplied by lr_gamma at each milestone."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(params.lr_milestones),
                                                     gamma=params.lr_gamma)
    return optimizer, scheduler


def train_network(bank, settings: Settings, seed: int | None = None,
                  description: str | None = None) -> tuple[Pixel2PixelNet, torch.Tensor]:
    """Train a fresh network on pseudo-instance pairs drawn from bank (mm x C x H x W on
    the device to train on, or a pixel_bank.OffsetBank). Returns the network and the loss
    of every iteration."""
    models, losses = train_networks([bank], settings, [settings.seed if seed is None else seed], description)
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


def train_networks(banks: Sequence, settings: Settings, seeds: Sequence[int], description: str | None = None,
                   channels_last: bool | None = None,
                   observe: Callable[[int, Pixel2PixelNet], None] | None = None,
                   pairs: Sequence | None = None, pairs_weight: float = 1.0
                   ) -> tuple[list[Pixel2PixelNet], torch.Tensor]:
    """Train one network per bank, all at once as one grouped network: banks of one
    shape (mm x C x H x W tensors, or pixel_bank.OffsetBank) on one device, seeds[g]
    for network g's initialisation and sampler. Each network sees what it would see
    trained alone (same initial weights, same pseudo instances, its own loss,
    elementwise AdamW), so results match one-by-one training up to floating-point
    summation order. Returns the networks and their losses, G x max_epoch.
    channels_last: the tensor layout; None picks the faster measured one. observe:
    called with (iterations done, model) after every step, for a method that watches its
    training (the grouped model when several train together); it must not train.
    pairs: per bank, another sampler of (input, target) pairs, 1 x C x h x w each, with
    sample(generator) (methods/pixel2pixel_plus.py's 2 x 2 one); every iteration then adds
    pairs_weight times the loss on one of its pairs, drawn with a CPU generator of its
    own, to the bank pair's, so that the bank's draws are those of training without it."""
    if settings.precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be fp32 or bf16 (config.shared resolves auto), got {settings.precision!r}")
    if len(banks) != len(seeds) or not banks:
        raise ValueError(f"need one seed per bank, got {len(banks)} banks and {len(seeds)} seeds")
    if len({(tuple(bank.shape), bank.device) for bank in banks}) != 1:
        raise ValueError("banks trained together must share shape and device")
    params = settings.params
    groups, device, iterations = len(banks), banks[0].device, params.max_epoch
    fast = settings.precision == "bf16"
    # Initialise on the CPU from generators of their own: the same weights on every device.
    init_generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    model = Pixel2PixelNet(banks[0].shape[1], params, generator=init_generators, groups=groups).to(device)
    if channels_last is None:
        channels_last = uses_channels_last(settings.precision, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer, scheduler = make_optimizer(model, params)
    sampler_generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
    pair_generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    # Kept on the device: reading a loss every iteration would force a host sync.
    losses = torch.empty(iterations, groups, device=device)
    progress = not settings.no_progress
    bar = tqdm(range(iterations), desc=description, disable=not progress, leave=False,
               mininterval=1.0, dynamic_ncols=True)
    # Every iteration has the same shape, so cuDNN's autotuner pays for itself; the
    # process's own setting is restored afterwards.
    autotune_before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = autotune_before or (fast and device.type == "cuda")
    try:
        for iteration in bar:
            bank_pairs = [sample_pseudo_instances(bank, generator) if isinstance(bank, torch.Tensor)
                          else bank.sample(generator) for bank, generator in zip(banks, sampler_generators)]
            # G pairs of 1 x C x H x W -> 1 x G*C x H x W: image g feeds group g.
            noisy_input = bank_pairs[0][0] if groups == 1 else torch.cat([pair[0] for pair in bank_pairs], dim=1)
            noisy_target = bank_pairs[0][1] if groups == 1 else torch.cat([pair[1] for pair in bank_pairs], dim=1)
            if channels_last:
                noisy_input = noisy_input.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
                prediction = model(noisy_input)
            values = _image_losses(params.loss, prediction, noisy_target, groups)  # fp32: the head is fp32
            if pairs is not None:
                # G pairs of 1 x C x h x w -> 1 x G*C x h x w, as the bank's
                chosen = [sampler.sample(generator) for sampler, generator in zip(pairs, pair_generators)]
                pair_input = torch.cat([pair[0] for pair in chosen], dim=1)
                pair_target = torch.cat([pair[1] for pair in chosen], dim=1)
                if channels_last:
                    pair_input = pair_input.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
                    pair_prediction = model(pair_input)
                values = values + pairs_weight * _image_losses(params.loss, pair_prediction, pair_target, groups)
            optimizer.zero_grad(set_to_none=True)
            values.sum().backward()
            optimizer.step()
            scheduler.step()
            losses[iteration] = values.detach()
            if observe is not None:
                observe(iteration + 1, model)
            if progress and (iteration + 1) % 100 == 0:
                bar.set_postfix(loss=f"{losses[iteration].mean().item():.5f}", refresh=False)
    finally:
        torch.backends.cudnn.benchmark = autotune_before
    models = [model] if groups == 1 else [model.single(group) for group in range(groups)]
    return models, losses.T.cpu()


@torch.no_grad()
def denoise(model: Pixel2PixelNet, noisy: torch.Tensor, tile: int | None = None) -> torch.Tensor:
    """C x H x W -> clamp(net(noisy), 0, 1), C x H x W, in fp32 whatever the training
    precision: one forward pass, and the weights are fp32. With `tile`, the image is
    run in tile x tile pieces, each read with the receptive field's radius of pixels
    around it (where the image has them): bounded memory, the same result."""
    model.eval()
    channels, height, width = noisy.shape
    if tile is None or (height <= tile and width <= tile):
        return torch.clamp(model(noisy[None]), 0.0, 1.0)[0]
    # Each 3x3 convolution sees one more pixel around: the output at a pixel depends on
    # the input within this distance, so tiles overlapping by it infer exactly the whole.
    margin = 1 + model.params.depth
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
    """Why this training run failed (one of interface.FAILURES), or None: a non-finite
    loss or output, or an output channel collapsed to a constant far from the input
    (C x H x W tensors)."""
    if not torch.isfinite(losses).all():
        return "non-finite loss"
    if not torch.isfinite(denoised).all():
        return "non-finite output"
    flat = denoised.flatten(1).std(dim=1) < COLLAPSE_STD
    shifted = (denoised.flatten(1).mean(dim=1) - noisy.flatten(1).mean(dim=1)).abs() > COLLAPSE_MEAN_SHIFT
    if (flat & shifted).any():
        return "collapsed output"
    return None
