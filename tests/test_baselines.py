"""The baselines: BM3D, non-local means and ZS-N2N, on the same noisy images as Pixel2Pixel."""
import numpy as np
import pytest
import torch
from scipy.stats import poisson
from skimage import data as skdata

import methods
import Pixel2Pixel_syn
import runs
import noise as noise_models
import utils
from helpers import SMALL
from methods import bm3d, zsn2n
from utils import UserError

QUICK = {"zsn2n": dict(max_epoch=300), "nlm": {}, "bm3d": {}}


@pytest.mark.parametrize("method", ["bm3d", "nlm", "zsn2n"])
@pytest.mark.parametrize("noise", [("gauss", 25), ("poiss", 30), None])
def test_each_baseline_beats_its_noisy_input(method, noise):
    clean = skdata.astronaut()[100:164, 180:244].astype(np.float32) / 255
    rng = np.random.default_rng(4)
    noisy = noise_models.add_noise(clean, *noise, rng) if noise else \
        np.clip(clean + rng.normal(0, 0.06, clean.shape), 0, 1).astype(np.float32)  # "real": level unknown
    denoised = methods.denoise(noisy, method=method, noise=noise, device="cpu", no_progress=True, **QUICK[method])
    assert utils.psnr(clean, denoised) > utils.psnr(clean, noisy) + 1.0


@pytest.mark.parametrize("method", ["bm3d", "nlm", "zsn2n"])
def test_every_method_sees_the_same_noisy_image(tmp_path, clean_dataset, method):
    argv = ["--data_path", str(clean_dataset), "--dataset", "tiny", "--nt", "gauss", "--nl", "25", "--device", "cpu",
            "--no_progress", "--save", str(tmp_path / "cache"), "--out_image", str(tmp_path / "out")]
    reference = runs.finished_rows(Pixel2Pixel_syn.main([*argv, *SMALL, "--max_epoch", "2"])["run_dir"])
    short = ["--max_epoch", "2"] if method == "zsn2n" else []
    summary = Pixel2Pixel_syn.main([*argv, "--method", method, *short])
    rows = runs.finished_rows(summary["run_dir"])
    for image in ("gray.png", "rgb.png"):
        assert rows[image]["noisy_psnr"] == reference[image]["noisy_psnr"]
        saved = utils.load_image(f"{summary['run_dir']}/{image[:-4]}_noisy.png").pixels
        rng = np.random.default_rng(noise_models.image_seed(123, image))
        clean = utils.load_image(str(clean_dataset / "tiny" / image)).pixels
        np.testing.assert_array_equal(utils.quantize(saved), utils.quantize(noise_models.add_noise(clean, "gauss", 25, rng)))


@pytest.mark.parametrize("nt", ["saltpepper", "bernoulli", "impulse"])
def test_bm3d_refuses_noise_it_does_not_model(nt):
    with pytest.raises(UserError, match=f"--method bm3d does not apply to --nt {nt}"):
        methods.settings("bm3d", "syn", nt, 0.1)


@pytest.mark.parametrize("mean", [0.0, 0.05, 0.3, 1.0, 4.0, 20.0, 70.0])
def test_the_anscombe_pair_inverts(mean):
    """The exact unbiased inverse maps the expected transform of Poisson(mean) counts back to
    the mean, where the algebraic inverse (v / 2)^2 - 3/8 is biased at low counts."""
    counts = np.arange(400)
    expected = float(poisson.pmf(counts, mean) @ bm3d.anscombe(counts))
    assert bm3d.exact_unbiased_inverse(np.array([expected]), 100.0)[0] == pytest.approx(mean, abs=2e-3)
    if mean == 1.0:
        assert abs((expected / 2) ** 2 - 3 / 8 - mean) > 0.1


def test_zsn2n_is_the_papers_network_and_downsampler():
    assert sum(p.numel() for p in zsn2n.ZSN2NNet(3).parameters()) == 22_275  # "about 22K"
    image = torch.arange(2 * 4 * 6, dtype=torch.float32).view(1, 2, 4, 6)
    first, second = zsn2n.downsample_pair(image)
    assert first.shape == second.shape == (1, 2, 2, 3)
    block = image[0, 1, 2:4, 2:4]  # channel 1, the block at half-resolution pixel (1, 1)
    assert first[0, 1, 1, 1] == (block[0, 1] + block[1, 0]) / 2  # the anti-diagonal
    assert second[0, 1, 1, 1] == (block[0, 0] + block[1, 1]) / 2  # the diagonal


def test_zsn2n_trains_its_papers_length_unless_told():
    assert methods.settings("zsn2n").params.max_epoch == zsn2n.ZSN2NSettings.max_epoch == 2000
    assert methods.settings("zsn2n", max_epoch=7).params.max_epoch == 7
    assert methods.settings().params.max_epoch == 3000  # Pixel2Pixel's


# Rounding: fp32's summation order; bf16 rounds each product to 8 bits of mantissa.
@pytest.mark.parametrize("precision, atol", [("fp32", 1e-5), ("bf16", 2e-2)])
@pytest.mark.parametrize("channels", [1, 3])
def test_zsn2n_trained_together_matches_each_image_trained_alone(channels, precision, atol):
    import config

    if not config.bf16_supported(torch.device("cpu")) and precision == "bf16":
        pytest.skip("this CPU has no native bf16")
    rng = np.random.default_rng(2)
    images = [torch.from_numpy(rng.random((channels, 20, 22), dtype=np.float32)) for _ in range(3)]
    settings = methods.settings("zsn2n", max_epoch=40, device="cpu", no_progress=True, precision=precision)
    together = zsn2n.denoise_together(images, settings, ["a", "b", "c"])
    for image, joint in zip(images, together):
        alone = zsn2n.denoise(image, settings)
        torch.testing.assert_close(joint.image, alone.image, atol=atol, rtol=0)
        torch.testing.assert_close(joint.losses, alone.losses, atol=atol / 10, rtol=1e-5)
    assert not torch.equal(together[0].image, together[1].image)


def test_auto_never_picks_a_precision_whose_quality_was_not_shown(monkeypatch):
    import config

    monkeypatch.setattr(config, "bf16_supported", lambda device: True)
    monkeypatch.setattr(config, "cpu_has_amx", lambda: True)  # where bf16 is fast
    assert methods.settings().precision == "bf16"  # Pixel2Pixel's was shown equal
    for method, chosen in methods.METHODS.items():
        picked = methods.settings(method).precision
        assert picked == "fp32" or picked == "bf16" and "cpu" in chosen.bf16_shown_on or \
            picked == "n/a" and not chosen.precisions
    assert methods.settings("zsn2n").precision == "bf16"  # shown equal on the CPU
    assert methods.settings("zsn2n", precision="fp32").precision == "fp32"  # asked for: kept
