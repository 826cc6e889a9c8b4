'''
## What it does
Reports AdaGrad (`torch.optim.Adagrad`, `keras.optimizers.Adagrad`, `tf.train.AdagradOptimizer`,
`compile(optimizer="adagrad")`) training a deep network.

The network is the model whose `.parameters()` the PyTorch optimizer gets (also `self` in a
LightningModule's `configure_optimizers`), or the Keras model compiled with the optimizer. It
is deep when it has at least `min-depth` weight layers (dense, convolutional, recurrent and
attention layers; torchvision architectures count as deep). The rule stays quiet when the
model is unknown, shallow (linear or logistic regression, one hidden layer), or has an
embedding layer: AdaGrad is a sound choice for sparse features and embeddings. A TF1
`tf.train.AdagradOptimizer(...).minimize(loss)` does not say which network it trains, so it
is recognised but not reported.

## Why is this bad?
AdaGrad divides each parameter's learning rate by the square root of the sum of *all* its
past squared gradients. That sum only grows, so the effective learning rate decays towards
zero: on a simple convex problem this is fine, but a deep network needs many steps and
AdaGrad stops learning long before it reaches a good minimum. RMSProp and Adam keep an
exponentially decaying average instead and keep learning; Adam is the usual first choice.

## Example
```python
import torch
import torch.nn as nn

model = nn.Sequential(
    nn.Linear(784, 256), nn.ReLU(),
    nn.Linear(256, 128), nn.ReLU(),
    nn.Linear(128, 10),
)
optimizer = torch.optim.Adagrad(model.parameters(), lr=0.01)  # NN311
```

## Use instead
```python
import torch
import torch.nn as nn

model = nn.Sequential(
    nn.Linear(784, 256), nn.ReLU(),
    nn.Linear(256, 128), nn.ReLU(),
    nn.Linear(128, 10),
)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

# a linear model is fine with AdaGrad
linear = nn.Linear(20, 1)
linear_optimizer = torch.optim.Adagrad(linear.parameters(), lr=0.1)
```

## Options
* `min-depth` (default `3`): the number of weight layers (dense, convolutional, recurrent,
  attention) from which a network counts as deep.

## Source
Seed 000_15ef46e869a43bad.txt (section "阿达格拉德", AdaGrad): it often works on simple quadratic
problems but stops too early when training neural networks, because the learning rate decays
so much that the algorithm stops before reaching the optimum; although Keras has an AdaGrad
optimizer, "我们不能将其用于深度神经网络，而是可以用于更简单的任务，如线性回归" (we cannot use it
for deep neural networks, only for simpler tasks such as linear regression).
Seed 002_1779c8f13c5dbb22.txt ("AdagradOptimizer & RMSPropOptimizer"): AdagradOptimizer is
rarely used because it is not guaranteed to reach the optimum; RMSProp is its improved version.
Seed 004_81a3f3f84632e452.txt ("阿达格拉德"): the accumulated squared gradients only grow, which
ends in a zero learning rate; AdaGrad "不能成为大多数深度模型的首选解决方案" (cannot be the first
choice for most deep models).

In short: Prefer Adam/AdamW or SGD with momentum to Adagrad for deep networks. Public reference:
Duchi, Hazan & Singer, "Adaptive Subgradient Methods" (JMLR 2011), whose accumulated squared
gradients only shrink the step; Kingma & Ba, "Adam" (2014, arXiv:1412.6980), section 5.
'''
from __future__ import annotations

from nnlint.facts.optimizers import has_embedding, weight_layers
from nnlint.rule import Context, Rule


class AdagradOnDeepNetwork(Rule):
    code = "NN311"
    name = "adagrad-on-deep-network"
    severity = "warning"
    default = True
    fixable = False
    options = {"min-depth": 3}
    option_ranges = {"min-depth": {"minimum": 1}}

    def check(self, ctx: Context) -> None:
        min_depth = ctx.int_option("min-depth", minimum=1)
        optimizers = ctx.facts.optimizers
        for site in optimizers.sites:
            if site.family != "adagrad":
                continue
            models = optimizers.trained_models(site)
            if not models or any(has_embedding(m) for m in models):
                continue
            depth = sum(weight_layers(m) for m in models)
            if depth < min_depth:
                continue
            trained = ", ".join(m.name for m in models)
            ctx.report(site.node, f"AdaGrad training {trained} ({depth} weight layers): its learning rate decays "
                                  "towards zero before a deep network converges; use Adam or RMSprop")
