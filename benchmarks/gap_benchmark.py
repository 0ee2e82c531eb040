"""Why a table cell's mean misses the paper's: rerun some of its images with one thing changed.

    python benchmarks/gap_benchmark.py results/tables/kodak/gauss_50_ws40_ps7_nn16_mm8_L1_it3000_seed123_shift_bf16 \
        --data_path ../shared/data --images kodim01.png kodim05.png --variants seed unclipped mm4 \
        --report results/benchmarks/gap_kodak_gauss50_cpu.txt

Each variant trains the images at the cell's length with the cell's settings (read from
its run.json) except one, and is compared image by image with the cell's own results
CSV. A systematic change (noise, mm, loss, arithmetic) moves every image the same way,
so a few images say which explanations of a gap are plausible; "seed" (another run with
other noise and initial weights) shows how far chance alone moves them. Real-noise cells
(PolyU) are rerun with the real script, without the variants that change synthetic noise.
The report is rewritten after every image and read back on start, so a stopped study
resumes where it stopped; results/reproduce.py quotes it for the cell. Further flags
(--device, ...) go to the script.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import os
import re
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import Pixel2Pixel_real  # noqa: E402
import Pixel2Pixel_syn  # noqa: E402
import runner  # noqa: E402
from metric_benchmark import read_run, run_label  # noqa: E402  (benchmarks/ is on the path as the script's folder)
import utils  # noqa: E402
from utils import UserError  # noqa: E402


@contextlib.contextmanager
def unclipped_gauss_noise():
    """The hypothesis that the paper's Gaussian noise was left unclipped (the release clips)."""
    original = utils.add_noise
    utils.add_noise = functools.partial(original, clip_gauss=False)
    try:
        yield
    finally:
        utils.add_noise = original


# name -> (what it changes, the script flags that change it given the cell's arguments, context)
VARIANTS = {
    "seed": ("another run: seed + 1 (other initial weights and sampling; other noise in synthetic cells)",
             lambda cell: ["--seed", str(cell["seed"] + 1)], contextlib.nullcontext),
    "unclipped": ("Gaussian noise not clipped to [0, 1]", lambda cell: [], unclipped_gauss_noise),
    "mm2": ("--mm 2", lambda cell: ["--mm", "2"], contextlib.nullcontext),
    "mm4": ("--mm 4", lambda cell: ["--mm", "4"], contextlib.nullcontext),
    "mm8": ("--mm 8", lambda cell: ["--mm", "8"], contextlib.nullcontext),
    "mm16": ("--mm 16", lambda cell: ["--mm", "16"], contextlib.nullcontext),
    "L2": ("--loss L2 (bank distance and training loss)", lambda cell: ["--loss", "L2"], contextlib.nullcontext),
    "L1": ("--loss L1 (the training loss; in synthetic cells the bank distance too)",
           lambda cell: ["--loss", "L1"], contextlib.nullcontext),
    "fp32": ("fp32 arithmetic (the release's)", lambda cell: ["--precision", "fp32"], contextlib.nullcontext),
    "cpu": ("the same setting on a CPU against rows a GPU made (the device alone)",
            lambda cell: ["--device", "cpu"], contextlib.nullcontext),
    "noretry": ("--max_retries 0: a collapsed run is kept, as the release keeps it",
                lambda cell: ["--max_retries", "0"], contextlib.nullcontext),
}
SYNTHETIC_ONLY = {"unclipped"}  # variants that change the synthetic noise, which real cells lack
ROW = re.compile(r"^(\S+)\s+(\S+)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+([+-]\d+\.\d+)$")


def is_synthetic(arguments: dict) -> bool:
    return "nt" in arguments


def cell_flags(arguments: dict, precision: str) -> list[str]:
    """Script flags that redo the cell's setting (its resolved precision, not 'auto')."""
    if is_synthetic(arguments):
        flags = ["--dataset", arguments["dataset"], "--nt", arguments["nt"], "--nl", f"{float(arguments['nl']):g}"]
    else:
        flags = ["--dataset", arguments["dataset"], "--GT", arguments["GT"], "--Noisy", arguments["Noisy"]]
    for name in ("ws", "ps", "nn", "loss", "max_epoch", "seed", "bank_method", "max_retries", "train_crop"):
        flags += [f"--{name}", str(arguments[name])]
    if arguments.get("mm") is not None:
        flags += ["--mm", str(arguments["mm"])]
    return flags + ["--precision", precision]


def report_lines(header: str, done: dict[tuple[str, str], tuple[float, float]]) -> list[str]:
    # The image column fits the longest name (PolyU's run to 19 characters): ROW splits on spaces.
    width = max([14] + [len(image) + 2 for image, _ in done])
    lines = [header, f"{'image':<{width}}{'variant':<12}{'PSNR':>9}{'table':>9}{'diff':>9}"]
    for (image, variant), (psnr, table_psnr) in done.items():
        lines.append(f"{image:<{width}}{variant:<12}{psnr:9.4f}{table_psnr:9.4f}{psnr - table_psnr:+9.4f}")
    for variant in dict.fromkeys(variant for _, variant in done):
        differences = [psnr - table_psnr for (_, name), (psnr, table_psnr) in done.items() if name == variant]
        lines.append(f"{variant}: {np.mean(differences):+.3f} dB over {len(differences)} "
                     f"image{'' if len(differences) == 1 else 's'} "
                     f"(rms {np.sqrt(np.mean(np.square(differences))):.3f}, from {min(differences):+.3f} to "
                     f"{max(differences):+.3f}); {VARIANTS[variant][0]}")
    return lines


def read_done(report: str | None, header: str) -> dict[tuple[str, str], tuple[float, float]]:
    """Rows of an earlier run of the same study (same header), to resume it."""
    if not report or not os.path.exists(report):
        return {}
    with open(report) as handle:
        lines = handle.read().splitlines()
    if not lines or lines[0] != header:
        raise UserError(f"--report {report} holds another study ({lines[0] if lines else 'empty'}); "
                        "choose another file")
    done = {}
    for line in lines[1:]:
        match = ROW.match(line)
        if match:
            image, variant, psnr, table_psnr, _ = match.groups()
            done[(image, variant)] = (float(psnr), float(table_psnr))
    return done


def parse_args(argv=None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", help="the cell's run folder (results/tables/<dataset>/<setting>)")
    parser.add_argument("--images", nargs="+", required=True, help="file names the cell has finished")
    parser.add_argument("--variants", nargs="+", required=True, choices=list(VARIANTS))
    parser.add_argument("--data_path", default="./data")
    parser.add_argument("--out_image", default="./runs/gap_study",
                        help="where the variants' runs go (default: ./runs/gap_study)")
    parser.add_argument("--report", help="also write the table to this file (and resume from it)")
    return parser.parse_known_args(argv)


def main(argv=None) -> dict:
    args, passed_on = parse_args(argv)
    table = args.table.rstrip("/")
    arguments, table_rows = read_run(table)
    if not is_synthetic(arguments) and SYNTHETIC_ONLY & set(args.variants):
        raise UserError(f"{table} is a real-noise cell: {', '.join(sorted(SYNTHETIC_ONLY & set(args.variants)))} "
                        "changes synthetic noise only")
    script_main = Pixel2Pixel_syn.main if is_synthetic(arguments) else Pixel2Pixel_real.main
    missing = [image for image in args.images if image not in table_rows]
    if missing:
        raise UserError(f"{table} has no row for {', '.join(missing)}: run the cell on them first")
    header = (f"Gap check, {run_label(arguments)}, {arguments['max_epoch']} iterations, each variant against "
              f"{os.path.relpath(os.path.abspath(table), ROOT)} image by image")
    done = read_done(args.report, header)
    for variant in args.variants:
        _, flags, context = VARIANTS[variant]
        for image in args.images:
            if (image, variant) in done:
                continue
            row = table_rows[image]
            argv = [*cell_flags(arguments, row["precision"]), *flags(arguments), "--data_path", args.data_path,
                    "--out_image", os.path.join(args.out_image, variant), "--no_progress", *passed_on]
            with context():
                result = runner.run_one_image(script_main, argv, image)
            done[(image, variant)] = (float(result["psnr"]), float(row["psnr"]))
            if args.report:
                utils.atomic_write_text(args.report, "\n".join(report_lines(header, done)) + "\n")
    utils.print_report(report_lines(header, done), args.report)
    return {"skipped": []}


if __name__ == "__main__":
    runner.cli(main)
