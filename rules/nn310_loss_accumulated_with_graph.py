'''
## What it does
Reports `total += loss` across loop iterations where `loss` is a loss tensor that still
carries its autograd graph, instead of `loss.item()`.

A loss tensor is the result of a criterion (`criterion(out, y)` with
`criterion = nn.CrossEntropyLoss()`, or a function named like `criterion`/`loss_fn`), of a
functional loss (`F.cross_entropy(...)`, `F.mse_loss(...)`), a model output's `.loss`, or any
tensor the loop calls `.backward()` on (`loss, mse = my_loss(...); loss.backward()`).
`total` must be set before the loop and never backpropagated itself (summing losses of
micro-batches to call `total.backward()` once is correct), and the sum must not run under
`torch.no_grad()`/`inference_mode()`, where there is no graph to keep.

## Why is this bad?
Adding a tensor that requires grad to `total` makes `total` a tensor whose graph holds
every iteration's graph, with all activations saved for backward. Memory grows with each
batch until the epoch ends or the GPU runs out of memory, and every logging line that
reads `total` forces a device sync. `loss.item()` turns the value into a Python float and
lets each iteration's graph be freed.

## Example
```python
import torch.nn as nn

criterion = nn.CrossEntropyLoss()
running_loss = 0.0
for inputs, labels in loader:
    optimizer.zero_grad()
    loss = criterion(model(inputs), labels)
    loss.backward()
    optimizer.step()
    running_loss += loss  # NN310
print(running_loss / len(loader))
```

## Use instead
```python
import torch.nn as nn

criterion = nn.CrossEntropyLoss()
running_loss = 0.0
for inputs, labels in loader:
    optimizer.zero_grad()
    loss = criterion(model(inputs), labels)
    loss.backward()
    optimizer.step()
    running_loss += loss.item()
print(running_loss / len(loader))
```

## Fix safety
The fix replaces `loss` by `loss.item()`. It is unsafe: `total` becomes a Python float,
which is right when it is only logged or averaged, but code that later treats `total` as
a tensor (`total.device`, `torch.stack`, `total.backward()` in another file) breaks.

## Source
Seed 003_1540c0685162747f.txt, "每个批量数据训练都要执行的代码流程" (the code every batch must
run): the loss of the batch is added to the total as `train_loss += loss.item()`
("将该批次的损失加到总损失中", add this batch's loss to the total loss).

In short: Accumulate `loss.item()` (or `loss.detach()`), not the loss tensor itself. Public
reference: PyTorch FAQ, "Don't accumulate history across your training loop",
https://pytorch.org/docs/stable/notes/faq.html.
'''
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

import libcst as cst

from nnlint.facts.names import dotted_name
from nnlint.facts.tensors import original_text
from nnlint.rule import Context, Rule

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

_LOSS_FUNCTION_NAME = re.compile(r"(.*_)?(criterion|loss_?fn|loss_?func(tion)?|compute_loss)(_.*)?", re.I)
_FUNCTIONAL_LOSSES = frozenset({"cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
                                "kl_div", "poisson_nll_loss", "gaussian_nll_loss", "ctc_loss", "cosine_embedding_loss",
                                "hinge_embedding_loss", "margin_ranking_loss", "triplet_margin_loss"})


class LossAccumulatedWithGraph(Rule):
    code = "NN310"
    name = "loss-accumulated-with-graph"
    severity = "warning"
    default = True
    fixable = True
    options = {}

    def check(self, ctx: Context) -> None:
        facts = ctx.facts
        for node in facts.nodes_of(cst.AugAssign):
            if not (isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.AddAssign)
                    and isinstance(node.target, cst.Name)):
                continue
            loss = _loss_operand(ctx, node.value)
            if loss is None or not _accumulates_across_iterations(ctx, node):
                continue
            name = node.target.value
            ctx.report(
                node,
                f"{name} += a loss tensor keeps every iteration's autograd graph alive; add loss.item()",
                fix=[(loss, f"{original_text(ctx, loss)}.item()")],
                fix_message=f"Accumulate {original_text(ctx, loss)}.item()",
                applicability="unsafe",
            )


def _loss_operand(ctx: Context, value: cst.BaseExpression) -> Optional[cst.BaseExpression]:
    """The loss-tensor expression being added (``loss`` in ``total += loss * n``), else ``None``."""
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, (cst.Multiply, cst.Divide)):
        if _is_loss(ctx, value.left, 0):
            return value.left
        if isinstance(value.operator, cst.Multiply) and _is_loss(ctx, value.right, 0):
            return value.right
        return None
    return value if _is_loss(ctx, value, 0) else None


def _is_loss(ctx: Context, expr: Optional[cst.BaseExpression], depth: int) -> bool:
    if expr is None or depth > 4:
        return False
    if isinstance(expr, cst.Name):
        return _is_loss(ctx, ctx.facts.dataflow.value_of(expr), depth + 1) or _backpropagated(ctx, expr)
    if isinstance(expr, cst.Attribute):
        # HuggingFace-style outputs.loss
        return expr.attr.value == "loss" and isinstance(expr.value, cst.Name) and expr.value.value != "self"
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, (cst.Divide, cst.Multiply, cst.Add)):
        # loss / accumulation_steps, loss_a + loss_b
        return _is_loss(ctx, expr.left, depth + 1) or _is_loss(ctx, expr.right, depth + 1)
    if not isinstance(expr, cst.Call):
        return False
    qualname = ctx.facts.names.qualname(expr.func)
    if qualname is not None:
        if qualname.startswith("torch.nn.functional."):
            last = qualname.rsplit(".", 1)[-1]
            return last in _FUNCTIONAL_LOSSES or last.endswith("_loss")
        return False
    callee = dotted_name(expr.func)
    if callee is None:
        return False
    if _LOSS_FUNCTION_NAME.fullmatch(callee.rsplit(".", 1)[-1]):
        return True
    constructor = _constructor(ctx, expr.func)
    if constructor is None:
        return False
    built = ctx.facts.names.qualname(constructor.func)
    return built is not None and built.startswith("torch.nn.") and built.endswith("Loss")


def _backpropagated(ctx: Context, name: cst.Name) -> bool:
    """``loss.backward()`` on the same binding of the name (``loss, mse = loss_fn(...)``): whatever
    computed it, it is a tensor that carries its graph."""
    dataflow = ctx.facts.dataflow
    reaching = {id(d.statement) for d in dataflow.definitions(name)}
    if not reaching:
        return False
    scope = dataflow.scope_of(name)
    for call in ctx.facts.calls(scope) if scope is not None else ():
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value == "backward" and isinstance(func.value, cst.Name) \
                and func.value.value == name.value and dataflow.scope_of(call) is scope \
                and {id(d.statement) for d in dataflow.definitions(func.value)} == reaching:
            return True
    return False


def _constructor(ctx: Context, func: cst.BaseExpression) -> Optional[cst.Call]:
    if isinstance(func, cst.Name):
        value = ctx.facts.dataflow.value_of(func)
        return value if isinstance(value, cst.Call) else None
    return None


def _accumulates_across_iterations(ctx: Context, node: cst.AugAssign) -> bool:
    """``total`` is set before the enclosing loop, kept across its iterations, never backpropagated."""
    facts = ctx.facts
    loop: Optional[cst.CSTNode] = None
    for ancestor in facts.ancestors(node):
        if isinstance(ancestor, (cst.For, cst.While)):
            loop = ancestor
            break
        if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            return False
    if loop is None or facts.loops.grad_disabled(node):
        return False
    scope = facts.dataflow.scope_of(node)
    if scope is None:
        return False
    name = node.target.value  # type: ignore[attr-defined]
    inside = set(facts.walk(loop))
    definitions = facts.dataflow.assignments(scope, name)
    if any(d.statement in inside and not isinstance(d.statement, cst.AugAssign) for d in definitions):
        return False  # reset inside the loop: a per-iteration sum
    if not any(d.statement not in inside and d.value is not None for d in definitions):
        return False
    derived = _derived_names(facts, scope, name)
    for other in facts.walk(scope):
        if isinstance(other, cst.Call) and isinstance(other.func, cst.Attribute) and other.func.attr.value == "backward":
            if _mentions(facts, other.func.value, derived):
                return False
        if isinstance(other, cst.Call) and facts.names.qualname(other.func) in ("torch.autograd.backward",
                                                                                   "torch.autograd.grad"):
            if _mentions(facts, other, derived):
                return False
        if isinstance(other, (cst.Return, cst.Yield)) and other.value is not None and _mentions(facts, other.value,
                                                                                                derived):
            return False
    return True


def _derived_names(facts: "FileFacts", scope: cst.CSTNode, name: str) -> set[str]:
    """``name`` and every local assigned from an expression using it (``total_loss = content + style``)."""
    derived = {name}
    assignments = [n for n in facts.walk(scope) if isinstance(n, cst.Assign)]
    changed = True
    while changed:
        changed = False
        for assignment in assignments:
            if not _mentions(facts, assignment.value, derived):
                continue
            for target in assignment.targets:
                for node in facts.walk(target.target):
                    if isinstance(node, cst.Name) and node.value not in derived:
                        derived.add(node.value)
                        changed = True
    return derived


def _mentions(facts: "FileFacts", expr: cst.CSTNode, names: set[str]) -> bool:
    return any(isinstance(n, cst.Name) and n.value in names for n in facts.walk(expr))
