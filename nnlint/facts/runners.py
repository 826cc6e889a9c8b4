"""Functions that run a module they are given: ``def forward_step(model, batch): return model(batch.x)``.

Questions answered (through ``FileFacts.runners``):

* :meth:`Runners.run_parameters` - the positions of the parameters a function calls as modules
  (``model(x)``, ``model.forward(x)``, ``model.generate(x)``), also by handing them to another such
  function of the file
* :meth:`Runners.exported` - those of the file's top-level functions (for the project index)
* :meth:`Runners.module_run_by` - the argument a call hands to a function (of this file or of
  another project file) that runs it: ``forward_step(model, batch)`` runs ``model``
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import libcst as cst

from nnlint.facts.names import positional
from nnlint.facts.values import LIBRARY_PACKAGES

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

#: what calling a module's method runs the module: ``model.forward(x)``, ``model.generate(x)``
_RUNNING_METHODS = frozenset({"forward", "generate", "__call__"})
_MAX_DEPTH = 3


class Runners:
    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts
        self._memo: dict[int, tuple[int, ...]] = {}

    def run_parameters(self, function: cst.FunctionDef, depth: int = 0) -> tuple[int, ...]:
        """Positions (``self`` of a method not counted) of the parameters ``function`` runs as modules."""
        held = self._memo.get(id(function))
        if held is not None:
            return held
        self._memo[id(function)] = ()  # a recursive call runs nothing more
        facts = self._facts
        params = [p.name.value for p in (*function.params.posonly_params, *function.params.params)]
        if facts.values.class_of(function) is not None:
            params = params[1:]
        found: set[int] = set()
        for call in facts.calls(function.body):
            if facts.dataflow.scope_of(call) is not function:
                continue  # a call in a nested function or lambda runs later, if at all
            func = call.func
            if isinstance(func, cst.Attribute) and func.attr.value in _RUNNING_METHODS:
                func = func.value
            if isinstance(func, cst.Name) and func.value in params and self._is_parameter(func):
                found.add(params.index(func.value))
            elif depth < _MAX_DEPTH and any(isinstance(arg.value, cst.Name) and arg.value.value in params
                                            for arg in call.args):  # only such calls can hand one on
                handed = self.module_run_by(call, depth + 1)
                if isinstance(handed, cst.Name) and handed.value in params and self._is_parameter(handed):
                    found.add(params.index(handed.value))
        answer = tuple(sorted(found))
        self._memo[id(function)] = answer
        return answer

    def exported(self) -> dict[str, tuple[int, ...]]:
        """The top-level functions that run a parameter, by name."""
        found: dict[str, tuple[int, ...]] = {}
        for name, function in self._facts.names.functions.items():
            positions = self.run_parameters(function)
            if positions:
                found[name] = positions
        return found

    def module_run_by(self, call: cst.Call, depth: int = 0) -> Optional[cst.BaseExpression]:
        """What ``call`` hands to a function that runs it (the first such argument), else ``None``."""
        facts = self._facts
        function = facts.values.callee(call)
        if function is not None:
            positions = self.run_parameters(function, depth)
        else:
            qualname = facts.names.qualname(call.func)
            if qualname is None or qualname.split(".", 1)[0] in LIBRARY_PACKAGES or isinstance(call.func, cst.Attribute) \
                    and facts.names.qualname(call.func.value) is None:
                return None
            positions = facts.project.runs(qualname, facts.path)
        for position in positions:
            argument = positional(call, position)
            if argument is not None:
                return argument
        return None

    def _is_parameter(self, name: cst.Name) -> bool:
        definitions = self._facts.dataflow.definitions(name)
        return bool(definitions) and all(isinstance(d.statement, cst.Param) for d in definitions)
