"""Pixel2Pixel on real noise: a dataset of GT/ + Noisy/ pairs with the same file
names; each noisy image is denoised zero-shot and compared with its ground truth.
With --input, your own photos (a file or a folder, any size, no ground truth).

    python Pixel2Pixel_real.py --data_path ./data --dataset PolyU
    python Pixel2Pixel_real.py --input my_photo.jpg --out_image denoised/
"""
from __future__ import annotations

import argparse
import os

import network
import runner
import utils
from utils import UserError


def parse_args(argv=None) -> argparse.Namespace:
    parser = runner.ArgumentParser(
        "Pixel2Pixel_real.py", description="Zero-shot denoising of real noise with Pixel2Pixel.")
    # The release defaults to SIDD, which it does not ship; PolyU is what it ships.
    runner.add_common_arguments(parser, dataset="PolyU", num_neighbors=100, loss="L2", mm_default=20,
                                mm_help="bank entries used for training (default: 20)")
    parser.add_argument("--GT", default="GT", help="ground-truth folder inside the dataset (default: GT)")
    parser.add_argument("--Noisy", default="Noisy", help="noisy folder inside the dataset (default: Noisy)")
    parser.add_argument("--input", metavar="PATH",
                        help="denoise this photo, or every image of this folder, instead of a dataset: no ground "
                             "truth, no metrics; writes <name>_denoised.png, <name>_compare.png and the loss "
                             "curve into --out_image. Any size: large photos train on crops (--train_crop) and "
                             "are denoised in tiles")
    return parser.parse_args(argv)


def paired_names(gt_folder: str, noisy_folder: str, only: list[str] | None = None) -> list[str]:
    """The file names both folders hold; any name in one folder only is an error."""
    names = runner.list_images(noisy_folder, "--Noisy", only)
    gt_names = runner.list_images(gt_folder, "--GT", only)
    unpaired = sorted(set(names) ^ set(gt_names))
    if unpaired:
        where = noisy_folder if unpaired[0] in names else gt_folder
        raise UserError(f"{len(unpaired)} file(s) lack a partner of the same name, e.g. {unpaired[0]} in {where}; "
                        f"{os.path.basename(gt_folder)}/ and {os.path.basename(noisy_folder)}/ need the same names")
    return names


def main(args=None) -> dict:
    argv = None if isinstance(args, argparse.Namespace) else args
    if not isinstance(args, argparse.Namespace):
        args = parse_args(args)
    # The release's real script always matches with L2; --loss is the training loss only.
    runner.check_arguments(args, args.mm, bank_distance="L2")
    device = utils.resolve_device(args.device)
    precision = network.resolve_precision(args.precision, device)
    if args.input is not None:
        return denoise_input(args, device, precision)
    folder = runner.dataset_folder(args)
    gt_folder, noisy_folder = os.path.join(folder, args.GT), os.path.join(folder, args.Noisy)
    names = paired_names(gt_folder, noisy_folder, args.images)
    tag = runner.setting_tag(["real", f"ws{args.ws}", f"ps{args.ps}", f"nn{args.nn}", f"mm{args.mm}", args.loss,
                              f"it{args.max_epoch}", f"seed{args.seed}", args.bank_method,
                              precision, runner.crop_tag(args.train_crop)])
    settings = runner.Settings(
        window_size=args.ws, patch_size=args.ps, num_neighbors=args.nn, mm=args.mm, bank_distance="L2",
        loss=args.loss, out_activation="none", iterations=args.max_epoch, seed=args.seed,
        bank_method=args.bank_method, device=str(device),
        cache_dir=os.path.join(args.save, args.dataset),
        run_dir=runner.prepare_run_dir(args.out_image, args.dataset, tag, args,
                                       identity={"tag": tag, "GT": args.GT, "Noisy": args.Noisy,
                                                 "max_retries": args.max_retries},
                                       command=runner.script_command(__file__, argv)),
        max_retries=args.max_retries, progress=not args.no_progress, precision=precision,
        batch_images=args.batch_images, shard=runner.parse_shard(args.shard),
        train_crop=runner.parse_train_crop(args.train_crop), time_limit=args.time_limit)

    def read(name: str) -> tuple[utils.Image, utils.Image]:
        noisy = utils.load_image(os.path.join(noisy_folder, name))
        clean = utils.load_image(os.path.join(gt_folder, name))
        if noisy.pixels.shape != clean.pixels.shape:
            raise runner.SkippedImage(f"{name}: {args.GT} is {clean.pixels.shape[:2]} x {clean.pixels.shape[2]} "
                                      f"but {args.Noisy} is {noisy.pixels.shape[:2]} x {noisy.pixels.shape[2]}")
        return noisy, clean

    print(f"Denoising {len(names)} image(s) of {folder}: {runner.settings_summary(settings)}", flush=True)
    return runner.run_dataset(names, read, settings)


def denoise_input(args: argparse.Namespace, device, precision: str) -> dict:
    paths = runner.list_photos(args.input)
    settings = runner.Settings(
        window_size=args.ws, patch_size=args.ps, num_neighbors=args.mm, mm=args.mm, bank_distance="L2",
        loss=args.loss, out_activation="none", iterations=args.max_epoch, seed=args.seed,
        bank_method=args.bank_method, device=str(device), cache_dir="", run_dir=args.out_image,
        max_retries=args.max_retries, progress=not args.no_progress, precision=precision,
        inference_tile=runner.INFERENCE_TILE, train_crop=runner.parse_train_crop(args.train_crop),
        time_limit=args.time_limit)
    print(f"Denoising {len(paths)} photo(s) into {args.out_image}: {runner.settings_summary(settings)}", flush=True)
    return runner.denoise_photos(paths, settings)


if __name__ == "__main__":
    runner.cli(main)
