"""Mixed precision: does code run under CUDA autocast.

Questions answered (through ``FileFacts.precision``):

* :meth:`Precision.under_autocast` - does a node run under CUDA autocast: in a ``with autocast``
  block, a function decorated with it, a caller's such block (a few calls up), or a Lightning
  step of a file whose ``Trainer`` uses mixed precision
* :meth:`Precision.is_autocast` - is an expression a CUDA autocast context (``torch.autocast("cuda")``,
  ``torch.cuda.amp.autocast()``, ``accelerator.autocast()``; not CPU, not disabled)
* :attr:`Precision.lightning_mixed_precision` - does the file build a Lightning ``Trainer`` with
  16-bit mixed precision
"""
from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import libcst as cst

from nnlint.facts.names import keyword, literal, positional

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

_AUTOCAST = frozenset({"torch.autocast", "torch.amp.autocast", "torch.cuda.amp.autocast",
                       "torch.amp.autocast_mode.autocast", "torch.cuda.amp.autocast_mode.autocast"})
_LIGHTNING_TRAINERS = frozenset({"lightning.Trainer", "lightning.pytorch.Trainer", "pytorch_lightning.Trainer"})
_LIGHTNING_STEPS = frozenset({"training_step", "validation_step", "test_step", "predict_step"})
_MIXED_PRECISION = frozenset({16, "16", "16-mixed", "bf16", "bf16-mixed"})
_MAX_CALLERS = 3


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
