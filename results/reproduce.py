"""The paper's tables, cell by cell, for every method: run them, and write
results/README.md from what ran (tables and montages from the CSVs alone; why a cell
differs from the paper is written by hand in results/NOTES.md).

    python -m results.reproduce list                       # every cell and its command
    python -m results.reproduce run kodak_gauss25          # one cell, Pixel2Pixel (resumes from its CSVs)
    python -m results.reproduce run all --method nlm       # a baseline on the same noisy images
    python -m results.reproduce readme                     # results/README.md, montages, README's table

Run from the repository root: the scripts' --data_path defaults to ./data. `run` passes
any further flag (--method, --device, --data_path, --shard, ...) on to the script.
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import cli
import config
import datasets
import methods
import pipeline
import Pixel2Pixel_real
import Pixel2Pixel_syn
import runs
import utils
from methods import METHODS
from utils import UserError

TABLES = os.path.join(ROOT, "results", "tables")
SCRIPTS = {"syn": Pixel2Pixel_syn, "real": Pixel2Pixel_real}
README_TITLE = "# Reproduced results"  # the first line of every README `readme` writes
REPRODUCED_DB = 0.15  # a cell is reproduced when its mean PSNR is this close to the paper's
MONTAGE_IMAGES, MONTAGE_CROP = 4, 128  # rows of a montage; the side of each centre crop


@dataclass
class Cell:
    name: str
    script: str  # "syn" or "real"
    dataset: str
    flags: list[str]
    images: int  # in the whole dataset
    paper_psnr: float | None = None  # Pixel2Pixel as later papers quote it (SPEC section 7)
    paper_ssim: float | None = None
    published: dict = field(default_factory=dict)  # other methods' published "PSNR / SSIM" (SPEC sections 7, 8)

    @property
    def label(self) -> str:
        return f"{self.dataset} real" if self.script == "real" else f"{self.dataset} {self.flags[1]} {self.flags[3]}"

    def argv(self, tables: str = TABLES) -> list[str]:
        return ["--dataset", self.dataset, *self.flags, "--out_image", tables]

    def command(self, method: str = "pixel2pixel") -> str:
        words = self.argv("results/tables") + ([] if method == "pixel2pixel" else ["--method", method])
        return " ".join([f"python Pixel2Pixel_{self.script}.py", *words])


CELLS = [
    Cell("kodak_gauss25", "syn", "kodak", ["--nt", "gauss", "--nl", "25"], 24, 29.31, 0.8182,
         {"ZS-N2N": "29.07 / 0.7924", "ZS-HPD": "29.88 / 0.8376", "Denoising-NLR": "29.12"}),
    Cell("kodak_gauss50", "syn", "kodak", ["--nt", "gauss", "--nl", "50"], 24, 26.26, 0.7185,
         {"ZS-N2N": "24.81 / 0.6294", "ZS-HPD": "26.36 / 0.7332", "Denoising-NLR": "26.58"}),
    Cell("kodak_poiss50", "syn", "kodak", ["--nt", "poiss", "--nl", "50"], 24, 29.59, 0.8232,
         {"ZS-N2N": "29.45 / 0.8144", "ZS-HPD": "30.12 / 0.8506"}),
    Cell("mcmaster_gauss25", "syn", "McMaster", ["--nt", "gauss", "--nl", "25"], 18, 29.50,
         published={"Denoising-NLR": "30.12"}),
    Cell("mcmaster_gauss50", "syn", "McMaster", ["--nt", "gauss", "--nl", "50"], 18, 25.28,
         published={"Denoising-NLR": "27.41"}),
    Cell("mcmaster_poiss50", "syn", "McMaster", ["--nt", "poiss", "--nl", "50"], 18, 30.98, 0.8811,
         {"ZS-N2N": "30.36 / 0.8531", "ZS-HPD": "31.64 / 0.8954"}),
    Cell("polyu_real", "real", "PolyU", [], 40, 36.11, 0.9418, {"ZS-HPD": "36.24 / 0.9504", "Denoising-NLR": "36.29"}),
    Cell("kodak_gauss10", "syn", "kodak", ["--nt", "gauss", "--nl", "10"], 24),
    Cell("kodak_poiss10", "syn", "kodak", ["--nt", "poiss", "--nl", "10"], 24),
    Cell("kodak_poiss25", "syn", "kodak", ["--nt", "poiss", "--nl", "25"], 24),
    Cell("kodak_saltpepper", "syn", "kodak", ["--nt", "saltpepper", "--nl", "0.1"], 24),
    Cell("kodak_bernoulli", "syn", "kodak", ["--nt", "bernoulli", "--nl", "0.2"], 24),
    Cell("kodak_impulse", "syn", "kodak", ["--nt", "impulse", "--nl", "0.1"], 24),
]
CELLS_BY_NAME = {cell.name: cell for cell in CELLS}


def run_dir(cell: Cell, tables: str, flags: list[str]) -> str:
    """The folder the cell's script writes with these further flags (--method, --max_epoch, ...)."""
    args = SCRIPTS[cell.script].parse_args([*cell.argv(tables), "--device", "cpu", *flags])
    settings = cli.settings(args, cell.script)
    noise = ["real"] if cell.script == "real" else datasets.noise_words(args.nt, args.nl)
    return pipeline.run_folder(cli.run_of(args), settings, noise)


@dataclass
class CellRun:
    cell: Cell
    method: str
    run_dir: str
    rows: list[dict]  # sorted by image
    commit: str


def cell_run(cell: Cell, method: str, tables: str = TABLES, flags: tuple[str, ...] = ()) -> CellRun | None:
    """The cell's run by `method` with these flags (those it has); None before any row, and
    where the flags do not suit the cell (--nn 8 with real noise's mm 20)."""
    try:
        folder = run_dir(cell, tables, cli.for_method([*flags, "--method", method]))
    except UserError:
        return None
    rows = sorted(runs.finished_rows(folder).values(), key=lambda row: row["image"])
    if not rows:
        return None
    path = os.path.join(folder, "run.json")
    try:
        with open(path) as handle:
            commit = json.load(handle).get("commit", "?")
    except (OSError, ValueError, AttributeError):
        raise UserError(f"{path}: missing or damaged (not a JSON object); rerun the cell's command to rewrite it") \
            from None
    return CellRun(cell, method, folder, rows, commit)


# ----------------------------------------------------------------------------
# results/README.md
# ----------------------------------------------------------------------------
def scored(rows: list[dict], key: str = "psnr") -> list[dict]:
    """The rows that have a number there (a failed row's may be empty or nan)."""
    return [row for row in rows if row[key] not in ("", "nan")]


def mean(rows: list[dict], key: str) -> float:
    values = [float(row[key]) for row in scored(rows, key)]
    return float(np.mean(values)) if values else float("nan")


def seconds(row: dict) -> float:
    """A row's seconds: the total, or bank plus training in rows made before it was written."""
    return float(row["seconds"] or 0) or float(row.get("bank_seconds") or 0) + float(row.get("train_seconds") or 0)


def counted(values: list[str]) -> str:
    """'bf16', or 'bf16 (22), fp32 (2)' when the rows differ."""
    counts = {value: values.count(value) for value in sorted(set(values))}
    return next(iter(counts)) if len(counts) == 1 else ", ".join(f"{value} ({n})" for value, n in counts.items())


def seconds_per_image(rows: list[dict]) -> str:
    """Mean seconds per image, one per device (a CPU's and a GPU's differ a hundredfold)."""
    by_device = {device: [seconds(row) for row in rows if row["device"] == device]
                 for device in sorted({row["device"] for row in rows})}
    means = {device: float(np.mean(values)) for device, values in by_device.items()}
    shown = {device: f"{value:.0f}" if value >= 10 else f"{value:.2g}" for device, value in means.items()}
    if len(by_device) == 1:
        return next(iter(shown.values()))
    return ", ".join(f"{shown[device]} ({len(by_device[device])} on {device})" for device in shown)


def difference(cell: Cell, run: CellRun) -> str:
    """Against the paper: a verdict only once every image is done."""
    if not cell.paper_psnr:
        return ""
    if len(run.rows) < cell.images:
        return "partial"
    gap = mean(run.rows, "psnr") - cell.paper_psnr
    return f"{gap:+.2f} dB, {'reproduced' if abs(gap) <= REPRODUCED_DB else 'not reproduced'}"


def paper(cell: Cell) -> str:
    return (f"{cell.paper_psnr:.2f}" if cell.paper_psnr else "none found") + (
        f" / {cell.paper_ssim:.4f}" if cell.paper_ssim else "")


def faithful_table(found: dict, tables: str) -> list[str]:
    lines = ["| cell | paper PSNR / SSIM | ours PSNR / SSIM | difference | images | precision | device | "
             "s / image | commit |", "|---|---|---|---|---|---|---|---|---|"]
    for cell in CELLS:
        run = found[cell.name, "pixel2pixel"]
        if run is None:
            lines.append(f"| {cell.label} | {paper(cell)} | not run | | 0/{cell.images} | | | | |")
            continue
        link = os.path.relpath(run.run_dir, os.path.dirname(tables))
        lines.append(f"| [{cell.label}]({link}/) | {paper(cell)} | {mean(run.rows, 'psnr'):.2f} / "
                     f"{mean(run.rows, 'ssim'):.4f} | {difference(cell, run)} | {len(run.rows)}/{cell.images} | "
                     f"{counted([row['precision'] for row in run.rows])} | "
                     f"{', '.join(sorted({row['device'] for row in run.rows}))} | {seconds_per_image(run.rows)} | "
                     f"`{run.commit}` |")
    return lines


def methods_tables(found: dict) -> list[str]:
    """Per dataset, a row per setting: the published numbers, then PSNR / SSIM of each method
    that ran on it (with the images done where not all); each method's seconds per image."""
    lines = []
    for dataset in dict.fromkeys(cell.dataset for cell in CELLS):
        cells = [cell for cell in CELLS if cell.dataset == dataset]
        methods = [method for method in METHODS if any(found[cell.name, method] for cell in cells)]
        others = list(dict.fromkeys(name for cell in cells for name in cell.published))
        lines += [f"### {dataset}", "", "| setting | Pixel2Pixel (paper) | "
                  + "".join(f"{name} (paper) | " for name in others) + " | ".join(methods) + " |",
                  "|---" * (len(methods) + len(others) + 2) + "|"]
        for cell in cells:
            scores = []
            for method in methods:
                run = found[cell.name, method]
                part = "" if run is None or len(run.rows) == cell.images else f" ({len(run.rows)}/{cell.images})"
                scores.append("does not apply" if not applies(cell, ["--method", method]) else "" if run is None else
                              f"{mean(run.rows, 'psnr'):.2f} / {mean(run.rows, 'ssim'):.4f}{part}")
            published = [cell.published.get(name, "") for name in others]
            lines.append(f"| {cell.label.split(' ', 1)[1]} | {paper(cell).replace('none found', '')} | "
                         + " | ".join(published + scores) + " |")
        times = [seconds_per_image([row for cell in cells if found[cell.name, method]
                                    for row in found[cell.name, method].rows]) for method in methods]
        lines += ["| s / image | " + "| " * (len(others) + 1) + " | ".join(times) + " |", ""]
    return lines


def best_published(cell: Cell) -> tuple[float, str] | None:
    """The highest published zero-shot PSNR of the cell (Pixel2Pixel's included) and whose."""
    scores = {"Pixel2Pixel": cell.paper_psnr} if cell.paper_psnr else {}
    scores.update({name: float(score.split(" / ")[0]) for name, score in cell.published.items()})
    return max(((psnr, name) for name, psnr in scores.items()), default=None)


def paired_table(found: dict) -> list[str]:
    """Each other method against the faithful one on the images both scored: the mean and
    range of the per-image PSNR differences, and its own least gain over the noisy input."""
    lines = ["| cell | method | images | PSNR minus faithful | ahead | range over images | least gain over noisy | "
             "against the best published |", "|---" * 8 + "|"]
    for cell in (cell for cell in CELLS if found[cell.name, "pixel2pixel"]):
        theirs = {row["image"]: float(row["psnr"]) for row in scored(found[cell.name, "pixel2pixel"].rows)}
        best = best_published(cell)
        for method in (method for method in METHODS if method != "pixel2pixel" and found[cell.name, method]):
            run = found[cell.name, method]
            ours = [row for row in scored(run.rows) if row["image"] in theirs]
            if not ours:
                continue
            gaps = np.array([float(row["psnr"]) - theirs[row["image"]] for row in ours])
            gain = min(float(row["psnr"]) - float(row["noisy_psnr"]) for row in ours)
            against = ("" if best is None else "partial" if len(run.rows) < cell.images else
                       f"{mean(run.rows, 'psnr') - best[0]:+.2f} dB ({best[1]} {best[0]:.2f})")
            lines.append(f"| {cell.label} | {method} | {len(ours)}/{cell.images} | {gaps.mean():+.2f} dB | "
                         f"{int((gaps > 0).sum())} | {gaps.min():+.2f} to {gaps.max():+.2f} | {gain:+.2f} dB | "
                         f"{against} |")
    return lines


def find_runs(tables: str = TABLES, flags: tuple[str, ...] = ()) -> dict:
    """(cell name, method) -> its CellRun, or None."""
    return {(cell.name, method): cell_run(cell, method, tables, flags) for cell in CELLS for method in METHODS}


def readme_text(found: dict, tables: str = TABLES) -> str:
    lines = [
        README_TITLE,
        "",
        "Written by `python -m results.reproduce readme` from the CSVs under `results/tables/`; do not edit by",
        "hand. Each cell is one setting at full length (3000 iterations) with the scripts' defaults;",
        "`python -m results.reproduce run CELL [--method NAME]` runs or resumes it. Paper numbers: Pixel2Pixel as",
        "quoted by later papers (`../shared/SPEC.md` section 7). A cell is reproduced when its mean PSNR over all",
        f"its images is within {REPRODUCED_DB} dB of the paper's. Why a cell differs, and what each study found:",
        "[NOTES.md](NOTES.md), written by hand.",
        "",
        "## Pixel2Pixel, the faithful method", "",
        *faithful_table(found, tables), "",
        "Commit: the last commit that wrote to the run folder. Precision: each row's (a cell may resume on a",
        "machine that picks another; the count of each is shown). Seconds per image: bank plus training as the",
        "rows record them (images trained together share the training time), one mean per device.", "",
        "## Every method on the same noisy images", "",
        "PSNR (dB) / SSIM, computed the same way for every method (the release's: PSNR on the float output, SSIM",
        "on the 8-bit image as saved); (n/N) where only n of the N images have run.", "",
        *methods_tables(found),
        "## Against the faithful method, image by image", "",
        "On the images both have scored. Least gain over noisy: the method's worst image, its PSNR minus the",
        "noisy input's (negative: it made an image worse). Best published: the highest zero-shot PSNR above,",
        "once every image is done.", "",
        *paired_table(found), "",
        "## Cells", "",
    ]
    for cell in CELLS:
        lines += [f"### {cell.label}", "", "```bash"]
        lines += [cell.command(method) for method in METHODS if found[cell.name, method] or method == "pixel2pixel"]
        lines += ["```", ""]
        for method in METHODS:
            run = found[cell.name, method]
            if run and os.path.exists(os.path.join(run.run_dir, "montage.png")):
                link = os.path.relpath(run.run_dir, os.path.dirname(tables))
                lines += [f"![noisy, {method}, clean]({link}/montage.png)", "",
                          f"Noisy | {method} | clean, {MONTAGE_CROP} x {MONTAGE_CROP} centre crops.", ""]
    return "\n".join(lines)


def owned(path: str) -> bool:
    """Whether path is absent or a README this command wrote (it may replace it)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.readline().rstrip("\n") == README_TITLE
    except OSError as error:
        return isinstance(error, FileNotFoundError)


def centre_crop(pixels: np.ndarray, size: int) -> np.ndarray:
    height, width = pixels.shape[:2]
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    crop = pixels[top:top + size, left:left + size]
    return crop if crop.shape[2] == 3 else np.repeat(crop, 3, axis=2)


def make_montage(run: CellRun, data_path: str) -> None:
    """noisy | denoised | clean, centre crops of the first images whose PNGs are here
    (none in a clone, which holds only the CSVs)."""
    clean_folder = os.path.join(data_path, run.cell.dataset, "GT" if run.cell.script == "real" else "")
    strips = []
    for row in run.rows:
        stem = os.path.join(run.run_dir, os.path.splitext(row["image"])[0])
        paths = [f"{stem}_noisy.png", f"{stem}.png", os.path.join(clean_folder, row["image"])]
        if all(os.path.exists(path) for path in paths) and len(strips) < MONTAGE_IMAGES:
            strips.append(np.concatenate([centre_crop(utils.load_image(path).pixels, MONTAGE_CROP)
                                          for path in paths], axis=1))
    if strips:
        utils.save_image(os.path.join(run.run_dir, "montage.png"), utils.quantize(np.concatenate(strips), rounding=True))


TABLE_START = "<!-- results table: python -m results.reproduce readme copies it here from results/README.md -->"
TABLE_END = "<!-- end of results table -->"


def project_readme(path: str) -> str:
    """Read before anything is written: it must hold the markers."""
    try:
        with open(path) as handle:
            readme = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"--project_readme {path}: cannot read it ({error.strerror or error})") from None
    if TABLE_START not in readme or TABLE_END not in readme:
        raise UserError(f"--project_readme {path}: has no results-table markers")
    return readme


def with_table(readme: str, results_text: str) -> str:
    """The project README with results/README.md's faithful table between its markers."""
    table = results_text.split("## Pixel2Pixel, the faithful method\n\n", 1)[1].split("\n\n", 1)[0]
    before, rest = readme.split(TABLE_START, 1)
    table = table.replace("](tables/", "](results/tables/")
    return f"{before}{TABLE_START}\n{table}\n{TABLE_END}{rest.split(TABLE_END, 1)[1]}"


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------
def parse_args(argv=None) -> tuple[argparse.Namespace, list[str]]:
    parser = cli.ArgumentParser("reproduce.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=cli.ArgumentParser)
    commands.add_parser("list", help="every cell and its command")
    run_parser = commands.add_parser("run", help="run or resume cells; further flags go to the script")
    run_parser.add_argument("cells", nargs="+", choices=["all", *CELLS_BY_NAME], metavar="CELL",
                            help=f"cell names, or all ({', '.join(CELLS_BY_NAME)})")
    run_parser.add_argument("--time_limit", type=float, metavar="SECONDS", help="the scripts' --time_limit, for "
                            "all the cells together: exits with status 75 while images are left (default: none)")
    readme_parser = commands.add_parser("readme", help="write results/README.md and the montages; further "
                                        "flags pick runs made with other settings (default: the scripts')")
    readme_parser.add_argument("--data_path", default=os.path.join(ROOT, "data"),
                               help="where the clean images for the montages are (default: ./data)")
    readme_parser.add_argument("--project_readme", default=os.path.join(ROOT, "README.md"),
                               help="the README whose results table to update ('' for none; default: README.md)")
    for sub in (run_parser, readme_parser):
        sub.add_argument("--tables", default=TABLES, help="folder of the cells' runs (default: results/tables)")
    return parser.parse_known_args(argv)


def applies(cell: Cell, flags: list[str]) -> bool:
    """Whether the method these flags choose models the cell's noise (BM3D: not impulse noise)."""
    method = SCRIPTS[cell.script].parse_args([*cell.argv(), *flags]).method
    return methods.applies(method, None if cell.script == "real" else cell.flags[1])


def run_cells(names: list[str], tables: str, time_limit: float | None, passed_on: list[str]) -> dict:
    """The cells one after another through the scripts, under one --time_limit."""
    budget = pipeline.TimeBudget(config.Run(time_limit=time_limit).time_limit)  # checked as the scripts check it
    summary = {"skipped": []}
    for index, name in enumerate(names):
        cell = CELLS_BY_NAME[name]
        if not applies(cell, passed_on):
            print(f"== {name}: skipped, the method does not apply to this noise", flush=True)
            continue
        print(f"== {name}: {cell.command()} {' '.join(passed_on)}", flush=True)
        result = SCRIPTS[cell.script].main([*cell.argv(tables), *passed_on], budget=budget)
        summary["skipped"] += result["skipped"]
        if result.get("stopped"):
            summary["stopped"] = len(names) - index
            break
    return summary


def main(argv=None) -> dict:
    args, passed_on = parse_args(argv)
    if args.command == "list":
        if passed_on:
            raise UserError(f"unrecognized arguments: {' '.join(passed_on)}")
        for cell in CELLS:
            print(f"{cell.name:<18} {cell.command()}")
    elif args.command == "readme":
        for script in SCRIPTS.values():  # a mistyped flag is an error before anything is written
            script.parse_args([*passed_on, "--device", "cpu"])
        readme = project_readme(args.project_readme) if args.project_readme else None
        found = find_runs(args.tables, passed_on)  # every run read first: a damaged one stops it here
        path = os.path.join(os.path.dirname(os.path.abspath(args.tables)), "README.md")
        if not owned(path):
            raise UserError(f"--tables {args.tables}: the README beside it, {path}, is not one this command wrote; "
                            f"keep the tables in a folder of their own")
        for run in filter(None, found.values()):
            make_montage(run, args.data_path)
        text = readme_text(found, args.tables)  # after the montages: it links those that exist
        utils.atomic_write_text(path, text)
        print(f"wrote {path}")
        if readme is not None:
            utils.atomic_write_text(args.project_readme, with_table(readme, text))
            print(f"updated the results table in {args.project_readme}")
    else:
        return run_cells(list(CELLS_BY_NAME) if "all" in args.cells else args.cells, args.tables,
                         args.time_limit, passed_on)
    return {"skipped": []}


if __name__ == "__main__":
    cli.run(main)
