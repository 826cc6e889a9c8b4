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
'''
from __future__ import annotations

from typing import Optional

import libcst as cst

from nnlint.facts import layers as L
from nnlint.facts.models import Layer, Model
from nnlint.facts.names import keyword, literal
from nnlint.rule import Context, Rule

#: positional index of ``bias`` in PyTorch layer constructors
_TORCH_BIAS_INDEX = {
    "Linear": 2, "LazyLinear": 1,
    "Conv1d": 7, "Conv2d": 7, "Conv3d": 7,
    "ConvTranspose1d": 7, "ConvTranspose2d": 7, "ConvTranspose3d": 7,
    "LazyConv1d": 6, "LazyConv2d": 6, "LazyConv3d": 6,
}
_KERAS_BIASED = frozenset({"Dense", "Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Convolution2D",
                           "Convolution3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"})


class BiasBeforeBatchnorm(Rule):
    code = "NN901"
    name = "bias-before-batchnorm"
    severity = "info"
    default = False
    fixable = True
    options = {}

    def check(self, ctx: Context) -> None:
        for model in ctx.facts.models.models:
            followers = layer_followers(ctx, model)
            if followers is None:
                continue
            for layer in model.layers:
                if bias_enabled(layer) is not True or layer.activation is not None:
                    continue
                after = followers.get(id(layer), [])
                if after and all(_is_batchnorm_next(between, nxt) for between, nxt in after):
                    self._report(ctx, layer)

    def _report(self, ctx: Context, layer: Layer) -> None:
        word = "use_bias" if _is_keras(layer) else "bias"
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


def _is_keras(layer: Layer) -> bool:
    return (layer.qualname or "").startswith("keras.")


def bias_enabled(layer: Layer) -> Optional[bool]:
    """``True``/``False`` for a literal or default bias setting of a dense/conv layer, ``None`` if unknown."""
    call = layer.node
    if any(arg.star for arg in call.args):
        return None
    positional_count = sum(1 for arg in call.args if arg.keyword is None)
    if _is_keras(layer):
        if layer.kind not in _KERAS_BIASED or positional_count > 7:
            return None
        value = keyword(call, "use_bias")
    else:
        if not (layer.qualname or "").startswith("torch.") or layer.kind not in _TORCH_BIAS_INDEX:
            return None
        index = _TORCH_BIAS_INDEX[layer.kind]
        value = keyword(call, "bias")
        if value is None and positional_count > index:
            value = [arg for arg in call.args if arg.keyword is None][index].value
    if value is None:
        return True
    found = literal(value, None)
    return found if isinstance(found, bool) else None


def _without_bias(call: cst.Call, word: str) -> cst.Call:
    args = list(call.args)
    for index, arg in enumerate(args):
        if arg.keyword is not None and arg.keyword.value == word:
            args[index] = arg.with_changes(value=cst.Name("False"))
            return call.with_changes(args=args)
    for index, arg in enumerate(args):
        if arg.keyword is None and index == _TORCH_BIAS_INDEX.get(_callee_name(call), -1):
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


# -- what follows each layer in a model's data flow (shared shape with NN101/NN104) ------------
Follower = tuple[tuple[tuple[str, str], ...], Optional[Layer]]


def layer_followers(ctx: Context, model: Model) -> Optional[dict[int, list[Follower]]]:
    """For each layer (by ``id``), what its output flows into: ``(ops in between, next layer)``.

    ``ops in between`` are ``(kind, category)`` of functional ops (``F.relu``, ``x.view``) and a
    Keras layer's fused activation. ``None`` when the model's flow is not known.
    """
    followers: dict[int, list[Follower]] = {id(layer): [] for layer in model.layers}
    fused = {id(layer): ((layer.activation, L.ACTIVATION),) if layer.activation else () for layer in model.layers}
    if not isinstance(model.node, cst.ClassDef):
        for current, nxt in zip(model.layers, model.layers[1:]):
            followers[id(current)].append((fused[id(current)], nxt))
        return followers
    method = _method(model.node, "forward") or _method(model.node, "call")
    if method is None:
        return None
    by_attribute = {layer.attribute: layer for layer in model.layers if layer.attribute}
    for call in ctx.facts.calls(method):
        consumer = _self_layer(call, by_attribute)
        if consumer is None or not call.args:
            continue
        source = _source_layer(ctx, call.args[0].value, by_attribute)
        if source is not None:
            producer, between = source
            followers[id(producer)].append((fused[id(producer)] + between, consumer))
    return followers


def _method(node: cst.ClassDef, name: str) -> Optional[cst.FunctionDef]:
    if isinstance(node.body, cst.IndentedBlock):
        for statement in node.body.body:
            if isinstance(statement, cst.FunctionDef) and statement.name.value == name:
                return statement
    return None


def _self_layer(call: cst.Call, by_attribute: dict[str, Layer]) -> Optional[Layer]:
    func = call.func
    if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
        return by_attribute.get(func.attr.value)
    return None


def _source_layer(ctx: Context, expr: cst.BaseExpression,
                  by_attribute: dict[str, Layer]) -> Optional[tuple[Layer, tuple[tuple[str, str], ...]]]:
    """The layer whose output ``expr`` is, through local names and functional ops."""
    between: list[tuple[str, str]] = []
    names = ctx.facts.names
    current: Optional[cst.BaseExpression] = expr
    for _ in range(16):
        if isinstance(current, cst.Name):
            current = ctx.facts.dataflow.value_of(current)
            continue
        if not isinstance(current, cst.Call):
            return None
        producer = _self_layer(current, by_attribute)
        if producer is not None:
            return producer, tuple(between)
        qualname = names.qualname(current.func)
        kind = L.function_kind(qualname) if qualname is not None else None
        if kind is not None:
            between.insert(0, (kind.kind, kind.category))
            current = current.args[0].value if current.args else None
            continue
        if qualname is None and isinstance(current.func, cst.Attribute) \
                and current.func.attr.value in L.TENSOR_METHODS:
            method_kind = L.TENSOR_METHODS[current.func.attr.value]
            between.insert(0, (method_kind.kind, method_kind.category))
            current = current.func.value
            continue
        return None
    return None
