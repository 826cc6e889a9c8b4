'''
## What it does
Reports weights drawn from a standard normal distribution, N(0, 1), or another wide normal distribution.
It recognises:

* `nn.init.normal_(w)` (default `std=1.0`) or `nn.init.normal_(w, std=s)` with `s >= max-std`,
  and the tensor method `w.weight.data.normal_()`;
* `nn.Parameter(torch.randn(fan_in, fan_out))` used as a weight (two or more dimensions,
  not multiplied or divided by a scale, not re-initialised by an `nn.init` call, not scaled
  wherever it is used as in `x @ self.w * self.scale`, and not in a unit test);
* TensorFlow `tf.random_normal_initializer()` (its default `stddev` is 1.0),
  `tf.Variable(tf.random.normal([n_in, n_out]))` (unless the literal shape's fan-in is so small,
  as in a `[3, 1]` linear regression, that the draw is within a factor 2 of He's
  `sqrt(2 / fan_in)`) and Keras
  `RandomNormal(stddev=s)` with `s >= max-std`.

Embeddings, positional/class tokens, queries and biases are not reported: N(0, 1) is the
conventional initialisation of an embedding table, so `nn.init.normal_(self.embedding.weight)`
on an `nn.Embedding` (or inside an `isinstance(m, nn.Embedding)` branch) is fine. Small standard
deviations (GPT's `normal_(w, mean=0.0, std=0.02)`, DCGAN's `normal_(w, 0.0, 0.02)`, Keras'
default `RandomNormal()` with `stddev=0.05`) and scaled draws (`torch.randn(n, m) * 0.02`,
`torch.randn(n, m) / math.sqrt(n)`) are fine. So is a square mixing matrix between attention
heads (`nn.Parameter(torch.randn(heads, heads))`) whose product is normalised right away by
a `LayerNorm`/`BatchNorm`/`GroupNorm`/`F.normalize`: the normalisation divides out the scale
the draw adds, and nothing grows layer by layer. A softmax is not such a normalisation: it is
not scale-invariant, and N(0, 1) mixing before it sharpens the attention by `sqrt(heads)`.

## Why is this bad?
A unit of a layer with `n` inputs sums `n` products: with N(0, 1) weights the variance of that
sum is about `n` times the variance of the input, so activations grow layer after layer.
Sigmoid/tanh units are pushed into their flat tails where the derivative is almost zero and
gradients vanish; ReLU networks instead explode. Scale the weights with the fan-in
(Xavier/Glorot for sigmoid/tanh, He/Kaiming for ReLU) or use a small fixed standard deviation.

## Example
```python
import torch
import torch.nn as nn


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.fc2 = nn.Linear(256, 10)
        nn.init.normal_(self.fc1.weight)  # NN103
        nn.init.normal_(self.fc2.weight, mean=0.0, std=1.0)  # NN103


class Scorer(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.W = nn.Parameter(torch.randn(n_in, n_out))  # NN103

    def forward(self, x):
        return x @ self.W
```

```python
import tensorflow as tf

init = tf.random_normal_initializer()  # NN103
W1 = tf.Variable(tf.random.normal([784, 256]))  # NN103
```

## Use instead
```python
import math

import torch
import torch.nn as nn


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.fc2 = nn.Linear(256, 10)
        self.embedding = nn.Embedding(1000, 64)
        nn.init.kaiming_normal_(self.fc1.weight, nonlinearity="relu")
        nn.init.normal_(self.fc2.weight, mean=0.0, std=0.02)
        nn.init.normal_(self.embedding.weight)


class Scorer(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.W = nn.Parameter(torch.randn(n_in, n_out) / math.sqrt(n_in))
        self.pos_embedding = nn.Parameter(torch.randn(1, 16, n_out))

    def forward(self, x):
        return x @ self.W


class HeadMixing(nn.Module):
    def __init__(self, heads):
        super().__init__()
        self.mix_weight = nn.Parameter(torch.randn(heads, heads))
        self.norm = nn.LayerNorm(heads)

    def forward(self, attn):
        mixed = torch.einsum("bhij,hg->bijg", attn, self.mix_weight)
        return self.norm(mixed)
```

```python
import tensorflow as tf

init = tf.keras.initializers.GlorotNormal()
W1 = tf.Variable(tf.random.normal([784, 256], stddev=0.05))
```

## Options
* `max-std` (default `0.5`): a normal initialisation with a standard deviation at least this
  large is reported.

## Source
Seed 002_1779c8f13c5dbb22.txt (section "Sigmoid"): initialising the parameters from a (0, 1)
normal distribution makes every layer's output variance much larger than its input variance,
pushing sigmoid outputs to 0 and 1 where the weight updates are almost zero (vanishing
gradients); Xavier initialisation keeps the variances equal. Seed 003_1540c0685162747f.txt
lists "initialising the weights from a Gaussian with mean 0 and standard deviation 1" among the
causes of vanishing/exploding gradients.

In short: Initialise weights with a scaled scheme (Xavier/Glorot or He/Kaiming), not a unit normal.
Public reference: PyTorch documentation, `torch.nn.init` (`xavier_normal_`, `kaiming_normal_`),
https://pytorch.org/docs/stable/nn.init.html; Glorot & Bengio (AISTATS 2010).
'''
from __future__ import annotations

from nnlint.facts.init import KERAS_INITIALIZER, NORMAL_INIT, PARAMETER, TF_INITIALIZER, TF_VARIABLE
from nnlint.rule import Context, Rule

_MESSAGES = {
    NORMAL_INIT: "weights drawn from N(0, {std:g}): activations grow layer by layer; use "
                 "Xavier/Kaiming initialisation or a small std (e.g. 0.02)",
    PARAMETER: "`{target}` is drawn from N(0, 1) without scaling: divide by sqrt(fan_in) "
               "or initialise it with nn.init.xavier_/kaiming_",
    TF_INITIALIZER: "normal initializer with stddev={std:g}: activations grow layer by layer; "
                    "use a Glorot/He initializer or a small stddev",
    KERAS_INITIALIZER: "RandomNormal(stddev={std:g}): activations grow layer by layer; "
                       "use a Glorot/He initializer or a small stddev",
    TF_VARIABLE: "weights drawn from N(0, {std:g}): activations grow layer by layer; "
                 "use a Glorot/He initializer or scale by 1/sqrt(fan_in)",
}


class StandardNormalWeightInit(Rule):
    code = "NN103"
    name = "standard-normal-weight-init"
    severity = "warning"
    default = True
    fixable = False
    options = {"max-std": 0.5}
    option_ranges = {"max-std": {"above": 0}}

    def check(self, ctx: Context) -> None:
        max_std = ctx.number_option("max-std")
        init = ctx.facts.init
        for draw in init.normal_draws:
            # `nn.Parameter(torch.randn(...))` is N(0, 1) whatever max-std says
            if draw.form != PARAMETER and (draw.std is None or draw.std < max_std):
                continue
            if init.scale_matters(draw):
                ctx.report(draw.node, _MESSAGES[draw.form].format(std=draw.std, target=draw.target))
