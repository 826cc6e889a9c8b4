"""A step is an optimizer step: gradient accumulation (k forwards and backwards per step)
and a generator called twice per iteration count one step per ``optimizer.step()``."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import nnlint

from helpers import hook_count, mlp, regression_batch  # noqa: E402


def _accumulate(model, optimizer, steps: int, k: int, mon=None, nan_at: int = -1) -> None:
    batch = 0
    for _ in range(steps):
        optimizer.zero_grad()
        for _ in range(k):
            x, y = regression_batch()
            if batch == nan_at:
                x[0, 0] = float("nan")
            batch += 1
            loss = nn.functional.mse_loss(model(x), y) / k
            loss.backward()
            if mon is not None:
                mon.observe_loss(loss)
        optimizer.step()


@pytest.mark.parametrize("mode", ["warn", "fix"])
def test_gradient_accumulation_counts_optimizer_steps(mode: str) -> None:
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with nnlint.monitor(model, optimizer, mode, check_every=5, use_config=False, sink=lambda f: None) as mon:
        _accumulate(model, optimizer, 12, 4, mon, nan_at=4 * 6 + 2)  # a micro-batch of step 6
    assert mon.step + 1 == 12
    nan = [f for f in mon.findings if f.code == "NR301"]
    assert nan and nan[0].step == 6 and nan[0].module == "0", nan
    if mode == "fix":
        assert [f.step for f in mon.fixes if f.action == "skip-step"] == [6]
        assert all(torch.isfinite(p).all() for p in model.parameters())
    assert hook_count(model, optimizer) == 0


def test_accumulation_in_warn_mode_is_bit_identical_and_quiet() -> None:
    weights = []
    for monitored in (False, True):
        torch.manual_seed(0)
        model = mlp()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        if monitored:
            with nnlint.monitor(model, optimizer, check_every=5, use_config=False) as mon:
                _accumulate(model, optimizer, 60, 3, mon)
            assert mon.findings == [] and mon.step + 1 == 60
        else:
            _accumulate(model, optimizer, 60, 3)
        weights.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*weights))


def test_a_generator_called_twice_per_iteration_counts_one_step() -> None:
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 4))
    discriminator = nn.Sequential(nn.Linear(4, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    opt_g = torch.optim.Adam(generator.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=1e-3)
    bce = nn.BCEWithLogitsLoss()
    with nnlint.monitor(generator, opt_g, check_every=5, use_config=False) as mon_g, \
            nnlint.monitor(discriminator, opt_d, check_every=5, use_config=False) as mon_d:
        for _ in range(30):
            real = torch.randn(32, 4) + 2.0
            noise = torch.randn(32, 4)
            opt_d.zero_grad()
            fake = generator(noise)  # first call: fakes for the discriminator
            d_loss = bce(discriminator(real), torch.ones(32, 1)) + bce(discriminator(fake.detach()),
                                                                       torch.zeros(32, 1))
            d_loss.backward()
            opt_d.step()
            opt_g.zero_grad()
            g_loss = bce(discriminator(generator(noise)), torch.ones(32, 1))  # second call
            g_loss.backward()
            opt_g.step()
            mon_g.observe_loss(g_loss)
    assert mon_g.step + 1 == 30
    assert mon_g.findings == [] and mon_d.findings == []


def test_grad_scaler_skip_is_still_its_own_iteration() -> None:
    """``zero_grad`` after a backward whose step did not run (a GradScaler skip) starts a new
    iteration: that is not accumulation."""
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with nnlint.monitor(model, optimizer, check_every=5, use_config=False) as mon:
        for step in range(10):
            x, y = regression_batch()
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            if step % 2 == 0:  # every other step skipped, as a scaler that found inf does
                optimizer.step()
    assert mon.step + 1 == 10
