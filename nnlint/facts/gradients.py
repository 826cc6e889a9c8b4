"""Gradients as values: which expressions hold gradients, and where they are clipped by value.

Questions answered:

* :meth:`GradientFacts.is_gradient` - does an expression hold gradients? ``p.grad`` (``.data``), a
  name that says so (``grads``), the result of ``tape.gradient(...)`` / ``opt.compute_gradients(...)`` /
  ``tf.gradients(...)`` / ``torch.autograd.grad(...)``, or the variable of a loop or comprehension
  over such a value (``for g, v in zip(grads, variables)``).
* :attr:`GradientFacts.value_clips` - where gradients are clipped element-wise: torch's
  ``clip_grad_value_``, ``torch.clamp``/``.clamp_`` of gradients, ``tf.clip_by_value`` of gradients, and
  a Keras optimizer's ``clipvalue=``.
* :meth:`GradientFacts.norm_is_an_option` - is a clip one branch of a choice whose other branch clips
  by norm (``if mode == "norm": clip_grad_norm_(...) else: clip_grad_value_(...)``)?
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Optional

import libcst as cst

from nnlint.facts.names import dotted_name, keyword, literal, positional

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

_TORCH_CLAMPS = frozenset({"torch.clamp", "torch.clip", "torch.clamp_", "torch.clip_"})
_CLAMP_METHODS = frozenset({"clamp", "clamp_", "clip", "clip_"})
_TF_CLIP = frozenset({"tensorflow.clip_by_value", "tensorflow.math.clip_by_value"})
_NORM_CLIPS = frozenset({"clip_grad_norm_", "clip_grad_norm", "clip_by_norm", "clip_by_global_norm",
                         "adaptive_clip_grad"})
_COMPREHENSIONS = (cst.ListComp, cst.GeneratorExp, cst.SetComp, cst.DictComp)


@dataclass(frozen=True)
class ValueClip:
    """Gradients clipped element-wise."""

    #: the clipping call, or the value of a Keras optimizer's ``clipvalue=``
    node: cst.CSTNode
    #: ``"torch"`` | ``"tensorflow"`` | ``"keras"``
    framework: str


def is_grad_attribute(expr: cst.BaseExpression) -> bool:
    """``p.grad`` or ``p.grad.data``."""
    if isinstance(expr, cst.Attribute) and expr.attr.value == "data":
        expr = expr.value
    return isinstance(expr, cst.Attribute) and expr.attr.value == "grad"


class GradientFacts:
    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts

    @cached_property
    def value_clips(self) -> tuple[ValueClip, ...]:
        """Keras optimizers' ``clipvalue=`` first, then clipping calls in source order."""
        found: list[ValueClip] = []
        for site in self._facts.optimizers.sites:
            if site.framework == "keras" and site.call is not None:
                value = keyword(site.call, "clipvalue")
                if value is not None and literal(value, 0) is not None:
                    found.append(ValueClip(value, "keras"))
        names = self._facts.names
        for call in self._facts.calls():
            func = call.func
            qualname = names.qualname(func)
            method = func.attr.value if isinstance(func, cst.Attribute) else None
            framework: Optional[str] = None
            if (qualname or "").endswith(".clip_grad_value_") or (qualname is None and method == "clip_grad_value_"):
                framework = "torch"
            elif qualname in _TF_CLIP and self.is_gradient(positional(call, 0) or keyword(call, "t")):
                framework = "tensorflow"
            elif qualname in _TORCH_CLAMPS and self.is_gradient(positional(call, 0) or keyword(call, "input")):
                framework = "torch"
            elif qualname is None and method in _CLAMP_METHODS and isinstance(func, cst.Attribute) \
                    and is_grad_attribute(func.value):
                framework = "torch"
            if framework is not None:
                found.append(ValueClip(call, framework))
        return tuple(found)

    def norm_is_an_option(self, node: cst.CSTNode) -> bool:
        """``if mode == "norm": clip_grad_norm_(...) elif mode == "value": clip_grad_value_(...)``: a user's choice."""
        facts = self._facts
        for ancestor in facts.ancestors(node):
            if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef, cst.Module)):
                return False
            if isinstance(ancestor, cst.If):
                root = ancestor
                parent = facts.parent(root)
                while isinstance(parent, cst.If) and parent.orelse is root:
                    root, parent = parent, facts.parent(parent)
                if any(self._clips_by_norm(n) for n in facts.walk(root)):
                    return True
            if isinstance(ancestor, cst.IfExp) and any(self._clips_by_norm(n) for n in facts.walk(ancestor)):
                return True
        return False

    def is_gradient(self, expr: Optional[cst.BaseExpression]) -> bool:
        """Does ``expr`` hold gradients (see the module doc)?"""
        if expr is None:
            return False
        if is_grad_attribute(expr):
            return True
        if not isinstance(expr, cst.Name):
            return False
        if "grad" in expr.value.lower():
            return True
        value = self._facts.dataflow.value_of(expr)
        if value is not None and self._computes_gradients(value):
            return True
        iterable = self._iterable_of(expr)
        return iterable is not None and (_mentions_grad(iterable) or self._computes_gradients(iterable))

    # -- helpers ---------------------------------------------------------------------
    def _clips_by_norm(self, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.Arg) and node.keyword is not None:
            return node.keyword.value in ("clipnorm", "global_clipnorm")
        if not isinstance(node, cst.Call):
            return False
        return _callee_text(self._facts, node).rsplit(".", 1)[-1] in _NORM_CLIPS

    def _iterable_of(self, name: cst.Name) -> Optional[cst.BaseExpression]:
        """What the loop or comprehension binding ``name`` iterates over."""
        for ancestor in self._facts.ancestors(name):
            if isinstance(ancestor, _COMPREHENSIONS):
                comp: Optional[cst.CompFor] = ancestor.for_in
                while comp is not None:
                    if _binds(comp.target, name.value):
                        return comp.iter
                    comp = comp.inner_for_in
            elif isinstance(ancestor, cst.For) and _binds(ancestor.target, name.value):
                return ancestor.iter
            elif isinstance(ancestor, (cst.FunctionDef, cst.Lambda)):
                return None
        return None

    def _computes_gradients(self, expr: cst.BaseExpression) -> bool:
        """``tape.gradient(loss, vars)``, ``opt.compute_gradients(loss)``, ``tf.gradients(...)``, ``zip(grads, vs)``."""
        if isinstance(expr, cst.Name):
            value = self._facts.dataflow.value_of(expr)
            return value is not None and value is not expr and isinstance(value, cst.Call) and \
                self._computes_gradients(value)
        if not isinstance(expr, cst.Call):
            return False
        if dotted_name(expr.func) == "zip" and expr.args:
            first = expr.args[0].value
            return _mentions_grad(first) or self._computes_gradients(first)
        text = _callee_text(self._facts, expr)
        last = text.rsplit(".", 1)[-1]
        return last in ("gradient", "gradients", "compute_gradients", "grad") or text == "torch.autograd.grad"


def _callee_text(facts: "FileFacts", call: cst.Call) -> str:
    """The qualified name of the callee, else its dotted spelling, else its method name."""
    return facts.names.qualname(call.func) or dotted_name(call.func) or (
        call.func.attr.value if isinstance(call.func, cst.Attribute) else "")


def _binds(target: cst.BaseExpression, name: str) -> bool:
    if isinstance(target, cst.Name):
        return target.value == name
    if isinstance(target, (cst.Tuple, cst.List)):
        return any(_binds(e.value, name) for e in target.elements)
    return False


def _mentions_grad(expr: cst.BaseExpression) -> bool:
    if isinstance(expr, cst.Call) and dotted_name(expr.func) == "zip":
        return any(_mentions_grad(arg.value) for arg in expr.args[:1])
    text = dotted_name(expr)
    return text is not None and "grad" in text.rsplit(".", 1)[-1].lower()
