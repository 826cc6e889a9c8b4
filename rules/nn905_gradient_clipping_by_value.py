'''
## What it does
Reports gradient clipping by value where clipping by norm would keep the gradient's direction.

Clipping by value is `torch.nn.utils.clip_grad_value_` (and `accelerator.clip_grad_value_`),
a Keras optimizer's `clipvalue=` argument, `tf.clip_by_value` applied to gradients
(`[(tf.clip_by_value(g, -1.0, 1.0), v) for g, v in grads_and_vars]`), and clamping gradients
by hand (`p.grad.clamp_(-1, 1)`, `p.grad.data.clamp_(-1, 1)`, `torch.clamp(p.grad, -1, 1)`).
A tensor counts as a gradient when it is a `.grad`, a name containing `grad`, or a loop or
comprehension variable over the result of `tape.gradient(...)` / `compute_gradients(...)`.

This rule is opinionated and off by default: clipping by value is a legitimate choice (DQN
clamps its gradients to [-1, 1] on purpose); it changes the update's direction, which is
seldom what is wanted when the goal is only to stop exploding steps.

## Why is this bad?
Clipping by value clips each component of the gradient vector on its own. When one component
is large and the others are small, the result points in a different direction from the true
gradient: `[0.9, 100.0]` clipped to 1.0 becomes `[0.9, 1.0]`, almost 45 degrees away. Clipping
by norm rescales the whole vector when its norm exceeds the threshold, so the step keeps the
direction of steepest descent and only its length is limited: `[0.9, 100.0]` becomes
`[0.0090, 0.99996]`.

## Example
```python
import torch
from tensorflow import keras

optimizer = keras.optimizers.SGD(learning_rate=0.01, clipvalue=1.0)  # NN905

for inputs, targets in loader:
    opt.zero_grad()
    loss_fn(model(inputs), targets).backward()
    torch.nn.utils.clip_grad_value_(model.parameters(), 1.0)  # NN905
    opt.step()
```

## Use instead
```python
import torch
from tensorflow import keras

optimizer = keras.optimizers.SGD(learning_rate=0.01, clipnorm=1.0)

for inputs, targets in loader:
    opt.zero_grad()
    loss_fn(model(inputs), targets).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
```

## Source
Seed 000_15ef46e869a43bad.txt ("渐变剪辑", gradient clipping): in Keras clipping is the
`clipvalue` or `clipnorm` argument of the optimizer; "如果我们需要不改变渐变向量方向的渐变剪辑，您应该
使用剪辑规范而不是剪辑值" (if the clipping must not change the direction of the gradient vector,
clip by norm instead of by value): for the gradient [0.9, 100.0], `clipvalue=1.0` gives
[0.9, 1.0] while `clipnorm=1.0` gives [0.00899964, 0.999595]. Seed 002_1779c8f13c5dbb22.txt
("梯度裁剪") clips with `tf.clip_by_value(grad, -threshold, threshold)` over `grads_and_vars`.

In short: Clip by norm (`clip_grad_norm_`, Keras `clipnorm`), which keeps the gradient's direction.
Public reference: PyTorch documentation, `torch.nn.utils.clip_grad_norm_`,
https://pytorch.org/docs/stable/generated/torch.nn.utils.clip_grad_norm_.html; Pascanu et al. (2013,
arXiv:1211.5063).
'''
from __future__ import annotations

from typing import Optional

import libcst as cst

from nnlint.facts.names import dotted_name, keyword, literal, positional
from nnlint.rule import Context, Rule

_TORCH_CLAMPS = frozenset({"torch.clamp", "torch.clip", "torch.clamp_", "torch.clip_"})
_CLAMP_METHODS = frozenset({"clamp", "clamp_", "clip", "clip_"})
_TF_CLIP = frozenset({"tensorflow.clip_by_value", "tensorflow.math.clip_by_value"})
_COMPREHENSIONS = (cst.ListComp, cst.GeneratorExp, cst.SetComp, cst.DictComp)
_MESSAGE = ("clipping gradients by value changes their direction ([0.9, 100] -> [0.9, 1.0]); "
            "clip by norm ({}) to keep it")


class GradientClippingByValue(Rule):
    code = "NN905"
    name = "gradient-clipping-by-value"
    severity = "info"
    default = False
    fixable = False
    options = {}

    def check(self, ctx: Context) -> None:
        for site in ctx.facts.optimizers.sites:
            if site.framework == "keras" and site.call is not None:
                value = keyword(site.call, "clipvalue")
                if value is not None and literal(value, 0) is not None and not _norm_is_an_option(ctx, value):
                    ctx.report(value, _MESSAGE.format("clipnorm="))
        names = ctx.facts.names
        for call in ctx.facts.calls():
            func = call.func
            qualname = names.qualname(func)
            method = func.attr.value if isinstance(func, cst.Attribute) else None
            instead: Optional[str] = None
            if (qualname or "").endswith(".clip_grad_value_") or (qualname is None and method == "clip_grad_value_"):
                instead = "torch.nn.utils.clip_grad_norm_"
            elif qualname in _TF_CLIP and _is_gradient(ctx, positional(call, 0) or keyword(call, "t")):
                instead = "tf.clip_by_norm / tf.clip_by_global_norm"
            elif qualname in _TORCH_CLAMPS and _is_gradient(ctx, positional(call, 0) or keyword(call, "input")):
                instead = "torch.nn.utils.clip_grad_norm_"
            elif qualname is None and method in _CLAMP_METHODS and isinstance(func, cst.Attribute) \
                    and _is_grad_attribute(func.value):
                instead = "torch.nn.utils.clip_grad_norm_"
            if instead is not None and not _norm_is_an_option(ctx, call):
                ctx.report(call, _MESSAGE.format(instead))


def _norm_is_an_option(ctx: Context, node: cst.CSTNode) -> bool:
    """``if mode == "norm": clip_grad_norm_(...) elif mode == "value": clip_grad_value_(...)``: a user's choice."""
    for ancestor in ctx.facts.ancestors(node):
        if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef, cst.Module)):
            return False
        if isinstance(ancestor, cst.If):
            root = ancestor
            parent = ctx.facts.parent(root)
            while isinstance(parent, cst.If) and parent.orelse is root:
                root, parent = parent, ctx.facts.parent(parent)
            if any(_clips_by_norm(ctx, n) for n in ctx.facts.walk(root)):
                return True
        if isinstance(ancestor, cst.IfExp) and any(_clips_by_norm(ctx, n) for n in ctx.facts.walk(ancestor)):
            return True
    return False


def _clips_by_norm(ctx: Context, node: cst.CSTNode) -> bool:
    if isinstance(node, cst.Arg) and node.keyword is not None:
        return node.keyword.value in ("clipnorm", "global_clipnorm")
    if not isinstance(node, cst.Call):
        return False
    text = ctx.facts.names.qualname(node.func) or dotted_name(node.func) or (
        node.func.attr.value if isinstance(node.func, cst.Attribute) else "")
    return text.rsplit(".", 1)[-1] in _NORM_CLIPS


_NORM_CLIPS = frozenset({"clip_grad_norm_", "clip_grad_norm", "clip_by_norm", "clip_by_global_norm",
                         "adaptive_clip_grad"})


def _is_grad_attribute(expr: cst.BaseExpression) -> bool:
    """``p.grad`` or ``p.grad.data``."""
    if isinstance(expr, cst.Attribute) and expr.attr.value == "data":
        expr = expr.value
    return isinstance(expr, cst.Attribute) and expr.attr.value == "grad"


def _is_gradient(ctx: Context, expr: Optional[cst.BaseExpression]) -> bool:
    if expr is None:
        return False
    if _is_grad_attribute(expr):
        return True
    if not isinstance(expr, cst.Name):
        return False
    if "grad" in expr.value.lower():
        return True
    value = ctx.facts.dataflow.value_of(expr)
    if value is not None and _computes_gradients(ctx, value):
        return True
    iterable = _iterable_of(ctx, expr)
    return iterable is not None and (_mentions_grad(iterable) or _computes_gradients(ctx, iterable))


def _iterable_of(ctx: Context, name: cst.Name) -> Optional[cst.BaseExpression]:
    """What the loop or comprehension binding ``name`` iterates over."""
    for ancestor in ctx.facts.ancestors(name):
        if isinstance(ancestor, _COMPREHENSIONS):
            comp: Optional[cst.CompFor] = ancestor.for_in
            while comp is not None:
                if _binds(comp.target, name.value):
                    return comp.iter
                comp = comp.inner_for_in
        elif isinstance(ancestor, cst.For) and _binds(ancestor.target, name.value):
            return ancestor.iter
        elif isinstance(ancestor, (cst.FunctionDef, cst.Lambda)):
            return None
    return None


def _binds(target: cst.BaseExpression, name: str) -> bool:
    if isinstance(target, cst.Name):
        return target.value == name
    if isinstance(target, (cst.Tuple, cst.List)):
        return any(_binds(e.value, name) for e in target.elements)
    return False


def _mentions_grad(expr: cst.BaseExpression) -> bool:
    if isinstance(expr, cst.Call) and dotted_name(expr.func) == "zip":
        return any(_mentions_grad(arg.value) for arg in expr.args[:1])
    text = dotted_name(expr)
    return text is not None and "grad" in text.rsplit(".", 1)[-1].lower()


def _computes_gradients(ctx: Context, expr: cst.BaseExpression) -> bool:
    """``tape.gradient(loss, vars)``, ``opt.compute_gradients(loss)``, ``tf.gradients(...)``, ``zip(grads, vs)``."""
    if isinstance(expr, cst.Name):
        value = ctx.facts.dataflow.value_of(expr)
        return value is not None and value is not expr and isinstance(value, cst.Call) and \
            _computes_gradients(ctx, value)
    if not isinstance(expr, cst.Call):
        return False
    if dotted_name(expr.func) == "zip" and expr.args:
        first = expr.args[0].value
        return _mentions_grad(first) or _computes_gradients(ctx, first)
    text = ctx.facts.names.qualname(expr.func) or dotted_name(expr.func) or (
        expr.func.attr.value if isinstance(expr.func, cst.Attribute) else "")
    last = text.rsplit(".", 1)[-1]
    return last in ("gradient", "gradients", "compute_gradients", "grad") or text == "torch.autograd.grad"
