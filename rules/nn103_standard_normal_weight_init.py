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

import re
from typing import Callable, Iterator, Optional

import libcst as cst

from nnlint.facts import layers as L
from nnlint.facts.names import argument, dotted_name, keyword, literal, positional
from nnlint.facts.testcode import in_test_code
from nnlint.rule import Context, Rule

_TORCH_NORMAL = frozenset({"torch.nn.init.normal_", "torch.nn.init.normal"})
_TORCH_PARAMETER = frozenset({"torch.nn.Parameter", "torch.nn.parameter.Parameter"})
_TORCH_RANDN = frozenset({"torch.randn"})
#: initialisers whose default standard deviation is 1.0 (TF's own, not Keras')
_TF_UNIT_INITIALIZERS = frozenset({"tensorflow.random_normal_initializer", "tensorflow.initializers.random_normal"})
#: Keras initialisers (default stddev 0.05): only an explicit large stddev is reported
_KERAS_NORMAL_INITIALIZERS = frozenset({
    "keras.initializers.RandomNormal", "keras.initializers.random_normal", "keras.initializers.normal",
})
#: std**2 * fan_in at or below this is within a factor 2 of He's std sqrt(2 / fan_in): 8 = (2 * sqrt(2))**2
_SMALL_FAN_IN_VARIANCE = 8.0
_TF_NORMAL = frozenset({"tensorflow.random.normal", "tensorflow.random_normal"})
_TF_VARIABLE = frozenset({"tensorflow.Variable", "tensorflow.get_variable"})
#: names of tensors for which N(0, 1) is the convention or harmless
_NOT_A_WEIGHT = re.compile(
    r"emb|token|tok_|wte|wpe|(?:(?<![a-z])pos|(?-i:Pos))(?:$|[_\d]|(?-i:[A-Z])|ition|enc)|cls|query|queries|bias|prompt|mask|latent|codebook|vocab|noise|register|"
    r"gamma|beta|alpha|scale|temperature|logit_scale|proto|anchor|center|centroid",
    re.IGNORECASE,
)
_WEIGHT_NAME = re.compile(r"^_?[wW](_|\d|$|[A-Z])|weight|kernel|Weight|Kernel")
_MATMUL_FUNCTIONS = frozenset({"torch.matmul", "torch.mm", "torch.bmm", "torch.einsum",
                               "torch.nn.functional.linear", "torch.addmm"})


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
        names = ctx.facts.names
        for call in ctx.facts.calls():
            qualname = names.qualname(call.func)
            if qualname in _TORCH_NORMAL:
                self._torch_normal(ctx, call, argument(call, 0, "tensor"), argument(call, 2, "std"), max_std)
            elif qualname is None and isinstance(call.func, cst.Attribute) and call.func.attr.value == "normal_":
                if _is_weight_attribute(call.func.value):
                    self._torch_normal(ctx, call, call.func.value, argument(call, 1, "std"), max_std)
            elif qualname in _TORCH_PARAMETER:
                self._parameter(ctx, call, max_std)
            elif qualname in _TF_UNIT_INITIALIZERS:
                std = _std_value(argument(call, 1, "stddev"), 1.0)
                if std is not None and std >= max_std and not _embedding_context(ctx, call):
                    ctx.report(call, f"normal initializer with stddev={std:g}: activations grow layer by layer; "
                                     "use a Glorot/He initializer or a small stddev")
            elif qualname in _KERAS_NORMAL_INITIALIZERS:
                std = _std_value(argument(call, 1, "stddev"), 0.05)
                if std is not None and std >= max_std and not _embedding_context(ctx, call):
                    ctx.report(call, f"RandomNormal(stddev={std:g}): activations grow layer by layer; "
                                     "use a Glorot/He initializer or a small stddev")
            elif qualname in _TF_VARIABLE:
                self._tf_variable(ctx, call, max_std)

    # -- PyTorch -----------------------------------------------------------------
    def _torch_normal(self, ctx: Context, call: cst.Call, tensor: Optional[cst.BaseExpression],
                      std_expr: Optional[cst.BaseExpression], max_std: float) -> None:
        std = _std_value(std_expr, 1.0)
        if tensor is None or std is None or std < max_std:
            return
        if _is_embedding_tensor(ctx, tensor):
            return
        ctx.report(call, f"weights drawn from N(0, {std:g}): activations grow layer by layer; use "
                         "Xavier/Kaiming initialisation or a small std (e.g. 0.02)")

    def _parameter(self, ctx: Context, call: cst.Call, max_std: float) -> None:
        data = argument(call, 0, "data")
        if not isinstance(data, cst.Call) or ctx.facts.names.qualname(data.func) not in _TORCH_RANDN:
            return  # a scaled draw (`torch.randn(...) * 0.02`) is a BinaryOperation
        if _dimensions(data) < 2:
            return
        target = _assigned_name(ctx, call)
        if target is None or _NOT_A_WEIGHT.search(target):
            return
        owner = _enclosing_class(ctx, call)
        scope = owner if owner is not None else ctx.module
        if _reinitialised(ctx, scope, target):
            return
        if not (_WEIGHT_NAME.search(target) or _used_in_matmul(ctx, scope, target)):
            return
        if _scaled_at_use(ctx, scope, target) or in_test_code(ctx.facts, call):
            return
        if _square_mixing(data) and _normalised_at_use(ctx, scope, target):
            return
        ctx.report(call, f"`{target}` is drawn from N(0, 1) without scaling: divide by sqrt(fan_in) "
                         "or initialise it with nn.init.xavier_/kaiming_")

    # -- TensorFlow --------------------------------------------------------------
    def _tf_variable(self, ctx: Context, call: cst.Call, max_std: float) -> None:
        names = ctx.facts.names
        initial = argument(call, 0, "initial_value")
        if names.qualname(call.func) == "tensorflow.get_variable":
            return  # its initializer= is an initializer object, handled above
        if not isinstance(initial, cst.Call) or names.qualname(initial.func) not in _TF_NORMAL:
            return
        shape = literal(argument(initial, 0, "shape"), None)
        if not isinstance(shape, tuple) or len(shape) < 2:
            return
        std = _std_value(argument(initial, 2, "stddev"), 1.0)
        if std is None or std < max_std:
            return
        fan_in = _product(shape[:-1])
        if fan_in is not None and std * std * fan_in <= _SMALL_FAN_IN_VARIANCE:
            return  # `[3, 1]` of a linear regression: N(0, 1) is within 2x of He's sqrt(2 / fan_in)
        target = _assigned_name(ctx, call)
        name_hint = target or _string_argument(call, "name") or ""
        if _NOT_A_WEIGHT.search(name_hint):
            return
        ctx.report(initial, f"weights drawn from N(0, {std:g}): activations grow layer by layer; "
                            "use a Glorot/He initializer or scale by 1/sqrt(fan_in)")


# -- helpers ------------------------------------------------------------------------
def _product(dims: tuple[object, ...]) -> Optional[int]:
    total = 1
    for dim in dims:
        if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
            return None
        total *= dim
    return total


def _std_value(expr: Optional[cst.BaseExpression], default: float) -> Optional[float]:
    """The literal standard deviation, ``default`` when absent, ``None`` when unknown."""
    if expr is None:
        return default
    value = literal(expr, None)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _attribute_chain(expr: cst.BaseExpression) -> list[str]:
    parts: list[str] = []
    while isinstance(expr, cst.Attribute):
        parts.append(expr.attr.value)
        expr = expr.value
    if isinstance(expr, cst.Name):
        parts.append(expr.value)
    elif isinstance(expr, cst.Subscript):
        parts.append("[]")
    return list(reversed(parts))


def _is_weight_attribute(expr: cst.BaseExpression) -> bool:
    """``self.fc.weight`` / ``m.weight.data``: a layer's weight tensor."""
    chain = _attribute_chain(expr)
    if chain and chain[-1] == "data":
        chain = chain[:-1]
    return len(chain) >= 2 and chain[-1] == "weight"


def _is_embedding_tensor(ctx: Context, tensor: cst.BaseExpression) -> bool:
    chain = _attribute_chain(tensor)
    if chain and chain[-1] == "data":
        chain = chain[:-1]
    if any(_NOT_A_WEIGHT.search(part) for part in chain):
        return True
    if len(chain) >= 2 and chain[-1] in ("weight", "weight_v", "weight_orig"):
        owner = chain[:-1]
        if owner[0] == "self" and len(owner) == 2 and _self_layer_kind(ctx, tensor, owner[1]) == L.EMBEDDING:
            return True
        if len(owner) == 1 and _isinstance_guard(ctx, tensor, owner[0]) == L.EMBEDDING:
            return True
        if len(owner) == 1 and _isinstance_guard(ctx, tensor, owner[0]) == "non-weight":
            return True
    return False


def _self_layer_kind(ctx: Context, node: cst.CSTNode, attribute: str) -> Optional[str]:
    """Category of the layer assigned to ``self.<attribute>`` in the enclosing class."""
    owner = _enclosing_class(ctx, node)
    if owner is None:
        return None
    names = ctx.facts.names
    for statement in ctx.facts.walk(owner):
        if isinstance(statement, cst.Assign) and isinstance(statement.value, cst.Call):
            for target in statement.targets:
                t = target.target
                if (isinstance(t, cst.Attribute) and isinstance(t.value, cst.Name) and t.value.value == "self"
                        and t.attr.value == attribute):
                    kind = L.layer_kind(names.qualname(statement.value.func))
                    if kind is not None:
                        return kind.category
    return None


def _isinstance_guard(ctx: Context, node: cst.CSTNode, variable: str) -> Optional[str]:
    """Category of the nearest enclosing ``if isinstance(variable, X)`` test (``None`` if unguarded)."""
    names = ctx.facts.names
    for ancestor in ctx.facts.ancestors(node):
        if not isinstance(ancestor, (cst.If,)):
            continue
        for test in _isinstance_tests(ancestor.test):
            subject = positional(test, 0)
            if not (isinstance(subject, cst.Name) and subject.value == variable):
                continue
            classes = positional(test, 1)
            elements = [e.value for e in classes.elements] if isinstance(classes, cst.Tuple) else [classes]
            categories = set()
            for element in elements:
                kind = L.layer_kind(names.qualname(element)) if element is not None else None
                categories.add(kind.category if kind is not None else None)
            if categories == {L.EMBEDDING}:
                return L.EMBEDDING
            if categories and categories <= {L.NORM}:
                return "non-weight"  # a norm's weight is a scale around 1
            return "other"
    return None


def _isinstance_tests(test: cst.BaseExpression) -> Iterator[cst.Call]:
    if isinstance(test, cst.Call) and isinstance(test.func, cst.Name) and test.func.value == "isinstance":
        yield test
    elif isinstance(test, cst.BooleanOperation):
        yield from _isinstance_tests(test.left)
        yield from _isinstance_tests(test.right)


def _enclosing_class(ctx: Context, node: cst.CSTNode) -> Optional[cst.ClassDef]:
    for ancestor in ctx.facts.ancestors(node):
        if isinstance(ancestor, cst.ClassDef):
            return ancestor
    return None


def _dimensions(randn: cst.Call) -> int:
    size = keyword(randn, "size")
    if size is None:
        first = positional(randn, 0)
        if isinstance(first, (cst.Tuple, cst.List)):
            size = first
        else:
            return len([a for a in randn.args if a.keyword is None and not a.star])
    if isinstance(size, (cst.Tuple, cst.List)):
        return len(size.elements)
    return 0


def _assigned_name(ctx: Context, call: cst.Call) -> Optional[str]:
    parent = ctx.facts.parent(call)
    if isinstance(parent, cst.Assign) and len(parent.targets) == 1:
        target = parent.targets[0].target
    elif isinstance(parent, cst.AnnAssign):
        target = parent.target
    else:
        return None
    if isinstance(target, cst.Name):
        return target.value
    if isinstance(target, cst.Attribute):
        return target.attr.value
    return None


def _string_argument(call: cst.Call, name: str) -> Optional[str]:
    value = literal(keyword(call, name), None)
    return value if isinstance(value, str) else None


def _mentions_self_attribute(expr: Optional[cst.BaseExpression], attribute: str) -> bool:
    """``self.<attribute>`` (also ``.data``, a slice of it) or a module-level ``<attribute>``."""
    while isinstance(expr, cst.Subscript):
        expr = expr.value
    chain = _attribute_chain(expr) if expr is not None else []
    if chain and chain[-1] == "data":
        chain = chain[:-1]
    return chain == ["self", attribute] or chain == [attribute]


def _reinitialised(ctx: Context, scope: cst.CSTNode, attribute: str) -> bool:
    """An ``nn.init`` call or an in-place method (``.normal_``, ``.mul_``) on the tensor, or a generic
    init loop over the parameters: the ``randn`` draw is only a placeholder then."""
    names = ctx.facts.names
    for call in ctx.facts.calls(scope):
        qualname = names.qualname(call.func)
        if qualname is not None and qualname.startswith("torch.nn.init."):
            target = positional(call, 0) or keyword(call, "tensor")
            if isinstance(target, cst.Name) or _mentions_self_attribute(target, attribute):
                return True
        elif qualname is None and isinstance(call.func, cst.Attribute) and call.func.attr.value.endswith("_"):
            if _mentions_self_attribute(call.func.value, attribute):
                return True
    return False


def _used_in_matmul(ctx: Context, scope: cst.CSTNode, attribute: str) -> bool:
    names = ctx.facts.names
    for node in ctx.facts.walk(scope):
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.MatrixMultiply):
            if _mentions_self_attribute(node.left, attribute) or _mentions_self_attribute(node.right, attribute):
                return True
        elif isinstance(node, cst.Call) and names.qualname(node.func) in _MATMUL_FUNCTIONS:
            if any(_mentions_self_attribute(arg.value, attribute) for arg in node.args):
                return True
    return False


def _scaled_at_use(ctx: Context, scope: cst.CSTNode, attribute: str) -> bool:
    """Every read of ``self.<attribute>`` is scaled where it is used: ``x @ self.w * self.scale``,
    ``(q @ self.w) / math.sqrt(d)``. The product then has the variance of a scaled initialisation."""
    return _every_use(ctx, scope, attribute, _under_scale)


def _every_use(ctx: Context, scope: cst.CSTNode, attribute: str,
               holds: "Callable[[Context, cst.CSTNode], bool]") -> bool:
    """``holds`` for every read of ``self.<attribute>`` in ``scope`` (and there is one)."""
    uses = 0
    for node in ctx.facts.walk(scope):
        if not isinstance(node, cst.Attribute) or _attribute_chain(node) != ["self", attribute]:
            continue
        parent = ctx.facts.parent(node)
        if isinstance(parent, cst.AssignTarget) or (isinstance(parent, cst.AnnAssign) and parent.target is node):
            continue
        uses += 1
        if not holds(ctx, node):
            return False
    return uses > 0


def _under_scale(ctx: Context, node: cst.CSTNode) -> bool:
    child = node
    for ancestor in ctx.facts.ancestors(node):
        if not isinstance(ancestor, cst.BinaryOperation):
            return False
        if isinstance(ancestor.operator, (cst.Multiply, cst.Divide)):
            other = ancestor.right if ancestor.left is child else ancestor.left
            if _is_scale(ctx, other):
                return True
        child = ancestor
    return False


def _is_scale(ctx: Context, expr: cst.BaseExpression) -> bool:
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Power):
        exponent = literal(expr.right, None)
        return isinstance(exponent, (int, float)) and exponent < 0
    if isinstance(expr, cst.Call) and (dotted_name(expr.func) or "").rsplit(".", 1)[-1] in ("sqrt", "rsqrt"):
        return True
    text = (dotted_name(expr) or "").rsplit(".", 1)[-1].lower()
    return "scale" in text or "temperature" in text


def _randn_dims(randn: cst.Call) -> list[cst.BaseExpression]:
    size = keyword(randn, "size")
    if size is None:
        first = positional(randn, 0)
        size = first if isinstance(first, (cst.Tuple, cst.List)) else None
    if isinstance(size, (cst.Tuple, cst.List)):
        return [e.value for e in size.elements]
    return [a.value for a in randn.args if a.keyword is None and not a.star]


def _square_mixing(randn: cst.Call) -> bool:
    """``torch.randn(heads, heads)``: a square matrix that mixes ``n`` channels into ``n``."""
    dims = _randn_dims(randn)
    if len(dims) != 2:
        return False
    a, b = (literal(d, None) for d in dims)
    if a is not None or b is not None:
        return a == b and isinstance(a, int)
    return dotted_name(dims[0]) is not None and dotted_name(dims[0]) == dotted_name(dims[1])


def _normalised_at_use(ctx: Context, scope: cst.CSTNode, attribute: str) -> bool:
    """Every product with ``self.<attribute>`` is normalised at once by a scale-invariant norm:
    ``norm(x @ w)``, or ``y = einsum(..., w)`` followed by ``y = self.norm(y)``."""
    return _every_use(ctx, scope, attribute, _normalised)


def _normalised(ctx: Context, node: cst.CSTNode) -> bool:
    assigned: Optional[str] = None
    statement: Optional[cst.CSTNode] = None
    for ancestor in ctx.facts.ancestors(node):
        if isinstance(ancestor, cst.Call) and _is_normalisation(ctx, ancestor):
            return True
        if isinstance(ancestor, cst.Assign) and len(ancestor.targets) == 1 \
                and isinstance(ancestor.targets[0].target, cst.Name):
            assigned = ancestor.targets[0].target.value
        if isinstance(ancestor, cst.SimpleStatementLine):
            statement = ancestor
            break
    if assigned is None or statement is None:
        return False
    block = ctx.facts.parent(statement)
    body = list(getattr(block, "body", ()))
    if statement not in body:
        return False
    for later in body[body.index(statement) + 1:]:
        reads = [n for n in ctx.facts.walk(later) if isinstance(n, cst.Name) and n.value == assigned]
        if reads:  # the first statement that reads the product must normalise it
            return all(_normalised(ctx, read) for read in reads
                       if not isinstance(ctx.facts.parent(read), cst.AssignTarget))
    return False


def _is_normalisation(ctx: Context, call: cst.Call) -> bool:
    func = call.func
    qualname = ctx.facts.names.qualname(func)
    kind = L.function_kind(qualname) or L.layer_kind(qualname)
    if kind is not None:
        return kind.category == L.NORM
    if qualname == "torch.nn.functional.normalize":
        return True
    return (qualname is None and isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)
            and func.value.value == "self" and _self_norm_layer(ctx, call, func.attr.value))


def _self_norm_layer(ctx: Context, node: cst.CSTNode, attribute: str) -> bool:
    """``self.<attribute>`` is a normalisation layer (also inside an ``nn.Sequential`` of reshapes)."""
    owner = _enclosing_class(ctx, node)
    if owner is None:
        return False
    names = ctx.facts.names
    for statement in ctx.facts.walk(owner):
        if not (isinstance(statement, cst.Assign) and isinstance(statement.value, cst.Call)):
            continue
        if not any(_attribute_chain(t.target) == ["self", attribute] for t in statement.targets):
            continue
        value = statement.value
        calls = [a.value for a in value.args if isinstance(a.value, cst.Call)] \
            if names.qualname(value.func) == "torch.nn.Sequential" else [value]
        for layer in calls:
            kind = L.layer_kind(names.qualname(layer.func))
            if (kind is not None and kind.category == L.NORM) or "Norm" in (dotted_name(layer.func) or ""):
                return True
    return False


def _embedding_context(ctx: Context, call: cst.Call) -> bool:
    """The initializer is meant for an embedding/bias: the keyword it is passed as, the name it is
    assigned to, or the string arguments (``name="embedding"``) of the call it is passed to."""
    parent = ctx.facts.parent(call)
    if isinstance(parent, cst.Arg):
        if parent.keyword is not None and _NOT_A_WEIGHT.search(parent.keyword.value):
            return True
        receiver = ctx.facts.parent(parent)
        if isinstance(receiver, cst.Call):
            for arg in receiver.args:
                text = literal(arg.value, None)
                if isinstance(text, str) and _NOT_A_WEIGHT.search(text):
                    return True
            target = _assigned_name(ctx, receiver)
            return target is not None and bool(_NOT_A_WEIGHT.search(target))
    target = _assigned_name(ctx, call)
    return target is not None and bool(_NOT_A_WEIGHT.search(target))
