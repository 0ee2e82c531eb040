"""The compact CNN and its training (SPEC section 3)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from pixel_bank import sample_pseudo_instances

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


class Pixel2PixelNet(nn.Module):
    """conv3x3(C->64), four conv3x3(64->64), each followed by LeakyReLU(0.2), then
    conv1x1(64->C) and an optional sigmoid. 149,699 parameters for C = 3."""

    def __init__(self, channels: int, out_activation: str = "sigmoid", width: int = WIDTH,
                 generator: torch.Generator | None = None):
        super().__init__()
        if out_activation not in OUT_ACTIVATIONS:
            raise ValueError(f"out_activation must be one of {OUT_ACTIVATIONS}, got {out_activation!r}")
        self.out_activation = out_activation
        convs = [nn.Conv2d(channels, width, 3, padding=1)]
        convs += [nn.Conv2d(width, width, 3, padding=1) for _ in range(HIDDEN_3X3_LAYERS)]
        self.hidden = nn.ModuleList(convs)
        self.head = nn.Conv2d(width, channels, 1)
        self.act = nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True)
        for conv in [*self.hidden, self.head]:
            nn.init.orthogonal_(conv.weight, generator=generator)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.hidden:
            x = self.act(conv(x))
        x = self.head(x)
        return torch.sigmoid(x) if self.out_activation == "sigmoid" else x


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def make_optimizer(model: nn.Module):
    """AdamW at lr 1e-3 (default weight decay), halved at iterations 1500, 2000, 2500."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(LR_MILESTONES), gamma=LR_GAMMA)
    return optimizer, scheduler


def train_network(bank: torch.Tensor, loss: str = "L1", out_activation: str = "sigmoid",
                  iterations: int = ITERATIONS, seed: int = SEED, progress: bool = True,
                  description: str | None = None) -> tuple[Pixel2PixelNet, torch.Tensor]:
    """Train a fresh network on pseudo-instance pairs drawn from bank (mm x C x H x W,
    on the device to train on). Returns the network and the loss of every iteration."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {tuple(LOSSES)}, got {loss!r}")
    device = bank.device
    # Initialise on the CPU from its own generator: the same weights on every device.
    init_generator = torch.Generator().manual_seed(seed)
    model = Pixel2PixelNet(bank.shape[1], out_activation, generator=init_generator).to(device)
    optimizer, scheduler = make_optimizer(model)
    sampler_generator = torch.Generator(device=device).manual_seed(seed)
    loss_function = LOSSES[loss]
    # Kept on the device: reading a loss every iteration would force a host sync.
    losses = torch.empty(iterations, device=device)
    bar = tqdm(range(iterations), desc=description, disable=not progress, leave=False,
               mininterval=1.0, dynamic_ncols=True)
    for iteration in bar:
        noisy_input, noisy_target = sample_pseudo_instances(bank, sampler_generator)
        value = loss_function(model(noisy_input), noisy_target)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        scheduler.step()
        losses[iteration] = value.detach()
        if progress and (iteration + 1) % 100 == 0:
            bar.set_postfix(loss=f"{losses[iteration].item():.5f}", refresh=False)
    return model, losses.cpu()


@torch.no_grad()
def denoise(model: Pixel2PixelNet, noisy: torch.Tensor) -> torch.Tensor:
    """C x H x W -> clamp(net(noisy), 0, 1), C x H x W."""
    model.eval()
    return torch.clamp(model(noisy[None]), 0.0, 1.0)[0]


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
