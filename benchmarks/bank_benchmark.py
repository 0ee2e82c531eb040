"""Time and peak memory of pixel-bank construction.

    python benchmarks/bank_benchmark.py [--image PATH] [--sizes 256 1024 2048]

On one 256 x 256 RGB image (ws 40, ps 7, nn 16, L1, Gaussian noise sigma 25) it runs, each
in a fresh process so that peak memories do not mix:
  release  the released algorithm as released: 64 x 64 blocks, every temporary kept
           (measured only for sides that are multiples of 64, as released);
  unfold   our tiled unfold method (1 GiB budget), the reference;
  shift    our per-offset method, the default;
then prints the ratios and checks that the banks agree, and times the shift method
alone on larger images made by mirroring the photo.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import pixel_bank  # noqa: E402
import utils  # noqa: E402


def release_match(noisy: torch.Tensor, ws: int, ps: int, nn: int, distance: str):
    """The release's block loop, kept to measure its cost: 64 x 64 blocks, every
    candidate patch of a block materialised, no temporaries reused."""
    channels, height, width = noisy.shape
    block = 64
    pad = ws // 2 + ps // 2
    padded = F.pad(noisy[None], (pad, pad, pad, pad), mode="reflect")
    patches = F.unfold(padded, kernel_size=ps).view(1, channels * ps * ps, height + ws, width + ws)
    results = []
    for by in range(height // block):
        for bx in range(width // block):
            sub = patches[..., by * block:(by + 1) * block + ws, bx * block:(bx + 1) * block + ws]
            windows = F.unfold(sub[..., :-1, :-1] if ws % 2 == 0 else sub, kernel_size=ws)
            windows = windows.view(1, channels * ps * ps, ws * ws, block, block)
            centre = sub[..., ws // 2:ws // 2 + block, ws // 2:ws // 2 + block].unsqueeze(2)
            dist = ((centre - windows) ** 2 if distance == "L2" else (centre - windows).abs()).sum(dim=1)
            results.append(torch.topk(dist, k=nn, dim=1, largest=False, sorted=True))
    return results


def make_image(path: str | None, size: int) -> np.ndarray:
    if path:
        photo = utils.load_image(path).pixels
    else:
        from skimage import data as skdata
        photo = skdata.astronaut()[100:356, 150:406].astype(np.float32) / 255
    reps = (size + photo.shape[0] - 1) // photo.shape[0]
    big = np.pad(photo, ((0, (reps - 1) * photo.shape[0]), (0, (reps - 1) * photo.shape[1]), (0, 0)),
                 mode="symmetric")
    return np.ascontiguousarray(big[:size, :size])


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(method: str, image_path: str | None, size: int, ws: int, ps: int, nn: int, distance: str,
           save: str | None) -> dict:
    clean = make_image(image_path, size)
    noisy = utils.add_noise(clean, "gauss", 25, np.random.default_rng(0))
    tensor = utils.to_tensor(noisy, "cpu")
    before = current_rss_bytes()
    start = time.perf_counter()
    if method == "release":
        release_match(tensor, ws, ps, nn, distance)
    else:
        offsets, distances = pixel_bank.match_offsets(tensor, ws, ps, nn, distance, method)
        if save:
            torch.save({"offsets": offsets, "distances": distances}, save)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {"method": method, "size": size, "seconds": seconds, "peak_bytes": max(0, peak - before)}


def run_worker(method: str, args, size: int, save: str | None = None) -> dict:
    command = [sys.executable, __file__, "--worker", method, "--size", str(size), "--ws", str(args.ws),
               "--ps", str(args.ps), "--nn", str(args.nn), "--distance", args.distance]
    if args.image:
        command += ["--image", args.image]
    if save:
        command += ["--save", save]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def describe(result: dict) -> str:
    return (f"{result['method']:>8} {result['size']:>5} x {result['size']:<5} {result['seconds']:9.2f} s "
            f"{result['peak_bytes'] / 2 ** 20:11.1f} MiB")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", help="a photo to use (default: a 256 x 256 crop of scikit-image's astronaut)")
    parser.add_argument("--sizes", type=int, nargs="*", default=[256, 1024, 2048],
                        help="sides of the square images for the shift method alone")
    parser.add_argument("--skip_release", action="store_true", help="skip the release's method (15.6 GB)")
    parser.add_argument("--ws", type=int, default=40)
    parser.add_argument("--ps", type=int, default=7)
    parser.add_argument("--nn", type=int, default=16)
    parser.add_argument("--distance", default="L1", choices=pixel_bank.DISTANCES)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=256, help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.image, args.size, args.ws, args.ps, args.nn, args.distance,
                                args.save)))
        return

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, ws {args.ws}, ps {args.ps}, "
          f"nn {args.nn}, {args.distance}")
    print(f"{'method':>8} {'image':^13} {'time':>11} {'peak memory':>15}")
    with tempfile.TemporaryDirectory() as scratch:
        methods = ([] if args.skip_release else ["release"]) + ["unfold", "shift"]
        results = {}
        for method in methods:
            save = os.path.join(scratch, f"{method}.pt") if method != "release" else None
            results[method] = run_worker(method, args, 256, save)
            print(describe(results[method]), flush=True)
        shift, unfold = (torch.load(os.path.join(scratch, f"{m}.pt")) for m in ("shift", "unfold"))
    for reference in methods[:-1]:
        ratio_time = results[reference]["seconds"] / results["shift"]["seconds"]
        ratio_memory = results[reference]["peak_bytes"] / max(1, results["shift"]["peak_bytes"])
        print(f"shift vs {reference}: {ratio_time:.1f}x faster, {ratio_memory:.1f}x less peak memory")
    max_gap = (shift["distances"] - unfold["distances"]).abs().max().item()
    differ = (shift["offsets"] != unfold["offsets"]).any(dim=1).float().mean().item()
    print(f"shift vs unfold bank: max distance difference {max_gap:.2e}, "
          f"entries at another offset (near-ties) {100 * differ:.2f}%")
    for size in args.sizes:
        print(describe(run_worker("shift", args, size)), flush=True)


if __name__ == "__main__":
    main()
