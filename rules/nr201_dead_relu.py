'''
## What it does
Reports ReLU units that were never active (output > 0) on any sample of any batch
across a whole window of training steps. A unit of a convolutional layer is a channel.
One ReLU module called at several places (torchvision's ResNet reuses `self.relu`) is
several sites, each judged on its own.

## Why is this bad?
A ReLU whose input is negative for every sample outputs zero and passes back a zero
gradient, so the weights feeding it never change again: the unit is dead for good, and
the layer has lost that capacity. A large learning rate or a strongly negative bias
kills units. Judging one batch is not enough: a healthy He-initialised layer has ~30%
of its units silent on any single batch, so the monitor tracks activity over many
batches.

## Example
```python
import torch
from torch import nn
import nnlint

torch.manual_seed(0)
hidden = nn.Linear(16, 64)
nn.init.constant_(hidden.bias, -10.0)  # every pre-activation is negative
model = nn.Sequential(hidden, nn.ReLU(), nn.Linear(64, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
with nnlint.monitor(model, optimizer, check_every=10, options={"NR201": {"window": 20}}) as mon:
    for _ in range(20):
        x, y = torch.randn(32, 16), torch.randn(32, 1)
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
hidden = nn.Linear(16, 64)
nn.init.kaiming_normal_(hidden.weight, nonlinearity="relu")
nn.init.zeros_(hidden.bias)
model = nn.Sequential(hidden, nn.ReLU(), nn.Linear(64, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
with nnlint.monitor(model, optimizer, check_every=10, options={"NR201": {"window": 20}}) as mon:
    for _ in range(20):
        x, y = torch.randn(32, 16), torch.randn(32, 1)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
```

## Options
- `window` (default 100): steps over which a unit must stay silent to count as dead.
- `max_dead_fraction` (default 0.5): report a site when more than this fraction of its
  units is dead (AUTOTRAINER uses 70% zero gradients on one batch).
- `min_units` (default 4): sites with fewer units are not judged.
- `swap_to_leaky` (default false): in fix mode, replace the `nn.ReLU` module with
  `nn.LeakyReLU(0.01)` instead of re-initialising the dead units.

## Fix safety
In fix mode the rows (output channels) of the layer feeding the ReLU that belong to the
dead units are re-initialised (He), their biases zeroed and their optimizer state
cleared; live units are untouched. The opt-in LeakyReLU swap changes the model's
architecture (a checkpoint of it will hold a LeakyReLU), so it is off by default.

## Source
`000_15ef46e869a43bad.txt` (dying ReLU: during training some neurons die and output
only zero; leaky ReLUs never die), `002_1779c8f13c5dbb22.txt` (dying ReLUs: a zero
derivative stops the neuron's updates for good; use LeakyReLU or ELU).
'''
from __future__ import annotations

import math
from typing import Any

from nnlint.runtime.detector import Detector, DetectorContext, Window


class DeadRelu(Detector):
    code = "NR201"
    name = "dead-relu"
    severity = "warning"
    default = True
    fixable = True
    options = {"window": 100, "max_dead_fraction": 0.5, "min_units": 4, "swap_to_leaky": False}

    def initial_state(self) -> dict[str, Any]:
        return {"reported": [], "poisoned": False}

    def check(self, window: Window, ctx: DetectorContext) -> None:
        # A NaN compares false with 0: once activations are non-finite every unit looks
        # dead. That window is NR301's, not a dying-ReLU finding.
        if any(not math.isfinite(v) for stats in window.steps for v in stats.act_rms.values()):
            self.state["poisoned"] = True
        if not window.dead_units:
            return
        poisoned, self.state["poisoned"] = self.state["poisoned"], False
        if poisoned:
            return
        step = window.steps[-1].step if window.steps else 0
        sites = {site.name: site for site in window.sites}
        for dead in window.dead_units:
            if dead.total < self.opt["min_units"]:
                continue
            fraction = dead.dead / dead.total
            if fraction <= self.opt["max_dead_fraction"]:
                if dead.site in self.state["reported"]:
                    self.state["reported"].remove(dead.site)
                continue
            if dead.site in self.state["reported"]:
                continue
            self.state["reported"].append(dead.site)
            site = sites.get(dead.site)
            module = site.module if site is not None else dead.site
            ctx.report(
                f"{dead.dead} of {dead.total} units ({fraction:.0%}) of ReLU {dead.site!r} were never "
                f"active in the last {dead.steps} steps (dead ReLUs)",
                module=module,
                step=step,
                dead=dead.dead,
                units=dead.total,
            )
            if self.opt["swap_to_leaky"]:
                ctx.remedy("swap-leaky-relu", module=module, step=step)
            else:
                feeder = getattr(site, "feeder", None) if site is not None else None
                ctx.remedy("reinit-units", module=module, step=step, layer=feeder, units=dead.indices)
