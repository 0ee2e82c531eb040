import os
import sys

import numpy as np
import pytest
from skimage import data as skdata

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import utils  # noqa: E402


@pytest.fixture
def photo():
    """A 40 x 44 RGB crop of a real photograph (textures and flat areas), uint8."""
    return skdata.astronaut()[60:100, 200:244].copy()


@pytest.fixture
def clean_dataset(tmp_path, photo):
    """A dataset folder of two small clean images: one RGB, one gray."""
    folder = tmp_path / "data" / "tiny"
    folder.mkdir(parents=True)
    utils.save_image(str(folder / "rgb.png"), photo)
    utils.save_image(str(folder / "gray.png"), skdata.camera()[350:386, 150:190].copy())
    return tmp_path / "data"


@pytest.fixture
def real_dataset(tmp_path, photo):
    """GT/ + Noisy/ pairs with the same names; the noise is fixed-seed Gaussian."""
    root = tmp_path / "data" / "pairs"
    (root / "GT").mkdir(parents=True)
    (root / "Noisy").mkdir()
    rng = np.random.default_rng(5)
    noisy = np.clip(photo + rng.normal(0, 20, photo.shape), 0, 255).astype(np.uint8)
    utils.save_image(str(root / "GT" / "a.png"), photo)
    utils.save_image(str(root / "Noisy" / "a.png"), noisy)
    return tmp_path / "data"


@pytest.fixture
def tiny_kodak(tmp_path, photo):
    """A dataset named like Kodak24 with three small images."""
    folder = tmp_path / "data" / "kodak"
    folder.mkdir(parents=True)
    for index in range(3):
        utils.save_image(str(folder / f"kodim0{index + 1}.png"), np.roll(photo, 7 * index, axis=1))
    return tmp_path / "data"
