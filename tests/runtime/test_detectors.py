"""Each NR doc's Example fires its detector and Use instead is clean; healthy models raise
no alarm; the remedies of fix mode work."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import nnlint  # noqa: E402
from nnlint.catalogue import RuleInfo, code_blocks, load_catalogue  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from helpers import mlp, regression_batch, standard_normal_relu_net, train  # noqa: E402

RUNTIME = load_catalogue().runtime_rules


def _run_block(block: str):
    namespace: dict = {"__name__": "nnlint_doc_example"}
    exec(compile(block, "<doc>", "exec"), namespace)
    return namespace["mon"]


def test_every_detector_is_in_the_catalogue() -> None:
    codes = {info.code for info in RUNTIME}
    assert codes == {"NR101", "NR102", "NR103", "NR201", "NR202", "NR203", "NR301", "NR401", "NR402"}


@pytest.mark.parametrize("info", RUNTIME, ids=lambda i: i.code)
def test_example_fires(info: RuleInfo) -> None:
    blocks = code_blocks(info.sections()["Example"])
    assert blocks
    for block in blocks:
        mon = _run_block(block)
        assert any(f.code == info.code for f in mon.findings), mon.findings


@pytest.mark.parametrize("info", RUNTIME, ids=lambda i: i.code)
def test_use_instead_is_clean(info: RuleInfo) -> None:
    for block in code_blocks(info.sections()["Use instead"]):
        mon = _run_block(block)
        assert [f for f in mon.findings if f.code == info.code] == []


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 32)
        layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(32, 50)

    def forward(self, tokens):
        return self.head(self.encoder(self.embed(tokens)))


def _tokens():
    tokens = torch.randint(0, 50, (8, 12))
    return tokens, tokens.roll(1, dims=1)


def _lm_loss(logits, target):
    return nn.functional.cross_entropy(logits.reshape(-1, 50), target.reshape(-1))


def _cnn():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    )


def _images():
    x = torch.randn(16, 3, 8, 8)
    return x, (x.mean(dim=(1, 2, 3)) > 0).long() + 2 * (x[:, 0].mean(dim=(1, 2)) > 0).long()


@pytest.mark.parametrize("case", ["mlp", "cnn", "transformer", "converged"])
def test_no_false_alarms_on_healthy_models(case: str) -> None:
    torch.manual_seed(0)
    if case == "mlp":
        model, batch, loss_fn, steps = mlp(64, 3), regression_batch, nn.functional.mse_loss, 250
    elif case == "cnn":
        model, batch, loss_fn, steps = _cnn(), _images, nn.functional.cross_entropy, 150
    elif case == "transformer":
        model, batch, loss_fn, steps = Encoder(), _tokens, _lm_loss, 150
    else:
        fixed = regression_batch(16)
        model, batch, loss_fn, steps = mlp(64, 2), (lambda: fixed), nn.functional.mse_loss, 600
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nnlint.monitor(model, optimizer, use_config=False) as mon:
        losses = train(model, optimizer, steps, batch, mon, loss_fn)
    if case == "converged":
        assert losses[-1] < 1e-3 * losses[0]
    assert mon.findings == [], mon.findings


def test_relu_module_reused_at_two_places_is_two_sites() -> None:
    class Reuse(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(8, 16), nn.Linear(16, 4)
            self.relu = nn.ReLU()
            nn.init.constant_(self.b.bias, -100.0)  # the second site is dead, the first is not

        def forward(self, x):
            return self.relu(self.b(self.relu(self.a(x)))).sum(dim=1, keepdim=True)

    torch.manual_seed(0)
    model = Reuse()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with nnlint.monitor(model, optimizer, check_every=5, options={"NR201": {"window": 10}},
                        use_config=False) as mon:
        train(model, optimizer, 10, lambda: regression_batch(16, 8), mon)
    dead = [f for f in mon.findings if f.code == "NR201"]
    assert len(dead) == 1 and dead[0].module == "relu" and "'relu#1'" in dead[0].message


def _nan_every(period: int):
    state = {"calls": 0}

    def batch():
        state["calls"] += 1
        x, y = regression_batch()
        if state["calls"] % period == 0:
            x[0, 0] = float("nan")
        return x, y

    return batch


def test_fix_mode_skips_non_finite_steps_and_keeps_weights_finite() -> None:
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nnlint.monitor(model, optimizer, mode="fix", check_every=5, use_config=False) as mon:
        losses = train(model, optimizer, 40, _nan_every(7), mon)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    skipped = [f.step for f in mon.fixes if f.action == "skip-step"]
    assert skipped == [6, 13, 20, 27, 34]
    assert any(f.code == "NR301" for f in mon.findings)
    assert "input" in {e["kind"] for e in mon.nonfinite_events}
    assert math.isfinite(losses[-1])


def test_fix_mode_with_grad_scaler() -> None:
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    batch = _nan_every(9)
    with nnlint.monitor(model, optimizer, mode="fix", check_every=5, use_config=False) as mon:
        for _ in range(30):
            x, y = batch()
            optimizer.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = nn.functional.mse_loss(model(x).float(), y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            mon.observe_loss(loss)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # The scaler skipped the NaN steps itself: the monitor counted them but had nothing to skip.
    assert [f for f in mon.fixes if f.action == "skip-step"] == []
    assert [f.step for f in mon.findings if f.code == "NR301"] == [8, 17, 26]


def test_fix_mode_halves_lr_on_divergence() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    def batch():
        x = torch.randn(64, 8) * 3
        return x, x.sum(dim=1, keepdim=True)

    with nnlint.monitor(model, optimizer, fix=["NR401", "NR101", "NR301"], check_every=1,
                        use_config=False) as mon:
        train(model, optimizer, 60, batch, mon)
    assert any(f.action == "halve-lr" for f in mon.fixes)
    assert optimizer.param_groups[0]["lr"] < 0.05
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_fix_mode_revives_dead_relus() -> None:
    torch.manual_seed(0)
    hidden = nn.Linear(16, 64)
    nn.init.constant_(hidden.bias, -10.0)
    model = nn.Sequential(hidden, nn.ReLU(), nn.Linear(64, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    options = {"NR201": {"window": 10}}
    with nnlint.monitor(model, optimizer, mode="fix", check_every=5, options=options,
                        use_config=False) as mon:
        train(model, optimizer, 30, mon=mon)
    revived = [f for f in mon.fixes if f.action == "reinit-dead-units"]
    assert len(revived) == 1 and revived[0].module == "0"
    assert [f.code for f in mon.findings].count("NR201") == 1  # alive again afterwards
    with torch.no_grad():
        assert (model[1](model[0](torch.randn(256, 16))) > 0).any(dim=0).float().mean() > 0.5


def test_fix_mode_swaps_to_leaky_relu_when_asked() -> None:
    torch.manual_seed(0)
    hidden = nn.Linear(16, 64)
    nn.init.constant_(hidden.bias, -10.0)
    model = nn.Sequential(hidden, nn.ReLU(), nn.Linear(64, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    options = {"NR201": {"window": 10, "swap_to_leaky": True}}
    with nnlint.monitor(model, optimizer, mode="fix", check_every=5, options=options,
                        use_config=False) as mon:
        train(model, optimizer, 20, mon=mon)
    assert isinstance(model[1], nn.LeakyReLU)
    assert [f.action for f in mon.fixes if f.code == "NR201"] == ["swap-leaky-relu"]
    assert all(len(m._forward_hooks) == 0 for m in model.modules())


def test_fix_mode_reinitialises_a_bad_init() -> None:
    torch.manual_seed(0)
    model = standard_normal_relu_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    with nnlint.monitor(model, optimizer, mode="fix", check_every=5, use_config=False) as mon:
        train(model, optimizer, 30, lambda: regression_batch(32, 64), mon)
    reinit = {f.module for f in mon.fixes if f.action == "kaiming-reinit"}
    assert {"0", "2", "4", "6", "8", "10"} <= reinit
    assert model[0].weight.std().item() < 0.5


def test_fix_mode_clips_gradient_spikes() -> None:
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    calls = {"n": 0}

    def batch():
        calls["n"] += 1
        x, y = regression_batch()
        return (x, y * 1e4) if calls["n"] > 30 and calls["n"] % 10 == 0 else (x, y)

    with nnlint.monitor(model, optimizer, fix=["NR101"], check_every=10, use_config=False) as mon:
        train(model, optimizer, 60, batch, mon)
    clipped = sorted(f.step for f in mon.fixes if f.action == "clip-grad-norm")
    assert {39, 49, 59} <= set(clipped)
