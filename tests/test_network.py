import pytest
import torch

import network


@pytest.mark.parametrize("channels,expected", [(3, 149_699), (1, 148_417)])
def test_parameter_count(channels, expected):
    assert network.count_parameters(network.Pixel2PixelNet(channels)) == expected


def test_layers_and_init():
    model = network.Pixel2PixelNet(3, generator=torch.Generator().manual_seed(0))
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
        squashed = network.Pixel2PixelNet(channels, "sigmoid", generator=generator)(x)
        raw = network.Pixel2PixelNet(channels, "none", generator=torch.Generator().manual_seed(0))(x)
    assert squashed.shape == raw.shape == x.shape
    assert squashed.min() > 0 and squashed.max() < 1
    torch.testing.assert_close(squashed, torch.sigmoid(raw))


def test_learning_rate_schedule():
    optimizer, scheduler = network.make_optimizer(torch.nn.Linear(2, 1))  # tiny: the schedule is what counts
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
    _, first = network.train_network(bank, "L1", iterations=5, seed=7, progress=False)
    _, again = network.train_network(bank, "L1", iterations=5, seed=7, progress=False)
    _, other = network.train_network(bank, "L1", iterations=5, seed=8, progress=False)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert first.shape == (5,) and torch.all(torch.isfinite(first))


def test_training_reduces_the_loss():
    base = torch.rand(1, 1, 24, 24, generator=torch.Generator().manual_seed(1))
    bank = base + 0.05 * torch.randn(6, 1, 24, 24, generator=torch.Generator().manual_seed(2))
    _, losses = network.train_network(bank, "L2", out_activation="none", iterations=60, seed=0, progress=False)
    assert losses[-10:].mean() < 0.5 * losses[:5].mean()
