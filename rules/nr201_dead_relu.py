'''
## What it does
Reports ReLU units that were never active (output > 0) on any sample of any batch
across a whole window of training steps, and at once a layer whose units are all
silent. A unit of a convolutional layer is a channel.
One ReLU module called at several places (torchvision's ResNet reuses `self.relu`) is
several sites, each judged on its own. `nn.GELU`/`nn.SiLU` units (never positive: almost
no gradient) count too, and so do functional activations (`F.relu`, `torch.relu`,
`x.relu()`, `F.gelu`, `F.silu`) whose output a module takes as its input: that site is
named after the module it feeds (`relu->fc2`). LeakyReLU, PReLU and ELU cannot die.

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
- `max-dead-fraction` (default 0.5): report a site when more than this fraction of its
  units is dead (AUTOTRAINER uses 70% zero gradients on one batch).
- `min-units` (default 4): sites with fewer units are not judged.
- `swap-to-leaky` (default false): in fix mode, replace the `nn.ReLU` module with
  `nn.LeakyReLU(0.01)` instead of re-initialising the dead units.
- `full-dead-steps` (default 10): a site whose units are *all* silent is reported at the
  first check after this many steps, without waiting for its window to close: a fully
  dead layer passes no gradient to anything below it. With the default `check_every`
  the monitor's first check comes after 10 steps, so such a layer is reported (and, in fix
  mode, re-initialised) by step ~10.

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
    remedies = ("reinit-units", "swap-leaky-relu")
    options = {"window": 100, "max-dead-fraction": 0.5, "min-units": 4, "swap-to-leaky": False,
               "full-dead-steps": 10}
    option_ranges = {"window": {"minimum": 1}, "max-dead-fraction": {"minimum": 0, "maximum": 1}, "min-units": {"minimum": 1},
                     "full-dead-steps": {"minimum": 1}}

    def collector_settings(self, fixing: bool) -> dict[str, Any]:
        return {"relu_window": int(self.option["window"])}

    def initial_state(self) -> dict[str, Any]:
        return {"reported": [], "poisoned": False}

    def inspect(self, window: Window, ctx: DetectorContext) -> None:
        # A NaN compares false with 0: once activations are non-finite every unit looks
        # dead. That window is NR301's, not a dying-ReLU finding. Module norms may be taken
        # on few of its steps (the overhead budget spreads them further than the activity
        # masks): a non-finite loss or gradient, read far more often, tells it too.
        if any(not math.isfinite(v) for stats in window.steps for v in stats.act_rms.values()) or any(
                (stats.loss is not None and not math.isfinite(stats.loss)) or stats.nonfinite_grads
                for stats in window.steps):
            self.state["poisoned"] = True
        if not window.dead_units:
            return
        closed = any(d.closed for d in window.dead_units)
        if self.state["poisoned"]:
            if closed:
                self.state["poisoned"] = False
            return
        step = window.steps[-1].step if window.steps else 0
        sites = {site.name: site for site in window.sites}
        for dead in window.dead_units:
            if dead.total < self.option["min-units"]:
                continue
            fraction = dead.dead / dead.total
            if dead.steps < int(self.option["full-dead-steps"]):
                continue  # too few looks at this site to call any unit dead
            if not dead.closed:
                # A window still open: only a layer with every unit silent for
                # full_dead_steps is judged now: it blocks every gradient below it.
                if dead.dead < dead.total:
                    continue
            elif fraction <= self.option["max-dead-fraction"]:
                if dead.site in self.state["reported"]:
                    self.state["reported"].remove(dead.site)
                continue
            if dead.site in self.state["reported"]:
                continue
            self.state["reported"].append(dead.site)
            site = sites.get(dead.site)
            module = site.module if site is not None else dead.site
            kind = site.kind if site is not None else "relu"
            feeder = getattr(site, "feeder", None) if site is not None else None
            source = f"the layer feeding it ({feeder!r})" if feeder else "the layer feeding it"
            if "->" in dead.site:  # a functional activation, named after the module it feeds
                label = f"the functional {kind} feeding {dead.site.partition('->')[2]!r}"
            else:
                label = f"{kind} {dead.site!r}"
            if dead.dead == dead.total:
                what = (f"every unit ({dead.total}) of {label} was silent in all {dead.steps} steps looked at "
                        f"so far: the layer is dead and no gradient reaches the layers below it")
            else:
                what = (f"{dead.dead} of {dead.total} units ({fraction:.0%}) of {label} were never "
                        f"active in the {dead.steps} steps looked at in the last window (dead units)")
            ctx.report(
                f"{what}, found at step {step}. Likely cause: a strongly negative bias or pre-activation in "
                f"{source}, or a learning rate so high that an update pushed the units negative for every "
                f"input. Fix: He initialisation with zero biases, a lower learning rate, or LeakyReLU/ELU "
                f"(their units cannot die); fix mode re-initialises the dead units.",
                module=module,
                step=step,
                dead=dead.dead,
                units=dead.total,
            )
            if self.option["swap-to-leaky"]:
                ctx.remedy("swap-leaky-relu", module=module, step=step)
            else:
                ctx.remedy("reinit-units", module=module, step=step, layer=feeder, units=dead.indices)
