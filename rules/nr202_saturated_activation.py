'''
## What it does
Reports a hidden sigmoid or tanh whose outputs sit at the flat ends of the curve
(sigmoid within 0.01 of 0 or 1, tanh within 0.01 of -1 or 1) for most samples,
persistently. Modules (`nn.Sigmoid`, `nn.Tanh`) and functional calls (`torch.sigmoid`,
`torch.tanh`) whose output a module takes as its input are judged. The model's last
activation (its output) is not judged: a confident classifier saturates it on purpose.

## Why is this bad?
At the saturated ends the derivative is nearly zero (sigmoid's is O(1-O)), so almost no
gradient flows back through the unit and the layers below stop learning. Large
pre-activations, typically from N(0, 1) initialisation of a wide layer, cause it; Xavier
initialisation for sigmoid/tanh (or ReLU with He initialisation) is the cure.

## Example
```python
import torch
from torch import nn
import nnlint

torch.manual_seed(0)
layers = []
for _ in range(3):
    linear = nn.Linear(128, 128)
    nn.init.normal_(linear.weight, std=1.0)  # pre-activations with std ~11
    layers += [linear, nn.Sigmoid()]
model = nn.Sequential(*layers, nn.Linear(128, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
with nnlint.monitor(model, optimizer, check_every=10) as mon:
    for _ in range(20):
        x, y = torch.randn(32, 128), torch.randn(32, 1)
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
for _ in range(3):
    linear = nn.Linear(128, 128)
    nn.init.xavier_normal_(linear.weight)  # Xavier/Glorot for sigmoid
    layers += [linear, nn.Sigmoid()]
model = nn.Sequential(*layers, nn.Linear(128, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
with nnlint.monitor(model, optimizer, check_every=10) as mon:
    for _ in range(20):
        x, y = torch.randn(32, 128), torch.randn(32, 1)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
```

## Options
- `max-saturated-fraction` (default 0.5): report when the mean fraction of saturated
  outputs over the last `patience` steps exceeds this.
- `patience` (default 10): steps the mean runs over.

Not fixed in fix mode: on the fault suite's saturated networks a Xavier re-initialisation
at the first report trained slower than leaving the weights alone (final loss 0.38 vs
0.21 after 1000 steps), so the finding names the change and leaves it to you.

## Source
`000_15ef46e869a43bad.txt` (the logistic function saturates at 0 or 1 where its
derivative is ~0, so no gradient flows back), `002_1779c8f13c5dbb22.txt` (sigmoid with
N(0, 1) initialisation: output variance grows and saturates; use Xavier),
`003_1540c0685162747f.txt` (sigmoid's derivative is at most 0.25).
'''
from __future__ import annotations

from typing import Any

from nnlint.runtime.detector import Detector, DetectorContext, Window


class SaturatedActivation(Detector):
    code = "NR202"
    name = "saturated-activation"
    severity = "warning"
    default = True
    fixable = False
    options = {"max-saturated-fraction": 0.5, "patience": 10}
    option_ranges = {"max-saturated-fraction": {"minimum": 0, "maximum": 1}, "patience": {"minimum": 1}}

    def initial_state(self) -> dict[str, Any]:
        return {"recent": {}, "reported": []}

    def inspect(self, window: Window, ctx: DetectorContext) -> None:
        if not window.sites:
            return
        last_site = max(window.sites, key=lambda s: s.order)
        kinds = {site.name: site for site in window.sites}
        patience = int(self.option["patience"])
        for stats in window.steps:
            for name, fraction in stats.saturated.items():
                site = kinds.get(name)
                if site is None or site is last_site:
                    continue
                recent = self.state["recent"].setdefault(name, [])
                recent.append(fraction)
                del recent[:-patience]
                if len(recent) < patience:
                    continue
                mean = sum(recent) / len(recent)
                if mean <= self.option["max-saturated-fraction"]:
                    if name in self.state["reported"] and mean < 0.5 * self.option["max-saturated-fraction"]:
                        self.state["reported"].remove(name)
                    continue
                if name in self.state["reported"]:
                    continue
                self.state["reported"].append(name)
                label = (f"the functional {site.kind} feeding {name.partition('->')[2]!r}" if "->" in name
                         else f"{site.kind} {name!r}")
                ctx.report(
                    f"saturated {label} at step {stats.step}: {mean:.0%} of its outputs sit at the "
                    f"flat ends of the curve over the last {patience} steps, so their gradient is ~0 and the "
                    f"layers below stop learning. Likely cause: pre-activations too large, typically N(0, 1) "
                    f"weights in a wide layer. Fix: Xavier initialisation (nn.init.xavier_normal_) of the "
                    f"layer feeding it, a normalisation layer (LayerNorm/BatchNorm) before it, or ReLU with "
                    f"He initialisation instead.",
                    module=site.module,
                    step=stats.step,
                    fraction=mean,
                )
