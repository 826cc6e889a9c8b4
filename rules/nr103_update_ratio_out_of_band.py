'''
## What it does
Reports a weight layer whose update / weight norm ratio per step stays outside a sane
band. Far above it means the learning rate is too high for that layer,
far below it (while the loss is still high) means it is too low.

## Why is this bad?
The size of an update relative to the weight it changes is the learning rate that
matters. Around 1e-3 per step is typical of healthy training. Updates of 10% or more of
the weight every step throw away what was learnt and make training diverge; updates
a million times smaller than the weight change nothing, and the run plateaus.

## Example
```python
import torch
from torch import nn
import nnlint

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=1.0)  # far too high for Adam
with nnlint.monitor(model, optimizer, check_every=10, sample_every=2) as mon:
    for _ in range(30):
        x, y = torch.randn(64, 16), torch.randn(64, 1)
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
model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # Adam's usual rate
with nnlint.monitor(model, optimizer, check_every=10, sample_every=2) as mon:
    for _ in range(30):
        x, y = torch.randn(64, 16), torch.randn(64, 1)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        mon.observe_loss(loss)
```

## Options
- `max-ratio` (default 0.1): median update/weight ratio above this is too high (one
  finding until it falls below half of it again). Measured on the fault suite: healthy
  runs (Adam/AdamW 1e-3, SGD 0.05 with momentum) stay below 0.033.
- `min-ratio` (default 1e-6): when *every* weight layer's median ratio is below this,
  while the (median) loss has not fallen below `converged-fraction` of its first value,
  the rate is too low (needs `observe_loss`: a converged model legitimately takes tiny
  steps). A few starved early layers alone are vanishing gradients (NR102), and layers
  that do not move at all are dead (NR201) or frozen: neither is reported here.
- `converged-fraction` (default 0.5).
- `samples` (default 5): how many sampled steps (every `sample_every` steps) the median
  runs over before reporting.

## Source
`000_15ef46e869a43bad.txt` (a high learning rate makes training diverge, a low one is
slow; choose the rate from the learning curve), `001_05b9fd847e40edfb.txt` (lower or
raise the learning rate when debugging), `002_1779c8f13c5dbb22.txt` (Adam lr 0.001).
'''
from __future__ import annotations

import math
from typing import Any

from nnlint.runtime.detector import Detector, DetectorContext, Window, median


class UpdateRatioOutOfBand(Detector):
    code = "NR103"
    name = "update-ratio-out-of-band"
    severity = "warning"
    default = True
    fixable = False
    options = {"max-ratio": 0.1, "min-ratio": 1e-6, "converged-fraction": 0.5, "samples": 5}
    option_ranges = {"max-ratio": {"above": 0}, "min-ratio": {"minimum": 0}, "converged-fraction": {"minimum": 0, "maximum": 1},
                     "samples": {"minimum": 1}}

    def initial_state(self) -> dict[str, Any]:
        return {"ratios": {}, "first_losses": [], "recent_losses": [], "reported": {}}

    def inspect(self, window: Window, ctx: DetectorContext) -> None:
        state = self.state
        samples = int(self.option["samples"])
        weight_layers = {layer.name for layer in window.matmul_layers()}
        for stats in window.steps:
            self._observe_loss(stats.loss)
            if not stats.update_norm or stats.skipped:
                continue
            for layer, update in stats.update_norm.items():
                weight = stats.weight_norm.get(layer)
                if layer not in weight_layers or weight is None or not weight > 0 or not math.isfinite(update):
                    continue
                if update == 0.0:
                    continue  # no update at all: frozen by dead units (NR201) or lr 0, not a rate
                ratios = state["ratios"].setdefault(layer, [])
                ratios.append(update / weight)
                del ratios[:-samples]
            levels = {layer: median(r) for layer, r in state["ratios"].items() if len(r) >= samples}
            if levels:
                self._judge(levels, stats.step, ctx)

    def _judge(self, levels: dict[str, float], step: int, ctx: DetectorContext) -> None:
        reported = self.state["reported"]
        # Too low is a learning-rate verdict only when every layer is starved: when the
        # last layers move normally and the early ones do not, the gradient does not reach
        # them (vanishing gradients, NR102), whatever the learning rate.
        all_low = all(level < self.option["min-ratio"] for level in levels.values()) and self._loss_still_high()
        for layer, level in levels.items():
            verdict = None
            if level > self.option["max-ratio"] or (reported.get(layer) == "high" and level > 0.5 * self.option["max-ratio"]):
                verdict = "high"  # hysteresis: a ratio hovering at the limit is one finding
            elif all_low:
                verdict = "low"
            previous = reported.get(layer)
            if verdict is None:
                reported.pop(layer, None)
                continue
            if verdict == previous:
                continue
            reported[layer] = verdict
            if verdict == "high":
                message = (f"updates too large at step {step}: each step changes {layer!r} by {level:.2g} of its "
                           f"weight norm (sane: ~1e-3, limit {self.option['max-ratio']:g}). Likely cause: the "
                           f"learning rate is too high. Fix: lower it about {level / 1e-3:.2g}x, or add warm-up.")
            else:
                message = (f"updates too small at step {step}: each step changes {layer!r} by only {level:.2g} "
                           f"of its weight norm (every layer is below {self.option['min-ratio']:g}) while the loss "
                           f"is still high. Likely cause: the learning rate is too low. Fix: raise it about "
                           f"{1e-3 / max(level, 1e-12):.2g}x.")
            ctx.report(message, module=layer, step=step, ratio=level)

    def _observe_loss(self, loss: Any) -> None:
        if loss is None or not math.isfinite(loss):
            return
        first, recent = self.state["first_losses"], self.state["recent_losses"]
        if len(first) < 5:
            first.append(loss)
        recent.append(loss)
        del recent[:-20]

    def _loss_still_high(self) -> bool:
        # Medians, not single losses: one lucky batch must not flip the verdict.
        first, recent = self.state["first_losses"], self.state["recent_losses"]
        if not first or not recent or median(first) <= 0:
            return False
        return median(recent) > self.option["converged-fraction"] * median(first)
