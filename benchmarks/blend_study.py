"""Pixel2Pixel+'s residual blend (methods/pixel2pixel_plus.residual_blend) studied on the
estimates a development sweep saved (benchmarks/recipe_sweep.py --save_outputs): no
training, each saved estimate scored as it is and blended at each window and slack.

    python -m benchmarks.blend_study --outputs DIR --out results/recipe/blend256.csv \\
        --table results/recipe/blend256.md
"""
from __future__ import annotations

import argparse
import csv
import glob
import os
from collections import defaultdict

import numpy as np
import torch

import cli
import utils
from benchmarks import recipe_sweep
from methods import pixel2pixel_plus as plus

WINDOWS = (4, 8, 16, 32)
SLACKS = (1.0, 1.25, 1.5, 2.0)
FIELDS = ["variant", "noise", "image", "side", "column", "noisy_psnr", "psnr",
          *[f"w{window}_s{slack:g}" for window in WINDOWS for slack in SLACKS]]


def parse_name(path: str) -> dict:
    """DIR/VARIANT_NOISE_IMAGE_SIDE_COLUMN.npy, as recipe_sweep saves it. Variants, images
    and columns may hold underscores (lr2e-3_1500, hubble_deep_field, last_k8), noises and
    sides do not: the image is found among the sweep's photographs, and split on."""
    stem = os.path.basename(path)[:-len(".npy")]
    image = next(name for name in recipe_sweep.PHOTOGRAPHS if f"_{name}_" in stem)
    head, tail = stem.split(f"_{image}_")
    variant, noise = head.rsplit("_", 1)
    side, column = tail.split("_", 1)
    return {"variant": variant, "noise": noise, "image": image, "side": side, "column": column}


def noise_setting(name: str) -> tuple[str, float]:
    return next((nt, nl) for nt, nl in recipe_sweep.NOISES if f"{nt}{nl:g}" == name)


def study(folder: str) -> list[dict]:
    rows, crops = [], {}
    for path in sorted(glob.glob(os.path.join(folder, "*.npy"))):
        key = parse_name(path)
        side = int(key["side"])
        clean = crops.setdefault(side, recipe_sweep.development_set(side))[key["image"]]
        noisy = recipe_sweep.noisy_version(clean, key["image"], noise_setting(key["noise"]))
        estimate = np.load(path)
        row = {**key, "noisy_psnr": utils.psnr(clean, noisy), "psnr": utils.psnr(clean, estimate)}
        noisy_tensor, estimate_tensor = (utils.to_tensor(image, torch.device("cpu")) for image in (noisy, estimate))
        for window in WINDOWS:
            for slack in SLACKS:
                blended = plus.residual_blend(noisy_tensor, estimate_tensor, window, slack)
                row[f"w{window}_s{slack:g}"] = utils.psnr(clean, utils.to_numpy(blended))
        rows.append({field: f"{value:.4f}" if isinstance(value, float) else value for field, value in row.items()})
    return rows


def table(rows: list[dict]) -> str:
    """Markdown: per (variant, noise, side, column), the mean PSNR of the noisy images, the
    estimates and each blend, over the images there."""
    groups = defaultdict(list)
    for row in rows:
        groups[row["variant"], row["noise"], row["side"], row["column"]].append(row)
    scores = FIELDS[5:]
    lines = ["| variant | noise | side | read-out | images | " + " | ".join(scores) + " |",
             "|---|---|---|---|---|" + "---|" * len(scores)]
    for (variant, noise, side, column), members in sorted(groups.items()):
        means = [np.mean([float(row[field]) for row in members]) for field in scores]
        lines.append(f"| {variant} | {noise} | {side} | {column} | {len(members)} | "
                     + " | ".join(f"{mean:.2f}" for mean in means) + " |")
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    parser = cli.tool_parser("blend_study.py", __doc__)
    parser.add_argument("--outputs", required=True, help="the folder recipe_sweep --save_outputs wrote")
    parser.add_argument("--out", required=True, help="the rows, one per saved estimate (CSV)")
    parser.add_argument("--table", help="also their means as markdown")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if not os.path.isdir(args.outputs):
        raise utils.UserError(f"--outputs {args.outputs}: no such folder")
    rows = study(args.outputs)
    if not rows:
        raise utils.UserError(f"--outputs {args.outputs}: no saved estimates (*.npy) in it")
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    if args.table:
        utils.atomic_write_text(args.table, table(rows))
    return {"skipped": []}


if __name__ == "__main__":
    cli.run(main)
