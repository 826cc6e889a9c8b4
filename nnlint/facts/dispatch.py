"""Helpers that dispatch on the object's state: which branch of one method goes with which of another.

A model class often keeps its task in an attribute and lets small methods branch on it::

    def _activation_fn(self, inp):
        if self.method == "binary":
            return torch.sigmoid(inp)
        return inp

    def _loss_fn(self, y_pred, y_true):
        if self.method == "binary":
            return F.binary_cross_entropy(y_pred, y_true)
        ...

    def _training_step(self, x, y):
        return self._loss_fn(self._activation_fn(self.forward(x)), y)

Taken alone, each method may return anything; together, the loss under ``self.method == "binary"``
only ever sees what ``_activation_fn`` returns under the same test. :func:`matching_returns`
answers that for a parameter of a method: what the calls of the method in this file pass for it,
through same-class helpers, keeping the returns that the guards of a node in the method allow.
Guards are compared by source text and only when they read ``self`` (the same object's state at
both places); anything else is unknown (``None``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import libcst as cst

from nnlint.facts.names import keyword, positional

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

_MAX_CALLS = 8


def guards(facts: "FileFacts", node: cst.CSTNode, function: cst.FunctionDef) -> dict[str, bool]:
    """The ``if`` tests on ``self`` that hold (``True``) or fail (``False``) wherever ``node`` runs in
    ``function``: enclosing ``if``/``else`` branches, and earlier ``if T: ... return`` at the same level."""
    code = facts.module.code_for_node
    found: dict[str, bool] = {}
    child: cst.CSTNode = node
    for ancestor in facts.ancestors(node):
        if isinstance(ancestor, cst.If) and _reads_self(facts, ancestor.test):
            if child is ancestor.body:
                found.setdefault(code(ancestor.test), True)
            elif child is ancestor.orelse:
                found.setdefault(code(ancestor.test), False)
        if isinstance(ancestor, (cst.IndentedBlock, cst.Module)):
            for statement in ancestor.body:
                if statement is child:
                    break
                if isinstance(statement, cst.If) and statement.orelse is None and _reads_self(facts, statement.test) \
                        and _ends_in_return(statement.body):
                    found.setdefault(code(statement.test), False)
        if ancestor is function:
            break
        child = ancestor
    return found


def matching_returns(facts: "FileFacts", param: cst.Param, at: cst.CSTNode) -> Optional[list[cst.BaseExpression]]:
    """What the parameter ``param`` of the method around ``at`` may hold there: for every call of the
    method in this file, the argument, or where that is a call of a same-class method, the returns of
    that method whose guards do not contradict those of ``at``. ``None`` when unknown."""
    values = facts.values
    function = facts.parent(facts.parent(param))
    if not isinstance(function, cst.FunctionDef) or values.class_of(function) is None:
        return None
    at_guards = guards(facts, at, function)
    params = [*function.params.posonly_params, *function.params.params][1:]
    index = next((i for i, p in enumerate(params) if p is param), None)
    calls = values.call_sites(function)
    if index is None or not calls or len(calls) > _MAX_CALLS:
        return None
    out: list[cst.BaseExpression] = []
    for call in calls:
        passed = keyword(call, param.name.value) or positional(call, index)
        if isinstance(passed, cst.Name):
            passed = facts.dataflow.value_of(passed)
        helper = values.callee(passed) if isinstance(passed, cst.Call) else None
        if helper is None or values.class_of(helper) is not values.class_of(function):
            return None
        returns = values.returns(helper)
        if not returns or any(value is None for value in returns):
            return None  # a bare ``return``: not a tensor helper
        kept = [value for value in returns if value is not None
                and _compatible(guards(facts, value, helper), at_guards)]
        if not kept:
            return None
        out.extend(kept)
    return out


def _compatible(these: dict[str, bool], those: dict[str, bool]) -> bool:
    return all(those.get(test, holds) == holds for test, holds in these.items())


def _reads_self(facts: "FileFacts", test: cst.BaseExpression) -> bool:
    return any(isinstance(n, cst.Attribute) and isinstance(n.value, cst.Name) and n.value.value == "self"
               for n in facts.walk(test))


def _ends_in_return(block: cst.BaseSuite) -> bool:
    if not isinstance(block, cst.IndentedBlock) or not block.body:
        return False
    last = block.body[-1]
    return isinstance(last, cst.SimpleStatementLine) and any(isinstance(s, (cst.Return, cst.Raise)) for s in last.body)
