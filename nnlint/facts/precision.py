"""Mixed precision: does code run under CUDA autocast.

Questions answered (through ``FileFacts.precision``):

* :meth:`Precision.under_autocast` - does a node run under CUDA autocast: in a ``with autocast``
  block, a function decorated with it, a caller's such block (a few calls up), or a Lightning
  step of a file whose ``Trainer`` uses mixed precision
* :meth:`Precision.is_autocast` - is an expression a CUDA autocast context (``torch.autocast("cuda")``,
  ``torch.cuda.amp.autocast()``, ``accelerator.autocast()``; not CPU, not disabled)
* :attr:`Precision.lightning_mixed_precision` - does the file build a Lightning ``Trainer`` with
  16-bit mixed precision
* :attr:`Precision.scaled_clips` - torch gradient clips followed, in their function, by
  ``scaler.step(optimizer)`` of a ``GradScaler`` with no ``unscale_`` before the clip (neither in the
  function nor in a same-file caller before its call)
* :meth:`Precision.is_grad_scaler` - is an expression a ``GradScaler``: built as one in the file,
  annotated as one, or named like one (``scaler``, ``self.grad_scaler``)
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Optional

import libcst as cst

from nnlint.facts.names import dotted_name, keyword, literal, positional

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

_AUTOCAST = frozenset({"torch.autocast", "torch.amp.autocast", "torch.cuda.amp.autocast",
                       "torch.amp.autocast_mode.autocast", "torch.cuda.amp.autocast_mode.autocast"})
_LIGHTNING_TRAINERS = frozenset({"lightning.Trainer", "lightning.pytorch.Trainer", "pytorch_lightning.Trainer"})
_LIGHTNING_STEPS = frozenset({"training_step", "validation_step", "test_step", "predict_step"})
_MIXED_PRECISION = frozenset({16, "16", "16-mixed", "bf16", "bf16-mixed"})
_MAX_CALLERS = 3
_GRAD_SCALERS = frozenset({"GradScaler", "ShardedGradScaler"})
#: torch's clips; ``accelerator.clip_grad_norm_`` and friends unscale by themselves
_TORCH_CLIPS = frozenset({"clip_grad_norm_", "clip_grad_value_", "clip_grad_norm"})


@dataclass(frozen=True)
class ScaledClip:
    """A torch gradient clip followed in its function by ``scaler.step(optimizer)``, nothing unscaling first."""

    clip: cst.Call
    step: cst.Call
    #: the scaler's text (``self.scaler``)
    scaler: str
    #: the stepped optimizer's text, if a plain name
    optimizer: Optional[str]


class Precision:
    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts

    def under_autocast(self, node: cst.CSTNode) -> bool:
        facts = self._facts
        loops = facts.loops
        pending: list[tuple[cst.CSTNode, int]] = [(node, 0)]
        seen: set[int] = set()
        while pending:
            current, depth = pending.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            for ancestor in facts.ancestors(current):
                if isinstance(ancestor, cst.With) and any(self.is_autocast(item.item) for item in ancestor.items):
                    return True
                if isinstance(ancestor, cst.FunctionDef):
                    if any(self.is_autocast(d.decorator) for d in ancestor.decorators):
                        return True
                    if ancestor.name.value in _LIGHTNING_STEPS and self.lightning_mixed_precision:
                        return True
                    if depth < _MAX_CALLERS:
                        pending.extend((call, depth + 1) for call in loops.call_sites(ancestor))
                    break
        return False

    def is_autocast(self, expr: cst.BaseExpression) -> bool:
        call = expr if isinstance(expr, cst.Call) else None
        func = call.func if call is not None else expr
        qualname = self._facts.names.qualname(func)
        if qualname not in _AUTOCAST and not (qualname is None and isinstance(func, cst.Attribute)
                                               and func.attr.value == "autocast"):
            return False
        if call is None:
            return True
        device = literal(keyword(call, "device_type") or (positional(call, 0) if qualname != "torch.cuda.amp.autocast"
                                                           else None), None)
        return device != "cpu" and literal(keyword(call, "enabled"), True) is not False

    @cached_property
    def lightning_mixed_precision(self) -> bool:
        facts = self._facts
        names = facts.names
        return any(names.qualname(call.func) in _LIGHTNING_TRAINERS
                   and literal(keyword(call, "precision"), None) in _MIXED_PRECISION for call in facts.calls())

    @cached_property
    def scaled_clips(self) -> tuple[ScaledClip, ...]:
        """Clips of scaled gradients found function by function (an optimizer wrapper's ``step()``
        need not hold the backward or the training loop), in source order."""
        facts = self._facts
        found: list[ScaledClip] = []
        for function in facts.nodes_of(cst.FunctionDef):
            calls = self._own_calls(function)  # type: ignore[arg-type]
            clips = [c for c in calls if self._is_torch_clip(c)]
            if not clips:
                continue
            steps = [c for c in calls if _method(c) == "step" and positional(c, 0) is not None
                     and self.is_grad_scaler(c.func.value, function)]  # type: ignore[attr-defined]
            for clip in clips:
                step = next((s for s in steps if self._order(s) > self._order(clip)
                             and not self._exclusive(clip, s)), None)
                if step is None or self._unscaled_before(function, clip, 0):  # type: ignore[arg-type]
                    continue
                scaler = dotted_name(step.func.value)  # type: ignore[attr-defined]
                optimizer = positional(step, 0)
                found.append(ScaledClip(clip, step, scaler or "scaler",
                                        dotted_name(optimizer) if optimizer is not None else None))
        return tuple(found)

    def is_grad_scaler(self, expr: cst.BaseExpression, function: Optional[cst.FunctionDef] = None) -> bool:
        """``scaler``/``self.grad_scaler`` (by name), a variable or attribute assigned ``GradScaler(...)``
        in this file, or a parameter of ``function`` annotated ``GradScaler`` (``Optional[...]`` too)."""
        text = dotted_name(expr)
        if text is None:
            return False
        if text.rsplit(".", 1)[-1].lower().endswith("scaler"):
            return True
        if function is not None and "." not in text:
            params = function.params
            for param in (*params.posonly_params, *params.params, *params.kwonly_params):
                if param.name.value == text and param.annotation is not None \
                        and self._names_grad_scaler(param.annotation.annotation):
                    return True
        return text in self._grad_scaler_variables

    @cached_property
    def _grad_scaler_variables(self) -> frozenset[str]:
        """Names and attributes assigned a ``GradScaler(...)`` or annotated as one anywhere in the file."""
        found: set[str] = set()
        for node in self._facts.nodes_of(cst.Assign, cst.AnnAssign):
            if isinstance(node, cst.Assign):
                targets, annotated = [t.target for t in node.targets], False
            else:
                assert isinstance(node, cst.AnnAssign)
                targets, annotated = [node.target], self._names_grad_scaler(node.annotation.annotation)
            value = node.value  # type: ignore[attr-defined]
            built = isinstance(value, cst.Call) and self._names_grad_scaler(value.func)
            if built or annotated:
                found.update(t for t in (dotted_name(target) for target in targets) if t is not None)
        return frozenset(found)

    def _names_grad_scaler(self, expr: cst.BaseExpression) -> bool:
        """Does a callee or an annotation name the ``GradScaler`` class (``Optional[amp.GradScaler]``)?"""
        for node in self._facts.walk(expr):
            if isinstance(node, cst.Name) and node.value in _GRAD_SCALERS \
                    or isinstance(node, cst.Attribute) and node.attr.value in _GRAD_SCALERS:
                return True
            if isinstance(node, cst.SimpleString) and any(name in node.value for name in _GRAD_SCALERS):
                return True
        return False

    def _unscaled_before(self, function: cst.FunctionDef, node: cst.CSTNode, depth: int) -> bool:
        """Does an ``unscale_`` run before ``node`` in ``function``, or in a same-file caller before
        its call of ``function`` (a few calls up)?"""
        if any(_method(c) == "unscale_" and self._order(c) < self._order(node) for c in self._own_calls(function)):
            return True
        if depth >= _MAX_CALLERS:
            return False
        for call in self._facts.loops.call_sites(function):
            caller = self._function_of(call)
            if caller is not None and self._unscaled_before(caller, call, depth + 1):
                return True
            if caller is None and any(_method(c) == "unscale_" and self._order(c) < self._order(call)
                                      and self._function_of(c) is None for c in self._facts.calls()):
                return True
        return False

    def _exclusive(self, first: cst.CSTNode, second: cst.CSTNode) -> bool:
        """Are the two nodes in different branches of one ``if`` (``if scaler is None: clip; step``)?"""
        paths = []
        for node in (first, second):
            path: dict[int, cst.CSTNode] = {}  # id(if) -> the branch of it that holds ``node``
            child = node
            for ancestor in self._facts.ancestors(node):
                if isinstance(ancestor, cst.If):
                    path[id(ancestor)] = child
                child = ancestor
            paths.append(path)
        return any(key in paths[1] and branch is not paths[1][key] for key, branch in paths[0].items())

    def _own_calls(self, function: cst.FunctionDef) -> list[cst.Call]:
        """Calls in ``function``'s body, not in functions nested in it, in source order."""
        return [c for c in self._facts.calls(function.body) if self._function_of(c) is function]

    def _function_of(self, node: cst.CSTNode) -> Optional[cst.FunctionDef]:
        return next((a for a in self._facts.ancestors(node) if isinstance(a, cst.FunctionDef)), None)

    def _order(self, node: cst.CSTNode) -> int:
        index = self._facts._tree.index(node)
        return index if index is not None else -1

    def _is_torch_clip(self, call: cst.Call) -> bool:
        qualname = self._facts.names.qualname(call.func)
        return qualname is not None and qualname.startswith("torch.") and qualname.rsplit(".", 1)[-1] in _TORCH_CLIPS


def _method(call: cst.Call) -> Optional[str]:
    return call.func.attr.value if isinstance(call.func, cst.Attribute) else None
