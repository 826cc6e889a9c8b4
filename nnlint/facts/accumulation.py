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
* :meth:`Accumulation.kept_losses` - loss tensors stored where they outlive the iteration under the
  same conditions: ``losses.append(loss)``, ``log[step] = loss`` (a key that changes every
  iteration), a dict whose ``["loss"]`` is backpropagated, or ``meter.update(loss)`` on a same-file
  class that adds its argument to ``self.sum``

A loss tensor is also what a same-file function or method returns when every ``return`` of it is
one (outside ``no_grad``), an element of a tuple it returns, and a value of a dict of loss tensors
(``for name, value in parts.items()`` over ``{"box": box_loss, "cls": cls_loss}``), and a name that
is ``0`` on some paths and such a tensor on the others (``d_loss = 0``, then ``if ...: d_loss = crit(...)``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Optional

import libcst as cst

from nnlint.facts.names import dotted_name, keyword, positional

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

_LOSS_FUNCTION_NAME = re.compile(r"(.*_)?(criterion|loss_?fn|loss_?func(tion)?|compute_loss)(_.*)?", re.I)
_FUNCTIONAL_LOSSES = frozenset({"cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
                                "kl_div", "poisson_nll_loss", "gaussian_nll_loss", "ctc_loss", "cosine_embedding_loss",
                                "hinge_embedding_loss", "margin_ranking_loss", "triplet_margin_loss"})

_LIST_MAKERS = frozenset({"list"})
_DICT_MAKERS = frozenset({"dict", "defaultdict", "OrderedDict"})
#: what turns a tensor into a detached tensor or a Python number
_DETACHING_METHODS = frozenset({"item", "detach", "tolist", "numpy"})
_DETACHING_FUNCTIONS = frozenset({"float", "int"})


@dataclass(frozen=True, eq=False)
class KeptLoss:
    """A loss tensor kept past its loop iteration: ``losses.append(loss)``, ``log[step] = loss``, or
    ``meter.update(loss)`` where the same-file meter class adds its argument to ``self.sum``."""

    #: the call or the ``log[step] = loss`` assignment that keeps it
    node: cst.CSTNode
    #: where it is kept: ``losses``, ``log``, ``Meter.sum``
    kept_in: str
    #: the loss tensor expression; ``None`` when what is kept is a dict or model output holding one
    loss: Optional[cst.BaseExpression]


class Accumulation:
    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts

    def loss_operand(self, value: cst.BaseExpression) -> Optional[cst.BaseExpression]:
        """The loss-tensor expression being added (``loss`` in ``total += loss * n``), else ``None``."""
        operand: Optional[cst.BaseExpression] = value if self.is_loss(value) else None
        if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, (cst.Multiply, cst.Divide)):
            operand = None
            if self.is_loss(value.left):
                operand = value.left
            elif isinstance(value.operator, cst.Multiply) and self.is_loss(value.right):
                operand = value.right
        return None if operand is None or self._computed_without_grad(operand) else operand

    def _computed_without_grad(self, expr: cst.BaseExpression, depth: int = 0) -> bool:
        """``outputs = model(x)`` under ``torch.no_grad()``, then ``loss = outputs.loss`` after it: every
        binding behind the name was computed with grad off, so it has no graph."""
        while isinstance(expr, (cst.Attribute, cst.Subscript)):
            expr = expr.value
        if not isinstance(expr, cst.Name) or depth > 4:
            return False
        definitions = self._facts.dataflow.definitions(expr)
        return bool(definitions) and all(
            self._facts.loops.grad_disabled(d.statement)
            or (d.value is not None and self._computed_without_grad(d.value, depth + 1)) for d in definitions)

    def is_loss(self, expr: Optional[cst.BaseExpression], depth: int = 0) -> bool:
        if expr is None or depth > 8:
            return False
        facts = self._facts
        if isinstance(expr, cst.Name):
            if self.is_loss(facts.dataflow.value_of(expr), depth + 1) or self._backpropagated(expr) \
                    or self._zero_or_loss(expr, depth):
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

    def _backpropagated(self, name: cst.Name, entry: bool = False) -> bool:
        """``loss.backward()`` on the same binding of the name (``loss, mse = loss_fn(...)``): whatever
        computed it, it is a tensor that carries its graph. ``entry``: ``out["loss"].backward()`` or
        ``out.loss.backward()`` instead, a dict or model output that holds such a tensor."""
        reaching = frozenset(id(d.statement) for d in self._facts.dataflow.definitions(name))
        return bool(reaching) and reaching in self._backward_bindings(name, entry)

    def _backward_bindings(self, name: cst.Name, entry: bool) -> set[frozenset[int]]:
        """The bindings reaching each ``name.backward()`` (or ``name[...].backward()``) of its scope."""
        dataflow = self._facts.dataflow
        scope = dataflow.scope_of(name)
        found: set[frozenset[int]] = set()
        for call in self._facts.calls(scope) if scope is not None else ():
            func = call.func
            if not (isinstance(func, cst.Attribute) and func.attr.value == "backward"):
                continue
            target = func.value
            if entry:
                target = target.value if isinstance(target, (cst.Subscript, cst.Attribute)) else None
            if isinstance(target, cst.Name) and target.value == name.value and dataflow.scope_of(call) is scope:
                found.add(frozenset(id(d.statement) for d in dataflow.definitions(target)))
        return found

    def may_be_number(self, expr: cst.BaseExpression) -> bool:
        """A loss name that holds a plain number on some paths (``df_loss = 0``), where ``.item()`` fails."""
        return isinstance(expr, cst.Name) and len(self._facts.dataflow.definitions(expr)) > 1 and any(
            isinstance(d.value, (cst.Integer, cst.Float)) for d in self._facts.dataflow.definitions(expr))

    def _zero_or_loss(self, name: cst.Name, depth: int) -> bool:
        """``df_loss = 0`` then ``if ...: df_loss = crit(...)``: a number on some paths, a loss tensor on
        the others, so a loss tensor whenever the loss was computed."""
        definitions = self._facts.dataflow.definitions(name)
        if len(definitions) < 2 or depth > 4:
            return False
        backward = self._backward_bindings(name, False)
        losses = [d for d in definitions
                  if self.is_loss(d.value, depth + 1) or frozenset({id(d.statement)}) in backward]
        return bool(losses) and all(d in losses or isinstance(d.value, (cst.Integer, cst.Float)) for d in definitions)

    def accumulates_across_iterations(self, node: cst.AugAssign) -> bool:
        """``total`` is set before the enclosing loop, kept across its iterations, never backpropagated."""
        name = self.accumulator(node)
        return name is not None and self._outlives_iterations(node, name)

    def _outlives_iterations(self, node: cst.CSTNode, name: str, sums: bool = True) -> bool:
        """What ``node`` puts in ``name`` stays there across the iterations of the enclosing loop
        (``sums``: ``name[key] += ...``, which ``name[key] = 0`` in the loop resets)."""
        facts = self._facts
        loop = self._loop_of(node)
        if loop is None or facts.loops.grad_disabled(node):
            return False
        scope = facts.dataflow.scope_of(node)
        if scope is None:
            return False
        inside = set(facts.walk(loop))
        definitions = facts.dataflow.assignments(scope, name)
        if any(d.statement in inside and not isinstance(d.statement, cst.AugAssign) for d in definitions):
            return False  # reset inside the loop: a per-iteration sum
        if sums and any(isinstance(n, cst.AssignTarget) and isinstance(n.target, cst.Subscript)
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

    def kept_losses(self) -> tuple[KeptLoss, ...]:
        """Loss tensors stored where they outlive their loop iteration (see :class:`KeptLoss`)."""
        facts = self._facts
        found: list[KeptLoss] = []
        for call in facts.calls():
            func = call.func
            if not (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)):
                continue
            if func.attr.value == "append":
                value = call.args[0].value if len(call.args) == 1 and not call.args[0].star else None
                kept = self._kept(value) if self._loop_of(call) is not None \
                    and self._made_as(func.value, cst.List, _LIST_MAKERS) else None
                if kept is not None and not self._filled_once(call, func.value.value) \
                        and self._outlives_iterations(call, func.value.value, sums=False):
                    found.append(KeptLoss(call, func.value.value, kept[0]))
                continue
            slot = self._meter_slot(call)
            if slot is not None and self._outlives_iterations(call, func.value.value, sums=False):
                found.append(KeptLoss(call, slot[0], slot[1]))
        for node in facts.nodes_of(cst.Assign):
            if not isinstance(node, cst.Assign) or len(node.targets) != 1:
                continue
            target = node.targets[0].target
            if not (isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name)
                    and len(target.slice) == 1 and isinstance(target.slice[0].slice, cst.Index)):
                continue
            loop = self._loop_of(node)
            if loop is None or not self._made_as(target.value, cst.Dict, _DICT_MAKERS) \
                    or not self._varies(target.slice[0].slice.value, loop):
                continue
            kept = self._kept(node.value)
            if kept is not None and self._outlives_iterations(node, target.value.value, sums=False):
                found.append(KeptLoss(node, target.value.value, kept[0]))
        return tuple(found)

    def _kept(self, value: Optional[cst.BaseExpression]) -> Optional[tuple[Optional[cst.BaseExpression]]]:
        """``(loss,)`` when storing ``value`` keeps a loss tensor (``(None,)``: a dict or model output
        whose ``["loss"]``/``.loss`` is backpropagated), else ``None``."""
        if value is None:
            return None
        loss = self.loss_operand(value)
        if loss is not None:
            return (loss,)
        if isinstance(value, cst.Name) and self._backpropagated(value, entry=True):
            return (None,)
        return None

    def _made_as(self, name: cst.Name, display: type, makers: frozenset[str]) -> bool:
        """Every binding of ``name`` reaching here makes a new list (dict): ``[]``, ``list()``, ``{}``."""
        definitions = self._facts.dataflow.definitions(name)
        comprehension = cst.ListComp if display is cst.List else cst.DictComp
        return bool(definitions) and all(
            isinstance(d.value, (display, comprehension))
            or (isinstance(d.value, cst.Call) and (dotted_name(d.value.func) or "").rsplit(".", 1)[-1] in makers)
            for d in definitions)

    def _varies(self, key: cst.BaseExpression, loop: cst.CSTNode) -> bool:
        """Does ``key`` change every iteration of ``loop``: it uses the loop's target or a counter the
        loop increments (``log[step] = ...``); a constant key overwrites one entry."""
        facts = self._facts
        changing: set[str] = set()
        if isinstance(loop, cst.For):
            changing |= {n.value for n in facts.walk(loop.target) if isinstance(n, cst.Name)}
        changing |= {n.target.value for n in facts.walk(loop)
                     if isinstance(n, cst.AugAssign) and isinstance(n.target, cst.Name)}
        return self._mentions(key, changing)

    def _meter_slot(self, call: cst.Call) -> Optional[tuple[str, cst.BaseExpression]]:
        """``meter.update(loss)`` on an instance of a same-file class whose method adds (or appends)
        that argument to an attribute of ``self``: the ``Meter.sum`` it is kept in, and the loss."""
        facts = self._facts
        func = call.func
        assert isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)
        if not call.args or func.attr.value not in self._method_names:
            return None
        made = facts.dataflow.value_of(func.value)
        if not (isinstance(made, cst.Call) and isinstance(made.func, cst.Name)) \
                or made.func.value in facts.names.bindings:
            return None
        owner = facts.names.classes.get(made.func.value)
        method = facts.values.method(owner, func.attr.value) if owner is not None else None
        if method is None:
            return None
        params = [*method.params.posonly_params, *method.params.params][1:]
        for index, param in enumerate(params):
            value = keyword(call, param.name.value)
            value = positional(call, index) if value is None else value
            loss = self.loss_operand(value) if value is not None else None
            slot = self._slot_of(method, param.name.value) if loss is not None else None
            if slot is not None:
                return f"{owner.name.value}.{slot}", loss
        return None

    @cached_property
    def _method_names(self) -> frozenset[str]:
        """Names of the methods of this file's classes: the calls worth resolving as meter updates."""
        return frozenset(statement.name.value for owner in self._facts.names.classes.values()
                         if isinstance(owner.body, cst.IndentedBlock)
                         for statement in owner.body.body if isinstance(statement, cst.FunctionDef))

    def _slot_of(self, method: cst.FunctionDef, param: str) -> Optional[str]:
        """The attribute of ``self`` that ``method`` adds or appends its (never rebound) ``param`` to."""
        facts = self._facts
        if any(not isinstance(d.statement, cst.Param) for d in facts.dataflow.assignments(method, param)):
            return None  # ``val = val.item()`` first
        for node in facts.walk(method.body):
            if isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.AddAssign):
                slot, value = node.target, node.value
            elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
                    and node.func.attr.value == "append" and len(node.args) == 1:
                slot, value = node.func.value, node.args[0].value
            else:
                continue
            if isinstance(slot, cst.Attribute) and isinstance(slot.value, cst.Name) and slot.value.value == "self" \
                    and self._mentions(value, {param}) and not self._detached(value) \
                    and facts.dataflow.scope_of(node) is method:
                return slot.attr.value
        return None

    def _detached(self, expr: cst.BaseExpression) -> bool:
        """``val.item()``, ``val.detach()``, ``val.data``, ``float(val)`` somewhere in ``expr``."""
        for node in self._facts.walk(expr):
            if isinstance(node, cst.Attribute) and node.attr.value == "data":
                return True
            if isinstance(node, cst.Call):
                func = node.func
                if isinstance(func, cst.Attribute) and func.attr.value in _DETACHING_METHODS \
                        or isinstance(func, cst.Name) and func.value in _DETACHING_FUNCTIONS:
                    return True
        return False

    def _filled_once(self, append: cst.Call, container: str) -> bool:
        """Is the list filled once and then overwritten in place (``if step == 0: outs.append(y)``
        ``else: outs[i].copy_(y)``), not grown every iteration? Either the append is under a test for
        the first pass (``== 0``, ``not outs``, ``len(outs) < n``), or the loop also writes the list's
        items (``outs[i] = ...``, ``outs[i].copy_(...)``)."""
        facts = self._facts
        loop = self._loop_of(append)
        for ancestor in facts.ancestors(append):
            if ancestor is loop:
                break
            if isinstance(ancestor, cst.If) and self._first_pass_test(ancestor.test, container):
                return True
        for node in facts.walk(loop):
            target = None
            if isinstance(node, cst.Assign) and len(node.targets) == 1:
                target = node.targets[0].target
            elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
                    and node.func.attr.value in ("copy_", "fill_", "zero_"):
                target = node.func.value
            if isinstance(target, cst.Subscript) and dotted_name(target.value) == container:
                return True
        return False

    def _first_pass_test(self, test: cst.BaseExpression, container: str) -> bool:
        if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
            return dotted_name(test.expression) == container
        if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
            return False
        operator = test.comparisons[0].operator
        right = test.comparisons[0].comparator
        if isinstance(operator, cst.Equal):
            return isinstance(right, cst.Integer) and right.value == "0"
        return isinstance(operator, (cst.LessThan, cst.LessThanEqual)) and isinstance(test.left, cst.Call) \
            and dotted_name(test.left.func) == "len" and bool(test.left.args) \
            and dotted_name(test.left.args[0].value) == container

    def _loop_of(self, node: cst.CSTNode) -> Optional[cst.CSTNode]:
        """The innermost loop around ``node`` in its own function."""
        for ancestor in self._facts.ancestors(node):
            if isinstance(ancestor, (cst.For, cst.While)):
                return ancestor
            if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                return None
        return None

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
