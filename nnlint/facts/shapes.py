"""Shapes: where sizes come from and which dims a reshape or softmax names.

Questions answered (through ``FileFacts.shapes``):

* :attr:`Shapes.unpackings` - the file's shape unpackings (``b, c, t = x.shape`` / ``x.size()``)
* :meth:`Shapes.unpackings_of` - those that unpack the same binding of a tensor name as a use
* :meth:`Shapes.reshape` - a ``x.view(...)``/``x.reshape(...)``/``torch.reshape(x, ...)`` call: the
  tensor name (through layout-preserving ``.contiguous()``/``.to()``) and the requested shape
* :meth:`Shapes.reshape_of` - the same, of any expression (``h[-2:].view(b, -1)``); whether it
  cuts across the axes the tensor holds is :meth:`nnlint.facts.layouts.Layouts.mixes`
* :meth:`Shapes.dims_per_argument` - for each reshape argument, the unpacked sizes it multiplies
* :meth:`Shapes.dims_read_one_by_one` - for each reshape argument, the dims whose sizes it reads
  one by one (``x.size(1)``, ``x.shape[2] * x.shape[3]``), ``-1`` standing for the rest
* :func:`reordered` - does a requested shape put a size before one that preceded it
* :meth:`Shapes.int_value` - a literal or module-constant integer (``UNITS = 1; Dense(UNITS)``)
* :meth:`Shapes.last_axis` / :meth:`Shapes.normalises_last_axis` - does a softmax call or layer
  certainly normalise the last axis
* :meth:`Shapes.flattened_before` - was a layer sequence's tensor flattened to (batch, features)
  and kept 2-D up to a point
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Callable, Iterator, Optional, Sequence

import libcst as cst

from nnlint.facts import layers as L
from nnlint.facts.names import argument, has_star_args, literal, positional
from nnlint.facts.tensors import TORCH

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts
    from nnlint.facts.models import Layer

_RESHAPE_METHODS = frozenset({"view", "reshape"})
_RESHAPE_FUNCTIONS = frozenset({"torch.reshape", "tensorflow.reshape", "numpy.reshape", "jax.numpy.reshape"})
#: methods that return the same values in the same layout (what `view` sees is unchanged)
_LAYOUT_PRESERVING = frozenset({"contiguous", "clone", "detach", "float", "half", "double", "to", "cpu", "cuda"})
#: layers that keep a flattened (batch, features) tensor 2-D
_KEEPS_2D = frozenset({L.DENSE, L.ACTIVATION, L.DROPOUT})
_KEEPS_2D_NORMS = frozenset({"BatchNorm1d", "LazyBatchNorm1d", "LayerNorm", "RMSNorm"})


@dataclass(frozen=True, eq=False)
class ShapeUnpacking:
    """``b, c, t = x.shape``: the statement, the tensor name as used there and the size names."""

    statement: cst.Assign
    tensor: cst.Name
    dims: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class Reshape:
    """``x.view(b, t, c)``: the call, the tensor name, the shape arguments and the spelling (``view``)."""

    call: cst.Call
    #: a name (an expression for :meth:`Shapes.reshape_of`)
    tensor: cst.Name
    shape: tuple[cst.BaseExpression, ...]
    name: str


class Shapes:
    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts

    @cached_property
    def unpackings(self) -> tuple[ShapeUnpacking, ...]:
        return tuple(found for node in self._facts.nodes_of(cst.Assign)
                     if (found := _shape_unpacking(node)) is not None)  # type: ignore[arg-type]

    def unpackings_of(self, tensor: cst.Name) -> Iterator[ShapeUnpacking]:
        """Unpackings of the same binding of ``tensor`` as this use sees."""
        for unpacking in self.unpackings:
            if unpacking.tensor.value == tensor.value and self._same_value(unpacking.tensor, tensor):
                yield unpacking

    def reshape(self, call: cst.Call) -> Optional[Reshape]:
        """``x.view(...)``/``x.reshape(...)``/``torch.reshape(x, ...)`` of a tensor name, with its shape."""
        found = self.reshape_of(call)
        if found is None or not isinstance(found.tensor, cst.Name):
            return None
        return found  # type: ignore[return-value]

    def reshape_of(self, call: cst.Call) -> Optional[Reshape]:
        """A reshape call as :meth:`reshape`, of any expression (``h[-2:].view(b, -1)``); its
        ``tensor`` is that expression. Layout-preserving calls (``.contiguous()``) are skipped."""
        if has_star_args(call) or any(arg.keyword is not None for arg in call.args):
            return None
        names = self._facts.names
        func = call.func
        receiver: Optional[cst.BaseExpression]
        if isinstance(func, cst.Attribute) and func.attr.value in _RESHAPE_METHODS and names.qualname(func) is None:
            receiver = func.value
            shape = [arg.value for arg in call.args]
        elif names.qualname(func) in _RESHAPE_FUNCTIONS:
            receiver = positional(call, 0)
            shape = [arg.value for arg in call.args[1:]]
        else:
            return None
        while isinstance(receiver, cst.Call) and isinstance(receiver.func, cst.Attribute) and (
            receiver.func.attr.value in _LAYOUT_PRESERVING
        ):
            receiver = receiver.func.value
        if receiver is None or not shape:
            return None
        if len(shape) == 1 and isinstance(shape[0], (cst.Tuple, cst.List)):
            shape = [element.value for element in shape[0].elements]
        name = func.attr.value if isinstance(func, cst.Attribute) else "reshape"
        return Reshape(call, receiver, tuple(shape), name)

    def _same_value(self, first: cst.Name, second: cst.Name) -> bool:
        """Do both uses of the name see exactly the same binding?"""
        dataflow = self._facts.dataflow
        before, after = dataflow.definitions(first), dataflow.definitions(second)
        return len(before) == 1 and len(after) == 1 and before[0] is after[0]

    def dims_per_argument(self, unpacking: ShapeUnpacking,
                          shape: Sequence[cst.BaseExpression]) -> Optional[list[list[int]]]:
        """For each shape argument, the positions (in the unpacking) of the unpacked sizes it uses.

        ``None`` when a size name was rebound in between (it is not the unpacked size any more).
        """
        dataflow = self._facts.dataflow
        groups: list[list[int]] = []
        for expression in shape:
            group: list[int] = []
            for name in names_read(expression):
                if not isinstance(name, cst.Name) or name.value not in unpacking.dims:
                    continue
                definitions = dataflow.definitions(name)
                if len(definitions) != 1 or definitions[0].statement is not unpacking.statement:
                    return None
                group.append(unpacking.dims.index(name.value))
            if group:
                groups.append(sorted(group))
        return groups

    def dims_read_one_by_one(self, tensor: cst.Name,
                             shape: Sequence[cst.BaseExpression]) -> Optional[list[list[int]]]:
        """For each shape argument, the dims of ``tensor`` whose sizes it reads one by one
        (``x.size(1)``, ``x.shape[2] * x.shape[3]``, or a name assigned exactly that), with a ``-1``
        standing for the dims no argument names; ``None`` unless every argument is such sizes."""
        groups: list[list[int]] = []
        rest: Optional[int] = None
        for position, expression in enumerate(shape):
            if literal(expression, None) == -1 and rest is None:
                rest = position
                groups.append([])
                continue
            dims = self._size_reads(tensor, expression, 1)
            if not dims:
                return None
            groups.append(dims)
        named = sorted(d for group in groups for d in group)
        if len(named) < 2 or len(set(named)) != len(named):
            return None
        if rest is not None:  # what -1 stands for: the dims left out (a new one after them all if none)
            groups[rest] = [d for d in range(named[-1]) if d not in named] or [named[-1] + 1]
        return groups

    def _size_reads(self, tensor: cst.Name, expression: cst.BaseExpression, depth: int) -> list[int]:
        """The dims of ``tensor`` an expression multiplies together; empty when it is anything else."""
        if isinstance(expression, cst.BinaryOperation) and isinstance(expression.operator, cst.Multiply):
            left, right = (self._size_reads(tensor, side, depth) for side in (expression.left, expression.right))
            return left + right if left and right else []
        index: object = None
        owner: Optional[cst.BaseExpression] = None
        if isinstance(expression, cst.Subscript) and len(expression.slice) == 1 \
                and isinstance(expression.slice[0].slice, cst.Index):
            index = literal(expression.slice[0].slice.value, None)
            owner = expression.value
            if isinstance(owner, cst.Call) and not owner.args:  # ``x.size()[1]``
                owner = owner.func
            if not (isinstance(owner, cst.Attribute) and owner.attr.value in ("shape", "size")):
                return []
            owner = owner.value
        elif isinstance(expression, cst.Call) and isinstance(expression.func, cst.Attribute) \
                and expression.func.attr.value == "size" and len(expression.args) == 1:
            index, owner = literal(expression.args[0].value, None), expression.func.value
        elif isinstance(expression, cst.Name) and depth > 0:
            definitions = self._facts.dataflow.definitions(expression)
            if len(definitions) == 1 and definitions[0].value is not None:
                return self._size_reads(tensor, definitions[0].value, depth - 1)
            return []
        if type(index) is int and index >= 0 and isinstance(owner, cst.Name) and owner.value == tensor.value \
                and self._same_bindings(owner, tensor):
            return [index]
        return []

    def _same_bindings(self, first: cst.Name, second: cst.Name) -> bool:
        """Do both uses see the same bindings (one, or the same few of a loop: ``x.view(x.size(0), ...)``)?"""
        dataflow = self._facts.dataflow
        before, after = dataflow.definitions(first), dataflow.definitions(second)
        return bool(before) and {id(d.statement) for d in before} == {id(d.statement) for d in after}

    # -- axes ------------------------------------------------------------------------------
    def int_value(self, expr: Optional[cst.BaseExpression]) -> Optional[int]:
        """A literal integer, or a module constant's (``UNITS = 1; Dense(UNITS, ...)``)."""
        if expr is None:
            return None
        value = literal(expr, None)
        if value is None and isinstance(expr, cst.Name):
            value = self._facts.constants.value(expr)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def last_axis(self, dim: Optional[cst.BaseExpression], framework: str, call: cst.Call) -> bool:
        """Does this softmax call (its ``dim``/``axis`` argument ``dim``) certainly normalise the last axis?"""
        if dim is not None:
            return self.int_value(dim) == -1
        if framework == TORCH:
            return False  # PyTorch's implicit dim depends on the number of dimensions
        # TensorFlow/Keras/JAX default to the last axis; TF1 spelled it ``dim=``
        return all(arg.keyword is None or arg.keyword.value == "name" for arg in call.args[1:]) and not any(
            arg.keyword is not None and arg.keyword.value == "dim" for arg in call.args)

    def normalises_last_axis(self, softmax: "Layer", flattened: bool) -> bool:
        """Does a softmax layer normalise the last axis (``dim=1`` counts on a flattened 2-D tensor)?"""
        qualname = softmax.qualname or ""
        if qualname.startswith("keras."):
            if qualname.endswith(".Activation"):
                return True  # activation functions use the last axis
            axis = argument(softmax.node, 0, "axis")  # type: ignore[arg-type]
            return axis is None or self.int_value(axis) == -1
        if qualname not in ("torch.nn.Softmax", "torch.nn.LogSoftmax"):
            return False  # Softmax2d normalises the channels
        dim = self.int_value(argument(softmax.node, 0, "dim"))  # type: ignore[arg-type]
        return dim == -1 or (flattened and dim == 1)

    def flattened_before(self, layers: Sequence["Layer"]) -> bool:
        """Was the tensor flattened to (batch, features) and kept 2-D up to the end of ``layers``?"""
        for layer in reversed(layers):
            if layer.qualname == "torch.nn.Flatten":
                start = argument(layer.node, 0, "start_dim")  # type: ignore[arg-type]
                end = argument(layer.node, 1, "end_dim")  # type: ignore[arg-type]
                return (start is None or self.int_value(start) == 1) and (end is None or self.int_value(end) == -1)
            if layer.category in _KEEPS_2D or (layer.category == L.NORM and layer.kind in _KEEPS_2D_NORMS):
                continue
            return False
        return False


def reordered(groups: Sequence[Sequence[int]]) -> bool:
    """Does a size come after one that followed it in the original shape?

    Within one argument the order does not matter (``w * h`` merges the same two dims as
    ``h * w``); across arguments every earlier size must precede every later one.
    """
    return any(
        max(groups[i]) > min(groups[j]) for i in range(len(groups)) for j in range(i + 1, len(groups))
    )


def _shape_unpacking(node: cst.Assign) -> Optional[ShapeUnpacking]:
    if len(node.targets) != 1:
        return None
    target = node.targets[0].target
    if not isinstance(target, (cst.Tuple, cst.List)) or len(target.elements) < 2:
        return None
    if not all(isinstance(e.value, cst.Name) and not isinstance(e, cst.StarredElement) for e in target.elements):
        return None
    dims = tuple(e.value.value for e in target.elements)  # type: ignore[attr-defined]
    if len(set(dims)) != len(dims):
        return None
    value = node.value
    if isinstance(value, cst.Call) and not value.args and isinstance(value.func, cst.Attribute) and (
        value.func.attr.value == "size"
    ):
        value = value.func
    if isinstance(value, cst.Attribute) and value.attr.value in ("shape", "size") and isinstance(value.value, cst.Name):
        if value.attr.value == "size" and node.value is value:
            return None  # `x.size` without the call is a method object, not a shape
        return ShapeUnpacking(node, value.value, dims)
    return None


def names_read(node: cst.CSTNode, whole: Optional[Callable[[cst.CSTNode], bool]] = None
               ) -> Iterator[cst.BaseExpression]:
    """Bare names read by ``node``, in source order (``self.c`` and ``f(dim=c)``'s ``dim`` are not
    ``c``); a sub-expression for which ``whole`` holds (``x.size(0)``) is yielded as one read."""
    if whole is not None and whole(node):
        yield node  # type: ignore[misc]
    elif isinstance(node, cst.Name):
        yield node
    elif isinstance(node, cst.Attribute):
        yield from names_read(node.value, whole)
    elif isinstance(node, cst.Arg):
        yield from names_read(node.value, whole)
    else:
        for child in node.children:
            yield from names_read(child, whole)
