"""Fetch the benchmark datasets into data/, verified against checksums kept in the project.

    python -m data.download kodak mcmaster polyu

kodak     Kodak24, the 256 x 256 crops the authors' release ships   -> data/kodak/
polyu     PolyU, 40 GT/Noisy pairs of 256 x 256 crops (release)    -> data/PolyU/GT, data/PolyU/Noisy
mcmaster  McMaster18 500 x 500 frames from a public copy (TIFF)    -> data/McMaster500/ (PNG)
          and their 256 x 256 centre crops at offset (122, 122)   -> data/McMaster/

Every file is checked against data/manifest.json: the SHA-256 of its bytes, or, for a
file converted on arrival (McMaster's TIFF frames), of its pixels. A file already in
place and correct is not fetched again; an interrupted download resumes from its
partial file (HTTP Range). --base_url replaces every source's address (a mirror, or a
local server in the tests), keeping the sources' own paths.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
from tqdm import tqdm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import utils
from utils import UserError

DATA = os.path.join(ROOT, "data")
MANIFEST = os.path.join(DATA, "manifest.json")
DATASETS = ("kodak", "mcmaster", "polyu")
MCMASTER_CROP = (122, 122, 256)  # top, left, side of the crops the paper's tables use
CHUNK = 1 << 16


class ChecksumMismatch(UserError):
    pass


def read_manifest(path: str = MANIFEST) -> dict:
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read the manifest {path}: {error}") from None


def pixel_sha256(path: str) -> str:
    """Of the decoded pixels and their shape: the same for a TIFF and the PNG made from it."""
    pixels = np.ascontiguousarray(utils._read_pixels(path))
    digest = hashlib.sha256(repr((pixels.shape, str(pixels.dtype))).encode())
    digest.update(pixels.tobytes())
    return digest.hexdigest()


def checksum(entry: dict, path: str) -> str:
    """As the entry keeps it: of the bytes, or of the pixels for a file converted on arrival."""
    try:
        return utils.file_sha256(path) if "sha256" in entry else pixel_sha256(path)
    except (OSError, UserError):
        return "unreadable"


def is_in_place(entry: dict, dest: str) -> bool:
    path = os.path.join(dest, entry["local"])
    return os.path.exists(path) and checksum(entry, path) == entry.get("sha256", entry.get("pixel_sha256"))


def fetch(url: str, partial: str, description: str, timeout: float) -> None:
    """Download url into partial, continuing from what partial already holds."""
    have = os.path.getsize(partial) if os.path.exists(partial) else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing after what we have: it was complete
            return
        raise UserError(f"{url}: the server answered {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise UserError(f"cannot reach {urllib.parse.urlsplit(url).netloc} ({getattr(error, 'reason', error)}); "
                        f"are you offline? --base_url points at a mirror") from None
    with response:
        resumed = response.status == 206
        have = have if resumed else 0  # else the server ignored the range: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(partial, "ab" if resumed else "wb") as handle, \
                tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=description, leave=False,
                     disable=None) as bar:
            try:
                for block in iter(lambda: response.read(CHUNK), b""):
                    handle.write(block)
                    bar.update(len(block))
            except OSError as error:
                raise UserError(f"{url}: the connection broke ({error}); run the same command again to "
                                f"resume") from None


def install(entry: dict, manifest: dict, dest: str, base_url: str | None, timeout: float) -> None:
    """Fetch, verify and put one file in place; a file that fails its check is removed."""
    final = os.path.join(dest, entry["local"])
    staging = os.path.join(dest, ".downloads", entry["source"], entry["path"])
    os.makedirs(os.path.dirname(staging), exist_ok=True)
    partial = staging + ".part"
    url = (base_url or manifest["sources"][entry["source"]]).rstrip("/") + "/" + urllib.parse.quote(entry["path"])
    fetch(url, partial, os.path.basename(entry["path"]), timeout)
    # The decoders choose by file extension: the finished file takes its own name.
    os.replace(partial, staging)
    found, expected = checksum(entry, staging), entry.get("sha256", entry.get("pixel_sha256"))
    if found != expected:
        os.remove(staging)
        raise ChecksumMismatch(f"{entry['path']}: checksum mismatch (expected {expected[:16]}..., got {found[:16]}"
                               f"...); the source changed or the transfer was corrupted, so it was deleted")
    os.makedirs(os.path.dirname(final), exist_ok=True)
    if "sha256" in entry:
        os.replace(staging, final)
    else:  # converted on arrival (TIFF -> PNG); its pixels were checked above
        utils.save_image(final, utils._read_pixels(staging))
        os.remove(staging)


def make_mcmaster_crops(dest: str, entries: list[dict]) -> None:
    top, left, side = MCMASTER_CROP
    os.makedirs(os.path.join(dest, "McMaster"), exist_ok=True)
    for entry in entries:
        frame = utils._read_pixels(os.path.join(dest, entry["local"]))
        crop = np.ascontiguousarray(frame[top:top + side, left:left + side])
        if crop.shape[:2] != (side, side):
            raise UserError(f"{entry['local']}: {frame.shape[0]} x {frame.shape[1]} is too small for the "
                            f"{side} x {side} crop at ({top}, {left})")
        utils.save_image(os.path.join(dest, "McMaster", os.path.basename(entry["local"])), crop)


def download(datasets: list[str], dest: str = DATA, base_url: str | None = None, manifest_path: str = MANIFEST,
             timeout: float = 30.0) -> dict[str, int]:
    """Returns, per dataset, how many files were fetched (0: all were in place)."""
    manifest, fetched = read_manifest(manifest_path), {}
    try:
        os.makedirs(dest, exist_ok=True)
        if not os.access(dest, os.W_OK):
            raise PermissionError(13, "permission denied", dest)
        for dataset in datasets:
            entries = manifest["datasets"][dataset]
            missing = [entry for entry in entries if not is_in_place(entry, dest)]
            for entry in tqdm(missing, desc=dataset, unit="file", disable=None):
                install(entry, manifest, dest, base_url, timeout)
            if dataset == "mcmaster":
                make_mcmaster_crops(dest, entries)
            fetched[dataset] = len(missing)
            print(f"{dataset}: {len(entries)} files in place ({len(missing)} fetched)", flush=True)
    except OSError as error:  # an unwritable or full --dest: one line, a partial file resumes
        raise UserError(f"--dest {dest}: cannot write {error.filename or 'there'} ({error.strerror})") from None
    shutil.rmtree(os.path.join(dest, ".downloads"), ignore_errors=True)
    return fetched


def make_manifest(folder: str, path: str = MANIFEST) -> None:
    """Maintainers: the manifest's checksums again, from verified local copies laid out as data/."""
    manifest = read_manifest(path)
    for entry in (entry for entries in manifest["datasets"].values() for entry in entries):
        found = checksum(entry, os.path.join(folder, entry["local"]))
        if found == "unreadable":
            raise UserError(f"--make_manifest {folder}: {entry['local']} is missing or unreadable")
        entry["sha256" if "sha256" in entry else "pixel_sha256"] = found
    utils.atomic_write_text(path, json.dumps(manifest, indent=1) + "\n")


def parse_args(argv=None) -> argparse.Namespace:
    from cli import tool_parser

    parser = tool_parser("download.py", __doc__)
    parser.add_argument("datasets", nargs="*", type=str.lower, metavar="DATASET", help=f"any of {', '.join(DATASETS)}")
    parser.add_argument("--dest", default=DATA, help="where the dataset folders go (default: data/)")
    parser.add_argument("--base_url", help="fetch every file from this address instead of its source, keeping "
                                           "the source's path (a mirror; the tests' local server)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a server (default: 30)")
    parser.add_argument("--manifest", default=MANIFEST, help=argparse.SUPPRESS)
    parser.add_argument("--make_manifest", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = [name for name in args.datasets if name not in DATASETS]
    if unknown:
        raise UserError(f"unknown dataset {unknown[0]}; choose from {', '.join(DATASETS)}")
    if not args.datasets and not args.make_manifest:
        raise UserError(f"name the datasets to fetch: {', '.join(DATASETS)}")
    if args.base_url is not None:
        parts = urllib.parse.urlsplit(args.base_url)
        if not (parts.scheme in ("http", "https") and parts.netloc or parts.scheme == "file"):
            raise UserError(f"--base_url {args.base_url}: expected an http://, https:// or file:// address")
    if not args.timeout > 0:
        raise UserError(f"--timeout {args.timeout}: must be a positive number of seconds")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.make_manifest:
        make_manifest(args.make_manifest, args.manifest)
        return {"skipped": []}
    download(args.datasets, args.dest, args.base_url, args.manifest, args.timeout)
    return {"skipped": []}


if __name__ == "__main__":
    import cli

    cli.run(main)
