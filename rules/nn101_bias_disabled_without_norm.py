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

import libcst as cst

from nnlint.facts import layers as L
from nnlint.facts.layerflow import Follower, bias_enabled, class_method, is_keras_layer, layer_followers, self_layer
from nnlint.facts.models import Layer, Model
from nnlint.facts.testcode import in_test_code
from nnlint.rule import Context, Rule

#: positional index of ``bias`` in PyTorch layer constructors
#: layer kinds that carry their own normalisation-free stream in transformer code
_TRANSFORMER_HINTS = ("LayerNorm", "RMSNorm", "Attention", "Embedding", "Transformer")
_TRANSFORMER_FUNCTIONS = frozenset({
    "torch.nn.functional.layer_norm", "torch.nn.functional.rms_norm",
    "torch.nn.functional.scaled_dot_product_attention", "torch.nn.functional.embedding",
})
_PASS_THROUGH = frozenset({L.ACTIVATION, L.DROPOUT, L.POOL, L.SHAPE})
_PARAMETRIC = frozenset({L.DENSE, L.CONV})
_METADATA = frozenset({"size", "shape", "dim", "ndim", "numel", "device", "dtype"})


class BiasDisabledWithoutNorm(Rule):
    code = "NN101"
    name = "bias-disabled-without-norm"
    severity = "warning"
    default = True
    fixable = False
    options = {}

    def check(self, ctx: Context) -> None:
        models = ctx.facts.models.models
        candidates = [(model, layer) for model in models for layer in model.layers
                      if layer.category in _PARAMETRIC and bias_enabled(layer) is False]
        if not candidates or in_test_code(ctx.facts, ctx.facts.module):
            return  # a unit test's throw-away model is not an architecture choice
        transformer_style = _transformer_style(ctx, models)
        for model in models:
            layers = [layer for owner, layer in candidates if owner is model]
            if not layers or _functional_norm_in_forward(ctx, model):
                continue
            followers = layer_followers(ctx.facts, model)
            if followers is None:
                continue
            escaping = _escaping_outputs(ctx, model)
            for layer in layers:
                if layer.category == L.DENSE and transformer_style:
                    continue
                if id(layer) not in escaping and _unnormalised(layer, followers):
                    word = "use_bias" if is_keras_layer(layer) else "bias"
                    ctx.report(layer.node, f"{layer.kind} with {word}=False and no normalisation after it: "
                                           "the layer cannot shift its outputs; keep the bias")


def _unnormalised(layer: Layer, followers: dict[int, list[Follower]]) -> bool:
    """Every path from ``layer`` reaches another dense/conv layer without passing a normalisation."""
    reached_parametric = False
    pending = list(followers.get(id(layer), []))
    seen: set[int] = set()
    while pending:
        between, nxt = pending.pop()
        if any(category == L.NORM for _, category in between):
            return False
        if nxt is None or id(nxt) in seen:
            continue
        seen.add(id(nxt))
        if nxt.category == L.NORM or "Norm" in nxt.kind:
            return False
        if nxt.category in _PASS_THROUGH and nxt.activation is None:
            pending.extend(followers.get(id(nxt), []))
        elif nxt.category in _PARAMETRIC:
            reached_parametric = True
        else:
            return False  # a sub-model, container or recurrent layer: unknown inside
    return reached_parametric


def _escaping_outputs(ctx: Context, model: Model) -> set[int]:
    """Layers (by ``id``) whose output ``forward`` also uses outside a layer call: ``out * w``, a residual
    sum, a return. Squeeze-and-excitation pools a conv's output into a small conv *and* rescales the
    output itself; the path through the rescaling leaves the block, so it is not known to lack a norm."""
    if not isinstance(model.node, cst.ClassDef):
        return set()
    method = class_method(model.node, "forward") or class_method(model.node, "call")
    if method is None:
        return set()
    by_attribute = {layer.attribute: layer for layer in model.layers if layer.attribute}
    loads = [n for n in ctx.facts.walk(method) if isinstance(n, cst.Name) and not _is_binding(ctx, n)]
    escaping: set[int] = set()
    for call in ctx.facts.calls(method):
        producer = self_layer(call, by_attribute)
        if producer is not None and _escapes(ctx, call, by_attribute, loads, 0):
            escaping.add(id(producer))
    return escaping


def _escapes(ctx: Context, expr: cst.CSTNode, by_attribute: dict[str, Layer], loads: list[cst.Name],
             depth: int) -> bool:
    if depth > 8:
        return True
    names = ctx.facts.names
    node, parent = expr, ctx.facts.parent(expr)
    while True:
        if isinstance(parent, cst.Arg):
            call = ctx.facts.parent(parent)
            if not isinstance(call, cst.Call) or not call.args or call.args[0] is not parent:
                return True
            if self_layer(call, by_attribute) is not None:
                return False  # consumed by a layer: a follower
            if L.function_kind(names.qualname(call.func)) is None:
                return True
            node, parent = call, ctx.facts.parent(call)
        elif isinstance(parent, cst.Attribute) and parent.value is node and parent.attr.value in _METADATA:
            return False  # `x.size(0)`, `x.shape`: reads the shape, not the values
        elif isinstance(parent, cst.Attribute) and parent.value is node and parent.attr.value in L.TENSOR_METHODS:
            call = ctx.facts.parent(parent)
            if not isinstance(call, cst.Call):
                return True
            node, parent = call, ctx.facts.parent(call)
        elif isinstance(parent, cst.Assign) and parent.value is node:
            uses = [n for n in loads if any(d.value is node for d in ctx.facts.dataflow.definitions(n))]
            return any(_escapes(ctx, use, by_attribute, loads, depth + 1) for use in uses)
        else:
            return True


def _is_binding(ctx: Context, name: cst.Name) -> bool:
    parent = ctx.facts.parent(name)
    return isinstance(parent, (cst.AssignTarget, cst.Param, cst.Attribute, cst.Arg)) and not (
        isinstance(parent, cst.Arg) and parent.value is name) and not (
        isinstance(parent, cst.Attribute) and parent.value is name)


def _transformer_style(ctx: Context, models: tuple[Model, ...]) -> bool:
    for model in models:
        for layer in model.layers:
            kinds = [layer.kind, *(layer.inner.layers if layer.inner is not None else ())]
            if layer.category in (L.ATTENTION, L.EMBEDDING) or any(
                    hint in kind for kind in kinds for hint in _TRANSFORMER_HINTS):
                return True
    if any(hint in name for name in ctx.facts.names.classes for hint in _TRANSFORMER_HINTS):
        return True
    names = ctx.facts.names
    return any(names.qualname(call.func) in _TRANSFORMER_FUNCTIONS for call in ctx.facts.calls())


def _functional_norm_in_forward(ctx: Context, model: Model) -> bool:
    if not isinstance(model.node, cst.ClassDef):
        return False
    names = ctx.facts.names
    for call in ctx.facts.calls(model.node):
        kind = L.function_kind(names.qualname(call.func))
        if kind is not None and kind.category == L.NORM:
            return True
    return False


