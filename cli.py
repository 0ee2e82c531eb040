"""The command line both entry scripts share: flags named as the settings they set, and
how a run ends (a user's mistake is one line, never a traceback)."""
from __future__ import annotations

import argparse
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

import dataclasses  # noqa: E402
import types  # noqa: E402
import typing  # noqa: E402

import torch  # noqa: E402

import config  # noqa: E402
import datasets  # noqa: E402
import methods  # noqa: E402
from config import Run, Settings  # noqa: E402
from methods import METHODS  # noqa: E402
from utils import UserError  # noqa: E402

EXIT_SKIPPED = 1  # some images could not be used; the rest ran
EXIT_USAGE = 2  # a mistake in the flags or the input: nothing ran
EXIT_STOPPED = 75  # --time_limit stopped the run with images left (sysexits' EX_TEMPFAIL: run it again)
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM; finished images are kept


class ArgumentParser(argparse.ArgumentParser):
    """Mistakes are a UserError (one line); a flag is spelt whole (--max_epoc is a mistake)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message):
        raise UserError(message)


def tool_parser(prog: str, doc: str) -> ArgumentParser:
    """A tool's parser: its docstring's first paragraph describes it, the rest (examples) ends its --help."""
    description, _, epilog = doc.partition("\n\n")
    return ArgumentParser(prog, description=description, epilog=epilog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _flag(parser, name: str, item: dataclasses.Field, kind, defaults: str) -> None:
    """One setting as a flag: default None (the method's own default applies), read as its type."""
    if typing.get_origin(kind) in (types.UnionType, typing.Union):  # X | None: X
        kind = next(option for option in typing.get_args(kind) if option is not type(None))
    if item.metadata.get("parse"):
        extra = dict(type=item.metadata["parse"], metavar="N")
    elif typing.get_origin(kind) is tuple:
        extra = dict(type=typing.get_args(kind)[0], nargs="+", metavar="N")
    elif kind is bool:
        extra = dict(action="store_const", const=True)
    else:
        extra = dict(type=kind)
    if item.metadata.get("choices"):
        extra["choices"] = item.metadata["choices"]
    parser.add_argument(f"--{name}", help=f"{item.metadata['help']} (default: {defaults})", **extra)


def _default_text(method: str, preset: str, name: str) -> str:
    value = getattr(methods.default_params(method, preset), name)
    if value is None:
        return methods.own_settings(method)[name].metadata["none"]
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def add_arguments(parser: argparse.ArgumentParser, preset: str, dataset: str) -> None:
    """The release's flags, ours, then each method's settings under its name. Defaults are
    None here: the method's own apply (methods.settings), one place. A setting several
    methods have is one flag, under the first, showing each one's default."""
    add = parser.add_argument
    add("--method", default="pixel2pixel", choices=list(METHODS),
        help="the denoiser (default: pixel2pixel, the faithful method)")
    add("--data_path", default="./data", help="folder holding the datasets (default: ./data)")
    add("--dataset", default=dataset, help=f"dataset folder under --data_path (default: {dataset}); "
                                           f"'sample' is made on first use from photos bundled with scikit-image")
    add("--images", nargs="+", metavar="NAME", help="only these file names of the dataset (default: all)")
    add("--save", default="./bank_cache", help="pixel-bank cache folder (default: ./bank_cache)")
    add("--out_image", default="./results_image", help="outputs go to <out_image>/<dataset>/<setting>/; "
                                                       "photos (--input) to --out_image (default: ./results_image)")
    add("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N (default: auto)")
    add("--precision", default="auto", choices=config.PRECISIONS, help="training arithmetic: fp32 (the release's), "
        "bf16 (needs hardware bf16) or auto (bf16 where shown as good and faster, else fp32) (default: auto)")
    add("--seed", type=int, help=f"seeds the noise (with each image's name), the network initialisation and "
                                 f"the sampler (default: {Settings.seed}, as released)")
    add("--batch_images", type=int, metavar="N", help="train up to N images of one size at once as one grouped "
        "network, to fill a GPU; each result matches training it alone up to rounding (default: 1)")
    add("--shard", metavar="I/N", help="run every N-th image starting at the I-th (0 <= I < N) into its own CSV "
                                       "of the same run folder; under a Slurm job array, the task's share")
    add("--time_limit", type=float, metavar="SECONDS", help="start no image that would end more than SECONDS "
        "after the start, judged by those before it (the first always starts), then exit with status 75")
    add("--threads", type=int, metavar="N", help="CPU threads (default: one a core, or OMP_NUM_THREADS)")
    add("--no_progress", action="store_true", help="hide the progress bars")
    placed = set()
    for method, chosen in METHODS.items():
        names = [name for name in methods.own_settings(method) if name not in placed]
        if not names:
            continue
        group = parser.add_argument_group(f"{method}'s settings (--method {method})")
        for name in names:
            texts = {other: _default_text(other, preset, name) for other in METHODS
                     if name in methods.own_settings(other)}
            defaults = texts[method] if len(set(texts.values())) == 1 else ", ".join(
                f"{other} {text}" for other, text in texts.items())
            _flag(group, name, methods.own_settings(method)[name], typing.get_type_hints(chosen.settings)[name],
                  defaults)
            placed.add(name)


def without(words: list[str], flags: tuple[str, ...]) -> list[str]:
    """The words of a command line without these flags and their values."""
    kept, skipping = [], False
    for word in words:
        if word in flags:
            skipping = True
        elif not (skipping and not word.startswith("--")):
            kept.append(word)
            skipping = False
    return kept


def for_method(words: list[str]) -> list[str]:
    """A command line less the settings its (last) --method lacks: for tools applying one
    list of flags to runs of several methods."""
    positions = [index for index, word in enumerate(words[:-1]) if word == "--method"]
    method = words[positions[-1] + 1] if positions else "pixel2pixel"
    if method not in METHODS:
        return words  # methods.settings names the mistake
    foreign = {name for other in METHODS for name in methods.own_settings(other)} - set(methods.own_settings(method))
    return without(words, tuple(f"--{name}" for name in sorted(foreign)))


def settings(args: argparse.Namespace, preset: str) -> Settings:
    """The run's settings from the flags (checked once, in methods.settings); applies --threads."""
    if args.threads is not None:
        if not 1 <= args.threads <= 1024:
            raise UserError(f"--threads {args.threads}: must be between 1 and 1024")
        torch.set_num_threads(args.threads)
    flags = [*config.SHARED, *(name for method in METHODS for name in methods.own_settings(method))]  # settings
    values = {name: getattr(args, name) for name in flags if hasattr(args, name)}
    values["no_progress"] = args.no_progress or None
    values.pop("nt", None), values.pop("nl", None)  # the synthetic script's --nt and --nl are the noise
    return methods.settings(args.method, preset, getattr(args, "nt", None), getattr(args, "nl", None), **values)


def run_of(args: argparse.Namespace) -> Run:
    """What the run is besides its settings: where it writes and how its work is split."""
    return Run(out_image=args.out_image, dataset=args.dataset, shard=datasets.parse_shard(args.shard),
               time_limit=args.time_limit)


def command(script_path: str, argv: list[str] | None) -> str:
    """The command line that reruns a script with main()'s arguments, else the shell's."""
    words = sys.argv[1:] if argv is None else [str(word) for word in argv]
    return shlex.join(["python", os.path.basename(script_path), *words])


def run(main) -> None:
    """Run an entry script's main and turn its outcome into an exit status."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # as Ctrl-C: KeyboardInterrupt
    config.flush_subnormals()  # before any tensor operation starts the worker threads
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
