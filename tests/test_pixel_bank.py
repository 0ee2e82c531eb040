import numpy as np
import pytest
import torch

import pixel_bank
import noise as noise_models
import utils
from methods import pixel2pixel
from helpers import build_bank
from utils import UserError


def brute_force_bank(image, ws, ps, nn, distance):
    """Independent reference: loops over offsets and patch cells in numpy (float64).
    image: C x H x W. Returns all candidate distances (ws*ws x H x W) in raster
    window order and the matching pixel values (ws*ws x C x H x W)."""
    c, h, w = image.shape
    pad = ws // 2 + ps // 2
    padded = np.pad(image.astype(np.float64), ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    lo = -(ws // 2)
    half = ps // 2
    dists, values = [], []
    for dy in range(lo, lo + ws):
        for dx in range(lo, lo + ws):
            total = np.zeros((h, w))
            for py in range(-half, half + 1):
                for px in range(-half, half + 1):
                    a = padded[:, pad + py:pad + py + h, pad + px:pad + px + w]
                    b = padded[:, pad + dy + py:pad + dy + py + h, pad + dx + px:pad + dx + px + w]
                    diff = a - b
                    total += (np.abs(diff) if distance == "L1" else diff * diff).sum(axis=0)
            dists.append(total)
            values.append(padded[:, pad + dy:pad + dy + h, pad + dx:pad + dx + w])
    return np.stack(dists), np.stack(values)


def assert_same_bank(bank, distances, image, ws, ps, nn, distance, rtol=1e-4, atol=1e-5):
    """SPEC section 2's 'same': equal sorted distances to float tolerance, and equal
    pixels wherever the nn-th distance is not a near-tie."""
    all_d, all_v = brute_force_bank(image, ws, ps, nn, distance)
    order = np.argsort(all_d, axis=0, kind="stable")
    want_d = np.take_along_axis(all_d, order[:nn], axis=0)
    np.testing.assert_allclose(distances.numpy(), want_d, rtol=rtol, atol=atol)
    # The chosen pixels must be among the candidates at the returned distances: compare
    # the value of each entry with the brute-force value of the candidate at the same
    # sorted rank, wherever that rank's distance is separated from its neighbours.
    want_v = np.take_along_axis(all_v, order[:nn, None].repeat(image.shape[0], axis=1), axis=0)
    sorted_d = np.take_along_axis(all_d, order[:nn + 1], axis=0)
    scale = np.maximum(1.0, want_d) * 1e-4
    gap_before = np.full(want_d.shape, np.inf)
    gap_before[1:] = sorted_d[1:nn] - sorted_d[:nn - 1]
    gap_after = sorted_d[1:nn + 1] - sorted_d[:nn]
    isolated = (gap_before > scale) & (gap_after > scale)
    isolated[0] = True  # entry 0 is the pixel itself, whatever the ties
    mask = np.broadcast_to(isolated[:, None], want_v.shape)
    assert isolated.mean() > 0.5, "test image has too many ties to say anything"
    np.testing.assert_allclose(bank.numpy()[mask], want_v[mask], rtol=0, atol=1e-6)


@pytest.mark.parametrize("method", pixel2pixel.BANK_METHODS)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("distance", ["L1", "L2"])
@pytest.mark.parametrize("ws,ps,size", [(6, 3, (13, 17)), (7, 3, (12, 9)), (5, 5, (11, 14))])
def test_bank_equals_brute_force(method, channels, distance, ws, ps, size):
    rng = np.random.default_rng(7)
    image = rng.random((channels, *size), dtype=np.float32)
    nn = 6
    bank, distances = build_bank(torch.from_numpy(image), ws, ps, nn, distance, method)
    assert bank.shape == (nn, channels, *size)
    assert distances.shape == (nn, *size)
    assert_same_bank(bank, distances, image, ws, ps, nn, distance)


@pytest.mark.parametrize("method,small_budget", [("unfold", 2 * 27 * 64 * 4 * 7), ("shift", 64 * 4 * 2 * 30)])
def test_tiling_does_not_change_the_bank(method, small_budget):
    """Tiles smaller than the image (sizes that do not divide it) give the one-tile bank."""
    rng = np.random.default_rng(3)
    image = torch.from_numpy(rng.random((3, 23, 19), dtype=np.float32))
    whole = pixel_bank.match_offsets(image, 8, 3, 5, "L2", method, memory_budget=1 << 40)
    tiled = pixel_bank.match_offsets(image, 8, 3, 5, "L2", method, memory_budget=small_budget)
    torch.testing.assert_close(tiled[1], whole[1])
    assert torch.equal(tiled[0], whole[0])


def test_entry_zero_is_the_image_itself():
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.random((3, 16, 16), dtype=np.float32))
    bank, distances = build_bank(image, 6, 3, 4, "L2")
    assert torch.equal(bank[0], image)
    assert torch.all(distances[0] == 0)
    assert torch.all(distances[1:] >= distances[:-1])


def test_too_small_image_is_a_clear_error():
    with pytest.raises(UserError, match="too small"):
        pixel_bank.check_image_size(10, 30, 16, 5)
    pixel_bank.check_image_size(11, 30, 16, 5)  # ws//2 + ps//2 = 10: sides of 11 can be reflect-padded


@pytest.mark.parametrize("entries", [2, 3, 8])
def test_sampler_never_pairs_an_index_with_itself(entries):
    generator = torch.Generator().manual_seed(1)
    for _ in range(20):
        first, second = pixel_bank.sample_index_pair(entries, 17, 9, generator, torch.device("cpu"))
        assert torch.all(first != second)
        assert first.min() >= 0 and second.max() < entries


def test_sampler_shares_the_index_across_channels():
    entries, channels, h, w = 5, 3, 8, 6
    # Entry k holds value k + 10*channel: the input pixel's channel values reveal one index.
    bank = torch.arange(entries, dtype=torch.float32).view(entries, 1, 1, 1) \
        + 10 * torch.arange(channels, dtype=torch.float32).view(1, channels, 1, 1)
    bank = bank.expand(entries, channels, h, w).contiguous()
    noisy_input, noisy_target = pixel_bank.sample_pseudo_instances(bank, torch.Generator().manual_seed(0))
    assert noisy_input.shape == (1, channels, h, w)
    for pair in (noisy_input, noisy_target):
        index = pair[0, 0]
        for channel in range(1, channels):
            assert torch.equal(pair[0, channel] - 10 * channel, index)
    assert torch.all(noisy_input[0, 0] != noisy_target[0, 0])


def same_bank_up_to_near_ties(first, second, rtol=1e-5, atol=1e-5):
    """SPEC section 2: equal sorted distances to float tolerance, and equal offsets
    wherever an entry's distance is not a near-tie with another candidate's."""
    (offsets_a, dist_a), (offsets_b, dist_b) = first, second
    torch.testing.assert_close(dist_a, dist_b, rtol=rtol, atol=atol)
    tolerance = atol + rtol * dist_a.abs()
    gap_before = torch.full_like(dist_a, float("inf"))
    gap_before[1:] = dist_a[1:] - dist_a[:-1]
    gap_after = torch.full_like(dist_a, float("inf"))
    gap_after[:-1] = dist_a[1:] - dist_a[:-1]
    isolated = (gap_before > 2 * tolerance) & (gap_after > 2 * tolerance)
    isolated[-1] = False  # the last entry may tie with a candidate that was not kept
    differ = (offsets_a != offsets_b).any(dim=1)
    assert not differ[isolated].any(), f"{int(differ[isolated].sum())} isolated entries differ"
    return isolated


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("distance", ["L1", "L2"])
@pytest.mark.parametrize("ws,size", [(10, (45, 70)), (9, (66, 31))])
def test_shift_equals_unfold(channels, distance, ws, size):
    rng = np.random.default_rng(11)
    image = torch.from_numpy(rng.random((channels, *size), dtype=np.float32))
    isolated = same_bank_up_to_near_ties(pixel_bank.match_offsets(image, ws, 5, 8, distance, "shift"),
                                         pixel_bank.match_offsets(image, ws, 5, 8, distance, "unfold"))
    assert isolated[:-1].float().mean() > 0.9


@pytest.mark.parametrize("distance", ["L1", "L2"])
def test_shift_equals_unfold_with_exact_ties_and_many_neighbours(distance):
    """Salt-and-pepper noise on a flat image: many patches are identical (exact ties),
    and nn = 100 of ws*ws = 144 candidates."""
    clean = np.full((40, 50, 3), 0.5, np.float32)
    noisy = noise_models.add_noise(clean, "saltpepper", 0.1, np.random.default_rng(2))
    image = utils.to_tensor(noisy, "cpu")
    shift = pixel_bank.match_offsets(image, 12, 3, 100, distance, "shift")
    unfold = pixel_bank.match_offsets(image, 12, 3, 100, distance, "unfold")
    same_bank_up_to_near_ties(shift, unfold)
    # Whatever order ties come back in, each entry's pixel is the one at its offset.
    bank = pixel_bank.gather_bank(image, shift[0])
    assert torch.equal(bank[0], image)


@pytest.mark.parametrize("channels", [1, 3])
def test_offset_bank_gives_the_gathered_banks_pseudo_instances(channels):
    generator = torch.Generator().manual_seed(0)
    noisy = torch.rand(channels, 30, 34, generator=generator)
    offsets, _ = pixel_bank.match_offsets(noisy, 10, 3, 6, "L2", "shift")
    bank = pixel_bank.gather_bank(noisy, offsets, 4)  # 4 x C x H x W
    whole = pixel_bank.OffsetBank(noisy, offsets[:4])
    assert whole.shape == bank.shape and whole.offsets.dtype == torch.int8
    expected = pixel_bank.sample_pseudo_instances(bank, torch.Generator().manual_seed(3))
    for mine, theirs in zip(whole.sample(torch.Generator().manual_seed(3)), expected):
        assert torch.equal(mine, theirs)
    # A crop: the same pairs as the gathered bank's, cut at the window it drew.
    cropped = pixel_bank.OffsetBank(noisy, offsets[:4], crop=16)
    assert cropped.shape == (4, channels, 16, 16)
    for seed in range(5):
        pair = cropped.sample(torch.Generator().manual_seed(seed))
        replay = torch.Generator().manual_seed(seed)
        corner = torch.randint(0, (30 - 16 + 1) * (34 - 16 + 1), (1,), generator=replay).item()
        top, left = divmod(corner, 34 - 16 + 1)
        expected = pixel_bank.sample_pseudo_instances(bank[:, :, top:top + 16, left:left + 16].contiguous(), replay)
        for mine, theirs in zip(pair, expected):
            assert torch.equal(mine, theirs)
