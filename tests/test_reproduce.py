import dataclasses
import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from skimage import data as skdata

from helpers import ROOT, SMALL
import network
import Pixel2Pixel_syn
import pixel_bank
import utils
from utils import UserError

sys.path.insert(0, os.path.join(ROOT, "results"))
import reproduce  # noqa: E402


@pytest.fixture
def tiny_kodak(tmp_path, photo):
    """A dataset named like Kodak24 with three small images."""
    folder = tmp_path / "data" / "kodak"
    folder.mkdir(parents=True)
    for index in range(3):
        utils.save_image(str(folder / f"kodim0{index + 1}.png"), np.roll(photo, 7 * index, axis=1))
    return tmp_path / "data"


def test_cells_cover_the_issue_and_commands_parse():
    labels = {cell.label for cell in reproduce.CELLS}
    for label in ["kodak gauss 25", "kodak gauss 50", "kodak poiss 50", "McMaster gauss 25", "McMaster gauss 50",
                  "McMaster poiss 50", "PolyU real", "kodak gauss 10", "kodak poiss 10", "kodak poiss 25"]:
        assert label in labels
    for cell in reproduce.CELLS:
        script = reproduce.SCRIPTS[cell.script]
        args = script.parse_args(cell.command().split()[2:])
        assert args.dataset == cell.dataset and args.max_epoch == reproduce.FULL_LENGTH


def test_sharded_cell_runs_and_the_generated_readme(tmp_path, tiny_kodak, capsys):
    tables = str(tmp_path / "results" / "tables")
    flags = ["--data_path", str(tiny_kodak), "--max_epoch", "3", "--precision", "fp32", "--tables", tables,
             *SMALL, "--save", str(tmp_path / "cache")]
    reproduce.main(["run", "kodak_gauss25", "--shard", "0/2", *flags])
    reproduce.main(["run", "kodak_gauss25", "--shard", "1/2", *flags])
    capsys.readouterr()
    project_readme = tmp_path / "README.md"
    project_readme.write_text(f"# top\n\n{reproduce.TABLE_START}\nold\n{reproduce.TABLE_END}\n\n## after\n")
    reproduce.main(["readme", "--tables", tables, "--max_epoch", "3", "--data_path", str(tiny_kodak),
                    "--project_readme", str(project_readme)])
    text = (tmp_path / "results" / "README.md").read_text()
    (run,) = reproduce.cell_runs(reproduce.CELLS_BY_NAME["kodak_gauss25"], tables, 3)
    assert [row["image"] for row in run.rows] == ["kodim01.png", "kodim02.png", "kodim03.png"]
    ours = np.mean([float(row["psnr"]) for row in run.rows])
    line = next(line for line in text.splitlines() if line.startswith("| [kodak gauss 25]"))
    cells = [cell.strip() for cell in line.split("|")[1:-1]]
    assert cells[1] == "29.31 / 0.8182"
    assert cells[2].startswith(f"{ours:.2f} / ")
    assert cells[3] == "partial"  # 3 of 24 images say little about the set's mean
    assert cells[4] == "3/24" and cells[5] == "fp32" and cells[6].startswith("cpu")
    assert "| kodak gauss 50 | 26.26 / 0.7185 | not run | | 0/24 |" in text
    assert "| McMaster gauss 25 | 29.50 | not run |" in text  # no published SSIM
    assert "python Pixel2Pixel_syn.py --dataset kodak --nt gauss --nl 25 --out_image results/tables" in text
    # The montage: noisy | ours | clean, one strip per image (40 x 44 images, smaller than the crop).
    montage = utils.load_image(os.path.join(run.run_dir, "montage.png")).pixels
    assert montage.shape == (3 * 40, 3 * 44, 3)
    clean = utils.load_image(str(tiny_kodak / "kodak" / "kodim01.png")).pixels
    np.testing.assert_allclose(montage[:40, 88:], clean, atol=1 / 255 + 1e-6)
    denoised = utils.load_image(os.path.join(run.run_dir, "kodim01.png")).pixels
    np.testing.assert_allclose(montage[:40, 44:88], denoised, atol=1 / 255 + 1e-6)
    assert "montage.png" in text
    # McMaster's gap analysis needs its clean images, which this data path lacks.
    assert "If 17 of the 18 images scored the paper's mean, the last one scored 9.34 dB." in text
    assert f"(The clean images are not under {tiny_kodak}" in text
    # The same table, in the project README between its markers.
    top = project_readme.read_text()
    assert top.startswith("# top\n") and top.endswith("## after\n") and "\nold\n" not in top
    assert line.replace("](tables/", "](results/tables/") in top


@pytest.mark.parametrize("psnr, done, expected", [
    (29.31 + 0.149, 24, "+0.15 dB, reproduced"), (29.31 - 0.16, 24, "-0.16 dB, not reproduced"),
    (35.0, 23, "partial")])
def test_a_cell_is_judged_only_when_complete(psnr, done, expected):
    assert reproduce.compare_with_paper(reproduce.CELLS_BY_NAME["kodak_gauss25"], psnr, done) == expected
    assert reproduce.compare_with_paper(reproduce.CELLS_BY_NAME["kodak_gauss10"], psnr, done) == ""


def test_collapse_evidence_from_black_outputs(tmp_path):
    """One image scored as an all-black output explains a reported mean: the analysis's
    arithmetic, on constant images whose black-output PSNR is known exactly."""
    cell = reproduce.CELLS_BY_NAME["mcmaster_gauss25"]
    folder = tmp_path / "McMaster"
    folder.mkdir()
    levels = {f"{index}.png": index * 12 + 30 for index in range(1, 19)}  # 8-bit grey levels
    for name, level in levels.items():
        utils.save_image(str(folder / name), np.full((8, 8, 3), level, np.uint8))
    black = {name: -20 * np.log10(level / 255) for name, level in levels.items()}
    scores = {name: 29.0 + 0.1 * index for index, name in enumerate(levels)}
    rows = [{"image": name, "psnr": f"{score:.4f}", "attempts": "2" if name == "5.png" else "1", "status": "ok"}
            for name, score in scores.items()]
    run = reproduce.CellRun(cell, str(tmp_path), {}, rows)
    text = " ".join(reproduce.collapse_evidence(run, cell, str(tmp_path)))
    implied = 18 * 28.38 - 17 * 29.50
    closest = min(black, key=lambda name: abs(black[name] - implied))
    assert f"the last one scored {implied:.2f} dB" in text
    assert f"closest to {implied:.2f}: {closest} {black[closest]:.2f}" in text
    assert f"scores {min(black.values()):.2f} to {max(black.values()):.2f} dB on these images" in text
    ours = np.mean(list(scores.values()))
    if_black = [ours + (black[name] - scores[name]) / 18 for name in scores]
    assert f"Our mean is {ours:.2f} dB" in text
    assert f"would be {min(if_black):.2f} to {max(if_black):.2f} dB" in text
    near = sum(abs(value - 28.38) <= reproduce.COLLAPSE_MATCH_DB for value in if_black)
    assert f"for {near} of the 18 images" in text
    assert ("Rescued by a retry with another seed after a failed first run (seed 123, all the release runs): 5.png."
            in text)
    # An image that stayed collapsed: our mean already holds it; the rest averaged apart.
    rows[7].update(psnr=f"{black['8.png']:.4f}", attempts="3", status="collapsed output")
    scores["8.png"] = black["8.png"]
    text = " ".join(reproduce.collapse_evidence(run, cell, str(tmp_path)))
    rest = np.mean([score for name, score in scores.items() if name != "8.png"])
    assert f"Our mean is {np.mean(list(scores.values())):.2f} dB" in text
    assert "8.png (collapsed output in all 3 training runs" in text
    assert f"The other 17 images average {rest:.2f} dB ({rest - 29.50:+.2f} dB against the paper" in text
    assert "Had one of" not in text
    # Without a complete run, only the part that needs no run of ours.
    partial = " ".join(reproduce.collapse_evidence(None, cell, str(tmp_path)))
    assert "last one scored" in partial and "Our mean" not in partial


def test_unknown_cell_is_a_user_error():
    with pytest.raises(UserError, match="unknown cell nope"):
        reproduce.main(["run", "nope"])


def test_collapse_benchmark_report_is_quoted_with_the_right_verdict(tmp_path, clean_dataset):
    """The README reads back what benchmarks/collapse_benchmark.py wrote, for the cell
    of the same setting only, and says fp32 is to blame only when fp32 trained."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import collapse_benchmark
    benchmarks = tmp_path / "benchmarks"
    benchmarks.mkdir()
    collapse_benchmark.main(["--data_path", str(clean_dataset), "--dataset", "tiny", "--images", "rgb.png",
                             "--precisions", "fp32", "--iterations", "5", "--max_retries", "0",
                             "--out_image", str(tmp_path / "out"), "--report", str(benchmarks / "collapse_tiny.txt"),
                             *SMALL])
    tiny_gauss25 = reproduce.Cell("tiny_gauss25", "syn", "tiny", ["--nt", "gauss", "--nl", "25"], 2, 30.0)
    checks = reproduce.precision_checks(tiny_gauss25, str(benchmarks))
    [check] = checks["rgb.png"]
    csv_row = next(row for row in utils.read_result_rows(
        next((tmp_path / "out" / "tiny").glob("*/results.csv")), ["image", "psnr", "status"]))
    assert (check["precision"], check["runs"], check["status"], check["iterations"]) == ("fp32", "1", "ok", "5")
    assert float(check["psnr"]) == pytest.approx(float(csv_row["psnr"]), abs=0.005)
    clean = utils.load_image(str(clean_dataset / "tiny" / "rgb.png")).pixels
    assert float(check["black"]) == pytest.approx(utils.psnr(clean, np.zeros_like(clean)), abs=0.005)
    assert "bf16 may be to blame" in reproduce.describe_checks("rgb.png", [check])
    assert not reproduce.precision_checks(
        reproduce.Cell("tiny_gauss50", "syn", "tiny", ["--nt", "gauss", "--nl", "50"], 2), str(benchmarks))
    failed = [dict(check, status="collapsed output"), dict(check, precision="bf16", status="collapsed output")]
    assert "the failure is the method's, not bf16's" in reproduce.describe_checks("rgb.png", failed)
    assert "fp32 was not checked" in reproduce.describe_checks("rgb.png", failed[1:])


@pytest.fixture
def tiny_cell(tmp_path, tiny_kodak):
    """Kodak gauss 25 run at 3 iterations on tiny_kodak: (tables folder, its CellRun)."""
    tables = tmp_path / "results" / "tables"
    reproduce.main(["run", "kodak_gauss25", "--data_path", str(tiny_kodak), "--max_epoch", "3", "--precision",
                    "fp32", "--tables", str(tables), *SMALL, "--save", str(tmp_path / "cache")])
    (run,) = reproduce.cell_runs(reproduce.CELLS_BY_NAME["kodak_gauss25"], str(tables), 3)
    (tmp_path / "results" / "benchmarks").mkdir()
    return tables, run


def test_metric_conventions_report_is_computed_from_the_outputs_and_quoted(tmp_path, tiny_kodak, tiny_cell):
    """benchmarks/metric_benchmark.py rescores a cell's saved PNGs: its release rows are the
    CSV's SSIM and PSNR, the others the conventions' own numbers, and the README names the
    SSIM convention closest to the paper's."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import metric_benchmark
    tables, run = tiny_cell
    benchmarks = tmp_path / "results" / "benchmarks"
    report = benchmarks / "metric_conventions.txt"
    metric_benchmark.main([run.run_dir, "--data_path", str(tiny_kodak), "--report", str(report)])
    header, *rows = report.read_text().splitlines()
    assert header.startswith("Metric conventions, kodak gauss 25, 3 images, ")
    values = {name: float(value) for name, value in (row.rsplit(None, 1) for row in rows)}
    ssims = {name[5:]: value for name, value in values.items() if name.startswith("SSIM ")}
    assert list(ssims) == list(metric_benchmark.SSIM_CONVENTIONS)
    assert ssims["colour, 7x7 uniform window"] == pytest.approx(np.mean([float(row["ssim"]) for row in run.rows]),
                                                                abs=1e-4)
    # The Gaussian-window colour SSIM and the 8-bit PSNR, recomputed here from the PNGs.
    from skimage.metrics import structural_similarity
    gaussian, png_psnrs = [], []
    for row in run.rows:
        clean = utils.load_image(str(tiny_kodak / "kodak" / row["image"])).pixels
        ours = utils.load_image(os.path.join(run.run_dir, row["image"])).pixels
        gaussian.append(structural_similarity(utils.quantize(clean, rounding=True), utils.quantize(ours, rounding=True),
                                              channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False))
        png_psnrs.append(utils.psnr(clean, ours))
    assert ssims["colour, 11x11 Gaussian window"] == pytest.approx(np.mean(gaussian), abs=1e-4)
    assert len(set(ssims.values())) == len(ssims)  # the conventions really differ
    assert values["PSNR float output"] == pytest.approx(np.mean([float(row["psnr"]) for row in run.rows]), abs=1e-4)
    assert values["PSNR 8-bit PNG as saved (truncated)"] == pytest.approx(np.mean(png_psnrs), abs=1e-4)
    cell = reproduce.CELLS_BY_NAME["kodak_gauss25"]
    found = reproduce.metric_conventions(cell, str(benchmarks))
    assert (found.report, found.images, found.ssim) == ("benchmarks/metric_conventions.txt", 3, ssims)
    assert list(found.psnr) == ["float output", "8-bit PNG as saved (truncated)"]
    assert reproduce.metric_conventions(reproduce.CELLS_BY_NAME["kodak_gauss50"], str(benchmarks)) is None
    closest = min(ssims, key=lambda name: abs(ssims[name] - 0.8182))
    text = reproduce.readme_text(str(tables), 3, str(tiny_kodak))
    assert "Metrics (`benchmarks/metric_conventions.txt`, 3 of 24 images)" in text
    assert f"Closest to the paper's 0.8182: {closest} ({ssims[closest] - 0.8182:+.4f})" in text
    png_difference = np.mean(png_psnrs) - np.mean([float(row["psnr"]) for row in run.rows])
    assert f"({png_difference:+.2f}) on the 8-bit PNG as saved (truncated)" in text
    # A convention within SSIM_MATCH of the paper's is named as possibly the paper's.
    found.ssim["luma Y (BT.601), 7x7 uniform window"] = 0.8182 + 0.004
    assert "may be the paper's convention" in " ".join(reproduce.describe_metric_conventions(cell, found))
    # A run whose PNGs are gone (a clone) or whose CSV disagrees is refused, not misreported.
    csv_path = os.path.join(run.run_dir, "results.csv")
    with open(csv_path) as handle:
        original = handle.read()
    with open(csv_path, "w") as handle:
        handle.write(original.replace(run.rows[0]["ssim"], "0.123456", 1))
    with pytest.raises(UserError, match="differs from its results CSV"):
        metric_benchmark.main([run.run_dir, "--data_path", str(tiny_kodak)])
    with open(csv_path, "w") as handle:
        handle.write(original)
    os.remove(os.path.join(run.run_dir, "kodim02.png"))
    with pytest.raises(UserError, match="kodim02.png is missing"):
        metric_benchmark.main([run.run_dir, "--data_path", str(tiny_kodak)])
    # --saved_only scores the images whose PNGs are here; for a complete cell (three images
    # here) the README estimates each convention's cell mean from them, saying so.
    os.remove(report)
    metric_benchmark.main([run.run_dir, "--data_path", str(tiny_kodak), "--report", str(report), "--saved_only"])
    header, *rows = report.read_text().splitlines()
    assert header.startswith("Metric conventions, kodak gauss 25, 2 images, ")
    assert header.endswith("; 1 finished images left out, their PNGs not here")
    subset = {name: float(value) for name, value in (row.rsplit(None, 1) for row in rows)}
    kept = [row for row in run.rows if row["image"] != "kodim02.png"]
    assert subset["SSIM colour, 7x7 uniform window"] == pytest.approx(np.mean([float(r["ssim"]) for r in kept]),
                                                                     abs=1e-4)
    found = reproduce.metric_conventions(cell, str(benchmarks))
    cell_ssim = np.mean([float(row["ssim"]) for row in run.rows])
    shift = cell_ssim - subset["SSIM colour, 7x7 uniform window"]
    complete_cell = reproduce.Cell(**{**cell.__dict__, "images": 3})
    text = " ".join(reproduce.describe_metric_conventions(complete_cell, found, run))
    assert "(`benchmarks/metric_conventions.txt`, 2 of 3 images; the other images' outputs were not kept" in text
    assert f"our SSIM ({cell_ssim:.4f})" in text
    assert f"colour, 11x11 Gaussian window {subset['SSIM colour, 11x11 Gaussian window'] + shift:.4f}" in text
    # A partial cell's report is quoted as it is.
    assert f"our SSIM ({subset['SSIM colour, 7x7 uniform window']:.4f})" in " ".join(
        reproduce.describe_metric_conventions(cell, found))


def test_psnr_conventions_are_judged_against_the_paper_and_across_cells():
    """A PSNR convention that closes one cell's gap is named as a possible cause, and its fit
    over every complete cell is counted against the release's float PSNR."""
    cell = reproduce.CELLS_BY_NAME["polyu_real"]
    truncated = "8-bit PNG as saved (truncated)"
    psnr = {"float output": cell.paper_psnr + 0.26, truncated: cell.paper_psnr + 0.14}
    gaps = {"kodak gauss 25": {"float output": 0.07, truncated: 0.05},
            "kodak poiss 50": {"float output": -0.07, truncated: -0.17},
            "PolyU real": {"float output": 0.26, truncated: 0.14}}
    text = reproduce.describe_psnr_conventions(cell, psnr, gaps)
    assert text.startswith(f" Against the paper's {cell.paper_psnr:.2f} dB: +0.26 dB on the float output, "
                           f"+0.14 dB on the {truncated}.")
    assert f"Scored on the {truncated}, this cell is within 0.15 dB of the paper" in text
    assert ("stand at kodak gauss 25 +0.05, kodak poiss 50 -0.17, PolyU real +0.14 dB from the paper's: "
            "2 of 3 within 0.15 dB, against 2 on the float output, so it fits the paper's tables no better") in text
    gaps["kodak poiss 50"][truncated] = -0.10
    assert "3 of 3 within 0.15 dB, against 2 on the float output, so it fits the paper's tables better." in (
        reproduce.describe_psnr_conventions(cell, psnr, gaps))
    # Nothing to explain when the release's own scoring is within, or when no convention closes the gap.
    for float_gap, truncated_gap in ((0.10, 0.05), (0.30, 0.20)):
        text = reproduce.describe_psnr_conventions(
            cell, {"float output": cell.paper_psnr + float_gap, truncated: cell.paper_psnr + truncated_gap}, gaps)
        assert "possible cause" not in text and "stand at" not in text


def test_readme_writes_a_complete_cells_metric_report_while_its_pngs_are_here(tmp_path, tiny_kodak, tiny_cell,
                                                                               monkeypatch, capsys):
    tables, run = tiny_cell
    report = tmp_path / "results" / "benchmarks" / "metric_conventions_kodak_gauss25.txt"
    readme = ["readme", "--tables", str(tables), "--max_epoch", "3", "--data_path", str(tiny_kodak),
              "--project_readme", ""]
    reproduce.main(readme)
    assert not report.exists()  # 3 of 24 images: not complete
    monkeypatch.setattr(reproduce.CELLS_BY_NAME["kodak_gauss25"], "images", 3)
    reproduce.main(readme)
    assert f"wrote {report}" in capsys.readouterr().out
    header, *rows = report.read_text().splitlines()
    assert header.startswith("Metric conventions, kodak gauss 25, 3 images, ")
    release = float(rows[0].rsplit(None, 1)[1])
    assert release == pytest.approx(np.mean([float(row["ssim"]) for row in run.rows]), abs=1e-4)
    assert "Metrics (`benchmarks/metric_conventions_kodak_gauss25.txt`, 3 of 3 images)" in (
        tmp_path / "results" / "README.md").read_text()
    # In a clone, where the denoised PNGs are gone, the committed report is left as it is.
    os.remove(os.path.join(run.run_dir, "kodim03.png"))
    report.write_text(report.read_text().replace(rows[0], rows[0][:-6] + "0.5000"))
    reproduce.main(readme)
    assert "0.5000" in report.read_text() and "wrote " + str(report) not in capsys.readouterr().out


def test_gap_benchmark_reruns_variants_against_the_cell_and_is_quoted(tmp_path, tiny_kodak, tiny_cell, monkeypatch):
    """benchmarks/gap_benchmark.py redoes the cell's own setting exactly (a variant equal to
    it differs by 0), changes only what the variant names, resumes from its report, and
    results/README.md says which variant would close the gap."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import gap_benchmark
    tables, run = tiny_cell
    benchmarks = tmp_path / "results" / "benchmarks"
    report = benchmarks / "gap_kodak_gauss25.txt"
    studies = tmp_path / "studies"
    argv = [run.run_dir, "--data_path", str(tiny_kodak), "--images", "kodim01.png", "kodim02.png",
            "--variants", "mm4", "unclipped", "seed", "--report", str(report), "--out_image", str(studies),
            "--save", str(tmp_path / "cache")]
    gap_benchmark.main(argv)
    header, _, *rows = report.read_text().splitlines()
    assert header.startswith("Gap check, kodak gauss 25, 3 iterations, each variant against ")
    table = {row["image"]: float(row["psnr"]) for row in run.rows}
    parsed = {(image, variant): (float(psnr), float(table_psnr), float(diff))
              for image, variant, psnr, table_psnr, diff in (row.split() for row in rows[:6])}
    for image in ("kodim01.png", "kodim02.png"):
        # mm 4 is the rule's mm for gauss 25: the cell's setting exactly, so the same PSNR.
        assert parsed[(image, "mm4")] == (pytest.approx(table[image], abs=1e-4),) * 2 + (0.0,)
    # Unclipped noise is further from the clean image than the release's clipped noise.
    unclipped = runner_rows(studies / "unclipped")
    for image in ("kodim01.png", "kodim02.png"):
        clipped_noisy = float(next(row for row in run.rows if row["image"] == image)["noisy_psnr"])
        assert float(unclipped[image]["noisy_psnr"]) < clipped_noisy
        assert parsed[(image, "unclipped")][0] == pytest.approx(float(unclipped[image]["psnr"]), abs=1e-4)
    assert rows[6] == "mm4: +0.000 dB over 2 images (rms 0.000, from +0.000 to +0.000); --mm 4"
    seed_differences = [parsed[(image, "seed")][2] for image in ("kodim01.png", "kodim02.png")]
    assert all(difference != 0 for difference in seed_differences)  # another seed is another result
    seed_rms = np.sqrt(np.mean(np.square(seed_differences)))
    assert rows[8].startswith(f"seed: {np.mean(seed_differences):+.3f} dB over 2 images (rms {seed_rms:.3f}, "
                              f"from {min(seed_differences):+.3f} to {max(seed_differences):+.3f}); ")
    # On a CPU-made cell the device variant is the cell's own setting: the same PSNR.
    device_report = tmp_path / "gap_device.txt"  # outside benchmarks/, so the README does not quote it
    gap_benchmark.main([*argv[:5], "--variants", "cpu", "--report", str(device_report), *argv[12:]])
    same = f"{table['kodim01.png']:.4f}"
    assert device_report.read_text().splitlines()[2].split() == ["kodim01.png", "cpu", same, same, "+0.0000"]
    # Resuming the same study trains nothing.
    monkeypatch.setattr(gap_benchmark.runner, "run_one_image", lambda *args: pytest.fail("reran a finished image"))
    gap_benchmark.main(argv)
    with pytest.raises(UserError, match="has no row for kodim09.png"):
        gap_benchmark.main([*argv[:4], "kodim09.png", *argv[6:]])
    # The README quotes the report; with a complete cell it says which variant closes the gap.
    cell = reproduce.CELLS_BY_NAME["kodak_gauss25"]
    checks = reproduce.gap_checks(cell, str(benchmarks))
    assert [(check["variant"], check["images"]) for check in checks] == [("mm4", 2), ("unclipped", 2), ("seed", 2)]
    text = reproduce.readme_text(str(tables), 3, str(tiny_kodak))
    assert "Why the mean differs" in text
    # A cell with no published number has no gap to explain: the reruns' effect only.
    ours_only = reproduce.describe_gap_checks(reproduce.CELLS_BY_NAME["kodak_gauss10"], 30.0, checks)
    assert ours_only[0].startswith("What one change does: ") and "paper" not in " ".join(ours_only)
    assert (f"{checks[2]['description']}: {np.mean(seed_differences):+.2f} dB (2 images, "
            f"{min(seed_differences):+.2f} to {max(seed_differences):+.2f})") in text
    # Chance: two 24-image means differ by the per-image rms / sqrt(24).
    assert (f"two runs of an image differ by {checks[2]['rms']:.2f} dB (rms), so two runs of the whole cell "
            f"would differ by about {checks[2]['rms'] / np.sqrt(24):.2f} dB") in text
    assert reproduce.gap_checks(reproduce.CELLS_BY_NAME["kodak_gauss50"], str(benchmarks)) == []
    fake = [dict(checks[0], difference=-0.30, description="A"), dict(checks[1], difference=-0.02, description="B")]
    text = " ".join(reproduce.describe_gap_checks(cell, 29.31 + 0.40, fake))
    assert "Our mean is +0.40 dB from the paper's" in text and "A would leave +0.10 dB" in text
    assert "B would" not in text
    assert "none of these alone" in " ".join(reproduce.describe_gap_checks(cell, 29.31 + 0.40, fake[1:]))
    # Falling short of the tolerance still says which change comes closest, and by how much.
    # Two images moved by -0.6 dB on average, rms 0.7: a sample variance of 2 * (0.49 - 0.36) = 0.26, so
    # two standard errors for 2 of 24 images are 2 * sqrt(0.26 / 2 * 22 / 23) = 0.71 dB.
    overshoot = [dict(fake[0], difference=-0.60, rms=0.70, description="C"), fake[1]]
    assert ("none of these alone would bring it within 0.15 dB; the nearest, C, would leave -0.20 dB (a guess "
            "from 2 images, give or take 0.71 dB).") in " ".join(reproduce.describe_gap_checks(cell, 29.31 + 0.40,
                                                                                          overshoot))
    single = " ".join(reproduce.describe_gap_checks(cell, 29.31 + 0.40, [dict(fake[0], images=1)]))
    assert "A would leave +0.10 dB (a guess from 1 image: running" in single  # one image says nothing of scatter
    # A variant rerun on every image of the cell is a measurement, not a guess.
    text = " ".join(reproduce.describe_gap_checks(cell, 29.31 + 0.40, [dict(fake[0], images=24)] + fake[1:]))
    assert "Rerun on all 24 images, A scores 29.41 dB, +0.10 dB from the paper's: within 0.15 dB." in text
    assert "A would" not in text and "If every image moved as the other reruns did, none of these" in text
    text = " ".join(reproduce.describe_gap_checks(cell, 29.31 + 0.40, [dict(fake[1], images=24)]))
    assert text.endswith("B scores 29.69 dB, +0.38 dB from the paper's: not within 0.15 dB. ")
    assert "If every image" not in text


def test_gap_benchmark_reruns_a_real_noise_cell(tmp_path, photo, monkeypatch):
    """On a real-noise cell the gap benchmark redoes the real script's setting (GT/Noisy pairs,
    no synthetic noise): the cell's own mm scores the cell's PSNR, --loss L1 changes the
    training loss only, and a variant that changes synthetic noise is refused."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import gap_benchmark
    data = tmp_path / "data"
    rng = np.random.default_rng(3)
    for folder in ("GT", "Noisy"):
        (data / "PolyU" / folder).mkdir(parents=True)
    names = ["Camera_scene_0.png", "Camera_scene_1.png"]  # longer than the report's 14-character column
    for index, name in enumerate(names):
        clean = np.roll(photo, 9 * index, axis=0)
        noisy = np.clip(clean + rng.normal(0, 15, clean.shape), 0, 255).astype(np.uint8)
        utils.save_image(str(data / "PolyU" / "GT" / name), clean)
        utils.save_image(str(data / "PolyU" / "Noisy" / name), noisy)
    tables, cache = tmp_path / "results" / "tables", str(tmp_path / "cache")
    reproduce.main(["run", "polyu_real", "--data_path", str(data), "--max_epoch", "3", "--precision", "fp32",
                    "--tables", str(tables), *SMALL, "--mm", "4", "--save", cache])
    (run,) = reproduce.cell_runs(reproduce.CELLS_BY_NAME["polyu_real"], str(tables), 3)
    report, studies = tmp_path / "gap_polyu.txt", tmp_path / "studies"
    argv = [run.run_dir, "--data_path", str(data), "--images", *names, "--report", str(report),
            "--out_image", str(studies), "--save", cache, "--variants"]
    with pytest.raises(UserError, match="real-noise cell: unclipped changes synthetic noise only"):
        gap_benchmark.main([*argv, "unclipped"])
    assert not report.exists()
    gap_benchmark.main([*argv, "mm4", "L1"])
    header, _, *rows = report.read_text().splitlines()
    assert header.startswith("Gap check, PolyU real, 3 iterations, each variant against ")
    parsed = {(image, variant): float(psnr) for image, variant, psnr, _, _ in (row.split() for row in rows[:4])}
    table = {row["image"]: float(row["psnr"]) for row in run.rows}
    for image in names:
        assert parsed[(image, "mm4")] == pytest.approx(table[image], abs=1e-4)
    (l1_dir,) = (studies / "L1" / "PolyU").iterdir()
    assert l1_dir.name.startswith("real_ws10_ps3_nn8_mm4_L1_")
    l1_rows = runner_rows(studies / "L1")
    for image in names:
        assert parsed[(image, "L1")] == pytest.approx(float(l1_rows[image]["psnr"]), abs=1e-4)
        assert parsed[(image, "L1")] != pytest.approx(table[image], abs=1e-6)  # another loss, another result
        assert l1_rows[image]["bank_cached"] == "1"  # the cell's L2 bank: real cells always match with L2
    assert rows[4] == "mm4: +0.000 dB over 2 images (rms 0.000, from +0.000 to +0.000); --mm 4"
    # The report reads back (names wider than its column included): resuming trains nothing.
    monkeypatch.setattr(gap_benchmark.runner, "run_one_image", lambda *args: pytest.fail("reran a finished image"))
    gap_benchmark.main([*argv, "mm4", "L1"])


def runner_rows(out_image):
    """The finished rows of the one run folder under an --out_image."""
    (results_csv,) = out_image.glob("*/*/results.csv")
    fields = ["image", "psnr", "noisy_psnr", "bank_cached"]
    return {row["image"]: row for row in utils.read_result_rows(str(results_csv), fields)}


@pytest.fixture
def tiny_mcmaster(tmp_path):
    """Four 56 x 60 frames (as McMaster500) and their 40 x 40 centre crops (as McMaster)."""
    frames, crops = tmp_path / "data" / "McMaster500", tmp_path / "data" / "McMaster"
    frames.mkdir(parents=True)
    crops.mkdir()
    image = skdata.astronaut()
    for index in range(4):
        frame = image[100 + 40 * index:156 + 40 * index, 150:210].copy()
        utils.save_image(str(frames / f"{index + 1}.png"), frame)
        utils.save_image(str(crops / f"{index + 1}.png"), frame[8:48, 10:50].copy())
    return tmp_path / "data"


def test_crop_offset_benchmark_scores_each_crop_with_the_cells_noise(tmp_path, tiny_mcmaster, monkeypatch):
    """benchmarks/crop_offset_benchmark.py: the proxy at an offset is the bank mean of that
    crop under the noise the scripts give the image's name; at the centre crop the fit
    reproduces the cell's mean; crops that are not the frames' centre crops are refused."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import crop_offset_benchmark
    tables = tmp_path / "results" / "tables"
    reproduce.main(["run", "mcmaster_gauss25", "--data_path", str(tiny_mcmaster), "--max_epoch", "3", "--precision",
                    "fp32", "--tables", str(tables), *SMALL, "--save", str(tmp_path / "cache")])
    (run,) = reproduce.cell_runs(reproduce.CELLS_BY_NAME["mcmaster_gauss25"], str(tables), 3)
    assert [row["status"] for row in run.rows] == ["ok"] * 4
    report = tmp_path / "results" / "benchmarks" / "crop_offsets_tiny.txt"
    crop_offset_benchmark.main([run.run_dir, "--data_path", str(tiny_mcmaster), "--step", "8", "--no_progress",
                                "--report", str(report)])
    header, _, *rows = report.read_text().splitlines()
    assert header.startswith("Crop offsets, McMaster gauss 25, 4 frames of McMaster500, 15 offsets of 40 x 40, ")
    table = {}
    for row in rows[:15]:
        offset, proxy, predicted, shift = row.split()
        table[tuple(map(int, offset.split(",")))] = (float(proxy), float(predicted), float(shift))
    # Rows 0, 8, 16 by 0, 2, 10, 18, 20: the centre (8, 10), the edges and a step of 8 around it.
    assert sorted(table) == [(top, left) for top in (0, 8, 16) for left in (0, 2, 10, 18, 20)]
    assert table[(8, 10)][2] == 0.0
    # A least-squares fit over every image of the cell predicts the cell's own mean at the centre.
    assert table[(8, 10)][1] == pytest.approx(np.mean([float(row["psnr"]) for row in run.rows]), abs=0.006)
    # The proxy recomputed here: the cell's noise (checked against its CSV at the centre), the bank's mean.
    proxies = {}
    for offset in ((8, 10), (0, 20)):
        scores = []
        for row in run.rows:
            frame = utils.load_image(str(tiny_mcmaster / "McMaster500" / row["image"])).pixels
            clean = np.ascontiguousarray(frame[offset[0]:offset[0] + 40, offset[1]:offset[1] + 40])
            noisy = utils.add_noise(clean, "gauss", 25, np.random.default_rng(utils.image_seed(123, row["image"])))
            if offset == (8, 10):
                assert utils.psnr(clean, noisy) == pytest.approx(float(row["noisy_psnr"]), abs=1e-3)
            bank, _ = pixel_bank.build_pixel_bank(utils.to_tensor(noisy, torch.device("cpu")), 10, 3, 8, "L1")
            scores.append(utils.psnr(clean, utils.to_numpy(bank.mean(dim=0))))
        proxies[offset] = np.mean(scores)
        assert table[offset][0] == pytest.approx(proxies[offset], abs=0.006)
    # Every offset's prediction is the fitted line at its proxy, its shift the change from the centre's.
    assert rows[-2].startswith("fit: method = ") and " over 4 healthy images at the centre crop, r " in rows[-2]
    slope, intercept = float(rows[-2].split()[3]), float(rows[-2].split("proxy ")[1].split()[0])
    for offset, (proxy, predicted, shift) in table.items():
        assert predicted == pytest.approx(slope * proxy + intercept, abs=0.01 + abs(slope) * 0.005)
        assert shift == pytest.approx(predicted - table[(8, 10)][1], abs=0.011)
    assert rows[-1].startswith("summary: crop choice moves the predicted mean from ")
    assert f"top-left {table[(0, 0)][2]:+.2f} dB" in rows[-1]
    # The README quotes the summary for the cell.
    found = reproduce.crop_offset_summary(reproduce.CELLS_BY_NAME["mcmaster_gauss25"],
                                          str(tmp_path / "results" / "benchmarks"))
    assert found == ("benchmarks/crop_offsets_tiny.txt", rows[-1][len("summary: "):])
    assert reproduce.crop_offset_summary(reproduce.CELLS_BY_NAME["mcmaster_gauss50"],
                                         str(tmp_path / "results" / "benchmarks")) is None
    text = reproduce.readme_text(str(tables), 3, str(tiny_mcmaster))
    assert f"(`benchmarks/crop_offsets_tiny.txt`): {rows[-1][len('summary: '):]}" in text
    # With a complete cell: whether the move our mean needs to meet the paper's is one a crop can make.
    summary = "crop choice moves the predicted mean from -0.06 (0,122) to +0.75 (244,0) dB against the centre crop"
    cell = reproduce.CELLS_BY_NAME["mcmaster_gauss25"]  # paper 29.50
    for ours, verdict in ((29.32, "inside that range"), (28.80, "inside that range"), (28.50, "outside that range"),
                          (29.70, "inside that range"), (29.80, "outside that range")):
        (line, _) = reproduce.describe_crop_offsets(cell, "r.txt", summary, ours)
        assert f"Our mean needs {29.50 - ours:+.2f} dB to meet the paper's: {verdict}" in line
    (line, _) = reproduce.describe_crop_offsets(cell, "r.txt", summary, 29.45)
    assert ("Our mean is within 0.15 dB of the paper's with the centre crops (+0.05 dB to meet it); a crop "
            "predicted to move it further than that would lose the match.") in line
    assert "needs" not in reproduce.describe_crop_offsets(cell, "r.txt", summary, None)[0]
    # Another cell of the same crops that is reproduced speaks for the crops, by how far its
    # own crop report says other crops would move it.
    benchmarks = str(tmp_path / "results" / "benchmarks")
    low, high = map(float, reproduce.CROP_RANGE.search(rows[-1]).groups())
    gauss50 = reproduce.CELLS_BY_NAME["mcmaster_gauss50"]
    for difference in (-0.10, 0.15 - high + 0.01, 0.15 - high - 0.01):
        (line, _) = reproduce.describe_crop_offsets(gauss50, "r.txt", summary, 25.30, [(cell, difference)],
                                                    benchmarks)
        assert (f" With the same centre crops McMaster gauss 25 is reproduced ({difference:+.2f} dB); by the same "
                f"proxy other crops would move its mean by {low:+.2f} to {high:+.2f} dB") in line
        assert ("enough to lose that match" in line) == (difference + high > 0.15)
    (line, _) = reproduce.describe_crop_offsets(gauss50, "r.txt", summary, 25.30, [(cell, -0.10)])
    assert line.endswith(" With the same centre crops McMaster gauss 25 is reproduced (-0.10 dB).")
    assert "With the same" not in reproduce.describe_crop_offsets(cell, "r.txt", summary, 29.32, [(cell, -0.10)],
                                                                  benchmarks)[0]
    # reproduced_cells: complete cells within 0.15 dB of the paper's mean.
    ours = np.mean([float(row["psnr"]) for row in run.rows])
    for paper, expected in ((ours + 0.14, [-0.14]), (ours - 0.16, [])):
        monkeypatch.setattr(reproduce, "CELLS", [dataclasses.replace(cell, images=4, paper_psnr=paper)])
        assert [round(difference, 2) for _, difference in reproduce.reproduced_cells(str(tables), 3)] == expected
    # Crops that are not the frames' centre crops are refused.
    shifted = utils.load_image(str(tiny_mcmaster / "McMaster500" / "2.png")).pixels[0:40, 0:40]
    utils.save_image(str(tiny_mcmaster / "McMaster" / "2.png"), utils.quantize(shifted, rounding=True))
    with pytest.raises(UserError, match="2.png is not the centre crop"):
        crop_offset_benchmark.main([run.run_dir, "--data_path", str(tiny_mcmaster), "--no_progress"])


def test_release_scoring_keeps_the_first_run_of_rescued_images(tmp_path, tiny_kodak, tiny_cell, monkeypatch):
    """An image our retry rescued is scored, as the release would score it, at its first
    run (the gap benchmark's noretry rerun): the README gives that mean and its
    difference from the paper beside ours."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import gap_benchmark
    tables, run = tiny_cell
    benchmarks = tmp_path / "results" / "benchmarks"
    gap_benchmark.main([run.run_dir, "--data_path", str(tiny_kodak), "--images", "kodim02.png", "--variants",
                        "noretry", "--report", str(benchmarks / "gap_tiny.txt"), "--out_image",
                        str(tmp_path / "studies"), "--save", str(tmp_path / "cache")])
    first_run = float(runner_rows(tmp_path / "studies" / "noretry")["kodim02.png"]["psnr"])
    cell = reproduce.CELLS_BY_NAME["kodak_gauss25"]
    monkeypatch.setattr(cell, "images", 3)  # the tiny dataset is the whole cell
    (complete,) = reproduce.cell_runs(cell, str(tables), 3)
    assert reproduce.release_scoring(complete, cell, str(benchmarks)) is None  # nothing was retried
    # As if kodim02's first run had failed and a retry had scored 5 dB more.
    results = utils.ResultsCSV(os.path.join(run.run_dir, "results.csv"), list(complete.rows[0]))
    rescued = next(row for row in results.rows if row["image"] == "kodim02.png")
    results.add(dict(rescued, attempts="2", psnr=f"{first_run + 5:.4f}"))
    (complete,) = reproduce.cell_runs(cell, str(tables), 3)
    ours = np.mean([float(row["psnr"]) for row in complete.rows])
    psnr, sentences, reports = reproduce.release_scoring(complete, cell, str(benchmarks))
    assert psnr == pytest.approx(ours - 5 / 3, abs=2e-4)
    assert sentences == [f"kodim02.png {first_run:.2f} dB instead of its retry's {first_run + 5:.2f}"]
    assert reports == ["benchmarks/gap_tiny.txt"]
    text = reproduce.readme_text(str(tables), 3, str(tiny_kodak))
    assert (f"keeping the first run of every image our retry rescued (`benchmarks/gap_tiny.txt`: {sentences[0]}): "
            f"mean {psnr:.2f} dB, {psnr - 29.31:+.2f} dB against the paper.") in text
    assert f"{ours - 29.31:+.2f} dB, not reproduced; as the release scores it {psnr - 29.31:+.2f} dB" in text
    # The noretry rerun is not a variant that moves every image: it is left out of the gap guesses.
    assert reproduce.gap_checks(cell, str(benchmarks)) == []


def test_a_cell_resumes_in_the_precision_it_started_in(tmp_path, tiny_kodak, capsys, monkeypatch):
    """A cell started in fp32 is resumed in fp32 on a machine whose --precision auto would
    pick bf16, so its images stay in one run folder; an explicit --precision wins."""
    tables = tmp_path / "tables"
    argv = ["run", "kodak_gauss25", "--data_path", str(tiny_kodak), "--max_epoch", "3", "--tables", str(tables),
            *SMALL, "--save", str(tmp_path / "cache")]
    reproduce.main([*argv, "--precision", "fp32", "--images", "kodim01.png"])
    monkeypatch.setitem(network.BF16_PROVEN, "cpu", True)
    monkeypatch.setattr(network, "bf16_supported", lambda device: True)
    monkeypatch.setattr(network, "bf16_fast", lambda device: True)
    cell = reproduce.CELLS_BY_NAME["kodak_gauss25"]
    assert reproduce.resume_precision(cell, str(tables), ["--precision", "bf16", "--max_epoch", "3"]) is None
    assert reproduce.resume_precision(cell, str(tables), ["--max_epoch=3"]) == "fp32"
    assert reproduce.resume_precision(cell, str(tables), []) is None  # no full-length run started
    capsys.readouterr()
    reproduce.main(argv)
    assert "Resuming kodak_gauss25 in fp32, the precision of its unfinished run (1/24 images)" in capsys.readouterr().out
    (run,) = reproduce.cell_runs(cell, str(tables), 3)
    assert [(row["image"], row["precision"]) for row in run.rows] == [
        ("kodim01.png", "fp32"), ("kodim02.png", "fp32"), ("kodim03.png", "fp32")]


def test_time_limit_is_shared_by_the_cells_and_stops_before_a_cell_it_cannot_fit(tmp_path, tiny_kodak, capsys,
                                                                                monkeypatch):
    tables = tmp_path / "tables"
    argv = ["run", "kodak_gauss25", "kodak_gauss50", "--data_path", str(tiny_kodak), "--max_epoch", "3",
            "--tables", str(tables), "--precision", "fp32", *SMALL, "--save", str(tmp_path / "cache")]
    gauss25, gauss50 = reproduce.CELLS_BY_NAME["kodak_gauss25"], reproduce.CELLS_BY_NAME["kodak_gauss50"]
    # A limit spent by the first image: the first cell stops after it, the second never starts.
    summary = reproduce.main([*argv, "--time_limit", "0.001"])
    assert summary["stopped"] == 2
    (run,) = reproduce.cell_runs(gauss25, str(tables), 3)
    assert [row["image"] for row in run.rows] == ["kodim01.png"]
    assert not reproduce.cell_runs(gauss50, str(tables), 3)
    assert reproduce.images_left(gauss25, str(tables), ["--max_epoch", "3"]) == 23  # of Kodak24's 24
    # Each cell's script gets what is left, and the next cell does not start when its first
    # batch would not fit: a clock that moves 100 s a cell, so the two images left of the
    # first cell took 50 s each, and the second cell's first batch of 2 needs 100 s.
    clock, limits = [0.0], []
    monkeypatch.setattr(reproduce, "time", SimpleNamespace(perf_counter=lambda: clock[0]))

    def timed_main(script_argv):
        limits.append(script_argv[script_argv.index("--time_limit") + 1])
        result = Pixel2Pixel_syn.main(script_argv)
        clock[0] += 100.0
        return result

    monkeypatch.setitem(reproduce.SCRIPTS, "syn", SimpleNamespace(main=timed_main))
    capsys.readouterr()
    summary = reproduce.main([*argv, "--time_limit", "180", "--batch_images", "2"])
    assert limits == ["180.000"] and summary["stopped"] == 1
    assert ("Stopping before kodak_gauss50: 80 s of --time_limit 180 s left, its first batch would take about "
            "100 s") in capsys.readouterr().out
    (run,) = reproduce.cell_runs(gauss25, str(tables), 3)
    assert len(run.rows) == 3
    # A cell with nothing left to do trains nothing, so it tells nothing of the rate and
    # the next cell starts with what is left.
    limits.clear()
    clock[0] = 0.0
    summary = reproduce.main([*argv, "--time_limit", "180", "--batch_images", "2"])
    assert limits == ["180.000", "80.000"] and not summary.get("stopped")
    assert len(reproduce.cell_runs(gauss50, str(tables), 3)[0].rows) == 3
    with pytest.raises(UserError, match="--time_limit -1: must be a positive number of seconds"):
        reproduce.main([*argv, "--time_limit", "-1"])


def test_a_partial_real_cell_projects_its_gain_over_the_noisy_inputs(tmp_path):
    """The estimate's arithmetic: the finished images' mean gain over their noisy inputs,
    added to the whole set's noisy mean, against the paper's gain over the same set."""
    cell = dataclasses.replace(reproduce.CELLS_BY_NAME["polyu_real"], images=4)
    rng = np.random.default_rng(3)
    root = tmp_path / "PolyU"
    (root / "GT").mkdir(parents=True)
    (root / "Noisy").mkdir()
    noisy_psnrs = {}
    for index in range(4):
        clean = rng.integers(40, 200, (12, 10, 3)).astype(np.uint8)
        noisy = np.clip(clean + rng.normal(0, 4 + 3 * index, clean.shape), 0, 255).astype(np.uint8)
        name = f"img{index}.png"
        utils.save_image(str(root / "GT" / name), clean)
        utils.save_image(str(root / "Noisy" / name), noisy)
        noisy_psnrs[name] = utils.psnr(clean.astype(np.float32) / 255, noisy.astype(np.float32) / 255)
    gains = {"img0.png": 1.0, "img2.png": 2.0}
    rows = [{"image": name, "psnr": f"{noisy_psnrs[name] + gain:.4f}", "noisy_psnr": f"{noisy_psnrs[name]:.4f}"}
            for name, gain in gains.items()]
    run = reproduce.CellRun(cell, str(tmp_path), {}, rows)
    assert reproduce.noisy_input_psnrs(cell, str(tmp_path)) == pytest.approx(noisy_psnrs, abs=1e-6)
    text = " ".join(reproduce.describe_progress(run, str(tmp_path)))
    set_noisy = np.mean(list(noisy_psnrs.values()))
    assert "Partial, 2 of 4 images" in text and "a gain of +1.50 dB (per image +1.00 to +2.00)" in text
    assert f"The whole set's noisy inputs average {set_noisy:.2f} dB" in text
    assert f"a gain of {36.11 - set_noisy:+.2f} dB over them" in text
    assert f"would end near {set_noisy + 1.5:.2f} dB ({set_noisy + 1.5 - 36.11:+.2f} against the paper)" in text
    spread = 2 * np.std([1.0, 2.0], ddof=1) / np.sqrt(2) * np.sqrt(2 / 3)
    assert f"give or take {spread:.2f} dB" in text
    # Without the pairs on disk: the finished images only, and how to get the rest.
    elsewhere = " ".join(reproduce.describe_progress(run, str(tmp_path / "missing")))
    assert "a gain of +1.50 dB" in elsewhere and "would end near" not in elsewhere
    assert "run `readme --data_path`" in elsewhere
    # A complete cell is judged, not projected; synthetic cells have no noisy files.
    complete = reproduce.CellRun(dataclasses.replace(cell, images=2), str(tmp_path), {}, rows)
    assert reproduce.describe_progress(complete, str(tmp_path)) == []
    synthetic = reproduce.CellRun(reproduce.CELLS_BY_NAME["kodak_gauss25"], str(tmp_path), {}, rows)
    assert reproduce.describe_progress(synthetic, str(tmp_path)) == []


def test_seconds_per_image_are_averaged_per_device():
    def row(device, bank, train):
        return {"device": device, "bank_seconds": str(bank), "train_seconds": str(train)}

    cpu = "cpu (x86_64, 2 threads)"
    assert reproduce.seconds_per_image([row(cpu, 1, 719), row(cpu, 3, 737)]) == "730"
    mixed = [row(cpu, 1, 719), row(cpu, 3, 737), row("NVIDIA H100", 0.2, 5.3)]
    # A common mean (488) would describe neither machine.
    assert reproduce.seconds_per_image(mixed) == "6 (1 on NVIDIA H100), 730 (2 on cpu (x86_64, 2 threads))"


def test_a_cell_without_a_published_number_describes_its_gain_over_the_noisy_inputs(tmp_path):
    rows = [{"image": f"kodim0{index}.png", "psnr": str(psnr), "noisy_psnr": str(noisy)}
            for index, (psnr, noisy) in enumerate([(30.0, 20.0), (26.0, 20.0), (33.0, 22.0), (21.0, 14.0)], 1)]
    ours_only = reproduce.CellRun(reproduce.CELLS_BY_NAME["kodak_bernoulli"], str(tmp_path), {}, rows)
    (text, blank) = reproduce.describe_gain(ours_only)
    # Gains 10, 6, 11 and 7 dB over noisy inputs averaging 19 dB.
    assert text == ("Gain over the noisy inputs (19.00 dB on average): +8.50 dB on average, median +8.50, "
                    "from +6.00 to +11.00 dB; least: kodim02.png +6.00, kodim04.png +7.00, kodim01.png +10.00 dB.")
    assert blank == ""
    published = reproduce.CellRun(reproduce.CELLS_BY_NAME["kodak_gauss25"], str(tmp_path), {}, rows)
    assert reproduce.describe_gain(published) == []
