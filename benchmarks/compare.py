"""Rerun chosen images of a run under named variants of its settings, and write a CSV of
the per-image differences.

    python -m benchmarks.compare results/tables/kodak/gauss_50_ws40_ps7_nn16_mm8_L1_it3000_seed123_shift \
        --data_path ../shared/data --images kodim01.png kodim13.png \
        --variant L2="--loss L2" --variant seed="--seed 124" --variant unclipped="--noise unclipped" \
        --report results/benchmarks/gap_kodak_gauss50.csv

A variant is NAME="FLAGS": the run's own command (from its run.json) with FLAGS added
(a later flag wins), rerun image by image into --out/NAME/; `--noise H` picks one of
NOISE_HOOKS for the synthetic noise instead. Each image is compared with the run's own
row; reruns resume from their CSVs; the report is rewritten as each image finishes. It
answers, for example: why a cell misses the paper (--loss L2; --seed 124 for chance
alone), whether a collapse is bf16's (--precision fp32), what crops cost (--train_crop
256), a CPU against a GPU's rows (--device cpu), another method (--method nlm).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shlex

import numpy as np

import cli
import Pixel2Pixel_real
import Pixel2Pixel_syn
import pipeline
import runs
import utils
from utils import UserError

SCRIPTS = {"Pixel2Pixel_syn.py": Pixel2Pixel_syn, "Pixel2Pixel_real.py": Pixel2Pixel_real}


def unclipped(clean: np.ndarray, nt: str, nl: float, rng: np.random.Generator) -> np.ndarray:
    """noise.add_noise's Gaussian draws left outside [0, 1], in case a paper did not clip."""
    if nt != "gauss":
        raise UserError("--noise unclipped: only for --nt gauss")
    return (clean + rng.standard_normal(clean.shape, dtype=np.float32) * np.float32(nl / 255.0)).astype(np.float32)


NOISE_HOOKS = {"unclipped": unclipped}
REPORT_FIELDS = ["image", "variant", "base_psnr", "psnr", "difference", "base_ssim", "ssim", "status", "attempts",
                 "seconds"]


def parse_variant(text: str) -> tuple[str, list[str], str | None]:
    """NAME=FLAGS -> (name, script flags, noise hook name or None)."""
    name, _, flags = text.partition("=")
    if not name or not name.replace("_", "").isalnum():
        raise UserError(f"--variant {text}: expected NAME=\"FLAGS\", NAME of letters, digits and _")
    try:
        words = shlex.split(flags)
    except ValueError as error:  # an unbalanced quote
        raise UserError(f"--variant {text}: {error}") from None
    hook = None
    if "--noise" in words:
        index = words.index("--noise")
        hook = words[index + 1] if index + 1 < len(words) else ""
        if hook not in NOISE_HOOKS:
            raise UserError(f"--variant {name}: --noise {hook}: choose one of {', '.join(NOISE_HOOKS)}")
        del words[index:index + 2]
    return name, words, hook


def base_command(run_dir: str) -> tuple[str, list[str]]:
    """The script and flags that made the run, less which images, where to and the split."""
    try:
        with open(os.path.join(run_dir, "run.json")) as handle:
            words = shlex.split(json.load(handle)["command"])
    except (OSError, ValueError, KeyError):
        raise UserError(f"{run_dir}: not a run folder (no readable run.json)") from None
    if len(words) < 2 or words[1] not in SCRIPTS:
        raise UserError(f"{run_dir}: run.json's command is not one of {', '.join(SCRIPTS)}")
    return words[1], cli.without(words[2:], ("--images", "--out_image", "--shard", "--time_limit", "--input"))


def write_report(path: str, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=REPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    utils.atomic_write_text(path, buffer.getvalue())


def parse_args(argv=None) -> argparse.Namespace:
    parser = cli.tool_parser("compare.py", __doc__)
    parser.add_argument("run", help="a run folder (results.csv and run.json), e.g. a table cell's")
    parser.add_argument("--variant", action="append", required=True, metavar='NAME="FLAGS"',
                        help="a named set of flags to rerun the images with; give it once per variant")
    parser.add_argument("--images", nargs="+", metavar="NAME", help="images of the run to rerun (default: all)")
    parser.add_argument("--data_path", help="where the datasets are on this machine (default: the run's)")
    parser.add_argument("--out", default="results_image/compare", help="folder of the reruns' run folders")
    parser.add_argument("--report", help="the CSV of differences, in place once every rerun has finished; "
                                         "<report>.partial.csv until then (default: <out>/<dataset>_<setting>.csv)")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    variants = [parse_variant(text) for text in args.variant]
    script_name, base_flags = base_command(args.run)
    base_rows = runs.finished_rows(args.run)
    images = args.images or sorted(base_rows)
    missing = [image for image in images if image not in base_rows]
    if missing:
        raise UserError(f"{args.run} has no row for {missing[0]}")
    folder = os.path.normpath(args.run)
    dataset, setting = os.path.basename(os.path.dirname(folder)), os.path.basename(folder)
    report = args.report or os.path.join(args.out, f"{dataset}_{setting}.csv")
    partial = f"{os.path.splitext(report)[0]}.partial.csv"
    pipeline.check_writable(os.path.dirname(report) or ".", "--report")  # before the first rerun, not after it
    data_path = ["--data_path", args.data_path] if args.data_path else []
    script = SCRIPTS[script_name]

    def variant_argv(image: str, name: str, flags: list[str]) -> list[str]:
        argv = [*base_flags, *data_path, *flags, "--images", image, "--out_image", os.path.join(args.out, name)]
        return cli.for_method(argv)  # a variant of another method drops the base's settings it lacks

    for name, flags, hook in variants:  # every variant checked before any runs
        if hook and script is not Pixel2Pixel_syn:
            raise UserError(f"--variant {name}: --noise is for synthetic noise (Pixel2Pixel_syn.py) only")
        try:
            chosen = script.parse_args(variant_argv(images[0], name, flags))
            cli.settings(chosen, "syn" if script is Pixel2Pixel_syn else "real")
        except UserError as error:
            raise UserError(f"--variant {name}: {error}") from None
    rows, skipped = [], []
    for image in images:
        base = base_rows[image]
        for name, flags, hook in variants:
            argv = variant_argv(image, name, flags)
            summary = script.main(argv, noise=NOISE_HOOKS[hook]) if hook else script.main(argv)
            skipped += summary["skipped"]
            found = runs.finished_rows(os.path.dirname(summary["csv"])).get(image)
            if found is None:
                continue
            difference = f"{float(found['psnr']) - float(base['psnr']):+.4f}" if found["psnr"] and base["psnr"] else ""
            rows.append({"image": image, "variant": name, "base_psnr": base["psnr"], "psnr": found["psnr"],
                         "difference": difference, "base_ssim": base["ssim"], "ssim": found["ssim"],
                         "status": found["status"], "attempts": found["attempts"], "seconds": found["seconds"]})
            write_report(partial, rows)
    write_report(report, rows)
    if os.path.exists(partial):
        os.remove(partial)
    for name, _, _ in variants:
        changes = [float(row["difference"]) for row in rows if row["variant"] == name and row["difference"]]
        if changes:
            print(f"{name}: {np.mean(changes):+.3f} dB on average over {len(changes)} image(s) "
                  f"({min(changes):+.3f} to {max(changes):+.3f})")
    print(f"wrote {report}")
    return {"skipped": skipped, "report": report}


if __name__ == "__main__":
    cli.run(main)
