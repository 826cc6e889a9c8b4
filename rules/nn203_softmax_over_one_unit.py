'''
## What it does
Reports a softmax (or log-softmax) over a single output unit: its result is a constant.

Reported spellings:

* Keras `Dense(1, activation="softmax")` (any spelling of the activation: `"softmax"`,
  `tf.nn.softmax`, `keras.activations.softmax`), in `Sequential`, `model.add`, the
  functional API or a subclassed model;
* a one-unit dense layer followed by a softmax layer: `nn.Linear(k, 1)` then
  `nn.Softmax(dim=-1)` in an `nn.Sequential`, Keras `Dense(1)` then `Activation("softmax")`
  or `Softmax()`;
* a softmax applied to a one-unit layer's output: `F.softmax(self.fc(x), dim=-1)`,
  `self.fc(x).softmax(-1)`, `torch.softmax(fc_out, -1)`, `tf.nn.softmax(Dense(1)(x))`.

A library MLP whose listed widths end in 1 (torchdrug's `MLP(k, hidden_dims=[*hidden, 1])`,
`torchvision.ops.MLP`, torch_geometric's `MLP(channel_list=[...])`) is a one-unit dense layer.

Only when the size-1 axis is certainly the one normalised: the last axis (Keras'
default, `dim=-1` in PyTorch), or `dim=1` in an `nn.Sequential` whose input was flattened
to 2-D (`nn.Flatten()`) before the dense layer, or whose output a model's `forward` returns
(`return self.head(x)`: the prediction, one row of scores per example). A softmax over another axis of a one-unit
output is attention pooling (`F.softmax(self.score(h), dim=1)` over the time steps) and is
not reported, nor is a softmax after a reshape (`self.score(h).squeeze(-1)`).

## Why is this bad?
Softmax normalises its inputs to sum to one along the axis: over a single value the
result is `exp(z) / exp(z) = 1.0` whatever the input (log-softmax: always `0.0`). The model
predicts the same "probability" for every example, the gradient through the softmax is
exactly zero, so nothing before it learns, and the loss never moves. It usually comes from
a binary classifier written like a multi-class one: one output unit needs a sigmoid
(or, better, no activation and a loss that takes logits); softmax needs one unit per class.

## Example
```python
import torch.nn as nn
import torch.nn.functional as F
from tensorflow import keras

keras_model = keras.Sequential([
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dense(1, activation="softmax"),  # NN203
])

torch_model = nn.Sequential(
    nn.Flatten(),
    nn.Linear(784, 1),
    nn.Softmax(dim=1),  # NN203
)


class Binary(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(20, 16)
        self.out = nn.Linear(16, 1)

    def forward(self, x):
        return F.softmax(self.out(F.relu(self.hidden(x))), dim=-1)  # NN203
```

## Use instead
```python
import torch.nn as nn
import torch.nn.functional as F
from tensorflow import keras

keras_model = keras.Sequential([
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dense(1, activation="sigmoid"),  # one unit: sigmoid
])
keras_model.compile(optimizer="adam", loss="binary_crossentropy")

torch_model = nn.Sequential(
    nn.Flatten(),
    nn.Linear(784, 2),  # or one logit per class with CrossEntropyLoss
)


class Binary(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(20, 16)
        self.out = nn.Linear(16, 1)

    def forward(self, x):
        return self.out(F.relu(self.hidden(x)))  # a logit for BCEWithLogitsLoss


class AttentionPool(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def forward(self, h):  # h: (batch, time, dim)
        weights = F.softmax(self.score(h), dim=1)  # over the time steps
        return (weights * h).sum(dim=1)
```

## Fix safety
The fix replaces the softmax with a sigmoid, spelled alike: `F.softmax(x, dim=-1)` becomes
`F.sigmoid(x)`, `x.softmax(-1)` becomes `x.sigmoid()`, `nn.Softmax(dim=1)` becomes `nn.Sigmoid()`
(`nn.LogSoftmax` becomes `nn.LogSigmoid()`, `F.log_softmax` becomes `F.logsigmoid`) and Keras'
`activation="softmax"` becomes `"sigmoid"`. It is unsafe: the output changes from a constant 1 to
a probability, and the loss must then be a binary one (`BCELoss`/`binary_crossentropy`, or the
logits version without the sigmoid).

## Source
Seed 003_1540c0685162747f.txt, on the multi-class softmax classifier
("多类别Softmax分类器:输出的每个类别的概率值为0到1之间,所有类别的概率值总和为1": each class's
output probability lies in [0, 1] and the probabilities of all classes sum to 1): with a
single class the sum-to-one constraint fixes the only output at 1. Seed
001_05b9fd847e40edfb.txt ("不要在输出层使用激活函数": no activation on the output layer;
easy to get wrong when every layer is built by one shared function).

In short: Use one sigmoid output for a binary decision, or one output per class with softmax. Public
reference: PyTorch documentation, `torch.nn.BCEWithLogitsLoss` (binary) and `torch.nn.Softmax`
(values along `dim` sum to 1), https://pytorch.org/docs/stable/generated/torch.nn.Softmax.html.
'''
from __future__ import annotations

from typing import Iterator, Optional

import libcst as cst

from nnlint.facts import layers as L
from nnlint.facts.outputs import Step
from nnlint.facts.names import argument
from nnlint.facts.tensors import LOG_SOFTMAX, SOFTMAX, TensorOps
from nnlint.facts.edits import softmax_to_sigmoid
from nnlint.rule import Context, Rule

_SOFTMAX_KINDS = frozenset({"Softmax", "LogSoftmax"})
_KERAS_SOFTMAX_LAYERS = frozenset({"keras.layers.Softmax", "keras.layers.Activation"})


class SoftmaxOverOneUnit(Rule):
    code = "NN203"
    name = "softmax-over-one-unit"
    severity = "error"
    default = True
    fixable = True
    options = {}

    def check(self, ctx: Context) -> None:
        reported: set[int] = set()

        def report(node: cst.CSTNode, what: str) -> None:
            if id(node) not in reported:
                reported.add(id(node))
                constant = "0.0" if what == "log_softmax" else "1.0"
                ctx.report(node, f"{what} over a single output unit is always {constant}: use a sigmoid (or a "
                                 "logit with a logits loss) for one unit, or one unit per class",
                           fix=softmax_to_sigmoid(ctx, node), fix_message=f"Replace the {what} with a sigmoid",
                           applicability="unsafe")

        for node, what in self._fused(ctx):
            report(node, what)
        for node, what in self._sequences(ctx):
            report(node, what)
        for node, what in self._applied(ctx):
            report(node, what)

    # Keras Dense(1, activation="softmax")
    def _fused(self, ctx: Context) -> Iterator[tuple[cst.CSTNode, str]]:
        names = ctx.facts.names
        for call in ctx.facts.calls():
            kind = L.layer_kind(names.qualname(call.func))
            qualname = names.qualname(call.func) or ""
            if kind is None or kind.kind != "Dense" or not qualname.startswith("keras."):
                continue
            activation = ctx.facts.models.keras_activation(argument(call, 1, "activation"))
            if activation in _SOFTMAX_KINDS and ctx.facts.shapes.int_value(argument(call, 0, "units")) == 1:
                yield call, _name(activation)

    # a one-unit dense layer, then a softmax layer, in a Sequential (also one a model class holds)
    def _sequences(self, ctx: Context) -> Iterator[tuple[cst.CSTNode, str]]:
        for sequence in ctx.facts.models.sequences:
            layers = sequence.layers
            for index, layer in enumerate(layers):
                if layer.category != L.DENSE or layer.units != 1 or layer.activation is not None:
                    continue
                following = [later for later in layers[index + 1:] if later.category != L.DROPOUT]
                if not following or following[0].kind not in _SOFTMAX_KINDS:
                    continue
                softmax = following[0]
                if not _same_block(ctx, layer.node, softmax.node):
                    continue  # model.add(...) calls in different branches
                shapes = ctx.facts.shapes
                # a model's prediction (``return self.head(x)``) is (batch, units): dim=1 is its last axis
                flat = sequence.is_output or shapes.flattened_before(layers[:index])
                if shapes.normalises_last_axis(softmax, flattened=flat):
                    yield softmax.node, _name(softmax.kind)

    # softmax(x) where x is a one-unit dense layer's output
    def _applied(self, ctx: Context) -> Iterator[tuple[cst.CSTNode, str]]:
        ops = TensorOps(ctx.facts)
        outputs = ctx.facts.outputs
        names = ctx.facts.names
        for call in ctx.facts.calls():
            op = ops.op(call)
            operand: Optional[cst.BaseExpression] = None
            if op is not None and op.kind in (SOFTMAX, LOG_SOFTMAX):
                if not ctx.facts.shapes.last_axis(op.dim, op.framework, call):
                    continue
                operand, what = op.operand, op.kind
            elif isinstance(call.func, cst.Call) and names.qualname(call.func.func) in _KERAS_SOFTMAX_LAYERS:
                steps = outputs.steps(call)  # Keras functional: Activation("softmax")(x)
                if not steps or steps[0].kind not in _SOFTMAX_KINDS:
                    continue
                operand, what = (call.args[0].value if call.args else None), _name(steps[0].kind)
            if operand is None:
                continue
            if _one_unit(outputs.steps(operand)):
                yield call, what


def _one_unit(steps: tuple[Step, ...]) -> bool:
    """Is the first step (dropout aside) a dense layer with one output unit?"""
    for step in steps:
        if step.category == L.DROPOUT:
            continue
        return step.category == L.DENSE and step.units == 1
    return False


def _name(kind: str) -> str:
    return "log_softmax" if kind in ("LogSoftmax", LOG_SOFTMAX) else "softmax"


def _same_block(ctx: Context, first: cst.CSTNode, second: cst.CSTNode) -> bool:
    def block(node: cst.CSTNode) -> Optional[cst.CSTNode]:
        return next((a for a in ctx.facts.ancestors(node) if isinstance(a, (cst.IndentedBlock, cst.Module))), None)

    return block(first) is block(second)
