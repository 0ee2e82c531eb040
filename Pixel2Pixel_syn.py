"""Pixel2Pixel on synthetic noise: add noise to every clean image of a dataset,
denoise it zero-shot, and report PSNR/SSIM against the clean image.

    python Pixel2Pixel_syn.py --dataset kodak --nt gauss --nl 25
"""
from __future__ import annotations

import argparse
import os

import numpy as np

import network
import runner
import utils


def paper_mm(noise_type: str, noise_level: float) -> int:
    """Bank entries used for training, the rule the release applies (SPEC section 3):
    2 for gauss sigma 10 and for bernoulli, 4 for gauss sigma 25, 8 otherwise."""
    if noise_type == "bernoulli" or (noise_type == "gauss" and noise_level == 10):
        return 2
    if noise_type == "gauss" and noise_level == 25:
        return 4
    return 8


def parse_args(argv=None) -> argparse.Namespace:
    parser = runner.ArgumentParser(
        "Pixel2Pixel_syn.py", description="Zero-shot denoising of synthetic noise with Pixel2Pixel.")
    runner.add_common_arguments(
        parser, dataset="kodak", num_neighbors=16, loss="L1", mm_default=None,
        mm_help="bank entries used for training (default: the paper's rule, 2 for gauss 10 and "
                "bernoulli, 4 for gauss 25, 8 otherwise; an explicit value wins)")
    parser.add_argument("--nl", type=float, default=0.2,
                        help="noise level: sigma on 0..255 for gauss, lambda for poiss, drop probability "
                             "for bernoulli, half the corruption rate for saltpepper and impulse (default: 0.2)")
    parser.add_argument("--nt", default="bernoulli", choices=list(utils.NOISE_TYPES),
                        help="noise type (default: bernoulli)")
    return parser.parse_args(argv)


def main(args=None) -> dict:
    argv = None if isinstance(args, argparse.Namespace) else args
    if not isinstance(args, argparse.Namespace):
        args = parse_args(args)
    utils.check_noise_level(args.nt, args.nl)
    mm = args.mm if args.mm is not None else paper_mm(args.nt, args.nl)
    runner.check_arguments(args, mm, bank_distance=args.loss)
    device = utils.resolve_device(args.device)
    precision = network.resolve_precision(args.precision, device)
    folder = runner.dataset_folder(args)
    names = runner.list_images(folder, only=args.images)
    print(f"Using --mm {mm} ({'given' if args.mm is not None else f'paper rule for {args.nt} {args.nl:g}'})")
    tag = runner.setting_tag([args.nt, f"{args.nl:g}", f"ws{args.ws}", f"ps{args.ps}", f"nn{args.nn}", f"mm{mm}",
                              args.loss, f"it{args.max_epoch}", f"seed{args.seed}", args.bank_method,
                              precision, runner.crop_tag(args.train_crop)])
    settings = runner.Settings(
        window_size=args.ws, patch_size=args.ps, num_neighbors=args.nn, mm=mm, bank_distance=args.loss,
        loss=args.loss, out_activation="sigmoid", iterations=args.max_epoch, seed=args.seed,
        bank_method=args.bank_method, device=str(device),
        cache_dir=os.path.join(args.save, args.dataset),
        run_dir=runner.prepare_run_dir(args.out_image, args.dataset, tag, args,
                                       identity={"tag": tag, "max_retries": args.max_retries},
                                       command=runner.script_command(__file__, argv)),
        max_retries=args.max_retries, progress=not args.no_progress, precision=precision,
        batch_images=args.batch_images, shard=runner.parse_shard(args.shard),
        train_crop=runner.parse_train_crop(args.train_crop), time_limit=args.time_limit)

    def read(name: str) -> tuple[utils.Image, utils.Image]:
        clean = utils.load_image(os.path.join(folder, name))
        # Each image's noise is seeded by the run seed and its own name only.
        rng = np.random.default_rng(utils.image_seed(args.seed, name))
        noisy = utils.add_noise(clean.pixels, args.nt, args.nl, rng)
        return utils.Image(noisy, clean.bit_depth), clean

    print(f"Denoising {len(names)} image(s) of {folder}: {runner.settings_summary(settings)}", flush=True)
    return runner.run_dataset(names, read, settings)


if __name__ == "__main__":
    runner.cli(main)
