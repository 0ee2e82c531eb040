"""Shared by the end-to-end tests."""
import csv
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Small window, patch and bank: end-to-end runs on 40 x 44 images in seconds.
SMALL = ["--ws", "10", "--ps", "3", "--nn", "8", "--device", "cpu", "--no_progress"]


def build_bank(noisy, ws, ps, nn, distance="L2", method="shift"):
    """The pixel bank as SPEC section 2 defines it: (nn x C x H x W pixels, nn x H x W distances)."""
    import pixel_bank

    offsets, distances = pixel_bank.match_offsets(noisy, ws, ps, nn, distance, method)
    return pixel_bank.gather_bank(noisy.float(), offsets), distances


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def pixel2pixel_settings(preset="real", nt=None, nl=None, **changes):
    """Pixel2Pixel's settings as the scripts build them, fp32 on the CPU without progress
    bars unless changed: any of its own settings or the shared ones."""
    import methods

    return methods.settings("pixel2pixel", preset, nt, nl,
                            **{"precision": "fp32", "device": "cpu", "no_progress": True, **changes})
