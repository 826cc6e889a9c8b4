'''
## What it does
Reports vanishing gradients: the first weight layer's gradient norm orders of magnitude
below the last weight layer's, and tiny relative to its own weights, persisting over
many steps.

## Why is this bad?
When the gradient shrinks on its way back through the network, the early layers stop
learning: their weights hardly change while the last layers fit whatever features the
frozen early layers happen to produce. Saturating activations (sigmoid's derivative is
at most 0.25) with plain N(0, 1) or too-small weights are the classic cause; ReLU-family
activations, Xavier/He initialisation and batch normalisation are the cures.

## Example
```python
import torch
from torch import nn
import nnlint

torch.manual_seed(0)
layers = []
for _ in range(10):
    layers += [nn.Linear(32, 32), nn.Sigmoid()]  # ten sigmoids: the gradient shrinks ~4x per layer
model = nn.Sequential(*layers, nn.Linear(32, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
with nnlint.monitor(model, optimizer, check_every=20) as mon:
    for _ in range(40):
        x, y = torch.randn(64, 32), torch.randn(64, 1)
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
for _ in range(10):
    layers += [nn.Linear(32, 32), nn.ReLU()]  # ReLU keeps the gradient's scale
model = nn.Sequential(*layers, nn.Linear(32, 1))
for module in model:
    if isinstance(module, nn.Linear):
        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
with nnlint.monitor(model, optimizer, check_every=20) as mon:
    for _ in range(40):
        x, y = torch.randn(64, 32), torch.randn(64, 1)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
```

## Options
- `max-ratio` (default 1e-3): first / last weight-layer gradient norm below this is
  vanishing (AUTOTRAINER's threshold, here on every step instead of one batch). On the
  fault suite the healthy controls never go below 0.15 and the ten-sigmoid stack sits at
  ~1e-8.
- `max-relative-grad` (default 1e-3): and the first layer's gradient norm must be below
  this fraction of its weight norm (a converged model's gradients are small everywhere).
- `patience` (default 20): steps, most of them (80%) meeting both conditions, before
  reporting.

## Source
`002_1779c8f13c5dbb22.txt` (the error shrinks as it flows back, so shallow layers barely
change: vanishing gradients; sigmoid's derivative O(1-O) is ~0 at the extremes),
`003_1540c0685162747f.txt` (sigmoid's derivative is at most 0.25, products over layers
vanish; use ReLU, BN, good initialisation), `000_15ef46e869a43bad.txt`.
'''
from __future__ import annotations

import math
from typing import Any

from nnlint.runtime.detector import Detector, DetectorContext, Window


class VanishingGradients(Detector):
    code = "NR102"
    name = "vanishing-gradients"
    severity = "warning"
    default = True
    fixable = False
    options = {"max-ratio": 1e-3, "max-relative-grad": 1e-3, "patience": 20}
    option_ranges = {"max-ratio": {"above": 0}, "max-relative-grad": {"above": 0}, "patience": {"minimum": 1}}

    def initial_state(self) -> dict[str, Any]:
        return {"recent": [], "active": False, "weights": {}}

    def inspect(self, window: Window, ctx: DetectorContext) -> None:
        layers = window.matmul_layers()
        if len(layers) < 2:
            return
        first, last = layers[0].name, layers[-1].name
        patience = int(self.option["patience"])
        state = self.state
        for stats in window.steps:
            state["weights"].update({k: v for k, v in stats.weight_norm.items() if math.isfinite(v)})
            g_first, g_last = stats.grad_norm.get(first), stats.grad_norm.get(last)
            weight = state["weights"].get(first)
            if g_first is None or g_last is None or weight is None or weight <= 0:
                continue
            if not (math.isfinite(g_first) and math.isfinite(g_last)) or g_last <= 0 or g_first <= 0:
                continue  # an exactly zero gradient is dead units (NR201), not vanishing
            ratio = g_first / g_last
            relative = g_first / weight
            bad = ratio < self.option["max-ratio"] and relative < self.option["max-relative-grad"]
            state["recent"].append(bool(bad))
            del state["recent"][:-patience]
            persistent = len(state["recent"]) >= patience and sum(state["recent"]) >= 0.8 * patience
            if not persistent:
                if not any(state["recent"][-max(1, patience // 4):]):
                    state["active"] = False
                continue
            if state["active"]:
                continue
            state["active"] = True
            ctx.report(
                f"vanishing gradients at step {stats.step}: the gradient of the first layer {first!r} is "
                f"{ratio:.2g}x that of the last layer {last!r} and {relative:.2g}x its own weight norm, so "
                f"early layers barely learn. Likely cause: saturating activations (sigmoid/tanh) stacked deep, "
                f"or an initialisation that shrinks the signal. Fix: ReLU-family activations with He init, "
                f"normalisation layers, residual connections.",
                module=first,
                step=stats.step,
                ratio=ratio,
            )
