"""Hostile inputs, shared folders and busy machines (issue #26): the right result or one
clear line and a non-zero exit, and nothing lost."""
import errno
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PillowImage
from PIL import ImageOps
from skimage import data as skdata

import cli
import datasets
import Pixel2Pixel_real
import Pixel2Pixel_syn
import utils
from helpers import ROOT, SMALL, read_rows
from utils import UserError


def syn(tmp_path, data, *extra, dataset="tiny"):
    return ["--data_path", str(data), "--dataset", dataset, "--nt", "gauss", "--nl", "25", "--max_epoch", "2",
            *SMALL, "--save", str(tmp_path / "cache"), "--out_image", str(tmp_path / "out"), *extra]


# ---------------------------------------------------------------------------- silent wrong results
def test_a_cmyk_jpeg_is_read_in_its_colours(tmp_path, photo):
    PillowImage.fromarray(photo).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    image = utils.load_image(str(tmp_path / "cmyk.jpg"))
    assert image.pixels.shape == photo.shape
    assert np.abs(utils.quantize(image.pixels, rounding=True).astype(int) - photo).mean() < 2  # not inverted


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    pixels = np.random.default_rng(orientation).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    picture = PillowImage.fromarray(pixels)
    exif = picture.getexif()
    exif[0x0112] = orientation
    picture.save(tmp_path / "turned.png", exif=exif)
    upright = np.asarray(ImageOps.exif_transpose(PillowImage.open(tmp_path / "turned.png")))
    np.testing.assert_array_equal(utils.quantize(utils.load_image(str(tmp_path / "turned.png")).pixels), upright)


# ---------------------------------------------------------------------------- lost results
def test_two_images_with_one_stem_are_refused(tmp_path, clean_dataset):
    utils.save_image(str(clean_dataset / "tiny" / "rgb.jpg"), skdata.astronaut()[:40, :44].copy())
    with pytest.raises(UserError, match=r"rgb\.jpg.*rgb\.png"):
        Pixel2Pixel_syn.main(syn(tmp_path, clean_dataset))


def test_two_identical_runs_at_once_both_finish_every_row(tmp_path, clean_dataset):
    argv = [sys.executable, os.path.join(ROOT, "Pixel2Pixel_syn.py"), *syn(tmp_path, clean_dataset)]
    processes = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    (run_dir,) = (tmp_path / "out" / "tiny").iterdir()
    assert sorted(row["image"] for row in read_rows(run_dir / "results.csv")) == ["gray.png", "rgb.png"]
    assert not [path for path in run_dir.iterdir() if ".partial" in path.name]


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path, clean_dataset, monkeypatch):
    Pixel2Pixel_syn.main(syn(tmp_path, clean_dataset, "--images", "gray.png"))
    real_encode = utils.imagecodecs.png_encode

    def disk_full_for_rgb(pixels, *args, **kwargs):
        if pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.shape[1] == 44:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_encode(pixels, *args, **kwargs)

    monkeypatch.setattr(utils.imagecodecs, "png_encode", disk_full_for_rgb)
    with pytest.raises(UserError, match="cannot write .*rgb.* No space left on device"):
        Pixel2Pixel_syn.main(syn(tmp_path, clean_dataset))
    (run_dir,) = (tmp_path / "out" / "tiny").iterdir()
    assert [row["image"] for row in read_rows(run_dir / "results.csv")] == ["gray.png"]  # the finished row kept
    assert not [path for path in run_dir.iterdir() if ".partial" in path.name]


# ---------------------------------------------------------------------------- tracebacks and late errors
@pytest.mark.parametrize("extra,message", [
    (["--nt", "poiss", "--nl", "1e20"], "--nl 1e+20: poiss takes a level in"),
    (["--seed", str(2 ** 70)], "--seed"),
    (["--max_epoch", "1e11"], "argument --max_epoch: invalid int value"),
    (["--max_epoch", str(10 ** 11)], "--max_epoch"),
    (["--method", "bm3d", "--nt", "impulse", "--nl", "0.1"], "does not apply to --nt impulse"),
    (["--threads", "0"], "--threads 0"),
])
def test_absurd_flags_are_one_line_errors_before_any_work(tmp_path, clean_dataset, extra, message):
    with pytest.raises(UserError, match=re.escape(message)):
        Pixel2Pixel_syn.main(syn(tmp_path, clean_dataset, *extra))
    assert not (tmp_path / "out").exists()


def test_a_slurm_task_id_that_is_no_number(monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "abc")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    with pytest.raises(UserError, match="SLURM_ARRAY_TASK_ID abc"):
        datasets.parse_shard(None)


def test_a_results_csv_that_is_a_folder(tmp_path, clean_dataset):
    Pixel2Pixel_syn.main(syn(tmp_path, clean_dataset, "--images", "gray.png"))
    (run_dir,) = (tmp_path / "out" / "tiny").iterdir()
    os.remove(run_dir / "results.csv")
    os.makedirs(run_dir / "results.csv")
    with pytest.raises(UserError, match="results.csv"):
        Pixel2Pixel_syn.main(syn(tmp_path, clean_dataset))


def test_a_photo_with_a_window_wider_than_int8_offsets(tmp_path):
    photo = np.random.default_rng(0).integers(0, 256, (132, 133, 3), dtype=np.uint8)
    utils.save_image(str(tmp_path / "wide.png"), photo)
    summary = Pixel2Pixel_real.main(["--input", str(tmp_path / "wide.png"), "--out_image", str(tmp_path / "out"),
                                     "--ws", "256", "--ps", "1", "--nn", "2", "--mm", "2", "--train_crop", "16",
                                     "--max_epoch", "1", "--device", "cpu", "--no_progress"])
    assert summary["images"] == 1 and not summary["skipped"]


def test_every_output_place_is_checked_before_any_work(tmp_path, clean_dataset, photo):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="--save .*a file"):
        Pixel2Pixel_syn.main(syn(tmp_path, clean_dataset, "--save", str(blocker / "cache")))
    utils.save_image(str(tmp_path / "mine.png"), photo)
    with pytest.raises(UserError, match="--out_image .*a file"):
        Pixel2Pixel_real.main(["--input", str(tmp_path / "mine.png"), "--out_image", str(blocker / "out"), *SMALL,
                               "--mm", "4", "--save", str(tmp_path / "cache")])
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_a_corrupt_jpeg_and_a_broken_link_are_named_in_one_line(tmp_path, clean_dataset, capsys):
    folder = clean_dataset / "tiny"
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    os.symlink(folder / "nowhere.png", folder / "dangling.png")
    summary = Pixel2Pixel_syn.main(syn(tmp_path, clean_dataset))
    err = capsys.readouterr().err
    assert summary["images"] == 2 and len(summary["skipped"]) == 1
    assert "broken.jpg is not a readable image" in summary["skipped"][0] and "\n" not in summary["skipped"][0]
    assert "dangling.png: not a file (a broken link?)" in err


def test_a_batch_larger_than_the_dataset_counts_the_images_there_are(tmp_path, clean_dataset):
    summary = Pixel2Pixel_syn.main(syn(tmp_path, clean_dataset, "--batch_images", "100000"))
    assert summary["images"] == 2 and not summary["skipped"]


# ---------------------------------------------------------------------------- fuzzing
FLAGS = st.one_of(
    st.tuples(st.sampled_from(["--ws", "--ps", "--nn", "--mm", "--max_epoch", "--seed", "--max_retries",
                               "--batch_images", "--threads"]),
              st.one_of(st.integers(-3, 12).map(str), st.sampled_from(["1e9", "x", "", "-0", str(2 ** 64)]))),
    st.tuples(st.sampled_from(["--loss", "--precision", "--device", "--bank_method", "--method", "--train_crop",
                               "--shard", "--time_limit", "--nt", "--nl"]),
              st.sampled_from(["L1", "L2", "fp32", "bf16", "auto", "cpu", "cuda:7", "tpu", "unfold", "nlm", "bm3d",
                               "0", "16", "1/2", "3/2", "0.001", "nan", "gauss", "impulse", "25", "-1"])))
MALFORMED = {"empty.png": b"", "text.png": b"hello", "cut.png": None, "cut.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF"}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=st.sampled_from(["syn", "real"]), flags=st.lists(FLAGS, max_size=4),
       malformed=st.sets(st.sampled_from(sorted(MALFORMED)), max_size=2))
def test_random_command_lines_end_in_a_documented_exit_never_a_traceback(tmp_path_factory, script, flags, malformed):
    root = tmp_path_factory.mktemp("fuzz")
    folder = root / "data" / "set"
    for sub in ("", "GT", "Noisy"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        utils.save_image(str(folder / sub / "a.png"), skdata.astronaut()[:16, :18].copy())
    good = (folder / "a.png").read_bytes()
    for name in malformed:
        for sub in ("", "GT", "Noisy"):
            (folder / sub / name).write_bytes(MALFORMED[name] if MALFORMED[name] is not None else good[:40])
    argv = ["--data_path", str(root / "data"), "--dataset", "set", "--out_image", str(root / "out"),
            "--save", str(root / "cache"), "--no_progress", "--ws", "4", "--ps", "3", "--nn", "4", "--max_epoch", "2",
            *(word for pair in flags for word in pair)]
    main = Pixel2Pixel_syn.main if script == "syn" else Pixel2Pixel_real.main  # real has no --nt: refused
    try:
        cli.run(lambda: main(argv))  # any exception but SystemExit fails the test: a traceback
    except SystemExit as ended:
        assert ended.code in (0, 1, 2, 75, 130)
    finally:
        torch.set_flush_denormal(False)  # cli.run flushes subnormals process-wide; hypothesis needs them


def test_an_image_larger_than_pillows_bomb_limit_is_read_and_judged_by_memory(tmp_path, photo, monkeypatch):
    """Pillow refuses images above its pixel limit (179 megapixels) as decompression bombs;
    a 20000 x 20000 PNG must reach the memory check instead (here: the limit made tiny)."""
    monkeypatch.setattr(PillowImage, "MAX_IMAGE_PIXELS", 100)
    utils.save_image(str(tmp_path / "big.png"), photo)
    assert utils.load_image(str(tmp_path / "big.png")).pixels.shape == photo.shape
