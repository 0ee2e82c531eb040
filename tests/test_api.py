"""methods.denoise: any method from Python, on numpy arrays or tensors."""
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import data as skdata

import methods
import noise as noise_models
import utils
from helpers import ROOT
from utils import UserError

SMALL = dict(ws=10, ps=3, nn=8, mm=4, max_epoch=30, device="cpu", no_progress=True)
# Each method's own short settings: a setting of another method is refused.
SHORT = {"pixel2pixel": SMALL, "pixel2pixel_plus": SMALL,
         "zsn2n": dict(max_epoch=30, device="cpu", no_progress=True)}


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


# ---------------------------------------------------------------------------- fuzzing
DTYPES = [np.uint8, np.uint16, np.int16, np.bool_, np.float32, np.float64]
VALID_NOISES = [None, ("gauss", 25), ("poiss", 50), ("saltpepper", 0.1), ("bernoulli", 0.2)]
WRONG_NOISES = ["gauss", ("poisson", 50), ("gauss",), 25, ("gauss", -1), ("poiss", 0), ("gauss", float("nan")),
                ("saltpepper", float("inf")), ("gauss", True), ("bernoulli", 25), ("poiss", 1e6)]
NOISES = st.sampled_from(VALID_NOISES * 4 + WRONG_NOISES)  # valid ones four times as often
# A valid image most of the time (so that methods run), anything sometimes.
VALID_SHAPES = st.tuples(st.integers(5, 12), st.integers(5, 12)) | st.tuples(st.integers(5, 12), st.integers(5, 12),
                                                                           st.integers(1, 4))
SHAPES = VALID_SHAPES | VALID_SHAPES | st.lists(st.integers(0, 12), max_size=4).map(tuple)
VALUES = {"max_epoch": ["10", 2, 3.5, -1, True, None], "ws": [3.5, 4, 0], "width": [0, 4, -2], "seed": [1.5, 7, -1],
          "depth": [-1, 0, 1], "lr_gamma": [-5, 0.5], "ensemble": [2, -1], "device": ["cpu", "tpu", 3],
          "precision": ["bf16", "fp8", "auto"], "h_per_sigma": [0.8, -1], "nn": [4, 0], "mm": [2, 1, 9],
          "loss": ["L1", "L3"], "out_activation": ["sigmoid", "relu"], "train_crop": [0, 8, 3],
          "patch_size": [3, 0], "batch_images": [1, 2]}


def fuzzed_image(dtype, shape, special):
    generator = np.random.default_rng(sum(shape))
    if dtype == np.bool_:
        return generator.random(shape) > 0.5
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return generator.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
    image = generator.random(shape).astype(dtype)
    if special is not None and image.size:
        image.flat[0] = special
    return image


@settings(max_examples=100, deadline=None)
@given(data=st.data(), method=st.sampled_from([*methods.METHODS] * 3 + [None, "Pixel2Pixel"]),
       dtype=st.sampled_from(DTYPES), shape=SHAPES, tensor=st.booleans(),
       special=st.sampled_from([None, None, None, float("nan"), float("inf"), 255.0, -3.0]),
       noise=NOISES, foreign=st.sampled_from([False] * 4 + [True]))
def test_denoise_gives_an_image_in_range_or_a_clear_error(data, method, dtype, shape, tensor, special, noise, foreign):
    """Any image, method, noise and settings: a finite image of the input's form in [0, 1],
    or a UserError or TrainingFailed; never another exception, never a silent NaN."""
    noisy = fuzzed_image(dtype, shape, special)
    if tensor:  # C x H x W
        noisy = torch.from_numpy(np.ascontiguousarray(np.moveaxis(noisy, -1, 0) if noisy.ndim == 3
                                                      else noisy[None] if noisy.ndim == 2 else noisy))
    values = {"device": "cpu", "no_progress": True}
    if method in methods.METHODS and "ws" in methods.own_settings(method):
        values.update(ws=4, ps=3, nn=4, mm=2, max_epoch=2)
    elif method in methods.METHODS and "max_epoch" in methods.own_settings(method):
        values.update(max_epoch=2)
    own = set(methods.own_settings(method)) | {"device", "precision", "seed", "batch_images"} \
        if method in methods.METHODS and not foreign else set(VALUES)  # sometimes another method's setting
    changes = data.draw(st.lists(st.sampled_from(sorted(own & set(VALUES))), max_size=3, unique=True))
    values.update({name: data.draw(st.sampled_from(VALUES[name])) for name in changes})
    try:
        result = methods.denoise(noisy, method=method, noise=noise, **values)
    except (UserError, methods.TrainingFailed):
        return
    output = result.numpy() if tensor else result
    assert type(result) is type(noisy) and output.shape == tuple(noisy.shape) and output.dtype == np.float32
    assert np.isfinite(output).all() and output.min() >= 0 and output.max() <= 1
