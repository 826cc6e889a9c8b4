'''
## What it does
Reports `view`/`reshape` calls that reorder a tensor's own dimensions instead of transposing
them. After
`b, c, t = x.shape` (or `x.size()`), a call such as `x.view(b, t, c)`,
`x.reshape(b, h * w, c)` (after `b, c, h, w = x.shape`) or `torch.reshape(x, (t, b, c))`
names the unpacked sizes in a different order than they were unpacked, on the same,
unchanged `x`. Sizes read one by one count the same way: `n = x.shape[0]; c = x.shape[1];
p = x.shape[2] * x.shape[3]` then `x.view(n, p, c)`, or `x.view(x.size(0), -1, x.size(1))`
(the `-1` stands for the dims no argument names).

Splitting or merging dimensions in their original order is fine: `x.view(b, c * t)`,
`x.view(b, -1)`, `x.view(B, T, n_head, C // n_head)` after `B, T, C = x.size()`.
So is a reshape that follows a transpose: `x.transpose(1, 2).contiguous().view(b, t, c)`,
or `x = x.permute(0, 2, 1)` before the `view` (the rule follows reassignments).

## Why is this bad?
`view` and `reshape` never move data: they reinterpret the same memory, row-major, with a
new shape. Asking for `(b, t, c)` from a `(b, c, t)` tensor does not swap channels and
time; it cuts the flat buffer into different rows, mixing values of different channels
and time steps. The shapes line up, nothing raises, and the network silently learns from
scrambled inputs. Reordering axes is `permute`/`transpose` (followed by `reshape` if the
dimensions must also be merged).

## Example
```python
import torch.nn as nn


class TemporalHead(nn.Module):
    def __init__(self, channels, classes):
        super().__init__()
        self.fc = nn.Linear(channels, classes)

    def forward(self, x):
        b, c, t = x.shape
        x = x.view(b, t, c)  # NN502
        return self.fc(x)


def to_tokens(feature_map):
    b, c, h, w = feature_map.shape
    return feature_map.reshape(b, h * w, c)  # NN502
```

## Use instead
```python
import torch.nn as nn


class TemporalHead(nn.Module):
    def __init__(self, channels, classes):
        super().__init__()
        self.fc = nn.Linear(channels, classes)

    def forward(self, x):
        b, c, t = x.shape
        x = x.transpose(1, 2)
        return self.fc(x)


def to_tokens(feature_map):
    b, c, h, w = feature_map.shape
    return feature_map.flatten(2).transpose(1, 2)
```
In TensorFlow, `tf.reshape` has the same semantics; use `tf.transpose(x, perm)`.

## Source
Seed 001_05b9fd847e40edfb.txt, "检查你的重构" (check your reshapes): large matrix reshapes,
such as changing an image's X and Y dimensions, destroy spatial locality and make the
network learn the reshaping too; be especially careful when reshaping several
images/channels, and use a proper stacking/alignment operation instead.

In short: Swap dimensions with `permute`/`transpose`; `view`/`reshape` only regroup them. Public
reference: PyTorch documentation, `torch.Tensor.view` and `torch.permute`,
https://pytorch.org/docs/stable/generated/torch.permute.html.
'''
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import libcst as cst

from nnlint.facts.names import has_star_args, literal, positional
from nnlint.rule import Context, Rule

_RESHAPE_METHODS = frozenset({"view", "reshape"})
_RESHAPE_FUNCTIONS = frozenset({"torch.reshape", "tensorflow.reshape", "numpy.reshape", "jax.numpy.reshape"})
#: methods that return the same values in the same layout (what `view` sees is unchanged)
_LAYOUT_PRESERVING = frozenset({"contiguous", "clone", "detach", "float", "half", "double", "to", "cpu", "cuda"})


@dataclass(frozen=True, eq=False)
class ShapeUnpacking:
    """``b, c, t = x.shape``: the statement, the tensor name as used there and the size names."""

    statement: cst.Assign
    tensor: cst.Name
    dims: tuple[str, ...]


class ReshapeUsedAsTranspose(Rule):
    code = "NN502"
    name = "reshape-used-as-transpose"
    severity = "error"
    default = True
    fixable = False
    options = {}

    def check(self, ctx: Context) -> None:
        unpackings = [found for node in ctx.facts.nodes_of(cst.Assign)
                      if (found := _shape_unpacking(ctx, node)) is not None]
        for call in ctx.facts.calls():
            reshape = _reshape(ctx, call)
            if reshape is None:
                continue
            tensor, shape = reshape
            read = _dims_read_one_by_one(ctx, tensor, shape)
            if read is not None and _reordered(read):
                ctx.report(call, f"{_reshape_name(call)} reorders the dims of {tensor.value} (sizes read as "
                                 f"{tensor.value}.shape[i] in another order): use permute/transpose")
                continue
            for unpacking in unpackings:
                if unpacking.tensor.value != tensor.value or not _same_value(ctx, unpacking.tensor, tensor):
                    continue
                groups = _dims_per_argument(ctx, unpacking, shape)
                if groups is not None and _reordered(groups):
                    requested = ", ".join(" * ".join(unpacking.dims[i] for i in g) for g in groups)
                    ctx.report(
                        call,
                        f"{_reshape_name(call)} reorders the dims of {tensor.value} "
                        f"({', '.join(unpacking.dims)} -> {requested}): use permute/transpose",
                    )
                    break


def _shape_unpacking(ctx: Context, node: cst.CSTNode) -> Optional[ShapeUnpacking]:
    if not isinstance(node, cst.Assign) or len(node.targets) != 1:
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


def _reshape(ctx: Context, call: cst.Call) -> Optional[tuple[cst.Name, list[cst.BaseExpression]]]:
    """``(tensor name, shape expressions)`` for ``x.view(...)``/``x.reshape(...)``/``torch.reshape(x, ...)``."""
    if has_star_args(call) or any(arg.keyword is not None for arg in call.args):
        return None
    func = call.func
    receiver: Optional[cst.BaseExpression]
    if isinstance(func, cst.Attribute) and func.attr.value in _RESHAPE_METHODS and ctx.facts.names.qualname(func) is None:
        receiver = func.value
        shape = [arg.value for arg in call.args]
    elif ctx.facts.names.qualname(func) in _RESHAPE_FUNCTIONS:
        receiver = positional(call, 0)
        shape = [arg.value for arg in call.args[1:]]
    else:
        return None
    while isinstance(receiver, cst.Call) and isinstance(receiver.func, cst.Attribute) and (
        receiver.func.attr.value in _LAYOUT_PRESERVING
    ):
        receiver = receiver.func.value
    if not isinstance(receiver, cst.Name) or not shape:
        return None
    if len(shape) == 1 and isinstance(shape[0], (cst.Tuple, cst.List)):
        shape = [element.value for element in shape[0].elements]
    return receiver, shape


def _same_value(ctx: Context, first: cst.Name, second: cst.Name) -> bool:
    """Do both uses of the name see exactly the same binding?"""
    dataflow = ctx.facts.dataflow
    before, after = dataflow.definitions(first), dataflow.definitions(second)
    return len(before) == 1 and len(after) == 1 and before[0] is after[0]


def _dims_per_argument(
    ctx: Context, unpacking: ShapeUnpacking, shape: list[cst.BaseExpression]
) -> Optional[list[list[int]]]:
    """For each shape argument, the positions (in the unpacking) of the unpacked sizes it uses.

    ``None`` when a size name was rebound in between (it is not the unpacked size any more).
    """
    dataflow = ctx.facts.dataflow
    groups: list[list[int]] = []
    for expression in shape:
        group: list[int] = []
        for name in _names(expression):
            if name.value not in unpacking.dims:
                continue
            definitions = dataflow.definitions(name)
            if len(definitions) != 1 or definitions[0].statement is not unpacking.statement:
                return None
            group.append(unpacking.dims.index(name.value))
        if group:
            groups.append(sorted(group))
    return groups


def _dims_read_one_by_one(ctx: Context, tensor: cst.Name, shape: list[cst.BaseExpression]
                          ) -> Optional[list[list[int]]]:
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
        dims = _size_reads(ctx, tensor, expression, 1)
        if not dims:
            return None
        groups.append(dims)
    named = sorted(d for group in groups for d in group)
    if len(named) < 2 or len(set(named)) != len(named):
        return None
    if rest is not None:  # what -1 stands for: the dims left out (a new one after them all if none)
        groups[rest] = [d for d in range(named[-1]) if d not in named] or [named[-1] + 1]
    return groups


def _size_reads(ctx: Context, tensor: cst.Name, expression: cst.BaseExpression, depth: int) -> list[int]:
    """The dims of ``tensor`` an expression multiplies together; empty when it is anything else."""
    if isinstance(expression, cst.BinaryOperation) and isinstance(expression.operator, cst.Multiply):
        left, right = (_size_reads(ctx, tensor, side, depth) for side in (expression.left, expression.right))
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
        definitions = ctx.facts.dataflow.definitions(expression)
        if len(definitions) == 1 and definitions[0].value is not None:
            return _size_reads(ctx, tensor, definitions[0].value, depth - 1)
        return []
    if type(index) is int and index >= 0 and isinstance(owner, cst.Name) and owner.value == tensor.value \
            and _same_bindings(ctx, owner, tensor):
        return [index]
    return []


def _same_bindings(ctx: Context, first: cst.Name, second: cst.Name) -> bool:
    """Do both uses see the same bindings (one, or the same few of a loop: ``x.view(x.size(0), ...)``)?"""
    dataflow = ctx.facts.dataflow
    before, after = dataflow.definitions(first), dataflow.definitions(second)
    return bool(before) and {id(d.statement) for d in before} == {id(d.statement) for d in after}


def _reordered(groups: list[list[int]]) -> bool:
    """Does a size come after one that followed it in the original shape?

    Within one argument the order does not matter (``w * h`` merges the same two dims as
    ``h * w``); across arguments every earlier size must precede every later one.
    """
    return any(
        max(groups[i]) > min(groups[j]) for i in range(len(groups)) for j in range(i + 1, len(groups))
    )


def _names(node: cst.CSTNode) -> Iterator[cst.Name]:
    """Bare names read by ``node``, in source order (``self.c`` and ``f(dim=c)``'s ``dim`` are not ``c``)."""
    if isinstance(node, cst.Name):
        yield node
    elif isinstance(node, cst.Attribute):
        yield from _names(node.value)
    elif isinstance(node, cst.Arg):
        yield from _names(node.value)
    else:
        for child in node.children:
            yield from _names(child)


def _reshape_name(call: cst.Call) -> str:
    if isinstance(call.func, cst.Attribute):
        return call.func.attr.value
    return "reshape"
