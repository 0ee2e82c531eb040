"""Random shapes, dtypes and flag values through loading, noise, settings and bank building:
the only failures allowed are the documented one-line UserErrors."""
import numpy as np
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import methods
import noise as noise_models
import utils
from methods import pixel2pixel
from helpers import build_bank
from methods.pixel2pixel import check_image
from utils import UserError


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(height=st.integers(1, 24), width=st.integers(1, 24), channels=st.sampled_from([1, 2, 3, 4]),
       bits=st.sampled_from([8, 16]),
       # Mostly valid values, so that banks get built, with the invalid ones mixed in.
       noise_type=st.sampled_from([*noise_models.NOISE_TYPES, *noise_models.NOISE_TYPES, "speckle"]),
       level=st.one_of(st.sampled_from([0.05, 0.2, 0.45]), st.floats(-1, 60), st.just(float("nan"))),
       ws=st.one_of(st.integers(1, 12), st.just(0)), ps=st.sampled_from([1, 3, 3, 5, 7, 0, 4]),
       nn=st.one_of(st.integers(1, 20), st.just(0)), distance=st.sampled_from(["L1", "L2", "L1", "L2", "L3"]),
       method=st.sampled_from([*pixel2pixel.BANK_METHODS, *pixel2pixel.BANK_METHODS, "fft"]),
       seed=st.integers(0, 2 ** 32))
def test_pipeline_fails_only_with_user_errors(tmp_path_factory, height, width, channels, bits, noise_type, level,
                                              ws, ps, nn, distance, method, seed):
    rng = np.random.default_rng(seed)
    dtype = np.uint8 if bits == 8 else np.uint16
    array = rng.integers(0, np.iinfo(dtype).max + 1, (height, width, channels), dtype=dtype)
    path = str(tmp_path_factory.mktemp("img") / "x.png")
    utils.save_image(path, array if channels > 1 else array[:, :, 0])
    image = utils.load_image(path)
    expected_channels = {1: 1, 2: 1, 3: 3, 4: 3}[channels]  # alpha dropped
    assert image.pixels.shape == (height, width, expected_channels) and image.bit_depth == bits
    try:
        noise_models.check_noise_level(noise_type, level)
        noisy = noise_models.add_noise(image.pixels, noise_type, level, rng)
        assert noisy.shape == image.pixels.shape and np.isfinite(noisy).all()
        settings = methods.settings(ws=ws, ps=ps, nn=nn, mm=min(nn, 2), bank_distance=distance, bank_method=method,
                                    device="cpu")
        check_image(height, width, expected_channels, settings)
        tensor = utils.to_tensor(noisy, "cpu")
        bank, distances = build_bank(tensor, ws, ps, nn, distance, method)
    except UserError as error:
        assert str(error) and "\n" not in str(error)
        return
    event("bank built")
    assert bank.shape == (nn, expected_channels, height, width)
    assert distances.shape == (nn, height, width)
    assert torch.equal(bank[0], tensor)
    assert torch.all(distances[1:] >= distances[:-1] - 1e-5)
