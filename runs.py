"""Run folders: results CSVs written as each image finishes, their provenance (run.json),
and what a folder already holds, so that the same command resumes a run anywhere."""
from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import platform
import subprocess
import sys

import torch

from methods.interface import STATUSES
from utils import UserError, atomic_write_text

# Every method's columns; a method's own (Method.csv_fields) go between the two.
FIRST_FIELDS = ["image", "psnr", "ssim", "noisy_psnr", "seconds"]
LAST_FIELDS = ["device", "precision", "attempts", "status"]
SHARED_FIELDS = FIRST_FIELDS + LAST_FIELDS


def csv_fields(own: tuple[str, ...] = ()) -> list[str]:
    return FIRST_FIELDS + list(own) + LAST_FIELDS


def results_csv_name(shard: tuple[int, int] | None) -> str:
    """One CSV per shard, so shards never write the same file; readers take all results*.csv."""
    return "results.csv" if shard is None else f"results_shard{shard[0]}of{shard[1]}.csv"


def _number_or_empty(text: str) -> bool:
    """A damaged cell is not a number; inf (a perfect estimate's PSNR) and nan (a failed
    row's, whose status says why) are numbers."""
    try:
        return text == "" or isinstance(float(text), float)
    except ValueError:
        return False


def read_rows(path: str) -> list[dict]:
    """The complete rows of a results CSV, with every shared column ('' where an older
    version wrote none). A row cut short or damaged is left out, with a warning: it runs again."""
    try:
        # utf-8-sig: a spreadsheet's "CSV UTF-8" starts with a byte-order mark
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
            text = handle.read()
    except OSError as error:
        raise UserError(f"{path}: cannot read it ({error.strerror})") from None
    if text and not text.endswith("\n"):  # the writer ends every row: a last line without one is cut
        text = text[:text.rfind("\n") + 1]
        print(f"warning: {path}: ignoring a damaged row (the last line is cut); its image runs again",
              file=sys.stderr, flush=True)
    reader = csv.DictReader(io.StringIO(text))
    if "image" not in (reader.fieldnames or []):
        return []
    rows, has_status = [], "status" in reader.fieldnames  # older versions wrote none
    for row in reader:
        complete = None not in row and None not in row.values() and row["image"] and (
            not has_status or row["status"] in STATUSES)
        if complete and all(_number_or_empty(row.get(name) or "") for name in ("psnr", "ssim", "seconds")):
            rows.append({**row, **{name: "" for name in SHARED_FIELDS if not row.get(name)}})
        else:
            print(f"warning: {path}: ignoring a damaged row (line {reader.line_num}); its image runs again",
                  file=sys.stderr, flush=True)
    return rows


def finished_rows(run_dir: str) -> dict[str, dict]:
    """image -> its row, from every results*.csv of a run folder (all shards)."""
    rows = {}
    for name in sorted(os.listdir(run_dir)) if os.path.isdir(run_dir) else []:
        if name.startswith("results") and name.endswith(".csv"):
            for row in read_rows(os.path.join(run_dir, name)):
                rows[row["image"]] = row
    return rows


class ResultsCSV:
    """Rows added one image at a time: under a lock the file is read, the row added and the
    file replaced whole, so neither a killed run nor two writers lose a row."""

    def __init__(self, path: str, fields: list[str]):
        self.path, self.fields = path, fields
        if os.path.exists(path) and not os.path.isfile(path):
            raise UserError(f"{path} is not a file; remove it or use another --out_image")

    def add(self, row: dict) -> None:
        folder = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY)  # the run folder is the lock
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            rows = read_rows(self.path) if os.path.exists(self.path) else []
            rows = [old for old in rows if old["image"] != row["image"]] + [row]
            # The file's own columns first, in its order: an older run's CSV keeps its shape.
            fields = list(dict.fromkeys([*(name for old in rows[:-1] for name in old), *self.fields, *row]))
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n", restval="")
            writer.writeheader()
            writer.writerows(rows)
            atomic_write_text(self.path, buffer.getvalue())
        finally:
            os.close(folder)  # and with it the lock


def prepare_run_dir(run_dir: str, identity: dict, arguments: dict, command: str) -> None:
    """Make the run folder and its run.json; one holding results of other settings (those its
    name does not say: `identity`) is refused rather than mixed."""
    info_path = os.path.join(run_dir, "run.json")
    stored = None
    with contextlib.suppress(OSError, ValueError, AttributeError):
        with open(info_path) as handle:
            stored = json.load(handle).get("identity")
    # Only what this version names must match: an older identity may hold more.
    if stored is not None and any(stored.get(key, value) != value for key, value in identity.items()):
        raise UserError(f"--out_image: {run_dir} holds results made with other settings ({stored}); "
                        f"use another --out_image or remove that folder")
    try:
        os.makedirs(run_dir, exist_ok=True)
        info = {"command": command, "identity": identity, "arguments": arguments, **environment_info()}
        atomic_write_text(info_path, json.dumps(info, indent=2) + "\n")
    except OSError as error:
        raise UserError(f"--out_image {run_dir}: cannot write there ({error.strerror})") from None


def environment_info() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__)), timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"commit": commit or "unknown", "torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "processor": platform.processor() or platform.machine()}
