"""The monitor's invariants: warn mode is invisible, hooks go away, state round-trips."""
from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import nnlint  # noqa: E402
from nnlint.runtime import TrainingError  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from helpers import hook_count, mlp, regression_batch, train  # noqa: E402


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)  # reused: two sites
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.bn2 = nn.BatchNorm2d(16)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        return self.head(self.drop(x.mean(dim=(2, 3))))


def image_batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(8, 3, 8, 8), torch.randint(0, 4, (8,))


def _run(build, batch, loss_fn, steps, monitored, seed=0, **kwargs):
    torch.manual_seed(seed)
    model = build()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    torch.manual_seed(seed + 1)
    if monitored:
        with nnlint.monitor(model, optimizer, **kwargs) as mon:
            train(model, optimizer, steps, batch, mon, loss_fn)
    else:
        train(model, optimizer, steps, batch, None, loss_fn)
    return model


@pytest.mark.parametrize("case", ["mlp", "cnn"])
def test_warn_mode_is_bit_identical(case: str) -> None:
    if case == "mlp":
        args = (mlp, regression_batch, nn.functional.mse_loss)
    else:
        args = (SmallCNN, image_batch, nn.functional.cross_entropy)
    plain = _run(*args, steps=30, monitored=False)
    watched = _run(*args, steps=30, monitored=True, check_every=7, sample_every=3, use_config=False)
    for (name, a), (_, b) in zip(plain.state_dict().items(), watched.state_dict().items()):
        assert torch.equal(a, b), name


def test_every_hook_is_removed_on_exit() -> None:
    model, optimizer = SmallCNN(), None
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    before = hook_count(model, optimizer)
    with nnlint.monitor(model, optimizer, use_config=False) as mon:
        assert hook_count(model, optimizer) > before
        train(model, optimizer, 3, image_batch, mon, nn.functional.cross_entropy)
    assert hook_count(model, optimizer) == before


def test_every_hook_is_removed_when_the_loop_raises() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    before = hook_count(model, optimizer)
    with pytest.raises(KeyError):
        with nnlint.monitor(model, optimizer, use_config=False) as mon:
            train(model, optimizer, 2, mon=mon)
            raise KeyError("user bug")
    assert hook_count(model, optimizer) == before


def test_raise_mode_raises_training_error_and_detaches() -> None:
    class LogNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(16, 8), nn.Linear(8, 1)

        def forward(self, x):
            return self.fc2(torch.log(self.fc1(x)))

    torch.manual_seed(0)
    model = LogNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    before = hook_count(model, optimizer)
    with pytest.raises(TrainingError) as info:
        with nnlint.monitor(model, optimizer, mode="raise", check_every=2, use_config=False) as mon:
            train(model, optimizer, 10, mon=mon)
    assert info.value.finding.code == "NR301"
    assert info.value.finding.step == 0
    assert info.value.finding.module == ""  # the root's forward made it, between fc1 and fc2
    assert hook_count(model, optimizer) == before


def test_nonfinite_between_reads_is_dated_and_named() -> None:
    class Blowup(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(16, 8)
            self.scale = nn.Linear(8, 8)
            self.out = nn.Linear(8, 1)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            h = self.fc(x)
            if self.calls == 6:  # one bad step between two reads
                with torch.no_grad():
                    self.scale.weight.mul_(1e38)
            return self.out(self.scale(h))

    torch.manual_seed(0)
    model = Blowup()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    with nnlint.monitor(model, optimizer, check_every=10, use_config=False) as mon:
        train(model, optimizer, 10, mon=mon)
    found = [f for f in mon.findings if f.code == "NR301"]
    assert found and found[0].step == 5 and found[0].module == "scale"
    kinds = {(e["kind"], e["module"]) for e in mon.nonfinite_events}
    assert ("activation", "scale") in kinds and ("loss", None) in kinds


def test_state_dict_round_trip_keeps_windows() -> None:
    torch.manual_seed(0)
    fixed = regression_batch()
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-7)
    options = {"NR402": {"window": 15}}
    with nnlint.monitor(model, optimizer, check_every=5, options=options, use_config=False) as first:
        train(model, optimizer, 20, lambda: fixed, mon=first)
    saved = io.BytesIO()
    torch.save(first.state_dict(), saved)
    saved.seek(0)
    state = torch.load(saved, weights_only=False)
    second = nnlint.monitor(model, optimizer, check_every=5, options=options, use_config=False)
    second.load_state_dict(state)
    assert second.detector("NR402").state == first.detector("NR402").state
    with second:
        assert second.step == first.step
        train(model, optimizer, 15, lambda: fixed, mon=second)
    # 35 steps in all: two windows of 15 only exist because the first 20 were kept.
    assert any(f.code == "NR402" for f in second.findings)
    assert second.step == 34
    fresh = nnlint.monitor(model, optimizer, check_every=5, options=options, use_config=False)
    with fresh:
        train(model, optimizer, 15, lambda: fixed, mon=fresh)
    assert not any(f.code == "NR402" for f in fresh.findings)


def test_report_formats() -> None:
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-7)
    with nnlint.monitor(model, optimizer, check_every=5, options={"NR402": {"window": 10}},
                        use_config=False) as mon:
        train(model, optimizer, 25, mon=mon)
    out = io.StringIO()
    mon.report(format="json", stream=out)
    data = json.loads(out.getvalue())
    codes = {f["code"] for f in data["findings"]}
    assert "NR402" in codes
    assert all(f["line"] == 0 and "step" in f for f in data["findings"])
    table = io.StringIO()
    mon.report(stream=table)
    assert "NR402" in table.getvalue()


def test_logging_sink_is_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    class LogNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(16, 8), nn.Linear(8, 1)

        def forward(self, x):
            h = self.fc1(x)
            if self.training and torch.rand(()) < 2:  # always
                h = h * float("inf") if x.sum() != x.sum() else torch.log(h)
            return self.fc2(h)

    torch.manual_seed(0)
    model = LogNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # weights stay finite
    with caplog.at_level(logging.INFO, logger="nnlint.runtime"):
        with nnlint.monitor(model, optimizer, check_every=3, use_config=False) as mon:
            train(model, optimizer, 12, mon=mon)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "NR301" in errors[0].getMessage()


def test_settings_come_from_pyproject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.nnlint.monitor]\ncheck-every = 3\nmode = \"fix\"\n\n[tool.nnlint.NR201]\nwindow = 7\n"
    )
    monkeypatch.chdir(tmp_path)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    mon = nnlint.monitor(model, optimizer)
    assert mon.check_every == 3 and mon.mode == "fix"
    assert mon.detector("NR201").option["window"] == 7
    assert nnlint.monitor(model, optimizer, mode="warn", check_every=9).check_every == 9


def test_import_nnlint_does_not_import_torch() -> None:
    code = "import sys, nnlint; nnlint.Finding; assert 'torch' not in sys.modules, 'torch imported'"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_awkward_models_and_optimizers() -> None:
    """Frozen params, unused params, several param groups, param-less modules, a wrapper."""

    class Awkward(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.frozen = nn.Linear(16, 16)
            self.frozen.requires_grad_(False)
            self.body = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Flatten(), nn.Identity())
            self.unused = nn.Linear(3, 3)
            self.head = nn.Linear(16, 1)

        def forward(self, x):
            return self.head(self.body(self.frozen(x)))

    torch.manual_seed(0)
    inner = Awkward()
    model = nn.DataParallel(inner)  # on the CPU it just calls the module
    optimizer = torch.optim.SGD(
        [{"params": inner.body.parameters(), "lr": 0.01},
         {"params": list(inner.head.parameters()) + list(inner.unused.parameters()), "lr": 0.02}],
        momentum=0.9,
    )
    before = hook_count(model, optimizer)
    with nnlint.monitor(model, optimizer, check_every=4, sample_every=2, use_config=False) as mon:
        train(model, optimizer, 12, mon=mon)
    assert hook_count(model, optimizer) == before
    assert [f for f in mon.findings if f.severity == "error"] == []
    assert mon.step == 11
