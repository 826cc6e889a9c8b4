'''
## What it does
Reports a dense or convolutional layer that keeps its bias although batch normalisation follows it.
Examples are `nn.Conv2d(3, 64, 3)` followed by `nn.BatchNorm2d(64)`, `nn.Linear(256, 128)` followed by
`nn.BatchNorm1d(128)`, Keras `Dense(128)` followed by `BatchNormalization()`.

"Followed by" is the model's data flow: the next entry of an `nn.Sequential` / Keras
`Sequential`, or, in an `nn.Module` / `keras.Model` subclass, the layer that `forward`/`call`
applies to this layer's output (reshapes in between are allowed). A layer with an activation
in between (`Dense(128, activation="relu")`, `bn(F.relu(fc(x)))`) is not reported, nor one
whose output flows into anything besides batch normalisation. A non-literal `bias=` is never
reported.

## Why is this bad?
Batch normalisation subtracts the batch mean from every channel and then adds its own learned
shift (beta). A constant added before it is removed by the mean subtraction: the bias receives
zero gradient on average, does nothing, and only costs memory, a little compute and
optimizer state. Disabling it is the standard choice in BN networks (torchvision's ResNets
use `bias=False` for every convolution that feeds a BatchNorm).

## Example
```python
import torch.nn as nn

features = nn.Sequential(
    nn.Conv2d(3, 64, kernel_size=3, padding=1),  # NN901
    nn.BatchNorm2d(64),
    nn.ReLU(),
)


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(256, 128)  # NN901
        self.bn = nn.BatchNorm1d(128)

    def forward(self, x):
        return self.bn(self.fc(x)).relu()
```

## Use instead
```python
import torch.nn as nn

features = nn.Sequential(
    nn.Conv2d(3, 64, kernel_size=3, padding=1, bias=False),
    nn.BatchNorm2d(64),
    nn.ReLU(),
)


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(256, 128, bias=False)
        self.bn = nn.BatchNorm1d(128)

    def forward(self, x):
        return self.bn(self.fc(x)).relu()
```
In Keras write `Dense(128, use_bias=False)` before `BatchNormalization()`.

## Fix safety
The fix adds `bias=False` (PyTorch) or `use_bias=False` (Keras) to the layer call, or turns a
literal `bias=True` into `False`. It is unsafe: the layer loses its `bias` parameter, so the
state dict keys change and existing checkpoints no longer load with `strict=True`, and code
that touches `layer.bias` breaks. The trained function is unchanged only up to BN's shift.

## Source
Seed 000_15ef46e869a43bad.txt (batch normalisation section): the BN layer includes an offset
parameter for each input, so the bias term of the preceding hidden layer can be set to False
and removed ("BN 层还包括每个输入的一个偏移参数，您可以使用偏置项将其设置为 False，从隐藏层中移除该参数").

In short: Drop the bias of a layer that a batch norm follows (`bias=False`). Public reference: Ioffe
& Szegedy, "Batch Normalization" (2015, arXiv:1502.03167), section 3.2; PyTorch tuning guide,
"Disable bias for convolutions directly followed by a batch norm",
https://pytorch.org/tutorials/recipes/recipes/tuning_guide.html.
'''
from __future__ import annotations

from typing import Optional

import libcst as cst

from nnlint.facts import layers as L
from nnlint.facts.layerflow import TORCH_BIAS_INDEX, bias_enabled, is_keras_layer, layer_followers
from nnlint.facts.models import Layer
from nnlint.rule import Context, Rule

#: positional index of ``bias`` in PyTorch layer constructors
class BiasBeforeBatchnorm(Rule):
    code = "NN901"
    name = "bias-before-batchnorm"
    severity = "info"
    default = False
    fixable = True
    options = {}

    def check(self, ctx: Context) -> None:
        for model in ctx.facts.models.models:
            followers = layer_followers(ctx.facts, model)
            if followers is None:
                continue
            for layer in model.layers:
                if bias_enabled(layer) is not True or layer.activation is not None:
                    continue
                after = followers.get(id(layer), [])
                if after and all(_is_batchnorm_next(between, nxt) for between, nxt in after):
                    self._report(ctx, layer)

    def _report(self, ctx: Context, layer: Layer) -> None:
        word = "use_bias" if is_keras_layer(layer) else "bias"
        ctx.report(
            layer.node,
            f"{layer.kind} bias is redundant before BatchNorm (its shift replaces it): set {word}=False",
            fix=[(layer.node, ctx.module.code_for_node(_without_bias(layer.node, word)))],
            fix_message=f"Add {word}=False",
            applicability="unsafe",
        )


def _is_batchnorm_next(between: tuple[tuple[str, str], ...], nxt: Optional[Layer]) -> bool:
    if nxt is None or any(category != L.SHAPE for _, category in between):
        return False
    return nxt.category == L.NORM and "Batch" in nxt.kind


def _without_bias(call: cst.Call, word: str) -> cst.Call:
    args = list(call.args)
    for index, arg in enumerate(args):
        if arg.keyword is not None and arg.keyword.value == word:
            args[index] = arg.with_changes(value=cst.Name("False"))
            return call.with_changes(args=args)
    for index, arg in enumerate(args):
        if arg.keyword is None and index == TORCH_BIAS_INDEX.get(_callee_name(call), -1):
            args[index] = arg.with_changes(value=cst.Name("False"))
            return call.with_changes(args=args)
    new_arg = cst.Arg(value=cst.Name("False"), keyword=cst.Name(word),
                      equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                            whitespace_after=cst.SimpleWhitespace("")))
    trailing = args[-1].comma if args else cst.MaybeSentinel.DEFAULT
    if isinstance(trailing, cst.Comma):  # keep the call's trailing comma after the new argument
        new_arg = new_arg.with_changes(comma=trailing)
        separator = args[-2].comma if len(args) >= 2 else cst.MaybeSentinel.DEFAULT
        if not isinstance(separator, cst.Comma):  # the layout between arguments, one per line or not
            separator = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        args[-1] = args[-1].with_changes(comma=separator)
    return call.with_changes(args=[*args, new_arg])


def _callee_name(call: cst.Call) -> str:
    func = call.func
    if isinstance(func, cst.Attribute):
        return func.attr.value
    return func.value if isinstance(func, cst.Name) else ""
