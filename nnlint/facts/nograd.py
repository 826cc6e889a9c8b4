"""Evaluation that still records the autograd graph: what a run after ``model.eval()`` needs to know.

* :func:`uses_gradients` - does a function (or script) need gradients (``backward()``, ``torch.autograd.grad``,
  ``requires_grad``)? :func:`gradient_need` tells gradient uses all under the ``if`` that chose training
  mode (``if is_train: model.train() else: model.eval()``) apart: the eval path never reaches them.
* :func:`callers_disable_grad` - every call of a function in the file runs with gradients off.
* :func:`lightning_hook` - a ``*_step`` method that Lightning runs under ``no_grad`` itself.
* :func:`unswitched_evaluation` - a function named for evaluation that runs a module on evaluation data
  with gradients on and never switches it to eval mode
* :func:`delegated_runs` - where an eval-mode model runs through a same-file helper called with it
  (a method using ``self.model``, a function given the model as an argument), and where to report it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

import libcst as cst

from nnlint.facts.loops import ModeSwitch, is_eval_function_name, mode_switch, scope_calls
from nnlint.facts.names import dotted_name

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

_GRADIENT_USES = frozenset({"backward", "grad", "requires_grad", "requires_grad_", "enable_grad", "manual_backward"})
_MAX_CALLER_DEPTH = 4
_LIGHTNING = ("pytorch_lightning", "lightning")
_TORCH_BASES = ("torch.", "builtins.")


@dataclass(frozen=True, eq=False)
class DelegatedRun:
    """An eval-mode ``model`` that runs with gradients on through a helper: report ``node``."""

    node: cst.Call
    model: str
    #: ``node`` is the helper's own call of the model (not the call of the helper)
    inside: bool


def uses_gradients(facts: "FileFacts", scope: cst.CSTNode) -> bool:
    return gradient_need(facts, scope, ()) != "none"


def gradient_need(facts: "FileFacts", scope: cst.CSTNode, switches: Sequence[ModeSwitch]) -> str:
    """Does ``scope`` use gradients with ``switches`` (its models' ``eval()`` calls) in effect: ``"none"``,
    ``"training"`` (only under the ``if`` whose other branch made each of them eval mode, a shared
    train/valid function) or ``"yes"``?"""
    found = "none"
    for node in facts.walk(scope):
        if isinstance(node, cst.Attribute) and node.attr.value in _GRADIENT_USES:
            if _separate_training_loop(facts, node, scope, switches):
                continue  # ``for batch in train_loader: ... loss.backward()`` beside the evaluation
            if not on_training_branch(facts, node, switches):
                return "yes"
            found = "training"
    return found


def _separate_training_loop(facts: "FileFacts", node: cst.CSTNode, scope: cst.CSTNode,
                            switches: Sequence[ModeSwitch]) -> bool:
    """Does the gradient use ``node`` never run after the eval() ``switches``: it comes before them and no
    loop holds both, or it is in a loop of ``scope`` that holds none of them, comes before them and
    trains (``optimizer.step()``): the training pass of an epoch whose evaluation follows?"""
    if not switches:
        return False
    switched = {id(s.node) for s in switches}
    first_switch = min(_order(facts, s.node) for s in switches)

    def holds_switch(loop: cst.CSTNode) -> bool:
        return any(id(call) in switched for call in facts.calls(loop))

    loops = [a for a in facts.ancestors(node) if isinstance(a, (cst.For, cst.While))]
    if _order(facts, node) < first_switch and not any(holds_switch(loop) for loop in loops):
        return True  # set up before the evaluation and never run again (``p.requires_grad = False``)
    for ancestor in facts.ancestors(node):
        if ancestor is scope:
            return False
        if isinstance(ancestor, (cst.For, cst.While)):
            if holds_switch(ancestor):
                return False
            trains = any(isinstance(c.func, cst.Attribute) and c.func.attr.value == "step" for c in facts.calls(ancestor))
            return trains and _order(facts, ancestor) < first_switch
    return False


def _order(facts: "FileFacts", node: cst.CSTNode) -> int:
    """Where ``node`` comes in the file's source order."""
    index = facts._tree.index(node)
    return index if index is not None else -1


def _train_branch(facts: "FileFacts", switch: ModeSwitch) -> Optional[str]:
    """``if is_train: model.train() else: model.eval()``: the text of ``is_train``."""
    statement = facts.parent(facts.parent(switch.node))  # Call <- Expr <- SimpleStatementLine
    block = facts.parent(statement) if isinstance(statement, cst.SimpleStatementLine) else None
    orelse = facts.parent(block) if block is not None else None
    branch = facts.parent(orelse)
    if not (isinstance(orelse, cst.Else) and isinstance(branch, cst.If)):
        return None
    trains = any((s := mode_switch(c, facts)) is not None and s.mode == "train" and s.receiver == switch.receiver
                 for c in facts.calls(branch.body))
    return _text(facts, branch.test) if trains else None


def _under_test(facts: "FileFacts", node: cst.CSTNode, test: str) -> bool:
    """Is ``node`` in the body of an ``if`` whose condition reads ``test``?"""
    child = node
    for ancestor in facts.ancestors(node):
        if isinstance(ancestor, cst.If) and child is ancestor.body and _text(facts, ancestor.test) == test:
            return True
        child = ancestor
    return False


def _text(facts: "FileFacts", expr: cst.BaseExpression) -> str:
    return facts.module.code_for_node(expr).strip()


def callers_disable_grad(facts: "FileFacts", scope: cst.CSTNode, seen: frozenset[cst.CSTNode] = frozenset()) -> bool:
    """Every call of ``scope`` in the file runs with gradients off, directly or through its own callers."""
    if not isinstance(scope, cst.FunctionDef) or scope in seen or len(seen) >= _MAX_CALLER_DEPTH:
        return False
    loops = facts.loops
    sites = loops.call_sites(scope)
    if not sites:
        return False
    for site in sites:
        if not _site_grad_off(facts, site, seen | {scope}):
            return False
    return True


def _site_grad_off(facts: "FileFacts", site: cst.Call, seen: frozenset[cst.CSTNode] = frozenset()) -> bool:
    if facts.loops.grad_disabled(site):
        return True
    # a helper of a helper: `features()` called only from a `@torch.no_grad()` `score()`
    caller = facts.loops.function_of(site)
    return caller is not None and callers_disable_grad(facts, caller, seen)


def lightning_hook(facts: "FileFacts", function: cst.FunctionDef) -> bool:
    """A ``*_step`` method of a Lightning module (or of a class that may be one: its base comes from
    another file); a plain class's ``validation_step`` is the project's own and runs as called."""
    if not function.name.value.endswith("_step"):
        return False
    owner = facts.values.class_of(function)
    params = function.params.params
    # Lightning's hook signature, ``(self, batch, batch_idx)``, in a mixin that names no base
    takes_batch = len(params) > 1 and "batch" in params[1].name.value
    return owner is None or takes_batch or facts.names.imports_any(_LIGHTNING) or _maybe_lightning(facts, owner, 0)


def _maybe_lightning(facts: "FileFacts", owner: cst.ClassDef, depth: int) -> bool:
    for base in owner.bases:
        if base.keyword is not None:
            continue
        name = dotted_name(base.value)
        if name is None or name == "object":
            continue
        local = facts.names.classes.get(name)
        if local is not None:
            if local is not owner and depth < _MAX_CALLER_DEPTH and _maybe_lightning(facts, local, depth + 1):
                return True
            continue
        if not (facts.names.qualname(base.value) or "").startswith(_TORCH_BASES):
            return True
    return False


def delegated_runs(facts: "FileFacts", call: cst.Call, helper: cst.FunctionDef,
                   models: dict[str, ModeSwitch]) -> list[DelegatedRun]:
    """``self.model.eval(); self._inner_loop(dl)`` or ``model.eval(); run_epoch(data, model)``: the runs of
    the eval-mode models in ``helper`` with gradients on. Reported inside the helper, unless a training
    path shares it (its fix belongs at the call) or the model reaches it as an argument."""
    if facts.loops.decorated_no_grad(helper) or uses_gradients(facts, helper):
        return []
    attributes = {m for m in models if m.startswith("self.")}
    found = [DelegatedRun(run, model, True) for run, model in _runs(facts, helper, attributes)]
    if found and _shared_with_training(facts, helper, {r.model for r in found}):
        first = found[0]
        return [DelegatedRun(call, first.model, False)]
    parameters = {param: text for param, text in facts.loops.renames(helper, call).items() if text in models}
    through_parameter = next(_runs(facts, helper, set(parameters)), None)
    if through_parameter is not None:
        run, parameter = through_parameter
        # an inference helper (``test_net(net, image)``) is fixed inside, once for all its callers;
        # another helper (``run_epoch(data, model)``) may serve training too: fixed at the call
        inside = is_eval_function_name(helper.name.value) and not _shared_with_training(facts, helper, {parameters[parameter]})
        found.append(DelegatedRun(run, parameter, True) if inside else DelegatedRun(call, parameters[parameter], False))
    if not found and attributes and is_eval_function_name(helper.name.value) \
            and any(site is not call and _site_grad_off(facts, site) for site in facts.loops.call_sites(helper)):
        # an evaluation hook (maybe overridden elsewhere) that another caller already runs under no_grad
        found.append(DelegatedRun(call, sorted(attributes)[0], False))
    return found


def unswitched_evaluation(facts: "FileFacts", scope: cst.FunctionDef) -> Optional[tuple[cst.Call, str]]:
    """A function named for evaluation (``_validate(epoch)``) that runs a module on evaluation data with
    gradients on, without backpropagating, and whose model no code of the file switches to eval mode
    (where it does, the run after ``eval()`` is found instead): its first such run and the model."""
    name = scope.name.value
    if not is_eval_function_name(name) or name.startswith("test_") or uses_gradients(facts, scope) \
            or callers_disable_grad(facts, scope):
        return None
    evaluation = facts.evaluation
    for call in facts.calls(scope):
        if facts.loops.function_of(call) is not scope or facts.loops.grad_disabled(call) \
                or not evaluation.runs_on_evaluation_data(call):
            continue
        found = evaluation.model_call(call)
        if found is None or evaluation.synthetic_input(call):
            continue
        model, expr = found
        if not evaluation.switched_to_eval(model) and not evaluation.in_model_context(call, model) \
                and evaluation.known_module(model, expr, scope):
            return call, model
    return None


def _runs(facts: "FileFacts", helper: cst.FunctionDef, models: set[str]) -> Iterator[tuple[cst.Call, str]]:
    """The first call of each of ``models`` in ``helper`` that runs with gradients on, before any mode switch."""
    for call in scope_calls(facts, helper):
        switch = mode_switch(call, facts)
        if switch is not None and switch.receiver is not None:
            models = {m for m in models if not (m == switch.receiver or m.startswith(switch.receiver + "."))}
            continue
        name = dotted_name(call.func)
        model = name[: -len(".forward")] if name and name.endswith(".forward") else name
        if model in models and not facts.loops.grad_disabled(call):
            models = models - {model}
            yield call, model


def _shared_with_training(facts: "FileFacts", helper: cst.FunctionDef, models: set[str]) -> bool:
    """Is ``helper`` also called where the model is in training mode (``train_step``: ``train()``, then the helper)?"""
    for site in facts.loops.call_sites(helper):
        caller = facts.loops.function_of(site)
        training = False
        for call in scope_calls(facts, caller) if caller is not None else ():
            if call is site:
                if training:
                    return True
                break
            switch = mode_switch(call, facts)
            if switch is not None and switch.receiver is not None \
                    and any(m == switch.receiver or m.startswith(switch.receiver + ".") for m in models):
                training = switch.mode == "train"
    return False


def on_training_branch(facts: "FileFacts", node: cst.CSTNode, switches: Sequence[ModeSwitch]) -> bool:
    """``if is_train: model.train() else: model.eval()``, then ``if is_train: out = model(x)``: ``node`` only
    runs on the training pass."""
    tests = [_train_branch(facts, s) for s in switches]
    return bool(tests) and all(t is not None and _under_test(facts, node, t) for t in tests)
