"""Shared by the end-to-end tests."""
import csv
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Small window, patch and bank: end-to-end runs on 40 x 44 images in seconds.
SMALL = ["--ws", "10", "--ps", "3", "--nn", "8", "--device", "cpu", "--no_progress"]


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))
