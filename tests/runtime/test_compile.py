"""Under ``torch.compile`` the monitor's hooks never make Dynamo recompile: one graph for
the whole run, as without the monitor, and the gradient-side detectors still work."""
from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import nnlint

from helpers import hook_count, regression_batch  # noqa: E402


def _compile_works() -> str:
    """'' when torch.compile runs here (the eager backend: no C++ compiler needed), else why not."""
    try:
        import torch._dynamo  # noqa: F401

        torch.compile(nn.Linear(2, 2), backend="eager")(torch.randn(1, 2))
    except Exception as error:  # an unsupported Python version, a build without Dynamo
        return f"torch.compile is unavailable here: {type(error).__name__}: {error}"
    return ""


REASON = _compile_works()
pytestmark = pytest.mark.skipif(bool(REASON), reason=REASON or "torch.compile works")


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(16, 32), nn.Linear(32, 32), nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def _run(how: str, monitored: bool, steps: int = 40, nan_at: int = -1) -> tuple[dict[str, int], Any, nn.Module]:
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    if how == "in place":
        model.compile(backend="eager")
        called = watched = model
    else:
        called = torch.compile(model, backend="eager")
        watched = called if how == "wrapper" else model
    mon = nnlint.monitor(watched, optimizer, check_every=5, use_config=False, sink=lambda f: None) \
        if monitored else None
    if mon is not None:
        mon.start()
    try:
        for step in range(steps):
            x, y = regression_batch()
            if step == nan_at:
                x[0, 0] = float("nan")
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(called(x), y)
            loss.backward()
            optimizer.step()
            if mon is not None:
                mon.observe_loss(loss)
    finally:
        if mon is not None:
            mon.close()
    stats = {"graphs": counters["stats"]["unique_graphs"], "frames": counters["frames"]["total"],
             "recompiles": sum(counters["recompiles"].values())}
    return stats, mon, model


@pytest.mark.parametrize("how", ["wrapper", "original", "in place"])
def test_no_recompiles_under_the_monitor(how: str) -> None:
    """``nnlint.monitor(torch.compile(model))``, the original module given while the
    compiled wrapper is called, and ``model.compile()``: the same graphs as without it."""
    plain, _, _ = _run(how, monitored=False)
    watched, mon, model = _run(how, monitored=True, nan_at=30)
    assert watched == plain, (watched, plain)
    assert watched["graphs"] == 1 and watched["recompiles"] == 0
    assert mon.step == 39
    nan = [f for f in mon.findings if f.code == "NR301"]
    assert nan and nan[0].step == 30  # the gradient-side checks still run
    assert hook_count(model, mon.optimizer) == 0


def test_warn_mode_is_bit_identical_when_compiled() -> None:
    _, _, plain = _run("wrapper", monitored=False, steps=20)
    _, _, watched = _run("wrapper", monitored=True, steps=20)
    for a, b in zip(plain.parameters(), watched.parameters()):
        assert torch.equal(a, b)
