"""Bad input, interrupted runs and failed training (issue 5)."""
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from skimage import data as skdata

import network
import pixel_bank
import Pixel2Pixel_real
import Pixel2Pixel_syn
import cli
import pipeline
import noise as noise_models
import utils
from methods import pixel2pixel
from helpers import ROOT, SMALL, read_rows, build_bank, pixel2pixel_settings
from utils import UserError

RESULT_COLUMNS = ["image", "psnr", "ssim", "noisy_psnr", "attempts", "status"]


def syn_args(tmp_path, data, *extra, dataset="tiny"):
    return ["--data_path", str(data), "--dataset", dataset, "--nt", "gauss", "--nl", "25", "--max_epoch", "3",
            *SMALL, "--save", str(tmp_path / "cache"), "--out_image", str(tmp_path / "out"), *extra]


def run_script(script, argv, timeout=300):
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *argv], capture_output=True, text=True,
                          timeout=timeout)


# ---------------------------------------------------------------------------- flags
@pytest.mark.parametrize("extra,message", [
    (["--ws", "0"], "--ws 0"),
    (["--ps", "4"], "--ps 4"),
    (["--nn", "3"], "--mm 4: cannot exceed --nn 3"),
    (["--mm", "1"], "--mm 1"),
    (["--nl", "-5"], "--nl -5"),
    (["--nt", "speckle"], "argument --nt: invalid choice: 'speckle'"),
    (["--loss", "L3"], "argument --loss: invalid choice: 'L3'"),
    (["--device", "gpu0"], "--device gpu0"),
    (["--max_retries", "-1"], "--max_retries -1"),
    (["--ws", "many"], "argument --ws: invalid int value: 'many'"),
])
def test_bad_flags_are_one_line_errors_before_any_work(tmp_path, clean_dataset, extra, message):
    with pytest.raises(UserError, match=re.escape(message)):
        Pixel2Pixel_syn.main(syn_args(tmp_path, clean_dataset, *extra))
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_bad_flag_from_the_command_line_is_one_line(tmp_path, clean_dataset):
    result = run_script("Pixel2Pixel_syn.py", syn_args(tmp_path, clean_dataset, "--nt", "speckle"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: argument --nt: invalid choice: 'speckle'")


def test_unwritable_output_folder(tmp_path, clean_dataset):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="--out_image .*file"):
        Pixel2Pixel_syn.main(syn_args(tmp_path, clean_dataset, "--out_image", str(blocker / "out")))


# ---------------------------------------------------------------------------- datasets
def test_empty_dataset_folder(tmp_path):
    (tmp_path / "data" / "empty").mkdir(parents=True)
    (tmp_path / "data" / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(UserError, match="holds no images"):
        Pixel2Pixel_syn.main(syn_args(tmp_path, tmp_path / "data", dataset="empty"))


def test_corrupt_and_non_image_files(tmp_path, clean_dataset):
    folder = clean_dataset / "tiny"
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (folder / "readme.txt").write_text("ignored: not an image name")
    result = run_script("Pixel2Pixel_syn.py", syn_args(tmp_path, clean_dataset))
    assert result.returncode == 1
    assert re.search(r"^warning: skipping \S*broken.png is not a readable image \(corrupt", result.stderr, re.M)
    assert re.match(r"error: skipped 1 image\(s\): \S*broken.png is not a readable", result.stderr.splitlines()[-1])
    rows = read_rows(next((tmp_path / "out" / "tiny").iterdir()) / "results.csv")
    assert [row["image"] for row in rows] == ["gray.png", "rgb.png"]  # the others ran
    average = re.search(r"Average PSNR: (\d+\.\d\d) dB", result.stdout).group(1)
    assert average == f"{np.mean([float(r['psnr']) for r in rows]):.2f}"


def test_image_too_small_for_the_window_is_skipped(tmp_path, clean_dataset):
    utils.save_image(str(clean_dataset / "tiny" / "small.png"), np.zeros((5, 50, 3), np.uint8))
    summary = Pixel2Pixel_syn.main(syn_args(tmp_path, clean_dataset))
    assert summary["images"] == 2
    assert len(summary["skipped"]) == 1 and summary["skipped"][0].startswith("small.png: 5 x 50 pixels is too small for --ws 10")


def test_gt_and_noisy_with_other_names(tmp_path, real_dataset):
    utils.save_image(str(real_dataset / "pairs" / "GT" / "b.png"), np.zeros((30, 30, 3), np.uint8))
    with pytest.raises(UserError, match=r"b\.png.*GT"):
        Pixel2Pixel_real.main(["--data_path", str(real_dataset), "--dataset", "pairs", "--nn", "8", "--mm", "4",
                               *SMALL, "--out_image", str(tmp_path / "out")])


def test_gt_and_noisy_of_other_sizes_are_skipped(tmp_path, real_dataset):
    utils.save_image(str(real_dataset / "pairs" / "GT" / "b.png"), np.zeros((30, 30, 3), np.uint8))
    utils.save_image(str(real_dataset / "pairs" / "Noisy" / "b.png"), np.zeros((30, 31, 3), np.uint8))
    summary = Pixel2Pixel_real.main(["--data_path", str(real_dataset), "--dataset", "pairs", "--nn", "8",
                                     "--mm", "4", "--max_epoch", "2", *SMALL, "--save", str(tmp_path / "c"),
                                     "--out_image", str(tmp_path / "out")])
    assert summary["images"] == 1
    assert summary["skipped"] == ["b.png: GT is (30, 30) x 3 but Noisy is (30, 31) x 3"]


def test_the_memory_an_image_needs_counts_block_matching_and_training():
    real = pixel2pixel_settings()  # the real script's nn 100, mm 20
    # 20000 x 20000 trains on crops, but matching its mm = 20 entries alone takes 64 GB.
    assert pixel2pixel.check_image(20000, 20000, 3, real) > 20000 * 20000 * 20 * 8
    # A small image trains whole: about 2.5 KB a pixel, more with more images at once.
    small = pixel2pixel.check_image(256, 256, 3, real)
    assert 256 * 256 * 2500 < small < pixel2pixel.check_image(256, 256, 3, pixel2pixel_settings(batch_images=4))
    # Matching every nn entry of a whole-trained image counts when it outweighs training.
    assert pixel2pixel.check_image(500, 500, 3, pixel2pixel_settings(ws=100, nn=5000)) > 500 * 500 * 5000 * 8


def test_image_too_large_for_memory_is_refused_up_front(tmp_path, clean_dataset, monkeypatch):
    settings = pixel2pixel_settings("syn", "gauss", 25, ws=10, ps=3, nn=8)
    needed = {"gray.png": pixel2pixel.check_image(36, 40, 1, settings),
              "rgb.png": pixel2pixel.check_image(40, 44, 3, settings)}
    assert needed["gray.png"] < needed["rgb.png"]
    free = (needed["gray.png"] + needed["rgb.png"]) // 2
    monkeypatch.setattr(pipeline, "available_memory_bytes", lambda device: free)
    summary = Pixel2Pixel_syn.main(syn_args(tmp_path, clean_dataset))
    assert summary["images"] == 1
    assert len(summary["skipped"]) == 1 and summary["skipped"][0].startswith("rgb.png: 40 x 44 needs about")


# ---------------------------------------------------------------------------- 16-bit, gray
def test_sixteen_bit_gray_and_colour_through_the_pipeline(tmp_path):
    folder = tmp_path / "data" / "deep"
    folder.mkdir(parents=True)
    colour = (skdata.astronaut()[60:100, 200:244].astype(np.uint16) * 257)
    utils.save_image(str(folder / "colour16.png"), colour)
    utils.save_image(str(folder / "gray16.png"), colour[:, :, 1])
    summary = Pixel2Pixel_syn.main(syn_args(tmp_path, tmp_path / "data", dataset="deep"))
    assert summary["images"] == 2
    run_dir = os.path.dirname(summary["csv"])
    for name, channels in (("colour16", 3), ("gray16", 1)):
        out = utils.load_image(os.path.join(run_dir, f"{name}.png"))
        assert out.bit_depth == 16 and out.pixels.shape == (40, 44, channels)


# ---------------------------------------------------------------------------- cache
def test_truncated_or_foreign_bank_cache_is_rebuilt(tmp_path, clean_dataset):
    argv = syn_args(tmp_path, clean_dataset, "--images", "rgb.png")
    first = read_rows(Pixel2Pixel_syn.main(argv)["csv"])[0]
    (cache_file,) = (tmp_path / "cache").iterdir()
    content = cache_file.read_bytes()
    cache_file.write_bytes(content[:len(content) // 2])  # a run killed while writing, without atomic rename
    again = read_rows(Pixel2Pixel_syn.main(argv + ["--out_image", str(tmp_path / "o2")])["csv"])[0]
    assert again["bank_cached"] == "0" and again["psnr"] == first["psnr"]
    # A complete file written for another key (a copied or renamed cache) is not trusted either.
    key = cache_file.name.rsplit("_", 1)[1][:-4]
    assert pixel_bank.load_cached_bank(str(cache_file), key) is not None
    assert pixel_bank.load_cached_bank(str(cache_file), "0" * len(key)) is None


# ---------------------------------------------------------------------------- training failures
def test_training_failure_detection():
    noisy = torch.rand(3, 20, 20) * 0.4
    fine_losses = torch.full((10,), 0.1)
    assert network.training_failure(fine_losses, noisy.clone(), noisy) is None
    flat_grey = torch.full_like(noisy, float(noisy.mean()))  # a legitimately flat result
    assert network.training_failure(fine_losses, flat_grey, noisy) is None
    black = torch.zeros_like(noisy)
    assert network.training_failure(fine_losses, black, noisy) == "collapsed output"
    one_black_channel = noisy.clone()
    one_black_channel[1] = 0
    assert network.training_failure(fine_losses, one_black_channel, noisy) == "collapsed output"
    assert network.training_failure(torch.tensor([0.1, float("nan")]), noisy, noisy) == "non-finite loss"


def test_failed_training_is_retried_with_another_seed(tmp_path, clean_dataset, monkeypatch, capsys):
    seeds = []

    real_train = network.train_networks

    def first_attempt_diverges(banks, settings, seeds_given, *args, **kwargs):
        seeds.extend(seeds_given)
        models, losses = real_train(banks, settings, seeds_given, *args, **kwargs)
        if len(seeds) == 1:
            losses[0, 1] = float("nan")
        return models, losses

    monkeypatch.setattr(network, "train_networks", first_attempt_diverges)
    summary = Pixel2Pixel_syn.main(syn_args(tmp_path, clean_dataset, "--images", "rgb.png"))
    (row,) = read_rows(summary["csv"])
    assert seeds == [123, 123 + pixel2pixel.RETRY_SEED_STEP]
    assert row["attempts"] == "2" and row["status"] == "ok"
    (warning,) = capsys.readouterr().err.strip().splitlines()  # one line: the failure and the next seed
    assert "non-finite loss" in warning and "1123" in warning


def test_a_real_collapse_is_detected():
    """On this dark image the sigmoid output of the release's training collapses to
    black for some seeds (here 1123) and not for others (123)."""
    clean = skdata.camera()[100:136, 200:240, None].astype(np.float32) / 255
    noisy = noise_models.add_noise(clean, "gauss", 25, np.random.default_rng(noise_models.image_seed(123, "dark.png")))
    image = utils.to_tensor(noisy, "cpu")
    bank, _ = build_bank(image, 10, 3, 4, "L1")
    verdicts = {}
    for seed in (123, 1123):
        model, losses = network.train_network(bank, pixel2pixel_settings(loss="L1", out_activation="sigmoid",
                                                                         max_epoch=150), seed)
        verdicts[seed] = network.training_failure(losses, network.denoise(model, image), image)
    assert verdicts == {123: None, 1123: "collapsed output"}


def test_collapse_that_persists_is_reported(tmp_path, clean_dataset, monkeypatch, capsys):
    monkeypatch.setattr(network, "denoise", lambda model, noisy, tile=None: torch.zeros_like(noisy))
    summary = Pixel2Pixel_syn.main(syn_args(tmp_path, clean_dataset, "--images", "rgb.png", "--max_retries", "1"))
    (row,) = read_rows(summary["csv"])
    assert row["attempts"] == "2" and row["status"] == "collapsed output"
    err = capsys.readouterr().err
    first, last = err.strip().splitlines()  # a line an attempt, each naming its seed and its failure
    assert "123" in first and "1123" in last and all("collapsed output" in line for line in (first, last))


# ---------------------------------------------------------------------------- interruption
def test_killed_run_resumes_to_the_same_csv(tmp_path, clean_dataset):
    folder = clean_dataset / "tiny"
    for index in range(3):  # more images, so the kill lands mid-dataset
        utils.save_image(str(folder / f"extra{index}.png"), skdata.astronaut()[120 + 20 * index:160 + 20 * index,
                                                                                    100:140].copy())
    argv = syn_args(tmp_path, clean_dataset, "--max_epoch", "60")
    reference_argv = argv + ["--save", str(tmp_path / "cache_ref"), "--out_image", str(tmp_path / "ref")]
    reference = run_script("Pixel2Pixel_syn.py", reference_argv)
    assert reference.returncode == 0, reference.stderr
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "Pixel2Pixel_syn.py"), *argv],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finished = 0
    for line in process.stdout:  # kill once the second image's row is written, mid-way through the third
        finished += line.startswith("Image: ")
        if finished == 2:
            break
    run_dir = next((tmp_path / "out" / "tiny").iterdir())
    # The row follows the line; a fixed sleep here let a fast third image finish too.
    csv_path, deadline = run_dir / "results.csv", time.monotonic() + 30
    while (len(read_rows(csv_path)) if csv_path.exists() else 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert len(read_rows(run_dir / "results.csv")) == 2
    resumed = run_script("Pixel2Pixel_syn.py", argv)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.count("Skipping ") == 2 and resumed.stdout.count("Image: ") == 3
    ref_rows = read_rows(next((tmp_path / "ref" / "tiny").iterdir()) / "results.csv")
    got_rows = read_rows(run_dir / "results.csv")
    project = lambda rows: sorted([row[c] for c in RESULT_COLUMNS] for row in rows)
    assert project(got_rows) == project(ref_rows)
    assert not [p for p in run_dir.iterdir() if ".partial" in p.name]


def test_sigterm_exits_130_and_keeps_finished_rows(tmp_path):
    folder = tmp_path / "data" / "two"
    folder.mkdir(parents=True)
    utils.save_image(str(folder / "a_small.png"), skdata.astronaut()[100:116, 200:216].copy())  # done in seconds
    utils.save_image(str(folder / "b_large.png"), skdata.astronaut()[100:228, 200:328].copy())  # takes minutes
    argv = syn_args(tmp_path, tmp_path / "data", "--max_epoch", "300", dataset="two")
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "Pixel2Pixel_syn.py"), *argv],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("Processed b_large.png"):  # a_small's row is written; b_large is training
            break
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert err.strip().splitlines()[-1].startswith("interrupted: finished images are kept")
    run_dir = next((tmp_path / "out" / "two").iterdir())
    assert [row["image"] for row in read_rows(run_dir / "results.csv")] == ["a_small.png"]
    assert (run_dir / "a_small.png").exists() and not (run_dir / "b_large.png").exists()
    assert not [path for path in run_dir.iterdir() if ".partial" in path.name]


def test_time_limit_stops_between_images_with_status_75_and_the_same_command_resumes(tmp_path, clean_dataset):
    argv = syn_args(tmp_path, clean_dataset, "--time_limit", "0.001")
    stopped = run_script("Pixel2Pixel_syn.py", argv)
    assert stopped.returncode == cli.EXIT_STOPPED == 75, stopped.stderr
    # The first image always starts; by then the limit is spent, so the second does not.
    assert stopped.stdout.count("Image: ") == 1
    assert "Stopping: --time_limit 0.001 s with 1 image(s) left (" in stopped.stdout
    assert "; run the same command again to resume" in stopped.stdout
    run_dir = next((tmp_path / "out" / "tiny").iterdir())
    assert [row["image"] for row in read_rows(run_dir / "results.csv")] == ["gray.png"]
    resumed = Pixel2Pixel_syn.main(syn_args(tmp_path, clean_dataset, "--time_limit", "1e6"))
    assert resumed["stopped"] == 0 and resumed["new_images"] == 1
    assert [row["image"] for row in read_rows(run_dir / "results.csv")] == ["gray.png", "rgb.png"]


def test_time_budget_judges_the_next_batch_by_the_seconds_an_image_took():
    clock = [100.0]
    budget = pipeline.TimeBudget(10.0, clock=lambda: clock[0])
    clock[0] += 50.0
    assert budget.allows(4)  # nothing finished: the first batch always starts, even past the limit
    clock[0] -= 46.0
    budget.finished(2)  # 2 s an image
    assert budget.allows(3) and not budget.allows(4)  # 4 + 6 <= 10 < 4 + 8
    assert pipeline.TimeBudget(None).allows(10 ** 6)
    clock[0] += 7.0
    assert not budget.allows(1)
    message = budget.stop_message(5)  # the limit, the images left, the seconds used and an image's
    assert "--time_limit" in message and {"10", "5", "11", "2"} <= set(re.findall(r"\d+", message))


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_time_limit_must_be_positive(tmp_path, clean_dataset, value):
    with pytest.raises(UserError, match=f"--time_limit {value}"):
        Pixel2Pixel_syn.main(syn_args(tmp_path, clean_dataset, "--time_limit", value))
    assert not (tmp_path / "out").exists()


def test_photos_stop_at_the_time_limit_and_resume(tmp_path, clean_dataset):
    photos = ["--input", str(clean_dataset / "tiny"), "--out_image", str(tmp_path / "photos"), "--mm", "4", *SMALL,
              "--max_epoch", "3"]
    stopped = Pixel2Pixel_real.main(photos + ["--time_limit", "0.001"])
    assert stopped["stopped"] == 1 and stopped["new_images"] == 1
    resumed = Pixel2Pixel_real.main(photos)
    assert resumed["new_images"] == 1 and resumed["images"] == 2
    assert sorted(os.listdir(tmp_path / "photos")) == sorted(
        [f"{stem}{suffix}" for stem in ("gray", "rgb") for suffix in
         ("_compare.png", "_denoised.png", "_loss.csv", "_loss.png")] + ["results.csv", "run.json"])


def test_other_settings_in_the_same_run_folder_are_refused(tmp_path, clean_dataset):
    Pixel2Pixel_syn.main(syn_args(tmp_path, clean_dataset, "--images", "gray.png"))
    with pytest.raises(UserError, match="--out_image.*gauss_25"):
        Pixel2Pixel_syn.main(syn_args(tmp_path, clean_dataset, "--images", "gray.png", "--max_retries", "0"))


SUBNORMALS_SURVIVING = """
import sys, torch, cli
def count():
    # 2**20 copies of the smallest fp32 subnormal, times one: zero only where every
    # thread that computes a piece of it flushes subnormals.
    tiny = torch.ones(1 << 20, dtype=torch.int32).view(torch.float32)
    print(int((tiny * 1.0).count_nonzero()))
    return {"skipped": []}
cli.run(count) if sys.argv[1] == "cli" else count()
"""


@pytest.mark.parametrize("entry,surviving", [("cli", 0), ("plain", 1 << 20)])
def test_command_line_entry_flushes_subnormals_in_every_thread(entry, surviving):
    # A collapsing network computes with subnormals, which x86 CPUs run many times slower.
    result = subprocess.run([sys.executable, "-c", SUBNORMALS_SURVIVING, entry], capture_output=True, text=True,
                            cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": ROOT}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == surviving
