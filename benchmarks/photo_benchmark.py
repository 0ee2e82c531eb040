"""What a photo of a given size costs with Pixel2Pixel_real.py --input: time of each
stage and the process's peak memory, on a synthetic noisy photo.

    python benchmarks/photo_benchmark.py --size 4000 3000 --iterations 20 --precision bf16

Block matching and inference are timed in full; training is timed for --iterations
and scaled to the paper's 3000 (every iteration costs the same: one crop, or the
whole image below the crop threshold).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import resource
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import Pixel2Pixel_real  # noqa: E402
import network  # noqa: E402
import utils  # noqa: E402


def synthetic_photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients and stripes plus Gaussian noise of sigma 20, uint8."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    clean = np.stack([np.sin(cols / 37.0), np.cos(rows / 23.0), np.sin((rows + cols) / 51.0)], axis=2) / 4 + 0.5
    noise = np.random.default_rng(seed).normal(0, 20 / 255, clean.shape).astype(np.float32)
    return np.round(np.clip(clean + noise, 0, 1) * 255).astype(np.uint8)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=[4000, 3000], metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--iterations", type=int, default=20, help="training iterations timed (default: 20)")
    parser.add_argument("--precision", default="auto", choices=list(network.PRECISIONS))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--report", help="also write the printed table to this file")
    args = parser.parse_args(argv)
    width, height = args.size
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "photo.png")
        utils.save_image(path, synthetic_photo(width, height))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        printed = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(printed):
            Pixel2Pixel_real.main(["--input", path, "--out_image", os.path.join(folder, "out"), "--max_epoch",
                                   str(args.iterations), "--precision", args.precision, "--device", args.device,
                                   "--no_progress"])
        total = time.perf_counter() - start
        growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    text = printed.getvalue()
    bank = float(re.search(r"Processed \S+ in ([\d.]+) seconds", text).group(1))
    trained = float(re.search(r"Trained and denoised \S+ in ([\d.]+) seconds", text).group(1))
    plan = re.search(r"photo\.png: (.*)", text).group(1)
    settings = re.search(r"device=(\S+), precision=(\S+)", text)
    # Training and inference were timed together: inference is the full-image part.
    per_iteration = network.measure_iteration_seconds(3, min(256, height), min(256, width), settings.group(2),
                                                      utils.resolve_device(args.device))
    inference = max(0.0, trained - per_iteration * args.iterations)
    full = bank + per_iteration * network.ITERATIONS + inference
    utils.print_report([
        f"Photo {width} x {height} RGB ({width * height / 1e6:.1f} MP), Pixel2Pixel_real.py --input, "
        f"{settings.group(1)}, {settings.group(2)}",
        f"plan: {plan}",
        f"block matching     {bank:8.1f} s",
        f"training           {per_iteration:8.4f} s/it -> {per_iteration * network.ITERATIONS / 60:6.1f} min for "
        f"{network.ITERATIONS} iterations",
        f"inference (tiles)  {inference:8.1f} s",
        f"full method        {full / 60:8.1f} min (this run: {args.iterations} iterations, {total:.0f} s)",
        f"peak memory growth {growth:8.0f} MiB",
    ], args.report)


if __name__ == "__main__":
    utils.flush_subnormals()  # as the entry scripts do, before any tensor operation
    main()
