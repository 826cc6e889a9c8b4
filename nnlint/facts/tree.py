"""One traversal of a module that every fact and rule reuses, and a fast ``children``.

libcst's own traversal (``node.visit``, ``node.children``) rebuilds and re-validates
every node it passes (``_visit_and_replace_children`` constructs a copy): on a large
file that costs several times the parse itself. Here children are read straight from
each node's fields, in the order libcst visits them (= source order), which each node
class reveals once through a recording probe (see :func:`_field_order`).
"""
from __future__ import annotations

import operator
from typing import Any, Callable, Iterator, Optional

import libcst as cst

_EXIT = object()
_MISSING = object()

#: node class -> its child fields in visiting order, or None to fall back to ``node.children``.
#: A memo of a pure function of the (immutable) libcst classes, so sharing it is safe.
_FIELDS: dict[type, Optional[tuple[str, ...]]] = {}
#: value type -> 1 a node, 2 a sequence of nodes, 0 anything else (None, MaybeSentinel, str)
_KIND: dict[type, int] = {tuple: 2, list: 2, type(None): 0, str: 0}
#: node class -> a function returning its child fields' values as a tuple (verified classes only)
_GETTERS: dict[type, Callable[[Any], tuple[Any, ...]]] = {}


class _Probe:
    """Stands in for a node and every field of it while a class's visit order is recorded."""

    def __getattr__(self, name: str) -> "_Probe":
        return _Probe()

    def visit(self, visitor: object) -> "_Probe":
        return self

    def __iter__(self) -> Any:
        return iter(())

    def _is_removable(self) -> bool:
        return False


class _FieldRecorder:
    """A visitor that records which fields are visited, in order, without descending."""

    def __init__(self) -> None:
        self.fields: list[str] = []

    def on_visit_attribute(self, node: object, attribute: str) -> None:
        if attribute not in self.fields:
            self.fields.append(attribute)

    def on_leave_attribute(self, node: object, attribute: str) -> None:
        pass

    def on_visit(self, node: object) -> bool:
        return False

    def on_leave(self, node: object) -> None:
        pass


def _field_order(node_class: type) -> tuple[str, ...]:
    recorder = _FieldRecorder()
    try:
        # The fields are visited while the arguments of the copy are computed; building
        # the copy from probes then fails, which is expected.
        node_class._visit_and_replace_children(_Probe(), recorder)  # type: ignore[attr-defined]
    except Exception:
        pass
    return tuple(recorder.fields)


def _kind(value: object) -> int:
    kind = _KIND.get(type(value))
    if kind is None:
        kind = 1 if isinstance(value, cst.CSTNode) else 2 if isinstance(value, (tuple, list)) else 0
        _KIND[type(value)] = kind
    return kind


def _from_fields(node: cst.CSTNode, fields: tuple[str, ...]) -> list[cst.CSTNode]:
    out: list[cst.CSTNode] = []
    kinds = _KIND
    for name in fields:
        value = getattr(node, name)
        kind = kinds.get(type(value))
        if kind is None:
            kind = _kind(value)
        if kind == 1:
            out.append(value)  # type: ignore[arg-type]
        elif kind == 2:
            out.extend(value)  # type: ignore[arg-type]
    return out


def _getter(fields: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if not fields:
        return lambda node: ()
    if len(fields) == 1:
        single = operator.attrgetter(fields[0])
        return lambda node: (single(node),)
    return operator.attrgetter(*fields)


def children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """``node.children`` (same nodes, same order), without rebuilding ``node``."""
    fields = _FIELDS.get(type(node), _MISSING)
    if fields is _MISSING:
        learned = _field_order(type(node))
        # Trust the recorded order only if it reproduces libcst's answer on this node.
        slow = list(node.children)
        fast = _from_fields(node, learned)
        ok = len(fast) == len(slow) and all(a is b for a, b in zip(fast, slow))
        _FIELDS[type(node)] = learned if ok else None
        if ok:
            _GETTERS[type(node)] = _getter(learned)
        return slow
    if fields is None:
        return list(node.children)
    return _from_fields(node, fields)  # type: ignore[arg-type]


#: layout-only node classes: whitespace, comments and punctuation. No fact or rule asks about
#: them as nodes (their owners' fields are read directly), and they are ~65% of a module's
#: nodes, so the index leaves them out and every walk is that much shorter.
TRIVIA: frozenset[type] = frozenset({
    cst.SimpleWhitespace, cst.ParenthesizedWhitespace, cst.TrailingWhitespace, cst.EmptyLine,
    cst.Newline, cst.Comment, cst.Comma, cst.Dot, cst.Colon, cst.Semicolon, cst.AssignEqual,
    cst.LeftParen, cst.RightParen, cst.LeftSquareBracket, cst.RightSquareBracket,
    cst.LeftCurlyBrace, cst.RightCurlyBrace,
})


class TreeIndex:
    """One traversal of the module: pre-order node list, subtree extents, parents, calls.

    Layout-only nodes (:data:`TRIVIA`) are not part of the index.

    Per-node data lives in lists by pre-order index, found through ``id(node)``:
    libcst nodes hash in Python (``CSTNode.__hash__``), and a module has 10^4-10^5
    of them, so node-keyed dicts cost more than the traversal itself. The ids stay
    unique because ``nodes`` keeps every indexed node alive.
    """

    def __init__(self) -> None:
        self.nodes: list[cst.CSTNode] = []
        #: by pre-order index: the index just past the node's subtree
        self.end: list[int] = []
        self.calls: list[cst.Call] = []
        self._index: dict[int, int] = {}
        self._parent: list[int] = []  # by pre-order index; -1 for the module
        # (enter, exit) steps of a walk that counts both entering and leaving nodes
        self._enter: list[int] = []
        self._exit: list[int] = []

    def index(self, node: cst.CSTNode) -> Optional[int]:
        """``node``'s pre-order index, or None if it is not part of this module."""
        return self._index.get(id(node))

    def parent(self, node: cst.CSTNode) -> Optional[cst.CSTNode]:
        index = self._index.get(id(node))
        if index is None:
            return None
        parent = self._parent[index]
        return self.nodes[parent] if parent >= 0 else None

    def ancestors(self, node: cst.CSTNode) -> Iterator[cst.CSTNode]:
        """Parent, grandparent, ... up to the module (nothing for a node not in the module)."""
        index = self._index.get(id(node))
        if index is None:
            return
        parents, nodes = self._parent, self.nodes
        index = parents[index]
        while index >= 0:
            yield nodes[index]
            index = parents[index]

    def order(self, node: cst.CSTNode) -> Optional[tuple[int, int]]:
        """(enter, exit) step of ``node`` (the numbering :mod:`nnlint.facts.dataflow` uses)."""
        index = self._index.get(id(node))
        if index is None:
            return None
        return self._enter[index], self._exit[index]

    @classmethod
    def build(cls, module: cst.CSTNode) -> "TreeIndex":
        tree = cls()
        nodes, end, calls, positions = tree.nodes, tree.end, tree.calls, tree._index
        parents, enter, exit_ = tree._parent, tree._enter, tree._exit
        append_node, append_end, append_parent = nodes.append, end.append, parents.append
        append_enter, append_exit = enter.append, exit_.append
        getters = _GETTERS
        kinds = _KIND
        call_type = cst.Call
        trivia = TRIVIA
        step = 0
        # indices of the nodes entered and not yet left: the last one is the next node's parent
        open_nodes: list[int] = []
        # Items are nodes to enter, or (as ints) the pre-order index of a node to leave.
        stack: list[Any] = [module]
        pop, push, extend = stack.pop, stack.append, stack.extend
        while stack:
            item = pop()
            if type(item) is int:
                end[item] = len(nodes)
                exit_[item] = step
                step += 1
                open_nodes.pop()
                continue
            index = len(nodes)
            positions[id(item)] = index
            append_node(item)
            append_end(0)
            append_enter(step)
            append_exit(0)
            append_parent(open_nodes[-1] if open_nodes else -1)
            open_nodes.append(index)
            step += 1
            node_type = type(item)
            if node_type is call_type:
                calls.append(item)
            push(index)
            getter = getters.get(node_type)
            if getter is None:
                kids = children(item)
            else:
                kids = []
                for value in getter(item):
                    kind = kinds.get(type(value))
                    if kind is None:
                        kind = _kind(value)
                    if kind == 1:
                        kids.append(value)
                    elif kind == 2:
                        kids.extend(value)
            if kids:
                kids = [kid for kid in kids if type(kid) not in trivia]
                kids.reverse()
                extend(kids)
        return tree
