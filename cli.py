"""The command line both entry scripts share: their flags, named as config.Settings'
fields, and how a run ends (a user's mistake is one line, never a traceback)."""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import signal
import sys

# OpenMP worker threads that wait for work spin on their core by default: beside another
# busy process they take its time and wait for each other (a user saw training 40x slower
# on a 2-core machine; here 2.2x, results/benchmarks/busy_cpu.txt). Passive waits sleep
# instead: 1.8x here, about what sharing the cores costs. It must be set before torch
# loads its OpenMP runtime; OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

import config  # noqa: E402
import utils  # noqa: E402
from config import Settings  # noqa: E402
from methods import METHODS  # noqa: E402
from utils import UserError  # noqa: E402

EXIT_SKIPPED = 1  # some images could not be used; the rest ran
EXIT_USAGE = 2  # a mistake in the flags or the input: nothing ran
EXIT_STOPPED = 75  # --time_limit stopped the run with images left (sysexits' EX_TEMPFAIL: run it again)
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM; finished images are kept


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes are a UserError (one line), not usage text and exit."""

    def error(self, message):
        raise UserError(message)


def add_arguments(parser: argparse.ArgumentParser, preset: str, dataset: str) -> None:
    """The release's flags with its defaults, plus ours. A denoiser flag's default is
    None here and config.Settings' (or the preset's) in config.build: one place."""
    defaults = {**dataclasses.asdict(Settings()), **config.PRESETS[preset]}
    mm_default = "the paper's rule: 2 for gauss 10 and bernoulli, 4 for gauss 25, 8 otherwise; an explicit " \
                 "value wins" if defaults["mm"] is None else defaults["mm"]
    add = parser.add_argument
    add("--method", default="pixel2pixel", choices=list(METHODS),
        help="the denoiser (default: pixel2pixel, the faithful method)")
    add("--data_path", default="./data", help="folder holding the datasets (default: ./data)")
    add("--dataset", default=dataset, help=f"dataset folder under --data_path (default: {dataset}); "
                                           f"'sample' is made on first use from photos bundled with scikit-image")
    add("--images", nargs="+", metavar="NAME", help="only these file names of the dataset (default: all)")
    add("--save", default="./bank_cache", help="pixel-bank cache folder, keyed by everything that determines a "
                                               "bank (default: ./bank_cache)")
    add("--out_image", default="./results_image",
        help="outputs go to <out_image>/<dataset>/<setting>/; photos (--input) to --out_image itself "
             "(default: ./results_image)")
    add("--ws", type=int, help=f"block-matching window size (default: {defaults['ws']})")
    add("--ps", type=int, help=f"patch size, odd (default: {defaults['ps']})")
    add("--nn", type=int, help=f"neighbours kept in the pixel bank (default: {defaults['nn']})")
    add("--mm", type=int, help=f"bank entries training draws from (default: {mm_default})")
    add("--loss", choices=config.LOSSES, help=f"training loss (default: {defaults['loss']})"
        + ("; the synthetic script matches patches with it too" if preset == "syn" else
           "; patches are matched with L2 whatever it is, as released"))
    add("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N (default: auto)")
    add("--precision", default="auto", choices=config.PRECISIONS,
        help="training arithmetic: fp32 (the release's), bf16 (autocast, channels_last; refused without "
             "hardware bf16) or auto (bf16 where it is proven as good and faster, else fp32) (default: auto)")
    add("--seed", type=int, help=f"seeds the noise (with each image's name), the network initialisation and "
                                 f"the sampler (default: {defaults['seed']}, as released)")
    add("--max_epoch", type=int, help="training iterations per image (default: the method's own: " + ", ".join(
        f"{name} {method.iterations}" for name, method in METHODS.items() if method.iterations) + ")")
    add("--bank_method", choices=config.BANK_METHODS,
        help="block matching: shift (per offset, fast, default) or unfold (the release's patch "
             "materialisation); both give the same bank")
    add("--max_retries", type=int, help=f"retrain an image whose training diverged or collapsed, with seed + "
                                        f"{config.RETRY_SEED_STEP} each time (default: {defaults['max_retries']}; "
                                        f"0 keeps the release's behaviour)")
    add("--batch_images", type=int, metavar="N",
        help="train up to N images of one size at once as one grouped network, to fill a GPU; each result "
             "matches training it alone up to rounding (default: 1)")
    add("--train_crop", metavar="N", help=f"train on random N x N crops of the pseudo instances; 0: always the "
                                          f"whole image (the release); auto: {config.TRAINING_CROP} x "
                                          f"{config.TRAINING_CROP} crops above {config.CROP_TRAINING_ABOVE:,} "
                                          f"pixels (default: auto)")
    add("--shard", metavar="I/N", help="run every N-th image starting at the I-th (0 <= I < N) into its own CSV "
                                       "of the same run folder; under a Slurm job array, the task's share")
    add("--time_limit", type=float, metavar="SECONDS",
        help="start no image (or batch) that would end more than SECONDS after the start, judged by the "
             "images before it (the first always starts), then exit with status 75; the same command resumes")
    add("--threads", type=int, metavar="N", help="CPU threads (default: one a core, or OMP_NUM_THREADS)")
    add("--no_progress", action="store_true", help="hide the progress bars")


def settings(args: argparse.Namespace, preset: str) -> Settings:
    """The run's settings from the flags (checked once, in config.build); applies --threads."""
    if args.time_limit is not None and not args.time_limit > 0:
        raise UserError(f"--time_limit {args.time_limit:g}: must be a positive number of seconds")
    if args.threads is not None:
        if not 1 <= args.threads <= 1024:
            raise UserError(f"--threads {args.threads}: must be between 1 and 1024")
        torch.set_num_threads(args.threads)
    flags = {field.name: getattr(args, field.name) for field in dataclasses.fields(Settings) if hasattr(args, field.name)}
    return config.build(preset, **flags)  # the synthetic script's --nt and --nl are settings too


def command(script_path: str, argv: list[str] | None) -> str:
    """The command line that reruns a script with these arguments: the list a caller
    gave to main(), else the shell's."""
    words = sys.argv[1:] if argv is None else [str(word) for word in argv]
    return shlex.join(["python", os.path.basename(script_path), *words])


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run(main) -> None:
    """Run an entry script's main and turn its outcome into an exit status."""
    signal.signal(signal.SIGTERM, _interrupt)
    utils.flush_subnormals()  # before any tensor operation starts the worker threads
    try:
        summary = main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        print("interrupted: finished images are kept; run the same command again to resume", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader of our output went away (`... | head`): quiet, as other command-line tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_SKIPPED)
    if summary["skipped"]:
        print(f"error: skipped {len(summary['skipped'])} image(s): {'; '.join(summary['skipped'])}",
              file=sys.stderr)
    if summary.get("stopped"):
        sys.exit(EXIT_STOPPED)
    if summary["skipped"]:
        sys.exit(EXIT_SKIPPED)
