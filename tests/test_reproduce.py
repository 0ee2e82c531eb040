"""results/reproduce.py: cells run for any method, and results/README.md's tables hold the
CSVs' numbers."""
import os

import numpy as np
import pytest

import methods
import runs
import utils
from helpers import SMALL
from utils import UserError

import pipeline
from results import reproduce

SHORT = ("--max_epoch", "3", *SMALL)  # the flags of these tests' runs


def table_cells(text, starts):
    """The cells of the first table line that starts with `starts`."""
    line = next(line for line in text.splitlines() if line.startswith(starts))
    return [cell.strip() for cell in line.split("|")[1:-1]]


def csv_mean(run_dir, key):
    return np.mean([float(row[key]) for row in runs.finished_rows(run_dir).values()])


def test_every_cell_command_parses_and_names_its_run_folder():
    assert len(reproduce.CELLS) == 13
    for cell in reproduce.CELLS:
        args = reproduce.SCRIPTS[cell.script].parse_args(cell.command("nlm").split()[2:])
        assert args.dataset == cell.dataset and args.method == "nlm"
        folder = os.path.basename(reproduce.run_dir(cell, "tables", []))
        assert folder.startswith("real_" if cell.script == "real" else f"{args.nt}_{args.nl:g}_")
        assert folder.endswith("_it3000_seed123_shift")


def test_cells_of_two_methods_and_the_tables_generated_from_their_csvs(tmp_path, tiny_kodak, capsys):
    tables = str(tmp_path / "results" / "tables")
    flags = ["--data_path", str(tiny_kodak), "--max_epoch", "3", "--tables", tables, *SMALL,
             "--save", str(tmp_path / "cache")]
    reproduce.main(["run", "kodak_gauss25", "--shard", "0/2", *flags])
    reproduce.main(["run", "kodak_gauss25", "--shard", "1/2", *flags])
    reproduce.main(["run", "kodak_gauss25", "kodak_gauss50", "--method", "nlm", "--data_path", str(tiny_kodak),
                    "--tables", tables, "--device", "cpu", "--no_progress"])
    capsys.readouterr()
    project_readme = tmp_path / "README.md"
    project_readme.write_text(f"# top\n\n{reproduce.TABLE_START}\nold\n{reproduce.TABLE_END}\n\n## after\n")
    reproduce.main(["readme", "--tables", tables, "--data_path", str(tiny_kodak), "--project_readme",
                    str(project_readme), "--max_epoch", "3", *SMALL])
    text = (tmp_path / "results" / "README.md").read_text()
    cell = reproduce.CELLS_BY_NAME["kodak_gauss25"]
    ours = reproduce.cell_run(cell, "pixel2pixel", tables, SHORT)
    nlm = reproduce.cell_run(cell, "nlm", tables, SHORT)
    assert [row["image"] for row in ours.rows] == ["kodim01.png", "kodim02.png", "kodim03.png"]
    assert os.path.basename(nlm.run_dir) == "gauss_25_nlm_seed123"
    # The faithful table: the CSVs' means, judged only once all 24 images are done.
    faithful = table_cells(text, "| [kodak gauss 25]")
    assert faithful[1] == "29.31 / 0.8182"
    assert faithful[2] == f"{csv_mean(ours.run_dir, 'psnr'):.2f} / {csv_mean(ours.run_dir, 'ssim'):.4f}"
    auto = methods.settings(device="cpu").precision  # bf16 on a CPU with AMX
    assert faithful[3:6] == ["partial", "3/24", auto]
    assert table_cells(text, "| kodak gauss 50")[2:5] == ["not run", "", "0/24"]
    # A column per method that ran, on the same noisy images.
    header = table_cells(text, "| setting |")
    assert header == ["setting", "Pixel2Pixel (paper)", "ZS-N2N (paper)", "ZS-HPD (paper)",
                      "Denoising-NLR (paper)", "pixel2pixel", "nlm"]
    row = dict(zip(header, table_cells(text, "| gauss 25 |")))
    assert row["ZS-N2N (paper)"] == "29.07 / 0.7924"
    for method, run in (("pixel2pixel", ours), ("nlm", nlm)):
        assert row[method] == f"{csv_mean(run.run_dir, 'psnr'):.2f} / {csv_mean(run.run_dir, 'ssim'):.4f} (3/24)"
    assert {r["noisy_psnr"] for r in ours.rows} == {r["noisy_psnr"] for r in nlm.rows}
    # Against the faithful method, image by image; a cell it has not run has no such row.
    paired = table_cells(text, "| kodak gauss 25 | nlm |")
    faithful_psnr = {r["image"]: float(r["psnr"]) for r in ours.rows}
    gaps = [float(r["psnr"]) - faithful_psnr[r["image"]] for r in nlm.rows]
    least_gain = min(float(r["psnr"]) - float(r["noisy_psnr"]) for r in nlm.rows)
    assert paired[2:] == ["3/24", f"{np.mean(gaps):+.2f} dB", str(sum(gap > 0 for gap in gaps)),
                          f"{min(gaps):+.2f} to {max(gaps):+.2f}", f"{least_gain:+.2f} dB", "partial"]
    assert "| kodak gauss 50 | nlm |" not in text
    assert "python Pixel2Pixel_syn.py --dataset kodak --nt gauss --nl 25 --out_image results/tables --method nlm" \
        in text
    # The montage: noisy | denoised | clean, one strip per image (40 x 44, smaller than the crop).
    montage = utils.load_image(os.path.join(nlm.run_dir, "montage.png")).pixels
    assert montage.shape == (3 * 40, 3 * 44, 3)
    clean = utils.load_image(str(tiny_kodak / "kodak" / "kodim01.png")).pixels
    np.testing.assert_allclose(montage[:40, 88:], clean, atol=1 / 255 + 1e-6)
    np.testing.assert_allclose(montage[:40, 44:88], utils.load_image(os.path.join(nlm.run_dir, "kodim01.png")).pixels,
                               atol=1 / 255 + 1e-6)
    # The faithful table, in the project README between its markers.
    top = project_readme.read_text()
    assert top.startswith("# top\n") and top.endswith("## after\n") and "\nold\n" not in top
    assert f"| {faithful[0].replace('](tables/', '](results/tables/')} | {faithful[1]} |" in top


def test_the_best_published_number_of_a_cell_is_the_highest_psnr_of_any_zero_shot_method():
    assert reproduce.best_published(reproduce.CELLS_BY_NAME["kodak_gauss25"]) == (29.88, "ZS-HPD")
    assert reproduce.best_published(reproduce.CELLS_BY_NAME["mcmaster_gauss50"]) == (27.41, "Denoising-NLR")
    assert reproduce.best_published(reproduce.CELLS_BY_NAME["kodak_gauss10"]) is None


def test_the_committed_tables_hold_the_committed_csvs_means():
    text = reproduce.readme_text(reproduce.find_runs())
    for cell in reproduce.CELLS:
        run = reproduce.cell_run(cell, "pixel2pixel")
        assert run is not None and len(run.rows) == cell.images
        faithful = table_cells(text, f"| [{cell.label}]")
        assert faithful[2] == f"{csv_mean(run.run_dir, 'psnr'):.2f} / {csv_mean(run.run_dir, 'ssim'):.4f}"
        if cell.paper_psnr:
            gap = csv_mean(run.run_dir, "psnr") - cell.paper_psnr
            assert faithful[3].startswith(f"{gap:+.2f} dB, {'reproduced' if abs(gap) <= 0.15 else 'not reproduced'}")
        best = reproduce.best_published(cell)
        for method in (name for name in reproduce.METHODS if name != "pixel2pixel"):
            other = reproduce.cell_run(cell, method)
            if best and other and len(other.rows) == cell.images:
                against = table_cells(text, f"| {cell.label} | {method} |")[-1]
                assert against == f"{csv_mean(other.run_dir, 'psnr') - best[0]:+.2f} dB ({best[1]} {best[0]:.2f})"


@pytest.mark.parametrize("values,expected", [(["bf16"] * 3, "bf16"), (["fp32", "bf16", "bf16"], "bf16 (2), fp32 (1)")])
def test_a_mix_of_precisions_is_counted(values, expected):
    assert reproduce.counted(values) == expected


def test_seconds_per_image_are_averaged_per_device():
    rows = [{"device": "gpu", "seconds": "5", "bank_seconds": "", "train_seconds": ""},
            {"device": "cpu", "seconds": "", "bank_seconds": "1", "train_seconds": "699"},  # an older row
            {"device": "cpu", "seconds": "800", "bank_seconds": "", "train_seconds": ""}]
    assert reproduce.seconds_per_image(rows) == "750 (2 on cpu), 5 (1 on gpu)"


@pytest.mark.parametrize("text", [None, "# a README without the markers\n"])
def test_a_project_readme_it_cannot_update_is_refused_before_anything_is_written(tmp_path, text):
    readme = tmp_path / "README.md"
    if text is not None:
        readme.write_text(text)
    (tmp_path / "results" / "tables").mkdir(parents=True)
    with pytest.raises(UserError, match="--project_readme"):
        reproduce.main(["readme", "--tables", str(tmp_path / "results" / "tables"), "--project_readme", str(readme)])
    assert not (tmp_path / "results" / "README.md").exists()


def test_unknown_cell_is_a_user_error():
    with pytest.raises(UserError, match="kodak_gauss99"):
        reproduce.main(["run", "kodak_gauss99"])


def test_time_limit_is_shared_by_the_cells_and_stops_before_a_cell_it_cannot_fit(tmp_path, tiny_kodak, monkeypatch):
    tables = tmp_path / "tables"
    argv = ["run", "kodak_gauss25", "kodak_gauss50", "--data_path", str(tiny_kodak), "--max_epoch", "3",
            "--tables", str(tables), *SMALL, "--save", str(tmp_path / "cache")]
    gauss25, gauss50 = reproduce.CELLS_BY_NAME["kodak_gauss25"], reproduce.CELLS_BY_NAME["kodak_gauss50"]
    # A limit spent by the first image: the first cell stops after it, the second never starts.
    summary = reproduce.main([*argv, "--time_limit", "0.001"])
    assert summary["stopped"] == 2
    assert [row["image"] for row in reproduce.cell_run(gauss25, "pixel2pixel", str(tables), SHORT).rows] == ["kodim01.png"]
    assert reproduce.cell_run(gauss50, "pixel2pixel", str(tables), SHORT) is None
    # One budget for all the cells, as the scripts keep one: a clock that moves 50 s an
    # image. With 180 s, gauss 25's two images left take 100 s (one batch); gauss 50's first
    # batch of 2 would end at 200 s, so it does not start.
    clock = [0.0]
    real_budget, real_batch = pipeline.TimeBudget, pipeline.denoise_batch

    def timed_batch(batch, *args):
        clock[0] += 50.0 * len(batch)
        return real_batch(batch, *args)

    monkeypatch.setattr(pipeline, "TimeBudget", lambda limit: real_budget(limit, clock=lambda: clock[0]))
    monkeypatch.setattr(pipeline, "denoise_batch", timed_batch)
    summary = reproduce.main([*argv, "--time_limit", "180", "--batch_images", "2"])
    assert summary["stopped"] == 1 and clock[0] == 100.0
    assert len(reproduce.cell_run(gauss25, "pixel2pixel", str(tables), SHORT).rows) == 3
    assert reproduce.cell_run(gauss50, "pixel2pixel", str(tables), SHORT) is None
    # The same command resumes: a cell with nothing left takes no time; the next one's first
    # batch always starts (100 s), and its last image fits (150 s).
    clock[0] = 0.0
    summary = reproduce.main([*argv, "--time_limit", "180", "--batch_images", "2"])
    assert not summary.get("stopped") and clock[0] == 150.0
    assert len(reproduce.cell_run(gauss50, "pixel2pixel", str(tables), SHORT).rows) == 3
    with pytest.raises(UserError, match="--time_limit -1"):
        reproduce.main([*argv, "--time_limit", "-1"])
