'''
## What it does
Reports a dense or convolutional layer built with a literal `bias=False` (Keras `use_bias=False`) that no normalisation layer follows.
"Follows" is the model's data flow: the next entries of an `nn.Sequential` / Keras
`Sequential`, or the layers that `forward`/`call` applies to this layer's output, looking
through activations, dropout, pooling and reshapes up to the next dense/conv layer.

Not reported:
* a layer followed by a normalisation layer (`Conv2d(..., bias=False)` + `BatchNorm2d`, as in
  torchvision's ResNets), also with an activation in between;
* a non-literal setting such as `bias=config.bias`;
* `Linear`/`Dense` layers in a file that also defines or uses LayerNorm/RMSNorm, attention or
  embeddings: transformer projections and LM heads without bias (nanoGPT, LLaMA, Hugging Face
  models) are a deliberate design, the pre-norm residual stream is normalised;
* the model's last layer and any layer whose output the rule cannot follow (it may feed a loss,
  a functional normalisation or another module, or `forward` also uses it outside a layer call,
  as squeeze-and-excitation and residual blocks do);
* models in unit tests (a pytest/unittest `test_*.py` file).

## Why is this bad?
A unit without a bias computes `w·x`: its decision boundary is forced through the origin and
it cannot shift its output, so ReLU units cannot move their threshold. A bias costs one
parameter per unit and is part of every layer by default. Dropping it is only free when a
normalisation layer with its own learned shift (BatchNorm's beta) comes right after.

## Example
```python
import torch.nn as nn

model = nn.Sequential(
    nn.Linear(784, 256, bias=False),  # NN101
    nn.ReLU(),
    nn.Linear(256, 10),
)
```

```python
from tensorflow import keras

model = keras.Sequential([
    keras.layers.Dense(64, activation="relu", use_bias=False),  # NN101
    keras.layers.Dense(10),
])
```

## Use instead
```python
import torch.nn as nn

model = nn.Sequential(
    nn.Linear(784, 256),
    nn.ReLU(),
    nn.Linear(256, 10),
)
features = nn.Sequential(
    nn.Conv2d(3, 64, kernel_size=3, padding=1, bias=False),
    nn.BatchNorm2d(64),
    nn.ReLU(),
    nn.Conv2d(64, 64, kernel_size=3, padding=1),
)
```

```python
from tensorflow import keras

model = keras.Sequential([
    keras.layers.Dense(64, use_bias=False),
    keras.layers.BatchNormalization(),
    keras.layers.Activation("relu"),
    keras.layers.Dense(10),
])
```

## Source
Seed 001_05b9fd847e40edfb.txt ("请在每一个层添加一个偏差", add a bias to every layer): the bias shifts
the fitted plane to its best position, like `b` in `y = mx + b`. Seed 000_15ef46e869a43bad.txt
(batch normalisation): the bias may be set to False only because the BN layer that follows has
its own offset parameter for each input.

In short: Keep the bias of a layer unless a normalisation layer follows it. Public reference:
PyTorch documentation, `torch.nn.Linear` and `torch.nn.Conv2d` (`bias=True` by default),
https://pytorch.org/docs/stable/generated/torch.nn.Linear.html; Ioffe & Szegedy, "Batch
Normalization" (2015, arXiv:1502.03167), section 3.2, on the bias a following normalisation makes
redundant.
'''
from __future__ import annotations

from nnlint.facts import layers as L
from nnlint.facts.layerflow import bias_enabled, is_keras_layer
from nnlint.facts.testcode import in_test_code
from nnlint.rule import Context, Rule

_PARAMETRIC = frozenset({L.DENSE, L.CONV})


class BiasDisabledWithoutNorm(Rule):
    code = "NN101"
    name = "bias-disabled-without-norm"
    severity = "warning"
    default = True
    fixable = False
    options = {}

    def check(self, ctx: Context) -> None:
        candidates = [(model, layer) for model in ctx.facts.models.models for layer in model.layers
                      if layer.category in _PARAMETRIC and bias_enabled(layer) is False]
        if not candidates or in_test_code(ctx.facts, ctx.facts.module):
            return  # a unit test's throw-away model is not an architecture choice
        norms = ctx.facts.norms
        for model, layer in candidates:
            if layer.category == L.DENSE and norms.transformer_style:
                continue  # bias-free projections are the convention in transformer code
            if not norms.functional_norm_in(model) and norms.unnormalised_output(model, layer):
                word = "use_bias" if is_keras_layer(layer) else "bias"
                ctx.report(layer.node, f"{layer.kind} with {word}=False and no normalisation after it: "
                                       "the layer cannot shift its outputs; keep the bias")
