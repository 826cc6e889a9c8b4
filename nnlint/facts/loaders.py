"""Data loaders and the training loops that iterate them.

Questions answered (through ``FileFacts.loaders``):

* :meth:`Loaders.is_dataloader` - is a call a ``torch.utils.data.DataLoader`` construction
* :meth:`Loaders.training_loops_over` - the loops that iterate the loader a construction is assigned
  to (``train_loader = DataLoader(...)``) and call ``backward()``: in its scope, or in a local
  function it is passed to (``train(model, train_loader, optimizer)``), with that call's arguments
* :meth:`Loaders.runs_batchnorm_model` - does such a loop call a model with batch normalisation
* :func:`unbatches` - does a loop undo the loader's batch dimension (``x.squeeze(0)``)
* :meth:`Loaders.int_value` - the integer an argument holds (a literal, a local name's value, a
  module constant or an argparse default)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Optional

import libcst as cst

from nnlint.facts.names import literal

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

_DATALOADERS = frozenset({"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"})
#: wrappers around an iterable in a ``for`` statement: ``enumerate(loader)``, ``tqdm(loader)``
_ITERATION_WRAPPERS = frozenset({"enumerate", "tqdm", "iter", "zip", "tqdm.tqdm", "tqdm.auto.tqdm",
                                 "tqdm.notebook.tqdm", "tqdm.std.tqdm", "rich.progress.track"})


@dataclass(frozen=True, eq=False)
class LoaderLoop:
    """A ``for`` over a data loader that calls ``backward()``."""

    loop: cst.For
    #: maps parameters of the loop's function to the arguments a call site passed
    bindings: tuple[tuple[str, cst.BaseExpression], ...] = ()


class Loaders:
    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts

    def is_dataloader(self, call: cst.Call) -> bool:
        return self._facts.names.qualname(call.func) in _DATALOADERS

    def int_value(self, expr: Optional[cst.BaseExpression]) -> object:
        if expr is None:
            return None
        value = literal(self._facts.dataflow.resolve(expr), None)
        if value is None:
            value = self._facts.constants.value(expr)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def training_loops_over(self, construction: cst.Call) -> Iterator[LoaderLoop]:
        """Loops that iterate over the name ``construction`` is assigned to and call ``backward()``."""
        assigned = self._assigned_name(construction)
        if assigned is None:
            return
        loader, statement = assigned
        facts = self._facts
        dataflow = facts.dataflow
        scope = dataflow.scope_of(loader)
        for node in facts.walk(scope) if scope is not None else ():
            if isinstance(node, cst.For) and _calls_backward(node):
                iterated = self._iterated_name(node.iter)
                if iterated is not None and iterated.value == loader.value and any(
                    d.statement is statement for d in dataflow.definitions(iterated)
                ):
                    yield LoaderLoop(node)
            elif isinstance(node, cst.Call) and isinstance(node.func, cst.Name):
                function = facts.names.functions.get(node.func.value)
                if function is None or node.func.value in facts.names.bindings:
                    continue
                bindings = _bind_arguments(function, node)
                for parameter, argument_value in bindings:
                    if (isinstance(argument_value, cst.Name) and argument_value.value == loader.value
                            and any(d.statement is statement for d in dataflow.definitions(argument_value))):
                        for loop in _walk(function.body):
                            if isinstance(loop, cst.For) and _calls_backward(loop):
                                iterated = self._iterated_name(loop.iter)
                                if iterated is not None and iterated.value == parameter:
                                    yield LoaderLoop(loop, tuple(bindings))

    def runs_batchnorm_model(self, training: LoaderLoop) -> bool:
        """Does the loop call a model with batch normalisation (a parameter seen as the call's argument)?"""
        models = self._facts.models
        bound = dict(training.bindings)
        for node in _walk(training.loop.body):
            if not isinstance(node, cst.Call):
                continue
            callee: cst.BaseExpression = node.func
            if isinstance(callee, cst.Name) and callee.value in bound:
                callee = bound[callee.value]
            summary = models.model_of(callee)
            if summary is not None and summary.has_batchnorm:
                return True
        return False

    def _assigned_name(self, call: cst.Call) -> Optional[tuple[cst.Name, cst.CSTNode]]:
        """``(train_loader, statement)`` for ``train_loader = DataLoader(...)``."""
        parent = self._facts.parent(call)
        if isinstance(parent, cst.Assign) and len(parent.targets) == 1 \
                and isinstance(parent.targets[0].target, cst.Name):
            return parent.targets[0].target, parent
        if isinstance(parent, cst.AnnAssign) and isinstance(parent.target, cst.Name):
            return parent.target, parent
        return None

    def _iterated_name(self, iterable: cst.BaseExpression) -> Optional[cst.Name]:
        """``loader`` in ``for b in loader`` / ``enumerate(loader)`` / ``tqdm(loader, ...)``."""
        names = self._facts.names
        while isinstance(iterable, cst.Call) and iterable.args:
            func = iterable.func
            builtin = isinstance(func, cst.Name) and func.value not in names.bindings
            if (func.value if builtin else names.qualname(func)) not in _ITERATION_WRAPPERS:  # type: ignore[union-attr]
                return None
            iterable = iterable.args[0].value
        return iterable if isinstance(iterable, cst.Name) else None


def unbatches(loop: cst.For) -> bool:
    """Does the loop undo the loader's batch dimension (``x.squeeze(0)``)?"""
    for node in _walk(loop.body):
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in (
            "squeeze", "squeeze_"
        ):
            return True
    return False


def _bind_arguments(function: cst.FunctionDef, call: cst.Call) -> list[tuple[str, cst.BaseExpression]]:
    params = [p.name.value for p in list(function.params.posonly_params) + list(function.params.params)]
    bound: list[tuple[str, cst.BaseExpression]] = []
    position = 0
    for arg in call.args:
        if arg.star:
            return bound
        if arg.keyword is not None:
            bound.append((arg.keyword.value, arg.value))
        elif position < len(params):
            bound.append((params[position], arg.value))
            position += 1
    return bound


def _calls_backward(loop: cst.For) -> bool:
    return any(
        isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "backward"
        for node in _walk(loop.body)
    )


def _walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Every node below ``node``, nested functions included (a loop body may be a function of its own)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))
