import numpy as np
import pytest
import torch

import noise as noise_models
import config
import utils
from utils import UserError

SHAPE = (200, 200, 3)


def noisy_of(noise_type, level, clean_value=0.5, seed=0):
    clean = np.full(SHAPE, clean_value, dtype=np.float32)
    return clean, noise_models.add_noise(clean, noise_type, level, np.random.default_rng(seed))


@pytest.mark.parametrize("sigma", [10, 25, 50])
def test_gauss_statistics(sigma):
    _, noisy = noisy_of("gauss", sigma)
    assert noisy.dtype == np.float32 and noisy.min() >= 0 and noisy.max() <= 1
    assert abs(noisy.mean() - 0.5) < 3e-3
    assert abs(noisy.std() - sigma / 255) < 0.02 * sigma / 255 + (0.01 if sigma == 50 else 0)


def test_gauss_is_clipped_and_not_quantized():
    _, noisy = noisy_of("gauss", 50, clean_value=0.02)
    assert noisy.min() == 0.0
    assert len(np.unique(noisy)) > 1000  # floats, not 256 levels


@pytest.mark.parametrize("lam", [10, 25, 50])
def test_poisson_statistics(lam):
    _, noisy = noisy_of("poiss", lam, clean_value=0.4)
    assert abs(noisy.mean() - 0.4) < 3e-3
    assert abs(noisy.var() - 0.4 / lam) < 0.05 * 0.4 / lam
    np.testing.assert_allclose(noisy * lam, np.round(noisy * lam), atol=1e-4)  # integer counts / lambda


def test_poisson_is_not_clipped():
    _, noisy = noisy_of("poiss", 10, clean_value=0.95)
    assert noisy.max() > 1.0


def test_saltpepper_statistics():
    _, noisy = noisy_of("saltpepper", 0.1)
    assert abs((noisy == 0).mean() - 0.1) < 0.005
    assert abs((noisy == 1).mean() - 0.1) < 0.005
    assert abs((noisy == 0.5).mean() - 0.8) < 0.005


def test_bernoulli_statistics():
    _, noisy = noisy_of("bernoulli", 0.2)
    assert abs((noisy == 0).mean() - 0.2) < 0.005
    assert set(np.unique(noisy)) == {0.0, 0.5}


def test_impulse_statistics():
    _, noisy = noisy_of("impulse", 0.15)
    replaced = noisy != 0.5
    assert abs(replaced.mean() - 0.15) < 0.005
    values = noisy[replaced]
    assert abs(values.mean() - 0.5) < 0.01 and abs(values.var() - 1 / 12) < 0.005  # uniform on [0, 1)


@pytest.mark.parametrize("noise_type,level", [("gauss", 25), ("poiss", 25), ("saltpepper", 0.1),
                                              ("bernoulli", 0.3), ("impulse", 0.2)])
def test_noise_is_independent_per_channel(noise_type, level):
    clean, noisy = noisy_of(noise_type, level)
    residual = (noisy - clean).reshape(-1, 3)
    assert residual[:, 0].std() > 0
    correlation = np.corrcoef(residual[:, 0], residual[:, 1])[0, 1]
    assert abs(correlation) < 0.03


def test_image_seed_depends_on_run_seed_and_name_only():
    assert noise_models.image_seed(123, "kodim01.png") == noise_models.image_seed(123, "kodim01.png")
    assert noise_models.image_seed(123, "kodim01.png") != noise_models.image_seed(123, "kodim02.png")
    assert noise_models.image_seed(123, "kodim01.png") != noise_models.image_seed(124, "kodim01.png")
    clean = np.full((8, 8, 3), 0.5, dtype=np.float32)
    draw = lambda name: noise_models.add_noise(clean, "gauss", 25, np.random.default_rng(noise_models.image_seed(1, name)))
    first = draw("a.png")
    draw("b.png")  # another image in between must not change a.png's noise
    np.testing.assert_array_equal(first, draw("a.png"))


@pytest.mark.parametrize("noise_type,level", [("gauss", 0), ("poiss", -1), ("saltpepper", 0.6),
                                              ("bernoulli", 1.0), ("impulse", -0.1), ("speckle", 0.1)])
def test_noise_level_out_of_range_is_a_user_error(noise_type, level):
    with pytest.raises(UserError):
        noise_models.check_noise_level(noise_type, level)


def test_psnr_known_value_and_shape_check():
    clean = np.zeros((10, 10, 3), np.float32)
    assert utils.psnr(clean, clean + 0.1) == pytest.approx(20.0, abs=1e-5)
    assert utils.psnr(clean, clean + 0.01) == pytest.approx(40.0, abs=1e-4)
    with pytest.raises(ValueError, match="shape"):
        utils.psnr(clean, clean[:, :, :1])


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_known_value(channels):
    """Two flat images a, b: SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 * 255)^2."""
    a = np.full((16, 16, channels), 100, np.uint8)
    b = np.full((16, 16, channels), 110, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert utils.ssim(a, b) == pytest.approx((2 * 100 * 110 + c1) / (100 ** 2 + 110 ** 2 + c1), rel=1e-6)
    assert utils.ssim(a, a) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        utils.ssim(a, b[:8])


def test_quantize_truncates_like_the_release():
    x = np.array([0.0, 0.5, 0.999, 1.0, 1.7, -0.2], np.float32)
    assert utils.quantize(x).tolist() == [0, 127, 254, 255, 255, 0]
    assert utils.quantize(np.array([0.5], np.float32), 16).tolist() == [32767]


@pytest.mark.parametrize("channels,dtype", [(1, np.uint8), (3, np.uint8), (4, np.uint8),
                                            (1, np.uint16), (3, np.uint16)])
def test_load_image_depths_and_channels(tmp_path, channels, dtype):
    rng = np.random.default_rng(0)
    top = np.iinfo(dtype).max
    array = rng.integers(0, top + 1, (9, 11, channels), dtype=dtype)
    if channels == 1:
        array = array[:, :, 0]
    path = str(tmp_path / "x.png")
    utils.save_image(path, array)
    image = utils.load_image(path)
    assert image.bit_depth == (8 if dtype == np.uint8 else 16)
    expected_channels = 3 if channels == 4 else channels  # alpha dropped
    assert image.pixels.shape == (9, 11, expected_channels)
    reference = array.reshape(9, 11, -1)[:, :, :expected_channels].astype(np.float32) / top
    np.testing.assert_allclose(image.pixels, reference, atol=1e-7)
    np.testing.assert_array_equal(utils.quantize(image.pixels, image.bit_depth),
                                  array.reshape(9, 11, -1)[:, :, :expected_channels])


def test_load_image_corrupt_file_is_a_user_error(tmp_path):
    path = tmp_path / "bad.png"
    path.write_bytes(b"not a png")
    with pytest.raises(UserError, match="bad.png"):
        utils.load_image(str(path))


def test_resolve_device(monkeypatch):
    assert config.resolve_device("cpu").type == "cpu"
    for present in (True, False):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: present)
        assert config.resolve_device("auto").type == ("cuda" if present else "cpu")
        assert config.resolve_device(None).type == ("cuda" if present else "cpu")
    with pytest.raises(UserError):
        config.resolve_device("tpu")
    with pytest.raises(UserError):
        config.resolve_device("not a device")
