import multiprocessing
import os

import pytest

import runs
from utils import UserError


def row(image, psnr="30.0", status="ok"):
    return {**{field: "" for field in runs.csv_fields()}, "image": image, "psnr": psnr, "status": status}


def test_results_csv_keeps_rows_and_replaces_reruns(tmp_path):
    path = str(tmp_path / "results.csv")
    results = runs.ResultsCSV(path, runs.csv_fields())
    for image, psnr in (("a", "1"), ("b", "2"), ("a", "3")):
        results.add(row(image, psnr))
    assert [(r["image"], r["psnr"]) for r in runs.read_rows(path)] == [("b", "2"), ("a", "3")]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def add_rows(path, images):
    results = runs.ResultsCSV(path, runs.csv_fields())
    for image in images:
        results.add(row(image))


def test_two_processes_writing_one_results_csv_lose_no_row(tmp_path):
    path = str(tmp_path / "results.csv")
    writers = [multiprocessing.get_context("fork").Process(target=add_rows, args=(path, [f"{w}_{i}" for i in range(40)]))
               for w in "ab"]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert len(runs.read_rows(path)) == 80


@pytest.mark.parametrize("damage", ["psnr", "cut", "utf8", "status"])
def test_a_damaged_row_is_left_out_with_a_warning_and_the_rest_kept(tmp_path, capsys, damage):
    path = tmp_path / "results.csv"
    runs.ResultsCSV(str(path), runs.csv_fields()).add(row("a"))
    runs.ResultsCSV(str(path), runs.csv_fields()).add(row("b"))
    text = path.read_bytes()
    if damage == "psnr":
        text = text.replace(b"b,30.0", b"b,thirty")
    elif damage == "cut":  # cut after its last full field: no status, no end of line
        text = text[:text.rindex(b",") + 1]
    elif damage == "utf8":
        text = text.replace(b"b,30.0", b"b,\xff\xfe")
    else:  # a status cut short
        text = text.replace(b",ok\nb", b",o\nb").replace(b"ok\n", b"o\n")
    path.write_bytes(text)
    images = [r["image"] for r in runs.read_rows(str(path))]
    assert images == (["a"] if damage != "status" else [])
    assert "damaged row" in capsys.readouterr().err


def test_an_old_csv_without_a_status_column_is_read(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("image,psnr,ssim\na.png,30.1,0.8\n")
    assert runs.read_rows(str(path))[0]["psnr"] == "30.1"


def test_a_results_csv_that_is_a_folder_is_a_user_error(tmp_path):
    os.makedirs(tmp_path / "results.csv")
    with pytest.raises(UserError, match="not a file"):
        runs.ResultsCSV(str(tmp_path / "results.csv"), runs.csv_fields())
