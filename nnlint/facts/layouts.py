"""Layouts: which of a tensor's original axes each axis of a later tensor holds, inside one function.

A *root* is one binding of a tensor name whose sizes a reshape reads: ``b, c, h, w = x.shape``
(``x`` as bound there) or ``n = x.size(0)``. The layout of an expression relative to the root
is a tuple with one entry per axis; each entry lists, in row-major order, the labels of the axes
merged into it: an ``int`` is an axis of the root, a ``str`` is an axis from elsewhere (a new
label per node; ``"1?..."`` marks one that may be of size 1). Followed, within a function:

* ``transpose``/``permute``/``flatten``/``swapaxes`` (methods or ``torch.`` functions), slicing
  of the first axis (``h[-2:]``, ``h[-1]``), ``chunk``/``split`` unpacked (each part keeps the layout)
* element-wise methods, functions and arithmetic (``x + y`` keeps ``x``'s layout), ``a @ b``/``matmul``
  (``a``'s leading axes, ``b``'s last axis)
* a ``view``/``reshape`` whose arguments are the root's sizes: its output axes are those sizes
  (sizes merged in one argument in the receiver's order; a literal ``1`` is a new axis of size 1)
* a same-file function or method: its return value (or tuple element) seen with the caller's
  arguments for its parameters
* ``nn.LSTM``/``GRU``/``RNN`` modules: the output keeps the input's leading axes; ``h_n`` is
  ``(layers, batch, hidden)`` whatever ``batch_first`` says
* any other module call keeps the layout of its first argument when that layout was moved by an
  axis swap seen here and ends in a root axis (transformer blocks map tokens to tokens)

Several reaching assignments must agree; one made before the shape unpacking is left out when the
unpacking is always followed by another (``b, c, h, w = x.shape; x = x.flatten(2).transpose(1, 2)``
in the same block: the sizes are only defined on that path). :meth:`Layouts.mixes` then says whether
a reshape of a tensor cuts across its axes: a named axis out of order, one skipped that no other
argument can absorb, or a ``-1`` before a named axis while axes after it are left over.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Optional, Sequence, Union

import libcst as cst

from nnlint.facts.names import has_star_args, literal, positional
from nnlint.facts.shapes import names_read

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts
    from nnlint.facts.dataflow import Definition
    from nnlint.facts.shapes import Reshape

Label = Union[int, str]
Layout = tuple[tuple[Label, ...], ...]
_Env = dict[str, Optional[Layout]]

_PRESERVING_METHODS = frozenset({
    "contiguous", "clone", "detach", "float", "half", "double", "bfloat16", "to", "cpu", "cuda", "type_as",
    "relu", "sigmoid", "tanh", "softmax", "log_softmax", "exp", "abs", "neg", "sqrt", "masked_fill",
    "mul", "add", "sub", "div", "pow", "clamp", "requires_grad_",
})
_PRESERVING_FUNCTIONS = frozenset({
    f"torch.{n}" for n in ("relu", "sigmoid", "tanh", "softmax", "log_softmax", "exp", "abs", "sqrt", "dropout")
} | {
    f"torch.nn.functional.{n}" for n in ("relu", "gelu", "silu", "elu", "leaky_relu", "sigmoid", "tanh", "softmax",
                                         "log_softmax", "dropout", "layer_norm", "normalize")
})
_MATMUL = frozenset({"torch.matmul", "torch.bmm"})
_RNNS = frozenset({"torch.nn.LSTM", "torch.nn.GRU", "torch.nn.RNN"})
#: layers whose output has a known number of axes (batch, channels, spatial...)
_NDIM = {f"torch.nn.{kind}{d}d": d + 2 for d in (1, 2, 3) for kind in (
    "Conv", "ConvTranspose", "MaxPool", "AvgPool", "InstanceNorm")} | {
    f"torch.nn.BatchNorm{d}d": d + 2 for d in (2, 3)}
_MAX_STEPS = 4000
_MAX_INLINE = 2


@dataclass(frozen=True, eq=False)
class Root:
    """The binding a reshape's sizes were read from: its definitions and number of axes (if known)."""

    name: str
    definitions: tuple["Definition", ...]
    ndim: Optional[int]
    #: the ``b, c, h, w = x.shape`` statement, when the sizes come from one
    unpacking: Optional[cst.Assign] = None


class _Budget(Exception):
    pass


class Layouts:
    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts

    # -- the question the rule asks ---------------------------------------------------
    def mixes(self, reshape: "Reshape", receiver: cst.BaseExpression) -> bool:
        """Does ``reshape`` (of ``receiver``) cut across the axes the tensor holds, for some root?"""
        for root, groups in self._roots(reshape.shape):
            layout = self.layout(receiver, root)
            if layout is not None and _cuts_across(layout, groups, _moved(layout)):
                return True
        return False

    def _roots(self, shape: Sequence[cst.BaseExpression]) -> Iterator[tuple[Root, list[Optional[list[int]]]]]:
        """Each root some arguments read sizes of, with per argument the root axes it multiplies
        (``[]`` for a literal 1, ``[-1]`` for ``-1``, ``None`` for anything else)."""
        seen: list[Root] = []
        for expression in shape:
            for node in names_read(expression, whole=lambda n: _size_read(n) is not None):  # type: ignore[arg-type]
                for root in self._roots_of(node):
                    if not any(root.name == other.name and root.definitions == other.definitions for other in seen):
                        seen.append(root)
        for root in seen:
            groups: list[Optional[list[int]]] = []
            for expression in shape:
                value = literal(expression, None)
                if value in (1, -1) and type(value) is int:
                    groups.append([] if value == 1 else [-1])
                    continue
                groups.append(self._axes_read(root, expression, 2) or None)
            if any(g for g in groups if g and g != [-1]):
                yield root, groups

    def _roots_of(self, node: cst.BaseExpression) -> Iterator[Root]:
        """The root a size read (``x.size(1)``) or a name holding one or unpacked from a shape reads."""
        dataflow = self._facts.dataflow
        read = _size_read(node)
        if read is None and isinstance(node, cst.Name):
            definitions = dataflow.definitions(node)
            if len(definitions) != 1:
                return
            for unpacking in self._facts.shapes.unpackings:
                if definitions[0].statement is unpacking.statement:
                    tensor = dataflow.definitions(unpacking.tensor)
                    if tensor:
                        yield Root(unpacking.tensor.value, tensor, len(unpacking.dims), unpacking.statement)
                    return
            read = _size_read(definitions[0].value)
        if read is not None:
            tensor = dataflow.definitions(read[0])
            if tensor:
                yield Root(read[0].value, tensor, self._ndim(read[0]))

    def _axes_read(self, root: Root, expression: cst.BaseExpression, depth: int) -> list[int]:
        """The root axes an argument multiplies (unpacked size names, ``x.size(i)``); empty otherwise."""
        if isinstance(expression, cst.BinaryOperation) and isinstance(expression.operator, cst.Multiply):
            left, right = (self._axes_read(root, side, depth) for side in (expression.left, expression.right))
            return left + right if left and right else []
        dataflow = self._facts.dataflow
        read = _size_read(expression)
        if read is not None:
            return [read[1]] if self._is_root(read[0], root) and read[1] >= 0 else []
        if not isinstance(expression, cst.Name) or depth <= 0:
            return []
        definitions = dataflow.definitions(expression)
        if len(definitions) != 1:
            return []
        definition = definitions[0]
        if root.unpacking is not None and definition.statement is root.unpacking:
            target = root.unpacking.targets[0].target
            names = [e.value.value for e in target.elements]  # type: ignore[attr-defined]
            return [names.index(expression.value)]
        return self._axes_read(root, definition.value, depth - 1) if definition.value is not None else []

    def _is_root(self, name: cst.Name, root: Root) -> bool:
        found = self._facts.dataflow.definitions(name)
        return name.value == root.name and len(found) == len(root.definitions) and all(
            a is b for a, b in zip(found, root.definitions))

    def _ndim(self, name: cst.Name) -> Optional[int]:
        """The number of axes of a tensor made by a layer of known rank (``F.relu(self.bn(self.conv(x)))``)."""
        expr = self._facts.dataflow.value_of(name)
        names = self._facts.names
        while isinstance(expr, cst.Call) and expr.args:
            qualname = names.qualname(expr.func)
            if qualname in _PRESERVING_FUNCTIONS:
                expr = expr.args[0].value
                continue
            for origin in self._facts.values.origins(expr.func) or ():
                if isinstance(origin, cst.Call) and names.qualname(origin.func) in _NDIM:
                    return _NDIM[names.qualname(origin.func)]  # type: ignore[index]
            return None
        return None

    # -- layouts --------------------------------------------------------------------
    def layout(self, expr: cst.BaseExpression, root: Root) -> Optional[Layout]:
        """The layout of ``expr`` relative to ``root`` (see the module doc); ``None`` if unknown."""
        walk = _Walk(self._facts, root)
        try:
            return walk.layout(expr, {}, 0)
        except _Budget:
            return None


class _Walk:
    """One layout question: the steps taken and the expressions being followed (cycles)."""

    def __init__(self, facts: "FileFacts", root: Root) -> None:
        self.facts = facts
        self.root = root
        self.steps = 0
        self.active: set[int] = set()

    def layout(self, expr: cst.BaseExpression, env: _Env, inlined: int) -> Optional[Layout]:
        self.steps += 1
        if self.steps > _MAX_STEPS:
            raise _Budget
        if id(expr) in self.active:
            return None
        self.active.add(id(expr))
        try:
            return self._step(expr, env, inlined)
        finally:
            self.active.discard(id(expr))

    def _step(self, expr: cst.BaseExpression, env: _Env, inlined: int) -> Optional[Layout]:
        if isinstance(expr, cst.Name):
            return self._name(expr, env, inlined)
        if isinstance(expr, cst.BinaryOperation):
            if isinstance(expr.operator, cst.MatrixMultiply):
                return self._matmul(expr.left, expr.right, env, inlined)
            return self.layout(expr.left, env, inlined) or self.layout(expr.right, env, inlined)
        if isinstance(expr, cst.UnaryOperation):
            return self.layout(expr.expression, env, inlined)
        if isinstance(expr, cst.IfExp):
            return _agree([self.layout(expr.body, env, inlined), self.layout(expr.orelse, env, inlined)])
        if isinstance(expr, cst.Subscript):
            return self._subscript(expr, env, inlined)
        if isinstance(expr, cst.Call) and not has_star_args(expr):
            return self._call(expr, env, inlined)
        return None

    def _name(self, name: cst.Name, env: _Env, inlined: int) -> Optional[Layout]:
        definitions = list(self.facts.dataflow.definitions(name))
        root = self.root
        if inlined == 0 and self._is_root(name):
            return tuple((axis,) for axis in range(root.ndim)) if root.ndim is not None else None
        if len(definitions) > 1 and inlined == 0:
            definitions = self._feasible(definitions)
        found: list[Optional[Layout]] = []
        for definition in definitions:
            if isinstance(definition.statement, cst.Param):
                found.append(env.get(name.value))
            elif definition.value is not None:
                if id(definition.value) in self.active and len(definitions) > 1:
                    continue  # the loop's previous iteration: assume it keeps the layout
                found.append(self.layout(definition.value, env, inlined))
            elif definition.unpacked is not None and definition.element is not None:
                found.append(self._element(definition.unpacked, [definition.element], env, inlined))
            elif isinstance(definition.statement, cst.Assign) and len(definition.statement.targets) == 1:
                path = _path_to(definition.statement.targets[0].target, name.value)
                found.append(self._element(definition.statement.value, path, env, inlined) if path else None)
            else:
                found.append(None)
        return _agree(found)

    def _is_root(self, expr: cst.BaseExpression) -> bool:
        if not isinstance(expr, cst.Name) or expr.value != self.root.name:
            return False
        definitions = self.facts.dataflow.definitions(expr)
        return len(definitions) == len(self.root.definitions) and all(
            a is b for a, b in zip(definitions, self.root.definitions))

    def _feasible(self, definitions: list["Definition"]) -> list["Definition"]:
        """Leave out the assignments made before the unpacking when it is always followed by another."""
        unpacking = self.root.unpacking
        if unpacking is None or len(definitions) < 2 or any(
                isinstance(a, (cst.For, cst.While)) for a in self.facts.ancestors(unpacking)):
            return definitions
        start = self.facts._tree.order(unpacking)
        if start is None or not self._overwritten(unpacking, definitions):
            return definitions
        return [d for d in definitions if (self.facts._tree.order(d.statement) or (0, 0))[0] > start[0]]

    def _overwritten(self, statement: cst.CSTNode, definitions: list["Definition"]) -> bool:
        """Is ``statement`` always followed, in its block and before any other statement kind, by one
        of ``definitions``?"""
        line = self.facts.parent(statement)
        block = self.facts.parent(line) if isinstance(line, cst.SimpleStatementLine) else None
        if not isinstance(block, (cst.IndentedBlock, cst.Module)):
            return False
        statements = list(block.body)
        for following in statements[statements.index(line) + 1:]:  # type: ignore[arg-type]
            if not isinstance(following, cst.SimpleStatementLine) or any(
                    isinstance(s, (cst.Return, cst.Raise, cst.Break, cst.Continue)) for s in following.body):
                return False
            if any(d.statement in following.body for d in definitions):
                return True
        return False

    def _element(self, expr: Optional[cst.BaseExpression], path: list[int], env: _Env,
                 inlined: int) -> Optional[Layout]:
        """The layout of element ``path`` of a tuple-valued expression (``a, (b, c) = expr``)."""
        if expr is None or not path:
            return self.layout(expr, env, inlined) if expr is not None else None
        index, rest = path[0], path[1:]
        if isinstance(expr, (cst.Tuple, cst.List)):
            items = expr.elements
            if any(isinstance(e, cst.StarredElement) for e in items) or not 0 <= index < len(items):
                return None
            return self._element(items[index].value, rest, env, inlined)
        if isinstance(expr, cst.IfExp):
            return _agree([self._element(expr.body, path, env, inlined), self._element(expr.orelse, path, env, inlined)])
        if isinstance(expr, cst.Name):
            value = self.facts.dataflow.value_of(expr)
            return self._element(value, path, env, inlined) if value is not None else None
        if not isinstance(expr, cst.Call) or has_star_args(expr):
            return None
        func = expr.func
        if isinstance(func, cst.Attribute) and func.attr.value in ("chunk", "split") and not rest \
                and self.facts.names.qualname(func) is None:
            return self.layout(func.value, env, inlined)
        if self.facts.names.qualname(func) in ("torch.chunk", "torch.split") and not rest and expr.args:
            return self.layout(expr.args[0].value, env, inlined)
        rnn = self._rnn(expr)
        if rnn is not None:
            return self._rnn_output(expr, rnn, path, env, inlined)
        function = self.facts.values.callee(expr)
        if function is not None:
            return self._inline(expr, function, path, env, inlined)
        if index == 0 and not rest:
            return self._module(expr, env, inlined)
        return None

    def _subscript(self, expr: cst.Subscript, env: _Env, inlined: int) -> Optional[Layout]:
        """``h[-2:]`` keeps the layout, ``h[-1]`` drops the first axis; other indexing is not followed."""
        if len(expr.slice) != 1:
            return None
        layout = self.layout(expr.value, env, inlined)
        index = expr.slice[0].slice
        if layout is None:
            return None
        if isinstance(index, cst.Slice) and index.step is None:
            lower = literal(index.lower, None) if index.lower is not None else 0
            first = layout[0]
            if type(lower) is int and lower <= -2 and index.upper is None:  # two or more kept: not of size 1
                first = tuple(label[2:] if isinstance(label, str) and label.startswith("1?") else label
                              for label in first)
            return (first,) + layout[1:]
        if isinstance(index, cst.Index) and type(literal(index.value, None)) is int:
            return layout[1:] or None
        return None

    def _call(self, call: cst.Call, env: _Env, inlined: int) -> Optional[Layout]:
        names = self.facts.names
        func = call.func
        qualname = names.qualname(func)
        if isinstance(func, cst.Attribute) and qualname is None:
            method, receiver = func.attr.value, func.value
            args = [a.value for a in call.args]
            if method in _PRESERVING_METHODS:
                return self.layout(receiver, env, inlined)
            if method in ("transpose", "swapaxes", "permute", "flatten"):
                return _reorder(method, self.layout(receiver, env, inlined), args)
            if method in ("view", "reshape"):
                return self._reshaped(call, args, receiver, env, inlined)
        if qualname in _PRESERVING_FUNCTIONS and call.args:
            return self.layout(call.args[0].value, env, inlined)
        if qualname in ("torch.transpose", "torch.swapaxes", "torch.permute", "torch.flatten") and call.args:
            rest = [a.value for a in call.args[1:]]
            return _reorder(qualname.rsplit(".", 1)[1], self.layout(call.args[0].value, env, inlined), rest)
        if qualname in _MATMUL and len(call.args) == 2:
            return self._matmul(call.args[0].value, call.args[1].value, env, inlined)
        if qualname is not None:
            return None
        rnn = self._rnn(call)
        if rnn is not None:
            return self._rnn_output(call, rnn, [0], env, inlined)
        function = self.facts.values.callee(call)
        if function is not None:
            return self._inline(call, function, [], env, inlined)
        return self._module(call, env, inlined)

    def _matmul(self, left: cst.BaseExpression, right: cst.BaseExpression, env: _Env,
                inlined: int) -> Optional[Layout]:
        first, second = self.layout(left, env, inlined), self.layout(right, env, inlined)
        new: tuple[Label, ...] = (f"matmul{id(left)}",)
        if first is not None and len(first) >= 2:
            return first[:-1] + (second[-1] if second is not None and len(second) >= 2 else new,)
        if second is not None and len(second) >= 3:
            return second[:-2] + ((f"rows{id(left)}",), second[-1])
        return None

    def _reshaped(self, call: cst.Call, args: list[cst.BaseExpression], receiver: cst.BaseExpression,
                  env: _Env, inlined: int) -> Optional[Layout]:
        """A reshape naming root sizes: its axes are those sizes, the other arguments new axes. Sizes
        merged in one argument keep the receiver's order; unknown, the merged axis is a new one."""
        if len(args) == 1 and isinstance(args[0], (cst.Tuple, cst.List)):
            args = [e.value for e in args[0].elements]
        before = self.layout(receiver, env, inlined)
        order = [label for axis in before for label in axis] if before is not None else []
        axes: list[tuple[Label, ...]] = []
        named = False
        for position, arg in enumerate(args):
            read = self.facts.layouts._axes_read(self.root, arg, 2)
            if len(read) > 1:
                read = sorted(read, key=order.index) if all(a in order for a in read) else []
            named = named or bool(read)
            one = "1?" if literal(arg, None) == 1 else ""  # a literal 1 is a new axis of size 1
            axes.append(tuple(read) if read else (f"{one}new{id(call)}:{position}",))
        return tuple(axes) if named else None

    def _rnn(self, call: cst.Call) -> Optional[cst.Call]:
        """The ``nn.LSTM(...)`` construction a ``self.rnn(x)`` call runs, if certain."""
        if not isinstance(call.func, cst.Attribute) or not call.args:
            return None
        origins = self.facts.values.origins(call.func)
        names = self.facts.names
        if origins and all(isinstance(o, cst.Call) and names.qualname(o.func) in _RNNS for o in origins):
            return origins[0]  # type: ignore[return-value]
        return None

    def _rnn_output(self, call: cst.Call, rnn: cst.Call, path: list[int], env: _Env,
                    inlined: int) -> Optional[Layout]:
        first = self.layout(call.args[0].value, env, inlined)
        batch_first = next((literal(a.value, None) for a in rnn.args
                            if a.keyword is not None and a.keyword.value == "batch_first"), False)
        if path == [0]:
            return first[:-1] + ((f"hidden{id(call)}",),) if first is not None and len(first) >= 2 else None
        axis = 0 if batch_first is True else 1 if batch_first is False else None
        if path[0] != 1 or len(path) > 2 or axis is None:
            return None
        if first is None and inlined == 0 and self._is_root(call.args[0].value):
            first = tuple((i,) for i in range(axis + 1))  # the root itself, of unknown rank
        if first is None or len(first) <= axis:
            return None
        batch = first[axis]
        return ((f"1?layers{id(call)}",), batch, (f"hidden{id(call)}",))

    def _inline(self, call: cst.Call, function: cst.FunctionDef, path: list[int], env: _Env,
                inlined: int) -> Optional[Layout]:
        """A same-file function's result, its parameters holding the caller's arguments' layouts."""
        if inlined >= _MAX_INLINE or has_star_args(call):
            return None
        params = list(function.params.params)
        if params and params[0].name.value == "self" and self.facts.values.class_of(function) is not None:
            params = params[1:]
        inner: _Env = {}
        for index, param in enumerate(params):
            arg = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == param.name.value),
                       positional(call, index))
            if arg is not None:
                inner[param.name.value] = self.layout(arg, env, inlined)
        returns = self.facts.values.returns(function)
        if not returns or any(r is None for r in returns):
            return None
        return _agree([self._element(r, path, inner, inlined + 1) for r in returns])  # type: ignore[arg-type]

    def _module(self, call: cst.Call, env: _Env, inlined: int) -> Optional[Layout]:
        """A module call keeps a moved, channels-last layout of its first argument (tokens to tokens)."""
        if not call.args or call.args[0].keyword is not None:
            return None
        layout = self.layout(call.args[0].value, env, inlined)
        if layout is None or len(layout[-1]) != 1 or not isinstance(layout[-1][0], int):
            return None
        flat = [label for axis in layout for label in axis if isinstance(label, int)]
        return layout if flat != sorted(flat) else None


def _agree(layouts: Sequence[Optional[Layout]]) -> Optional[Layout]:
    if not layouts or any(layout is None for layout in layouts):
        return None
    first = layouts[0]
    return first if all(layout == first for layout in layouts) else None


def _reorder(method: str, layout: Optional[Layout], args: list[cst.BaseExpression]) -> Optional[Layout]:
    """``transpose(a, b)``, ``permute(...)``, ``flatten(start, end)`` applied to a layout."""
    if layout is None:
        return None
    if method == "permute" and len(args) == 1 and isinstance(args[0], (cst.Tuple, cst.List)):
        args = [e.value for e in args[0].elements]
    values = [literal(a, None) for a in args]
    if any(type(v) is not int for v in values):
        return None
    ndim = len(layout)
    axes = [v + ndim if v < 0 else v for v in values]  # type: ignore[operator]
    if any(not 0 <= a < ndim for a in axes):
        return None
    if method in ("transpose", "swapaxes") and len(axes) == 2:
        swapped = list(layout)
        swapped[axes[0]], swapped[axes[1]] = layout[axes[1]], layout[axes[0]]
        return tuple(swapped)
    if method == "permute" and sorted(axes) == list(range(ndim)):
        return tuple(layout[a] for a in axes)
    if method == "flatten" and len(axes) <= 2:
        start, end = (axes + [0, ndim - 1][len(axes):])[:2]
        if start > end:
            return None
        merged = tuple(label for axis in layout[start:end + 1] for label in axis)
        return layout[:start] + (merged,) + layout[end + 1:]
    return None


def _moved(layout: Layout) -> bool:
    """Is ``layout`` other than the root's own axes, in order?"""
    return [label for axis in layout for label in axis] != list(range(len(layout)))


def _cuts_across(layout: Layout, groups: Sequence[Optional[list[int]]], moved: bool) -> bool:
    """Do the reshape arguments (root axes per argument, see ``Layouts._roots``) cut across ``layout``?

    Positions are those of the labels in the flattened layout; a skipped position is fine when an
    unknown argument or ``-1`` since the last named one can hold it, or when it may be of size 1.
    The root's own, unmoved axes are :meth:`Shapes.dims_per_argument`'s: there only a ``-1`` that
    takes the axes after a named one is reported here.
    """
    flat = [label for axis in layout for label in axis]
    maybe_one = {i for i, label in enumerate(flat) if isinstance(label, str) and label.startswith("1?")}
    pointer, absorbs, rest_before = 0, False, False
    named: set[int] = set()
    for group in groups:
        if group is None or group == [-1]:
            absorbs = True
            rest_before = rest_before or group == [-1]
            continue
        if not group:
            continue
        if any(axis not in flat or axis in named for axis in group):
            # an axis this tensor no longer holds, or a size named twice (``view(b, n, n)`` of a
            # (b, n, n) attention map): another axis of the same size, unknown which
            absorbs = True
            continue
        named.update(group)
        positions = sorted(flat.index(axis) for axis in group)
        if positions[0] < pointer and moved:
            return True
        skipped = set(range(pointer, positions[-1] + 1)) - set(positions)
        if skipped - maybe_one and not absorbs and moved:
            return True
        pointer, absorbs = positions[-1] + 1, False
    # a -1 before the last named axis while axes after it are left over: the -1 took them
    left = set(range(pointer, len(flat))) - maybe_one
    return bool(left) and rest_before and not absorbs


def _size_read(expr: Optional[cst.BaseExpression]) -> Optional[tuple[cst.Name, int]]:
    """``x.size(i)``, ``x.shape[i]``, ``x.size()[i]``: the tensor name and ``i``."""
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value == "size" \
            and len(expr.args) == 1 and isinstance(expr.func.value, cst.Name):
        index = literal(expr.args[0].value, None)
        return (expr.func.value, index) if type(index) is int else None
    if isinstance(expr, cst.Subscript) and len(expr.slice) == 1 and isinstance(expr.slice[0].slice, cst.Index):
        index = literal(expr.slice[0].slice.value, None)
        owner = expr.value
        if isinstance(owner, cst.Call) and not owner.args:
            owner = owner.func
        if type(index) is int and isinstance(owner, cst.Attribute) and owner.attr.value in ("shape", "size") \
                and isinstance(owner.value, cst.Name):
            return owner.value, index
    return None


def _path_to(target: cst.BaseExpression, name: str) -> Optional[list[int]]:
    """Where ``name`` sits in a nested assignment target (``a, (b, c)``: ``c`` is ``[1, 1]``)."""
    if isinstance(target, cst.Name):
        return [] if target.value == name else None
    if isinstance(target, (cst.Tuple, cst.List)) and not any(isinstance(e, cst.StarredElement) for e in target.elements):
        for index, element in enumerate(target.elements):
            inner = _path_to(element.value, name)
            if inner is not None:
                return [index] + inner
    return None
