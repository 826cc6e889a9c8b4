'''
## What it does
Reports dropout that stays on at evaluation and inference time. It looks for:

* `F.dropout(x, p)` (also `F.dropout1d`/`dropout2d`/`dropout3d`) in the `forward` of an
  `nn.Module` subclass (or a method `forward` calls) without a `training` argument. Unlike
  the `nn.Dropout` module, the functional form does not look at `model.eval()`: its
  `training` parameter defaults to `True`.
* `F.scaled_dot_product_attention(q, k, v, dropout_p=p)` in a module's `forward` with a
  rate that does not look at `self.training` (the function has no `training` parameter), and
  an `nn.Dropout(p)(x)` built inside `forward`: a module made there is always in training mode.
* TensorFlow 1 graph code (a graph fed through `tf.placeholder`) that calls
  `tf.nn.dropout(x, 0.5)` / `tf.nn.dropout(x, keep_prob=0.5)` / `tf.nn.dropout(x, rate=0.5)`
  with a constant probability, `tf.contrib.layers.dropout(x, keep_prob)` without
  `is_training`, or an RNN cell wrapped as `DropoutWrapper(cell, output_keep_prob=0.5)`:
  the same graph then drops units when it is evaluated.
* `tf.nn.dropout` with a constant rate in the `call` of a Keras layer or model, outside
  an `if training:` branch.

`training=self.training`, an explicit `training=True` (Monte-Carlo dropout is a deliberate
choice), `training=False` and calls under `if self.training:` are not reported.
`F.alpha_dropout` and `F.feature_alpha_dropout` default to `training=False` and are never
active by accident.

## Why is this bad?
Dropout is a training-time regulariser: it zeroes random units and rescales the rest so
that, at test time, the full network can be used unchanged. If it stays on during
evaluation, every prediction is computed by a random sub-network: validation metrics are
noisy and pessimistic, results are not reproducible, and the deployed model is worse than
the one that was trained.

## Example
```python
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.dropout(x, p=0.5)  # NN105
        return self.fc2(x)


class Attention(nn.Module):
    def __init__(self, dim, dropout):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.dropout = dropout

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout)  # NN105
        return nn.Dropout(0.1)(y)  # NN105
```

```python
import tensorflow as tf

x = tf.placeholder(tf.float32, [None, 784])
hidden = tf.layers.dense(x, 256, activation=tf.nn.relu)
hidden_drop = tf.nn.dropout(hidden, keep_prob=0.5)  # NN105
logits = tf.layers.dense(hidden_drop, 10)
cell = tf.nn.rnn_cell.DropoutWrapper(tf.nn.rnn_cell.BasicLSTMCell(128), output_keep_prob=0.5)  # NN105
```

## Use instead
```python
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.dropout(x, p=0.5, training=self.training)
        return self.fc2(x)


class Attention(nn.Module):
    def __init__(self, dim, dropout):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.dropout = dropout
        self.out_drop = nn.Dropout(0.1)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.out_drop(y)
```

```python
import tensorflow as tf

x = tf.placeholder(tf.float32, [None, 784])
keep_prob = tf.placeholder_with_default(1.0, shape=())
hidden = tf.layers.dense(x, 256, activation=tf.nn.relu)
hidden_drop = tf.nn.dropout(hidden, keep_prob=keep_prob)
logits = tf.layers.dense(hidden_drop, 10)
cell = tf.nn.rnn_cell.DropoutWrapper(tf.nn.rnn_cell.BasicLSTMCell(128), output_keep_prob=keep_prob)
```
Or use an `nn.Dropout(p)` module (PyTorch) / a `keras.layers.Dropout(rate)` layer, which
follow `model.train()`/`model.eval()` and Keras' `training` flag by themselves.

## Fix safety
For `F.dropout` the fix adds `training=self.training`. It is marked unsafe because it
changes what the model computes in eval mode, which is the point, but code that relied on
stochastic inference without saying so (Monte-Carlo dropout) would lose it; such code
should pass `training=True` explicitly. TensorFlow findings have no fix.

## Source
Seed 002_1779c8f13c5dbb22.txt, "Dropout": dropout must not be applied at test and
prediction time ("测试和预测阶段是不能dropout的"); its TF1 code passes
`is_training=is_training` (a placeholder) to `dropout`, and notes that `tf.nn.dropout(X,
keep_prob)` cannot take `is_training`, so `keep_prob` must then be a placeholder.
Seed 004_81a3f3f84632e452.txt: dropout is active only in the training phase and is
removed when the model predicts new data. Seed 000_15ef46e869a43bad.txt: during training
dropout drops inputs and rescales the rest; after training it does nothing.
In PyTorch the equivalent is `nn.Dropout` or `F.dropout(..., training=self.training)`.

In short: Make dropout follow the training flag: `nn.Dropout` modules or `training=self.training`.
Public reference: PyTorch documentation, `torch.nn.functional.dropout` (`training` argument) and
`torch.nn.Dropout`, https://pytorch.org/docs/stable/generated/torch.nn.Dropout.html; Srivastava et
al., "Dropout" (JMLR 2014).
'''
from __future__ import annotations

from typing import Iterator, Optional

import libcst as cst

from nnlint.facts.names import argument, has_star_args, keyword, literal, positional
from nnlint.facts.tensors import original_text
from nnlint.rule import Context, Rule

#: torch functional dropouts whose ``training`` parameter defaults to True (position 2)
_SDPA = "torch.nn.functional.scaled_dot_product_attention"
_DROPOUT_MODULES = frozenset({"torch.nn.Dropout", "torch.nn.Dropout1d", "torch.nn.Dropout2d", "torch.nn.Dropout3d"})
_TORCH_DROPOUTS = frozenset({
    "torch.nn.functional.dropout", "torch.nn.functional.dropout1d",
    "torch.nn.functional.dropout2d", "torch.nn.functional.dropout3d",
})
_TF_DROPOUT = "tensorflow.nn.dropout"
_CONTRIB_DROPOUT = "tensorflow.contrib.layers.dropout"
#: TF1 recurrent cells wrapped with dropout: ``DropoutWrapper(cell, output_keep_prob=0.5)``
_DROPOUT_WRAPPERS = frozenset(f"{prefix}.DropoutWrapper" for prefix in (
    "tensorflow.nn.rnn_cell", "tensorflow.contrib.rnn", "tensorflow.compat.v1.nn.rnn_cell",
    "tensorflow.contrib.rnn.core_rnn_cell"))
_LIGHTNING = ("pytorch_lightning.", "lightning.")


class DropoutAlwaysOn(Rule):
    code = "NN105"
    name = "dropout-always-on"
    severity = "warning"
    default = True
    fixable = True
    options = {}

    def check(self, ctx: Context) -> None:
        names = ctx.facts.names
        graph_mode: Optional[bool] = None
        for call in ctx.facts.calls():
            qualname = names.qualname(call.func)
            if qualname in _TORCH_DROPOUTS:
                self._check_torch(ctx, call)
            elif qualname == _SDPA:
                self._check_attention(ctx, call)
            elif isinstance(call.func, cst.Call) and names.qualname(call.func.func) in _DROPOUT_MODULES \
                    and _torch_method(ctx, call) is not None:
                ctx.report(call, "a dropout module built inside forward is always in training mode: "
                                 "create it in __init__")
            elif qualname in (_TF_DROPOUT, _CONTRIB_DROPOUT) or qualname in _DROPOUT_WRAPPERS:
                if graph_mode is None:
                    graph_mode = ctx.facts.models.tf1_graph
                self._check_tensorflow(ctx, call, qualname, graph_mode)

    # -- PyTorch ------------------------------------------------------------------
    def _check_torch(self, ctx: Context, call: cst.Call) -> None:
        if has_star_args(call) or argument(call, 2, "training") is not None or not call.args:
            return
        method = _torch_method(ctx, call)
        if method is None or _under_training_test(ctx, call):
            return
        receiver = _first_parameter(method)
        if receiver is None:
            ctx.report(call, "F.dropout without training=: it stays on in eval mode")
            return
        ctx.report(
            call,
            "F.dropout without training=: it stays on in eval mode",
            fix=[_training_argument_fix(ctx, call, receiver)],
            fix_message=f"Pass training={receiver}.training",
            applicability="unsafe",
        )

    def _check_attention(self, ctx: Context, call: cst.Call) -> None:
        """``F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout)``: no ``training`` argument."""
        rate = argument(call, 4, "dropout_p")
        if rate is None or _constant(ctx, rate) in (0, 0.0) or _may_follow_training(ctx, rate, 0) \
                or _torch_method(ctx, call) is None or _under_training_test(ctx, call):
            return
        ctx.report(call, "scaled_dot_product_attention with a dropout_p that eval mode does not turn off: "
                         "pass dropout_p=p if self.training else 0.0")

    # -- TensorFlow -----------------------------------------------------------------
    def _check_tensorflow(self, ctx: Context, call: cst.Call, qualname: str, graph_mode: bool) -> None:
        if has_star_args(call) or _under_training_test(ctx, call):
            return
        if qualname in _DROPOUT_WRAPPERS:
            kept = [_constant(ctx, keyword(call, k)) for k in ("input_keep_prob", "output_keep_prob", "state_keep_prob")]
            if graph_mode and any(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1 for v in kept):
                ctx.report(call, "DropoutWrapper with a constant keep probability: it stays on when the graph is "
                                 "evaluated; feed keep_prob through a placeholder (1.0 at inference)")
            return
        if qualname == _CONTRIB_DROPOUT:
            if not graph_mode or argument(call, 3, "is_training") is not None:
                return
            keep = argument(call, 1, "keep_prob")
            value = _constant(ctx, keep) if keep is not None else 0.5
            if isinstance(value, (int, float)) and 0 < value < 1:
                ctx.report(call, "dropout without is_training: it stays on when the graph is evaluated")
            return
        # keep_prob (TF1) and rate (TF2) are both "drop something" strictly between 0 and 1
        probability = keyword(call, "keep_prob") or keyword(call, "rate") or positional(call, 1)
        value = _constant(ctx, probability)
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1):
            return
        if graph_mode:
            ctx.report(call, "tf.nn.dropout with a constant probability: it stays on when the graph is evaluated")
        elif _keras_call_method(ctx, call):
            ctx.report(call, "tf.nn.dropout with a constant rate in call(): it stays on at inference")


def _constant(ctx: Context, expr: Optional[cst.BaseExpression]) -> object:
    """The literal value of ``expr``, following local variables and module constants."""
    if expr is None:
        return None
    value = literal(ctx.facts.dataflow.resolve(expr), None)
    if value is not None:
        return value
    constant = ctx.facts.constants.value(expr)
    return None if constant is None or not isinstance(constant, (int, float)) else constant


def _enclosing_method(ctx: Context, node: cst.CSTNode) -> Optional[tuple[cst.FunctionDef, cst.ClassDef]]:
    """The method (directly in a class body) that contains ``node``, and its class."""
    function: Optional[cst.FunctionDef] = None
    for ancestor in ctx.facts.ancestors(node):
        if isinstance(ancestor, cst.FunctionDef):
            function = ancestor
        elif isinstance(ancestor, cst.ClassDef):
            if function is not None and ctx.facts.parent(function) is ancestor.body:
                return function, ancestor
            return None
    return None


def _torch_method(ctx: Context, call: cst.Call) -> Optional[cst.FunctionDef]:
    """The method of an ``nn.Module`` subclass, run by ``forward``, that contains ``call``."""
    found = _enclosing_method(ctx, call)
    if found is None:
        return None
    method, owner = found
    if not _is_torch_module(ctx, owner, depth=0):
        return None
    return method if method.name.value in _methods_run_by_forward(owner) else None


def _is_torch_module(ctx: Context, owner: cst.ClassDef, depth: int) -> bool:
    if depth > 8:
        return False
    names = ctx.facts.names
    for base in owner.bases:
        if base.keyword is not None:
            continue
        if isinstance(base.value, cst.Name) and base.value.value in names.classes and (
            base.value.value not in names.bindings
        ):
            if _is_torch_module(ctx, names.classes[base.value.value], depth + 1):
                return True
            continue
        qualname = names.qualname(base.value)
        if qualname is None:
            continue
        if qualname.startswith("torch.nn.") or (qualname.startswith(_LIGHTNING) and qualname.endswith("LightningModule")):
            return True
        summary = ctx.facts.project.model(qualname, ctx.path)
        if summary is not None and summary.framework == "torch":
            return True
    return False


def _methods_run_by_forward(owner: cst.ClassDef) -> set[str]:
    """``forward`` and the methods it calls as ``self.<name>(...)``, transitively."""
    methods = {
        statement.name.value: statement
        for statement in owner.body.body
        if isinstance(statement, cst.FunctionDef)
    }
    reached: set[str] = set()
    pending = ["forward"]
    while pending:
        name = pending.pop()
        if name in reached or name not in methods:
            continue
        reached.add(name)
        method = methods[name]
        receiver = _first_parameter(method)
        for node in _walk(method.body):
            if (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
                    and isinstance(node.func.value, cst.Name) and node.func.value.value == receiver):
                pending.append(node.func.attr.value)
    return reached


def _walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(current.children)


def _first_parameter(method: cst.FunctionDef) -> Optional[str]:
    params = list(method.params.posonly_params) + list(method.params.params)
    return params[0].name.value if params else None


def _under_training_test(ctx: Context, call: cst.Call) -> bool:
    """Inside ``if self.training:`` / ``if training:`` / ``x if is_training else y`` / a lambda (``tf.cond``)."""
    for ancestor in ctx.facts.ancestors(call):
        if isinstance(ancestor, (cst.If, cst.IfExp, cst.While)) and _mentions_training(ancestor.test):
            return True
        if isinstance(ancestor, cst.Lambda):
            return True
        if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef)):
            return False
    return False


def _may_follow_training(ctx: Context, rate: cst.BaseExpression, depth: int) -> bool:
    """``p if self.training else 0.0``, also through a local (``dropout_p = ...``); unknown counts."""
    if _mentions_training(rate):
        return True
    if not isinstance(rate, cst.Name) or depth > 4:
        return False
    definitions = ctx.facts.dataflow.definitions(rate)
    return any(d.value is None or _may_follow_training(ctx, d.value, depth + 1) for d in definitions)


def _mentions_training(test: cst.BaseExpression) -> bool:
    for node in _walk(test):
        if isinstance(node, cst.Name) and "train" in node.value.lower():
            return True
    return False


def _keras_call_method(ctx: Context, call: cst.Call) -> bool:
    found = _enclosing_method(ctx, call)
    if found is None or found[0].name.value != "call":
        return False
    for base in found[1].bases:
        qualname = ctx.facts.names.qualname(base.value)
        if qualname is not None and qualname.startswith("keras."):
            return True
    return False


def _training_argument_fix(ctx: Context, call: cst.Call, receiver: str) -> tuple[cst.CSTNode, str]:
    """Append ``training=<receiver>.training`` after the last argument, keeping the call's layout."""
    last = call.args[-1].value
    return last, f"{original_text(ctx, last)}, training={receiver}.training"
