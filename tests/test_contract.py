"""Issue #33's cases, one test each: the Python API, the baselines and the tools refuse a
bad input in one clear error before any work, skip an image a method cannot take, and
never write over or drop results."""
import os

import numpy as np
import pytest
import torch

import methods
import network
import Pixel2Pixel_syn
import runs
import utils
from helpers import SMALL, read_rows
from methods import TrainingFailed
from noise import add_noise
from utils import UserError

from benchmarks import compare
from results import reproduce

QUICK = dict(device="cpu", no_progress=True)


@pytest.fixture
def noisy():
    clean = np.linspace(0.1, 0.9, 20 * 22 * 3, dtype=np.float32).reshape(20, 22, 3)
    return add_noise(clean, "gauss", 25, np.random.default_rng(0))


# ---------------------------------------------------------------------------- the API
@pytest.mark.parametrize("kind", ["uint8", "uint16", "uint8 tensor"])
def test_integer_images_are_scaled_by_their_types_range(noisy, kind):
    top = 255 if kind.startswith("uint8") else 65535
    integers = np.round(noisy * top).astype(np.uint8 if top == 255 else np.uint16)
    given = torch.from_numpy(integers.transpose(2, 0, 1).copy()) if kind.endswith("tensor") else integers
    result = methods.denoise(given, method="nlm", **QUICK)
    result = result.numpy().transpose(1, 2, 0) if kind.endswith("tensor") else result
    expected = methods.denoise(integers.astype(np.float32) / top, method="nlm", **QUICK)
    np.testing.assert_allclose(result, expected, atol=1e-5)
    assert result.mean() < 0.9  # not the all-white image 0..255 read as 0..1 gives


@pytest.mark.parametrize("method", sorted(methods.METHODS))
@pytest.mark.parametrize("image", ["0..255 floats", "a NaN pixel", "an inf pixel", "empty", "1-D"])
def test_images_no_method_can_take_are_refused(noisy, method, image):
    bad = {"0..255 floats": noisy * 255, "empty": np.zeros((0, 5, 3), np.float32),
           "1-D": noisy.ravel()}.get(image, noisy.copy())
    if image in ("a NaN pixel", "an inf pixel"):
        bad[3, 4, 1] = np.nan if image == "a NaN pixel" else np.inf
    with pytest.raises(UserError):
        methods.denoise(bad, method=method, **QUICK)


@pytest.mark.parametrize("method", sorted(methods.METHODS))
@pytest.mark.parametrize("noise", [("gauss", -1), ("gauss", 0), ("gauss", float("nan")), ("poiss", 0),
                                   ("poisson", 50), "gauss", ("gauss",)])
def test_the_noise_is_checked_as_the_command_line_checks_it(noisy, method, noise):
    with pytest.raises(UserError, match="--nt|--nl|noise="):
        methods.denoise(noisy, method=method, noise=noise, **QUICK)


@pytest.mark.parametrize("name,value", [("depth", -1), ("lr_gamma", -5), ("seed", 1.5), ("max_epoch", "10"),
                                        ("ws", 3.5), ("width", 0), ("max_epoch", True)])
def test_settings_are_checked_as_the_command_line_checks_them(noisy, name, value):
    with pytest.raises(UserError, match=f"--{name}"):
        methods.denoise(noisy, **{name: value}, **QUICK)


def test_method_none_is_refused(noisy):
    with pytest.raises(UserError, match="--method None"):
        methods.denoise(noisy, method=None)


def test_a_training_that_fails_on_every_attempt_is_an_exception_not_an_image(noisy, monkeypatch):
    monkeypatch.setattr(network, "denoise", lambda model, image, tile=None: torch.full_like(image, float("nan")))
    with pytest.raises(TrainingFailed) as failed:
        methods.denoise(noisy, ws=4, ps=3, nn=4, mm=2, max_epoch=2, max_retries=1, **QUICK)
    assert failed.value.status == "non-finite output" and failed.value.attempts == 2


# ---------------------------------------------------------------------------- the baselines
def script_run(tmp_path, images, *flags):
    folder = tmp_path / "data" / "set"
    folder.mkdir(parents=True)
    for name, pixels in images.items():
        utils.save_image(str(folder / name), pixels)
    return Pixel2Pixel_syn.main(["--data_path", str(tmp_path / "data"), "--dataset", "set", "--nt", "gauss",
                                 "--nl", "25", "--out_image", str(tmp_path / "out"), *QUICK_FLAGS, *flags])


QUICK_FLAGS = ["--device", "cpu", "--no_progress"]


@pytest.mark.parametrize("method,small", [("bm3d", (8, 8)), ("bm3d", (2, 30)), ("nlm", (6, 30))])
def test_an_image_a_method_cannot_take_is_skipped_and_the_rest_runs(tmp_path, photo, method, small):
    summary = script_run(tmp_path, {"small.png": photo[:small[0], :small[1]], "fine.png": photo}, "--method", method)
    assert summary["images"] == 1 and len(summary["skipped"]) == 1 and "small.png" in summary["skipped"][0]
    assert [row["image"] for row in read_rows(summary["csv"])] == ["fine.png"]


def test_bm3d_at_poisson_lambda_a_million_runs_in_bounded_memory(noisy):
    result = methods.denoise(noisy, method="bm3d", noise=("poiss", 1e6), **QUICK)
    assert np.isfinite(result).all() and result.shape == noisy.shape


@pytest.mark.parametrize("method", ["nlm", "bm3d"])
def test_rows_of_a_method_that_trains_nothing_record_no_precision(tmp_path, photo, method):
    summary = script_run(tmp_path, {"a.png": photo}, "--method", method, "--precision", "bf16")
    assert [row["precision"] for row in read_rows(summary["csv"])] == ["n/a"]


# ---------------------------------------------------------------------------- rows
def test_a_non_finite_output_is_a_status_never_ok(tmp_path, photo, monkeypatch):
    monkeypatch.setattr(methods.nlm, "denoise", lambda image, settings, name="image": methods.Denoised(
        torch.full_like(image, float("nan")), {}))
    monkeypatch.setitem(methods.METHODS, "nlm", methods.dataclasses.replace(methods.METHODS["nlm"],
                                                                           denoise=methods.nlm.denoise))
    summary = script_run(tmp_path, {"a.png": photo}, "--method", "nlm")
    (row,) = read_rows(summary["csv"])
    assert row["status"] != "ok" and row["status"] in methods.interface.FAILURES


@pytest.mark.parametrize("psnr", ["inf", "nan"])
def test_rows_with_a_non_finite_psnr_are_read_not_redone(tmp_path, psnr):
    path = tmp_path / "results.csv"
    status = "ok" if psnr == "inf" else "non-finite output"  # inf: a perfect estimate of an all-zero image
    path.write_text(f"image,psnr,ssim,noisy_psnr,seconds,device,precision,attempts,status\n"
                    f"a.png,{psnr},1.0,inf,1.0,cpu,fp32,1,{status}\n")
    assert [row["psnr"] for row in runs.read_rows(str(path))] == [psnr]


def test_a_csv_with_a_byte_order_mark_is_read_and_kept(tmp_path):
    path = tmp_path / "results.csv"
    path.write_bytes("\ufeffimage,psnr,ssim,noisy_psnr,seconds,device,precision,attempts,status\n"
                     "a.png,30.0,0.9,20.0,1.0,cpu,fp32,1,ok\n".encode("utf-8"))
    csv_file = runs.ResultsCSV(str(path), runs.csv_fields())
    csv_file.add({"image": "b.png", "psnr": "31.0", "ssim": "0.9", "noisy_psnr": "20.0", "seconds": "1.0",
                  "device": "cpu", "precision": "fp32", "attempts": 1, "status": "ok"})
    assert [row["image"] for row in runs.read_rows(str(path))] == ["a.png", "b.png"]


# ---------------------------------------------------------------------------- the tools
@pytest.fixture
def tables(tmp_path, tiny_kodak):
    """A folder holding one run of kodak_gauss25 on conftest's three-image 'kodak'."""
    tables = tmp_path / "results" / "tables"
    reproduce.main(["run", "kodak_gauss25", "--data_path", str(tiny_kodak), "--tables", str(tables),
                    "--max_epoch", "2", *SMALL])
    return tables


def snapshot(folder):
    return {path: open(path, "rb").read() for path in (os.path.join(root, name) for root, _, names in os.walk(folder)
                                                       for name in names)}


@pytest.mark.parametrize("mistake", ["readme beside", "mistyped flag", "damaged run.json"])
def test_readme_refuses_before_it_writes(tmp_path, tables, mistake):
    argv = ["readme", "--tables", str(tables), "--data_path", str(tmp_path / "data"), "--max_epoch", "2", *SMALL,
            "--project_readme", ""]
    if mistake == "readme beside":
        (tables.parent / "README.md").write_text("# My own project\n")
    elif mistake == "mistyped flag":
        argv.append("--max_epoc")
    else:
        (run_json,) = [os.path.join(root, "run.json") for root, _, names in os.walk(tables) if "run.json" in names]
        with open(run_json, "w") as handle:
            handle.write("{not json")
    before = snapshot(tmp_path / "results")
    with pytest.raises(UserError):
        reproduce.main(argv)
    assert snapshot(tmp_path / "results") == before


def test_readme_reads_a_run_whose_psnr_cell_is_empty(tmp_path, tables):
    (csv_path,) = [os.path.join(root, "results.csv") for root, _, names in os.walk(tables) if "results.csv" in names]
    lines = open(csv_path).read().splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")
    cells[header.index("psnr")] = ""
    cells[header.index("status")] = "collapsed output"
    with open(csv_path, "w") as handle:
        handle.write("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    reproduce.main(["readme", "--tables", str(tables), "--data_path", str(tmp_path / "data"), "--max_epoch", "2",
                    *SMALL, "--project_readme", ""])
    assert (tables.parent / "README.md").read_text().startswith(reproduce.README_TITLE)


def run_folder_of(tables):
    (folder,) = [root for root, _, names in os.walk(tables) if "results.csv" in names]
    return folder


@pytest.mark.parametrize("variant", ['quote=--seed "7', "typo=--max_epoc 2", "x=--noise pink"])
def test_compare_checks_every_variant_before_running_any(tmp_path, tables, variant):
    out = tmp_path / "compare"
    with pytest.raises(UserError, match="--variant"):
        compare.main([run_folder_of(tables), "--variant", "good=--seed 7", "--variant", variant, "--out", str(out),
                      "--data_path", str(tmp_path / "data")])
    assert not out.exists()


def test_compare_names_its_report_by_dataset_and_setting_and_keeps_a_good_one(tmp_path, tables, monkeypatch):
    folder, out = run_folder_of(tables), tmp_path / "compare"
    argv = [folder, "--variant", "seed=--seed 7", "--out", str(out), "--data_path", str(tmp_path / "data"),
            "--images", "kodim01.png"]
    compare.main(argv)
    report = out / f"kodak_{os.path.basename(folder)}.csv"
    good = report.read_bytes()

    def interrupted(argv, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Pixel2Pixel_syn, "main", interrupted)  # a rerun stopped before it finished
    with pytest.raises(KeyboardInterrupt):
        compare.main([*argv[:-1], "kodim02.png"])
    assert report.read_bytes() == good
    assert [row["variant"] for row in read_rows(report)] == ["seed"]
