"""Time and peak memory of the work, each measurement in a fresh process.

    python -m benchmarks.speed bank --sizes 256 1024 2048       # block matching, shift and unfold
    python -m benchmarks.speed train --precisions fp32 bf16      # seconds per training iteration
    python -m benchmarks.speed train --methods zsn2n --layouts nchw channels_last --batch_images 1 4
    python -m benchmarks.speed photo --size 4000 3000            # a photo with --input, stage by stage
    python -m benchmarks.speed methods --image ../shared/data/kodak/kodim01.png   # every method, one image
    python -m benchmarks.speed busy                              # training alone and beside a busy process

Images: a 256 x 256 crop of a photograph scikit-image ships (mirrored to larger sizes),
or --image, with Gaussian noise of sigma 25. --report writes the table to a file too.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import multiprocessing
import os
import platform
import resource
import time

import numpy as np
import torch

import cli
import config
import methods
import network
import pipeline
import pixel_bank
import utils
from methods import METHODS, zsn2n
from methods.pixel2pixel import INFERENCE_TILE, bank_of
from noise import add_noise


def noisy_image(height: int, width: int, image: str | None = None) -> torch.Tensor:
    """C x H x W: the image (or a photograph's crop) mirrored to size, with Gaussian noise of sigma 25."""
    from skimage import data as skdata

    clean = utils.load_image(image).pixels if image else skdata.astronaut()[100:356, 100:356].astype(np.float32) / 255
    reps = (-(-height // clean.shape[0]), -(-width // clean.shape[1]), 1)
    tiled = np.tile(np.concatenate([clean, clean[::-1]], 0), reps)[:height, :width]  # mirrored, no seams across rows
    noisy = add_noise(np.ascontiguousarray(tiled), "gauss", 25, np.random.default_rng(0))
    return utils.to_tensor(noisy, torch.device("cpu"))


def measured(task, *arguments) -> dict:
    """task(*arguments) -> {name: seconds}, run in a fresh process; adds its peak memory growth."""
    pool = multiprocessing.get_context("spawn").Pool(1)
    try:
        return pool.apply(_peak, (task, arguments))
    finally:  # terminate, not close: after Ctrl-C or SIGTERM close() and join() wait on the worker forever
        pool.terminate()
        pool.join()


def _memory_kib(field: str) -> int:
    """This process's resident memory (VmRSS) or its peak (VmHWM); elsewhere the lifetime peak."""
    if not os.path.exists("/proc/self/status"):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(field + ":"))


def _peak(task, arguments) -> dict:
    """The peak's growth over the memory held before the task, the peak reset first where
    Linux allows (a lifetime peak may come from the imports: CI measured 0 MiB)."""
    config.flush_subnormals()
    with contextlib.suppress(OSError):
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # VmHWM := VmRSS
    before = _memory_kib("VmRSS")
    result = task(*arguments)
    return {**result, "peak MiB": (_memory_kib("VmHWM") - before) / 1024}


def bank_task(size: int, method: str) -> dict:
    noisy = noisy_image(size, size)
    start = time.perf_counter()
    pixel_bank.match_offsets(noisy, 40, 7, 16, "L1", method)
    return {"seconds": time.perf_counter() - start}


def train_task(method: str, precision: str, images: int, iterations: int, channels_last: bool | None = None,
               size: int = 256) -> dict:
    """pixel2pixel's training loop (on banks of 4 entries) or zsn2n's whole denoising, after a warm-up run."""
    chosen = methods.settings(method, precision=precision, max_epoch=iterations, no_progress=True, device="cpu")
    noisy = [noisy_image(size, size) + 0.01 * index for index in range(images)]
    banks = [image[None].repeat(4, 1, 1, 1) for image in noisy]  # C x H x W -> 4 x C x H x W

    def work():
        if method == "zsn2n":
            zsn2n.denoise_together(noisy, chosen, ["image"] * images, channels_last)
        else:
            network.train_networks(banks, chosen, list(range(images)), channels_last=channels_last)
    work()  # kernels are picked
    start = time.perf_counter()
    work()
    return {"s / iteration / image": (time.perf_counter() - start) / iterations / images}


def photo_task(height: int, width: int, iterations: int, precision: str) -> dict:
    settings = methods.settings(max_epoch=iterations, precision=precision, no_progress=True, device="cpu")
    noisy = noisy_image(height, width)
    start = time.perf_counter()
    bank, _, _ = bank_of(noisy, settings, "photo.png")
    matched = time.perf_counter()
    warm_up = dataclasses.replace(settings, params=dataclasses.replace(settings.params, max_epoch=1))
    network.train_network(bank, warm_up)  # kernels are picked
    warm = time.perf_counter()
    model, _ = network.train_network(bank, settings)
    trained = time.perf_counter()
    network.denoise(model, noisy, INFERENCE_TILE)
    return {"bank s": matched - start, "train s (3000 it.)": (trained - warm) / iterations * 3000,
            "inference s": time.perf_counter() - trained}


def method_task(method: str, image: str | None, iterations: int | None, precision: str) -> dict:
    noisy = noisy_image(256, 256, image)
    trained = {"max_epoch": iterations} if iterations and "max_epoch" in methods.own_settings(method) else {}
    settings = methods.settings(method, "syn", "gauss", 25, no_progress=True, device="cpu", precision=precision,
                                **trained)
    start = time.perf_counter()
    METHODS[method].denoise(noisy, settings, "image")
    return {"seconds": time.perf_counter() - start}


def spin(seconds: float) -> None:
    """One CPU-bound process: what another user's job does to a shared machine."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def main(argv=None) -> dict:
    parser = cli.tool_parser("speed.py", __doc__)
    parser.add_argument("what", choices=["bank", "train", "photo", "methods", "busy"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024], help="bank: image sides")
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    parser.add_argument("--batch_images", type=int, nargs="+", default=[1], help="train: images trained together")
    parser.add_argument("--layouts", nargs="+", default=["auto"], choices=["auto", "channels_last", "nchw"],
                        help="train: tensor layouts (default: auto, the one training picks)")
    parser.add_argument("--size", type=int, nargs=2, default=[4000, 3000], metavar=("W", "H"), help="photo: size")
    parser.add_argument("--iterations", type=int, help="training iterations timed (default: 20; methods: each "
                                                       "method's own length, side by side)")
    parser.add_argument("--image", help="methods: the clean image (default: a 256 x 256 photograph crop)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS),
                        help="methods: those run (default: all); train: pixel2pixel (default) and/or zsn2n")
    parser.add_argument("--report", help="also write the table to this file")
    args = parser.parse_args(argv)
    for flag, values, low in (("--sizes", args.sizes, 16), ("--size", args.size, 16),
                              ("--batch_images", args.batch_images, 1),
                              ("--iterations", [] if args.iterations is None else [args.iterations], 1)):
        if not all(low <= value <= 100_000 for value in values):
            parser.error(f"{flag} {' '.join(map(str, values))}: each must be between {low} and 100000")
    if args.report:  # before the measurements, not after them
        pipeline.check_writable(os.path.dirname(args.report) or ".", "--report")
    if args.what != "methods":
        args.iterations = args.iterations or 20
    args.methods = args.methods or (list(METHODS) if args.what == "methods" else ["pixel2pixel"])
    if args.what == "train" and not set(args.methods) <= {"pixel2pixel", "zsn2n"}:
        parser.error(f"--methods {' '.join(args.methods)}: train times pixel2pixel and zsn2n only")
    rows = []
    if args.what == "bank":
        for size in args.sizes:
            for method in ("shift", "unfold") if size <= 256 else ("shift",):
                rows.append((f"{method}, {size} x {size}", measured(bank_task, size, method)))
    elif args.what == "train":
        layouts = {"auto": None, "channels_last": True, "nchw": False}
        for precision, images, layout, method in itertools.product(args.precisions, args.batch_images, args.layouts,
                                                                   args.methods):
            rows.append((f"{method}, {precision}, {images} image(s), {layout}",
                         measured(train_task, method, precision, images, args.iterations, layouts[layout])))
    elif args.what == "photo":
        for precision in args.precisions:
            rows.append((f"{args.size[0]} x {args.size[1]}, {precision}",
                         measured(photo_task, args.size[1], args.size[0], args.iterations, precision)))
    elif args.what == "methods":
        for method in args.methods:  # in each precision it computes in, else once in its own
            own = METHODS[method].precisions
            for precision in [precision for precision in args.precisions if precision in own] or [None]:
                rows.append((f"{method}, {precision or (own[0] if own else 'n/a')}",
                             measured(method_task, method, args.image, args.iterations, precision or "auto")))
    else:
        busy = ("pixel2pixel", "fp32", 1, args.iterations, None, 128)  # train_task's arguments
        for policy in ("PASSIVE", "ACTIVE"):  # ours (cli.py), and OpenMP's spinning default
            os.environ["OMP_WAIT_POLICY"] = policy  # the measuring processes inherit it
            rows.append((f"{policy.lower()} waits, alone", measured(train_task, *busy)))
            competitor = multiprocessing.get_context("spawn").Process(target=spin, args=(3600,))
            competitor.start()
            try:
                rows.append((f"{policy.lower()} waits, beside a busy process", measured(train_task, *busy)))
            finally:
                competitor.terminate()
    threads = torch.get_num_threads()
    lines = [f"{args.what}: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
             f"{torch.__version__}, {threads} threads, {config.describe_device(torch.device('cpu'))}"]
    first = rows[0][1]
    for label, values in rows:
        ratio = next(iter(values.values())) / next(iter(first.values()))
        measures = ", ".join(f"{name} {value:.4g}" for name, value in values.items())
        lines.append(f"{label:<40} {measures}  ({ratio:.2f}x the first)")
    print("\n".join(lines))
    if args.report:
        utils.atomic_write_text(args.report, "\n".join(lines) + "\n")
    return {"skipped": [], "rows": rows}


if __name__ == "__main__":
    cli.run(main)
