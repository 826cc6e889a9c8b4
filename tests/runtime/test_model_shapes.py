"""Every model shape: functional activations, other activation modules, containers."""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Callable

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

import nnlint  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from helpers import hook_count, regression_batch, train  # noqa: E402

DYING: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "F.relu": F.relu,
    "torch.relu": torch.relu,
    "x.relu()": lambda x: x.relu(),
    "F.gelu": F.gelu,
    "F.silu": F.silu,
}
SATURATING: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "torch.sigmoid": torch.sigmoid,
    "torch.tanh": torch.tanh,
}


class Functional(nn.Module):
    def __init__(self, act: Callable[[torch.Tensor], torch.Tensor], width: int = 64) -> None:
        super().__init__()
        self.act = act
        self.fc1, self.fc2, self.fc3 = nn.Linear(16, width), nn.Linear(width, width), nn.Linear(width, 1)

    def forward(self, x):
        return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))


def _quiet(**kwargs):
    return {"use_config": False, "sink": lambda finding: None, **kwargs}


@pytest.mark.parametrize("name", list(DYING))
def test_a_dead_functional_activation_is_reported_at_the_module_it_feeds(name: str) -> None:
    torch.manual_seed(0)
    model = Functional(DYING[name])
    nn.init.constant_(model.fc2.bias, -20.0)  # every unit after fc2 is off
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nnlint.monitor(model, optimizer, **_quiet()) as mon:
        train(model, optimizer, 20, mon=mon)
    dead = [f for f in mon.findings if f.code == "NR201"]
    assert len(dead) == 1 and dead[0].step <= 10, mon.findings
    assert "functional" in dead[0].message and "'fc3'" in dead[0].message


@pytest.mark.parametrize("name", list(DYING))
def test_a_dead_functional_activation_is_revived_in_fix_mode(name: str) -> None:
    torch.manual_seed(0)
    model = Functional(DYING[name])
    nn.init.constant_(model.fc2.bias, -20.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nnlint.monitor(model, optimizer, mode="fix", **_quiet()) as mon:
        train(model, optimizer, 20, mon=mon)
    revived = [f for f in mon.fixes if f.action == "reinit-dead-units"]
    assert revived and revived[0].module == "fc2"
    with torch.no_grad():
        assert (model.fc2(model.act(model.fc1(torch.randn(256, 16)))) > 0).any(dim=0).float().mean() > 0.5


@pytest.mark.parametrize("name", list(SATURATING))
def test_a_saturated_functional_activation_is_reported(name: str) -> None:
    torch.manual_seed(0)
    model = Functional(SATURATING[name], width=128)
    for layer in (model.fc1, model.fc2):
        nn.init.normal_(layer.weight, std=1.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with nnlint.monitor(model, optimizer, **_quiet()) as mon:
        train(model, optimizer, 20, mon=mon)
    saturated = [f for f in mon.findings if f.code == "NR202"]
    assert saturated and all("functional" in f.message for f in saturated)


def test_functional_activations_keep_warn_mode_bit_identical() -> None:
    def run(monitored: bool):
        torch.manual_seed(0)
        model = Functional(F.gelu)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        torch.manual_seed(1)
        if monitored:
            with nnlint.monitor(model, optimizer, **_quiet(check_every=5)) as mon:
                train(model, optimizer, 12, mon=mon)
        else:
            train(model, optimizer, 12)
        return model

    for a, b in zip(run(False).parameters(), run(True).parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("module,kind,dies", [
    (nn.GELU, "gelu", True), (nn.SiLU, "silu", True), (nn.LeakyReLU, "leaky_relu", False), (nn.ELU, "elu", False),
])
def test_other_activation_modules(module: type, kind: str, dies: bool) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), module(), nn.Linear(64, 64), module(), nn.Linear(64, 1))
    nn.init.constant_(model[2].bias, -20.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nnlint.monitor(model, optimizer, **_quiet()) as mon:
        train(model, optimizer, 20, mon=mon)
    kinds = {site.name: site.kind for site in mon._collector.site_infos()}
    assert kinds["1"] == kind and kinds["3"] == kind
    dead = [f.module for f in mon.findings if f.code == "NR201"]
    assert dead == (["3"] if dies else [])  # LeakyReLU and ELU keep a gradient: they cannot die


def test_a_container_without_a_forward_is_refused_at_start() -> None:
    generator = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4))
    discriminator = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    models = nn.ModuleDict({"G": generator, "D": discriminator})
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="no forward of its own") as raised:
        with nnlint.monitor(models, optimizer, **_quiet()):
            pass
    assert "G, D" in str(raised.value) and "its own optimizer" in str(raised.value)
    assert hook_count(models, optimizer) == 0


def test_each_model_of_a_gan_can_be_watched_with_its_own_monitor() -> None:
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 4))
    discriminator = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    nn.init.constant_(discriminator[0].bias, -20.0)  # the discriminator's hidden layer is dead
    opt_g = torch.optim.Adam(generator.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=1e-3)
    bce = nn.functional.binary_cross_entropy_with_logits
    with nnlint.monitor(generator, opt_g, **_quiet()) as mon_g, \
            nnlint.monitor(discriminator, opt_d, **_quiet()) as mon_d:
        for _ in range(20):
            real, noise = torch.randn(32, 4) + 2.0, torch.randn(32, 4)
            opt_d.zero_grad()
            fake = generator(noise).detach()
            d_loss = bce(discriminator(real), torch.ones(32, 1)) + bce(discriminator(fake), torch.zeros(32, 1))
            d_loss.backward()
            opt_d.step()
            opt_g.zero_grad()
            g_loss = bce(discriminator(generator(noise)), torch.ones(32, 1))
            g_loss.backward()
            opt_g.step()
    assert [f.module for f in mon_d.findings if f.code == "NR201"][:1] == ["1"]
    assert [f for f in mon_g.findings if f.code == "NR201"] == []


def test_a_model_whose_forward_never_runs_is_not_silent(caplog: pytest.LogCaptureFixture) -> None:
    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 1))

        def forward(self, x):
            return self.net(x)

    torch.manual_seed(0)
    wrapper = Wrapper()
    optimizer = torch.optim.SGD(wrapper.parameters(), lr=0.01)
    with caplog.at_level(logging.WARNING, logger="nnlint.runtime"):
        with nnlint.monitor(wrapper, optimizer, use_config=False):
            for _ in range(3):  # the loop calls the submodule, never the watched model
                x, y = regression_batch()
                optimizer.zero_grad()
                nn.functional.mse_loss(wrapper.net(x), y).backward()
                optimizer.step()
    warnings = [r for r in caplog.records if "never did" in r.getMessage()]
    assert len(warnings) == 1 and "Wrapper" in warnings[0].getMessage()
