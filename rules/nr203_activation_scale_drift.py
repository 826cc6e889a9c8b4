'''
## What it does
Reports an activation scale that grows or shrinks layer after layer at the start of
training. The root-mean-square of the weight layers' outputs, in forward order,
changes by a steady factor per layer and by orders of magnitude from the first layer to
the last.

## Why is this bad?
A good initialisation keeps the variance of the signal the same from layer to layer
(He for ReLU, Xavier for sigmoid/tanh). When each layer multiplies it by a factor, a
deep network's last layers see enormous or vanishing inputs: the gradients explode or
vanish, sigmoids saturate, and training is slow or diverges. It is a problem of the
initialisation, visible in the first forward pass.

## Example
```python
import torch
from torch import nn
import nnlint

torch.manual_seed(0)
layers = []
for _ in range(8):
    linear = nn.Linear(64, 64)
    nn.init.normal_(linear.weight, std=1.0)  # N(0, 1): the signal grows ~5.7x per layer
    layers += [linear, nn.ReLU()]
model = nn.Sequential(*layers, nn.Linear(64, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
with nnlint.monitor(model, optimizer, check_every=5) as mon:
    for _ in range(5):
        x, y = torch.randn(32, 64), torch.randn(32, 1)
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
layers = []
for _ in range(8):
    linear = nn.Linear(64, 64)
    nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")  # keeps the scale
    layers += [linear, nn.ReLU()]
model = nn.Sequential(*layers, nn.Linear(64, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
with nnlint.monitor(model, optimizer, check_every=5) as mon:
    for _ in range(5):
        x, y = torch.randn(32, 64), torch.randn(32, 1)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
```

## Options
- `steps` (default 5): the check runs once, at the first read-back that saw one of the
  first `steps` steps, on the earliest step's forward pass (the initial weights).
- `max-layer-factor` (default 2.0): a geometric-mean growth per layer above this (or
  shrinkage below its inverse) is drift.
- `max-total-factor` (default 100.0): and the last layer's scale must differ from the
  first's by more than this factor.
- `min-layers` (default 4): fewer weight layers are not judged.

## Fix safety
In fix mode every weight layer whose weight standard deviation is more than 2x away
from He's `sqrt(2 / fan_in)` is re-initialised (Kaiming normal, bias zero) and its
optimizer state cleared. This happens only within the first `steps` steps, before the
layers have learnt anything; a layer deliberately initialised otherwise is
re-initialised too.

## Source
`002_1779c8f13c5dbb22.txt` (sigmoid with N(0, 1) initialisation makes each layer's
output variance much larger than its input's; Xavier keeps them equal, He for ReLU),
`003_1540c0685162747f.txt` (weights below or above 1 shrink or grow the signal
multiplicatively with depth), `001_05b9fd847e40edfb.txt` (variance-scaling
initialisation lets the signal reach deep layers; a bad initialisation caused NaNs).
'''
from __future__ import annotations

import math
from typing import Any

from nnlint.runtime.detector import Detector, DetectorContext, Window


def _off_init_layers(window: Window, factor: float = 2.0) -> list[str]:
    latest: dict[str, float] = {}
    for stats in window.steps:
        latest.update(stats.weight_norm)
    names = []
    for layer in window.matmul_layers():
        norm = latest.get(layer.name)
        if norm is None:
            continue
        numel = math.prod(layer.weight_shape)
        fan_in = max(numel // layer.weight_shape[0], 1)
        std, he = norm / math.sqrt(numel), math.sqrt(2.0 / fan_in)
        if not math.isfinite(std) or std > factor * he or std < he / factor:
            names.append(layer.name)
    return names


class ActivationScaleDrift(Detector):
    code = "NR203"
    name = "activation-scale-drift"
    severity = "warning"
    default = True
    fixable = True
    remedies = ("reinit-layers",)
    options = {"steps": 5, "max-layer-factor": 2.0, "max-total-factor": 100.0, "min-layers": 4}
    option_ranges = {"steps": {"minimum": 1}, "max-layer-factor": {"above": 1}, "max-total-factor": {"above": 1},
                     "min-layers": {"minimum": 2}}

    def collector_settings(self, fixing: bool) -> dict[str, Any]:
        # module outputs on every one of the first steps, whatever the sampling
        return {"activation_warmup": int(self.option["steps"]) + 3}

    def initial_state(self) -> dict[str, Any]:
        return {"rms": {}, "done": False}

    def inspect(self, window: Window, ctx: DetectorContext) -> None:
        if self.state["done"]:
            return
        limit = int(self.option["steps"])
        matmul_modules = {layer.name for layer in window.matmul_layers()}
        sites = [s for s in sorted(window.sites, key=lambda s: s.order)
                 if s.call == 0 and s.module in matmul_modules]
        last_step = None
        for stats in window.steps:
            if stats.step >= limit:
                break
            if last_step is None:
                self.state["first_step"] = stats.step
            last_step = stats.step
            for site in sites:
                value = stats.act_rms.get(site.name)
                if value is not None and math.isfinite(value) and value > 0:
                    self.state["rms"].setdefault(site.name, []).append(value)
        if last_step is None:
            return  # judged at the first check that saw any of the first steps
        self.state["done"] = True
        if len(sites) < self.option["min-layers"]:
            return
        # The last weight layer is the output head (its width is the task's, not a
        # hidden size): judge the hidden layers.
        # The first step's forward pass ran with the initial weights: that is what is judged
        # (later steps may already have diverged because of it).
        scales = [self.state["rms"][s.name][0] for s in sites[:-1] if s.name in self.state["rms"]]
        if len(scales) < self.option["min-layers"] - 1:
            return
        total = scales[-1] / scales[0]
        per_layer = total ** (1.0 / (len(scales) - 1))
        grows = per_layer > self.option["max-layer-factor"] and total > self.option["max-total-factor"]
        shrinks = (per_layer < 1.0 / self.option["max-layer-factor"]
                   and total < 1.0 / self.option["max-total-factor"])
        if not (grows or shrinks):
            return
        step = int(self.state.get("first_step", last_step))  # the forward pass that is judged
        direction = "grows" if grows else "shrinks"
        ctx.report(
            f"activation scale {direction} ~{per_layer:.3g}x per layer over {len(scales)} weight layers "
            f"at step {step} (rms {scales[0]:.3g} at {sites[0].module!r} -> {scales[-1]:.3g}): the "
            f"initialisation does not preserve variance. Fix: He init (kaiming_normal_) for ReLU-family "
            f"layers, Xavier for tanh/sigmoid, or add normalisation layers.",
            module=sites[0].module,
            step=step,
            per_layer=per_layer,
        )
        names = _off_init_layers(window)
        if names:
            ctx.remedy("reinit-layers", module=sites[0].module, step=step, layers=tuple(names))
