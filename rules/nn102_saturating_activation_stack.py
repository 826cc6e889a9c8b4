'''
## What it does
Reports a model whose data flow passes through more than `max-depth` sigmoid/tanh hidden activations with no normalisation layer in between.
The path is the model's sequential data flow: an `nn.Sequential` / Keras `Sequential` (fused
`activation="sigmoid"` included), a Keras functional model, or in an `nn.Module` subclass the
chain of operations that `forward` applies to produce its output. Saturating activations are
sigmoid, tanh, hard sigmoid/tanh and softsign; a normalisation layer (BatchNorm, LayerNorm, ...)
restarts the count. The output activation (a final sigmoid for probabilities, a tanh for a
bounded output) does not count.

Gates are not a stack: an LSTM/GRU layer, a hand-written LSTM cell (`i = torch.sigmoid(...)`,
`f = torch.sigmoid(...)` computed side by side), a squeeze-and-excitation block or a GLU apply a
sigmoid once on each path and are not reported.

## Why is this bad?
The derivative of the sigmoid is at most 0.25 and that of tanh is below 1 away from zero;
backpropagation multiplies one such factor per layer, so the gradient reaching the first layers
shrinks geometrically with depth. Once activations drift into the flat tails (large weights,
non-centred sigmoid outputs) the factors are close to zero and the early layers stop learning.
ReLU-family activations (ReLU, LeakyReLU, ELU, GELU) do not saturate for positive inputs, and
batch normalisation keeps inputs in the sensitive range.

## Example
```python
import torch.nn as nn

model = nn.Sequential(  # NN102
    nn.Linear(784, 256), nn.Sigmoid(),
    nn.Linear(256, 256), nn.Sigmoid(),
    nn.Linear(256, 128), nn.Sigmoid(),
    nn.Linear(128, 64), nn.Tanh(),
    nn.Linear(64, 10),
)
```

## Use instead
```python
import torch.nn as nn

model = nn.Sequential(
    nn.Linear(784, 256), nn.ReLU(),
    nn.Linear(256, 256), nn.ReLU(),
    nn.Linear(256, 128), nn.BatchNorm1d(128), nn.Sigmoid(),
    nn.Linear(128, 64), nn.Tanh(),
    nn.Linear(64, 10),
)
```

## Options
* `max-depth` (default `3`): the largest number of saturating hidden activations allowed in a
  row (without normalisation between them) before the model is reported.

## Source
Seed 000_15ef46e869a43bad.txt: the logistic activation saturates at 0 or 1 for large inputs,
its derivative is then almost 0 and there is practically no gradient to propagate back.
Seed 002_1779c8f13c5dbb22.txt (sections "Sigmoid" and "tanh"): outputs pushed to 0 and 1 make
the weight updates almost 0 (vanishing gradients); ReLU variants and batch normalisation are
the remedies. Seed 003_1540c0685162747f.txt: the sigmoid's derivative is at most 1/4, so deep
stacks of sigmoid layers make gradients vanish; use the ReLU family or BN.
Seed 001_05b9fd847e40edfb.txt recommends ReLU as the default non-linearity.

In short: Use ReLU-family activations in deep stacks; keep sigmoid/tanh to a few layers or gates.
Public reference: Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural
networks" (AISTATS 2010), on saturated sigmoid layers; PyTorch documentation, `torch.nn.ReLU`,
https://pytorch.org/docs/stable/generated/torch.nn.ReLU.html.
'''
from __future__ import annotations

from typing import Optional

import libcst as cst

from nnlint.facts import layers as L
from nnlint.facts.models import Layer, Model
from nnlint.rule import Context, Rule

_TRANSPARENT = frozenset({L.SHAPE, L.DROPOUT})
_MAX_STEPS = 64


class SaturatingActivationStack(Rule):
    code = "NN102"
    name = "saturating-activation-stack"
    severity = "warning"
    default = True
    fixable = False
    options = {"max-depth": 3}
    option_ranges = {"max-depth": {"minimum": 1}}

    def check(self, ctx: Context) -> None:
        max_depth = ctx.int_option("max-depth")
        for model in ctx.facts.models.models:
            depth = max((_longest_run(path) for path in _paths(ctx, model)), default=0)
            if depth > max_depth:
                node = model.node.name if isinstance(model.node, cst.ClassDef) else model.node
                ctx.report(node, f"{depth} sigmoid/tanh hidden activations in a row without normalisation: "
                                 "gradients vanish; use ReLU-family activations or add BatchNorm")


def _paths(ctx: Context, model: Model) -> list[list[str]]:
    """Op kinds along the model's sequential data flow, input first."""
    if not isinstance(model.node, cst.ClassDef):
        return [list(model.summary.layers)]
    method = _method(model.node, "forward") or _method(model.node, "call")
    if method is None:
        return []
    by_attribute = {layer.attribute: layer for layer in model.layers if layer.attribute}
    paths: list[list[str]] = []
    for node in ctx.facts.walk(method.body):
        if isinstance(node, cst.Return) and node.value is not None and _own_return(ctx, node, method):
            outputs = [e.value for e in node.value.elements] if isinstance(node.value, cst.Tuple) else [node.value]
            paths.extend(list(reversed(_chain(ctx, output, by_attribute))) for output in outputs)
    return paths


def _own_return(ctx: Context, node: cst.Return, method: cst.FunctionDef) -> bool:
    for ancestor in ctx.facts.ancestors(node):
        if isinstance(ancestor, (cst.FunctionDef, cst.Lambda)):
            return ancestor is method
    return False


def _chain(ctx: Context, expr: Optional[cst.BaseExpression], by_attribute: dict[str, Layer]) -> list[str]:
    """Op kinds applied to ``expr``, output first, following the main input of each op."""
    kinds: list[str] = []
    names = ctx.facts.names
    for _ in range(_MAX_STEPS):
        if isinstance(expr, cst.Name):
            expr = ctx.facts.dataflow.value_of(expr)
            continue
        if not isinstance(expr, cst.Call):
            break
        func = expr.func
        layer = None
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
            layer = by_attribute.get(func.attr.value)
        if layer is not None:
            if layer.activation is not None:
                kinds.append(layer.activation)
            kinds.extend(reversed(layer.inner.layers) if layer.inner is not None else [layer.kind])
            expr = expr.args[0].value if expr.args else None
            continue
        qualname = names.qualname(func)
        kind = L.function_kind(qualname) if qualname is not None else None
        if kind is None and qualname is not None and qualname in L.ACTIVATION_CALLABLES:
            kind = L.Kind(L.ACTIVATION_CALLABLES[qualname], L.ACTIVATION)
        if kind is not None:
            kinds.append(kind.kind)
            expr = expr.args[0].value if expr.args else None
            continue
        if qualname is None and isinstance(func, cst.Attribute) and func.attr.value in L.TENSOR_METHODS:
            kinds.append(L.TENSOR_METHODS[func.attr.value].kind)
            expr = func.value
            continue
        break
    return kinds


def _longest_run(kinds: list[str]) -> int:
    """Saturating hidden activations in a row with no normalisation between them."""
    hidden = list(kinds)
    while hidden and L.KIND_CATEGORIES.get(hidden[-1]) in _TRANSPARENT:
        hidden.pop()
    if hidden and L.KIND_CATEGORIES.get(hidden[-1]) == L.ACTIVATION:
        hidden.pop()  # the output activation
    longest = current = 0
    for kind in hidden:
        if L.KIND_CATEGORIES.get(kind) == L.NORM or "Norm" in kind:
            current = 0
        elif kind in L.SATURATING_ACTIVATIONS:
            current += 1
            longest = max(longest, current)
    return longest


def _method(node: cst.ClassDef, name: str) -> Optional[cst.FunctionDef]:
    if isinstance(node.body, cst.IndentedBlock):
        for statement in node.body.body:
            if isinstance(statement, cst.FunctionDef) and statement.name.value == name:
                return statement
    return None
