"""The paper's tables, cell by cell: run them, and write results/README.md from what ran.

    python results/reproduce.py list                       # every cell and its command
    python results/reproduce.py run kodak_gauss25          # one cell (resumes; --shard I/N splits it)
    python results/reproduce.py run all --shard 0/4        # every cell, this machine's quarter of each
    python results/reproduce.py readme                     # results/README.md, montages, metric reports

Run from the repository root: the scripts' --data_path defaults to ./data.

Runs write into results/tables/<dataset>/<setting>/ (the scripts' --out_image layout):
the CSVs and run.json are committed, the images are not, except one montage per cell.
A cell resumes from its CSVs alone, so it can be continued on any machine that has a
clone; `run` passes any further flags (--device, --precision, --data_path, ...) on to
the script.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from gap_benchmark import ROW as GAP_ROW  # noqa: E402  (the per-image rows of its reports)
import metric_benchmark  # noqa: E402
import Pixel2Pixel_real  # noqa: E402
import Pixel2Pixel_syn  # noqa: E402
import network  # noqa: E402
import runner  # noqa: E402
import utils  # noqa: E402
from utils import UserError  # noqa: E402

RESULTS = os.path.join(ROOT, "results")
TABLES = os.path.join(RESULTS, "tables")
MONTAGE_IMAGES = 4  # rows of a montage
MONTAGE_CROP = 128  # centre crop of each image in a montage, pixels
FULL_LENGTH = 3000  # a cell's runs are at the paper's full length; others are not shown


@dataclass
class Cell:
    name: str
    script: str  # "syn" or "real"
    dataset: str
    flags: list[str]
    images: int  # in the whole dataset
    paper_psnr: float | None = None  # ../shared/SPEC.md section 7
    paper_ssim: float | None = None
    note: str = ""  # what the noise level means, for cells with no published number
    others_psnr: float | None = None  # what others re-running the release report (SPEC section 7)
    extra: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        if self.script == "real":
            return f"{self.dataset} real"
        noise = dict(zip(self.flags[::2], self.flags[1::2]))
        return f"{self.dataset} {noise['--nt']} {noise['--nl']}"

    def command(self) -> str:
        return " ".join([f"python Pixel2Pixel_{self.script}.py", "--dataset", self.dataset, *self.flags,
                         "--out_image", "results/tables"])


# The paper's numbers as later papers quote them (SPEC section 7); the rest are ours only.
CELLS = [
    Cell("kodak_gauss25", "syn", "kodak", ["--nt", "gauss", "--nl", "25"], 24, 29.31, 0.8182),
    Cell("kodak_gauss50", "syn", "kodak", ["--nt", "gauss", "--nl", "50"], 24, 26.26, 0.7185),
    Cell("kodak_poiss50", "syn", "kodak", ["--nt", "poiss", "--nl", "50"], 24, 29.59, 0.8232),
    Cell("mcmaster_gauss25", "syn", "McMaster", ["--nt", "gauss", "--nl", "25"], 18, 29.50, others_psnr=28.38),
    Cell("mcmaster_gauss50", "syn", "McMaster", ["--nt", "gauss", "--nl", "50"], 18, 25.28, others_psnr=24.43),
    Cell("mcmaster_poiss50", "syn", "McMaster", ["--nt", "poiss", "--nl", "50"], 18, 30.98, 0.8811),
    Cell("polyu_real", "real", "PolyU", [], 40, 36.11, 0.9418),
    Cell("kodak_gauss10", "syn", "kodak", ["--nt", "gauss", "--nl", "10"], 24,
         note="sigma 10 on the 0-255 scale, clipped to [0, 1]"),
    Cell("kodak_poiss10", "syn", "kodak", ["--nt", "poiss", "--nl", "10"], 24,
         note="Poisson(10 x) / 10, not clipped: the lower lambda, the stronger the noise"),
    Cell("kodak_poiss25", "syn", "kodak", ["--nt", "poiss", "--nl", "25"], 24,
         note="Poisson(25 x) / 25, not clipped"),
    Cell("kodak_saltpepper", "syn", "kodak", ["--nt", "saltpepper", "--nl", "0.1"], 24,
         note="20% of values set to 0 or 1"),
    Cell("kodak_bernoulli", "syn", "kodak", ["--nt", "bernoulli", "--nl", "0.2"], 24,
         note="20% of values dropped (the release's default)"),
    Cell("kodak_impulse", "syn", "kodak", ["--nt", "impulse", "--nl", "0.1"], 24,
         note="10% of values replaced by uniform noise"),
]
CELLS_BY_NAME = {cell.name: cell for cell in CELLS}
SCRIPTS = {"syn": Pixel2Pixel_syn, "real": Pixel2Pixel_real}


# ----------------------------------------------------------------------------
# Finding what ran
# ----------------------------------------------------------------------------
@dataclass
class CellRun:
    """One run folder of a cell (one per precision mode that ran it)."""
    cell: Cell
    run_dir: str
    info: dict
    rows: list[dict]


def matches(cell: Cell, arguments: dict, iterations: int) -> bool:
    if arguments.get("dataset") != cell.dataset or arguments.get("max_epoch") != iterations:
        return False
    if cell.script == "real":
        return "nt" not in arguments
    noise = dict(zip(cell.flags[::2], cell.flags[1::2]))
    return arguments.get("nt") == noise["--nt"] and float(arguments.get("nl", -1)) == float(noise["--nl"])


def cell_runs(cell: Cell, tables: str = TABLES, iterations: int = FULL_LENGTH) -> list[CellRun]:
    runs = []
    for info_path in sorted(glob.glob(os.path.join(tables, cell.dataset, "*", "run.json"))):
        with open(info_path) as handle:
            info = json.load(handle)
        if matches(cell, info.get("arguments", {}), iterations):
            run_dir = os.path.dirname(info_path)
            rows = sorted(runner.finished_rows(run_dir).values(), key=lambda row: row["image"])
            runs.append(CellRun(cell, run_dir, info, rows))
    return runs


# ----------------------------------------------------------------------------
# Montages
# ----------------------------------------------------------------------------
def centre_crop(pixels: np.ndarray, size: int) -> np.ndarray:
    height, width = pixels.shape[:2]
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    crop = pixels[top:top + size, left:left + size]
    return crop if crop.ndim == 3 else np.repeat(crop[:, :, None], 3, axis=2)


def clean_folder(cell: Cell, data_path: str) -> str:
    return os.path.join(data_path, cell.dataset, "GT" if cell.script == "real" else "")


def make_montage(run: CellRun, data_path: str) -> str | None:
    """noisy | ours | clean, centre crops, for the first images whose PNGs are on this
    machine; None when none are (a clone holds only the CSVs)."""
    strips = []
    for row in run.rows:
        stem = os.path.splitext(row["image"])[0]
        denoised_path = os.path.join(run.run_dir, f"{stem}.png")
        noisy_path = os.path.join(run.run_dir, f"{stem}_noisy.png")
        clean_path = os.path.join(clean_folder(run.cell, data_path), row["image"])
        if not all(os.path.exists(path) for path in (denoised_path, noisy_path, clean_path)):
            continue
        tiles = [centre_crop(utils.load_image(path).pixels, MONTAGE_CROP)
                 for path in (noisy_path, denoised_path, clean_path)]
        strips.append(np.concatenate(tiles, axis=1))
        if len(strips) == MONTAGE_IMAGES:
            break
    if not strips:
        return None
    path = os.path.join(run.run_dir, "montage.png")
    utils.save_image(path, np.round(np.concatenate(strips, axis=0) * 255).astype(np.uint8))
    return path


def first_complete(runs: list[CellRun], cell: Cell) -> CellRun | None:
    """The cell's first run with all its images: the one results/README.md quotes."""
    return next((run for run in runs if run and len(run.rows) == cell.images), None)


def write_metric_report(run: CellRun, data_path: str, benchmarks: str) -> str | None:
    """benchmarks/metric_benchmark.py's report for a cell's complete run, when the cell has
    a published SSIM, written while the run's denoised PNGs are still here (a clone keeps
    only the CSVs, and then nothing is written); None when it is not written."""
    cell = run.cell
    if not cell.paper_ssim:
        return None
    needed = [metric_benchmark.denoised_path(run.run_dir, row) for row in run.rows]
    needed += [os.path.join(clean_folder(cell, data_path), row["image"]) for row in run.rows]
    if not all(os.path.exists(path) for path in needed):
        return None
    path = os.path.join(benchmarks, f"metric_conventions_{cell.name}.txt")
    utils.write_report(metric_benchmark.conventions_report(run.run_dir, data_path), path)
    return path


# ----------------------------------------------------------------------------
# results/README.md
# ----------------------------------------------------------------------------
def mean(rows: list[dict], key: str) -> float:
    return float(np.mean([float(row[key]) for row in rows]))


def describe(values: set[str]) -> str:
    return ", ".join(sorted(value for value in values if value)) or "?"


def seconds_per_image(rows: list[dict]) -> str:
    """Mean bank plus training seconds per image; one mean per device, in the device
    column's order, when a cell was run on several (a CPU's and a GPU's seconds differ
    a hundredfold, so their common mean would describe neither)."""
    by_device: dict[str, list[float]] = {}
    for row in rows:
        by_device.setdefault(row["device"], []).append(float(row["bank_seconds"]) + float(row["train_seconds"]))
    if len(by_device) == 1:
        return f"{np.mean(next(iter(by_device.values()))):.0f}"
    return ", ".join(f"{np.mean(by_device[device]):.0f} ({len(by_device[device])} on {device})"
                     for device in sorted(by_device))


REPRODUCED_DB = 0.15  # a cell is reproduced when its mean PSNR is this close to the paper's (issue #7)
COLLAPSE_MATCH_DB = REPRODUCED_DB  # the same tolerance for "our mean with one image black"


def first_run_failed(row: dict) -> bool:
    """Whether the image's first training run (seed 123, all the release runs) failed."""
    return row["attempts"] not in ("", "1")


def black_output_psnrs(cell: Cell, data_path: str) -> dict[str, float]:
    """What a run that collapsed to an all-black output scores on each clean image of
    the cell's dataset found under data_path (empty when it is not there)."""
    folder = clean_folder(cell, data_path)
    if not os.path.isdir(folder):
        return {}
    scores = {}
    for name in runner.list_images(folder):
        clean = utils.load_image(os.path.join(folder, name)).pixels
        scores[name] = utils.psnr(clean, np.zeros_like(clean))
    return scores


def noisy_input_psnrs(cell: Cell, data_path: str) -> dict[str, float]:
    """PSNR of each noisy image of a real-noise cell's dataset against its ground truth
    (empty when the dataset is not under data_path)."""
    gt_folder, noisy_folder = clean_folder(cell, data_path), os.path.join(data_path, cell.dataset, "Noisy")
    if cell.script != "real" or not (os.path.isdir(gt_folder) and os.path.isdir(noisy_folder)):
        return {}
    scores = {}
    for name in Pixel2Pixel_real.paired_names(gt_folder, noisy_folder):
        clean = utils.load_image(os.path.join(gt_folder, name)).pixels
        noisy = utils.load_image(os.path.join(noisy_folder, name)).pixels
        if clean.shape == noisy.shape:  # the scripts skip a mismatched pair; so does the mean
            scores[name] = utils.psnr(clean, noisy)
    return scores


def describe_progress(run: CellRun, data_path: str) -> list[str]:
    """README lines for a partial real-noise cell: how much the finished images gained over
    their noisy inputs, against the paper's gain over the whole set's noisy inputs, and
    where the cell would end if the other images gained as much (an estimate)."""
    cell = run.cell
    if cell.script != "real" or not cell.paper_psnr or len(run.rows) >= cell.images:
        return []
    done = len(run.rows)
    ours, noisy_done = mean(run.rows, "psnr"), mean(run.rows, "noisy_psnr")
    gains = np.array([float(row["psnr"]) - float(row["noisy_psnr"]) for row in run.rows])
    text = (f"Partial, {done} of {cell.images} images: their noisy inputs average {noisy_done:.2f} dB and ours "
            f"{ours:.2f} dB, a gain of {gains.mean():+.2f} dB (per image {gains.min():+.2f} to {gains.max():+.2f}).")
    noisy_all = noisy_input_psnrs(cell, data_path)
    if len(noisy_all) != cell.images:
        return [text + f" (The {cell.dataset} pairs are not under {data_path}: run `readme --data_path` to compare "
                       "with the paper's gain over the whole set.)", ""]
    set_noisy = float(np.mean(list(noisy_all.values())))
    projected = set_noisy + gains.mean()
    text += (f" The whole set's noisy inputs average {set_noisy:.2f} dB, and the paper's {cell.paper_psnr:.2f} dB "
             f"is a gain of {cell.paper_psnr - set_noisy:+.2f} dB over them. If the other {cell.images - done} "
             f"images gained what these did on average, the cell would end near {projected:.2f} dB "
             f"({projected - cell.paper_psnr:+.2f} against the paper)")
    if done > 1:
        # Sampling without replacement from the set's images: the finite-population correction.
        spread = 2 * gains.std(ddof=1) / np.sqrt(done) * np.sqrt((cell.images - done) / (cell.images - 1))
        text += f", give or take {spread:.2f} dB (two standard errors of the mean gain)"
    return [text + ": an estimate, not a result.", ""]


def describe_gain(run: CellRun) -> list[str]:
    """README lines for a cell with no published number: with nothing to compare against,
    what the method did to this cell's noisy inputs, and which images it helped least."""
    if run.cell.paper_psnr or not run.rows:
        return []
    ranked = sorted((float(row["psnr"]) - float(row["noisy_psnr"]), row["image"]) for row in run.rows)
    gains = [gain for gain, _ in ranked]
    least = ", ".join(f"{image} {gain:+.2f}" for gain, image in ranked[:3])
    return [f"Gain over the noisy inputs ({mean(run.rows, 'noisy_psnr'):.2f} dB on average): "
            f"{np.mean(gains):+.2f} dB on average, median {np.median(gains):+.2f}, "
            f"from {gains[0]:+.2f} to {gains[-1]:+.2f} dB; least: {least} dB.", ""]


CHECK_ROW = re.compile(r"^(\S+)\s+(fp32|bf16)\s+(\d+)\s+(.+?)\s+(\d+\.\d+)\s+(\d+\.\d+)$")


def benchmark_reports(benchmarks: str, pattern: str) -> list[tuple[str, str]]:
    """(path relative to results/, text) of each report under `benchmarks` matching pattern."""
    reports = []
    for path in sorted(glob.glob(os.path.join(benchmarks, pattern))):
        with open(path) as handle:
            reports.append((os.path.relpath(path, os.path.dirname(benchmarks)), handle.read()))
    return reports


def precision_checks(cell: Cell, benchmarks: str) -> dict[str, list[dict]]:
    """What benchmarks/collapse_benchmark.py reports under `benchmarks` for this cell's
    setting: {image: [{precision, runs, status, psnr, black, report}, ...]}."""
    checks = {}
    for report, text in benchmark_reports(benchmarks, "collapse_*.txt"):
        header, *rows = text.splitlines() or [""]
        if f", {cell.label}, " not in header:
            continue
        iterations = re.search(r"(\d+) iterations", header)
        for row in rows:
            match = CHECK_ROW.match(row)
            if match:
                image, precision, runs, status, psnr, black = match.groups()
                checks.setdefault(image, []).append(
                    {"precision": precision, "runs": runs, "status": status, "psnr": psnr, "black": black,
                     "iterations": iterations.group(1) if iterations else "?",
                     "report": report})
    return checks


def describe_checks(image: str, checks: list[dict]) -> str:
    """A README sentence on whether `image` collapses in the release's fp32 as in bf16."""
    found = "; ".join(f"{check['precision']}: {check['status']} in {check['runs']} runs of {check['iterations']} "
                      f"iterations, {check['psnr']} dB (black: {check['black']})" for check in checks)
    reports = ", ".join(sorted({f"`{check['report']}`" for check in checks}))
    fp32_statuses = [check["status"] for check in checks if check["precision"] == "fp32"]
    if fp32_statuses and "ok" not in fp32_statuses:
        verdict = "it fails in the release's fp32 arithmetic too, so the failure is the method's, not bf16's"
    elif fp32_statuses:
        verdict = "it trains in fp32, so bf16 may be to blame"
    else:
        verdict = "fp32 was not checked"
    return f" Short reruns of {image} by `benchmarks/collapse_benchmark.py` ({reports}): {found}; {verdict}."


def collapse_evidence(run: CellRun | None, cell: Cell, data_path: str, benchmarks: str | None = None) -> list[str]:
    """Whether one collapsed image explains the gap between the paper's mean and the
    mean others got re-running the release: README lines, computed from the data.
    run: this cell's run with all its images, or None; benchmarks: the folder of
    collapse_benchmark.py reports, which say whether fp32 collapses as bf16 does."""
    total = cell.images
    # The one image's score if the other total - 1 scored the paper's mean.
    implied = total * cell.others_psnr - (total - 1) * cell.paper_psnr
    lines = [f"Others re-running the release report {cell.others_psnr:.2f} dB, "
             f"{cell.paper_psnr - cell.others_psnr:.2f} dB below the paper, with one image collapsing to black "
             f"(SPEC section 7). If {total - 1} of the {total} images scored the paper's mean, the last one scored "
             f"{implied:.2f} dB."]
    black = black_output_psnrs(cell, data_path)
    if len(black) != total:
        return lines + ["", f"(The clean images are not under {data_path}: run `readme --data_path` to compare "
                            "with an all-black output.)", ""]
    closest = sorted(black, key=lambda name: abs(black[name] - implied))[:4]
    lines[-1] += (f" An all-black output scores {min(black.values()):.2f} to {max(black.values()):.2f} dB on these "
                  f"images; closest to {implied:.2f}: " + ", ".join(f"{name} {black[name]:.2f}" for name in closest)
                  + ". So one collapse can account for the gap between the paper and that report.")
    if run is None:
        return lines + [""]
    scores = {row["image"]: float(row["psnr"]) for row in run.rows}
    ours = float(np.mean(list(scores.values())))
    still_failed = [row for row in run.rows if row["status"] != "ok"]
    retried = [row["image"] for row in run.rows if first_run_failed(row) and row["status"] == "ok"]
    lines += ["", f"Our mean is {ours:.2f} dB."]
    if still_failed:
        failed_names = {row["image"] for row in still_failed}
        healthy = [score for name, score in scores.items() if name not in failed_names]
        lines[-1] += (" It already holds the release's failure: " + ", ".join(
            f"{row['image']} ({row['status']} in all {row['attempts']} training runs, {scores[row['image']]:.2f} dB; "
            f"black scores {black[row['image']]:.2f})" for row in still_failed)
            + f". The other {len(healthy)} images average {np.mean(healthy):.2f} dB "
            f"({np.mean(healthy) - cell.paper_psnr:+.2f} dB against the paper; which 256 x 256 crops the paper used "
            "is not published, ours are the centre crops).")
        checks = precision_checks(cell, benchmarks) if benchmarks else {}
        for row in still_failed:
            if checks.get(row["image"]):
                lines[-1] += describe_checks(row["image"], checks[row["image"]])
    else:
        # Our mean had image `name` collapsed to black, as the release lets it.
        if_black = {name: ours + (black[name] - scores[name]) / total for name in scores}
        matching = [name for name in sorted(if_black, key=lambda n: abs(if_black[n] - cell.others_psnr))
                    if abs(if_black[name] - cell.others_psnr) <= COLLAPSE_MATCH_DB]
        closest_ours = ", ".join(f"{name} {if_black[name]:.2f}" for name in matching[:4])
        lines[-1] += (f" Had one of our images collapsed to black it would be {min(if_black.values()):.2f} to "
                      f"{max(if_black.values()):.2f} dB, and within {COLLAPSE_MATCH_DB} dB of "
                      f"{cell.others_psnr:.2f} for {len(matching)} of the {total} images"
                      + (f" (closest: {closest_ours})." if matching else "."))
    lines[-1] += (" Rescued by a retry with another seed after a failed first run (seed 123, all the release runs): "
                  + (", ".join(retried) or "none") + ".")
    return lines + [""]


METRIC_HEADER = re.compile(r"^Metric conventions, (.+), (\d+) images, ")
METRIC_ROW = re.compile(r"^(SSIM|PSNR) (.+?)\s{2,}(\d+\.\d{4})$")
SSIM_MATCH = 0.005  # a convention "may be the paper's" when its mean SSIM is this close to the paper's


@dataclass
class MetricConventions:
    """What benchmarks/metric_benchmark.py reports for a cell; the first entry of each
    dict is the release's convention."""
    report: str
    images: int
    ssim: dict[str, float]
    psnr: dict[str, float]


def metric_conventions(cell: Cell, benchmarks: str) -> MetricConventions | None:
    """The report section under `benchmarks` for this cell over the most images, or None."""
    found = None
    for report, text in benchmark_reports(benchmarks, "metric_*.txt"):
        for section in text.split("\n\n"):
            header, *rows = section.strip().splitlines() or [""]
            match = METRIC_HEADER.match(header)
            if not match or match.group(1) != cell.label or (found and int(match.group(2)) <= found.images):
                continue
            found = MetricConventions(report, int(match.group(2)), {}, {})
            for metric, name, value in (row.groups() for row in map(METRIC_ROW.match, rows) if row):
                getattr(found, metric.lower())[name] = float(value)
    return found


def convention_means(found: MetricConventions, complete: CellRun | None) -> tuple[dict, dict, bool]:
    """(SSIM, PSNR by convention, estimated): the report's means, or, when it covers only some
    images of a complete run (the others' PNGs were not kept), each convention's mean over the
    cell estimated as the cell's own mean plus what that convention changes on the images the
    report has."""
    ssim, psnr = dict(found.ssim), dict(found.psnr)
    estimated = complete is not None and found.images < len(complete.rows)
    if estimated:
        ssim_shift = mean(complete.rows, "ssim") - next(iter(ssim.values()))
        psnr_shift = mean(complete.rows, "psnr") - next(iter(psnr.values()))
        ssim = {name: value + ssim_shift for name, value in ssim.items()}
        psnr = {name: value + psnr_shift for name, value in psnr.items()}
    return ssim, psnr, estimated


def psnr_gaps_by_convention(tables: str, iterations: int, benchmarks: str) -> dict[str, dict[str, float]]:
    """{cell label: {PSNR convention: our mean minus the paper's}} for every complete cell
    with a published PSNR and a metric report: how each convention fits the whole paper."""
    gaps = {}
    for cell in CELLS:
        found = metric_conventions(cell, benchmarks) if cell.paper_psnr and cell.paper_ssim else None
        complete = first_complete(cell_runs(cell, tables, iterations), cell) if found else None
        if complete:
            _, psnr, _ = convention_means(found, complete)
            gaps[cell.label] = {name: value - cell.paper_psnr for name, value in psnr.items()}
    return gaps


def describe_metric_conventions(cell: Cell, found: MetricConventions, complete: CellRun | None = None,
                                gaps_by_cell: dict[str, dict[str, float]] | None = None) -> list[str]:
    """README lines: our outputs' SSIM and PSNR under other conventions against the paper's;
    for a complete cell also each PSNR convention against the paper's (gaps_by_cell: the same
    for every complete cell, to show how a convention fits the other cells)."""
    ssim, psnr, estimated = convention_means(found, complete)
    scope = f"{found.images} of {cell.images} images"
    if estimated:
        scope += (f"; the other images' outputs were not kept, so each value below is our mean over all "
                  f"{len(complete.rows)} plus what that convention changes on those {found.images}, an estimate")
    (release, ours), *others = ssim.items()
    closest = min(ssim, key=lambda name: abs(ssim[name] - cell.paper_ssim))
    difference = ssim[closest] - cell.paper_ssim
    verdict = ("which may be the paper's convention" if abs(difference) <= SSIM_MATCH else
               f"no convention here gives the paper's SSIM within {SSIM_MATCH}, so the SSIM gap is not the "
               "metric's convention alone")
    (float_name, float_psnr), *other_psnrs = psnr.items()
    text = (f"Metrics (`{found.report}`, {scope}): our SSIM ({ours:.4f}) is the "
            f"release's convention, {release}. The same saved outputs under other conventions: "
            + "; ".join(f"{name} {value:.4f}" for name, value in others)
            + f". Closest to the paper's {cell.paper_ssim:.4f}: {closest} ({difference:+.4f}); {verdict}. "
            + f"PSNR: {float_psnr:.2f} dB on the {float_name} (the release's); "
            + "; ".join(f"{value:.2f} dB ({value - float_psnr:+.2f}) on the {name}" for name, value in other_psnrs)
            + ".")
    if complete is not None and cell.paper_psnr:
        text += describe_psnr_conventions(cell, psnr, gaps_by_cell or {})
    return [text, ""]


def describe_psnr_conventions(cell: Cell, psnr: dict[str, float], gaps_by_cell: dict[str, dict[str, float]]) -> str:
    """Each PSNR convention's mean against the paper's. When the release's float PSNR misses
    the paper but another convention does not, that convention could be the paper's; whether
    it is shows in how it fits the other cells, since a paper scores all its tables one way."""
    def within(gap: float) -> bool:
        return abs(gap) <= REPRODUCED_DB

    text = f" Against the paper's {cell.paper_psnr:.2f} dB: " + ", ".join(
        f"{value - cell.paper_psnr:+.2f} dB on the {name}" for name, value in psnr.items()) + "."
    (float_name, float_psnr), *others = psnr.items()
    closing = [name for name, value in others if within(value - cell.paper_psnr)]
    if not closing or within(float_psnr - cell.paper_psnr):
        return text
    text += (f" Scored on the {' or the '.join(closing)}, this cell is within {REPRODUCED_DB} dB of the paper; "
             f"the release scores the {float_name}, so this is a possible cause of the gap, not a finding.")
    fits_float = sum(within(gaps[float_name]) for gaps in gaps_by_cell.values() if float_name in gaps)
    for name in closing:
        scored = {label: gaps[name] for label, gaps in gaps_by_cell.items() if name in gaps}
        if len(scored) < 2:
            continue
        fits = sum(within(gap) for gap in scored.values())
        text += (f" On the {name}, the complete cells with a published PSNR stand at "
                 + ", ".join(f"{label} {gap:+.2f}" for label, gap in scored.items())
                 + f" dB from the paper's: {fits} of {len(scored)} within {REPRODUCED_DB} dB, against {fits_float} "
                 f"on the {float_name}" + (", so it fits the paper's tables no better than the release's scoring."
                                           if fits <= fits_float else ", so it fits the paper's tables better."))
    return text


GAP_SUMMARY = re.compile(r"^(\S+): ([+-]\d+\.\d+) dB over (\d+) images? "
                         r"\(rms (\d+\.\d+), from ([+-]\d+\.\d+) to ([+-]\d+\.\d+)\); (.+)$")


RELEASE_VARIANT = "noretry"  # the gap variant that keeps a collapsed first run, as the release does


def gap_reports(cell: Cell, benchmarks: str) -> list[tuple[str, list[str]]]:
    """(report, lines after the header) of each benchmarks/gap_benchmark.py report on this cell."""
    found = []
    for report, text in benchmark_reports(benchmarks, "gap_*.txt"):
        header, *rows = text.splitlines() or [""]
        if header.startswith(f"Gap check, {cell.label}, "):
            found.append((report, rows))
    return found


def variant_scores(cell: Cell, benchmarks: str, variant: str) -> dict[str, tuple[float, str]]:
    """{image: (PSNR, report)} of one gap variant's reruns of this cell's images."""
    scores = {}
    for report, rows in gap_reports(cell, benchmarks):
        for image, name, psnr, _, _ in (match.groups() for match in map(GAP_ROW.match, rows) if match):
            if name == variant:
                scores[image] = (float(psnr), report)
    return scores


def release_scoring(run: CellRun, cell: Cell, benchmarks: str) -> tuple[float, list[str], list[str]] | None:
    """The cell's mean as the release would score it, which keeps a failed first run: every
    image our retry rescued at the PSNR of its first run, as the gap benchmark's noretry
    variant reran it. (mean, sentences on each image, reports), or None when no image was
    rescued or one lacks that rerun."""
    rescued = [row for row in run.rows if first_run_failed(row) and row["status"] == "ok"]
    kept = variant_scores(cell, benchmarks, RELEASE_VARIANT)
    if not rescued or any(row["image"] not in kept for row in rescued):
        return None
    scores = {row["image"]: float(row["psnr"]) for row in run.rows}
    scores.update({row["image"]: kept[row["image"]][0] for row in rescued})
    sentences = [f"{row['image']} {kept[row['image']][0]:.2f} dB instead of its retry's {float(row['psnr']):.2f}"
                 for row in rescued]
    return float(np.mean(list(scores.values()))), sentences, sorted({kept[row["image"]][1] for row in rescued})


def describe_release_scoring(cell: Cell, psnr: float, sentences: list[str], reports: list[str]) -> list[str]:
    return [f"As the release scores it, keeping the first run of every image our retry rescued "
            f"({', '.join(f'`{report}`' for report in reports)}: {'; '.join(sentences)}): mean {psnr:.2f} dB"
            + (f", {psnr - cell.paper_psnr:+.2f} dB against the paper" if cell.paper_psnr else "")
            + (f", {psnr - cell.others_psnr:+.2f} dB against others' re-run of the release" if cell.others_psnr
               else "") + ".", ""]


def gap_checks(cell: Cell, benchmarks: str) -> list[dict]:
    """What benchmarks/gap_benchmark.py reports under `benchmarks` for this cell: one
    entry per variant, {report, variant, difference (mean), rms, lowest, highest, images,
    description}. The release-scoring variant is left out: it moves only failed images."""
    checks = []
    for report, rows in gap_reports(cell, benchmarks):
        for match in filter(None, map(GAP_SUMMARY.match, rows)):
            variant, difference, images, rms, lowest, highest, description = match.groups()
            if variant == RELEASE_VARIANT:
                continue
            checks.append({"report": report, "variant": variant,
                           "difference": float(difference), "images": int(images), "rms": float(rms),
                           "lowest": float(lowest), "highest": float(highest), "description": description})
    return checks


def crop_offset_summary(cell: Cell, benchmarks: str) -> tuple[str, str] | None:
    """(report, summary) of benchmarks/crop_offset_benchmark.py for this cell, or None."""
    for report, text in benchmark_reports(benchmarks, "crop_offsets_*.txt"):
        for section in text.split("\n\n"):
            header, *rows = section.strip().splitlines() or [""]
            if header.startswith(f"Crop offsets, {cell.label}, "):
                summary = next((row[len("summary: "):] for row in rows if row.startswith("summary: ")), None)
                if summary:
                    return report, summary
    return None


CROP_RANGE = re.compile(r"from ([+-]\d+\.\d+) \(\d+,\d+\) to ([+-]\d+\.\d+) \(\d+,\d+\) dB")


def reproduced_cells(tables: str, iterations: int) -> list[tuple[Cell, float]]:
    """(cell, our mean minus the paper's) of every complete cell within REPRODUCED_DB of it."""
    found = []
    for cell in CELLS:
        complete = first_complete(cell_runs(cell, tables, iterations), cell)
        difference = mean(complete.rows, "psnr") - cell.paper_psnr if complete and cell.paper_psnr else None
        if difference is not None and abs(difference) <= REPRODUCED_DB:
            found.append((cell, difference))
    return found


def describe_crop_offsets(cell: Cell, report: str, summary: str, ours: float | None,
                          reproduced: list[tuple[Cell, float]] = (), benchmarks: str = "") -> list[str]:
    """README lines quoting crop_offset_benchmark.py; with our mean (as the release scores
    it where known), whether the move it needs to meet the paper's lies in the range; and
    the other cells of the same crops that are reproduced (`reproduced_cells`), with how
    far other crops would move them where their own crop report is in `benchmarks`: a
    match that another crop would lose speaks for our crops being as hard as the paper's."""
    text = ("Which 256 x 256 crops the paper used is not published; ours are the centre crops of the 500 x 500 "
            "frames. Predicted from a proxy (the mean of the cell's own pixel bank, fitted to our PSNR image by "
            f"image, no training) for other crops of the same frames (`{report}`): {summary}.")
    found = CROP_RANGE.search(summary)
    if ours is not None and cell.paper_psnr and found:
        needed = cell.paper_psnr - ours
        lowest, highest = map(float, found.groups())
        if abs(needed) <= REPRODUCED_DB:
            text += (f" Our mean is within {REPRODUCED_DB} dB of the paper's with the centre crops ({needed:+.2f} dB "
                     f"to meet it); a crop predicted to move it further than that would lose the match.")
        else:
            text += (f" Our mean needs {needed:+.2f} dB to meet the paper's: "
                     + ("inside that range, so another crop could account for the gap"
                        if lowest - REPRODUCED_DB <= needed <= highest + REPRODUCED_DB else
                        "outside that range, so crop choice alone cannot account for it") + ".")
    for other, difference in reproduced:
        if other.dataset != cell.dataset or other is cell:
            continue
        text += f" With the same centre crops {other.label} is reproduced ({difference:+.2f} dB)"
        found = crop_offset_summary(other, benchmarks) if benchmarks else None
        shifts = CROP_RANGE.search(found[1]) if found else None
        if not shifts:
            text += "."
            continue
        lowest, highest = map(float, shifts.groups())
        text += f"; by the same proxy other crops would move its mean by {lowest:+.2f} to {highest:+.2f} dB"
        if difference + highest > REPRODUCED_DB:
            text += (", enough to lose that match: our crops are probably as hard as the paper's, which makes "
                     "the crop the less likely cause here")
        text += "."
    return [text, ""]


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def describe_guess(cell: Cell, check: dict) -> str:
    """'a guess from N images', with two standard errors of the mean change when the reruns
    say how much images scatter (sampled without replacement from the cell's images, so
    with the finite-population correction)."""
    text = f"a guess from {plural(check['images'], 'image')}"
    count = check["images"]
    if count > 1:
        variance = max(check["rms"] ** 2 - check["difference"] ** 2, 0.0) * count / (count - 1)
        spread = 2 * np.sqrt(variance / count * (cell.images - count) / (cell.images - 1))
        text += f", give or take {spread:.2f} dB"
    return text


def describe_gap_checks(cell: Cell, ours: float | None, checks: list[dict]) -> list[str]:
    """README lines: what each variant did to the images it reran, and, for a complete
    cell (ours: its mean), which variants would bring it within REPRODUCED_DB of the paper
    if every image moved as those did."""
    reports = ", ".join(sorted({f"`{check['report']}`" for check in checks}))
    # Without a published number there is no gap to explain, only the variants' effect.
    lead = "Why the mean differs" if cell.paper_psnr else "What one change does"
    text = (f"{lead}: some images rerun at full length with one thing changed ({reports}), each "
            "against this cell's run of the same image: " + "; ".join(
                f"{check['description']}: {check['difference']:+.2f} dB ({plural(check['images'], 'image')}"
                + (f", {check['lowest']:+.2f} to {check['highest']:+.2f})" if check["images"] > 1 else ")")
                for check in checks) + ".")
    for check in checks:
        if check["variant"] == "seed":
            # Two whole-cell runs differ in their means by about rms / sqrt(images) by chance.
            text += (f" By chance alone two runs of an image differ by {check['rms']:.2f} dB (rms), so two runs of "
                     f"the whole cell would differ by about {check['rms'] / np.sqrt(cell.images):.2f} dB.")
    if ours is not None and cell.paper_psnr:
        gap = ours - cell.paper_psnr
        text += f" Our mean is {gap:+.2f} dB from the paper's."
        whole = [check for check in checks if check["images"] == cell.images]
        for check in whole:
            # Rerun on every image: the cell as that variant, measured, not guessed.
            moved = gap + check["difference"]
            text += (f" Rerun on all {cell.images} images, {check['description']} scores "
                     f"{ours + check['difference']:.2f} dB, {moved:+.2f} dB from the paper's: "
                     + ("within" if abs(moved) <= REPRODUCED_DB else "not within") + f" {REPRODUCED_DB} dB.")
        partial = [check for check in checks if check not in whole]
        closing = [check for check in partial if abs(gap + check["difference"]) <= REPRODUCED_DB]
        if partial:
            nearest = min(partial, key=lambda check: abs(gap + check["difference"]))
            text += (" If every image moved as the other reruns did, "
                     + (" and ".join(f"{check['description']} would leave {gap + check['difference']:+.2f} dB "
                                     f"({describe_guess(cell, check)}: running the whole cell so would settle it)"
                                     for check in closing) if closing else
                        f"none of these alone would bring it within {REPRODUCED_DB} dB; the nearest, "
                        f"{nearest['description']}, would leave {gap + nearest['difference']:+.2f} dB "
                        f"({describe_guess(cell, nearest)})") + ".")
    return [text, ""]


def compare_with_paper(cell: Cell, psnr: float, done: int) -> str:
    """The table's difference column: a verdict only once every image is done, since a
    partial mean says little about the set's."""
    if not cell.paper_psnr:
        return ""
    if done < cell.images:
        return "partial"
    difference = psnr - cell.paper_psnr
    verdict = "reproduced" if abs(difference) <= REPRODUCED_DB else "not reproduced"
    return f"{difference:+.2f} dB, {verdict}"


def readme_text(tables: str = TABLES, iterations: int = FULL_LENGTH,
                data_path: str = os.path.join(ROOT, "data")) -> str:
    lines = [
        "# Reproduced results",
        "",
        "Written by `python results/reproduce.py readme` from the CSVs under `results/tables/`; do not edit",
        "by hand. Each cell is one setting at full length (3000 iterations) with the scripts' defaults;",
        "`python results/reproduce.py run CELL` runs or resumes it (`list` shows the cells). Paper numbers:",
        "Pixel2Pixel as quoted by later papers (`../shared/SPEC.md` section 7). A cell counts as reproduced",
        f"when its mean PSNR over all its images is within {REPRODUCED_DB} dB of the paper's; until then its",
        "difference reads `partial`.",
        "",
        "| cell | paper PSNR / SSIM | ours PSNR / SSIM | difference | images | precision | device | "
        "s / image | commit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    details = []
    benchmarks = os.path.join(os.path.dirname(tables), "benchmarks")
    reproduced = reproduced_cells(tables, iterations)
    gaps_by_cell = psnr_gaps_by_convention(tables, iterations, benchmarks)
    for cell in CELLS:
        runs = [run for run in cell_runs(cell, tables, iterations) if run.rows] or [None]
        details += [f"### {cell.label}", "", "```bash", cell.command(), "```", ""]
        if cell.note:
            details += [f"Noise: {cell.note}.", ""]
        complete = first_complete(runs, cell)
        if cell.others_psnr:
            details += collapse_evidence(complete, cell, data_path, benchmarks)
        scored = release_scoring(complete, cell, benchmarks) if complete else None
        if scored:
            details += describe_release_scoring(cell, *scored)
        crop_offsets = crop_offset_summary(cell, benchmarks)
        if crop_offsets:
            ours = scored[0] if scored else mean(complete.rows, "psnr") if complete else None
            details += describe_crop_offsets(cell, *crop_offsets, ours, reproduced, benchmarks)
        found = metric_conventions(cell, benchmarks) if cell.paper_ssim else None
        if found:
            details += describe_metric_conventions(cell, found, complete, gaps_by_cell)
        checks = gap_checks(cell, benchmarks)
        if checks:
            details += describe_gap_checks(cell, mean(complete.rows, "psnr") if complete else None, checks)
        for run in runs:
            paper = (f"{cell.paper_psnr:.2f}" if cell.paper_psnr else "none found") + (
                f" / {cell.paper_ssim:.4f}" if cell.paper_ssim else "")
            if run is None:
                lines.append(f"| {cell.label} | {paper} | not run | | 0/{cell.images} | | | | |")
                continue
            psnr, ssim = mean(run.rows, "psnr"), mean(run.rows, "ssim")
            difference = compare_with_paper(cell, psnr, len(run.rows))
            if difference and run is complete and scored:
                difference += f"; as the release scores it {compare_with_paper(cell, scored[0], len(run.rows))}"
            relative = os.path.relpath(run.run_dir, os.path.dirname(tables))
            lines.append(
                f"| [{cell.label}]({relative}/) | {paper} | {psnr:.2f} / {ssim:.4f} | {difference} | "
                f"{len(run.rows)}/{cell.images} | {describe({row['precision'] for row in run.rows})} | "
                f"{describe({row['device'] for row in run.rows})} | {seconds_per_image(run.rows)} | "
                f"`{run.info.get('commit', '?')}` |")
            details += describe_progress(run, data_path) + describe_gain(run)
            failed = [row["image"] for row in run.rows if row["status"] != "ok"]
            retried = [row["image"] for row in run.rows if first_run_failed(row)]
            if retried or failed:
                details += [f"Retrained after a failed run: {', '.join(retried) or 'none'}; "
                            f"still failed: {', '.join(failed) or 'none'}.", ""]
            if os.path.exists(os.path.join(run.run_dir, "montage.png")):
                details += [f"![noisy, ours, clean]({relative}/montage.png)", "",
                            f"Noisy | ours | clean, {MONTAGE_CROP} x {MONTAGE_CROP} centre crops.", ""]
    lines += ["", "Commit: the last commit that wrote to the run folder. Seconds per image: bank plus training,",
              "as the rows record them (images trained together share the training time), one mean per device",
              "where a cell ran on several.", "",
              "## Cells", ""] + details
    lines += ["## Other results", "",
              "- [foundation/](foundation/README.md): the first full-length runs, before the tables.",
              "- [benchmarks/](benchmarks/README.md): bank and training speed, and the precision proof.", ""]
    return "\n".join(lines)


TABLE_START = "<!-- results table: python results/reproduce.py readme copies it here from results/README.md -->"
TABLE_END = "<!-- end of results table -->"


def copy_table(results_text: str, readme_path: str) -> None:
    """Put results/README.md's table between the project README's markers."""
    table = [line for line in results_text.splitlines() if line.startswith("|")]
    with open(readme_path) as handle:
        readme = handle.read()
    if TABLE_START not in readme or TABLE_END not in readme:
        raise UserError(f"{readme_path} has no results-table markers")
    before, rest = readme.split(TABLE_START, 1)
    after = rest.split(TABLE_END, 1)[1]
    links = [line.replace("](tables/", "](results/tables/") for line in table]
    block = "\n".join([TABLE_START, "Where the tables stand ([`results/README.md`](results/README.md)):", "",
                       *links, TABLE_END])
    utils.atomic_write_text(readme_path, before + block + after)


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------
def flag_value(flags: list[str], name: str) -> str | None:
    """The value of --name in flags passed on to a script (--name V or --name=V), or None."""
    for index, flag in enumerate(flags):
        if flag == name and index + 1 < len(flags):
            return flags[index + 1]
        if flag.startswith(name + "="):
            return flag.split("=", 1)[1]
    return None


def int_flag_value(flags: list[str], name: str, default: int) -> int:
    """flag_value as a whole number; the default when absent (or not one: the script says so)."""
    value = flag_value(flags, name)
    return int(value) if value and value.isdigit() else default


def passed_iterations(passed_on: list[str]) -> int:
    return int_flag_value(passed_on, "--max_epoch", FULL_LENGTH)


def images_left(cell: Cell, tables: str, passed_on: list[str]) -> int:
    """Images of the cell that its most advanced run at this length still lacks."""
    return cell.images - max((len(run.rows) for run in cell_runs(cell, tables, passed_iterations(passed_on))),
                             default=0)


def resume_precision(cell: Cell, tables: str, passed_on: list[str]) -> str | None:
    """The precision of this cell's unfinished full-length run, so that resuming it on a
    machine whose --precision auto would choose otherwise adds to that run's folder
    instead of starting a second one. None when --precision is passed, nothing is
    unfinished, or this device cannot run that precision."""
    if flag_value(passed_on, "--precision"):
        return None
    unfinished = [run for run in cell_runs(cell, tables, passed_iterations(passed_on))
                  if 0 < len(run.rows) < cell.images]
    if not unfinished:
        return None
    run = max(unfinished, key=lambda run: len(run.rows))
    precisions = {row["precision"] for row in run.rows}
    if len(precisions) != 1:
        return None
    (precision,) = precisions
    device = utils.resolve_device(flag_value(passed_on, "--device"))
    try:
        network.resolve_precision(precision, device)
    except UserError as error:
        print(f"Not resuming {cell.name} in {precision}: {error}", flush=True)
        return None
    if network.resolve_precision("auto", device) != precision:
        print(f"Resuming {cell.name} in {precision}, the precision of its unfinished run "
              f"({len(run.rows)}/{cell.images} images); pass --precision to choose", flush=True)
    return precision


def parse_args(argv=None) -> tuple[argparse.Namespace, list[str]]:
    parser = runner.ArgumentParser("reproduce.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=runner.ArgumentParser)
    commands.add_parser("list", help="every cell and its command")
    run_parser = commands.add_parser("run", help="run or resume cells; further flags go to the script")
    run_parser.add_argument("cells", nargs="+", help=f"cell names, or all ({', '.join(CELLS_BY_NAME)})")
    run_parser.add_argument("--time_limit", type=float, metavar="SECONDS",
                            help="for all the cells together: each cell's script gets what is left (its "
                                 "--time_limit), no cell starts whose first batch would not fit in it at the "
                                 "rate images have taken, and the command exits with status 75 while images "
                                 "are left (default: none)")
    readme_parser = commands.add_parser("readme", help="write results/README.md, the montages and, for complete "
                                        "cells with a published SSIM, their metric-convention reports")
    readme_parser.add_argument("--data_path", default=os.path.join(ROOT, "data"),
                               help="where the clean images for the montages and metric reports are (default: ./data)")
    readme_parser.add_argument("--project_readme", default=os.path.join(ROOT, "README.md"),
                               help="the README whose results table to update ('' for none; default: README.md)")
    readme_parser.add_argument("--max_epoch", type=int, default=FULL_LENGTH,
                               help=f"iterations of the runs to show (default: {FULL_LENGTH})")
    for sub in (run_parser, readme_parser):
        sub.add_argument("--tables", default=TABLES, help="folder of the cells' runs (default: results/tables)")
    return parser.parse_known_args(argv)


def main(argv=None) -> dict:
    args, passed_on = parse_args(argv)
    summary = {"skipped": []}
    if args.command != "run" and passed_on:
        raise UserError(f"unrecognized arguments: {' '.join(passed_on)}")
    if args.command == "list":
        for cell in CELLS:
            print(f"{cell.name:<18} {cell.command()}")
    elif args.command == "readme":
        benchmarks = os.path.join(os.path.dirname(args.tables), "benchmarks")
        for cell in CELLS:
            runs = cell_runs(cell, args.tables, args.max_epoch)
            for run in runs:
                make_montage(run, args.data_path)
            complete = first_complete(runs, cell)
            report = write_metric_report(complete, args.data_path, benchmarks) if complete else None
            if report:
                print(f"wrote {report}")
        path = os.path.join(os.path.dirname(args.tables), "README.md")
        text = readme_text(args.tables, args.max_epoch, args.data_path)
        utils.atomic_write_text(path, text)
        print(f"wrote {path}")
        if args.project_readme:
            copy_table(text, args.project_readme)
            print(f"updated the results table in {args.project_readme}")
    else:
        names = list(CELLS_BY_NAME) if args.cells == ["all"] else args.cells
        unknown = [name for name in names if name not in CELLS_BY_NAME]
        if unknown:
            raise UserError(f"unknown cell {unknown[0]}; choose from: all, {', '.join(CELLS_BY_NAME)}")
        if args.time_limit is not None and not args.time_limit > 0:
            raise UserError(f"--time_limit {args.time_limit:g}: must be a positive number of seconds")
        batch = int_flag_value(passed_on, "--batch_images", 1)
        start, per_image = time.perf_counter(), 0.0  # the longest seconds an image has taken in this call
        for index, name in enumerate(names):
            cell = CELLS_BY_NAME[name]
            limit = []
            if args.time_limit is not None:
                left = args.time_limit - (time.perf_counter() - start)
                # The script always starts its first batch: judge that batch here.
                needed = per_image * min(batch, images_left(cell, args.tables, passed_on))
                if left <= 0 or left < needed:
                    print(f"Stopping before {name}: {left:.0f} s of --time_limit {args.time_limit:g} s left, its "
                          f"first batch would take about {needed:.0f} s; run the same command again to resume",
                          flush=True)
                    summary["stopped"] = len(names) - index  # cells not finished
                    break
                limit = ["--time_limit", f"{left:.3f}"]
            print(f"== {name}: {cell.command()} {' '.join(passed_on)}", flush=True)
            precision = resume_precision(cell, args.tables, passed_on)
            cell_start = time.perf_counter()
            result = SCRIPTS[cell.script].main(["--dataset", cell.dataset, *cell.flags, "--out_image", args.tables,
                                                *passed_on, *(["--precision", precision] if precision else []),
                                                *limit])
            summary["skipped"] += result["skipped"]
            if result["new_images"]:
                per_image = max(per_image, (time.perf_counter() - cell_start) / result["new_images"])
            if result.get("stopped"):
                summary["stopped"] = len(names) - index
                break
    return summary


if __name__ == "__main__":
    runner.cli(main)
