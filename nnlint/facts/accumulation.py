"""Running sums of loss tensors: what is a loss tensor, and which sums outlive a loop iteration.

Questions answered (through ``FileFacts.accumulation``):

* :meth:`Accumulation.loss_operand` - the loss tensor an added expression carries (``loss`` in
  ``total += loss * n``): a loss function's or criterion's result, ``outputs.loss``, a sum or
  scaling of those, or a name that is backpropagated
* :meth:`Accumulation.is_loss` - is an expression such a loss tensor
* :meth:`Accumulation.accumulates_across_iterations` - is ``total += ...`` inside a loop with grad
  enabled, on a name set before the loop, never reset inside it, and never backpropagated or
  returned (nor anything computed from it)
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

import libcst as cst

from nnlint.facts.names import dotted_name

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

_LOSS_FUNCTION_NAME = re.compile(r"(.*_)?(criterion|loss_?fn|loss_?func(tion)?|compute_loss)(_.*)?", re.I)
_FUNCTIONAL_LOSSES = frozenset({"cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
                                "kl_div", "poisson_nll_loss", "gaussian_nll_loss", "ctc_loss", "cosine_embedding_loss",
                                "hinge_embedding_loss", "margin_ranking_loss", "triplet_margin_loss"})


class Accumulation:
    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts

    def loss_operand(self, value: cst.BaseExpression) -> Optional[cst.BaseExpression]:
        """The loss-tensor expression being added (``loss`` in ``total += loss * n``), else ``None``."""
        if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, (cst.Multiply, cst.Divide)):
            if self.is_loss(value.left):
                return value.left
            if isinstance(value.operator, cst.Multiply) and self.is_loss(value.right):
                return value.right
            return None
        return value if self.is_loss(value) else None

    def is_loss(self, expr: Optional[cst.BaseExpression], depth: int = 0) -> bool:
        if expr is None or depth > 4:
            return False
        facts = self._facts
        if isinstance(expr, cst.Name):
            return self.is_loss(facts.dataflow.value_of(expr), depth + 1) or self._backpropagated(expr)
        if isinstance(expr, cst.Attribute):
            # HuggingFace-style outputs.loss
            return expr.attr.value == "loss" and isinstance(expr.value, cst.Name) and expr.value.value != "self"
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, (cst.Divide, cst.Multiply, cst.Add)):
            # loss / accumulation_steps, loss_a + loss_b
            return self.is_loss(expr.left, depth + 1) or self.is_loss(expr.right, depth + 1)
        if not isinstance(expr, cst.Call):
            return False
        qualname = facts.names.qualname(expr.func)
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
        constructor = facts.dataflow.value_of(expr.func) if isinstance(expr.func, cst.Name) else None
        if not isinstance(constructor, cst.Call):
            return False
        built = facts.names.qualname(constructor.func)
        return built is not None and built.startswith("torch.nn.") and built.endswith("Loss")

    def _backpropagated(self, name: cst.Name) -> bool:
        """``loss.backward()`` on the same binding of the name (``loss, mse = loss_fn(...)``): whatever
        computed it, it is a tensor that carries its graph."""
        dataflow = self._facts.dataflow
        reaching = {id(d.statement) for d in dataflow.definitions(name)}
        if not reaching:
            return False
        scope = dataflow.scope_of(name)
        for call in self._facts.calls(scope) if scope is not None else ():
            func = call.func
            if isinstance(func, cst.Attribute) and func.attr.value == "backward" and isinstance(func.value, cst.Name) \
                    and func.value.value == name.value and dataflow.scope_of(call) is scope \
                    and {id(d.statement) for d in dataflow.definitions(func.value)} == reaching:
                return True
        return False

    def accumulates_across_iterations(self, node: cst.AugAssign) -> bool:
        """``total`` is set before the enclosing loop, kept across its iterations, never backpropagated."""
        facts = self._facts
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
        derived = self._derived_names(scope, name)
        for other in facts.walk(scope):
            if isinstance(other, cst.Call) and isinstance(other.func, cst.Attribute) \
                    and other.func.attr.value == "backward":
                if self._mentions(other.func.value, derived):
                    return False
            if isinstance(other, cst.Call) and facts.names.qualname(other.func) in ("torch.autograd.backward",
                                                                                       "torch.autograd.grad"):
                if self._mentions(other, derived):
                    return False
            if isinstance(other, (cst.Return, cst.Yield)) and other.value is not None \
                    and self._mentions(other.value, derived):
                return False
        return True

    def _derived_names(self, scope: cst.CSTNode, name: str) -> set[str]:
        """``name`` and every local assigned from an expression using it (``total_loss = content + style``)."""
        facts = self._facts
        derived = {name}
        assignments = [n for n in facts.walk(scope) if isinstance(n, cst.Assign)]
        changed = True
        while changed:
            changed = False
            for assignment in assignments:
                if not self._mentions(assignment.value, derived):
                    continue
                for target in assignment.targets:
                    for node in facts.walk(target.target):
                        if isinstance(node, cst.Name) and node.value not in derived:
                            derived.add(node.value)
                            changed = True
        return derived

    def _mentions(self, expr: cst.CSTNode, names: set[str]) -> bool:
        return any(isinstance(n, cst.Name) and n.value in names for n in self._facts.walk(expr))
