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

from typing import Iterator, Optional

import libcst as cst

from nnlint.facts import layers as L
from nnlint.facts.layerflow import Follower, layer_followers
from nnlint.facts.models import Layer, Model
from nnlint.facts.names import argument, keyword, literal, positional
from nnlint.rule import Context, Rule

XAVIER = "Xavier"
HE = "He"
_TORCH_INIT = {
    "torch.nn.init.xavier_uniform_": XAVIER, "torch.nn.init.xavier_normal_": XAVIER,
    "torch.nn.init.xavier_uniform": XAVIER, "torch.nn.init.xavier_normal": XAVIER,
    "torch.nn.init.kaiming_uniform_": HE, "torch.nn.init.kaiming_normal_": HE,
    "torch.nn.init.kaiming_uniform": HE, "torch.nn.init.kaiming_normal": HE,
}
_KERAS_INIT_NAMES = {"glorot_uniform": XAVIER, "glorot_normal": XAVIER, "he_normal": HE, "he_uniform": HE}
_KERAS_INIT_CALLABLES = {
    **{f"keras.initializers.{n}": XAVIER for n in ("GlorotUniform", "GlorotNormal", "glorot_uniform", "glorot_normal")},
    **{f"keras.initializers.{n}": HE for n in ("HeNormal", "HeUniform", "he_normal", "he_uniform")},
    "tensorflow.contrib.layers.xavier_initializer": XAVIER,
    "tensorflow.glorot_uniform_initializer": XAVIER,
    "tensorflow.glorot_normal_initializer": XAVIER,
    "tensorflow.initializers.glorot_uniform": XAVIER,
    "tensorflow.initializers.glorot_normal": XAVIER,
    "tensorflow.contrib.layers.variance_scaling_initializer": HE,  # factor=2.0 by default: He
    "tensorflow.initializers.he_normal": HE,
    "tensorflow.initializers.he_uniform": HE,
}
#: TF1 functional layers: qualname -> name of their activation keyword
_TF_FUNCTIONAL_LAYERS = {
    "tensorflow.layers.dense": "activation", "tensorflow.layers.conv1d": "activation",
    "tensorflow.layers.conv2d": "activation", "tensorflow.layers.conv3d": "activation",
    "tensorflow.contrib.layers.fully_connected": "activation_fn", "tensorflow.contrib.layers.conv2d": "activation_fn",
}
_TF_INITIALIZER_KEYWORDS = ("kernel_initializer", "weights_initializer")
#: activation the initialiser does not suit -> the advice
_MISMATCH = {XAVIER: L.RELU_LIKE, HE: frozenset({"Sigmoid", "Tanh"})}
_ADVICE = {XAVIER: "use Kaiming/He initialisation for ReLU layers",
           HE: "use Xavier/Glorot initialisation for sigmoid/tanh layers"}
_PASS_THROUGH = frozenset({L.SHAPE, L.DROPOUT, L.POOL})
NORM_SEEN = "norm"


class InitActivationMismatch(Rule):
    code = "NN104"
    name = "init-activation-mismatch"
    severity = "warning"
    default = True
    fixable = False
    options = {}

    def check(self, ctx: Context) -> None:
        names = ctx.facts.names
        for call in ctx.facts.calls():
            qualname = names.qualname(call.func)
            if qualname in _TORCH_INIT:
                self._torch(ctx, call, _TORCH_INIT[qualname])
                continue
            kind = L.layer_kind(qualname)
            if qualname is not None and qualname.startswith("keras.") and kind is not None \
                    and kind.category in (L.DENSE, L.CONV):
                self._tensorflow(ctx, call, "activation")
            elif qualname in _TF_FUNCTIONAL_LAYERS:
                self._tensorflow(ctx, call, _TF_FUNCTIONAL_LAYERS[qualname])

    # -- PyTorch -------------------------------------------------------------------
    def _torch(self, ctx: Context, call: cst.Call, scheme: str) -> None:
        if scheme == XAVIER and argument(call, 1, "gain") is not None:
            return
        if scheme == HE:
            if argument(call, 1, "a") is not None:
                return  # `a=math.sqrt(5)`: PyTorch's own default for Linear/Conv
            nonlinearity = literal(argument(call, 3, "nonlinearity"), "leaky_relu")
            if nonlinearity not in ("relu", "leaky_relu"):
                return
        tensor = argument(call, 0, "tensor")
        chain = _attribute_chain(tensor) if tensor is not None else []
        if chain and chain[-1] == "data":
            chain = chain[:-1]
        if len(chain) not in (2, 3) or chain[-1] != "weight":
            return
        if len(chain) == 3 and chain[0] == "self":
            activations = self._self_layer_activations(ctx, call, chain[1])
        elif len(chain) == 2:
            activations = self._per_module_activations(ctx, call, chain[0])
        else:
            return
        if activations and all(a in _MISMATCH[scheme] for a in activations):
            ctx.report(call, f"{scheme} initialisation of a layer followed by {_describe(activations)}: "
                             f"{_ADVICE[scheme]}")

    def _self_layer_activations(self, ctx: Context, node: cst.CSTNode, attribute: str) -> list[str]:
        model = _enclosing_model(ctx, node)
        if model is None:
            return []
        layer = next((l for l in model.layers if l.attribute == attribute), None)
        followers = layer_followers(ctx.facts, model)
        if layer is None or followers is None:
            return []
        found = _next_activations(layer, followers)
        return [] if found is None else found

    def _per_module_activations(self, ctx: Context, call: cst.Call, variable: str) -> list[str]:
        """``m.weight`` in an ``isinstance(m, nn.Linear)`` branch of an init applied to a whole model."""
        kinds = _isinstance_kinds(ctx, call, variable)
        function = _enclosing_function(ctx, call)
        if not kinds or function is None or not _is_parameter_or_loop_variable(ctx, function, call, variable):
            return []
        found: list[str] = []
        for layers in _initialised_models(ctx, function):
            result = _hidden_activations(layers, kinds)
            if result is None:
                return []
            found.extend(result)
        return found

    # -- Keras / TensorFlow --------------------------------------------------------
    def _tensorflow(self, ctx: Context, call: cst.Call, activation_keyword: str) -> None:
        for word in _TF_INITIALIZER_KEYWORDS:
            initializer = keyword(call, word)
            if initializer is not None:
                break
        else:
            return
        scheme = _tf_scheme(ctx, initializer)
        if scheme is None:
            return
        activation = ctx.facts.models.keras_activation(keyword(call, activation_keyword))
        if activation is None:
            activation = _next_sequential_activation(ctx, call)
        if activation is not None and activation in _MISMATCH[scheme]:
            ctx.report(initializer, f"{scheme} initializer on a layer followed by {activation}: {_ADVICE[scheme]}")


def _describe(activations: list[str]) -> str:
    return "/".join(sorted(set(activations)))


def _attribute_chain(expr: cst.BaseExpression) -> list[str]:
    parts: list[str] = []
    while isinstance(expr, cst.Attribute):
        parts.append(expr.attr.value)
        expr = expr.value
    if not isinstance(expr, cst.Name):
        return []
    parts.append(expr.value)
    return list(reversed(parts))


def _enclosing_model(ctx: Context, node: cst.CSTNode) -> Optional[Model]:
    for ancestor in ctx.facts.ancestors(node):
        if isinstance(ancestor, cst.ClassDef):
            return next((m for m in ctx.facts.models.models if m.node is ancestor), None)
    return None


def _enclosing_function(ctx: Context, node: cst.CSTNode) -> Optional[cst.FunctionDef]:
    for ancestor in ctx.facts.ancestors(node):
        if isinstance(ancestor, cst.FunctionDef):
            return ancestor
    return None


def _next_activations(layer: Layer, followers: dict[int, list[Follower]]) -> Optional[list[str]]:
    """The activation on every path after ``layer``; ``None`` if some path has none or is unknown."""
    if layer.activation is not None:
        return [layer.activation]
    found: list[str] = []
    pending = list(followers.get(id(layer), []))
    if not pending:
        return None
    seen: set[int] = set()
    while pending:
        between, nxt = pending.pop()
        ops = [kind for kind, category in between if category not in _PASS_THROUGH]
        if ops:
            if L.KIND_CATEGORIES.get(ops[0]) != L.ACTIVATION:
                return None
            found.append(ops[0])
            continue
        if nxt is None or id(nxt) in seen:
            return None
        seen.add(id(nxt))
        if nxt.category == L.ACTIVATION:
            found.append(nxt.kind)
        elif nxt.category in _PASS_THROUGH:
            more = followers.get(id(nxt), [])
            if not more:
                return None
            pending.extend(more)
        else:
            return None  # normalisation, another layer or a sub-model: not this rule's business
    return found


def _isinstance_kinds(ctx: Context, node: cst.CSTNode, variable: str) -> frozenset[str]:
    names = ctx.facts.names
    for ancestor in ctx.facts.ancestors(node):
        if not isinstance(ancestor, cst.If):
            continue
        test = ancestor.test
        if not (isinstance(test, cst.Call) and isinstance(test.func, cst.Name) and test.func.value == "isinstance"):
            continue
        subject, classes = positional(test, 0), positional(test, 1)
        if not (isinstance(subject, cst.Name) and subject.value == variable):
            continue
        elements = [e.value for e in classes.elements] if isinstance(classes, cst.Tuple) else [classes]
        kinds = set()
        for element in elements:
            kind = L.layer_kind(names.qualname(element)) if element is not None else None
            if kind is None or kind.category not in (L.DENSE, L.CONV):
                return frozenset()
            kinds.add(kind.kind)
        return frozenset(kinds)
    return frozenset()


def _is_parameter_or_loop_variable(ctx: Context, function: cst.FunctionDef, node: cst.CSTNode,
                                   variable: str) -> bool:
    if any(param.name.value == variable for param in function.params.params):
        return True
    for ancestor in ctx.facts.ancestors(node):
        if isinstance(ancestor, cst.For) and isinstance(ancestor.target, cst.Name) \
                and ancestor.target.value == variable:
            return True
        if ancestor is function:
            break
    return False


def _initialised_models(ctx: Context, function: cst.FunctionDef) -> Iterator[tuple[str, ...]]:
    """Layer kinds (data-flow order) of the models this init function runs on."""
    owner = None
    for ancestor in ctx.facts.ancestors(function):
        if isinstance(ancestor, cst.ClassDef):
            owner = ancestor
            break
    if owner is not None:
        model = next((m for m in ctx.facts.models.models if m.node is owner), None)
        if model is not None:
            yield model.summary.layers
        return
    name = function.name.value
    for call in ctx.facts.calls():
        func = call.func
        if (isinstance(func, cst.Attribute) and func.attr.value == "apply" and call.args
                and isinstance(call.args[0].value, cst.Name) and call.args[0].value.value == name):
            summary = ctx.facts.models.model_of(func.value)
            if summary is not None:
                yield summary.layers


def _hidden_activations(layers: tuple[str, ...], kinds: frozenset[str]) -> Optional[list[str]]:
    """Activation after each initialised hidden layer; ``None`` when one has none (or a norm)."""
    found: list[str] = []
    positions = [i for i, kind in enumerate(layers) if kind in kinds]
    for position in positions[:-1]:  # the last one is usually the output layer
        following = [k for k in layers[position + 1:] if L.KIND_CATEGORIES.get(k) not in _PASS_THROUGH]
        if not following or L.KIND_CATEGORIES.get(following[0]) != L.ACTIVATION:
            return None
        found.append(following[0])
    return found


def _tf_scheme(ctx: Context, initializer: cst.BaseExpression) -> Optional[str]:
    value: Optional[cst.BaseExpression] = initializer
    if isinstance(value, cst.Name) and ctx.facts.names.qualname(value) is None:
        value = ctx.facts.dataflow.value_of(value)
    text = literal(value, None)
    if isinstance(text, str):
        return _KERAS_INIT_NAMES.get(text.lower())
    if isinstance(value, cst.Call):
        if value.args and _has_scale_arguments(value):
            return None
        value = value.func
    if value is None:
        return None
    return _KERAS_INIT_CALLABLES.get(ctx.facts.names.qualname(value) or "")


def _has_scale_arguments(call: cst.Call) -> bool:
    """An initializer call with arguments other than a seed may change its scale: leave it alone."""
    return any(arg.keyword is None or arg.keyword.value not in ("seed", "dtype", "uniform") for arg in call.args)


def _next_sequential_activation(ctx: Context, call: cst.Call) -> Optional[str]:
    for model in ctx.facts.models.models:
        if isinstance(model.node, cst.ClassDef):
            continue
        for index, layer in enumerate(model.layers):
            if layer.node is call:
                for nxt in model.layers[index + 1:]:
                    if nxt.category in _PASS_THROUGH:
                        continue
                    return nxt.kind if nxt.category == L.ACTIVATION else None
    return None
