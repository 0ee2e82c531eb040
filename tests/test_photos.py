"""Pixel2Pixel_real.py --input: your own photos, no ground truth, any size."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import Pixel2Pixel_real
import methods
import utils
from methods import pixel2pixel
from methods.pixel2pixel import training_crop
from helpers import ROOT, read_rows
from utils import UserError

SMALL_PHOTO = ["--ws", "10", "--ps", "3", "--nn", "8", "--mm", "4", "--device", "cpu", "--no_progress"]


def noisy_copy(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """uint8/uint16 clean -> noisy of the same type."""
    top = np.iinfo(clean.dtype).max
    rng = np.random.default_rng(seed)
    return np.clip(clean + rng.normal(0, sigma * top, clean.shape), 0, top).astype(clean.dtype)


@pytest.mark.parametrize("kind", ["rgb8", "gray16"])
def test_one_photo_without_ground_truth(tmp_path, photo, capsys, kind):
    clean = photo if kind == "rgb8" else (photo[:, :, 1].astype(np.uint16) * 257)
    path = tmp_path / "mine.png"
    utils.save_image(str(path), noisy_copy(clean, 0.08, 1))
    out = tmp_path / "out"
    summary = Pixel2Pixel_real.main(["--input", str(path), "--out_image", str(out), "--max_epoch", "150",
                                     *SMALL_PHOTO])
    printed = capsys.readouterr().out
    assert summary["images"] == 1 and summary["skipped"] == []
    assert "PSNR" not in printed and "SSIM" not in printed  # nothing to compare with
    assert "Pixel bank shape: torch.Size([40, 44, 8, " in printed  # small: trained whole, all nn entries matched
    assert sorted(os.listdir(out)) == ["mine_compare.png", "mine_denoised.png", "mine_loss.csv", "mine_loss.png",
                                       "results.csv", "run.json"]
    denoised = utils.load_image(str(out / "mine_denoised.png"))
    assert denoised.bit_depth == (8 if kind == "rgb8" else 16)
    reference = utils.load_image(str(path))
    assert denoised.pixels.shape == reference.pixels.shape
    clean_float = clean.astype(np.float32)[..., None] if clean.ndim == 2 else clean.astype(np.float32)
    clean_float /= np.iinfo(clean.dtype).max
    assert utils.psnr(clean_float, denoised.pixels) > utils.psnr(clean_float, reference.pixels) + 2.0
    compare = utils.load_image(str(out / "mine_compare.png")).pixels
    assert compare.shape == (40, 2 * 44 + utils.SIDE_BY_SIDE_GAP, 3 if kind == "rgb8" else 1)
    losses = np.loadtxt(out / "mine_loss.csv", delimiter=",", skiprows=1)
    assert losses.shape == (150, 2) and np.all(np.isfinite(losses[:, 1]))
    assert losses[-20:, 1].mean() < losses[:5, 1].mean()


def test_a_folder_of_photos_skips_the_unreadable(tmp_path, photo, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    utils.save_image(str(folder / "a.png"), noisy_copy(photo, 0.05, 2))
    (folder / "b.png").write_bytes(b"not an image")
    summary = Pixel2Pixel_real.main(["--input", str(folder), "--out_image", str(tmp_path / "out"),
                                     "--max_epoch", "2", *SMALL_PHOTO])
    assert summary["images"] == 1 and len(summary["skipped"]) == 1 and "b.png" in summary["skipped"][0]
    assert "b.png is not a readable image" in capsys.readouterr().err
    assert os.path.exists(tmp_path / "out" / "a_denoised.png")


def test_missing_input_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="--input .*nowhere.png"):
        Pixel2Pixel_real.main(["--input", str(tmp_path / "nowhere.png"), *SMALL_PHOTO])


@pytest.mark.parametrize("text,expected", [("auto", None), ("0", 0), ("256", 256)])
def test_train_crop_values(text, expected):
    assert pixel2pixel.parse_train_crop(text) == expected


@pytest.mark.parametrize("text", ["-1", "8", "big"])
def test_bad_train_crop(text):
    with pytest.raises(UserError, match="--train_crop"):
        methods.settings(train_crop=pixel2pixel.parse_train_crop(text))


def test_crop_rule():
    assert training_crop(256, 256, None) is None  # the paper's images: whole-image training
    assert training_crop(500, 500, None) is None  # McMaster frames too
    assert training_crop(3000, 4000, None) == pixel2pixel.TRAINING_CROP
    assert training_crop(3000, 4000, 0) is None
    assert training_crop(200, 300, 256) == 256
    assert training_crop(200, 250, 256) is None  # the crop holds the whole image


MEMORY_PROBE = """
import resource, sys
sys.path.insert(0, {root!r})
import numpy as np
import Pixel2Pixel_real, utils
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
Pixel2Pixel_real.main(["--input", {path!r}, "--out_image", {out!r}, "--max_epoch", "3", "--device", "cpu",
                       "--no_progress"])
print("peak growth KiB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def test_a_large_photo_in_bounded_memory(tmp_path):
    """600 x 800 RGB with the real script's defaults (ws 40, ps 7, nn 100, mm 20): it
    trains on crops and is denoised in tiles. The release's way would hold the bank as
    nn x C x H x W floats (549 MiB here) and train on the whole image (about 2,500 bytes
    a pixel, 1.1 GiB); this run's peak memory growth stays under 450 MiB, most of it
    fixed costs (a 256 x 256 training step, a 512 x 512 inference tile, matching tiles)."""
    height, width = 600, 800
    rows, cols = np.mgrid[0:height, 0:width]
    clean = (np.sin(cols / 37.0) + np.cos(rows / 23.0)) / 4 + 0.5
    noisy = np.clip(np.stack([clean] * 3, axis=2) + np.random.default_rng(0).normal(0, 0.08, (height, width, 3)), 0, 1)
    path = tmp_path / "large.png"
    utils.save_image(str(path), np.round(noisy * 255).astype(np.uint8))
    out = tmp_path / "out"
    script = MEMORY_PROBE.format(root=ROOT, path=str(path), out=str(out))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Pixel bank shape: torch.Size([600, 800, 20, 3])" in result.stdout  # only the mm entries training reads
    assert read_rows(str(out / "results.csv"))[0]["train_crop"] == "256"
    growth_mib = int(re.search(r"peak growth KiB (\d+)", result.stdout).group(1)) / 1024
    print(f"peak memory growth for {height} x {width}: {growth_mib:.0f} MiB")
    assert growth_mib < 450
    denoised = utils.load_image(str(out / "large_denoised.png"))
    assert denoised.pixels.shape == (height, width, 3)


def run_photos(source, out, *extra):
    return Pixel2Pixel_real.main(["--input", str(source), "--out_image", str(out), "--max_epoch", "2",
                                  *SMALL_PHOTO, *extra])


def test_another_photo_of_the_same_name_is_refused_not_taken_as_done(tmp_path, photo):
    out = tmp_path / "out"
    for folder, seed in (("first", 3), ("second", 4)):
        (tmp_path / folder).mkdir()
        utils.save_image(str(tmp_path / folder / "cam16.png"), noisy_copy(photo, 0.05, seed))
    run_photos(tmp_path / "first" / "cam16.png", out)
    before = (out / "cam16_denoised.png").read_bytes()
    again = run_photos(tmp_path / "first" / "cam16.png", out)  # the same photo: done
    assert again["skipped"] == [] and again["new_images"] == 0
    other = run_photos(tmp_path / "second" / "cam16.png", out)
    assert other["new_images"] == 0 and len(other["skipped"]) == 1 and "cam16.png" in other["skipped"][0]
    assert (out / "cam16_denoised.png").read_bytes() == before


def test_the_same_stem_with_another_extension_never_overwrites(tmp_path, photo):
    out = tmp_path / "out"
    utils.save_image(str(tmp_path / "cam16.png"), noisy_copy(photo, 0.05, 3))
    utils.save_image(str(tmp_path / "cam16.tif"), noisy_copy(photo, 0.05, 4))
    run_photos(tmp_path / "cam16.png", out)
    before = (out / "cam16_denoised.png").read_bytes()
    other = run_photos(tmp_path / "cam16.tif", out)
    assert other["new_images"] == 0 and len(other["skipped"]) == 1 and "cam16.tif" in other["skipped"][0]
    assert (out / "cam16_denoised.png").read_bytes() == before
    assert [row["image"] for row in read_rows(out / "results.csv")] == ["cam16.png"]


def test_a_folder_that_is_its_own_out_image_never_takes_its_outputs_as_inputs(tmp_path, photo):
    folder = tmp_path / "photos"
    folder.mkdir()
    utils.save_image(str(folder / "a.png"), noisy_copy(photo, 0.05, 2))
    first = run_photos(folder, folder)
    again = run_photos(folder, folder)
    assert first["new_images"] == 1 and again["new_images"] == 0 and again["skipped"] == []
    assert [row["image"] for row in read_rows(folder / "results.csv")] == ["a.png"]
