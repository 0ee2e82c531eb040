"""methods.denoise: any method from Python, on numpy arrays or tensors."""
import re

import numpy as np
import pytest
import torch
from skimage import data as skdata

import methods
import noise as noise_models
import utils
from helpers import ROOT
from utils import UserError

SMALL = dict(ws=10, ps=3, nn=8, mm=4, max_epoch=30, device="cpu", no_progress=True)
# Each method's own short settings: a setting of another method is refused.
SHORT = {"pixel2pixel": SMALL, "zsn2n": dict(max_epoch=30, device="cpu", no_progress=True)}


@pytest.fixture
def noisy_pair():
    clean = skdata.astronaut()[60:100, 200:244].astype(np.float32) / 255
    noisy = noise_models.add_noise(clean, "gauss", 25, np.random.default_rng(1))
    return clean, noisy


@pytest.mark.parametrize("method", list(methods.METHODS))
@pytest.mark.parametrize("channels", [1, 3])
def test_denoise_keeps_the_form_it_was_given(noisy_pair, method, channels):
    clean, noisy = noisy_pair
    if channels == 1:
        clean, noisy = clean[:, :, 1], noisy[:, :, 1]
    short = SHORT.get(method, {})
    denoised = methods.denoise(noisy, method=method, noise=("gauss", 25), **short)
    assert denoised.shape == noisy.shape and denoised.dtype == np.float32
    assert 0 <= denoised.min() and denoised.max() <= 1
    tensor = torch.from_numpy(noisy.reshape(*noisy.shape[:2], channels).transpose(2, 0, 1).copy())
    from_tensor = methods.denoise(tensor, method=method, noise=("gauss", 25), **short)
    assert isinstance(from_tensor, torch.Tensor) and from_tensor.shape == tensor.shape
    # bm3d's library sums in an order that varies from call to call, in the last bits
    np.testing.assert_allclose(from_tensor.numpy().transpose(1, 2, 0).reshape(noisy.shape), denoised,
                               rtol=0, atol=1e-5 if method == "bm3d" else 0)


def test_nlm_beats_its_noisy_input(noisy_pair):
    clean, noisy = noisy_pair
    assert utils.psnr(clean, methods.denoise(noisy, method="nlm")) > utils.psnr(clean, noisy) + 2


def test_the_noise_picks_the_synthetic_settings():
    """A sigmoid output (synthetic) never reaches 0 or 1 exactly; the real settings' raw output, clamped, does."""
    flat = np.zeros((24, 24, 1), np.float32)
    # mid-grey: an untrained sigmoid's 0.5 on a black frame would be a collapse, refused
    synthetic = methods.denoise(flat + 0.5, noise=("gauss", 25), **{**SMALL, "max_epoch": 2})
    real = methods.denoise(flat, **{**SMALL, "max_epoch": 2})
    assert synthetic.min() > 0 and real.min() == 0


@pytest.mark.parametrize("call,message", [
    (lambda image: methods.denoise(image, method="bm4d"), "--method bm4d"),
    (lambda image: methods.denoise(image, ws=4, nn=100), "--nn 100"),
    (lambda image: methods.denoise(image, colour="red"), "unknown setting colour"),
    (lambda image: methods.denoise(image[:4, :4], **SMALL), "too small"),
])
def test_mistakes_are_user_errors(noisy_pair, call, message):
    with pytest.raises(UserError, match=message):
        call(noisy_pair[1])


def test_the_readme_example_runs():
    with open(f"{ROOT}/README.md") as handle:
        example = re.search(r"## From Python\n\n```python\n(.*?)```", handle.read(), re.S).group(1)
    def shorter(noisy, method="pixel2pixel", **values):  # the example trains at full length
        short = {"max_epoch": 5} if "max_epoch" in methods.own_settings(method) else {}
        return methods.denoise(noisy, method=method, no_progress=True, **short, **values)

    namespace = {}
    exec(example.replace("from methods import denoise", ""), {"denoise": shorter, **namespace})
