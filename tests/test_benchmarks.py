"""benchmarks/compare.py and benchmarks/speed.py on small images."""
import csv
import os

import pytest
import torch

import Pixel2Pixel_syn
import config
import runs
from helpers import SMALL
from utils import UserError

from benchmarks import compare, speed


@pytest.fixture
def base_run(tmp_path, clean_dataset):
    summary = Pixel2Pixel_syn.main(["--data_path", str(clean_dataset), "--dataset", "tiny", "--nt", "gauss", "--nl",
                                    "25", "--max_epoch", "3", *SMALL, "--save", str(tmp_path / "cache"),
                                    "--out_image", str(tmp_path / "tables")])
    return os.path.dirname(summary["csv"])


def test_variants_rerun_the_runs_images_and_report_per_image_differences(tmp_path, base_run):
    report = tmp_path / "report.csv"
    compare.main([base_run, "--images", "rgb.png", "--out", str(tmp_path / "compare"), "--report", str(report),
                  "--variant", "same=", "--variant", "seed=--seed 124", "--variant", "unclipped=--noise unclipped",
                  "--variant", "nlm=--method nlm"])
    with open(report) as handle:
        rows = {row["variant"]: row for row in csv.DictReader(handle)}
    assert sorted(rows) == ["nlm", "same", "seed", "unclipped"]
    base = runs.finished_rows(base_run)["rgb.png"]
    for row in rows.values():
        assert row["image"] == "rgb.png" and row["base_psnr"] == base["psnr"]
        assert float(row["difference"]) == pytest.approx(float(row["psnr"]) - float(base["psnr"]), abs=1e-4)
    assert rows["same"]["psnr"] == base["psnr"]  # the same settings rerun: the same result
    assert rows["seed"]["psnr"] != base["psnr"]

    def noisy_psnr(variant):
        (folder,) = (tmp_path / "compare" / variant / "tiny").iterdir()
        return runs.finished_rows(str(folder))["rgb.png"]["noisy_psnr"]

    assert noisy_psnr("same") == noisy_psnr("nlm") == base["noisy_psnr"]  # every method sees the same noisy image
    assert noisy_psnr("unclipped") != base["noisy_psnr"]  # the hook's noise, not the release's


@pytest.mark.parametrize("variant,message", [("x=--noise pink", "--noise pink"), ("a b=--seed 1", "NAME")])
def test_bad_variants_are_user_errors(tmp_path, base_run, variant, message):
    with pytest.raises(UserError, match=message):
        compare.main([base_run, "--variant", variant, "--out", str(tmp_path / "c")])


def test_a_report_place_it_cannot_write_is_refused_before_any_work(tmp_path, base_run, monkeypatch):
    (tmp_path / "a_file").write_text("")
    blocked = str(tmp_path / "a_file" / "report")
    monkeypatch.setattr(speed, "measured", lambda *args: pytest.fail("measured before checking --report"))
    with pytest.raises(UserError, match="--report"):
        speed.main(["bank", "--sizes", "64", "--report", blocked])
    with pytest.raises(UserError, match="--report"):
        compare.main([base_run, "--variant", "seed=--seed 124", "--out", str(tmp_path / "c"), "--report", blocked])
    assert not (tmp_path / "c").exists()  # no rerun started


def test_a_folder_that_is_no_run_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a run folder"):
        compare.main([str(tmp_path), "--variant", "a=--seed 1"])


def test_speed_measures_each_method_in_a_fresh_process(tmp_path, capsys):
    report = tmp_path / "speed.txt"
    summary = speed.main(["methods", "--methods", "nlm", "pixel2pixel", "--iterations", "2", "--report", str(report)])
    (_, nlm), (_, pixel2pixel) = summary["rows"]
    assert nlm["seconds"] > 0 and pixel2pixel["seconds"] > 0 and pixel2pixel["peak MiB"] > 0
    assert report.read_text().splitlines()[1].startswith("nlm")


@pytest.mark.parametrize("words", [["bank", "--sizes", "0"], ["train", "--iterations", "-1"],
                                   ["photo", "--size", "0", "30"], ["train", "--batch_images", "0"],
                                   ["methods", "--iterations", "0"]])
def test_speed_refuses_sizes_and_counts_below_one_naming_the_flag(words, tmp_path):
    with pytest.raises(UserError, match=words[1]):
        speed.main([*words, "--report", str(tmp_path / "speed.txt")])
    assert not (tmp_path / "speed.txt").exists()


@pytest.mark.skipif(not config.bf16_supported(torch.device("cpu")), reason="this CPU has no native bf16")
def test_speed_runs_the_methods_in_each_precision_they_compute_in(tmp_path):
    summary = speed.main(["methods", "--methods", "nlm", "pixel2pixel_plus", "--precisions", "fp32", "bf16",
                          "--iterations", "2"])
    assert [label for label, _ in summary["rows"]] == ["nlm, n/a", "pixel2pixel_plus, fp32", "pixel2pixel_plus, bf16"]
