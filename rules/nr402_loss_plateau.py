'''
## What it does
Reports a loss that makes no progress. Over two consecutive windows of `window`
observed steps, the median loss improves by less than `min-improvement` (relative),
while it is still above `converged-fraction` of its first value. Needs
`mon.observe_loss(loss)`.

## Why is this bad?
A long plateau that is not convergence means the run is wasting compute: the learning
rate is too low, the units are dead or saturated, or the model sits at a saddle point.
Momentum/Adam, a higher learning rate or a schedule get it moving again. A loss that
has converged close to zero is not a plateau and is not reported.

## Example
```python
import torch
from torch import nn
import nnlint

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=1e-7)  # far too low: nothing moves
with nnlint.monitor(model, optimizer, check_every=20, options={"NR402": {"window": 20}}) as mon:
    for _ in range(60):
        x = torch.randn(64, 8)
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
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
with nnlint.monitor(model, optimizer, check_every=20, options={"NR402": {"window": 20}}) as mon:
    for _ in range(60):
        x = torch.randn(64, 8)
        y = x.sum(dim=1, keepdim=True)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        mon.observe_loss(loss)
```

## Options
- `window` (default 200): observed steps per window; the medians of two consecutive
  windows are compared.
- `min-improvement` (default 0.01): relative improvement below this is no progress.
- `converged-fraction` (default 0.05): a loss below this fraction of its first value
  has converged and is not judged.

## Source
`004_81a3f3f84632e452.txt` (plateaus and saddle points stall gradient descent;
momentum and adaptive optimizers escape them), `000_15ef46e869a43bad.txt` (a low
learning rate trains slowly; pick it from the learning curve), `001_05b9fd847e40edfb.txt`
(raise the learning rate to see quickly whether the network learns).
'''
from __future__ import annotations

import math
from typing import Any

from nnlint.runtime.detector import Detector, DetectorContext, Window, median


class LossPlateau(Detector):
    code = "NR402"
    name = "loss-plateau"
    severity = "info"
    default = True
    fixable = False
    options = {"window": 200, "min-improvement": 0.01, "converged-fraction": 0.05}
    option_ranges = {"window": {"minimum": 1}, "min-improvement": {"minimum": 0}, "converged-fraction": {"minimum": 0, "maximum": 1}}

    def initial_state(self) -> dict[str, Any]:
        return {"losses": [], "first": None, "quiet_until": -1}

    def inspect(self, window: Window, ctx: DetectorContext) -> None:
        state = self.state
        size = int(self.option["window"])
        for stats in window.steps:
            loss = stats.loss
            if loss is None or not math.isfinite(loss):
                continue
            if state["first"] is None:
                state["first"] = loss
            state["losses"].append(loss)
            del state["losses"][: -2 * size]
            if len(state["losses"]) < 2 * size or stats.step < state["quiet_until"]:
                continue
            before = median(state["losses"][:size])
            now = median(state["losses"][size:])
            first = state["first"]
            if first > 0 and now < self.option["converged-fraction"] * first:
                continue
            improvement = (before - now) / max(abs(before), 1e-12)
            if improvement >= self.option["min-improvement"]:
                continue
            state["quiet_until"] = stats.step + size  # one report per window of no progress
            ctx.report(
                f"loss plateau at step {stats.step}: median {now:.4g} over the last {size} steps vs "
                f"{before:.4g} before ({improvement:+.2%}). Likely cause: a learning rate too low, dead or "
                f"saturated units (see NR201/NR202), or a saddle point. Fix: raise the learning rate or use a "
                f"schedule, check the activation findings, try Adam.",
                module=None,
                step=stats.step,
                loss=now,
            )
