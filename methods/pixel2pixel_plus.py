"""Pixel2Pixel+: the faithful method's bank, sampler, network and training loop
(methods/pixel2pixel.py), with a recipe chosen on a development set no table uses
(benchmarks/recipe_sweep.py; the ablation is in results/recipe/README.md). Opt-in:
--method pixel2pixel_plus. Zero-shot still: the noisy image alone.

What differs from the faithful method, and why:
- A third of its training: 3000 iterations over-train a small image, and the rate
  halvings come at the same fractions of the shorter length.
- No sigmoid on the output: it can saturate into a black image, and it costs PSNR.
- For synthetic noise, a second pair each iteration beside the bank's: two neighbouring
  pixels of every 2 x 2 block, the two flattest or the two steepest by the image's
  gradient, as half-resolution images (ZS-HPD's sampler, SPEC section 8). Their signals
  are nearly equal and their noise independent, which the bank's far matches are not
  always; a camera's noise is shared by neighbours, so the real preset does without.
- For salt-and-pepper and bernoulli noise, pseudo instances leave out its impulses, the
  elements at exactly 0 or 1 (ImpulseFreeBank), and the network reads out the image with
  each impulse replaced by its best match that is not one: a target's impulses teach
  nothing, and with them the network trains far slower than 1000 iterations allow.
- For real noise, the output is the mean of the network over several pseudo instances
  instead of the network on the noisy image: the network was trained on pseudo
  instances, whose noise is less correlated between neighbours than a camera's. On
  synthetic noise this lowers PSNR, so the synthetic preset reads out the noisy image.
- For real noise, that output is then blended back towards the noisy image where the
  residual holds more than noise (residual_blend): at a camera's mild noise the bank's
  matches differ from a pixel by more than its noise does, and the network smooths
  texture away with it, ending below the noisy image.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

import network
import pixel_bank
from config import Settings, check, setting
from methods.interface import Denoised
from utils import UserError
from methods.pixel2pixel import INFERENCE_TILE, Pixel2PixelSettings, training_crop
from methods.pixel2pixel import METHOD as FAITHFUL
from methods.pixel2pixel import PRESETS as FAITHFUL_PRESETS
from methods.pixel2pixel import denoise_together as faithful_denoise_together
from methods.pixel2pixel import tag as faithful_tag

MILESTONE_FRACTIONS = (1 / 2, 2 / 3, 5 / 6)  # the faithful 1500, 2000, 2500 of 3000
# Noises whose impulses are exactly 0 or 1, left out by default: salt-and-pepper (+5.61 dB
# over keeping them at 128 x 128) and bernoulli (+0.32 at 256 x 256, 7 of 8 images; retina,
# whose black ground holds true zeros, -0.40): results/recipe/README.md. Impulse noise's
# values are uniform, with no marker to leave out.
IMPULSE_NOISES = ("saltpepper", "bernoulli")
GRADIENT_AVERAGE = 5  # ZS-HPD's: Sobel gradients averaged over 5 x 5 pixels rank a block's pixels
SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
# residual_blend's noise level: this many times the median of the residual's local energy,
# so that a window of noise alone, whose energy varies by chance, keeps the estimate. Chosen
# with the real preset's window on the development set's two correlated noises
# (results/recipe/blend256.md): 1.25 beside 1, 1.5 and 2.
BLEND_SLACK = 1.25


def gradient_sorted_pairs(noisy: torch.Tensor, guide: torch.Tensor | None = None) -> torch.Tensor:
    """ZS-HPD's 2 x 2 sampler (SPEC section 8): C x H x W -> 4 x 2 x C x H/2 x W/2
    (input, target) pairs of half-resolution images. In every 2 x 2 block the pixels are
    ranked by the luminance's gradient; the two flattest give one pair and the two steepest
    the other, each in both directions: neighbours whose signals differ least, while their
    noise (if the camera's is not correlated) is independent. An odd last row or column
    is left out. guide (C x H x W): the image whose gradient ranks the pixels, by default
    the noisy one (ranking on the bank's mean instead changed nothing on the development
    set: results/recipe/README.md)."""
    channels, height, width = noisy.shape
    image = noisy[None, :, :height // 2 * 2, :width // 2 * 2]  # 1 x C x H x W, even sides
    guide = image if guide is None else guide[None, :, :height // 2 * 2, :width // 2 * 2]
    luminance = guide.mean(dim=1, keepdim=True)  # 1 x 1 x H x W
    padded = F.pad(luminance, (1, 1, 1, 1), mode="replicate")
    sobel = SOBEL.to(noisy.device, noisy.dtype)
    magnitude = torch.hypot(F.conv2d(padded, sobel[None, None]), F.conv2d(padded, sobel.T[None, None]))
    radius = GRADIENT_AVERAGE // 2
    magnitude = F.avg_pool2d(F.pad(magnitude, (radius,) * 4, mode="replicate"), GRADIENT_AVERAGE, stride=1)
    # pixel_unshuffle: 1 x C x H x W -> 1 x C*4 x H/2 x W/2, channel c*4 + (2 * dy + dx).
    order = F.pixel_unshuffle(magnitude, 2)[0].argsort(dim=0)  # 4 x H/2 x W/2, flattest first
    pixels = F.pixel_unshuffle(image, 2)[0].unflatten(0, (channels, 4))  # C x 4 x H/2 x W/2
    ranked = pixels.gather(1, order[None].expand(channels, -1, -1, -1)).transpose(0, 1)  # 4 x C x H/2 x W/2
    return torch.stack([torch.stack(pair) for pair in ((ranked[0], ranked[1]), (ranked[1], ranked[0]),
                                                       (ranked[2], ranked[3]), (ranked[3], ranked[2]))])


class GradientSortedPairs:
    """gradient_sorted_pairs as a sampler for network.train_networks. Each draw picks, for
    every block on its own (per_block) or for the whole image, one of the four pairs: a
    network of 150K weights memorises four fixed half-resolution targets, noise and all,
    while per-block picks make a new pair every draw, as the bank's per-pixel draws do.
    An image that trains on crop x crop crops of its bank draws crops of half that side
    (the same view). Returns 1 x C x h x w input and target."""

    def __init__(self, noisy: torch.Tensor, crop: int | None = None, guide: torch.Tensor | None = None,
                 per_block: bool = True):
        self.pairs = gradient_sorted_pairs(noisy, guide)  # 4 x 2 x C x h x w
        self.crop = None if crop is None else crop // 2
        self.per_block = per_block

    def sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = self.pairs
        if self.crop is not None:
            height, width = pairs.shape[-2:]
            top = int(torch.randint(max(1, height - self.crop + 1), (1,), generator=generator))
            left = int(torch.randint(max(1, width - self.crop + 1), (1,), generator=generator))
            pairs = pairs[..., top:top + self.crop, left:left + self.crop]
        if self.per_block:
            choice = torch.randint(len(pairs), pairs.shape[-2:], generator=generator).to(pairs.device)  # h x w
            pair = pairs.gather(0, choice.expand(1, *pairs.shape[1:]))[0]  # 2 x C x h x w
        else:
            pair = pairs[int(torch.randint(len(pairs), (1,), generator=generator))]  # 2 x C x h x w
        return pair[0][None], pair[1][None]


class ImpulseFreeBank:
    """A bank (mm x C x H x W) whose pseudo instances leave out the elements at exactly 0
    or 1, the two values salt-and-pepper noise writes (SPEC section 1): input and target
    take each element from two different entries of its own pixel and channel that are
    neither. An element with fewer than two such entries draws from all its entries, as
    the faithful sampler does. `cleaned` (C x H x W): the noisy image with each impulse
    replaced by its best-matching entry that is not one, the network's input at read-out."""

    def __init__(self, bank: torch.Tensor):
        entries = len(bank)
        valid = (bank > 0) & (bank < 1)  # mm x C x H x W
        count = valid.sum(dim=0, keepdim=True)  # 1 x C x H x W
        usable = count >= 2
        # Per element, its valid entries first in the bank's order: order[:count] index them.
        order = torch.sort((~valid).to(torch.uint8), dim=0, stable=True).indices
        everything = torch.arange(entries, device=bank.device).view(-1, 1, 1, 1).expand_as(order)
        self.order = torch.where(usable, order, everything)
        self.count = torch.where(usable, count, entries).float()
        self.bank, self.shape, self.device = bank, bank.shape, bank.device
        self.cleaned = bank.gather(0, self.order[:1])[0]

    def sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(input, target), 1 x C x H x W each, from two different usable entries."""
        first = (torch.rand(self.count.shape, generator=generator, device=self.device) * self.count).long()
        second = (torch.rand(self.count.shape, generator=generator, device=self.device) * (self.count - 1)).long()
        second += second >= first  # 1 x C x H x W ranks among the usable entries, never the same
        return self.bank.gather(0, self.order.gather(0, first)), self.bank.gather(0, self.order.gather(0, second))


@dataclass(frozen=True)
class Pixel2PixelPlusSettings(Pixel2PixelSettings):
    """The faithful method's settings (its bank's ws, ps, nn, mm, its loss), with these
    defaults changed, each chosen on the development sweep at 128 x 128 (results/recipe/)."""
    max_epoch: int = setting(1000, "training iterations (a third of the faithful 3000, which over-train small "
                                   "images; on the development set 1000 beat 250, and 500 on average over the "
                                   "noises)")
    out_activation: str = setting("none", "on the network's output (a sigmoid can saturate into a black "
                                          "image, and cost 1.2 to 2.0 dB on the development set)",
                                  choices=("sigmoid", "none"))
    lr: float = setting(2e-3, "AdamW's learning rate (2e-3 gained 0.07 to 0.17 dB over the faithful 1e-3 on "
                              "every noise of the development set)")
    lr_milestones: tuple[int, ...] | None = setting(None, "iterations where the rate is multiplied by lr_gamma",
                                                    none="1/2, 2/3 and 5/6 of max_epoch, as the faithful "
                                                         "1500, 2000, 2500 of 3000")
    pairs_weight: float = setting(0.0, "weight of a second loss each iteration, on one of ZS-HPD's gradient-sorted "
                                       "2 x 2 pairs of neighbouring pixels (GradientSortedPairs); 0: none. The "
                                       "synthetic preset's 1.0 gained 0.47 to 0.77 dB on every synthetic noise of "
                                       "the development set at 128 x 128; it cost 0.72 on its correlated noise, "
                                       "which neighbours share, so the real preset has none")
    impulses: str | None = setting(None, "the 0s and 1s of salt-and-pepper and bernoulli noise: leave_out "
                                         "(ImpulseFreeBank: pseudo instances without them, read out on the image "
                                         "with each replaced by its best match that is not one; on the "
                                         "development set 33.46 dB against 27.85 with them at salt-and-pepper 0.1, "
                                         "128 x 128, and +0.32 at bernoulli 0.2, 256 x 256) or keep",
                                   choices=("leave_out", "keep"),
                                   none="leave_out for saltpepper and bernoulli noise, else keep")
    ensemble: int = setting(8, "pseudo instances whose outputs are averaged into the result; 0: the network "
                                "on the noisy image (the faithful read-out). 8 gained 0.8 to 0.9 dB on the "
                                "development set's correlated noise; the synthetic preset uses 0")
    blend_window: int = setting(4, "side of the windows over which the residual (noisy minus estimate) decides "
                                   "how much of the estimate to keep (residual_blend); 0: all of it. 4 beside 8, "
                                   "16 and 32, on the real preset's ensemble at 256 x 256: +5.47 dB at the "
                                   "development set's mild correlated noise (boxgauss 5), +0.59 at boxgauss 25; "
                                   "the synthetic preset, not yet measured with it, uses 0")

    def resolved(self, nt: str | None, nl: float | None) -> "Pixel2PixelPlusSettings":
        resolved = super().resolved(nt, nl)
        milestones = self.lr_milestones or tuple(round(self.max_epoch * part) for part in MILESTONE_FRACTIONS)
        impulses = self.impulses or ("leave_out" if nt in IMPULSE_NOISES else "keep")
        return dataclasses.replace(resolved, lr_milestones=milestones, impulses=impulses)

    def check(self) -> None:
        super().check()
        check([(0 <= self.ensemble <= 1000, f"--ensemble {self.ensemble}: must be between 0 and 1000"),
               (0 <= self.blend_window <= 1024, f"--blend_window {self.blend_window}: must be between 0 and 1024"),
               (0 <= self.pairs_weight <= 1e3, f"--pairs_weight {self.pairs_weight}: must be between 0 and 1000")])


# The synthetic script's: the faithful method's synthetic preset (its nn, mm rule, L1 loss),
# with this recipe's output and read-out.
PRESETS = {"syn": {**FAITHFUL_PRESETS["syn"], "out_activation": "none", "ensemble": 0, "pairs_weight": 1.0,
                   "blend_window": 0}}


@torch.no_grad()
def ensemble_estimate(model: network.Pixel2PixelNet, noisy: torch.Tensor, bank, draws: int,
                      generator: torch.Generator) -> torch.Tensor:
    """The mean of clamp(model(x)) over `draws` pseudo instances x of the training bank
    (mm x C x H x W, or an OffsetBank); with draws 0, clamp(model(noisy)). C x H x W."""
    if draws == 0:
        return network.denoise(model, noisy, INFERENCE_TILE)
    if isinstance(bank, pixel_bank.OffsetBank):
        bank = pixel_bank.OffsetBank(noisy, bank.offsets)  # the whole image, not training's crops
    total = torch.zeros_like(noisy)
    for _ in range(draws):
        instance, _ = pixel_bank.sample_pseudo_instances(bank, generator) if isinstance(bank, torch.Tensor) \
            else bank.sample(generator)  # 1 x C x H x W
        total += network.denoise(model, instance[0], INFERENCE_TILE)
    return total / draws


def residual_blend(noisy: torch.Tensor, estimate: torch.Tensor, window: int,
                   slack: float = BLEND_SLACK) -> torch.Tensor:
    """noisy + alpha * (estimate - noisy), C x H x W, with alpha per pixel the noise's share of
    the residual's energy in the window x window pixels around it: min(1, level / energy),
    level `slack` times the median of that energy over the image. Where the residual is
    noise, as in most of an image, alpha is 1; where it holds more, the estimate has also
    taken signal (a texture the bank's matches do not share) and the noisy image comes back
    in proportion, alpha = noise / (noise + error) being the mix of least squared error when
    the two are independent. A blind safeguard: no noise level is given, and a camera's
    correlated noise defeats the usual wavelet estimate of one (skimage's estimate_sigma
    reads about half the per-pixel sigma of boxgauss 25)."""
    energy = ((noisy - estimate) ** 2).mean(dim=0)[None, None]  # 1 x 1 x H x W
    before, after = (window - 1) // 2, window // 2
    padded = F.pad(energy, (before, after, before, after), mode="replicate")
    local = F.avg_pool2d(padded, window, stride=1)[0]  # 1 x H x W
    alpha = (slack * local.median() / local.clamp_min(torch.finfo(local.dtype).tiny)).clamp(max=1)
    return noisy + alpha * (estimate - noisy)


def read_out(model: network.Pixel2PixelNet, noisy: torch.Tensor, bank, settings: Settings) -> torch.Tensor:
    generator = torch.Generator(device=noisy.device).manual_seed(settings.seed)
    estimate = ensemble_estimate(model, noisy, bank, settings.params.ensemble, generator)
    window = settings.params.blend_window
    return residual_blend(noisy, estimate, window) if window else estimate


def without_impulses(noisy: torch.Tensor, bank: torch.Tensor) -> tuple[torch.Tensor, ImpulseFreeBank]:
    impulse_free = ImpulseFreeBank(bank)
    return impulse_free.cleaned, impulse_free


def denoise_together(noisy_images: list[torch.Tensor], settings: Settings, names: list[str]) -> list[Denoised]:
    pairs = GradientSortedPairs if settings.params.pairs_weight else None
    prepare = without_impulses if settings.params.impulses == "leave_out" else None
    return faithful_denoise_together(noisy_images, settings, names, estimate=read_out, pair_sampler=pairs,
                                     prepare=prepare)


def denoise(noisy: torch.Tensor, settings: Settings, name: str = "image") -> Denoised:
    return denoise_together([noisy], settings, [name])[0]


def check_image(height: int, width: int, channels: int, settings: Settings) -> int:
    if settings.params.impulses == "leave_out" and training_crop(height, width, settings.params.train_crop):
        raise UserError(f"{height} x {width} pixels trains on crops, which --impulses leave_out cannot do yet; "
                        f"pass --train_crop 0 (the whole image, more memory) or --impulses keep")
    return FAITHFUL.check_image(height, width, channels, settings)


def tag(settings: Settings) -> list[str]:
    """The faithful tag after "plus", the pairs' weight where there are pairs, "impulsefree"
    where impulses are left out and the blend's window where there is one: a run folder made
    before any of them was in the recipe is not resumed with it."""
    params = settings.params
    weight, free, window = params.pairs_weight, params.impulses == "leave_out", params.blend_window
    return ["plus", *([f"pairs{weight:g}"] if weight else []), *(["impulsefree"] if free else []),
            *([f"blend{window}"] if window else []), *faithful_tag(settings)]


# The faithful method's checks, columns and run-folder identity; its own settings and read-out.
METHOD = dataclasses.replace(FAITHFUL, settings=Pixel2PixelPlusSettings, denoise=denoise,
                             denoise_together=denoise_together, presets=PRESETS, check_image=check_image,
                             tag=tag, tagged=(*FAITHFUL.tagged, "pairs_weight", "impulses", "blend_window"))
