"""Findings a user can act on, and fix-mode remedies that rescue a run or stop it clearly."""
from __future__ import annotations

import io
import math
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import nnlint  # noqa: E402
from nnlint.runtime import TrainingError  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from helpers import hook_count, mlp, regression_batch, train  # noqa: E402


def _quiet(**kwargs):
    return {"use_config": False, "sink": lambda finding: None, **kwargs}


def _handwritten_bce(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()  # log of a raw output: NaN when p < 0


def _binary_batch() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(64, 16)
    return x, (x[:, :1] > 0).float()


def _finite_optimizer_state(optimizer: torch.optim.Optimizer) -> bool:
    for state in optimizer.state.values():
        for value in state.values():
            for tensor in value if isinstance(value, list) else [value]:
                if isinstance(tensor, torch.Tensor):
                    dense = tensor.to_dense() if tensor.is_sparse else tensor
                    if dense.is_floating_point() and not bool(torch.isfinite(dense).all()):
                        return False
    return True


# -- NR301 tells the forward, the loss and the backward apart -------------------------

def test_a_nan_made_by_the_loss_function_is_blamed_on_the_loss() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    with nnlint.monitor(model, optimizer, **_quiet(check_every=5)) as mon:
        train(model, optimizer, 10, _binary_batch, mon, _handwritten_bce)
    first = [f for f in mon.findings if f.code == "NR301"][0]
    assert first.step == 0 and first.module is None
    assert "model output was finite" in first.message and "loss function made the NaN" in first.message
    assert "activations and loss were finite" not in first.message
    assert "binary_cross_entropy_with_logits" in first.message  # what to use instead
    assert "nnlint explain NR301" in first.message


def test_a_nan_made_by_the_backward_names_the_gradient_and_parameter() -> None:
    class SqrtAtZero(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 1)

        def forward(self, x):
            h = self.fc1(x)
            return self.fc2(h + torch.sqrt(torch.relu(h) * 0.0))  # finite forward, d sqrt(0) = inf

    torch.manual_seed(0)
    model = SqrtAtZero()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with nnlint.monitor(model, optimizer, **_quiet(check_every=5)) as mon:
        train(model, optimizer, 5, mon=mon)
    first = [f for f in mon.findings if f.code == "NR301"][0]
    assert first.module == "fc1" and first.step == 0
    assert "backward pass" in first.message and "'fc1.weight'" in first.message
    assert "loss were finite" in first.message


def test_a_nan_made_in_the_forward_names_the_module() -> None:
    class LogNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(16, 8), nn.Linear(8, 1)

        def forward(self, x):
            return self.fc2(torch.log(self.fc1(x)))

    torch.manual_seed(0)
    model = LogNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with nnlint.monitor(model, optimizer, **_quiet(check_every=5)) as mon:
        train(model, optimizer, 5, mon=mon)
    first = [f for f in mon.findings if f.code == "NR301"][0]
    assert "forward pass" in first.message and "'fc1'" in first.message and "'fc2'" in first.message
    assert "loss function" not in first.message


# -- non-finite steps in fix mode: a budget, then TrainingError ------------------------

def test_fix_mode_stops_a_run_that_is_non_finite_at_every_step() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    steps = 0
    with pytest.raises(TrainingError) as raised:
        with nnlint.monitor(model, optimizer, mode="fix", **_quiet()) as mon:
            for _ in range(320):
                x, y = _binary_batch()
                optimizer.zero_grad()
                loss = _handwritten_bce(model(x), y)
                mon.observe_loss(loss)  # before step(): a non-finite loss skips the update
                loss.backward()
                optimizer.step()
                steps += 1
    assert steps <= 12  # the skip budget (10) and the first check (step 10), not 320 steps
    finding = raised.value.finding
    assert finding.code == "NR301" and "stopping the run" in finding.message
    assert "loss function made the NaN" in str(raised.value)  # where the NaN starts
    assert hook_count(model, optimizer) == 0
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(f.action == "skip-step" for f in mon.fixes)


def test_rare_nan_steps_are_skipped_without_stopping() -> None:
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    calls = {"n": 0}

    def batch():
        calls["n"] += 1
        x, y = regression_batch()
        if calls["n"] % 5 == 0:
            x[0, 0] = float("nan")
        return x, y

    with nnlint.monitor(model, optimizer, mode="fix", **_quiet()) as mon:
        train(model, optimizer, 60, batch, mon)
    assert len([f for f in mon.fixes if f.action == "skip-step"]) == 12
    assert not any("stopping" in f.message for f in mon.findings)


def test_sparse_gradients_never_carry_a_nan_into_weights_or_sparse_adam() -> None:
    class Bag(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(100, 8, sparse=True)

        def forward(self, tokens):
            return self.embed(tokens).mean(dim=(1, 2)).unsqueeze(1)

    def run(mode: str):
        torch.manual_seed(0)
        model = Bag()
        optimizer = torch.optim.SparseAdam(model.parameters(), lr=1e-2)
        with nnlint.monitor(model, optimizer, mode=mode, **_quiet(check_every=5)) as mon:
            for step in range(20):
                tokens, y = torch.randint(0, 100, (16, 6)), torch.randn(16, 1)
                if step == 7:
                    y[0, 0] = float("nan")
                optimizer.zero_grad()
                loss = nn.functional.mse_loss(model(tokens), y)
                loss.backward()
                optimizer.step()
                mon.observe_loss(loss)
        return model, optimizer, mon

    model, optimizer, _ = run("warn")
    assert not torch.isfinite(model.embed.weight).all()  # what fix mode must prevent
    model, optimizer, mon = run("fix")
    assert torch.isfinite(model.embed.weight).all() and _finite_optimizer_state(optimizer)
    assert [f.step for f in mon.fixes if f.action == "skip-step"] == [7]


def _lbfgs_run(mode: str, nan_at: int = 6):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    optimizer = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=5)
    with nnlint.monitor(model, optimizer, mode=mode, **_quiet(check_every=5)) as mon:
        for step in range(12):
            x = torch.randn(32, 4)
            y = x.sum(dim=1, keepdim=True)

            def closure():
                optimizer.zero_grad()
                loss = nn.functional.mse_loss(model(x), y) * (float("nan") if step == nan_at else 1.0)
                loss.backward()
                return loss

            mon.observe_loss(optimizer.step(closure))
    return model, optimizer, mon


def test_closure_optimizer_fix_mode_keeps_weights_and_state_finite() -> None:
    model, optimizer, _ = _lbfgs_run("warn")
    assert not all(torch.isfinite(p).all() for p in model.parameters())
    model, optimizer, mon = _lbfgs_run("fix")
    assert all(torch.isfinite(p).all() for p in model.parameters()) and _finite_optimizer_state(optimizer)
    assert [f.step for f in mon.fixes if f.action == "skip-step"] == [6]
    # a step is an optimizer step, not one of the closure's many forward passes
    assert mon.step == 11
    assert [f.step for f in mon.findings if f.code == "NR301"] == [6]


def test_closure_optimizer_warn_mode_is_bit_identical() -> None:
    def plain():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        optimizer = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=5)
        for _ in range(12):
            x = torch.randn(32, 4)
            y = x.sum(dim=1, keepdim=True)

            def closure():
                optimizer.zero_grad()
                loss = nn.functional.mse_loss(model(x), y)
                loss.backward()
                return loss

            optimizer.step(closure)
        return model

    watched, _, _ = _lbfgs_run("warn", nan_at=-1)
    for a, b in zip(plain().parameters(), watched.parameters()):
        assert torch.equal(a, b)


# -- divergence: restore the last good state and back off ------------------------------

def _sign_batch() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(64, 16)
    return x, (x[:, 0] + x[:, 1] > 0).long()


def _classifier_accuracy(lr: float, mode: str | None) -> tuple[float, object]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    mon = nnlint.monitor(model, optimizer, mode=mode or "warn", **_quiet(select=[] if mode is None else None))
    with mon:
        train(model, optimizer, 320, _sign_batch, mon, nn.functional.cross_entropy)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2000, 16, generator=generator)
    with torch.no_grad():
        accuracy = float((model(x).argmax(dim=1) == (x[:, 0] + x[:, 1] > 0).long()).float().mean())
    return accuracy, mon


def test_fix_mode_rescues_sgd_with_a_learning_rate_of_10() -> None:
    sane, _ = _classifier_accuracy(0.05, None)
    warn, _ = _classifier_accuracy(10.0, "warn")
    fixed, mon = _classifier_accuracy(10.0, "fix")
    assert sane > 0.9 and warn < 0.7
    assert fixed >= sane - 0.05, (fixed, sane)
    actions = [f.action for f in mon.fixes if f.code == "NR401"]
    assert "restore-snapshot" in actions and "halve-lr" in actions
    divergence = [f for f in mon.findings if f.code == "NR401"][0]
    assert divergence.step < 10 and "lower the learning rate" in divergence.message


def test_snapshot_restores_weights_buffers_and_optimizer_state() -> None:
    from nnlint.runtime.remedies import Snapshot

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    train(model, optimizer, 3, lambda: regression_batch(16, 4))
    snapshot = Snapshot(model, optimizer)
    snapshot.take(step=3)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    saved_state = {id(p): {k: v.clone() for k, v in s.items()} for p, s in optimizer.state.items()}
    train(model, optimizer, 3, lambda: regression_batch(16, 4))
    assert snapshot.restore()
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key
    for param, state in optimizer.state.items():
        for key, value in state.items():
            assert torch.equal(value, saved_state[id(param)][key])
    assert snapshot.nbytes > 0


def test_a_divergence_no_back_off_cures_stops_with_a_learning_rate_to_try() -> None:
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    growth = {"step": 0}

    def growing_loss(out, y):  # diverges whatever the weights: only a stop can end it
        growth["step"] += 1
        return nn.functional.mse_loss(out, y) * 1.2 ** growth["step"]

    options = {"NR401": {"max_backoffs": 2, "cooldown": 5}}
    with pytest.raises(TrainingError) as raised:
        with nnlint.monitor(model, optimizer, mode="fix", **_quiet(check_every=5, options=options)) as mon:
            train(model, optimizer, 200, mon=mon, loss_fn=growing_loss)
    assert raised.value.finding.code == "NR401"
    assert "Lower the learning rate to ~" in str(raised.value)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 / 4)


# -- dead and saturated units ----------------------------------------------------------

def test_a_fully_dead_layer_is_reported_and_fixed_within_ten_steps() -> None:
    torch.manual_seed(0)
    model = mlp(width=64, depth=3)
    nn.init.constant_(model[2].bias, -20.0)  # every unit of the second ReLU is off
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nnlint.monitor(model, optimizer, **_quiet()) as mon:
        train(model, optimizer, 30, mon=mon)
    dead = [f for f in mon.findings if f.code == "NR201"]
    assert dead and dead[0].module == "3" and dead[0].step <= 10
    assert "every unit" in dead[0].message and "He initialisation" in dead[0].message

    torch.manual_seed(0)
    model = mlp(width=64, depth=3)
    nn.init.constant_(model[2].bias, -20.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nnlint.monitor(model, optimizer, mode="fix", **_quiet()) as mon:
        train(model, optimizer, 30, mon=mon)
    revived = [f for f in mon.fixes if f.action == "reinit-dead-units"]
    assert revived and revived[0].module == "2" and revived[0].step <= 10
    with torch.no_grad():
        assert (model[3](model[2](model[1](model[0](torch.randn(256, 16))))) > 0).any(dim=0).float().mean() > 0.5


def test_saturated_sigmoid_findings_say_what_to_change() -> None:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(8):
        linear = nn.Linear(128 if layers else 16, 128)
        nn.init.normal_(linear.weight, std=1.0)
        layers += [linear, nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(128, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with nnlint.monitor(model, optimizer, **_quiet()) as mon:
        train(model, optimizer, 20, mon=mon)
    saturated = [f for f in mon.findings if f.code == "NR202"]
    assert len(saturated) >= 4
    for finding in saturated:
        assert "Xavier" in finding.message and "normalisation" in finding.message
        assert "nnlint explain NR202" in finding.message


# -- every finding points to its docs, every fix has a finding, the report leads --------

def test_every_fix_has_a_finding_and_every_finding_a_docs_pointer() -> None:
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    calls = {"n": 0}

    def batch():  # rare outlier batches: clipped, but too short-lived to be an explosion
        calls["n"] += 1
        x, y = regression_batch()
        return (x, y * 1e4) if calls["n"] > 30 and calls["n"] % 10 == 0 else (x, y)

    with nnlint.monitor(model, optimizer, fix=["NR101"], **_quiet(check_every=10)) as mon:
        train(model, optimizer, 60, batch, mon)
    assert any(f.action == "clip-grad-norm" for f in mon.fixes)
    assert {f.code for f in mon.fixes} <= {f.code for f in mon.findings}
    clip = [f for f in mon.findings if f.code == "NR101"][0]
    assert "clipped" in clip.message
    assert all(f"nnlint explain {f.code}" in f.message for f in mon.findings)


def test_report_begins_with_what_to_do_first() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    with nnlint.monitor(model, optimizer, **_quiet(check_every=5)) as mon:
        train(model, optimizer, 10, _binary_batch, mon, _handwritten_bce)
    out = io.StringIO()
    mon.report(stream=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "What to do first:"
    assert lines[1].startswith("  1. NR301 at step 0:") and "loss function" in lines[1]

    healthy = mlp()
    opt = torch.optim.Adam(healthy.parameters(), lr=1e-3)
    with nnlint.monitor(healthy, opt, **_quiet()) as mon:
        train(healthy, opt, 5, mon=mon)
    out = io.StringIO()
    mon.report(stream=out)
    assert out.getvalue().startswith("nnlint monitor: nothing to do")


def test_complex_parameters_do_not_crash_warn_mode() -> None:
    class Spectral(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(8, dtype=torch.cfloat) * 0.1)
            self.fc = nn.Linear(8, 1)

        def forward(self, x):
            return self.fc(torch.fft.ifft(torch.fft.fft(x) * self.weight).real)

    torch.manual_seed(0)
    model = Spectral()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nnlint.monitor(model, optimizer, **_quiet(check_every=5, sample_every=2)) as mon:
        losses = train(model, optimizer, 12, lambda: regression_batch(16, 8), mon)
    assert math.isfinite(losses[-1]) and mon.step == 11
    assert [f for f in mon.findings if f.code == "NR301"] == []
