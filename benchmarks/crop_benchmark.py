"""What random-crop training (--train_crop) costs in PSNR against whole-image training.

    python benchmarks/crop_benchmark.py --data_path ../shared/data --dataset McMaster500 \
        --images 1.png 2.png --crop 256 --precision bf16

Runs Pixel2Pixel_syn.py at full length on the same images (same noise, same cached
bank) with whole-image training and with crops, image by image so that an interrupted
run resumes, and prints the PSNR of both and the difference per image and on average.
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import Pixel2Pixel_syn  # noqa: E402
import network  # noqa: E402
import runner  # noqa: E402
import utils  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", nargs="+", required=True, help="file names in the dataset")
    parser.add_argument("--data_path", default="./data")
    parser.add_argument("--dataset", default="McMaster500")
    parser.add_argument("--nt", default="gauss")
    parser.add_argument("--nl", type=float, default=25)
    parser.add_argument("--crop", type=int, default=256, help="crop side (default: 256)")
    parser.add_argument("--precision", default="fp32", choices=list(network.PRECISIONS))
    parser.add_argument("--iterations", type=int, default=network.ITERATIONS)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out_image", default="./runs/crop_study")
    parser.add_argument("--report", help="also write the printed table to this file")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    common = ["--data_path", args.data_path, "--dataset", args.dataset, "--nt", args.nt, "--nl", f"{args.nl:g}",
              "--max_epoch", str(args.iterations), "--precision", args.precision, "--device", args.device,
              "--out_image", args.out_image, "--save", os.path.join(args.out_image, "bank_cache"), "--no_progress"]
    rows = {}
    for image in args.images:
        for crop in ("0", str(args.crop)):
            row = runner.run_one_image(Pixel2Pixel_syn.main, common + ["--train_crop", crop], image)
            rows[(image, crop)] = (float(row["psnr"]), float(row["train_seconds"]))
    lines = [f"Whole-image vs {args.crop} x {args.crop} crop training, {args.dataset} {args.nt} {args.nl:g}, "
             f"{args.iterations} iterations, {args.precision}, same noise and bank",
             f"{'image':<10}{'whole':>9}{'crop':>9}{'crop-whole':>12}{'whole s':>10}{'crop s':>9}"]
    differences = []
    for image in args.images:
        (whole, whole_s), (crop, crop_s) = rows[(image, "0")], rows[(image, str(args.crop))]
        differences.append(crop - whole)
        lines.append(f"{image:<10}{whole:9.2f}{crop:9.2f}{crop - whole:+12.3f}{whole_s:10.0f}{crop_s:9.0f}")
    lines.append(f"mean PSNR difference crop - whole over {len(differences)} images: "
                 f"{sum(differences) / len(differences):+.3f} dB")
    utils.print_report(lines, args.report)


if __name__ == "__main__":
    utils.flush_subnormals()  # as the entry scripts do, before any tensor operation
    main()
