"""Whether an image's training collapses to a black output in the release's fp32 as in bf16.

    python benchmarks/collapse_benchmark.py --data_path ../shared/data --dataset McMaster \
        --images 8.png --iterations 300

Runs Pixel2Pixel_syn.py on each image in each precision with the same noise and bank
and the usual two retries (seeds 123, 1123, 2123), and prints per image and precision
how many training runs were made, the final status, the PSNR, and the PSNR an all-black
output scores on that image: equal PSNRs mean the output is black. Further flags (--ws,
--ps, ...) go to the script. results/reproduce.py quotes the report in results/README.md
for an image that failed in a table cell of the same setting.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import Pixel2Pixel_syn  # noqa: E402
import runner  # noqa: E402
import utils  # noqa: E402


def parse_args(argv=None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", nargs="+", required=True, help="file names in the dataset")
    parser.add_argument("--data_path", default="./data")
    parser.add_argument("--dataset", default="McMaster")
    parser.add_argument("--nt", default="gauss")
    parser.add_argument("--nl", type=float, default=25)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--iterations", type=int, default=300,
                        help="training iterations (default: 300; collapse comes within the first 50)")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--max_retries", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out_image", default="./runs/collapse_study")
    parser.add_argument("--report", help="also write the printed table to this file")
    return parser.parse_known_args(argv)


def main(argv=None) -> None:
    args, passed_on = parse_args(argv)
    common = [*passed_on, "--data_path", args.data_path, "--dataset", args.dataset, "--nt", args.nt,
              "--nl", f"{args.nl:g}", "--max_epoch", str(args.iterations), "--seed", str(args.seed),
              "--max_retries", str(args.max_retries), "--device", args.device, "--out_image", args.out_image,
              "--save", os.path.join(args.out_image, "bank_cache"), "--no_progress"]
    lines = [f"Collapse check, {args.dataset} {args.nt} {args.nl:g}, {args.iterations} iterations, "
             f"up to {1 + args.max_retries} training runs (seed {args.seed}, then +1000 each), same noise and bank",
             f"{'image':<10}{'precision':>10}{'runs':>6}  {'status':<18}{'PSNR':>8}{'black PSNR':>12}"]
    for image in args.images:
        clean = utils.load_image(os.path.join(args.data_path, args.dataset, image)).pixels
        black = utils.psnr(clean, np.zeros_like(clean))
        for precision in args.precisions:
            row = runner.run_one_image(Pixel2Pixel_syn.main, common + ["--precision", precision], image)
            lines.append(f"{image:<10}{precision:>10}{row['attempts']:>6}  {row['status']:<18}"
                         f"{float(row['psnr']):8.2f}{black:12.2f}")
    utils.print_report(lines, args.report)


if __name__ == "__main__":
    utils.flush_subnormals()  # as the entry scripts do, before any tensor operation
    main()
