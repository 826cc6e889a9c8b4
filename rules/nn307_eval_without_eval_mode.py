'''
## What it does
Reports evaluation code that runs a model with dropout or batch normalisation while the
model is still in training mode.

The model counts as in eval mode after `model.eval()` earlier in the function (also through
a local alias: `model = context.model; model.eval()`), or before every call of that function.

Evaluation code is a function named like `evaluate`/`validate`/`test`/`estimate_loss`, a
model call under `torch.no_grad()`/`inference_mode()` outside the training loop and in
code that never calls `backward()`, or a model fed a batch of evaluation data (`points, y =
next(iter(test_loader))` every few steps inside the training loop) in a block that does not
backpropagate it (test-time adaptation trains on test data on purpose). The model must be known to contain dropout or batch
normalisation (a model class or `nn.Sequential` of this project, or a torchvision
constructor); `model.eval()` ... `model.train()` around the evaluation (nanoGPT's
`estimate_loss`) is correct, and so is a shape smoke test that feeds the model made-up
tensors (`net(torch.randn(1, 3, 32, 32))` in a `test()` helper of a model file), as are unit
tests (a pytest/unittest `test_*.py` file or a `unittest.TestCase` method).

## Why is this bad?
In training mode dropout zeroes random units and batch normalisation normalises with the
statistics of the current batch (and updates its running averages with evaluation data).
Validation metrics computed that way are noisy, pessimistic and depend on the batch size;
test predictions are not reproducible; and BN's running statistics are polluted with
evaluation data. `torch.no_grad()` does not change any of this: it only turns off autograd.

## Example
```python
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(256, 10)

    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


def evaluate(model, loader):
    correct = 0
    with torch.no_grad():
        for inputs, targets in loader:
            correct += (model(inputs).argmax(1) == targets).sum().item()  # NN307
    return correct


model = Net()
print(evaluate(model, test_loader))
```

## Use instead
```python
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(256, 10)

    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


def evaluate(model, loader):
    model.eval()
    correct = 0
    with torch.no_grad():
        for inputs, targets in loader:
            correct += (model(inputs).argmax(1) == targets).sum().item()
    return correct


model = Net()
print(evaluate(model, test_loader))
```

## Fix safety
The fix inserts `model.eval()` above the outermost statement of the evaluation (a `with
torch.no_grad():` block or loop over the evaluation data, never the training loop) and
`model.train()` below it, so the model is back in the mode it was in. It is unsafe: the evaluation
results change (dropout off, batch norm running statistics used), which is the point, but a
`model.train()` placed below a statement that hands the model to other code could come later than
that code expects. There is no fix when the statement can leave early (`return`, `break`, `raise`),
which would skip `model.train()`.

## Source
Seed 002_1779c8f13c5dbb22.txt: no dropout at test and prediction time ("测试和预测阶段是不能
dropout的"), and batch normalisation uses the moving averages at test time, switched by
`is_training`. Seed 004_81a3f3f84632e452.txt: dropout is active only in the training phase
and removed when predicting. Seed 000_15ef46e869a43bad.txt: after training, dropout does
nothing. In PyTorch that switch is `model.eval()`.

In short: Call `model.eval()` before evaluating and `model.train()` before training again. Public
reference: PyTorch documentation, `torch.nn.Module.eval` (dropout and batch norm behave differently
in evaluation), https://pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.eval.
'''
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

import libcst as cst

from nnlint.facts.edits import around
from nnlint.facts.loops import is_eval_function_name, mode_switch, rename, scope_calls
from nnlint.facts.names import dotted_name, positional
from nnlint.facts.testcode import in_test_code
from nnlint.rule import Context, Rule

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts.models import ModelSummary

_MAX_DEPTH = 3


class EvalWithoutEvalMode(Rule):
    code = "NN307"
    name = "eval-without-eval-mode"
    severity = "warning"
    default = True
    fixable = True
    options = {}

    def check(self, ctx: Context) -> None:
        facts = ctx.facts
        loops = facts.loops
        training_nodes = {t.node for t in loops.training_loops} | set(loops.outer_loops)
        reported: set[tuple[int, str]] = set()
        backward_scopes: dict[cst.CSTNode, bool] = {}  # one walk per scope, not per call
        for call in facts.calls():
            model = dotted_name(call.func)
            if model is None:
                continue
            model_expr = call.func
            for method in _INFERENCE_METHODS:
                if model.endswith(method) and isinstance(call.func, cst.Attribute):
                    model, model_expr = model[: -len(method)], call.func.value
                    break
            scope = loops.function_of(call)
            key = (id(scope), model)
            if key in reported or not _in_evaluation(ctx, call, scope, training_nodes, backward_scopes):
                continue
            if _synthetic_input(ctx, call) or in_test_code(facts, call):
                continue
            summaries = _model_summaries(ctx, model_expr, scope, 0)
            mode = _mode_at(ctx, call, scope, model, 0)
            if mode == "unknown" and _trained_here_never_evaluated(ctx, model):
                mode = "train"  # callers from other files: but this file trains it and never calls eval()
            if summaries is None:
                # A model nnlint cannot see (a library model, one built in another file): the
                # evidence is the program itself, which puts this model in training mode
                # (``model.train()``) on the way here and never back in eval mode.
                if mode != "train" or not (_put_in_training_mode(ctx, model)
                                           or _trained_here_never_evaluated(ctx, model)) \
                        or not _named_or_looping_like_evaluation(ctx, call, scope, training_nodes, backward_scopes):
                    continue
                message = f"{model} was put in training mode and is evaluated without {model}.eval()"
            else:
                if not all(s.has_dropout or s.has_batchnorm for s in summaries) or mode not in ("train", "none"):
                    continue
                layers = " and ".join(k for k, on in (
                    ("dropout", all(s.has_dropout for s in summaries)),
                    ("batch norm", all(s.has_batchnorm for s in summaries))) if on) or "dropout or batch norm"
                message = f"{model} has {layers} but is evaluated in training mode: call {model}.eval() first"
            reported.add(key)
            ctx.report(call, message, fix=around(ctx, call, training_nodes, f"{model}.eval()", f"{model}.train()",
                                                  lambda node: _calls_backward(ctx, node, backward_scopes)),
                       fix_message=f"Call {model}.eval() before the evaluation and {model}.train() after it",
                       applicability="unsafe")


#: ``model.generate(x)`` and ``model.forward(x)`` run the model ``model``
_INFERENCE_METHODS = (".forward", ".generate")
#: functions that evaluate or predict: ``evaluate``, ``run_validation``, ``predict``, ``inference``
_EVALUATION_NAME = re.compile(r"(^|_)(eval|evaluate|evaluation|valid|validate|validation|val|test|predict|"
                              r"prediction|infer|inference)($|_)", re.I)
#: names of evaluation data: ``test_loader``, ``val_dl``, ``loaders["valid"]``, ``dev_set``
_EVALUATION_DATA = re.compile(r"(^|[\s_'\"])(test|val|valid|validation|eval|dev)(_|[\s'\"]|loader|set|data|$)", re.I)
_SYNTHETIC = frozenset({"torch.randn", "torch.rand", "torch.randint", "torch.zeros", "torch.ones",
                        "torch.empty", "torch.full", "torch.randn_like", "torch.rand_like"})


def _synthetic_input(ctx: Context, call: cst.Call) -> bool:
    """``net(torch.randn(1, 3, 32, 32))``: a shape smoke test on made-up data, not an evaluation."""
    inputs = [arg.value for arg in call.args if not arg.star]
    if not inputs:
        return False
    for value in inputs:
        if isinstance(value, cst.Name):
            value = ctx.facts.dataflow.value_of(value) or value
        if not (isinstance(value, cst.Call) and ctx.facts.names.qualname(value.func) in _SYNTHETIC):
            return False
    return True


def _in_evaluation(ctx: Context, call: cst.Call, scope: Optional[cst.FunctionDef],
                   training_nodes: set[cst.CSTNode], backward_scopes: dict[cst.CSTNode, bool]) -> bool:
    loops = ctx.facts.loops
    if _fed_evaluation_data(ctx, call, backward_scopes):
        return True  # ``next(iter(test_loader))`` every few training steps
    if scope is not None:
        name = scope.name.value
        if name.endswith("_step") or name == "forward":
            return False
        if _over_evaluation_data(ctx, call, training_nodes, backward_scopes):
            return True  # ``for x, y in test_loader: model(x)`` after the training loop
        if _calls_backward(ctx, scope, backward_scopes):
            return False
        if is_eval_function_name(name) and not name.startswith("test_"):
            return True
    elif _over_evaluation_data(ctx, call, training_nodes, backward_scopes):
        return True
    elif _calls_backward(ctx, ctx.facts.module, backward_scopes):
        return False
    if not loops.grad_disabled(call):
        return False
    return not any(ancestor in training_nodes for ancestor in ctx.facts.ancestors(call))


def _over_evaluation_data(ctx: Context, call: cst.Call, training_nodes: set[cst.CSTNode],
                          backward_scopes: dict[cst.CSTNode, bool]) -> bool:
    """Is ``call`` in a loop over evaluation data (``test_loader``, ``loaders["val"]``) that trains nothing?"""
    for ancestor in ctx.facts.ancestors(call):
        if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            return False
        if isinstance(ancestor, cst.For):
            if ancestor in training_nodes or _calls_backward(ctx, ancestor, backward_scopes):
                return False
            words = ctx.facts.nodes_of(cst.Name, cst.SimpleString, within=ancestor.iter)
            text = " ".join(word.value for word in words)  # type: ignore[attr-defined]
            if _EVALUATION_DATA.search(text):
                return True
    return False


def _fed_evaluation_data(ctx: Context, call: cst.Call, backward_scopes: dict[cst.CSTNode, bool]) -> bool:
    """Does the model's input come from evaluation data (``points, target = next(iter(test_loader))``
    then ``model(points.cuda())``), in a block that does not backpropagate (test-time adaptation
    trains on test data on purpose)?"""
    block = next((a for a in ctx.facts.ancestors(call) if isinstance(a, cst.IndentedBlock)), None)
    if not call.args or call.args[0].star or (block is not None and _calls_backward(ctx, block, backward_scopes)):
        return False
    dataflow = ctx.facts.dataflow
    pending: list[Optional[cst.BaseExpression]] = [call.args[0].value]
    seen: set[int] = set()
    while pending and len(seen) < 32:
        expr = pending.pop()
        if expr is None or id(expr) in seen:
            continue
        seen.add(id(expr))
        # follow the data only (``points.cuda()``, ``Variable(points)``, ``next(iter(loader))``),
        # never the other arguments (``x.to(dev)``)
        if isinstance(expr, cst.Name):
            if _EVALUATION_DATA.search(expr.value):
                return True
            for definition in dataflow.definitions(expr):
                statement = definition.statement
                pending.append(definition.value if definition.value is not None else definition.unpacked)
                pending.append(statement.iter if isinstance(statement, cst.For) else None)
        elif isinstance(expr, (cst.Attribute, cst.Subscript)):
            pending.append(expr.value)
        elif isinstance(expr, cst.Call):
            method = isinstance(expr.func, cst.Attribute) and ctx.facts.names.qualname(expr.func) is None
            pending.append(expr.func.value if method else positional(expr, 0))  # type: ignore[attr-defined]
        elif isinstance(expr, cst.Tuple):
            pending.extend(element.value for element in expr.elements)
    return False


def _calls_backward(ctx: Context, scope: cst.CSTNode, cache: dict[cst.CSTNode, bool]) -> bool:
    if scope not in cache:
        cache[scope] = _walk_calls_backward(ctx, scope)
    return cache[scope]


def _walk_calls_backward(ctx: Context, scope: cst.CSTNode) -> bool:
    return any(n.attr.value in ("backward", "grad", "requires_grad_", "requires_grad")  # type: ignore[attr-defined]
               for n in ctx.facts.nodes_of(cst.Attribute, within=scope))


def _model_summaries(ctx: Context, expr: cst.BaseExpression, scope: Optional[cst.FunctionDef],
                     depth: int) -> Optional[tuple["ModelSummary", ...]]:
    """The models ``expr`` may be; a parameter is followed to the arguments of the function's calls."""
    found = ctx.facts.models.candidates(expr)
    if found is not None or depth >= _MAX_DEPTH or scope is None or not isinstance(expr, cst.Name):
        return found
    loops = ctx.facts.loops
    for site in loops.call_sites(scope):
        argument_text = loops.renames(scope, site).get(expr.value)
        if argument_text is None:
            continue
        argument_expr = _argument_expression(site, argument_text)
        if argument_expr is None:
            continue
        found = _model_summaries(ctx, argument_expr, loops.function_of(site), depth + 1)
        if found is not None and all(s.has_dropout or s.has_batchnorm for s in found):
            return found
    return None


def _named_or_looping_like_evaluation(ctx: Context, call: cst.Call, scope: Optional[cst.FunctionDef],
                                      training_nodes: set[cst.CSTNode],
                                      backward_scopes: dict[cst.CSTNode, bool]) -> bool:
    """Stronger evidence for a model nnlint cannot see: a function named for evaluation or
    prediction, or a loop over evaluation data (``torch.no_grad()`` alone also fills memory banks
    and computes statistics in training mode on purpose)."""
    if scope is not None and _EVALUATION_NAME.search(scope.name.value):
        return True
    return _over_evaluation_data(ctx, call, training_nodes, backward_scopes)


def _trained_here_never_evaluated(ctx: Context, model: str) -> bool:
    """Is ``model`` a module this file trains (a training loop runs it, and its ``.parameters()``
    are taken) while nothing in the file ever switches it to eval mode?"""
    facts = ctx.facts
    last = model.rsplit(".", 1)[-1]
    has_parameters = False
    for call in facts.calls():
        switch = mode_switch(call, facts)
        if switch is not None and switch.mode == "eval" and (switch.receiver or "").rsplit(".", 1)[-1] == last:
            return False
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value in ("parameters", "named_parameters") \
                and dotted_name(func.value) == model:
            has_parameters = True
    return has_parameters and any(event.kind == "call" and event.receiver == model
                                  for loop in facts.loops.training_loops for event in loop.events)


def _put_in_training_mode(ctx: Context, model: str) -> bool:
    """Does the file call ``<model>.train()`` (spelled ``model``, ``self.model`` or ``net.model``)?"""
    facts = ctx.facts
    last = model.rsplit(".", 1)[-1]
    for call in facts.calls():
        switch = mode_switch(call, facts)
        if switch is not None and switch.mode == "train" and switch.receiver \
                and switch.receiver.rsplit(".", 1)[-1] == last:
            return True
    return False


def _argument_expression(site: cst.Call, text: str) -> Optional[cst.BaseExpression]:
    for arg in site.args:
        if dotted_name(arg.value) == text:
            return arg.value
    return None


def _mode_at(ctx: Context, node: cst.CSTNode, scope: Optional[cst.FunctionDef], model: str, depth: int) -> str:
    """"eval" | "train" | "none" (top of the program, never switched) | "unknown" at ``node`` for ``model``."""
    facts = ctx.facts
    last: Optional[str] = None
    for call in scope_calls(facts, scope if scope is not None else facts.module):
        if call is node:
            break
        switch = mode_switch(call, facts)
        if switch is not None and (_covers(switch.receiver, model) or _covers(switch.alias, model)):
            last = switch.mode
    if last is not None:
        return last
    if scope is None or _is_local(ctx, scope, model):
        # a model built in this scope starts in training mode
        return "none"
    if depth >= _MAX_DEPTH:
        return "unknown"
    loops = facts.loops
    sites = loops.call_sites(scope)
    if not sites:
        return "unknown"
    results: set[str] = set()
    for site in sites:
        renamed = rename(model, loops.renames(scope, site))
        if renamed is None:
            return "unknown"
        results.add(_mode_at(ctx, site, loops.function_of(site), renamed, depth + 1))
    if "unknown" in results:
        return "unknown"
    if results & {"train", "none"}:
        return "train"
    return "eval"


def _is_local(ctx: Context, scope: cst.FunctionDef, model: str) -> bool:
    head = model.split(".")[0]
    params = {p.name.value for p in (*scope.params.posonly_params, *scope.params.params, *scope.params.kwonly_params)}
    return head not in params and any(d.value is not None for d in ctx.facts.dataflow.assignments(scope, head))


def _covers(receiver: Optional[str], model: str) -> bool:
    if receiver is None:
        return False
    return receiver == model or model.startswith(receiver + ".")

