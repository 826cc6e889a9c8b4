"""The Lightning callback with a real ``lightning.pytorch.Trainer.fit`` on CPU."""
from __future__ import annotations

import io
import warnings
from typing import Any, Optional

import pytest
import torch
from torch import nn

pl = pytest.importorskip("lightning.pytorch")

import nnlint  # noqa: E402
from nnlint.integrations.lightning import NNLintCallback  # noqa: E402

from helpers import hook_count  # noqa: E402


class Regressor(pl.LightningModule):
    def __init__(self, dead: bool = False, nan_at: Optional[int] = None, call_self: bool = False) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
        if dead:
            nn.init.constant_(self.net[2].bias, -100.0)  # every unit of net.3 is silent
        self.nan_at, self.call_self, self.batches = nan_at, call_self, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, index: int) -> torch.Tensor:
        x, y = batch
        self.batches += 1
        if self.batches == self.nan_at:
            x = x.clone()
            x[0, 0] = float("nan")
        out = self(x) if self.call_self else self.net(x)
        return nn.functional.mse_loss(out, y)

    def validation_step(self, batch: Any, index: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _loader() -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x[:, :1] * 0.5 + x[:, 1:2].sin()),
                                       batch_size=16)


def fit(model: pl.LightningModule, callbacks: list, epochs: int = 2, **trainer_kwargs: Any) -> pl.Trainer:
    kwargs: dict[str, Any] = dict(max_epochs=epochs, logger=False, enable_checkpointing=False,
                                  enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                                  num_sanity_val_steps=2, deterministic=True)
    kwargs.update(trainer_kwargs)
    trainer = pl.Trainer(callbacks=callbacks, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, _loader(), _loader())
    return trainer


def callback(mode: str = "warn", **kwargs: Any) -> NNLintCallback:
    return NNLintCallback(mode=mode, print_report=False, check_every=5, use_config=False, **kwargs)


def test_injected_nan_is_found_named_and_reported() -> None:
    torch.manual_seed(0)
    cb = callback()
    fit(Regressor(nan_at=20), [cb])
    nan = [f for f in cb.findings if f.code == "NR301"]
    assert nan and nan[0].module == "net.0" and nan[0].step == 19, cb.findings
    out = io.StringIO()
    cb.report(stream=out)
    assert "NR301" in out.getvalue() and "net.0" in out.getvalue()
    assert cb.monitor.step + 1 == 32  # two epochs of 16 batches: validation batches are not steps


def test_dead_layer_is_found() -> None:
    torch.manual_seed(0)
    cb = callback()
    fit(Regressor(dead=True, call_self=True), [cb])
    assert [(f.code, f.module) for f in cb.findings] == [("NR201", "net.3")]


@pytest.mark.parametrize("trainer_kwargs", [
    {},
    {"accumulate_grad_batches": 2},
    {"gradient_clip_val": 0.5},
    {"precision": "bf16-mixed"},
], ids=["plain", "accumulation", "clipping", "bf16"])
def test_healthy_run_is_quiet_and_bit_identical(trainer_kwargs: dict) -> None:
    """Validation (eval + no_grad, sanity check included) raises no alarm, and warn mode
    changes nothing: the weights match a run without the callback bit for bit."""
    torch.manual_seed(0)
    plain = Regressor(call_self=True)
    watched = Regressor(call_self=True)
    watched.load_state_dict(plain.state_dict())
    fit(plain, [], **trainer_kwargs)
    cb = callback()
    fit(watched, [cb], **trainer_kwargs)
    assert cb.findings == [], cb.findings
    for a, b in zip(plain.parameters(), watched.parameters()):
        assert torch.equal(a, b)
    assert hook_count(watched, cb.monitor.optimizer) == 0


@pytest.mark.parametrize("call_self", [False, True], ids=["net", "module-forward"])
def test_accumulation_reports_the_optimizer_step(call_self: bool) -> None:
    """Also when the LightningModule's own forward runs in every micro-batch: the
    micro-batches before the optimizer step belong to it."""
    torch.manual_seed(0)
    cb = callback()
    fit(Regressor(nan_at=20, call_self=call_self), [cb], accumulate_grad_batches=2)
    nan = [f for f in cb.findings if f.code == "NR301"]
    assert nan and nan[0].step == 9  # batch 20 belongs to the 10th optimizer step
    assert cb.monitor.step + 1 == 16


def test_raise_mode_stops_fit_and_removes_hooks() -> None:
    torch.manual_seed(0)
    model = Regressor(nan_at=3)
    cb = callback("raise")
    with pytest.raises(nnlint.TrainingError, match="NR301"):
        fit(model, [cb])
    assert hook_count(model, cb.monitor.optimizer) == 0
    assert any(f.code == "NR301" for f in cb.findings)


def test_fix_mode_skips_the_non_finite_step() -> None:
    torch.manual_seed(0)
    model = Regressor(nan_at=7)
    cb = callback("fix")
    fit(model, [cb], epochs=1)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert [f.step for f in cb.fixes if f.action == "skip-step"] == [6]


def test_report_is_printed_at_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    cb = NNLintCallback(check_every=5, use_config=False)
    fit(Regressor(dead=True), [cb], epochs=1)
    assert "NR201" in capsys.readouterr().out


def test_log_dir_writes_the_event_log(tmp_path: Any) -> None:
    import json

    torch.manual_seed(0)
    cb = callback(log_dir=str(tmp_path / "exp"))
    fit(Regressor(nan_at=20), [cb])
    events = [json.loads(line) for line in (tmp_path / "exp" / "events.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "start" and events[-1] == {**events[-1], "event": "end", "steps": 32}
    assert [(e["code"], e["step"]) for e in events if e["event"] == "finding"] == [("NR301", 19)]
