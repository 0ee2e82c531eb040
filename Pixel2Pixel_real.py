"""Zero-shot denoising of real noise: a dataset of GT/ + Noisy/ pairs with the same file
names, each noisy image denoised and scored against its ground truth; or, with --input,
your own photos (a file or a folder, any size, no ground truth).

    python Pixel2Pixel_real.py --data_path ./data --dataset PolyU
    python Pixel2Pixel_real.py --input my_photo.jpg --out_image denoised/
"""
from __future__ import annotations

import argparse

import cli
import datasets
import pipeline


def parse_args(argv=None) -> argparse.Namespace:
    parser = cli.ArgumentParser("Pixel2Pixel_real.py", description="Zero-shot denoising of real noise "
                                "(Pixel2Pixel, the faithful method, by default).")
    # The release defaults to SIDD, which it does not ship; PolyU is what it ships.
    cli.add_arguments(parser, "real", dataset="PolyU")
    parser.add_argument("--GT", default="GT", help="ground-truth folder inside the dataset (default: GT)")
    parser.add_argument("--Noisy", default="Noisy", help="noisy folder inside the dataset (default: Noisy)")
    parser.add_argument("--input", metavar="PATH",
                        help="denoise this photo, or every image of this folder, instead of a dataset: no ground "
                             "truth, no metrics; writes <name>_denoised.png, <name>_compare.png, the loss curve "
                             "and results.csv into --out_image. Any size: large photos train on crops "
                             "(--train_crop) and are denoised in tiles")
    return parser.parse_args(argv)


def main(args=None, budget=None) -> dict:
    """budget: a pipeline.TimeBudget shared with other runs (results/reproduce.py's)."""
    argv = None if isinstance(args, argparse.Namespace) else args
    if not isinstance(args, argparse.Namespace):
        args = parse_args(args)
    settings, run = cli.settings(args, "real"), cli.run_of(args)
    if args.input is not None:
        source = datasets.photos(args.input, args.images)
    else:
        source = datasets.real_pairs(datasets.dataset_folder(args.data_path, args.dataset), args.GT, args.Noisy,
                                     args.images)
    return pipeline.run(source, settings, run, cli.command(__file__, argv), budget)


if __name__ == "__main__":
    cli.run(main)
