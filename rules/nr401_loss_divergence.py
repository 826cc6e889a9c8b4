'''
## What it does
Reports a diverging loss. Its recent median climbs far above its running minimum
(by `factor` times the progress made so far, or the minimum's own size; the first loss
counts, so a run that diverges from its first steps is caught), the signature of a
learning rate that is too high. Needs `mon.observe_loss(loss)`. In fix mode it restores
the last good weights and optimizer state and backs off the learning rate.

## Why is this bad?
A diverging loss means the optimizer overshoots: the weights move away from any
minimum, and the run ends in NaN or in a useless model. Lowering the learning rate is
the standard cure; a learning-rate schedule that warms up or decays helps too.

## Example
```python
import torch
from torch import nn
import nnlint

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)  # too high for this problem
with nnlint.monitor(model, optimizer, check_every=10) as mon:
    for _ in range(30):
        x = torch.randn(64, 8) * 3
        y = x.sum(dim=1, keepdim=True)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        mon.observe_loss(loss)
```

## Use instead
```python
import torch
from torch import nn
import nnlint

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.002)
with nnlint.monitor(model, optimizer, check_every=10) as mon:
    for _ in range(30):
        x = torch.randn(64, 8) * 3
        y = x.sum(dim=1, keepdim=True)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        mon.observe_loss(loss)
```

## Options
- `factor` (default 3.0): report when the recent median exceeds the running minimum by
  `factor` times the larger of the progress so far (first loss - minimum) and |minimum|.
- `smooth` (default 5): the recent median runs over this many observed steps.
- `cooldown` (default 20): steps after a report before judging again.
- `lr-factor` (default 0.5): in fix mode, each back-off multiplies every param group's
  learning rate by this.
- `max-backoffs` (default 8): back-offs before fix mode gives up and stops the run with
  `nnlint.TrainingError` ("lower the learning rate to ~X").

## Fix safety
In fix mode the monitor keeps a snapshot of the last good state: the weights, the
floating-point buffers (BatchNorm statistics) and the optimizer's state, on their own
device, refreshed (a device-to-device copy into storage allocated once, no host sync) at
each check whose steps had no error finding, no non-finite value, no clipped or skipped
step. Its memory is one copy of all of those: with Adam three times the parameters'
memory (SGD with momentum: twice), and only in fix mode. When the loss diverges the
snapshot is restored and the learning rate multiplied by `lr-factor`, and the next check
comes after 10 steps to judge the new rate; the run goes on from where it was still
healthy (a diverged run usually has dead units and huge weights that a lower rate alone
cannot repair). After `max-backoffs` back-offs it stops with `nnlint.TrainingError`. A
learning-rate scheduler that sets the rate from scratch every step undoes the back-off;
one that multiplies (StepLR, ExponentialLR) keeps it.

## Source
`000_15ef46e869a43bad.txt` (a high learning rate makes training diverge),
`001_05b9fd847e40edfb.txt` (lower the learning rate when the loss misbehaves),
`004_81a3f3f84632e452.txt` (the learning rate and optimizer decide whether training
converges).
'''
from __future__ import annotations

import math
from typing import Any

from nnlint.runtime.detector import Detector, DetectorContext, Window, median


class LossDivergence(Detector):
    code = "NR401"
    name = "loss-divergence"
    severity = "error"
    default = True
    fixable = True
    remedies = ("rollback", "halve-lr", "stop-training")
    options = {"factor": 3.0, "smooth": 5, "cooldown": 20, "lr-factor": 0.5, "max-backoffs": 8}
    option_ranges = {"factor": {"above": 0}, "smooth": {"minimum": 1}, "cooldown": {"minimum": 0},
                     "lr-factor": {"above": 0, "below": 1}, "max-backoffs": {"minimum": 0}}

    def initial_state(self) -> dict[str, Any]:
        return {"first": None, "minimum": None, "recent": [], "quiet_until": -1, "backoffs": 0, "stopped": False}

    def inspect(self, window: Window, ctx: DetectorContext) -> None:
        state = self.state
        smooth = int(self.option["smooth"])
        for stats in window.steps:
            loss = stats.loss
            if loss is None or not math.isfinite(loss):
                continue
            if state["first"] is None:
                # The very first loss is the reference: a run that diverges from its first
                # steps never has a low median to compare with.
                state["first"] = state["minimum"] = loss
            state["recent"].append(loss)
            del state["recent"][:-smooth]
            if len(state["recent"]) < smooth:
                continue
            level = median(state["recent"])
            if level < state["minimum"]:
                state["minimum"] = level
            if stats.step < state["quiet_until"]:
                continue
            minimum, first = state["minimum"], state["first"]
            scale = max(first - minimum, abs(minimum), 1e-12)
            if level <= minimum + self.option["factor"] * scale:
                continue
            self._diverged(stats.step, level, minimum, first, ctx)
            if state["stopped"]:
                return
            if state["rolled_back"]:
                # The weights are back where the loss was low: start judging afresh.
                state["first"] = state["minimum"] = None
                state["recent"] = []
                return

    def _diverged(self, step: int, level: float, minimum: float, first: float, ctx: DetectorContext) -> None:
        state = self.state
        state["rolled_back"] = False
        rates = ctx.learning_rates()
        lr = f"{min(rates):.3g}" if rates else "?"
        suggestion = f"{min(rates) * 0.1:.2g}" if rates else "a tenth of it"
        message = (f"loss diverges at step {step}: recent median {level:.4g} vs running minimum {minimum:.4g} "
                   f"(first {first:.4g}). Likely cause: the learning rate ({lr}) is too high. Fix: lower the "
                   f"learning rate to ~{suggestion}, or add warm-up.")
        state["quiet_until"] = step + int(self.option["cooldown"])
        if not ctx.fix_enabled:
            ctx.report(message, module=None, step=step, loss=level)
            return
        if state["backoffs"] >= int(self.option["max-backoffs"]):
            state["stopped"] = True
            ctx.report(f"loss still diverges at step {step} after {state['backoffs']} learning-rate back-offs "
                       f"(now {lr}): stopping the run. Lower the learning rate to ~{suggestion} (or find why "
                       f"the loss is unstable: its scale, the data) and restart.", module=None, step=step,
                       loss=level)
            ctx.remedy("stop-training", module=None, step=step)
            return
        factor = float(self.option["lr-factor"])
        new_lr = f"{min(rates) * factor:.3g}" if rates else "?"
        ctx.report(f"{message} Fix mode restores the weights and optimizer state of the last healthy check and "
                   f"lowers the learning rate to {new_lr}.", module=None, step=step, loss=level)
        if ctx.remedy("rollback", module=None, step=step, lr_factor=factor):
            state["backoffs"] += 1
            state["rolled_back"] = True
            state["quiet_until"] = -1  # judged afresh from the restored state: no cooldown
        elif ctx.remedy("halve-lr", module=None, step=step):
            state["recent"] = []
