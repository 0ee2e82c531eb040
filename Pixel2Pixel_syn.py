"""Zero-shot denoising of synthetic noise: add noise to every clean image of a dataset
(seeded per image, so every method sees the same noisy image), denoise it, and score it
against the clean image with the release's PSNR and SSIM.

    python Pixel2Pixel_syn.py --dataset kodak --nt gauss --nl 25
    python Pixel2Pixel_syn.py --dataset kodak --nt gauss --nl 25 --method nlm
"""
from __future__ import annotations

import argparse

import cli
import datasets
import pipeline
from noise import NOISE_TYPES, add_noise, check_noise_level


def parse_args(argv=None) -> argparse.Namespace:
    parser = cli.ArgumentParser("Pixel2Pixel_syn.py", description="Zero-shot denoising of synthetic noise "
                                "(Pixel2Pixel, the faithful method, by default).")
    cli.add_arguments(parser, "syn", dataset="kodak")
    parser.add_argument("--nt", default="bernoulli", choices=NOISE_TYPES, help="noise type (default: bernoulli)")
    parser.add_argument("--nl", type=float, default=0.2,
                        help="noise level: sigma on 0..255 for gauss, lambda for poiss, drop probability for "
                             "bernoulli, half the corruption rate for saltpepper and impulse (default: 0.2)")
    return parser.parse_args(argv)


def main(args=None, noise=add_noise, budget=None) -> dict:
    """noise(clean, nt, nl, rng): the noise model; benchmarks/compare.py passes others.
    budget: a pipeline.TimeBudget shared with other runs (results/reproduce.py's)."""
    argv = None if isinstance(args, argparse.Namespace) else args
    if not isinstance(args, argparse.Namespace):
        args = parse_args(args)
    check_noise_level(args.nt, args.nl)
    settings, run = cli.settings(args, "syn"), cli.run_of(args)
    if settings.method == "pixel2pixel":  # the release's line
        rule = "given" if args.mm is not None else f"paper rule for {args.nt} {args.nl:g}"
        print(f"Using --mm {settings.params.mm} ({rule})")
    folder = datasets.dataset_folder(args.data_path, args.dataset)
    source = datasets.synthetic(folder, args.nt, args.nl, settings.seed, args.images, noise)
    return pipeline.run(source, settings, run, cli.command(__file__, argv), budget)


if __name__ == "__main__":
    cli.run(main)
