"""Expression-level tensor operations: which elementwise/reduction op a call is, in any spelling.

``torch.log(p)``, ``p.log()``, ``torch.log_(p)``, ``tf.math.log(p)``, ``tf.log(p)`` and
``np.log(p)`` are all a ``log`` of ``p``; ``F.softmax(x, 1)``, ``torch.softmax(x, 1)``,
``x.softmax(1)``, ``nn.Softmax(1)(x)``, ``self.softmax(x)`` (with ``self.softmax =
nn.Softmax(1)`` in the class) and ``tf.nn.softmax(x)`` are all a ``softmax`` of ``x``.
:func:`TensorOps.op` answers that question for one expression; :meth:`TensorOps.resolve`
follows a local variable to the value assigned to it (``p = F.softmax(x); torch.log(p)``).

Method spellings (``x.log()``) are recognised only when the receiver is not an imported
module or name, and zero-argument ops only when called without arguments, so that
``self.log("loss", value)`` (Lightning) or ``math.log(x)`` are not mistaken for tensor ops.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Optional

import libcst as cst

from nnlint.facts.names import argument, dotted_name, has_star_args, keyword, literal, positional

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts
    from nnlint.rule import Context

_LINE_BREAK = re.compile(r"(\r\n|\r|\n)")

# -- op kinds ---------------------------------------------------------------------
SOFTMAX = "softmax"
LOG_SOFTMAX = "log_softmax"
SIGMOID = "sigmoid"
LOG = "log"
EXP = "exp"
SUM = "sum"
MAX = "max"
LOGSUMEXP = "logsumexp"

TORCH = "torch"
TENSORFLOW = "tensorflow"
KERAS = "keras"
NUMPY = "numpy"
JAX = "jax"


@dataclass(frozen=True)
class FunctionSpelling:
    """A free function computing ``kind`` of its first argument."""

    kind: str
    framework: str
    #: name of the dimension parameter and its position (``None``: the op has none)
    dim_name: Optional[str] = None
    dim_index: Optional[int] = None


def _table(kind: str, framework: str, names: str, dim_name: Optional[str] = None,
           dim_index: Optional[int] = None) -> dict[str, FunctionSpelling]:
    spelling = FunctionSpelling(kind, framework, dim_name, dim_index)
    return {name: spelling for name in names.split()}


#: canonical qualified name -> what the function computes (operand = first argument)
FUNCTIONS: Mapping[str, FunctionSpelling] = {
    **_table(SOFTMAX, TORCH, "torch.softmax torch.nn.functional.softmax torch.special.softmax", "dim", 1),
    **_table(SOFTMAX, TENSORFLOW, "tensorflow.nn.softmax tensorflow.math.softmax", "axis", 1),
    **_table(SOFTMAX, KERAS, "keras.activations.softmax keras.ops.softmax keras.backend.softmax "
             "keras.ops.nn.softmax", "axis", 1),
    **_table(SOFTMAX, JAX, "jax.nn.softmax", "axis", 1),
    **_table(LOG_SOFTMAX, TORCH, "torch.log_softmax torch.nn.functional.log_softmax "
             "torch.special.log_softmax", "dim", 1),
    **_table(LOG_SOFTMAX, TENSORFLOW, "tensorflow.nn.log_softmax tensorflow.math.log_softmax", "axis", 1),
    **_table(LOG_SOFTMAX, KERAS, "keras.activations.log_softmax keras.ops.log_softmax", "axis", 1),
    **_table(LOG_SOFTMAX, JAX, "jax.nn.log_softmax", "axis", 1),
    **_table(SIGMOID, TORCH, "torch.sigmoid torch.nn.functional.sigmoid torch.special.expit"),
    **_table(SIGMOID, TENSORFLOW, "tensorflow.sigmoid tensorflow.nn.sigmoid tensorflow.math.sigmoid"),
    **_table(SIGMOID, KERAS, "keras.activations.sigmoid keras.ops.sigmoid keras.backend.sigmoid"),
    **_table(SIGMOID, JAX, "jax.nn.sigmoid"),
    **_table(LOG, TORCH, "torch.log torch.log_ torch.Tensor.log"),
    **_table(LOG, TENSORFLOW, "tensorflow.log tensorflow.math.log"),
    **_table(LOG, KERAS, "keras.ops.log keras.backend.log"),
    **_table(LOG, JAX, "jax.numpy.log"),
    **_table(LOG, NUMPY, "numpy.log"),
    **_table(EXP, TORCH, "torch.exp torch.exp_ torch.Tensor.exp"),
    **_table(EXP, TENSORFLOW, "tensorflow.exp tensorflow.math.exp"),
    **_table(EXP, KERAS, "keras.ops.exp keras.backend.exp"),
    **_table(EXP, JAX, "jax.numpy.exp"),
    **_table(EXP, NUMPY, "numpy.exp"),
    **_table(SUM, TORCH, "torch.sum", "dim", 1),
    **_table(SUM, TENSORFLOW, "tensorflow.reduce_sum tensorflow.math.reduce_sum", "axis", 1),
    **_table(SUM, KERAS, "keras.ops.sum keras.backend.sum", "axis", 1),
    **_table(SUM, JAX, "jax.numpy.sum", "axis", 1),
    **_table(SUM, NUMPY, "numpy.sum", "axis", 1),
    **_table(MAX, TORCH, "torch.max torch.amax", "dim", 1),
    **_table(MAX, TENSORFLOW, "tensorflow.reduce_max tensorflow.math.reduce_max", "axis", 1),
    **_table(MAX, KERAS, "keras.ops.max keras.ops.amax keras.backend.max", "axis", 1),
    **_table(MAX, JAX, "jax.numpy.max jax.numpy.amax", "axis", 1),
    **_table(MAX, NUMPY, "numpy.max numpy.amax", "axis", 1),
    **_table(LOGSUMEXP, TORCH, "torch.logsumexp", "dim", 1),
    **_table(LOGSUMEXP, TENSORFLOW, "tensorflow.reduce_logsumexp tensorflow.math.reduce_logsumexp",
             "axis", 1),
    **_table(LOGSUMEXP, JAX, "jax.nn.logsumexp jax.scipy.special.logsumexp", "axis", 1),
}


@dataclass(frozen=True)
class MethodSpelling:
    kind: str
    #: the op takes no arguments (``x.log()``); calls with arguments are something else
    nullary: bool = False
    dim_name: Optional[str] = None
    dim_index: Optional[int] = None


#: tensor method name -> what it computes on its receiver
METHODS: Mapping[str, MethodSpelling] = {
    "softmax": MethodSpelling(SOFTMAX, dim_name="dim", dim_index=0),
    "log_softmax": MethodSpelling(LOG_SOFTMAX, dim_name="dim", dim_index=0),
    "sigmoid": MethodSpelling(SIGMOID, nullary=True),
    "log": MethodSpelling(LOG, nullary=True),
    "log_": MethodSpelling(LOG, nullary=True),
    "exp": MethodSpelling(EXP, nullary=True),
    "exp_": MethodSpelling(EXP, nullary=True),
    "sum": MethodSpelling(SUM, dim_name="dim", dim_index=0),
    "max": MethodSpelling(MAX, dim_name="dim", dim_index=0),
    "amax": MethodSpelling(MAX, dim_name="dim", dim_index=0),
    "logsumexp": MethodSpelling(LOGSUMEXP, dim_name="dim", dim_index=0),
}


@dataclass(frozen=True)
class ModuleSpelling:
    """A layer class whose instances compute ``kind`` when called: ``nn.Softmax(dim=1)(x)``."""

    kind: str
    framework: str
    #: the constructor's dimension argument (``None``: the op has none, like ``nn.Sigmoid()``)
    dim_name: Optional[str] = None
    dim_index: Optional[int] = None


#: canonical layer class -> what calling an instance computes (operand = first call argument)
MODULES: Mapping[str, ModuleSpelling] = {
    "torch.nn.Softmax": ModuleSpelling(SOFTMAX, TORCH, "dim", 0),
    "torch.nn.Softmax2d": ModuleSpelling(SOFTMAX, TORCH),  # over the channels; takes no dim
    "torch.nn.LogSoftmax": ModuleSpelling(LOG_SOFTMAX, TORCH, "dim", 0),
    "torch.nn.Sigmoid": ModuleSpelling(SIGMOID, TORCH),
    "keras.layers.Softmax": ModuleSpelling(SOFTMAX, KERAS, "axis", 0),
}

#: functions and tensor methods that bound probabilities away from 0 before a log
CLAMP_FUNCTIONS = frozenset({"torch.clamp", "torch.clip", "torch.clamp_min",
                             "tensorflow.clip_by_value", "tensorflow.maximum", "tensorflow.math.maximum"})
CLAMP_METHODS = frozenset({"clamp", "clip", "clamp_min", "clamp_", "clamp_min_"})

FUNCTION_STYLE = "function"
METHOD_STYLE = "method"
MODULE_STYLE = "module"


@dataclass(frozen=True, eq=False)
class TensorOp:
    """One recognised op: ``kind`` of ``operand``, computed by ``call``."""

    kind: str
    call: cst.Call
    #: the tensor the op is applied to (first argument, method receiver or layer input)
    operand: Optional[cst.BaseExpression]
    #: "function" (``torch.log(x)``), "method" (``x.log()``) or "module" (``nn.Softmax(1)(x)``)
    style: str
    #: "torch", "tensorflow", "keras", "jax", "numpy"; method spellings are "torch" (tensor methods)
    framework: str
    #: canonical qualified name of the function or layer class (``None`` for methods)
    qualname: Optional[str]
    #: the dimension argument, if given
    dim: Optional[cst.BaseExpression]


#: constructors of a buffer that a loop then fills element by element
_BUFFERS = frozenset({"torch.zeros", "torch.empty", "torch.zeros_like", "torch.empty_like", "numpy.zeros",
                      "numpy.empty", "numpy.zeros_like", "numpy.empty_like"})
#: methods that move or cast a tensor without changing its values
_MOVES = frozenset({"to", "cuda", "cpu", "float", "double", "type_as"})
#: ``scatter_add(src, index)``-style functions (torch_scatter, PyG): a sum (or mean) of ``src`` per group;
#: ``torch.scatter``/``torch.scatter_add`` take ``(input, dim, index, src)`` and are not these
_GROUP_SUMS = frozenset({"scatter_add", "scatter_sum", "scatter_mean"})
_GROUP_REDUCES = frozenset({"sum", "add", "mean"})
#: ``buffer.index_add_(dim, index, source)``-style methods: adds ``source`` into the groups of ``index``
_GROUP_ADDS = {"index_add_": "source", "index_add": "source", "scatter_add_": "src", "scatter_add": "src"}
#: zero buffers such a method adds into
_ZEROS = frozenset({"torch.zeros", "torch.zeros_like"})


class TensorOps:
    """Recognise tensor ops in one file (cheap: nothing is precomputed)."""

    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts
        self._logs: Optional[tuple[TensorOp, ...]] = None

    def op(self, expr: Optional[cst.BaseExpression]) -> Optional[TensorOp]:
        """The op ``expr`` computes, if it is a call to one of the known spellings."""
        if not isinstance(expr, cst.Call) or has_star_args(expr):
            return None
        names = self._facts.names
        qualname = names.qualname(expr.func)
        if qualname is not None:
            spelling = FUNCTIONS.get(qualname)
            if spelling is None:
                return None
            dim = (argument(expr, spelling.dim_index, spelling.dim_name)
                   if spelling.dim_name is not None and spelling.dim_index is not None else None)
            return TensorOp(spelling.kind, expr, positional(expr, 0) or keyword(expr, "input")
                            or keyword(expr, "x") or keyword(expr, "logits"),
                            FUNCTION_STYLE, spelling.framework, qualname, dim)
        layer = self.layer_class(expr.func)
        if layer is not None:
            module_spelling = MODULES[layer[0]]
            dim = (argument(layer[1], module_spelling.dim_index, module_spelling.dim_name)
                   if module_spelling.dim_name is not None and module_spelling.dim_index is not None else None)
            return TensorOp(module_spelling.kind, expr, positional(expr, 0), MODULE_STYLE,
                            module_spelling.framework, layer[0], dim)
        if isinstance(expr.func, cst.Attribute):
            method = METHODS.get(expr.func.attr.value)
            receiver = expr.func.value
            if method is None or self._is_namespace(receiver) or _is_self(receiver):
                return None
            if method.nullary and expr.args:
                return None
            dim = (argument(expr, method.dim_index, method.dim_name)
                   if method.dim_name is not None and method.dim_index is not None else None)
            return TensorOp(method.kind, expr, receiver, METHOD_STYLE, TORCH, None, dim)
        return None

    def logs(self) -> tuple[TensorOp, ...]:
        """Every log of a tensor in the file (``torch.log(p)``, ``p.log()``, ``tf.math.log(p)``;
        not NumPy's, which runs on arrays outside the graph)."""
        if self._logs is None:
            found = (self.op(call) for call in self._facts.calls())
            self._logs = tuple(log for log in found if log is not None and log.kind == LOG
                               and log.framework != NUMPY and log.operand is not None)
        return self._logs

    def resolve(self, expr: Optional[cst.BaseExpression], depth: int = 8) -> Optional[cst.BaseExpression]:
        """Follow a local variable to the expression assigned to it (``p`` -> ``F.softmax(x)``)."""
        if expr is None:
            return None
        return self._facts.dataflow.resolve(expr, depth)

    def resolved_op(self, expr: Optional[cst.BaseExpression]) -> Optional[TensorOp]:
        """:meth:`op` of ``expr`` or, for a local variable, of the value assigned to it."""
        found = self.op(expr)
        if found is not None or not isinstance(expr, cst.Name):
            return found
        return self.op(self.resolve(expr))

    def filled_op(self, name: cst.BaseExpression) -> Optional[TensorOp]:
        """The op every element of a buffer is computed by: ``buf = torch.zeros(n)`` followed by
        ``buf[i] = torch.exp(v)`` (one or more such stores, all of the same op and nothing else
        written to ``buf`` in between); ``None`` for anything else."""
        if not isinstance(name, cst.Name):
            return None
        definitions = [d for d in self._facts.dataflow.definitions(name) if not isinstance(d.statement, cst.AugAssign)]
        if len(definitions) != 1 or definitions[0].value is None:
            return None
        buffer = definitions[0].value
        while isinstance(buffer, cst.Call) and isinstance(buffer.func, cst.Attribute) \
                and buffer.func.attr.value in _MOVES:  # torch.zeros(n).to(device)
            buffer = buffer.func.value
        if not isinstance(buffer, cst.Call) or self._facts.names.qualname(buffer.func) not in _BUFFERS:
            return None
        scope = self._facts.dataflow.scope_of(definitions[0].statement)
        if scope is None:
            return None
        stored: list[TensorOp] = []
        for node in self._facts.walk(scope):
            targets: list[cst.BaseExpression] = []
            if isinstance(node, cst.Assign):
                targets = [t.target for t in node.targets]
            elif isinstance(node, (cst.AugAssign, cst.AnnAssign)):
                targets = [node.target]
            for target in targets:
                if isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name) \
                        and target.value.value == name.value:
                    op = self.op(node.value) if isinstance(node, cst.Assign) else None
                    if op is None:
                        return None  # ``buf[i] += ...`` or a store of something else
                    stored.append(op)
        if not stored or any(op.kind != stored[0].kind for op in stored):
            return None
        return stored[0]

    def group_sum(self, expr: cst.BaseExpression) -> Optional[cst.BaseExpression]:
        """The tensor ``src`` if ``expr`` is its per-group sum gathered back to every element:
        ``scatter_add(src, index, dim=0)[index]``, ``scatter(src, index, reduce="sum")[index]`` (or
        ``"mean"``), ``torch.zeros(n).index_add_(0, index, src)[index]`` (``scatter_add_`` alike),
        optionally plus an epsilon and through local variables; ``None`` for anything else."""
        value = self.resolve(expr)
        if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Add):
            value = next((self.resolve(side) for side, other in ((value.left, value.right),
                          (value.right, value.left)) if self.is_epsilon(other)), None)
        if not isinstance(value, cst.Subscript) or len(value.slice) != 1 \
                or not isinstance(value.slice[0].slice, cst.Index):
            return None
        gather = value.slice[0].slice.value
        reduced = self.resolve(value.value)
        if not isinstance(reduced, cst.Call) or has_star_args(reduced):
            return None
        func = reduced.func
        qualname = self._facts.names.qualname(func)
        name = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
        if qualname is not None and not qualname.startswith("torch."):
            name = qualname.rpartition(".")[2]  # ``from torch_scatter import scatter_add as sa``
            # a 5th positional is PyG's ``reduce`` (torch_scatter's ``dim_size``): a sum only if it says so
            given = keyword(reduced, "reduce") or positional(reduced, 4)
            reduce = "sum" if given is None else literal(given, None)
            if name not in _GROUP_SUMS and not (name == "scatter" and reduce in _GROUP_REDUCES):
                return None
            src, index = argument(reduced, 0, "src"), argument(reduced, 1, "index")
        elif qualname is None and name in _GROUP_ADDS and self._is_zeros(func.value):  # type: ignore[attr-defined]
            src, index = argument(reduced, 2, _GROUP_ADDS[name]), argument(reduced, 1, "index")
        else:
            return None
        if src is None or index is None or _index_root(index) != _index_root(gather) \
                or _index_root(gather) is None:
            return None
        return src

    def _is_zeros(self, buffer: cst.BaseExpression) -> bool:
        """``torch.zeros(n)``, ``torch.zeros_like(x)``, ``x.new_zeros(n)``, moved or in a local variable."""
        buffer = self.resolve(buffer) or buffer
        while isinstance(buffer, cst.Call) and isinstance(buffer.func, cst.Attribute) \
                and buffer.func.attr.value in _MOVES:
            buffer = self.resolve(buffer.func.value) or buffer.func.value
        if not isinstance(buffer, cst.Call):
            return False
        if isinstance(buffer.func, cst.Attribute) and buffer.func.attr.value == "new_zeros":
            return True
        return self._facts.names.qualname(buffer.func) in _ZEROS

    def guarded(self, expr: cst.BaseExpression) -> Optional[cst.BaseExpression]:
        """What an epsilon or a clamp guards (``p + eps``, ``p.clamp(min=eps)``, ``torch.clamp(p,
        min=eps)``), following a local variable first; ``None`` when ``expr`` is not guarded."""
        value = self.resolve(expr)
        if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Add):
            for probs, other in ((value.left, value.right), (value.right, value.left)):
                if self.is_epsilon(other):
                    return probs
            return None
        if isinstance(value, cst.Call):
            qualname = self._facts.names.qualname(value.func)
            if qualname in CLAMP_FUNCTIONS and value.args:
                return value.args[0].value
            if qualname is None and isinstance(value.func, cst.Attribute) and value.func.attr.value in CLAMP_METHODS:
                return value.func.value
        return None

    def is_epsilon(self, expr: cst.BaseExpression) -> bool:
        """A small positive constant: a literal, a local/module constant or a name spelled like ``eps``."""
        value = literal(self.resolve(expr), None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return 0 < value < 1e-2
        if isinstance(expr, cst.Name):
            name = expr.value
        elif isinstance(expr, cst.Attribute):
            name = expr.attr.value
        else:
            return False
        lowered = name.lower()
        return lowered.startswith("eps") or lowered.endswith("eps") or lowered.endswith("epsilon")

    def layer_class(self, callee: cst.BaseExpression) -> Optional[tuple[str, cst.Call]]:
        """``(qualname, constructor call)`` when ``callee`` is an instance of a known op layer.

        ``nn.Softmax(dim=1)`` called directly, a local variable holding one, or
        ``self.<attr>`` assigned exactly once in the enclosing class.
        """
        names = self._facts.names
        constructor: Optional[cst.BaseExpression] = callee
        if isinstance(callee, cst.Name):
            constructor = self.resolve(callee)
        elif isinstance(callee, cst.Attribute) and isinstance(callee.value, cst.Name) and callee.value.value == "self":
            constructor = self._self_attribute(callee)
        if isinstance(constructor, cst.Call):
            qualname = names.qualname(constructor.func)
            if qualname in MODULES:
                return qualname, constructor
        return None

    def _self_attribute(self, attribute: cst.Attribute) -> Optional[cst.BaseExpression]:
        """The value of ``self.<attr>`` if the enclosing class assigns it exactly once."""
        owner: Optional[cst.ClassDef] = None
        for ancestor in self._facts.ancestors(attribute):
            if isinstance(ancestor, cst.ClassDef):
                owner = ancestor
                break
        if owner is None:
            return None
        values = _self_assignments(self._facts, owner).get(attribute.attr.value)
        return values[0] if values is not None and len(values) == 1 else None

    def _is_namespace(self, receiver: cst.BaseExpression) -> bool:
        """Is ``receiver`` an imported module/object (``math``, ``np``, ``logging``) rather than a value?"""
        if dotted_name(receiver) is None:
            return False
        return self._facts.names.qualname(receiver) is not None



def _self_assignments(facts: "FileFacts", owner: cst.ClassDef) -> dict[str, Optional[list[cst.BaseExpression]]]:
    """``self.<attr>`` assignments in a class body: attr -> values (``None``: also assigned otherwise).

    Computed once per class and kept on the file's facts: every ``self.<attr>`` call in
    the class asks, and walking the class body for each was quadratic.
    """
    memo: dict[cst.ClassDef, dict[str, Optional[list[cst.BaseExpression]]]] = facts.__dict__.setdefault(
        "_self_assignments", {}
    )
    found = memo.get(owner)
    if found is not None:
        return found
    table: dict[str, Optional[list[cst.BaseExpression]]] = {}
    for node in facts.nodes_of(cst.Assign, cst.AnnAssign, cst.AugAssign, within=owner.body):
        targets: list[cst.BaseExpression] = []
        value: Optional[cst.BaseExpression] = None
        if isinstance(node, cst.Assign):
            targets, value = [t.target for t in node.targets], node.value
        elif isinstance(node, cst.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        elif isinstance(node, cst.AugAssign):
            targets = [node.target]
        else:
            continue
        for target in targets:
            if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) and target.value.value == "self":
                name = target.attr.value
                if value is None:
                    table[name] = None  # an augmented assignment: the value is not one expression
                elif name not in table or table[name] is not None:
                    table.setdefault(name, []).append(value)  # type: ignore[union-attr]
    memo[owner] = table
    return table


def _index_root(index: cst.BaseExpression) -> Optional[str]:
    """The text of a group index under reshaping methods: ``dst.unsqueeze(-1).expand_as(e)`` -> ``dst``;
    ``edge_index[1]`` stays itself. ``None`` for anything but a name, attribute or subscript of one."""
    while isinstance(index, cst.Call) and isinstance(index.func, cst.Attribute):
        index = index.func.value
    if isinstance(index, cst.Subscript):
        root = dotted_name(index.value)
        key = literal(index.slice[0].slice.value, None) if len(index.slice) == 1 \
            and isinstance(index.slice[0].slice, cst.Index) else None
        return f"{root}[{key!r}]" if root is not None and isinstance(key, int) else None
    return dotted_name(index)


def _is_self(receiver: cst.BaseExpression) -> bool:
    """``self.softmax(x)`` calls a method or layer of the module, not ``Tensor.softmax``."""
    return isinstance(receiver, cst.Name) and receiver.value in ("self", "cls")


def original_text(ctx: "Context", node: cst.CSTNode) -> str:
    """The exact source text of ``node`` (``code_for_node`` loses the indentation of multi-line nodes)."""
    span = ctx.position(node)
    # only real line breaks: str.splitlines() would also split at form feeds and the like
    lines = _LINE_BREAK.split(ctx.source)
    lines = [lines[i] + (lines[i + 1] if i + 1 < len(lines) else "") for i in range(0, len(lines), 2)]
    if span.start.line == span.end.line:
        return lines[span.start.line - 1][span.start.column : span.end.column]
    parts = [lines[span.start.line - 1][span.start.column :]]
    parts.extend(lines[span.start.line : span.end.line - 1])
    parts.append(lines[span.end.line - 1][: span.end.column])
    return "".join(parts)
