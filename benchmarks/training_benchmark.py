"""Training speed and quality of each precision mode (issue #4).

    python benchmarks/training_benchmark.py speed            # seconds per iteration, fp32 vs bf16
    python benchmarks/training_benchmark.py quality --images kodim01.png kodim02.png kodim03.png kodim04.png

`speed` times full training iterations (sampling, forward, backward, AdamW step) on a
random bank of each size, after a warm-up, and prints the ratio to fp32.

`quality` runs Pixel2Pixel_syn.py at full length in each mode on the same images (the
same noise and, through the bank cache, the same bank), image by image so that an
interrupted run resumes where it stopped, then prints the PSNR of each mode per image
and the mean difference. With --report it also writes that table to a file.
"""
from __future__ import annotations

import argparse
import csv
import glob
import os
import platform
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import Pixel2Pixel_syn  # noqa: E402
import network  # noqa: E402
import runner  # noqa: E402
import utils  # noqa: E402

FAST_MODES = ("bf16",)


def available_modes(device: torch.device) -> list[str]:
    return ["fp32"] + [mode for mode in FAST_MODES if network.bf16_supported(device)]


def speed_modes(device: torch.device) -> dict[str, tuple[str, bool]]:
    """Label -> (precision, channels_last) to time here: each precision in the layout
    training uses, and fp32 on a CPU also in NCHW, the layout it trained in before."""
    modes = {mode: (mode, network.uses_channels_last(mode, device)) for mode in available_modes(device)}
    if device.type == "cpu":
        modes = {"fp32": modes["fp32"], "fp32 NCHW": ("fp32", False), **modes}
    return modes


def seconds_per_iteration(size: int, channels: int, precision: str, device: torch.device, iterations: int,
                          images: int = 1, channels_last: bool | None = None) -> float:
    """Seconds per training iteration per image, `images` trained together."""
    generator = torch.Generator().manual_seed(0)
    banks = [torch.rand(4, channels, size, size, generator=generator).to(device)  # mm x C x H x W
             for _ in range(images)]
    seeds = list(range(images))
    options = dict(seeds=seeds, progress=False, precision=precision, channels_last=channels_last)
    network.train_networks(banks, iterations=3, **options)  # warm-up
    utils.synchronize(device)
    start = time.perf_counter()
    network.train_networks(banks, iterations=iterations, **options)
    utils.synchronize(device)
    return (time.perf_counter() - start) / iterations / images


def speed(args: argparse.Namespace) -> list[str]:
    device = utils.resolve_device(args.device)
    lines = [f"Training speed on {runner.describe_device(device)}, torch {torch.__version__}, "
             f"{args.iterations} iterations after 3 warm-up, {args.channels} channels; per image when several train together"]
    for size in args.sizes:
        for images in args.batch_images:
            timings = {label: seconds_per_iteration(size, args.channels, precision, device, args.iterations, images,
                                                    channels_last)
                       for label, (precision, channels_last) in speed_modes(device).items()}
            for mode, seconds in timings.items():
                lines.append(f"{size:5d} x {size:<5d} {images:3d} image(s) {mode:>9}  {seconds:8.4f} s/it  "
                             f"{seconds * network.ITERATIONS:8.1f} s per {network.ITERATIONS} iterations  "
                             f"{timings['fp32'] / seconds:5.2f}x fp32")
    return lines


def run_psnr(run_dir: str, image: str) -> float | None:
    path = os.path.join(run_dir, "results.csv")
    if not os.path.exists(path):
        return None
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if row["image"] == image:
                return float(row["psnr"])
    return None


def quality(args: argparse.Namespace) -> list[str]:
    device = utils.resolve_device(args.device)
    modes = available_modes(device)
    if len(modes) < 2:
        raise SystemExit(f"{device} has no fast mode to compare with fp32")
    common = ["--data_path", args.data_path, "--dataset", args.dataset, "--nt", args.nt, "--nl", str(args.nl),
              "--max_epoch", str(args.iterations), "--device", str(device), "--out_image", args.out_image,
              "--save", os.path.join(args.out_image, "bank_cache"), "--no_progress"]
    for image in args.images:
        for mode in modes:
            Pixel2Pixel_syn.main(common + ["--precision", mode, "--images", image])
    run_dirs = {mode: glob.glob(os.path.join(args.out_image, args.dataset, f"{args.nt}_{args.nl:g}_*_{mode}"))
                for mode in modes}
    lines = [f"PSNR of each precision mode, {args.dataset} {args.nt} {args.nl:g}, {args.iterations} iterations, "
             f"same noise and bank, on {device} ({platform.processor() or platform.machine()}), "
             f"torch {torch.__version__}",
             f"{'image':<14}" + "".join(f"{mode:>10}" for mode in modes)
             + "".join(f"{mode + '-fp32':>12}" for mode in modes[1:])]
    differences = {mode: [] for mode in modes[1:]}
    for image in args.images:
        values = {mode: run_psnr(run_dirs[mode][0], image) for mode in modes}
        lines.append(f"{image:<14}" + "".join(f"{values[mode]:10.2f}" for mode in modes)
                     + "".join(f"{values[mode] - values['fp32']:+12.3f}" for mode in modes[1:]))
        for mode in modes[1:]:
            differences[mode].append(values[mode] - values["fp32"])
    for mode, values in differences.items():
        mean = sum(values) / len(values)
        lines.append(f"mean PSNR difference {mode} - fp32 over {len(values)} images: {mean:+.3f} dB")
    return lines


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--report", help="also write the printed table to this file")
    commands = parser.add_subparsers(dest="command", required=True)
    speed_parser = commands.add_parser("speed", help="seconds per iteration of each mode")
    speed_parser.add_argument("--sizes", type=int, nargs="+", default=[256], help="image sides (default: 256)")
    speed_parser.add_argument("--channels", type=int, default=3, help="image channels (default: 3)")
    speed_parser.add_argument("--iterations", type=int, default=30, help="timed iterations (default: 30)")
    speed_parser.add_argument("--batch_images", type=int, nargs="+", default=[1],
                              help="images trained together, one measurement each (default: 1)")
    quality_parser = commands.add_parser("quality", help="full-length PSNR of each mode on the same banks")
    quality_parser.add_argument("--images", nargs="+", required=True, help="file names in the dataset")
    quality_parser.add_argument("--data_path", default="./data")
    quality_parser.add_argument("--dataset", default="kodak")
    quality_parser.add_argument("--nt", default="gauss")
    quality_parser.add_argument("--nl", type=float, default=25)
    quality_parser.add_argument("--iterations", type=int, default=network.ITERATIONS)
    quality_parser.add_argument("--out_image", default="./runs/training_quality",
                                help="where the runs and their bank cache go (default: ./runs/training_quality)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    lines = speed(args) if args.command == "speed" else quality(args)
    utils.print_report(lines, args.report)


if __name__ == "__main__":
    utils.flush_subnormals()  # as the entry scripts do, before any tensor operation
    main()
