"""The development set Pixel2Pixel+'s recipe is chosen on (benchmarks/recipe_sweep.py)."""
import csv
import dataclasses

import numpy as np
import pytest
import torch

import network
import utils
from benchmarks import blend_study, recipe_sweep


def test_the_real_noise_stand_in_has_its_level_and_correlated_neighbours():
    clean = np.full((200, 200, 3), 0.5, np.float32)
    noise = recipe_sweep.box_gauss(clean, 25.0, np.random.default_rng(0)) - clean
    assert noise.std() * 255 == pytest.approx(25.0, rel=0.03)
    right = np.corrcoef(noise[:, :-1].ravel(), noise[:, 1:].ravel())[0, 1]
    far = np.corrcoef(noise[:, :-2].ravel(), noise[:, 2:].ravel())[0, 1]
    assert right == pytest.approx(0.5, abs=0.03) and abs(far) < 0.03  # two of four draws shared, then none


@pytest.mark.parametrize("noise", recipe_sweep.NOISES)
def test_each_images_noise_is_seeded_by_itself(noise):
    crops = recipe_sweep.development_set(64)
    assert len(crops) == 8 and all(crop.shape == (64, 64, 3) for crop in crops.values())
    first = recipe_sweep.noisy_version(crops["astronaut"], "astronaut", noise)
    np.testing.assert_array_equal(first, recipe_sweep.noisy_version(crops["astronaut"], "astronaut", noise))
    assert not np.array_equal(first, recipe_sweep.noisy_version(crops["astronaut"], "rocket", noise))


def test_the_table_pairs_each_recipe_with_the_faithful_method_on_the_same_images():
    def row(variant, image, **values):
        return {"variant": variant, "noise": "gauss25", "image": image, "side": "128", **values}

    rows = [row("faithful", "a", psnr="30"), row("faithful", "b", psnr="28"),
            row("length1000", "a", last_k0="31", last_k8="29"), row("length1000", "c", last_k0="20", last_k8="20")]
    lines = recipe_sweep.table(rows).splitlines()
    assert "| faithful | the method's | 29.00 (2) |" in lines
    # c has no faithful row: in the mean, not in the difference
    assert "| length1000 | on the noisy image | 25.50 (+1.00, 1) |" in lines
    assert "| length1000 | mean over 8 pseudo instances | 24.50 (-1.00, 1) |" in lines
    # Against another recipe: read-out against the same read-out, over the images both have.
    rows.append(row("length500", "a", last_k0="30.5", last_k8="29.5"))
    against = recipe_sweep.table(rows, against="length1000").splitlines()
    assert "| length500 | on the noisy image | 30.50 (-0.50, 1) |" in against
    assert "| length500 | mean over 8 pseudo instances | 29.50 (+0.50, 1) |" in against


def test_a_sweep_writes_a_row_per_variant_and_image_and_resumes(tmp_path):
    argv = ["--side", "64", "--variants", "length250", "--images", "coffee", "--noises", "gauss25", "--precision",
            "fp32", "--out", str(tmp_path / "sweep.csv"), "--curves", str(tmp_path / "curves.csv"),
            "--save_outputs", str(tmp_path / "outputs")]
    recipe_sweep.main(argv)
    rows = list(csv.DictReader(open(tmp_path / "sweep.csv")))
    assert [(row["variant"], row["image"], row["iterations"]) for row in rows] == [("length250", "coffee", "200")]
    assert float(rows[0]["last_k0"]) > float(rows[0]["noisy_psnr"]) and rows[0]["status"] == "ok"
    clean = recipe_sweep.development_set(64)["coffee"]
    for column in ("last_k0", "last_k8"):  # the saved estimates are the ones the row scored
        estimate = np.load(tmp_path / "outputs" / f"length250_gauss25_coffee_64_{column}.npy")
        assert utils.psnr(clean, estimate) == pytest.approx(float(rows[0][column]), abs=1e-4)
    blend_study.main(["--outputs", str(tmp_path / "outputs"), "--out", str(tmp_path / "blend.csv")])
    blended = {row["column"]: row for row in csv.DictReader(open(tmp_path / "blend.csv"))}
    assert sorted(blended) == ["last_k0", "last_k8"]
    for column, row in blended.items():  # each saved estimate found again, and scored as the sweep scored it
        assert (row["variant"], row["noise"], row["image"]) == ("length250", "gauss25", "coffee")
        assert float(row["psnr"]) == pytest.approx(float(rows[0][column]), abs=1e-4)
        assert float(row["noisy_psnr"]) == pytest.approx(float(rows[0]["noisy_psnr"]), abs=1e-4)
    curve = list(csv.DictReader(open(tmp_path / "curves.csv")))
    assert [int(point["iteration"]) for point in curve] == list(range(50, 201, 50))
    recipe_sweep.main(argv)  # everything there: nothing more
    assert len(list(csv.DictReader(open(tmp_path / "sweep.csv")))) == 1


@pytest.mark.parametrize("flag", ["--out", "--curves"])
def test_a_place_it_cannot_write_is_refused_before_any_training(tmp_path, monkeypatch, flag):
    (tmp_path / "a_file").write_text("")
    paths = {"--out": str(tmp_path / "sweep.csv"), "--curves": str(tmp_path / "curves.csv"),
             flag: str(tmp_path / "a_file" / "rows.csv")}
    monkeypatch.setattr(recipe_sweep, "run_plus", lambda *args: pytest.fail("trained before checking " + flag))
    with pytest.raises(utils.UserError, match=flag):
        recipe_sweep.main(["--side", "64", "--variants", "length250", "--images", "coffee", "--noises", "gauss25",
                           "--precision", "fp32", *[word for item in paths.items() for word in item]])


def test_a_method_variant_changes_only_the_setting_it_names():
    noise = ("bernoulli", 0.2)
    plus, out, kept = (recipe_sweep.settings_for(noise, "fp32", recipe_sweep.VARIANTS[name]).params
                       for name in ("plus", "plus_impulses_out", "plus_impulses_kept"))
    assert (plus.impulses, out.impulses, kept.impulses) == ("leave_out", "leave_out", "keep")
    assert out == plus and dataclasses.replace(kept, impulses="leave_out") == plus


@pytest.mark.parametrize("variant", ["faithful", "plus", "plus_impulses_out", "plus_impulses_kept",
                                     "zsn2n"])  # the methods' variants
def test_a_methods_row_has_every_field_whatever_stages_it_has(variant):
    clean = recipe_sweep.development_set(32)["coffee"]
    noise = ("gauss", 25.0)
    noisy = utils.to_tensor(recipe_sweep.noisy_version(clean, "coffee", noise), torch.device("cpu"))
    settings = recipe_sweep.settings_for(noise, "fp32", recipe_sweep.VARIANTS[variant])
    settings = dataclasses.replace(settings, params=dataclasses.replace(settings.params, max_epoch=5))
    row = recipe_sweep.run_method(clean, noisy, settings, "coffee")
    assert row["status"] == "ok" and np.isfinite(row["psnr"]) and float(row["train_seconds"]) > 0
    assert float(row["bank_seconds"]) >= 0


@pytest.mark.parametrize("noise", [("gauss", 25.0), ("poiss", 50.0)])
def test_the_mixed_pairs_variant_trains_what_the_method_does(noise):
    # The sweep's rows of a recipe stand for the method only if both train the same network.
    clean = recipe_sweep.development_set(32)["chelsea"]
    noisy = utils.to_tensor(recipe_sweep.noisy_version(clean, "chelsea", noise), torch.device("cpu"))
    recipe = dataclasses.replace(recipe_sweep.VARIANTS["pairs_mixed_lr2e-3"], iterations_at_256=40, length_exponent=0.0,
                                 min_iterations=1, check_every=0)
    settings = recipe_sweep.settings_for(noise, "fp32")
    bank, held_out = recipe_sweep.build_bank(noisy, settings)
    model, _, _ = recipe_sweep.train(noisy, bank, held_out, settings, recipe)
    plus_settings = recipe_sweep.settings_for(noise, "fp32", recipe_sweep.VARIANTS["plus"])
    plus_settings = dataclasses.replace(plus_settings, params=dataclasses.replace(
        plus_settings.params, max_epoch=40, lr_milestones=(20, 27, 33)))
    result = recipe_sweep.METHODS["pixel2pixel_plus"].denoise(noisy, plus_settings, "chelsea")
    torch.testing.assert_close(result.image, network.denoise(model, noisy), rtol=0, atol=0)


@pytest.mark.parametrize("variant,image", [("lr2e-3_1500", "stereo_motorcycle"), ("faithful", "hubble_deep_field"),
                                           ("plus", "coffee")])
def test_the_blend_study_reads_back_the_names_the_sweep_saves_under(variant, image):
    key = blend_study.parse_name(f"/somewhere/{variant}_boxgauss5_{image}_256_last_k8.npy")
    assert key == {"variant": variant, "noise": "boxgauss5", "image": image, "side": "256", "column": "last_k8"}
    assert blend_study.noise_setting(key["noise"]) == ("boxgauss", 5.0)
