"""Which expression a local variable holds where it is used.

A small, flow-approximate reaching-definitions analysis per scope (module, class body,
function). For a use of ``x`` it walks the assignments of ``x`` that come before the use
in source order, newest first, skipping assignments in an ``if`` branch the use cannot be
in, and stopping at the first assignment that always runs before the use. Uses inside a
loop also see assignments later in the same loop (the previous iteration's value), unless
an assignment inside the loop always runs before the use.

``value_of`` answers only when exactly one assignment reaches the use and it is a plain
``x = <expr>``: an ``if`` that may or may not reassign ``x``, augmented assignments, loop
targets and parameters make the value unknown, which keeps rules quiet.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Optional, Union

import libcst as cst

from nnlint.facts.tree import children

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

Scope = Union[cst.Module, cst.FunctionDef, cst.ClassDef, cst.Lambda]
_SCOPES = (cst.Module, cst.FunctionDef, cst.ClassDef, cst.Lambda)
_SCOPE_TYPES = frozenset(_SCOPES)
_LOOPS = (cst.For, cst.While)
_COMPREHENSIONS = (cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)
_SCOPE_OR_COMPREHENSION = frozenset(_SCOPES + _COMPREHENSIONS)
# Exact node classes (libcst's are final; ``type(x) in`` avoids the slow ABC isinstance).
_NESTED_SCOPES = frozenset({cst.FunctionDef, cst.ClassDef})
_OPAQUE = frozenset({cst.Lambda, *_COMPREHENSIONS})
#: bindings of one name examined per use. Each costs a walk up its nesting, so past this many
#: (generated code, a 2000-branch ``elif`` chain: seconds per use) the older ones are kept as "may reach".
_MAX_EXAMINED = 64
_BINDING_TYPES = frozenset({
    cst.Assign, cst.AnnAssign, cst.AugAssign, cst.NamedExpr, cst.For, cst.WithItem, cst.ExceptHandler,
    cst.FunctionDef, cst.ClassDef, cst.Import, cst.ImportFrom,
})


@dataclass(frozen=True, eq=False)
class Definition:
    """One binding of a name: ``x = value`` (``value`` is ``None`` when it is not a plain assignment)."""

    name: str
    value: Optional[cst.BaseExpression]
    #: the statement (or parameter/loop node) that binds the name
    statement: cst.CSTNode
    #: position in the walk after which the binding holds
    point: int
    #: ``a, b = source``: the unpacked expression and this name's position in the target tuple
    unpacked: Optional[cst.BaseExpression] = None
    element: Optional[int] = None


class Dataflow:
    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts
        self._defs_by_scope: dict[cst.CSTNode, dict[str, list[Definition]]] = {}
        #: id of a name of this file's tree -> its reaching definitions (the tree never changes)
        self._definitions: dict[int, tuple[Definition, ...]] = {}

    # -- public API ------------------------------------------------------------
    def value_of(self, name: cst.Name) -> Optional[cst.BaseExpression]:
        """The expression last assigned to ``name`` before this use, if exactly one assignment reaches it."""
        defs = self.definitions(name)
        if len(defs) == 1:
            return defs[0].value
        return None

    def definitions(self, name: cst.Name) -> tuple[Definition, ...]:
        """Every binding of ``name`` that may reach this use, newest first (empty: unknown/global)."""
        if self._facts._tree.index(name) is None:
            return ()
        known = self._definitions.get(id(name))
        if known is None:
            known = self._definitions[id(name)] = self._compute_definitions(name)
        return known

    def _compute_definitions(self, name: cst.Name) -> tuple[Definition, ...]:
        scope = self.scope_of(name)
        if scope is None or self._in_comprehension_target(name):
            return ()
        found = self._reaching(scope, name)
        if not found and not isinstance(scope, cst.Module):
            # a global read inside a function: only a module name bound exactly once is certain
            module_defs = self._scope_defs(self._facts.module).get(name.value, [])
            if len(module_defs) > 1 and all(isinstance(d.statement, (cst.Import, cst.ImportFrom))
                                            for d in module_defs[:-1]) \
                    and isinstance(module_defs[-1].statement, cst.Assign) \
                    and self._facts.parent(self._facts.parent(module_defs[-1].statement)) is self._facts.module:
                # ``import model; model = model.Net()``: the module name is rebound at the top level
                # once, after its imports; functions run later and see the instance
                module_defs = module_defs[-1:]
            if len(module_defs) == 1 and not self._is_local(scope, name.value):
                return (module_defs[0],)
        return tuple(found)

    def enclosing_value(self, name: cst.Name) -> Optional[cst.BaseExpression]:
        """A closure's free variable (``train_op`` read in a nested function): the value of its one
        binding in the nearest enclosing function that binds it; ``None`` if bound locally, more
        than once, or nowhere."""
        if self.definitions(name):
            return None
        for scope in self._facts.ancestors(name):
            bound = self.assignments(scope, name.value) if isinstance(scope, cst.FunctionDef) else ()
            if bound:
                return bound[0].value if len(bound) == 1 else None
        return None

    def resolve(self, expr: Optional[cst.BaseExpression], depth: int = 8) -> Optional[cst.BaseExpression]:
        """Follow ``a = b; b = <expr>`` chains of names to the expression behind them."""
        seen = 0
        while isinstance(expr, cst.Name) and seen < depth:
            value = self.value_of(expr)
            if value is None:
                return expr
            expr, seen = value, seen + 1
        return expr

    def scope_of(self, node: cst.CSTNode) -> Optional[Scope]:
        """The function, class body or module whose namespace ``node`` is evaluated in."""
        child: cst.CSTNode = node
        for ancestor in self._facts.ancestors(node):
            if type(ancestor) not in _SCOPE_TYPES:
                child = ancestor
                continue
            if isinstance(ancestor, cst.FunctionDef):
                # decorators, defaults and annotations belong to the enclosing scope
                if child is ancestor.body:
                    return ancestor
            elif isinstance(ancestor, cst.Lambda):
                if child is ancestor.body:
                    return ancestor
            elif isinstance(ancestor, cst.ClassDef):
                if child is ancestor.body:
                    return ancestor
            elif isinstance(ancestor, cst.Module):
                return ancestor
            child = ancestor
        return self._facts.module if node is self._facts.module else None

    def assignments(self, scope: Scope, name: str) -> tuple[Definition, ...]:
        """All bindings of ``name`` directly in ``scope``, in source order."""
        return tuple(self._scope_defs(scope).get(name, ()))

    # -- implementation ----------------------------------------------------------
    def _order(self, node: cst.CSTNode) -> tuple[int, int]:
        """Enter and exit step of a node of this module (from the file's one traversal)."""
        order = self._facts._tree.order(node)
        if order is None:
            raise KeyError(f"{type(node).__name__} is not part of this module")
        return order

    def _scope_defs(self, scope: cst.CSTNode) -> dict[str, list[Definition]]:
        cached = self._defs_by_scope.get(scope)
        if cached is not None:
            return cached
        defs: dict[str, list[Definition]] = {}

        def add(name: str, value: Optional[cst.BaseExpression], statement: cst.CSTNode, point: int,
                unpacked: Optional[cst.BaseExpression] = None, element: Optional[int] = None) -> None:
            defs.setdefault(name, []).append(Definition(name, value, statement, point, unpacked, element))

        tree = self._facts._tree
        if isinstance(scope, (cst.FunctionDef, cst.Lambda)):
            body_order = tree.order(scope.body)
            start = body_order[0] if body_order is not None else 0
            for param in _parameters(scope.params):
                add(param.name.value, None, param, start)
        for node in self._scope_nodes(scope):
            if type(node) not in _BINDING_TYPES:  # most nodes; skips the isinstance chain below
                continue
            node_order = tree.order(node)
            if node_order is None:
                continue
            end = node_order[1]
            if isinstance(node, cst.Assign):
                for target in node.targets:
                    _bind_target(target.target, node.value, node, end, add)
            elif isinstance(node, cst.AnnAssign):
                if node.value is not None:
                    _bind_target(node.target, node.value, node, end, add)
            elif isinstance(node, cst.AugAssign):
                _bind_target(node.target, None, node, end, add)
            elif isinstance(node, cst.NamedExpr):
                _bind_target(node.target, node.value, node, end, add)
            elif isinstance(node, cst.For):
                # bound after the iterable is evaluated: ``for x in g(x)`` reads the older x
                _bind_target(node.target, None, node, self._order(node.body)[0], add)
            elif isinstance(node, cst.WithItem) and node.asname is not None:
                _bind_target(node.asname.name, None, node, end, add)
            elif isinstance(node, cst.ExceptHandler) and node.name is not None:
                _bind_target(node.name.name, None, node, self._order(node.name)[1], add)
            elif isinstance(node, (cst.FunctionDef, cst.ClassDef)) and node is not scope:
                add(node.name.value, None, node, node_order[0])
            elif isinstance(node, (cst.Import, cst.ImportFrom)) and not isinstance(node.names, cst.ImportStar):
                for alias in node.names:
                    bound = alias.asname.name if alias.asname is not None else alias.name
                    if isinstance(bound, cst.Name):
                        add(bound.value, None, node, end)
                    elif isinstance(bound, cst.Attribute):
                        head = bound
                        while isinstance(head, cst.Attribute):
                            head = head.value  # type: ignore[assignment]
                        if isinstance(head, cst.Name):
                            add(head.value, None, node, end)
        for items in defs.values():
            items.sort(key=lambda d: d.point)
        self._defs_by_scope[scope] = defs
        return defs

    def _scope_nodes(self, scope: cst.CSTNode) -> Iterator[cst.CSTNode]:
        """:func:`_walk_scope` over the file's one pre-order traversal (no child lists rebuilt)."""
        tree = self._facts._tree
        start = tree.index(scope)
        if start is None:
            yield from _walk_scope(scope)
            return
        nodes, end = tree.nodes, tree.end
        index, stop = start + 1, end[start]
        while index < stop:
            node = nodes[index]
            kind = type(node)
            yield node
            if kind in _NESTED_SCOPES:
                # decorators are evaluated in this scope; the body is not
                for decorator in node.decorators:  # type: ignore[attr-defined]
                    yield decorator
                    yield from self._scope_nodes(decorator)
                index = end[index]
            elif kind in _OPAQUE:
                index = end[index]
            else:
                index += 1

    def _is_local(self, scope: cst.CSTNode, name: str) -> bool:
        return name in self._scope_defs(scope)

    def _reaching(self, scope: cst.CSTNode, use: cst.Name) -> list[Definition]:
        candidates = self._scope_defs(scope).get(use.value, [])
        if not candidates:
            return []
        use_enter = self._order(use)[0]
        use_ancestors = set(self._ancestors_in(scope, use))
        found: list[Definition] = []
        #: the newest binding that always runs before the use (older ones cannot reach it)
        dominating: Optional[Definition] = None
        #: the blocks around each binding found so far: an older binding in all of those blocks
        #: (``if m: s = a; s = b``) is always overwritten before the use
        overwriting: list[set[cst.CSTNode]] = []
        examined = 0
        for definition in reversed(candidates):
            if definition.point >= use_enter:
                continue
            if definition.statement is use or definition.statement in use_ancestors and not isinstance(
                definition.statement, (cst.For, cst.Param)
            ):
                # the use is part of its own binding statement (x = f(x)): an older binding
                continue
            examined += 1
            if examined > _MAX_EXAMINED:
                found.append(definition)
                continue
            guards = self._guards(scope, definition.statement)
            if self._exclusive(guards, use_ancestors):
                continue
            if any(newer <= set(guards) for newer in overwriting):
                continue
            found.append(definition)
            if not isinstance(definition.statement, (cst.For, cst.Param)) and not self._may_be_skipped(guards):
                overwriting.append(set(guards))
            if isinstance(definition.statement, cst.For) and definition.statement.body not in use_ancestors:
                continue  # after the loop or in its else: the loop may not have run at all
            if all(guard in use_ancestors for guard in guards):
                dominating = definition
                break
        # a use inside a loop also sees bindings later in the loop body (previous iteration),
        # unless a binding inside that loop always runs before the use in every iteration
        for loop in (a for a in self._ancestors_in(scope, use) if isinstance(a, _LOOPS)):
            if not _repeats(loop, use, use_ancestors):
                continue
            loop_enter, loop_exit = self._order(loop)
            if dominating is not None and dominating.point > loop_enter:
                continue
            for definition in candidates:
                if use_enter < definition.point <= loop_exit and definition not in found:
                    if not isinstance(definition.statement, cst.For) or definition.statement is not loop:
                        found.append(definition)
        return found

    def _ancestors_in(self, scope: cst.CSTNode, node: cst.CSTNode) -> Iterator[cst.CSTNode]:
        for ancestor in self._facts.ancestors(node):
            if ancestor is scope:
                return
            yield ancestor

    def _guards(self, scope: cst.CSTNode, statement: cst.CSTNode) -> list[cst.CSTNode]:
        """The blocks around ``statement`` that may not run: branch and loop bodies, try/except parts."""
        guards: list[cst.CSTNode] = []
        child: cst.CSTNode = statement
        for ancestor in self._ancestors_in(scope, statement):
            if isinstance(ancestor, (cst.If, cst.For, cst.While, cst.Try, cst.ExceptHandler, cst.Else,
                                     cst.Finally, cst.Match, cst.MatchCase, cst.IfExp,
                                     cst.BooleanOperation)) or isinstance(ancestor, _COMPREHENSIONS):
                if not (isinstance(ancestor, (cst.If, cst.While)) and child is ancestor.test):
                    guards.append(child)
            child = ancestor
        return guards

    def _may_be_skipped(self, guards: list[cst.CSTNode]) -> bool:
        """Can a statement in these blocks be skipped although the blocks are entered (an exception
        leaving a ``try`` body early, a ``break`` or ``continue`` in a loop)?"""
        return any(isinstance(self._facts.parent(guard), (cst.Try, cst.For, cst.While))
                   or isinstance(guard, (cst.ExceptHandler, cst.Finally)) for guard in guards)

    def _exclusive(self, guards: list[cst.CSTNode], use_ancestors: set[cst.CSTNode]) -> bool:
        """Is the binding in one branch of an ``if`` and the use in another branch of it?"""
        for guard in guards:
            if guard in use_ancestors:
                continue
            parent = self._facts.parent(guard)
            if isinstance(parent, cst.If) and parent in use_ancestors:
                return True
            if isinstance(parent, cst.Else):
                grand = self._facts.parent(parent)
                if isinstance(grand, cst.If) and grand in use_ancestors:
                    return True
        return False

    def _in_comprehension_target(self, name: cst.Name) -> bool:
        for ancestor in self._facts.ancestors(name):
            if type(ancestor) not in _SCOPE_OR_COMPREHENSION:
                continue
            if isinstance(ancestor, _COMPREHENSIONS):
                comp_for: Optional[cst.CompFor] = ancestor.for_in
                while comp_for is not None:
                    if any(isinstance(n, cst.Name) and n.value == name.value for n in _target_names(comp_for.target)):
                        return True
                    comp_for = comp_for.inner_for_in
            if isinstance(ancestor, _SCOPES):
                return False
        return False


def _repeats(loop: cst.CSTNode, use: cst.CSTNode, use_ancestors: set[cst.CSTNode]) -> bool:
    """Does ``use`` run once per iteration: in the body (or a while loop's test), not in a
    for loop's iterable or either loop's else?"""
    if loop.body in use_ancestors:  # type: ignore[attr-defined]
        return True
    return isinstance(loop, cst.While) and (loop.test is use or loop.test in use_ancestors)


def _parameters(params: cst.Parameters) -> Iterator[cst.Param]:
    yield from params.posonly_params
    yield from params.params
    if isinstance(params.star_arg, cst.Param):
        yield params.star_arg
    yield from params.kwonly_params
    if params.star_kwarg is not None:
        yield params.star_kwarg


def _walk_scope(scope: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Nodes of one scope, not descending into nested functions, classes, lambdas or comprehensions."""
    stack: list[cst.CSTNode] = list(reversed(children(scope)))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            # decorators and defaults are evaluated in this scope; the body is not
            stack.extend(reversed(list(node.decorators)))
            continue
        if isinstance(node, cst.Lambda) or isinstance(node, _COMPREHENSIONS):
            continue
        stack.extend(reversed(children(node)))


def _target_names(target: cst.BaseExpression) -> Iterator[cst.BaseExpression]:
    if isinstance(target, (cst.Tuple, cst.List)):
        for element in target.elements:
            yield from _target_names(element.value)
    elif isinstance(target, cst.StarredElement):
        yield from _target_names(target.value)
    else:
        yield target


def _bind_target(target: cst.BaseExpression, value: Optional[cst.BaseExpression], statement: cst.CSTNode,
                 point: int, add) -> None:  # type: ignore[no-untyped-def]
    if isinstance(target, cst.Name):
        add(target.value, value, statement, point)
        return
    if isinstance(target, (cst.Tuple, cst.List)):
        # a, b = x, y binds element-wise; anything else is not a plain value
        values: Optional[list[cst.BaseExpression]] = None
        if isinstance(value, (cst.Tuple, cst.List)) and len(value.elements) == len(target.elements) and not any(
            isinstance(e, cst.StarredElement) for e in list(value.elements) + list(target.elements)
        ):
            values = [e.value for e in value.elements]
        flat = value is not None and not any(isinstance(e, cst.StarredElement) for e in target.elements)
        for index, element in enumerate(target.elements):
            inner = element.value
            if values is None and flat and isinstance(inner, cst.Name):
                # a, b = f(x): the value is unknown, but which element of f(x) it is is not
                add(inner.value, None, statement, point, value, index)
                continue
            _bind_target(inner, values[index] if values is not None else None, statement, point, add)
        return
    if isinstance(target, cst.StarredElement):
        _bind_target(target.value, None, statement, point, add)
