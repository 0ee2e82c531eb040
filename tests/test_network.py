import dataclasses

import pytest
import torch

import config
import methods
import network
from helpers import pixel2pixel_settings as settings
from methods import pixel2pixel_plus as plus
from utils import UserError

SYN = settings(out_activation="sigmoid", loss="L1").params  # the synthetic script's network


def parameters(model):
    return sum(parameter.numel() for parameter in model.parameters())


@pytest.mark.parametrize("channels,expected", [(3, 149_699), (1, 148_417)])
def test_parameter_count(channels, expected):
    assert parameters(network.Pixel2PixelNet(channels, SYN)) == expected


def test_layers_and_init():
    model = network.Pixel2PixelNet(3, SYN, generator=torch.Generator().manual_seed(0))
    convs = [*model.hidden, model.head]
    assert [c.kernel_size for c in convs] == [(3, 3)] * 5 + [(1, 1)]
    for conv in convs:
        assert torch.all(conv.bias == 0)
        weight = conv.weight.reshape(conv.weight.shape[0], -1)  # out x (in*k*k)
        rows, cols = weight.shape
        gram = weight @ weight.T if rows <= cols else weight.T @ weight
        torch.testing.assert_close(gram, torch.eye(min(rows, cols)), atol=1e-4, rtol=0)  # orthogonal


@pytest.mark.parametrize("channels", [1, 3])
def test_output_activation(channels):
    x = torch.randn(1, channels, 12, 10) * 5
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        squashed = network.Pixel2PixelNet(channels, SYN, generator=generator)(x)
        raw = network.Pixel2PixelNet(channels, settings().params, generator=torch.Generator().manual_seed(0))(x)
    assert squashed.shape == raw.shape == x.shape
    assert squashed.min() > 0 and squashed.max() < 1
    torch.testing.assert_close(squashed, torch.sigmoid(raw))


def test_learning_rate_schedule():
    optimizer, scheduler = network.make_optimizer(torch.nn.Linear(2, 1), settings().params)  # tiny: the schedule is what counts
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["weight_decay"] == 0.01
    rates = []
    for _ in range(3000):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == rates[1499] == pytest.approx(1e-3)
    assert rates[1500] == rates[1999] == pytest.approx(5e-4)
    assert rates[2000] == pytest.approx(2.5e-4)
    assert rates[2500] == rates[2999] == pytest.approx(1.25e-4)


def test_same_seed_same_training_and_other_seed_differs():
    bank = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    _, first = network.train_network(bank, settings(loss="L1", max_epoch=5, seed=7))
    _, again = network.train_network(bank, settings(loss="L1", max_epoch=5, seed=7))
    _, other = network.train_network(bank, settings(loss="L1", max_epoch=5, seed=8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert first.shape == (5,) and torch.all(torch.isfinite(first))


def test_training_reduces_the_loss():
    base = torch.rand(1, 1, 24, 24, generator=torch.Generator().manual_seed(1))
    bank = base + 0.05 * torch.randn(6, 1, 24, 24, generator=torch.Generator().manual_seed(2))
    _, losses = network.train_network(bank, settings(max_epoch=60, seed=0))
    assert losses[-10:].mean() < 0.5 * losses[:5].mean()


@pytest.mark.parametrize("channels", [1, 3])
def test_a_pair_term_adds_its_weighted_loss_and_leaves_the_banks_draws_alone(channels):
    bank = noisy_bank(channels, 5)
    sampler = plus.GradientSortedPairs(bank[0])
    chosen = settings(max_epoch=1, loss="L1", seed=11)
    _, [without] = network.train_networks([bank], chosen, [11])
    _, [with_pairs] = network.train_networks([bank], chosen, [11], pairs=[sampler], pairs_weight=0.5)
    initial = network.Pixel2PixelNet(channels, chosen.params, generator=torch.Generator().manual_seed(11))
    pair_input, pair_target = sampler.sample(torch.Generator().manual_seed(11))  # its first draw
    with torch.no_grad():
        pair_loss = torch.nn.functional.l1_loss(initial(pair_input), pair_target)
    assert with_pairs[0].item() == pytest.approx(without[0].item() + 0.5 * pair_loss.item(), rel=1e-5)


def noisy_bank(channels, seed, size=(20, 24), entries=4):
    """A bank of a smooth image plus independent noise per entry: mm x C x H x W."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.rand(1, channels, size[0] // 4, size[1] // 4, generator=generator)
    base = torch.nn.functional.interpolate(base, size=size, mode="bilinear", align_corners=False)
    return (base + 0.1 * torch.randn(entries, channels, *size, generator=generator)).clamp(0, 1)


@pytest.mark.parametrize("channels", [1, 3])
def test_grouped_network_is_lone_networks_side_by_side(channels):
    seeds = [3, 4, 5]
    grouped = network.Pixel2PixelNet(channels, SYN, generator=[torch.Generator().manual_seed(s) for s in seeds],
                                     groups=3)
    lone = [network.Pixel2PixelNet(channels, SYN, generator=torch.Generator().manual_seed(s)) for s in seeds]
    assert parameters(grouped) == 3 * parameters(lone[0])
    x = torch.rand(3, channels, 12, 10, generator=torch.Generator().manual_seed(0))
    together = grouped(x.reshape(1, 3 * channels, 12, 10)).view(3, channels, 12, 10)
    for group in range(3):
        torch.testing.assert_close(together[group], lone[group](x[group:group + 1])[0])
        extracted = grouped.single(group)
        for mine, theirs in zip(extracted.state_dict().values(), lone[group].state_dict().values()):
            assert torch.equal(mine, theirs)


# Fourier L1's gradient turns with the phase of every small coefficient, so rounding
# differences grow faster there (measured: 1e-7 after 10 iterations, 0.02 after 40).
# With pairs, every step adds the loss on one of Pixel2Pixel+'s 2 x 2 pairs.
@pytest.mark.parametrize("channels,loss,iterations,with_pairs", [(1, "L2", 40, False), (3, "L1", 40, False),
                                                                 (3, "fourier", 10, False), (1, "L1", 40, True)])
def test_training_images_together_matches_training_them_alone(channels, loss, iterations, with_pairs):
    banks = [noisy_bank(channels, seed) for seed in (1, 2)]
    pairs = [plus.GradientSortedPairs(bank[0]) for bank in banks] if with_pairs else [None, None]
    chosen = settings(out_activation="sigmoid", max_epoch=iterations)
    # The Fourier losses are no --loss choice (recipe_sweep's levers): set past the check.
    chosen = dataclasses.replace(chosen, params=dataclasses.replace(chosen.params, loss=loss))
    models, together = network.train_networks(banks, chosen, seeds=[7, 9], pairs=pairs if with_pairs else None)
    assert together.shape == (2, iterations)
    for bank, own_pairs, seed, model, losses in zip(banks, pairs, (7, 9), models, together):
        lone_models, [alone] = network.train_networks([bank], chosen, [seed],
                                                      pairs=None if own_pairs is None else [own_pairs])
        lone_model = lone_models[0]
        # The first step sees identical weights and pairs; later ones drift only by
        # floating-point summation order.
        assert alone[0] == pytest.approx(losses[0].item(), rel=1e-5)
        torch.testing.assert_close(alone, losses, rtol=2e-2, atol=1e-3)
        gap = (network.denoise(lone_model, bank[0]) - network.denoise(model, bank[0])).abs().mean()
        assert gap < 0.01


# L1's gradient is a sign: on a tiny grey image a last-bit difference can flip it and
# 40 iterations amplify that past these tolerances, so grey trains with L2 here.
@pytest.mark.parametrize("channels,loss", [(1, "L2"), (3, "L1")])
def test_fp32_layout_changes_only_summation_order(channels, loss):
    bank = noisy_bank(channels, 3)
    avx512 = torch.backends.cpu.get_cpu_capability() == "AVX512"  # NHWC measured faster there, NCHW on AVX2
    assert network.uses_channels_last("fp32", torch.device("cpu")) == avx512
    assert not network.uses_channels_last("fp32", torch.device("cuda"))
    assert network.uses_channels_last("bf16", torch.device("cpu"))
    chosen = settings(loss=loss, out_activation="sigmoid", max_epoch=40)
    runs = {layout: network.train_networks([bank], chosen, [5], channels_last=layout) for layout in (True, False)}
    (nhwc_model,), nhwc_losses = runs[True]
    (nchw_model,), nchw_losses = runs[False]
    assert nhwc_model.hidden[1].weight.is_contiguous(memory_format=torch.channels_last)
    assert nchw_model.hidden[1].weight.is_contiguous()
    assert nhwc_losses[0, 0] == pytest.approx(nchw_losses[0, 0].item(), rel=1e-5)
    torch.testing.assert_close(nhwc_losses, nchw_losses, rtol=2e-2, atol=1e-3)
    # 40 iterations amplify summation order chaotically (0.010 on an AVX2 CPU for grey L2),
    # but far less than another seed moves the result (0.035 there).
    (other_seed,), _ = network.train_networks([bank], chosen, [6])

    def gap(first, second):
        return (network.denoise(first, bank[0]) - network.denoise(second, bank[0])).abs().mean()

    assert gap(nhwc_model, nchw_model) < gap(nhwc_model, other_seed) / 2


def test_train_networks_refuses_mismatched_banks():
    with pytest.raises(ValueError, match="share shape"):
        network.train_networks([noisy_bank(1, 0), noisy_bank(1, 1, size=(20, 20))], settings(max_epoch=1), [1, 2])
    with pytest.raises(ValueError, match="one seed per bank"):
        network.train_networks([noisy_bank(1, 0)], settings(max_epoch=1), [1, 2])


def test_auto_precision_is_fp32_unless_the_method_says_bf16_and_bf16_needs_hardware(monkeypatch):
    cpu = torch.device("cpu")
    assert config.resolve_precision("fp32", cpu, lambda device: True) == "fp32"
    monkeypatch.setattr(config, "bf16_supported", lambda device: True)
    assert config.resolve_precision("auto", cpu) == "fp32"  # no rule: fp32
    assert config.resolve_precision("auto", cpu, lambda device: True) == "bf16"
    assert config.resolve_precision("bf16", cpu) == "bf16"  # not chosen, only allowed
    # Pixel2Pixel's rule: bf16 that is native but not faster (a CPU without AMX) is not chosen.
    monkeypatch.setattr(config, "cpu_has_amx", lambda: True)
    assert methods.settings(device="cpu").precision == "bf16"
    monkeypatch.setattr(config, "cpu_has_amx", lambda: False)
    assert methods.settings(device="cpu").precision == "fp32"
    monkeypatch.setattr(config, "bf16_supported", lambda device: False)
    monkeypatch.setattr(config, "cpu_has_amx", lambda: True)
    assert methods.settings(device="cpu").precision == "fp32"
    with pytest.raises(UserError, match="no native bf16"):
        config.resolve_precision("bf16", cpu)
    with pytest.raises(UserError, match="choose one of"):
        methods.settings(precision="fp16")


@pytest.mark.skipif(not config.bf16_supported(torch.device("cpu")), reason="this CPU has no native bf16")
@pytest.mark.parametrize("channels,out_activation", [(1, "none"), (3, "sigmoid")])
def test_bf16_training_learns_what_fp32_learns(channels, out_activation):
    bank = noisy_bank(channels, 3, size=(24, 24), entries=6)
    results = {}
    for precision in ("fp32", "bf16"):
        model, losses = network.train_network(bank, settings(out_activation=out_activation, max_epoch=80, seed=1,
                                                             precision=precision))
        assert torch.all(torch.isfinite(losses))
        assert model.head.weight.dtype == torch.float32  # fp32 master weights
        results[precision] = (losses, network.denoise(model, bank.mean(0)))
    fp32_losses, fp32_output = results["fp32"]
    bf16_losses, bf16_output = results["bf16"]
    assert bf16_output.dtype == torch.float32
    assert bf16_losses[-10:].mean() == pytest.approx(fp32_losses[-10:].mean().item(), rel=0.05)
    assert (bf16_output - fp32_output).abs().mean() < 0.02
    assert not torch.equal(bf16_losses, fp32_losses)  # bf16 arithmetic really ran


@pytest.mark.parametrize("channels,size,tile", [(1, (70, 53), 16), (3, (40, 41), 20), (3, (33, 90), 32)])
def test_tiled_denoising_equals_whole_image_denoising(channels, size, tile):
    model = network.Pixel2PixelNet(channels, SYN, generator=torch.Generator().manual_seed(1))
    noisy = torch.rand(channels, *size, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(network.denoise(model, noisy, tile=tile), network.denoise(model, noisy),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_fourier_l1_weighs_low_frequencies_by_low_weight(channels):
    # A constant difference c lives in the zero frequency alone: sqrt(HW) * c there
    # (orthonormal), weighted low_weight; a one-pixel difference a spreads a / sqrt(HW)
    # over every frequency, so its flat loss is a / sqrt(HW).
    height, width = 8, 12
    zero = torch.zeros(1, channels, height, width)
    constant = torch.full_like(zero, 0.3)
    assert network.fourier_l1(constant, zero, low_weight=0.5).item() == pytest.approx(
        0.5 * 0.3 * (height * width) ** 0.5 / (height * width), rel=1e-5)
    spike = zero.clone()
    spike[..., 3, 5] = 0.6
    assert network.fourier_l1(spike, zero, low_weight=1.0).item() == pytest.approx(0.6 / (height * width) ** 0.5,
                                                                                    rel=1e-5)
    assert network.fourier_l1(spike, zero).item() < network.fourier_l1(spike, zero, low_weight=1.0).item()
    assert network.fourier_l1(zero, zero).item() == 0
