'''
## What it does
Reports an explicit Xavier/Glorot initialisation of a layer followed by ReLU, or an explicit Kaiming/He initialisation of a layer followed by sigmoid/tanh.
Recognised spellings:

* PyTorch `nn.init.xavier_uniform_/xavier_normal_(self.fc1.weight)` (no `gain=`) and
  `nn.init.kaiming_uniform_/kaiming_normal_(...)` (default or ReLU `nonlinearity`, no `a=`),
  on `self.<layer>.weight` in a model class, or on `m.weight` inside an
  `isinstance(m, nn.Linear)` branch of an init function applied to every module
  (`for m in self.modules()`, `self.apply(self._init_weights)`, `model.apply(init_fn)`);
* Keras/TensorFlow layers with `kernel_initializer="glorot_uniform"`, `"glorot_normal"`,
  `GlorotUniform()`, `tf.contrib.layers.xavier_initializer()` or `"he_normal"`, `"he_uniform"`,
  `HeNormal()`, `tf.contrib.layers.variance_scaling_initializer()` written explicitly, with
  the activation given by `activation=` or by the next layer of a `Sequential`.

The activation is the one the model's data flow applies to the layer's output (through
reshapes, dropout and pooling; a normalisation layer in between ends the search). For the
per-module init function every hidden layer of the initialised type must be followed by the
mismatching activation. Library defaults are never reported (PyTorch's own
`kaiming_uniform_(w, a=math.sqrt(5))`, Keras' implicit Glorot), nor Xavier with a `gain=`
(`gain=nn.init.calculate_gain("relu")` is the correct He-equivalent).

## Why is this bad?
Initialisers are derived for an activation. Xavier/Glorot keeps the variance of a linear or
tanh/sigmoid layer constant (variance 1/fan_avg); a ReLU zeroes half its inputs, so with
Xavier every ReLU layer halves the signal's variance and deep ReLU networks start with
vanishing activations and gradients. He/Kaiming (variance 2/fan_in) compensates for exactly
that halving; in front of a sigmoid or tanh it makes pre-activations too large and pushes the
units into saturation.

## Example
```python
import torch.nn as nn


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(256, 10)
        nn.init.xavier_uniform_(self.fc1.weight)  # NN104

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))
```

```python
from tensorflow import keras

model = keras.Sequential([
    keras.layers.Dense(64, activation="sigmoid", kernel_initializer="he_normal"),  # NN104
    keras.layers.Dense(10),
])
```

## Use instead
```python
import torch.nn as nn


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(256, 10)
        nn.init.kaiming_uniform_(self.fc1.weight, nonlinearity="relu")
        nn.init.xavier_uniform_(self.fc2.weight)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))
```

```python
from tensorflow import keras

model = keras.Sequential([
    keras.layers.Dense(64, activation="sigmoid", kernel_initializer="glorot_normal"),
    keras.layers.Dense(10),
])
```

## Source
Seed 002_1779c8f13c5dbb22.txt (sections "Sigmoid" and "ReLU"): Xavier initialisation keeps each
layer's output variance equal to its input variance for sigmoid units, and the He
initialisation (`tf.contrib.layers.variance_scaling_initializer()`) is the one used with ReLU.
Seed 001_05b9fd847e40edfb.txt recommends variance-scaling (He) initialisation for ReLU networks
and notes that Xavier's equal per-layer variance works less well.

In short: Match the initialisation to the activation: He/Kaiming for ReLU, Xavier/Glorot for tanh
and sigmoid. Public reference: He et al., "Delving Deep into Rectifiers" (2015, arXiv:1502.01852);
PyTorch documentation, `torch.nn.init.kaiming_normal_` and `calculate_gain`,
https://pytorch.org/docs/stable/nn.init.html.
'''
from __future__ import annotations

from nnlint.facts import layers as L
from nnlint.facts.init import HE, XAVIER
from nnlint.rule import Context, Rule

#: activation the initialiser does not suit -> the advice
_MISMATCH = {XAVIER: L.RELU_LIKE, HE: frozenset({"Sigmoid", "Tanh"})}
_ADVICE = {XAVIER: "use Kaiming/He initialisation for ReLU layers",
           HE: "use Xavier/Glorot initialisation for sigmoid/tanh layers"}


class InitActivationMismatch(Rule):
    code = "NN104"
    name = "init-activation-mismatch"
    severity = "warning"
    default = True
    fixable = False
    options = {}

    def check(self, ctx: Context) -> None:
        for init in ctx.facts.init.scheme_inits:
            activations = init.activations
            if not activations or not all(a in _MISMATCH[init.scheme] for a in activations):
                continue
            if init.framework == "torch":
                ctx.report(init.node, f"{init.scheme} initialisation of a layer followed by "
                                      f"{'/'.join(sorted(set(activations)))}: {_ADVICE[init.scheme]}")
            else:
                ctx.report(init.node, f"{init.scheme} initializer on a layer followed by {activations[0]}: "
                                      f"{_ADVICE[init.scheme]}")
