'''
## What it does
Reports plain SGD (no momentum, or `momentum=0`) training a deep network.

Covers `torch.optim.SGD`, Keras `SGD` and `compile(optimizer="sgd")` (both default to no
momentum). As for NN311, the network is the model whose `.parameters()` the optimizer gets or
the Keras model compiled with it, and it is deep from `min-depth` weight layers on; an unknown
model (also TF1's `tf.train.GradientDescentOptimizer(...).minimize(loss)`), an unknown
momentum (`momentum=args.m` without a known default, `**kwargs`) or a shallow model keeps the
rule quiet.

This rule is opinionated and off by default: plain SGD does train deep networks, only slowly.

## Why is this bad?
Plain gradient descent takes small steps on plateaus and in shallow directions, and zig-zags
across steep ravines. Momentum keeps an exponentially decaying sum of past gradients (with
β = 0.9, about ten times the gradient on a steady slope), which speeds up the consistent
directions, damps the oscillating ones and helps over flat regions and saddle points.
`momentum=0.9` (optionally `nesterov=True`) is the standard setting and costs nothing.

## Example
```python
import torch
import torch.nn as nn

model = nn.Sequential(
    nn.Conv2d(3, 32, 3), nn.ReLU(),
    nn.Conv2d(32, 64, 3), nn.ReLU(),
    nn.Flatten(), nn.LazyLinear(10),
)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)  # NN902
```

## Use instead
```python
import torch
import torch.nn as nn

model = nn.Sequential(
    nn.Conv2d(3, 32, 3), nn.ReLU(),
    nn.Conv2d(32, 64, 3), nn.ReLU(),
    nn.Flatten(), nn.LazyLinear(10),
)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
```

## Options
* `min-depth` (default `3`): the number of weight layers (dense, convolutional, recurrent,
  attention) from which a network counts as deep.

## Source
Seed 002_1779c8f13c5dbb22.txt ("MomentumOptimizer"): the momentum optimizer uses the previous
gradients as momentum for the next update; the friction factor β "一般为0.9" (is usually 0.9),
which makes it at least ten times faster than GradientDescentOptimizer and helps escape local
optima; the example is `tf.train.MomentumOptimizer(learning_rate, momentum=0.9)`.
Seed 000_15ef46e869a43bad.txt ("动量优化", momentum optimisation): `SGD(lr=0.001, momentum=0.9)`,
and `nesterov=True` is generally faster still. Seed 004_81a3f3f84632e452.txt: momentum makes
SGD robust on plateaus, and its MLP trains with `SGD(lr=0.1, momentum=0.9)`.

In short: Give SGD momentum (0.9 is the usual value). Public reference: Sutskever et al., "On the
importance of initialization and momentum in deep learning" (ICML 2013); PyTorch documentation,
`torch.optim.SGD` (`momentum`), https://pytorch.org/docs/stable/generated/torch.optim.SGD.html.
'''
from __future__ import annotations

from nnlint.facts.optimizers import weight_layers
from nnlint.rule import Context, Rule


class SgdWithoutMomentum(Rule):
    code = "NN902"
    name = "sgd-without-momentum"
    severity = "info"
    default = False
    fixable = False
    options = {"min-depth": 3}
    option_ranges = {"min-depth": {"minimum": 1}}

    def check(self, ctx: Context) -> None:
        min_depth = ctx.int_option("min-depth", minimum=1)
        optimizers = ctx.facts.optimizers
        for site in optimizers.sites:
            if site.family != "sgd" or optimizers.momentum(site) != 0:
                continue
            models = optimizers.trained_models(site)
            if not models:
                continue
            depth = sum(weight_layers(m) for m in models)
            if depth < min_depth:
                continue
            trained = ", ".join(m.name for m in models)
            ctx.report(site.node, f"plain SGD without momentum training {trained} ({depth} weight layers): "
                                  "add momentum=0.9 (and nesterov=True)")
