"""Pixel2Pixel+ (methods/pixel2pixel_plus.py): the faithful training loop with its own
defaults, an output that cannot saturate into black, and the ensemble read-out."""
import numpy as np
import pytest
import torch

import methods
import pixel_bank
import utils
from methods import pixel2pixel_plus as plus
from noise import add_noise
from utils import UserError


def noisy_crop(side=24, level=25.0, seed=0):
    clean = np.linspace(0.2, 0.8, side * side * 3, dtype=np.float32).reshape(side, side, 3)
    return clean, add_noise(clean, "gauss", level, np.random.default_rng(seed))


@pytest.mark.parametrize("channels", [1, 3])
def test_with_the_faithful_read_out_it_is_the_faithful_loop_at_its_settings(channels):
    _, noisy = noisy_crop()
    noisy = noisy[:, :, :channels]
    ours = methods.denoise(noisy, method="pixel2pixel_plus", noise=("gauss", 25), max_epoch=30, pairs_weight=0.0,
                           device="cpu", no_progress=True)
    faithful = methods.denoise(noisy, noise=("gauss", 25), max_epoch=30, lr=2e-3, lr_milestones=(15, 20, 25),
                               out_activation="none", device="cpu", no_progress=True)
    np.testing.assert_array_equal(ours, faithful)


def test_its_milestones_follow_its_length_and_its_presets_differ_where_measured():
    real = methods.settings("pixel2pixel_plus", "real")
    syn = methods.settings("pixel2pixel_plus", "syn", "gauss", 50.0, max_epoch=600)
    assert real.params.max_epoch == 1000 and real.params.lr_milestones == (500, 667, 833)
    assert syn.params.lr_milestones == (300, 400, 500) and syn.params.mm == 8 and syn.params.loss == "L1"
    assert real.params.ensemble > 0 and syn.params.ensemble == 0
    assert real.params.blend_window > 0 and syn.params.blend_window == 0
    assert real.params.pairs_weight == 0 and syn.params.pairs_weight > 0
    assert real.params.out_activation == syn.params.out_activation == "none"
    given = methods.settings("pixel2pixel_plus", "real", lr_milestones=(10, 20))
    assert given.params.lr_milestones == (10, 20)


class Identity(torch.nn.Module):
    def forward(self, x):
        return x


@pytest.mark.parametrize("channels", [1, 3])
def test_the_ensemble_averages_the_network_over_pseudo_instances_of_either_bank(channels):
    _, noisy = noisy_crop(side=20)
    noisy = torch.from_numpy(noisy[:, :, :channels].transpose(2, 0, 1).copy())
    offsets, _ = pixel_bank.match_offsets(noisy, 8, 3, 4, "L2")
    bank = pixel_bank.gather_bank(noisy, offsets)  # 4 x C x H x W
    generator = torch.Generator().manual_seed(5)
    expected = sum(pixel_bank.sample_pseudo_instances(bank, generator)[0][0] for _ in range(6)) / 6
    tensor_bank = plus.ensemble_estimate(Identity(), noisy, bank, 6, torch.Generator().manual_seed(5))
    torch.testing.assert_close(tensor_bank, expected.clamp(0, 1))
    cropped = pixel_bank.OffsetBank(noisy, offsets, crop=8)  # a large image's training bank
    offset_bank = plus.ensemble_estimate(Identity(), noisy, cropped, 6, torch.Generator().manual_seed(5))
    torch.testing.assert_close(offset_bank, tensor_bank)
    assert tensor_bank.std() < noisy.std()  # averaging instances smooths the noise
    torch.testing.assert_close(plus.ensemble_estimate(Identity(), noisy, bank, 0, generator), noisy.clamp(0, 1))


def test_a_dark_frame_keeps_its_level_where_the_faithful_sigmoid_goes_black():
    # McMaster 8.png's failure in miniature: a nearly black frame under gauss 25.
    clean = np.full((32, 32, 3), 0.01, np.float32)
    noisy = add_noise(clean, "gauss", 25.0, np.random.default_rng(1))
    settings = dict(noise=("gauss", 25), max_epoch=100, device="cpu", no_progress=True, max_retries=0)
    faithful = methods.denoise(noisy, **settings)
    ours = methods.denoise(noisy, method="pixel2pixel_plus", **settings)
    assert faithful.max() < 1e-3  # the sigmoid saturated
    assert abs(float(ours.mean()) - 0.01) < 0.01 and ours.max() > 0.02


def test_its_own_setting_is_checked_and_refused_by_the_faithful_method():
    _, noisy = noisy_crop(side=12)
    with pytest.raises(methods.UserError, match="--ensemble"):
        methods.settings("pixel2pixel_plus", ensemble=-1)
    with pytest.raises(methods.UserError, match="--ensemble"):
        methods.denoise(noisy, method="pixel2pixel", ensemble=4)


@pytest.mark.parametrize("channels,height,width", [(1, 8, 10), (3, 9, 7)])
def test_the_2x2_pairs_rank_each_blocks_pixels_and_pair_them_both_ways(channels, height, width):
    noisy = torch.rand(channels, height, width, generator=torch.Generator().manual_seed(channels))
    pairs = plus.gradient_sorted_pairs(noisy)
    assert pairs.shape == (4, 2, channels, height // 2, width // 2)
    for first, second in ((0, 1), (2, 3)):  # each pair is also trained the other way round
        assert torch.equal(pairs[first, 0], pairs[second, 1]) and torch.equal(pairs[first, 1], pairs[second, 0])
    # The four pixels drawn from a block are that block's four, each once.
    drawn = torch.stack([pairs[0, 0], pairs[0, 1], pairs[2, 0], pairs[2, 1]], dim=1)  # C x 4 x h x w
    blocks = torch.nn.functional.pixel_unshuffle(noisy[None, :, :height // 2 * 2, :width // 2 * 2], 2)[0]
    blocks = blocks.unflatten(0, (channels, 4))
    torch.testing.assert_close(drawn.sort(dim=1).values, blocks.sort(dim=1).values, rtol=0, atol=0)


def test_the_flattest_pixels_of_a_block_pair_up_away_from_an_edge():
    # A step between columns 7 and 8 on a faint ramp that names each pixel's column. In
    # the blocks of columns 4 and 5, column 5's averaged gradient reaches the step.
    image = torch.zeros(1, 16, 16)
    image[:, :, 8:] = 1.0
    image += 0.001 * torch.arange(16.0)
    pairs = plus.gradient_sorted_pairs(image)  # 4 x 2 x 1 x 8 x 8
    block_column = 2  # columns 4 and 5
    torch.testing.assert_close(pairs[0, :, 0, :, block_column], torch.full((2, 8), 0.004))
    torch.testing.assert_close(pairs[2, :, 0, :, block_column], torch.full((2, 8), 0.005))


@pytest.mark.parametrize("channels", [1, 3])
def test_the_synthetic_preset_trains_on_the_2x2_pairs_too(channels):
    _, noisy = noisy_crop()
    noisy = noisy[:, :, :channels]
    flags = dict(method="pixel2pixel_plus", noise=("gauss", 25), max_epoch=30, device="cpu", no_progress=True)
    with_pairs, without = methods.denoise(noisy, **flags), methods.denoise(noisy, pairs_weight=0.0, **flags)
    assert np.abs(with_pairs - without).mean() > 1e-3
    # What the development sweep measured: its pairs variant is this method at its settings.
    again = methods.denoise(noisy, pairs_weight=1.0, **flags)
    np.testing.assert_array_equal(with_pairs, again)


def test_an_image_that_trains_on_crops_draws_pair_crops_of_half_the_side():
    noisy = torch.rand(3, 40, 36, generator=torch.Generator().manual_seed(0))
    sampler = plus.GradientSortedPairs(noisy, crop=16)
    generator = torch.Generator().manual_seed(1)
    draws = [sampler.sample(generator) for _ in range(20)]
    assert all(first.shape == second.shape == (1, 3, 8, 8) for first, second in draws)
    assert len({float(first.sum()) for first, _ in draws}) > 5  # crops from many places


def test_its_run_folder_names_the_pairs_so_an_older_run_is_not_resumed_with_them():
    syn = methods.folder_words(methods.settings("pixel2pixel_plus", "syn", "gauss", 25.0))
    real = methods.folder_words(methods.settings("pixel2pixel_plus", "real"))
    halved = methods.folder_words(methods.settings("pixel2pixel_plus", "syn", "gauss", 25.0, pairs_weight=0.5))
    assert syn[:2] == ["plus", "pairs1"] and halved[:2] == ["plus", "pairs0.5"]
    assert real[0] == "plus" and not any(word.startswith("pairs") for word in real + syn[2:] + halved[2:])


@pytest.mark.parametrize("channels", [1, 3])
def test_the_impulse_free_bank_never_draws_a_0_or_1_where_two_other_entries_are_left(channels):
    generator = torch.Generator().manual_seed(0)
    bank = torch.rand(6, channels, 10, 12, generator=generator) * 0.8 + 0.1  # 6 x C x H x W, none at 0 or 1
    salt = torch.rand(bank.shape, generator=generator)
    bank[salt < 0.2], bank[salt > 0.8] = 0.0, 1.0
    bank[:, :, 0, 0] = 0.0  # one pixel with no usable entry at all, one with a single one
    bank[1:, :, 0, 1] = 1.0
    usable = (bank > 0) & (bank < 1)
    enough = usable.sum(dim=0) >= 2  # C x H x W
    free = plus.ImpulseFreeBank(bank)
    first_ranks, differing = [], 0
    for _ in range(30):
        first, second = free.sample(generator)  # 1 x C x H x W each
        assert first.shape == second.shape == (1, channels, 10, 12)
        for draw in (first[0], second[0]):
            assert (((draw > 0) & (draw < 1)) | ~enough).all()
            # every value is one of its element's own entries
            assert (draw[None] == bank).any(dim=0).all()
        differing += int((first != second)[0][enough].float().mean() > 0.99)
        first_ranks.append(first)
    assert differing == 30  # two different entries (random floats: different values)
    assert len({float(draw.sum()) for draw in first_ranks}) > 20
    # cleaned: the image itself where it is usable, its best usable match where not
    torch.testing.assert_close(free.cleaned[usable[0]], bank[0][usable[0]])
    best = bank.gather(0, usable.to(torch.uint8).argmax(dim=0, keepdim=True))[0]  # the first usable entry
    torch.testing.assert_close(free.cleaned[~usable[0] & enough], best[~usable[0] & enough])
    torch.testing.assert_close(free.cleaned[:, 0, 0], bank[0, :, 0, 0])  # nothing usable: kept


def salt_and_pepper_crop(side=32):
    from skimage import data as skdata

    clean = (skdata.astronaut()[100:100 + side, 200:200 + side] / 255).astype(np.float32)
    return clean, add_noise(clean, "saltpepper", 0.1, np.random.default_rng(0))


def test_salt_and_pepper_leaves_its_impulses_out_and_gains_from_it():
    clean, noisy = salt_and_pepper_crop(side=48)
    flags = dict(method="pixel2pixel_plus", noise=("saltpepper", 0.1), max_epoch=100, device="cpu", no_progress=True)
    for noise, impulses in ((("saltpepper", 0.1), "leave_out"), (("bernoulli", 0.2), "leave_out"),
                            (("impulse", 0.1), "keep"), (("gauss", 25.0), "keep")):  # impulse: uniform values
        assert methods.settings("pixel2pixel_plus", "syn", *noise).params.impulses == impulses
    free, kept = methods.denoise(noisy, **flags), methods.denoise(noisy, impulses="keep", **flags)
    np.testing.assert_array_equal(free, methods.denoise(noisy, impulses="leave_out", **flags))
    assert utils.psnr(clean, free) > utils.psnr(clean, kept) + 1.0


def test_an_image_that_trains_on_crops_is_refused_with_impulses_left_out_naming_the_flags():
    _, noisy = salt_and_pepper_crop(side=40)
    with pytest.raises(UserError, match="--impulses") as error:
        methods.denoise(noisy, method="pixel2pixel_plus", noise=("saltpepper", 0.1), train_crop=16, max_epoch=2,
                        device="cpu", no_progress=True)
    assert "--train_crop" in str(error.value) and "\n" not in str(error.value)
    methods.denoise(noisy, method="pixel2pixel_plus", noise=("saltpepper", 0.1), train_crop=16, max_epoch=2,
                    impulses="keep", device="cpu", no_progress=True)


def test_its_run_folder_names_impulses_left_out():
    free = methods.folder_words(methods.settings("pixel2pixel_plus", "syn", "saltpepper", 0.1))
    kept = methods.folder_words(methods.settings("pixel2pixel_plus", "syn", "saltpepper", 0.1, impulses="keep"))
    assert "impulsefree" in free and "impulsefree" not in kept and "impulseskeep" not in kept


@pytest.mark.parametrize("channels", [1, 3])
def test_the_blend_keeps_an_estimate_whose_residual_is_noise_and_restores_what_it_smoothed_away(channels):
    rng = np.random.default_rng(3)
    side = 64
    clean = np.full((channels, side, side), 0.5, np.float32)
    clean[:, :16, :16] += 0.2 * np.sign(np.sin(np.arange(16) * 2.0))[None, :, None]  # a texture in one corner
    noisy = clean + rng.normal(0, 0.02, clean.shape).astype(np.float32)
    smoothed = clean.copy()
    smoothed[:, :16, :16] = 0.5  # an estimate that took the texture for noise
    noisy, clean, smoothed = (torch.from_numpy(array) for array in (noisy, clean, smoothed))
    kept = plus.residual_blend(noisy, clean, 16)  # a residual that is noise everywhere
    assert float(((kept - clean) ** 2).mean()) < 0.2 * float(((noisy - clean) ** 2).mean())
    blended = plus.residual_blend(noisy, smoothed, 16)
    error = {name: float(((image - clean)[:, :16, :16] ** 2).mean())
             for name, image in (("noisy", noisy), ("smoothed", smoothed), ("blended", blended))}
    assert error["blended"] < 0.1 * error["smoothed"] and error["blended"] < 2 * error["noisy"]
    far = (slice(None), slice(32, None), slice(32, None))  # far from the texture the estimate stays, nearly
    assert float(((blended - clean)[far] ** 2).mean()) < 0.05 * float(((noisy - clean)[far] ** 2).mean())


def test_the_blend_is_the_real_presets_and_names_its_run_folder():
    _, noisy = noisy_crop(side=16)
    common = dict(method="pixel2pixel_plus", max_epoch=20, ws=8, ps=3, nn=8, mm=4, device="cpu", no_progress=True)
    real, off, wider = (methods.denoise(noisy, **common, **extra)
                        for extra in ({}, {"blend_window": 0}, {"blend_window": 8}))
    assert not np.array_equal(real, off) and not np.array_equal(real, wider)
    syn = methods.denoise(noisy, noise=("gauss", 25), **common)
    np.testing.assert_array_equal(syn, methods.denoise(noisy, noise=("gauss", 25), blend_window=0, **common))
    real_words = methods.folder_words(methods.settings("pixel2pixel_plus", "real"))
    syn_words = methods.folder_words(methods.settings("pixel2pixel_plus", "syn", "gauss", 25.0))
    assert "blend4" in real_words and not any("blend" in word for word in syn_words)
    with pytest.raises(methods.UserError, match="--blend_window"):
        methods.settings("pixel2pixel_plus", blend_window=-1)
