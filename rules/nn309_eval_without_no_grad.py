'''
## What it does
Reports a model that is run after `model.eval()` in the same function (or script) without
gradient tracking turned off.

Gradients count as off under `with torch.no_grad()`, `with torch.inference_mode()`,
`with torch.set_grad_enabled(False)` (also `set_grad_enabled(phase == "train")`), in a
function decorated with `@torch.no_grad()`/`@torch.inference_mode()`, after a
`torch.set_grad_enabled(False)` statement, and in a function whose every call in the file
is under one of those, directly or through the helpers that call it. A helper method the
evaluation delegates to (`self.model.eval(); self._inner_loop(dl)`) is checked too. Code that needs
gradients after `eval()` (it calls `backward()`, `torch.autograd.grad` or sets
`requires_grad`: saliency maps, adversarial examples), Lightning `*_step` hooks (Lightning
turns gradients off itself) and unit tests (a pytest/unittest `test_*.py` file or a
`unittest.TestCase` method checking a forward pass) are not reported.

## Why is this bad?
`model.eval()` only switches dropout and batch normalisation to inference behaviour; it
does not stop autograd. Every forward pass still records the graph and keeps the
activations needed for a backward pass that never comes: evaluation uses several times
the memory it needs (large validation batches run out of GPU memory), runs slower, and
results accumulated across batches keep their graphs alive.

## Example
```python
import torch
import torch.nn.functional as F


def evaluate(model, loader):
    model.eval()
    total = 0.0
    for inputs, targets in loader:
        output = model(inputs)  # NN309
        total += F.cross_entropy(output, targets).item()
    return total / len(loader)
```

## Use instead
```python
import torch
import torch.nn.functional as F


@torch.no_grad()
def evaluate(model, loader):
    model.eval()
    total = 0.0
    for inputs, targets in loader:
        output = model(inputs)
        total += F.cross_entropy(output, targets).item()
    return total / len(loader)
```

## Fix safety
The fix wraps the evaluation in `with torch.no_grad():`: the statement that runs the model (or
the loop holding it, in the block of `model.eval()`) and the statements after it in that block, up
to one that calls `model.train()`, are indented one level under the `with`. It is unsafe: code in
the wrapped statements that needs gradients (an adversarial example, a saliency map) would lose
them. There is no fix when the file does not `import torch` or a multi-line string is in the
wrapped statements (re-indenting would change its value).

## Source
Seed 002_1779c8f13c5dbb22.txt and seed 004_81a3f3f84632e452.txt separate the training
phase from testing and prediction, where the network is only evaluated; seed
003_1540c0685162747f.txt shows that gradients are only needed for the training step
(`loss.backward()` followed by `optimizer.step()`). Evaluation after `model.eval()` does no
backward pass, so recording the graph for it only costs memory and time.

In short: Evaluate under `torch.no_grad()` (or `torch.inference_mode()`), so no graph is recorded.
Public reference: PyTorch documentation, `torch.no_grad`,
https://pytorch.org/docs/stable/generated/torch.no_grad.html, and "Autograd mechanics: locally
disabling gradient computation",
https://pytorch.org/docs/stable/notes/autograd.html#locally-disabling-gradient-computation.
'''
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import libcst as cst

from nnlint.facts.edits import Edits, module_alias, wrap_evaluation
from nnlint.facts.loops import ModeSwitch, mode_switch, scope_calls
from nnlint.facts.names import dotted_name
from nnlint.facts.testcode import in_test_code
from nnlint.rule import Context, Rule

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

_GRADIENT_USES = frozenset({"backward", "grad", "requires_grad", "requires_grad_", "enable_grad", "manual_backward"})
_GRAD_OFF_CALLS = frozenset({"torch.set_grad_enabled", "torch.autograd.set_grad_enabled"})
_MAX_CALLER_DEPTH = 4


class EvalWithoutNoGrad(Rule):
    code = "NN309"
    name = "eval-without-no-grad"
    severity = "warning"
    default = True
    fixable = True
    options = {}

    def check(self, ctx: Context) -> None:
        facts = ctx.facts
        scopes: list[cst.CSTNode] = [facts.module]
        scopes.extend(facts.nodes_of(cst.FunctionDef))
        for scope in scopes:
            if isinstance(scope, cst.FunctionDef) and (scope.name.value.endswith("_step")
                                                        or facts.loops.decorated_no_grad(scope)):
                continue
            self._check_scope(ctx, scope)

    def _check_scope(self, ctx: Context, scope: cst.CSTNode) -> None:
        facts = ctx.facts
        in_eval: dict[str, ModeSwitch] = {}
        grad_off = False
        uses_gradients: Optional[bool] = None
        for call in scope_calls(facts, scope):
            switch = mode_switch(call, facts)
            if switch is not None:
                if switch.receiver is None:
                    continue
                if switch.mode == "eval":
                    in_eval[switch.receiver] = switch
                else:
                    in_eval = {r: s for r, s in in_eval.items()
                               if not (r == switch.receiver or r.startswith(switch.receiver + "."))}
                continue
            if facts.names.qualname(call.func) in _GRAD_OFF_CALLS and _is_statement(facts, call):
                grad_off = True
                continue
            callee = dotted_name(call.func)
            if callee is None or grad_off:
                continue
            helper = facts.values.callee(call) if any(r.startswith("self.") for r in in_eval) else None
            if helper is not None and helper is not scope and not facts.loops.grad_disabled(call):
                if uses_gradients is None:
                    uses_gradients = _uses_gradients(facts, scope)
                if not uses_gradients and not _callers_disable_grad(ctx, scope):
                    # ``self.model.eval(); self._inner_loop(dl)``: the helper runs the model in eval mode
                    self._check_helper(ctx, helper, {r for r in in_eval if r.startswith("self.")})
            model = callee[: -len(".forward")] if callee.endswith(".forward") else callee
            if model not in in_eval or facts.loops.grad_disabled(call):
                continue
            if uses_gradients is None:
                uses_gradients = _uses_gradients(facts, scope)
            if uses_gradients or _callers_disable_grad(ctx, scope) or in_test_code(facts, call):
                return
            switch = in_eval.pop(model)
            ctx.report(call, f"{model} runs after {model}.eval() with gradient tracking on: wrap the "
                             "evaluation in torch.no_grad() or torch.inference_mode()",
                       fix=_no_grad_fix(ctx, call, model, switch.node),
                       fix_message="Wrap the evaluation in torch.no_grad()",
                       applicability="unsafe")


    def _check_helper(self, ctx: Context, helper: cst.FunctionDef, models: set[str]) -> None:
        """The first call of each of ``models`` (``self.model``, still in eval mode from the caller)
        in a helper method that neither switches it back nor needs gradients."""
        facts = ctx.facts
        if not models or facts.loops.decorated_no_grad(helper) or _uses_gradients(facts, helper):
            return
        for call in scope_calls(facts, helper):
            switch = mode_switch(call, facts)
            if switch is not None and switch.receiver is not None:
                models = {m for m in models if not (m == switch.receiver or m.startswith(switch.receiver + "."))}
                continue
            name = dotted_name(call.func)
            model = name[: -len(".forward")] if name and name.endswith(".forward") else name
            if model in models and not facts.loops.grad_disabled(call) and not in_test_code(facts, call):
                models.discard(model)
                ctx.report(call, f"{model} runs after {model}.eval() in the caller with gradient tracking on: "
                                 "wrap the evaluation in torch.no_grad() or torch.inference_mode()",
                           fix=_no_grad_fix(ctx, call, model), fix_message="Wrap the evaluation in torch.no_grad()",
                           applicability="unsafe")


def _is_statement(facts: "FileFacts", call: cst.Call) -> bool:
    return isinstance(facts.parent(call), cst.Expr)


def _uses_gradients(facts: "FileFacts", scope: cst.CSTNode) -> bool:
    for node in facts.walk(scope):
        if isinstance(node, cst.Attribute) and node.attr.value in _GRADIENT_USES:
            return True
    return False


def _callers_disable_grad(ctx: Context, scope: cst.CSTNode, seen: frozenset[cst.CSTNode] = frozenset()) -> bool:
    """Every call of ``scope`` in the file runs with gradients off, directly or through its own callers."""
    if not isinstance(scope, cst.FunctionDef) or scope in seen or len(seen) >= _MAX_CALLER_DEPTH:
        return False
    loops = ctx.facts.loops
    sites = loops.call_sites(scope)
    if not sites:
        return False
    for site in sites:
        if loops.grad_disabled(site):
            continue
        # a helper of a helper: `features()` called only from a `@torch.no_grad()` `score()`
        caller = loops.function_of(site)
        if caller is None or not _callers_disable_grad(ctx, caller, seen | {scope}):
            return False
    return True


def _no_grad_fix(ctx: Context, call: cst.Call, model: str, switch: Optional[cst.Call] = None) -> Optional[Edits]:
    """``with torch.no_grad():`` around the evaluation, up to where the model goes back to training mode."""
    def trains(node: cst.CSTNode) -> bool:
        return any((s := mode_switch(c, ctx.facts)) is not None and s.mode == "train" and s.receiver is not None
                   and (model == s.receiver or model.startswith(s.receiver + ".")) for c in ctx.facts.calls(node))

    torch = module_alias(ctx, "torch")
    return wrap_evaluation(ctx, call, switch, trains, f"with {torch}.no_grad():") if torch else None
