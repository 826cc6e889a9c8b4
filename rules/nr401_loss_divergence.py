'''
## What it does
Reports a diverging loss. Its recent median climbs far above its running minimum
(by `factor` times the progress made so far, or the minimum's own size), the signature
of a learning rate that is too high. Needs `mon.observe_loss(loss)`.

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
- `cooldown` (default 20): steps after a report (and a halving) before judging again; in
  fix mode the learning rate is halved again at each report while the loss still diverges.

## Fix safety
In fix mode every param group's learning rate is halved (a tensor learning rate is
halved in place). A learning-rate scheduler that sets the rate from scratch every step
undoes it; one that multiplies (StepLR, ExponentialLR) keeps it.

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
    options = {"factor": 3.0, "smooth": 5, "cooldown": 20}

    def initial_state(self) -> dict[str, Any]:
        return {"first": None, "minimum": None, "recent": [], "quiet_until": -1}

    def check(self, window: Window, ctx: DetectorContext) -> None:
        state = self.state
        smooth = int(self.opt["smooth"])
        for stats in window.steps:
            loss = stats.loss
            if loss is None or not math.isfinite(loss):
                continue
            state["recent"].append(loss)
            del state["recent"][:-smooth]
            if len(state["recent"]) < smooth:
                continue
            level = median(state["recent"])
            if state["first"] is None:
                state["first"] = level
            if state["minimum"] is None or level < state["minimum"]:
                state["minimum"] = level
            if stats.step < state["quiet_until"]:
                continue
            minimum, first = state["minimum"], state["first"]
            scale = max(first - minimum, abs(minimum), 1e-12)
            if level <= minimum + self.opt["factor"] * scale:
                continue
            ctx.report(
                f"loss diverges: recent median {level:.4g} vs running minimum {minimum:.4g} "
                f"(first {first:.4g}): learning rate too high?",
                module=None,
                step=stats.step,
                loss=level,
            )
            state["quiet_until"] = stats.step + int(self.opt["cooldown"])
            if ctx.remedy("halve-lr", module=None, step=stats.step):
                state["recent"] = []
