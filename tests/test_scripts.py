import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
import torch

import Pixel2Pixel_real
import Pixel2Pixel_syn
import cli
import datasets
import noise as noise_models
import utils
from methods import pixel2pixel
from helpers import ROOT, SMALL, read_rows
from utils import UserError


def outputs(tmp_path):
    return ["--save", str(tmp_path / "cache"), "--out_image", str(tmp_path / "out")]


@pytest.mark.parametrize("noise_type,level", [("gauss", 25), ("saltpepper", 0.1)])
def test_syn_end_to_end_denoises(tmp_path, clean_dataset, capsys, noise_type, level):
    argv = ["--data_path", str(clean_dataset), "--dataset", "tiny", "--nt", noise_type, "--nl", str(level),
            "--max_epoch", "200", *SMALL, *outputs(tmp_path)]
    summary = Pixel2Pixel_syn.main(argv)
    printed = capsys.readouterr().out
    image_lines = re.findall(r"^Image: (\S+) \| PSNR: (\d+\.\d\d) dB \| SSIM: (\d\.\d{4})$", printed, re.M)
    assert [name for name, _, _ in image_lines] == ["gray.png", "rgb.png"]
    assert re.search(r"^Average PSNR: \d+\.\d\d dB, Average SSIM: \d\.\d{4}$", printed, re.M)

    rows = read_rows(summary["csv"])
    assert [row["image"] for row in rows] == ["gray.png", "rgb.png"]
    for row, (_, psnr_text, ssim_text) in zip(rows, image_lines):
        assert float(row["psnr"]) > float(row["noisy_psnr"]) + 3.0  # well above the noisy input
        # The line rounds the full value, the CSV keeps 4 and 6 decimals: equal to within
        # the line's rounding (rounding the CSV's value again could differ in the last digit).
        assert float(row["psnr"]) == pytest.approx(float(psnr_text), abs=0.005 + 1e-4)
        assert float(row["ssim"]) == pytest.approx(float(ssim_text), abs=0.00005 + 1e-6)
        assert row["device"].startswith("cpu") and float(row["train_seconds"]) > 0
    assert summary["psnr"] == pytest.approx(np.mean([float(r["psnr"]) for r in rows]))

    # SSIM is that of the saved 8-bit PNG against the clean image, as released.
    run_dir = os.path.dirname(summary["csv"])
    for row, name in zip(rows, ["gray", "rgb"]):
        clean = utils.load_image(str(clean_dataset / "tiny" / f"{name}.png"))
        saved = utils.load_image(os.path.join(run_dir, f"{name}.png"))
        assert saved.pixels.shape == clean.pixels.shape
        saved_ints = utils.quantize(saved.pixels)
        assert utils.ssim(utils.quantize(clean.pixels), saved_ints) == pytest.approx(float(row["ssim"]), abs=1e-6)
        noisy_saved = utils.load_image(os.path.join(run_dir, f"{name}_noisy.png"))
        rng = np.random.default_rng(noise_models.image_seed(123, f"{name}.png"))
        expected_noisy = noise_models.add_noise(clean.pixels, noise_type, level, rng)
        np.testing.assert_array_equal(utils.quantize(noisy_saved.pixels), utils.quantize(expected_noisy))

    # run.json names the script command that reruns this run, whoever called main().
    with open(os.path.join(run_dir, "run.json")) as handle:
        info = json.load(handle)
    words = shlex.split(info["command"])
    assert words[:2] == ["python", "Pixel2Pixel_syn.py"] and words[2:] == argv
    rebuilt = cli.settings(Pixel2Pixel_syn.parse_args(words[2:]), "syn")
    assert json.loads(json.dumps(dataclasses.asdict(rebuilt))) == info["arguments"]["settings"]
    assert info["arguments"]["settings"]["params"]["mm"] == (4 if noise_type == "gauss" else 8)  # the rule, applied


def test_syn_rerun_same_result_from_cache_and_subset_same_noise(tmp_path, clean_dataset):
    argv = ["--data_path", str(clean_dataset), "--dataset", "tiny", "--nt", "gauss", "--nl", "25",
            "--max_epoch", "10", *SMALL, *outputs(tmp_path)]
    first = read_rows(Pixel2Pixel_syn.main(argv)["csv"])
    assert {row["bank_cached"] for row in first} == {"0"}
    # Only one image, given by name, into a fresh output folder: same noise, so its
    # cached bank is found, and the same result.
    second = read_rows(Pixel2Pixel_syn.main(argv + ["--images", "rgb.png", "--out_image",
                                                    str(tmp_path / "out2")])["csv"])
    by_name = {row["image"]: row for row in second}
    assert by_name["rgb.png"]["bank_cached"] == "1"
    assert by_name["rgb.png"]["psnr"] == {r["image"]: r for r in first}["rgb.png"]["psnr"]
    # Another seed: another noise, another bank.
    third = read_rows(Pixel2Pixel_syn.main(argv + ["--seed", "5", "--out_image", str(tmp_path / "out3")])["csv"])
    assert {row["bank_cached"] for row in third} == {"0"}


def test_syn_mm_rule_and_explicit_mm(tmp_path, clean_dataset, capsys):
    base = ["--data_path", str(clean_dataset), "--dataset", "tiny", "--images", "gray.png", "--max_epoch", "2",
            *SMALL, *outputs(tmp_path)]
    Pixel2Pixel_syn.main(base + ["--nt", "gauss", "--nl", "10"])
    assert "Using --mm 2 (paper rule for gauss 10)" in capsys.readouterr().out
    Pixel2Pixel_syn.main(base + ["--nt", "poiss", "--nl", "50"])
    assert "Using --mm 8 (paper rule for poiss 50)" in capsys.readouterr().out
    Pixel2Pixel_syn.main(base + ["--nt", "gauss", "--nl", "25", "--mm", "3"])
    assert "Using --mm 3 (given)" in capsys.readouterr().out
    assert pixel2pixel.paper_mm("bernoulli", 0.5) == 2
    assert pixel2pixel.paper_mm("gauss", 25) == 4
    assert pixel2pixel.paper_mm("impulse", 0.1) == 8


def test_real_end_to_end(tmp_path, real_dataset, capsys):
    summary = Pixel2Pixel_real.main(["--data_path", str(real_dataset), "--dataset", "pairs", "--nn", "12",
                                     "--mm", "6", "--max_epoch", "150", "--ws", "10", "--ps", "3",
                                     "--device", "cpu", "--no_progress",
                                     *outputs(tmp_path)])
    printed = capsys.readouterr().out
    assert re.search(r"^Image: a\.png \| PSNR: \d+\.\d\d dB \| SSIM: \d\.\d{4}$", printed, re.M)
    (row,) = read_rows(summary["csv"])
    assert float(row["psnr"]) > float(row["noisy_psnr"]) + 2.0
    assert os.path.exists(os.path.join(os.path.dirname(summary["csv"]), "a_noisy.png"))


def test_sample_dataset_is_made_on_first_use(tmp_path):
    data = tmp_path / "data"
    argv = ["--data_path", str(data), "--dataset", "sample", "--max_epoch", "1", *SMALL, *outputs(tmp_path)]
    summary = Pixel2Pixel_syn.main(argv + ["--nt", "gauss", "--nl", "25"])
    assert summary["images"] == 2
    assert sorted(os.listdir(data / "sample" / "GT")) == sorted(os.listdir(data / "sample" / "Noisy"))
    assert Pixel2Pixel_real.main(argv + ["--nn", "8", "--mm", "4"])["images"] == 2


@pytest.mark.parametrize("extra,message", [
    (["--dataset", "nope"], "does not exist; check --data_path and --dataset, or fetch the benchmark sets with: "
                            "python -m data.download kodak mcmaster polyu"),
    (["--mm", "9"], "cannot exceed --nn 8"),
    (["--mm", "1"], "must be >= 2"),
    (["--nt", "saltpepper", "--nl", "0.7"], "saltpepper"),
    (["--ps", "4"], "must be odd"),
    (["--images", "missing.png"], "missing.png"),
    (["--max_epoch", "0"], "--max_epoch"),
    (["--batch_images", "0"], "--batch_images 0"),
    (["--precision", "fp16"], "invalid choice"),
])
def test_user_mistakes_are_one_line_errors(tmp_path, clean_dataset, extra, message):
    argv = ["--data_path", str(clean_dataset), "--dataset", "tiny", "--nt", "gauss", "--nl", "25",
            *SMALL, *outputs(tmp_path), "--max_epoch", "1", *extra]
    with pytest.raises(UserError, match=re.escape(message)):
        Pixel2Pixel_syn.main(argv)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_command_line_error_is_one_line_and_exit_2(tmp_path, clean_dataset):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "Pixel2Pixel_syn.py"), "--data_path",
                             str(clean_dataset), "--dataset", "tiny", "--device", "cuda", *outputs(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --device cuda: CUDA is not available on this machine; use --device cpu"]
    assert not (tmp_path / "out").exists()  # nothing written for a run that never started


@pytest.fixture
def same_size_dataset(tmp_path, photo):
    """Three 40 x 44 RGB crops of one photograph and one gray image of another size."""
    folder = tmp_path / "data" / "same"
    folder.mkdir(parents=True)
    from skimage import data as skdata
    coffee = skdata.coffee()
    for index, (top, left) in enumerate([(150, 200), (60, 300), (250, 100)]):
        utils.save_image(str(folder / f"c{index}.png"), coffee[top:top + 40, left:left + 44].copy())
    utils.save_image(str(folder / "gray.png"), skdata.camera()[350:386, 150:190].copy())
    return tmp_path / "data"


def test_images_trained_together_match_images_trained_alone(tmp_path, same_size_dataset, capsys):
    argv = ["--data_path", str(same_size_dataset), "--dataset", "same", "--nt", "gauss", "--nl", "25",
            "--max_epoch", "5", "--precision", "fp32", *SMALL, "--save", str(tmp_path / "cache")]
    alone_summary = Pixel2Pixel_syn.main(argv + ["--out_image", str(tmp_path / "alone")])
    alone = {row["image"]: row for row in read_rows(alone_summary["csv"])}
    capsys.readouterr()
    summary = Pixel2Pixel_syn.main(argv + ["--out_image", str(tmp_path / "together"), "--batch_images", "2"])
    printed = capsys.readouterr().out
    together = {row["image"]: row for row in read_rows(summary["csv"])}
    assert sorted(together) == sorted(alone) == ["c0.png", "c1.png", "c2.png", "gray.png"]
    assert len(re.findall(r"^Image: \S+ \| PSNR: ", printed, re.M)) == 4
    for name, row in together.items():
        assert row["status"] == "ok" and row["attempts"] == "1" and row["precision"] == "fp32"
        # Five steps: too few for rounding to grow, enough for each network to differ
        # from the others, so a mixed-up image, bank or network would show.
        assert float(row["psnr"]) == pytest.approx(float(alone[name]["psnr"]), abs=2e-3)
    assert "Processed c1.png" in printed.split("Image: c0.png")[0]  # c0 and c1 trained together
    # Batching is not a setting of the result: both runs share one folder name.
    run_name = os.path.basename(os.path.dirname(summary["csv"]))
    assert run_name == os.path.basename(os.path.dirname(alone_summary["csv"]))
    assert run_name == "gauss_25_ws10_ps3_nn8_mm4_L1_it5_seed123_shift"


def test_a_failed_image_of_a_batch_is_retried_alone(tmp_path, same_size_dataset, monkeypatch, capsys):
    import network
    real_train_networks = network.train_networks

    def second_image_diverges(banks, *args, **kwargs):
        models, losses = real_train_networks(banks, *args, **kwargs)
        if len(banks) > 1:
            losses[1, -1] = float("nan")
        return models, losses

    monkeypatch.setattr(network, "train_networks", second_image_diverges)
    argv = ["--data_path", str(same_size_dataset), "--dataset", "same", "--nt", "gauss", "--nl", "25",
            "--max_epoch", "20", "--precision", "fp32", "--batch_images", "3", "--images", "c0.png", "c1.png",
            "c2.png", *SMALL, *outputs(tmp_path)]
    rows = read_rows(Pixel2Pixel_syn.main(argv)["csv"])
    assert [(row["image"], row["attempts"], row["status"]) for row in rows] == [
        ("c0.png", "1", "ok"), ("c1.png", "2", "ok"), ("c2.png", "1", "ok")]
    (warning,) = capsys.readouterr().err.strip().splitlines()  # one line naming the image, its failure, the seed
    assert "c1.png" in warning and "non-finite loss" in warning and "1123" in warning


@pytest.mark.parametrize("text,environment,expected", [
    (None, {}, None),
    ("1/3", {}, (1, 3)),
    ("0/1", {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "8"}, (0, 1)),  # the flag wins
    (None, {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "8"}, (5, 8)),
    (None, {"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "10"}, (2, 4)),
])
def test_shard_from_flag_or_slurm(text, environment, expected):
    assert datasets.parse_shard(text, environment) == expected


@pytest.mark.parametrize("text", ["3/3", "-1/2", "1", "a/b", "0/0"])
def test_bad_shard_is_a_user_error(text):
    with pytest.raises(UserError, match="--shard"):
        datasets.parse_shard(text, {})


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_cover_the_listing_once(count):
    names = [f"{index:02d}.png" for index in range(10)]
    shards = [datasets.shard_names(names, (index, count)) for index in range(count)]
    assert sorted(sum(shards, [])) == names


def test_shards_share_a_run_folder_and_resume_from_csvs_alone(tmp_path, same_size_dataset, capsys):
    argv = ["--data_path", str(same_size_dataset), "--dataset", "same", "--nt", "gauss", "--nl", "25",
            "--max_epoch", "3", "--precision", "fp32", *SMALL, *outputs(tmp_path)]
    first = Pixel2Pixel_syn.main(argv + ["--shard", "0/2"])
    second = Pixel2Pixel_syn.main(argv + ["--shard", "1/2"])
    run_dir = os.path.dirname(first["csv"])
    assert os.path.dirname(second["csv"]) == run_dir
    assert [row["image"] for row in read_rows(first["csv"])] == ["c0.png", "c2.png"]
    assert [row["image"] for row in read_rows(second["csv"])] == ["c1.png", "gray.png"]
    # A clone of the committed CSVs, without the images: the whole run is done.
    for name in os.listdir(run_dir):
        if name.endswith(".png"):
            os.remove(os.path.join(run_dir, name))
    capsys.readouterr()
    merged = Pixel2Pixel_syn.main(argv)
    printed = capsys.readouterr().out
    assert printed.count("Skipping ") == 4 and "Image: " not in printed
    assert merged["images"] == 4
    every_row = read_rows(first["csv"]) + read_rows(second["csv"])
    assert merged["psnr"] == pytest.approx(np.mean([float(row["psnr"]) for row in every_row]))


def test_a_run_resumes_in_another_precision_into_the_same_folder_and_says_so(tmp_path, clean_dataset, capsys):
    """Precision is no part of a run folder's name: a cell started where --precision auto
    chose bf16 resumes on a machine where it chooses fp32, every row recording its own."""
    argv = ["--data_path", str(clean_dataset), "--dataset", "tiny", "--nt", "gauss", "--nl", "25",
            "--max_epoch", "3", "--precision", "fp32", *SMALL, *outputs(tmp_path)]
    first = Pixel2Pixel_syn.main(argv)
    path = first["csv"]
    with open(path) as handle:  # as if gray.png had been made on a machine that trained in bf16
        lines = handle.read().splitlines()
    lines = [lines[0]] + [line.replace(",fp32,", ",bf16,") for line in lines[1:] if line.startswith("gray")]
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    capsys.readouterr()
    second = Pixel2Pixel_syn.main(argv)
    assert second["csv"] == path
    (note,) = [line for line in capsys.readouterr().out.splitlines() if "bf16" in line]
    assert "fp32" in note  # both precisions named
    assert {row["image"]: row["precision"] for row in read_rows(path)} == {"gray.png": "bf16", "rgb.png": "fp32"}
