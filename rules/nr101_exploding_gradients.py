'''
## What it does
Reports exploding gradients. The total gradient norm is far above its own running level
for several steps in a row, or grows without bound, or the first layer's gradient norm
is far above the last layer's (the gradient grows as it flows back through the network).

## Why is this bad?
Exploding gradients make each update overshoot; the weights diverge and, in the end,
overflow to NaN. The usual causes are a bad initialisation (weights drawn from N(0, 1)),
a learning rate that is too high, or a deep stack without normalisation. Batch
normalisation and clipping can hide the cause, so the finding names the layers.

## Example
```python
import torch
from torch import nn
import nnlint

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)  # too high: each update overshoots
with nnlint.monitor(model, optimizer, check_every=10) as mon:
    for _ in range(20):
        x = torch.randn(64, 8) * 3
        y = x.sum(dim=1, keepdim=True)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
```

## Use instead
```python
import torch
from torch import nn
import nnlint

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.005)
with nnlint.monitor(model, optimizer, check_every=10) as mon:
    for _ in range(20):
        x = torch.randn(64, 8) * 3
        y = x.sum(dim=1, keepdim=True)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        nn.utils.clip_grad_norm_(model.parameters(), max_norm=100.0)
```

## Options
- `spike-factor` (default 10.0): a step's total gradient norm above this many times the
  median of the previous `history` steps is a spike; a norm that more than doubles
  `patience` steps in a row and ends `spike-factor` times above the running level it
  started from grows without bound.
- `history` (default 50) and `min-history` (default 10): the running level's window, and
  how many steps it needs before spikes are judged.
- `patience` (default 3): consecutive spiking steps (or steps over the layer ratio)
  before reporting.
- `max-layer-ratio` (default 1000.0): first / last weight-layer gradient norm above this
  is an explosion through depth (AUTOTRAINER uses 70 on one batch; the fault suite's
  healthy controls stay below 6 on every step, p95 below 3: the default leaves room for
  deeper healthy networks).
- `clip-factor` (default 5.0) and `warmup-steps` (default 5): in fix mode, gradients are
  clipped by norm to `clip-factor` times the run's running (geometric mean) norm, after
  `warmup-steps` steps.
- `early-steps` (default 50): an explosion reported this early is blamed on the
  initialisation and, in fix mode, the weight layers are re-initialised (Kaiming/He).

## Fix safety
Clipping runs on the device every step in fix mode (no host sync); it changes training
only on steps whose norm exceeds `clip-factor` times the running level, and every
clipped step is recorded in `mon.fixes`. Re-initialising layers discards what they
learnt, so it is only done within `early-steps` of the start, and resets the
optimizer's state for those parameters.

## Source
`000_15ef46e869a43bad.txt` and `002_1779c8f13c5dbb22.txt` (exploding gradients; fixes:
He initialisation, batch normalisation, gradient clipping), `003_1540c0685162747f.txt`
(weights with |w| large multiply the gradient layer after layer; clip gradients),
`001_05b9fd847e40edfb.txt` (batch norm and clipping hid a bad initialisation: report
the cause).
'''
from __future__ import annotations

import math
from typing import Any

from nnlint.runtime.detector import Detector, DetectorContext, Window, median


def off_init_layers(window: Window, factor: float = 2.0) -> list[str]:
    """Weight layers whose weight std is more than ``factor`` away from He's sqrt(2/fan_in)."""
    latest: dict[str, float] = {}
    for stats in window.steps:
        latest.update(stats.weight_norm)
    names = []
    for layer in window.matmul_layers():
        norm = latest.get(layer.name)
        if norm is None or not math.isfinite(norm):
            names.append(layer.name) if norm is not None else None
            continue
        numel = math.prod(layer.weight_shape)
        fan_in = numel // layer.weight_shape[0]
        std = norm / math.sqrt(numel)  # includes the bias, a small error for a big layer
        he = math.sqrt(2.0 / max(fan_in, 1))
        if std > factor * he or std < he / factor:
            names.append(layer.name)
    return names


class ExplodingGradients(Detector):
    code = "NR101"
    name = "exploding-gradients"
    severity = "error"
    default = True
    fixable = True
    remedies = ("reinit-layers", "clip-grad-norm")
    options = {
        "spike-factor": 10.0,
        "history": 50,
        "min-history": 10,
        "patience": 3,
        "max-layer-ratio": 1000.0,
        "clip-factor": 5.0,
        "warmup-steps": 5,
        "early-steps": 50,
    }
    option_ranges = {"spike-factor": {"above": 1}, "history": {"minimum": 1}, "min-history": {"minimum": 1},
                     "patience": {"minimum": 1}, "max-layer-ratio": {"above": 1}, "clip-factor": {"above": 0},
                     "warmup-steps": {"minimum": 0}, "early-steps": {"minimum": 0}}

    def collector_settings(self, fixing: bool) -> dict[str, Any]:
        # clipping runs on the device, every step, in the optimizer's pre-step hook
        return {"fix_clip": fixing, "clip_factor": float(self.option["clip-factor"]),
                "clip_warmup": int(self.option["warmup-steps"])}

    def initial_state(self) -> dict[str, Any]:
        return {"norms": [], "spikes": 0, "ratio_steps": 0, "active": False, "reinit_done": False,
                "growth": 0, "growth_base": None, "previous": None}

    def inspect(self, window: Window, ctx: DetectorContext) -> None:
        layers = window.matmul_layers()
        first = layers[0].name if len(layers) >= 2 else None
        last = layers[-1].name if len(layers) >= 2 else None
        state = self.state
        for stats in window.steps:
            total = stats.total_grad_norm
            if stats.clipped and not state.get("explained"):
                # Fix mode clipped a spike too short to be an explosion: say so once, so
                # that every clip in mon.fixes has a finding behind it.
                state["explained"] = True
                ctx.report(
                    f"gradient spike at step {stats.step}: total norm {total:.3g} is over {self.option['clip-factor']:g}x "
                    f"the run's running level, and fix mode clipped it (every clipped step is in mon.fixes). "
                    f"Likely cause: an outlier batch (a wrong label or scale) or a learning rate near its limit. "
                    f"Fix: inspect the batches at the clipped steps; keep torch.nn.utils.clip_grad_norm_ in the "
                    f"loop if they are legitimate.",
                    module=max(stats.grad_norm, key=lambda k: stats.grad_norm[k]) if stats.grad_norm else None,
                    step=stats.step,
                    severity="warning",
                )
            if total is None or not math.isfinite(total):
                continue  # NR301 reports non-finite gradients
            history = state["norms"]
            spike = False
            level = median(history) if len(history) >= self.option["min-history"] else math.nan
            if math.isfinite(level) and level > 0 and total > self.option["spike-factor"] * level:
                spike = True
            previous = state["previous"]
            if previous is not None and previous > 0 and total > 2.0 * previous:
                if state["growth"] == 0:
                    # Growth is measured from the running level, not from one small norm: a
                    # noise-dominated gradient (a converged or plateaued run) can double
                    # three times in a row from a lucky small value without exploding.
                    state["growth_base"] = max(previous, median(history)) if history else previous
                state["growth"] += 1
            else:
                state["growth"] = 0
            state["previous"] = total
            growing = (state["growth"] >= int(self.option["patience"])
                       and total > self.option["spike-factor"] * state["growth_base"])
            if growing:
                spike = True
                level = state["growth_base"]
            state["spikes"] = state["spikes"] + 1 if spike else 0
            ratio = math.nan
            if first is not None and last is not None:
                g_first, g_last = stats.grad_norm.get(first), stats.grad_norm.get(last)
                if g_first is not None and g_last is not None and g_last > 0:
                    ratio = g_first / g_last
            over = math.isfinite(ratio) and ratio > self.option["max-layer-ratio"]
            state["ratio_steps"] = state["ratio_steps"] + 1 if over else 0
            # A spike does not move the running level much: it is a median.
            history.append(total)
            del history[: -int(self.option["history"])]
            patience = int(self.option["patience"])
            triggered = state["spikes"] >= patience or state["ratio_steps"] >= patience or growing
            if not triggered:
                if state["spikes"] == 0 and state["ratio_steps"] == 0:
                    state["active"] = False
                continue
            if state["active"]:
                continue
            state["active"] = True
            state["explained"] = True
            if state["ratio_steps"] >= patience:
                module = first
                message = (f"exploding gradients at step {stats.step}: the gradient norm of the first layer "
                           f"{first!r} is {ratio:.3g}x that of the last layer {last!r}, it grows as it flows "
                           f"back. Likely cause: weights too large for the depth (N(0, 1) init) or no "
                           f"normalisation. Fix: He/Xavier initialisation, normalisation layers (BatchNorm/"
                           f"LayerNorm), residual connections; clip_grad_norm_ meanwhile.")
            else:
                module = max(stats.grad_norm, key=lambda k: stats.grad_norm[k])
                steps = state["growth"] if growing else state["spikes"]
                how = "doubling every step" if growing else "above it"
                early = stats.step < self.option["early-steps"]
                cause = ("a bad initialisation (weights too large) or a learning rate too high" if early
                         else "a learning rate too high, or outlier batches")
                message = (f"exploding gradients at step {stats.step}: total norm {total:.3g} is "
                           f"{total / level:.3g}x its earlier level {level:.3g} after {steps} step(s) {how} "
                           f"(largest in {module!r}). Likely cause: {cause}. Fix: lower the learning rate "
                           f"(or add warm-up), use He/Xavier initialisation, and clip with "
                           f"torch.nn.utils.clip_grad_norm_.")
            ctx.report(message, module=module, step=stats.step, grad_norm=total)
            if stats.step < self.option["early-steps"] and not state["reinit_done"]:
                names = off_init_layers(window)
                if names and ctx.remedy("reinit-layers", module=module, step=stats.step, layers=tuple(names)):
                    state["reinit_done"] = True
