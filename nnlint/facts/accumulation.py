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
  iteration), a dict whose ``["loss"]`` is backpropagated or that holds a loss tensor, or
  ``meter.update(loss)`` on a same-file class that adds its argument (or the items of a list it is
  given) to ``self.sum``; also a list or meter held on ``self`` and filled in a loop of a method, or in
  a method that is one training step (Lightning's ``training_step``, a method that backpropagates and
  steps its optimizer), unless an iteration clears it or a method backpropagates it (backpropagating
  one item, ``losses[-1].backward()``, leaves the others kept)

A loss tensor is also what a same-file function or method returns when every ``return`` of it is
one (outside ``no_grad``), an element of a tuple it returns, and a value of a dict of loss tensors
(``for name, value in parts.items()`` over ``{"box": box_loss, "cls": cls_loss}``), a name that
is ``0`` or ``None`` on some paths and such a tensor on the others (``d_loss = 0``, then ``if ...:
d_loss = crit(...)``), an entry of one (``out["bpp_loss"]`` of ``out = criterion(...)``), the sum of a
list of them (``sum(parts)``, ``reduce(lambda x, y: x + y, parts)``), and a term of a backpropagated
total that a helper returns next to it (``total, part = helper()``, ``total.backward()``, where the
helper computed ``total = part + other``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Iterable, Optional

import libcst as cst

from nnlint.facts.names import dotted_name, keyword, positional

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

_LOSS_FUNCTION_NAME = re.compile(r"(.*_)?(criterion|loss_?fn|loss_?func(tion)?|compute_loss)(_.*)?|(?-i:loss)", re.I)
_FUNCTIONAL_LOSSES = frozenset({"cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
                                "kl_div", "poisson_nll_loss", "gaussian_nll_loss", "ctc_loss", "cosine_embedding_loss",
                                "hinge_embedding_loss", "margin_ranking_loss", "triplet_margin_loss"})

_LIST_MAKERS = frozenset({"list"})
_DICT_MAKERS = frozenset({"dict", "defaultdict", "OrderedDict"})
#: what turns a tensor into a detached tensor or a Python number
_DETACHING_METHODS = frozenset({"item", "detach", "tolist", "numpy"})
_DETACHING_FUNCTIONS = frozenset({"float", "int"})
_AUTOGRAD_CALLS = ("torch.autograd.backward", "torch.autograd.grad")


@dataclass(frozen=True, eq=False)
class KeptLoss:
    """A loss tensor kept past its loop iteration: ``losses.append(loss)``, ``log[step] = loss``,
    ``meter.update(loss)`` where the same-file meter class adds its argument to ``self.sum``, or the
    same on a list or meter held on ``self`` (``self.outputs.append(log)`` in ``training_step``)."""

    #: the call or the ``log[step] = loss`` assignment that keeps it
    node: cst.CSTNode
    #: where it is kept: ``losses``, ``log``, ``Meter.sum``, ``self.outputs``
    kept_in: str
    #: the loss tensor expression; ``None`` when what is kept is a dict, model output or list holding one
    loss: Optional[cst.BaseExpression]


class Accumulation:
    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts
        #: per-class answers: ("made", id(class)) / ("backpropagated", id(class)) -> the answer
        self._class_cache: dict[tuple[str, int], Any] = {}

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
                return all(self.is_loss(value, depth + 1) for value in held) or self._term_of_held_loss(expr)
            dicts = self._iterated_dicts(expr)
            return bool(dicts) and all(self._is_loss_dict(d, depth + 1) for d in dicts)
        if isinstance(expr, cst.Subscript):
            # an entry of a criterion's dict of losses, or the entry that is backpropagated
            return self.is_loss(expr.value, depth + 1) or self._backpropagated_entry(expr)
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
        summed = self._summed(expr)
        if summed is not None:
            return self._holds_losses(summed, depth + 1)
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

    def _summed(self, call: cst.Call) -> Optional[cst.BaseExpression]:
        """The sequence a call adds up: ``sum(parts)``, ``reduce(lambda x, y: x + y, parts)``,
        ``reduce(operator.add, parts)``; else ``None``."""
        callee = (dotted_name(call.func) or "").rsplit(".", 1)[-1]
        args = [a for a in call.args if a.keyword is None and not a.star]
        if callee == "sum" and args:
            return args[0].value
        if callee != "reduce" or len(args) < 2:
            return None
        adder = args[0].value
        if isinstance(adder, cst.Lambda):
            body = adder.body
            return args[1].value if isinstance(body, cst.BinaryOperation) and isinstance(body.operator, cst.Add) \
                else None
        return args[1].value if (dotted_name(adder) or "").rsplit(".", 1)[-1] in ("add", "iadd") else None

    def _holds_losses(self, expr: cst.BaseExpression, depth: int) -> bool:
        """A list or tuple of loss tensors (a literal, or a name bound only to those or to losses)."""
        if depth > 8:
            return False
        if isinstance(expr, (cst.List, cst.Tuple)):
            return bool(expr.elements) and all(type(e) is cst.Element and self.is_loss(e.value, depth + 1)
                                               for e in expr.elements)
        return self.is_loss(expr, depth + 1) or isinstance(expr, cst.Name) and self._loss_or_losses(expr, depth)

    def _loss_or_losses(self, name: cst.Name, depth: int) -> bool:
        """``parts = [mse(a, y), l1(b, y)]``, or ``loss = loss_fn(x)`` then ``if ...: loss = [loss]``:
        every binding is a loss tensor or a list of them (what ``sum``/``reduce`` of it gives is one)."""
        definitions = self._facts.dataflow.definitions(name)
        if not definitions or depth > 4:
            return False
        return all(d.value is not None and (isinstance(d.value, (cst.List, cst.Tuple))
                                            and self._holds_losses(d.value, depth + 1)
                                            or self.is_loss(d.value, depth + 1)) for d in definitions)

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

    def _term_of_held_loss(self, name: cst.Name) -> bool:
        """``total, part = helper(...)`` then ``total.backward()``, where every tuple the helper returns
        has ``part`` as a term of ``total`` (``total = part + other``): a term of a backpropagated sum is
        part of the graph."""
        facts = self._facts
        [definition] = facts.dataflow.definitions(name)
        statement, element = definition.statement, definition.element
        if not isinstance(statement, cst.Assign) or len(statement.targets) != 1 \
                or not isinstance(statement.targets[0].target, (cst.Tuple, cst.List)) or element is None:
            return False
        targets = statement.targets[0].target.elements
        totals = [index for index, target in enumerate(targets) if index != element
                  and isinstance(target.value, cst.Name) and frozenset({id(statement)}) in
                  self._backward_bindings(target.value, False)]
        returned = self._returned(definition.unpacked) if totals and definition.unpacked is not None else None
        if not returned:
            return False
        for value in returned:
            if isinstance(value, cst.Name):
                value = facts.dataflow.value_of(value) or value
            if not isinstance(value, cst.Tuple) or len(value.elements) != len(targets):
                return False
            part = value.elements[element].value
            if not isinstance(part, cst.Name) or not any(
                    self._adds_into(value.elements[index].value, part.value) for index in totals):
                return False
        return True

    def _adds_into(self, total: cst.BaseExpression, part: str) -> bool:
        """Is ``part`` a term of a sum bound to the name ``total`` (``total = part * 0.5 + other``, or
        ``total += part``) in its function?"""
        if not isinstance(total, cst.Name):
            return False
        for definition in self._facts.dataflow.definitions(total):
            statement = definition.statement
            added = statement.value if isinstance(statement, cst.Assign) else statement.value \
                if isinstance(statement, cst.AugAssign) and isinstance(statement.operator, cst.AddAssign) else None
            if added is not None and part in _terms(added):
                return True
        return False

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

    def _backpropagated_entry(self, entry: cst.Subscript) -> bool:
        """``out["loss"]`` where ``out["loss"].backward()`` is called on the same binding of ``out``."""
        if not isinstance(entry.value, cst.Name) or not self._backpropagated(entry.value, entry=True):
            return False
        key = _constant_key(entry)
        scope = self._facts.dataflow.scope_of(entry)
        return key is not None and scope is not None and any(
            isinstance(call.func, cst.Attribute) and call.func.attr.value == "backward"
            and isinstance(call.func.value, cst.Subscript) and dotted_name(call.func.value.value) == entry.value.value
            and _constant_key(call.func.value) == key for call in self._facts.calls(scope))

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
        """A loss name that holds a plain number (or ``None``) on some paths (``df_loss = 0``), where
        ``.item()`` fails."""
        return isinstance(expr, cst.Name) and len(self._facts.dataflow.definitions(expr)) > 1 and any(
            _no_tensor(d.value) for d in self._facts.dataflow.definitions(expr))

    def _zero_or_loss(self, name: cst.Name, depth: int) -> bool:
        """``df_loss = 0`` then ``if ...: df_loss = crit(...)``: a number (or ``None``) on some paths, a
        loss tensor on the others, so a loss tensor whenever the loss was computed."""
        definitions = self._facts.dataflow.definitions(name)
        if len(definitions) < 2 or depth > 4:
            return False
        backward = self._backward_bindings(name, False)
        losses = [d for d in definitions
                  if self.is_loss(d.value, depth + 1) or frozenset({id(d.statement)}) in backward]
        return bool(losses) and all(d in losses or _no_tensor(d.value) for d in definitions)

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
                    and other.func.attr.value in ("backward", "manual_backward"):
                given = [a.value for a in other.args if a.keyword is None]
                if not sums and not given and self._one_item(other.func.value, name):
                    continue  # ``losses[-1].backward()``: the newest loss, the list still keeps the others
                # ``total.backward()``, or handed to ``accelerator.backward(total)``/``manual_backward``
                if self._mentions(other.func.value, derived) or any(self._mentions(a, derived) for a in given):
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
            if isinstance(func, cst.Attribute) and _self_attribute(func.value) is not None:
                on_self = self._kept_on_self(call)
                if on_self is not None:
                    found.append(on_self)
                continue
            if not (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)):
                continue
            if func.attr.value == "append":
                value = call.args[0].value if len(call.args) == 1 and not call.args[0].star else None
                kept = self._kept(value) if self._loop_of(call) is not None \
                    and self._made_as(func.value, cst.List, _LIST_MAKERS) else None
                if kept is not None and not self._filled_once(call, func.value.value) \
                        and not self._cleared(func.value.value, facts.walk(self._loop_of(call))) \
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

    def _kept_on_self(self, call: cst.Call) -> Optional[KeptLoss]:
        """``self.losses.append(loss)`` / ``self.meter.update(loss)`` where the list or meter is an
        attribute the class makes in another method, and the call runs every iteration: in a loop of
        its method, or in a method that is itself one training step (Lightning's ``training_step``,
        a method that backpropagates and steps its optimizer outside any loop)."""
        facts = self._facts
        func = call.func
        assert isinstance(func, cst.Attribute)
        attr = _self_attribute(func.value)
        appends = func.attr.value == "append"
        if attr is None or not call.args or not (appends or func.attr.value in self._method_names):
            return None
        function = facts.loops.function_of(call)
        owner = facts.loops.class_of(function) if function is not None else None
        if function is None or owner is None or facts.loops.grad_disabled(call):
            return None
        loop = self._loop_of(call)
        if loop is None and not self._one_training_step(function):
            return None
        made = self._made_on_self(owner).get(attr, ())
        within = set(facts.walk(loop if loop is not None else function))
        if not made or any(statement in within for statement, _ in made):
            return None  # made again every iteration
        found: Optional[KeptLoss] = None
        if appends:
            kept = self._kept(call.args[0].value) if len(call.args) == 1 and not call.args[0].star \
                and all(_makes_list(value) for _, value in made) and not self._cleared(f"self.{attr}", within) \
                else None
            found = KeptLoss(call, f"self.{attr}", kept[0]) if kept is not None else None
        else:
            slot = self._meter_argument(call, [value for _, value in made])
            found = KeptLoss(call, slot[0], slot[1]) if slot is not None else None
        return None if found is None or attr in self._backpropagated_attributes(owner) else found

    def _made_on_self(self, owner: cst.ClassDef) -> dict[str, list[tuple[cst.CSTNode, cst.BaseExpression]]]:
        """``self.x = value`` in the methods of ``owner``: attribute -> (statement, value) (memoised)."""
        cache = self._class_cache.setdefault(("made", id(owner)), {})
        if not cache:
            for node in self._facts.nodes_of(cst.Assign, cst.AnnAssign, within=owner):
                value = node.value  # type: ignore[union-attr]
                for target in _targets(node):
                    attr = _self_attribute(target)
                    if attr is not None and value is not None:
                        cache.setdefault(attr, []).append((node, value))
        return cache

    def _one_item(self, expr: cst.BaseExpression, container: str) -> bool:
        """``losses[-1]`` (a constant index of the list ``container``, as written): one of its items."""
        if not (isinstance(expr, cst.Subscript) and dotted_name(expr.value) == container
                and len(expr.slice) == 1 and isinstance(expr.slice[0].slice, cst.Index)):
            return False
        index = expr.slice[0].slice.value
        if isinstance(index, cst.UnaryOperation) and isinstance(index.operator, cst.Minus):
            index = index.expression
        return isinstance(index, cst.Integer)

    def _one_training_step(self, function: cst.FunctionDef) -> bool:
        """Does one call of ``function`` run one training step: Lightning's ``training_step``, or a
        method that backpropagates and steps an optimizer, not in a loop of its own?"""
        facts = self._facts
        if facts.loops.decorated_no_grad(function):
            return False
        if function.name.value == "training_step":
            return True
        kinds = {e.kind for e in facts.loops.body_events(function) if not e.inner_loops and not e.grad_disabled}
        return {"backward", "step"} <= kinds

    def _cleared(self, container: str, within: Iterable[cst.CSTNode]) -> bool:
        """``outputs.clear()`` (or ``del outputs[:]``) in the same iteration: it holds a bounded
        number of losses (``container`` as written: ``outputs``, ``self.outputs``)."""
        for node in within:
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
                    and node.func.attr.value == "clear" and dotted_name(node.func.value) == container:
                return True
            if isinstance(node, cst.Del) and isinstance(node.target, cst.Subscript) \
                    and dotted_name(node.target.value) == container:
                return True
        return False

    def _backpropagated_attributes(self, owner: cst.ClassDef) -> frozenset[str]:
        """The attributes a method of ``owner`` backpropagates (``self.saved``, or a local computed from
        it, given to ``.backward()``, ``manual_backward``, ``torch.autograd.grad``): losses kept on
        purpose for one later backward (memoised)."""
        key = ("backpropagated", id(owner))
        if key not in self._class_cache:
            facts = self._facts
            found: set[str] = set()
            for function in facts.nodes_of(cst.FunctionDef, within=owner):
                derived: dict[str, set[str]] = {}  # local name -> the attributes it is computed from
                for node in facts.walk(function):
                    if isinstance(node, cst.Assign):
                        sources = self._attributes_in(node.value, derived)
                        for target in node.targets:
                            for name in facts.walk(target.target):
                                if isinstance(name, cst.Name) and sources:
                                    derived.setdefault(name.value, set()).update(sources)
                        continue
                    if not isinstance(node, cst.Call):
                        continue
                    last = node.func.attr.value if isinstance(node.func, cst.Attribute) else None
                    if last not in ("backward", "manual_backward") \
                            and facts.names.qualname(node.func) not in _AUTOGRAD_CALLS:
                        continue
                    if last == "backward" and isinstance(node.func, cst.Attribute) \
                            and all(a.keyword is not None for a in node.args) \
                            and isinstance(node.func.value, cst.Subscript) \
                            and self._one_item(node.func.value, dotted_name(node.func.value.value) or ""):
                        continue  # ``self.losses[-1].backward()``: one item
                    found |= self._attributes_in(node, derived)
            self._class_cache[key] = frozenset(found)
        return self._class_cache[key]  # type: ignore[return-value]

    def _attributes_in(self, expr: cst.CSTNode, derived: dict[str, set[str]]) -> set[str]:
        """The ``x`` of every ``self.x`` in ``expr``, and the attributes its locals are computed from."""
        found: set[str] = set()
        for node in self._facts.walk(expr):
            if isinstance(node, cst.Name):
                found |= derived.get(node.value, set())
            attr = _self_attribute(node)
            if attr is not None:
                found.add(attr)
        return found

    def _kept(self, value: Optional[cst.BaseExpression]) -> Optional[tuple[Optional[cst.BaseExpression]]]:
        """``(loss,)`` when storing ``value`` keeps a loss tensor (``(None,)``: a dict or model output
        whose ``["loss"]``/``.loss`` is backpropagated), else ``None``."""
        if value is None:
            return None
        loss = self.loss_operand(value)
        if loss is not None:
            return (loss,)
        if isinstance(value, cst.Name) and self._backpropagated(value, entry=True) or self._holds_loss(value):
            return (None,)
        return None

    def _holds_loss(self, expr: Optional[cst.BaseExpression], depth: int = 0) -> bool:
        """A dict with a loss tensor among its values (``{"loss": loss, "n": len(x)}``): a literal, a
        name holding one, or what a same-file helper returns."""
        if expr is None or depth > 6:
            return False
        if isinstance(expr, cst.Dict):
            return any(isinstance(e, cst.DictElement) and self.is_loss(e.value) for e in expr.elements)
        if isinstance(expr, cst.Call):
            returned = self._returned(expr)
            return bool(returned) and all(self._holds_loss(value, depth + 1) for value in returned or ())
        if not isinstance(expr, cst.Name):
            return False
        held = self._held(expr, depth)
        if held:
            return all(self._holds_loss(value, depth + 1) for value in held)
        return self._holds_loss(self._facts.dataflow.value_of(expr), depth + 1)

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
        return self._meter_argument(call, [facts.dataflow.value_of(func.value)])

    def _meter_argument(self, call: cst.Call, made: list[Optional[cst.BaseExpression]]
                        ) -> Optional[tuple[str, Optional[cst.BaseExpression]]]:
        """``meter.update(loss)`` where every ``made`` (what made ``meter``) builds the same same-file
        class, whose method adds its argument to an attribute; ``None`` as the loss: a list of losses."""
        facts = self._facts
        func = call.func
        assert isinstance(func, cst.Attribute)
        classes = {m.func.value for m in made if isinstance(m, cst.Call) and isinstance(m.func, cst.Name)}
        if not made or len(classes) != 1 or len(made) != sum(
                isinstance(m, cst.Call) and isinstance(m.func, cst.Name) for m in made):
            return None
        [made_name] = classes
        if made_name in facts.names.bindings:
            return None
        owner = facts.names.classes.get(made_name)
        method = facts.values.method(owner, func.attr.value) if owner is not None else None
        if method is None:
            return None
        params = [*method.params.posonly_params, *method.params.params][1:]
        for index, param in enumerate(params):
            value = keyword(call, param.name.value)
            value = positional(call, index) if value is None else value
            loss = self.loss_operand(value) if value is not None else None
            listed = loss is None and isinstance(value, (cst.List, cst.Tuple)) and any(
                type(e) is cst.Element and self.loss_operand(e.value) is not None for e in value.elements)
            slot = self._slot_of(method, param.name.value) if loss is not None or listed else None
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
        carried = {param} | self._items_of(method, param)
        for node in facts.walk(method.body):
            if isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.AddAssign):
                slot, value = node.target, node.value
            elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
                    and node.func.attr.value == "append" and len(node.args) == 1:
                slot, value = node.func.value, node.args[0].value
            else:
                continue
            if isinstance(slot, cst.Subscript):
                slot = slot.value  # ``self.sums[i] += v``
            if _self_attribute(slot) is not None and self._mentions(value, carried) and not self._detached(value) \
                    and facts.dataflow.scope_of(node) is method:
                return _self_attribute(slot)
        return None

    def _items_of(self, method: cst.FunctionDef, param: str) -> set[str]:
        """The loop variables that run over ``param``'s items (``for i, v in enumerate(values)``), none of
        them rebound in the loop."""
        found: set[str] = set()
        for loop in self._facts.walk(method.body):
            if not isinstance(loop, cst.For):
                continue
            iterated, target = loop.iter, loop.target
            if isinstance(iterated, cst.Call) and dotted_name(iterated.func) == "enumerate" and iterated.args \
                    and isinstance(target, cst.Tuple) and len(target.elements) == 2:
                iterated, target = iterated.args[0].value, target.elements[1].value
            if not (isinstance(iterated, cst.Name) and iterated.value == param):
                continue
            if isinstance(target, cst.Name) and not any(
                    isinstance(d.statement, (cst.Assign, cst.AugAssign)) and d.statement in set(self._facts.walk(loop))
                    for d in self._facts.dataflow.assignments(method, target.value)):
                found.add(target.value)
        return found

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


def _constant_key(entry: cst.Subscript) -> Optional[str]:
    """The literal key of ``d["loss"]`` / ``d[0]`` as written, else ``None``."""
    if len(entry.slice) != 1 or not isinstance(entry.slice[0].slice, cst.Index):
        return None
    key = entry.slice[0].slice.value
    return key.value if isinstance(key, (cst.SimpleString, cst.Integer)) else None


def _self_attribute(expr: cst.CSTNode) -> Optional[str]:
    """``x`` of ``self.x``."""
    if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self":
        return expr.attr.value
    return None


def _targets(node: cst.CSTNode) -> list[cst.BaseExpression]:
    if isinstance(node, cst.Assign):
        return [t.target for t in node.targets]
    return [node.target] if isinstance(node, cst.AnnAssign) else []


def _makes_list(value: cst.BaseExpression) -> bool:
    return isinstance(value, (cst.List, cst.ListComp)) or isinstance(value, cst.Call) \
        and (dotted_name(value.func) or "").rsplit(".", 1)[-1] in _LIST_MAKERS


def _no_tensor(value: Optional[cst.BaseExpression]) -> bool:
    """``0``, ``0.0`` or ``None``: what a loss name holds on the paths that compute no loss."""
    return isinstance(value, (cst.Integer, cst.Float)) or isinstance(value, cst.Name) and value.value == "None"


def _terms(expr: cst.BaseExpression) -> set[str]:
    """The names added up in ``expr`` (``a + b * 0.1 - c / n``: ``a``, ``b``, ``c``)."""
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, (cst.Add, cst.Subtract)):
        return _terms(expr.left) | _terms(expr.right)
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, (cst.Multiply, cst.Divide)):
        return _terms(expr.left) | (_terms(expr.right) if isinstance(expr.operator, cst.Multiply) else set())
    return {expr.value} if isinstance(expr, cst.Name) else set()
