"""Running sums of loss tensors: what is a loss tensor, and which sums outlive a loop iteration.

Questions answered (through ``FileFacts.accumulation``):

* :meth:`Accumulation.loss_operand` - the loss tensor an added expression carries (``loss`` in
  ``total += loss * n``): a loss function's or criterion's result, ``outputs.loss``, a sum or
  scaling of those, or a name that is backpropagated
* :meth:`Accumulation.is_loss` - is an expression such a loss tensor
* :meth:`Accumulation.accumulates_across_iterations` - is ``total += ...`` (or ``totals[key] += ...``)
  inside a loop with grad enabled, on a name set before the loop, never reset inside it, and never
  backpropagated or returned (nor anything computed from it); a sum returned after a loop that
  backpropagates every iteration is a log of losses already used, and still counts

A loss tensor is also what a same-file function or method returns when every ``return`` of it is
one (outside ``no_grad``), an element of a tuple it returns, and a value of a dict of loss tensors
(``for name, value in parts.items()`` over ``{"box": box_loss, "cls": cls_loss}``).
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
        if expr is None or depth > 8:
            return False
        facts = self._facts
        if isinstance(expr, cst.Name):
            if self.is_loss(facts.dataflow.value_of(expr), depth + 1) or self._backpropagated(expr):
                return True
            held = self._held(expr, depth)
            if held:
                return all(self.is_loss(value, depth + 1) for value in held)
            dicts = self._iterated_dicts(expr)
            return bool(dicts) and all(self._is_loss_dict(d, depth + 1) for d in dicts)
        if isinstance(expr, cst.Attribute):
            # HuggingFace-style outputs.loss
            return expr.attr.value == "loss" and isinstance(expr.value, cst.Name) and expr.value.value != "self"
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, (cst.Divide, cst.Multiply, cst.Add)):
            # loss / accumulation_steps, loss_a + loss_b
            return self.is_loss(expr.left, depth + 1) or self.is_loss(expr.right, depth + 1)
        if not isinstance(expr, cst.Call):
            return False
        returned = self._returned(expr)
        if returned:
            return all(self.is_loss(value, depth + 1) for value in returned)
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

    def _is_loss_dict(self, expr: Optional[cst.BaseExpression], depth: int) -> bool:
        """A dict whose every value is a loss tensor: a literal, a name holding one, or what a helper returns."""
        if expr is None or depth > 8:
            return False
        if isinstance(expr, cst.Dict):
            values = [e.value for e in expr.elements if isinstance(e, cst.DictElement)]
            return bool(values) and len(values) == len(expr.elements) \
                and all(self.is_loss(v, depth + 1) for v in values)
        held = self._held(expr, depth) if isinstance(expr, cst.Name) else self._returned(expr)
        if not held and isinstance(expr, cst.Name):
            value = self._facts.dataflow.value_of(expr)
            held = [value] if value is not None else None
        return bool(held) and all(self._is_loss_dict(value, depth + 1) for value in held or ())

    def _returned(self, expr: cst.BaseExpression) -> Optional[list[cst.BaseExpression]]:
        """What a call of a same-file function or method returns, when every ``return`` gives a value
        computed with gradients on."""
        if not isinstance(expr, cst.Call):
            return None
        function = self._facts.values.callee(expr)
        if function is None:
            return None
        returns = self._facts.values.returns(function)
        if not returns or any(value is None or self._facts.loops.grad_disabled(value) for value in returns):
            return None
        return [value for value in returns if value is not None]

    def _held(self, name: cst.Name, depth: int) -> Optional[list[cst.BaseExpression]]:
        """``a, b = helper(...)``: element ``b`` of every tuple the same-file helper returns."""
        definitions = self._facts.dataflow.definitions(name)
        if len(definitions) != 1 or definitions[0].unpacked is None or definitions[0].element is None:
            return None
        element = definitions[0].element
        returned = self._returned(definitions[0].unpacked)
        if not returned or depth > 4:
            return None
        out: list[cst.BaseExpression] = []
        for value in returned:
            if isinstance(value, cst.Name):
                value = self._facts.dataflow.value_of(value) or value
            if not isinstance(value, cst.Tuple) or element >= len(value.elements) \
                    or any(isinstance(e, cst.StarredElement) for e in value.elements):
                return None
            out.append(value.elements[element].value)
        return out

    def _iterated_dicts(self, name: cst.Name) -> list[cst.BaseExpression]:
        """The dicts ``name`` iterates the values of: ``for k, name in d.items()`` / ``for name in d.values()``."""
        definitions = self._facts.dataflow.definitions(name)
        out: list[cst.BaseExpression] = []
        for definition in definitions:
            loop = definition.statement
            if not isinstance(loop, cst.For) or not isinstance(loop.iter, cst.Call) or loop.iter.args \
                    or not isinstance(loop.iter.func, cst.Attribute):
                return []
            method, target = loop.iter.func.attr.value, loop.target
            if method == "values" and isinstance(target, cst.Name) and target.value == name.value:
                out.append(loop.iter.func.value)
            elif method == "items" and isinstance(target, cst.Tuple) and len(target.elements) == 2 \
                    and type(target.elements[1]) is cst.Element and isinstance(target.elements[1].value, cst.Name) and target.elements[1].value.value == name.value:
                out.append(loop.iter.func.value)
            else:
                return []
        return out

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
        name = self.accumulator(node)
        if scope is None or name is None:
            return False
        inside = set(facts.walk(loop))
        definitions = facts.dataflow.assignments(scope, name)
        if any(d.statement in inside and not isinstance(d.statement, cst.AugAssign) for d in definitions):
            return False  # reset inside the loop: a per-iteration sum
        if any(isinstance(n, cst.AssignTarget) and isinstance(n.target, cst.Subscript)
               and self.accumulator_name(n.target) == name for n in inside):
            return False  # ``totals[key] = 0`` inside the loop
        # the sum of losses a loop backpropagates as it goes is a log, even when returned
        trains = any(t.node in facts.ancestors(node) for t in facts.loops.training_loops)
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
            if isinstance(other, (cst.Return, cst.Yield)) and other.value is not None and not trains \
                    and self._mentions(other.value, derived):
                return False
        return True

    def accumulator(self, node: cst.AugAssign) -> Optional[str]:
        """The name a ``+=`` sums into: ``total`` of ``total += x`` or of ``total[key] += x``."""
        return self.accumulator_name(node.target)

    @staticmethod
    def accumulator_name(target: cst.BaseExpression) -> Optional[str]:
        if isinstance(target, cst.Subscript):
            target = target.value
        return target.value if isinstance(target, cst.Name) else None

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
