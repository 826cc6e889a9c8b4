'''
## What it does
Reports a model that is run after `model.eval()` in the same function (or script) without
gradient tracking turned off. A function named for evaluation (`_validate`) that runs a module on
evaluation data (a loop over `val_loader`, a batch of `self.val_dataset`) with gradients on, and does
not backpropagate, is reported too where nothing in the file switches that model to eval mode
(NN307 reports the missing `eval()`).

Gradients count as off under `with torch.no_grad()`, `with torch.inference_mode()`,
`with torch.set_grad_enabled(False)` (also `set_grad_enabled(phase == "train")`), in a
function decorated with `@torch.no_grad()`/`@torch.inference_mode()`, after a
`torch.set_grad_enabled(False)` statement, and in a function whose every call in the file
is under one of those, directly or through the helpers that call it. A helper method the
evaluation delegates to (`self.model.eval(); self._inner_loop(dl)`) is checked too; the call of
the helper is reported instead when a training step shares the helper, when the model reaches a
same-file function as an argument (`model.eval(); run_epoch(valid_data, model)`; a function named for
evaluation that no training pass shares, `test_net(net, image)`, is fixed inside), or when another
call of the helper (an evaluation hook a subclass implements) is already under `no_grad`. One
function for both passes (`if is_train: model.train() else: model.eval()`) whose gradient uses are
all under `if is_train` is reported at the model run, and so is the validation of a function that
first runs a training pass (its `backward()` comes before `eval()` and never after). Code that needs
gradients after `eval()` (it
calls `backward()`, `torch.autograd.grad` or sets `requires_grad`: saliency maps, adversarial
examples), the `*_step` hooks of Lightning modules (Lightning turns gradients off itself) and unit
tests (a pytest/unittest `test_*.py` file or a `unittest.TestCase` method checking a forward pass)
are not reported.

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

from typing import Optional

import libcst as cst

from nnlint.facts.edits import Edits, module_alias, wrap_evaluation
from nnlint.facts.loops import ModeSwitch, mode_switch, scope_calls
from nnlint.facts.names import dotted_name
from nnlint.facts.nograd import (callers_disable_grad, delegated_runs, gradient_need, lightning_hook,
                                 on_training_branch, unswitched_evaluation)
from nnlint.facts.testcode import in_test_code
from nnlint.rule import Context, Rule

_GRAD_OFF_CALLS = frozenset({"torch.set_grad_enabled", "torch.autograd.set_grad_enabled"})


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
            if isinstance(scope, cst.FunctionDef) and (lightning_hook(facts, scope)
                                                        or facts.loops.decorated_no_grad(scope)):
                continue
            self._check_scope(ctx, scope)
            if isinstance(scope, cst.FunctionDef):  # no eval() at all: evaluation named and fed as such
                unswitched = unswitched_evaluation(facts, scope)
                if unswitched is not None and not in_test_code(facts, unswitched[0]):
                    call, model = unswitched
                    self._report(ctx, call, model, None, "", True, f"{model} is evaluated with gradient tracking "
                                 "on: wrap the evaluation in torch.no_grad() or torch.inference_mode()")

    def _check_scope(self, ctx: Context, scope: cst.CSTNode) -> None:
        facts = ctx.facts
        in_eval: dict[str, ModeSwitch] = {}
        grad_off = False
        needs_gradients: dict[tuple[ModeSwitch, ...], str] = {}
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
            if facts.names.qualname(call.func) in _GRAD_OFF_CALLS and isinstance(facts.parent(call), cst.Expr):
                grad_off = True
                continue
            callee = dotted_name(call.func)
            if callee is None or grad_off or not in_eval or facts.loops.grad_disabled(call):
                continue
            model = callee[: -len(".forward")] if callee.endswith(".forward") else callee
            helper = facts.values.callee(call)
            if model not in in_eval and (helper is None or helper is scope) \
                    or on_training_branch(facts, call, tuple(in_eval.values())):
                continue
            key = tuple(in_eval.values())
            if key not in needs_gradients:
                needs_gradients[key] = gradient_need(facts, scope, key)
            if needs_gradients[key] == "yes" \
                    or callers_disable_grad(facts, scope) or in_test_code(facts, call):
                return
            if model in in_eval:
                # a pass shared with training needs set_grad_enabled(is_train), not no_grad: no fix
                self._report(ctx, call, model, in_eval.pop(model).node, "", needs_gradients[key] == "none")
                continue
            for run in delegated_runs(facts, call, helper, in_eval):  # type: ignore[arg-type]
                if run.inside and in_test_code(facts, run.node):
                    continue
                self._report(ctx, run.node, run.model, in_eval[run.model].node if not run.inside else None,
                             " in the caller" if run.inside else "", needs_gradients[key] == "none")
                if not run.inside:
                    in_eval.pop(run.model, None)

    def _report(self, ctx: Context, call: cst.Call, model: str, switch: Optional[cst.Call], where: str,
                fixable: bool, message: str = "") -> None:
        ctx.report(call, message or f"{model} runs after {model}.eval(){where} with gradient tracking on: wrap the "
                                    "evaluation in torch.no_grad() or torch.inference_mode()",
                   fix=_no_grad_fix(ctx, call, model, switch) if fixable else None,
                   fix_message="Wrap the evaluation in torch.no_grad()",
                   applicability="unsafe")


def _no_grad_fix(ctx: Context, call: cst.Call, model: str, switch: Optional[cst.Call] = None) -> Optional[Edits]:
    """``with torch.no_grad():`` around the evaluation, up to where the model goes back to training mode."""
    def trains(node: cst.CSTNode) -> bool:
        return any((s := mode_switch(c, ctx.facts)) is not None and s.mode == "train" and s.receiver is not None
                   and (model == s.receiver or model.startswith(s.receiver + ".")) for c in ctx.facts.calls(node))

    torch = module_alias(ctx, "torch")
    return wrap_evaluation(ctx, call, switch, trains, f"with {torch}.no_grad():") if torch else None
