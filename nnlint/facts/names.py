"""Name resolution: which torch/keras/tf object (or project symbol) an expression names.

One cheap pass over the file's import statements replaces libcst's scope and
qualified-name providers (which cost ~10x a parse). Resolution is
flow-insensitive: an import anywhere in the file (module level, inside a
function, under ``try``) binds its alias for the whole file, which is what real
code means in practice.

Qualified names are canonicalised so rules match one spelling:

* ``tensorflow.keras.X``, ``tf_keras.X``, ``tensorflow.python.keras.X``, ``keras.src.X`` -> ``keras.X``
* ``tensorflow.compat.v1.X`` / ``tensorflow.compat.v2.X`` -> ``tensorflow.X``
* ``torch.nn.modules.<file>.X`` -> ``torch.nn.X``
"""
from __future__ import annotations

import builtins
import math
from functools import cached_property
from typing import Callable, Iterable, Iterator, Mapping, Optional, Sequence

import libcst as cst

_PREFIX_ALIASES: tuple[tuple[str, str], ...] = (
    ("tensorflow.python.keras.", "keras."),
    ("tensorflow.keras.", "keras."),
    ("tensorflow.compat.v1.keras.", "keras."),
    ("tensorflow.compat.v1.", "tensorflow."),
    ("tensorflow.compat.v2.", "tensorflow."),
    ("tf_keras.", "keras."),
    ("keras.src.", "keras."),
    ("keras.api._v2.keras.", "keras."),
)
_EXACT_ALIASES: Mapping[str, str] = {
    "tensorflow.keras": "keras",
    "tensorflow.python.keras": "keras",
    "tf_keras": "keras",
    "tensorflow.compat.v1": "tensorflow",
    "tensorflow.compat.v2": "tensorflow",
}
# keras sub-modules whose members are re-exported one level up.
_KERAS_FLATTEN = ("keras.layers.core.", "keras.layers.convolutional.", "keras.engine.sequential.")


def canonical(qualname: str) -> str:
    """Map the many spellings of one framework object to a single name."""
    if qualname in _EXACT_ALIASES:
        return _EXACT_ALIASES[qualname]
    changed = True
    while changed:
        changed = False
        for prefix, replacement in _PREFIX_ALIASES:
            if qualname.startswith(prefix):
                qualname = replacement + qualname[len(prefix) :]
                changed = True
    if qualname.startswith("torch.nn.modules."):
        parts = qualname.split(".")
        if len(parts) >= 5:
            qualname = "torch.nn." + ".".join(parts[4:])
    for prefix in _KERAS_FLATTEN:
        if qualname.startswith(prefix):
            qualname = prefix.rsplit(".", 2)[0] + "." + qualname[len(prefix) :]
    return qualname


def dotted_name(expr: cst.BaseExpression) -> Optional[str]:
    """``a.b.c`` for a Name/Attribute chain, else ``None``."""
    parts: list[str] = []
    # Name and Attribute have no subclasses: exact type tests are cheaper than ABC isinstance
    while type(expr) is cst.Attribute:
        parts.append(expr.attr.value)  # type: ignore[attr-defined]
        expr = expr.value  # type: ignore[attr-defined]
    if type(expr) is cst.Name:
        parts.append(expr.value)
        return ".".join(reversed(parts))
    return None


def _module_dotted(node: Optional[cst.BaseExpression]) -> str:
    if node is None:
        return ""
    name = dotted_name(node)
    return name or ""


def resolve_relative(module: str, is_package: bool, level: int, target: str) -> str:
    """Absolute module name for ``from <level dots><target> import ...`` inside ``module``."""
    parts = module.split(".") if module else []
    if not is_package:
        parts = parts[:-1]
    if level > 1:
        parts = parts[: max(0, len(parts) - (level - 1))]
    if target:
        parts.append(target)
    return ".".join(parts)


class _ImportCollector(cst.CSTVisitor):
    def __init__(self, module_name: str, is_package: bool) -> None:
        self.module_name = module_name
        self.is_package = is_package
        self.bindings: dict[str, str] = {}
        #: modules of ``from <module> import *``, in order
        self.stars: list[str] = []
        self.classes: dict[str, cst.ClassDef] = {}
        self.functions: dict[str, cst.FunctionDef] = {}
        self._depth = 0

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            full = _module_dotted(alias.name)
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self.bindings[alias.asname.name.value] = full
            else:
                head = full.split(".")[0]
                # `import torch.nn` binds `torch`; keep an existing richer binding.
                self.bindings.setdefault(head, head)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        base = _module_dotted(node.module)
        level = len(node.relative)
        if level:
            base = resolve_relative(self.module_name, self.is_package, level, base)
        if isinstance(node.names, cst.ImportStar):
            if base:
                self.stars.append(base)
            return
        for alias in node.names:
            name = _module_dotted(alias.name)
            local = name
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                local = alias.asname.name.value
            self.bindings[local] = f"{base}.{name}" if base else name

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        if self._depth == 0:
            self.classes[node.name.value] = node
        self._depth += 1
        return True

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._depth -= 1

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        if self._depth == 0:
            self.functions[node.name.value] = node
        self._depth += 1
        return True

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._depth -= 1


def _collect_top_level_definitions(body: Sequence[cst.CSTNode], collector: _ImportCollector) -> None:
    """Module-level classes and functions, also those under top-level ``if``/``try``/``with``."""
    # a stack, not recursion: an ``elif`` chain nests one If per branch (1000 branches are valid code)
    pending: list[Iterator[cst.CSTNode]] = [iter(body)]
    while pending:
        statement = next(pending[-1], None)
        if statement is None:
            pending.pop()
        elif isinstance(statement, cst.ClassDef):
            collector.classes[statement.name.value] = statement
        elif isinstance(statement, cst.FunctionDef):
            collector.functions[statement.name.value] = statement
        elif isinstance(statement, (cst.If, cst.Try, cst.With)):
            nested: list[cst.CSTNode] = []
            blocks: list[cst.BaseSuite] = [statement.body]
            if isinstance(statement, cst.If) and isinstance(statement.orelse, cst.Else):
                blocks.append(statement.orelse.body)
            if isinstance(statement, cst.Try):
                blocks.extend(handler.body for handler in statement.handlers)
            for block in blocks:
                if isinstance(block, cst.IndentedBlock):
                    nested.extend(block.body)
            if isinstance(statement, cst.If) and isinstance(statement.orelse, cst.If):
                nested.append(statement.orelse)  # elif: a statement after the if's block
            pending.append(iter(nested))


class Names:
    """Resolve expressions of one file to canonical qualified names."""

    def __init__(
        self,
        module: cst.Module,
        module_name: str,
        is_package: bool = False,
        nodes: Optional[Sequence[cst.CSTNode]] = None,
        star_lookup: Optional[Callable[[str, tuple[str, ...]], Optional[str]]] = None,
    ) -> None:
        collector = _ImportCollector(module_name, is_package)
        if nodes is None:
            module.visit(collector)
        else:
            # Reuse an existing traversal (FileFacts keeps one) instead of walking again.
            for node in nodes:
                kind = type(node)  # exact classes: cheaper than isinstance on libcst's ABC nodes
                if kind is cst.Import:
                    collector.visit_Import(node)  # type: ignore[arg-type]
                elif kind is cst.ImportFrom:
                    collector.visit_ImportFrom(node)  # type: ignore[arg-type]
            _collect_top_level_definitions(module.body, collector)
        self.module_name = module_name
        self.bindings: Mapping[str, str] = collector.bindings
        #: module-level classes and functions defined in this file
        self.classes: Mapping[str, cst.ClassDef] = collector.classes
        self.functions: Mapping[str, cst.FunctionDef] = collector.functions
        #: modules this file star-imports (``from utils import *``), in order
        self.star_modules: tuple[str, ...] = tuple(collector.stars)
        #: the project module among ``star_modules`` that defines a name (asked of the project index)
        self._star_lookup = star_lookup
        self._module = module
        #: the traversal the names were collected from, when the caller had one (walked again otherwise)
        self._nodes = nodes
        #: dotted name -> its qualified name (the rules ask the same few names again and again)
        self._resolved: dict[str, Optional[str]] = {}

    def local_name(self, qualname: str) -> Optional[str]:
        """The name in this file of a qualified name pointing into it (``Net`` for ``model.Net`` in
        ``model.py``), else ``None``."""
        module = self.module_name
        if not module:
            return qualname
        return qualname[len(module) + 1:] if qualname.startswith(module + ".") else None

    def qualname(self, expr: Optional[cst.BaseExpression]) -> Optional[str]:
        """Canonical qualified name of a Name/Attribute chain, or ``None``.

        Locally defined classes/functions resolve to ``<this module>.<name>``; a name only a star
        import binds (``from utils import *``) resolves where the project index finds it defined;
        other names that are neither imported nor defined here resolve to ``None``.
        """
        if expr is None:
            return None
        dotted = dotted_name(expr)
        if dotted is None:
            return None
        if dotted in self._resolved:
            return self._resolved[dotted]
        self._resolved[dotted] = found = self._qualname_of(dotted)
        return found

    def _qualname_of(self, dotted: str) -> Optional[str]:
        head, _, rest = dotted.partition(".")
        if head in self.bindings:
            base = self.bindings[head]
        elif head in self.classes or head in self.functions:
            base = f"{self.module_name}.{head}" if self.module_name else head
        else:
            found = self.star_imported(head)
            if found is None:
                return None
            base = found
        return canonical(f"{base}.{rest}" if rest else base)

    def star_imported(self, name: str) -> Optional[str]:
        """``utils.evaluate`` for ``evaluate`` of ``from utils import *``, where the project module
        ``utils`` defines it and this file binds no ``evaluate`` of its own. A conventional alias
        (``nn``, ``F``, ``torch``) that only a star import can bind is what the convention says:
        ``from .parts import *`` re-exports the parts file's ``import torch.nn as nn``."""
        if not self.star_modules or name in self.locally_bound:
            return None
        found = self._star_lookup(name, self.star_modules) if self._star_lookup is not None else None
        if found is None and name in _CONVENTIONAL_ALIASES:
            return _CONVENTIONAL_ALIASES[name]
        project = [m for m in self.star_modules if m.split(".", 1)[0] not in LIBRARY_PACKAGES]
        if found is None and len(project) == 1 and len(self.star_modules) == 1 and name not in BUILTIN_NAMES:
            # the one module star-imported must be where it comes from (what the project index
            # resolves later; known before the index exists, as summaries need)
            return f"{project[0]}.{name}"
        return found

    @cached_property
    def locally_bound(self) -> frozenset[str]:
        """Every name this file binds other than by import: assignment, parameter, loop, ``with``,
        ``except``, comprehension and walrus targets, definitions (any depth)."""
        found: set[str] = set()
        for node in self._nodes if self._nodes is not None else _walk(self._module):
            kind = type(node)
            if kind in (cst.AssignTarget, cst.AnnAssign, cst.AugAssign, cst.For, cst.CompFor, cst.NamedExpr):
                _target_names(node.target, found)  # type: ignore[attr-defined]
            elif kind is cst.AsName:
                _target_names(node.name, found)  # type: ignore[attr-defined]
            elif kind in (cst.Param, cst.FunctionDef, cst.ClassDef):
                found.add(node.name.value)  # type: ignore[attr-defined]
        return frozenset(found)

    def call_qualname(self, node: cst.CSTNode) -> Optional[str]:
        """Qualified name of the callee if ``node`` is a call, else ``None``."""
        if isinstance(node, cst.Call):
            return self.qualname(node.func)
        return None

    def is_call_to(self, node: cst.CSTNode, qualnames: Iterable[str]) -> bool:
        name = self.call_qualname(node)
        return name is not None and name in set(qualnames)

    def imports_any(self, prefixes: Iterable[str]) -> bool:
        """Does the file import anything under one of these canonical prefixes?"""
        targets = [canonical(b) for b in self.bindings.values()]
        return any(t == p or t.startswith(p + ".") for t in targets for p in prefixes)


#: Python's builtin names (never a project function, also where a star import could bind one)
BUILTIN_NAMES = frozenset(dir(builtins))
#: top-level packages whose functions are never the project's own (their calls are not recorded, and
#: a star import of one brings no project name)
LIBRARY_PACKAGES = frozenset({
    "torch", "torchvision", "torchaudio", "torchtext", "tensorflow", "keras", "jax", "flax", "numpy", "scipy",
    "sklearn", "pandas", "matplotlib", "transformers", "timm", "lightning", "pytorch_lightning", "os", "sys",
    "math", "random", "json", "logging", "time", "argparse", "copy", "functools", "itertools", "collections",
    "pathlib", "re", "pickle", "tqdm", "wandb", "PIL", "cv2", "typing", "dataclasses", "shutil", "warnings",
})
#: names that always mean one module where code leaves them to a star import
_CONVENTIONAL_ALIASES = {
    "torch": "torch", "nn": "torch.nn", "F": "torch.nn.functional", "optim": "torch.optim",
    "tf": "tensorflow", "keras": "keras", "np": "numpy",
}


def _walk(root: cst.CSTNode) -> Iterator[cst.CSTNode]:
    pending = [root]
    while pending:
        node = pending.pop()
        yield node
        pending.extend(node.children)


def _target_names(target: cst.CSTNode, out: set[str]) -> None:
    """The plain names an assignment target binds (``a``, ``a, (b, *c)``; not ``a.b`` or ``a[0]``)."""
    if isinstance(target, cst.Name):
        out.add(target.value)
    elif isinstance(target, (cst.Tuple, cst.List)):
        for element in target.elements:
            _target_names(element.value, out)
    elif isinstance(target, cst.StarredElement):
        _target_names(target.value, out)


# ---------------------------------------------------------------------------
# Small helpers on call arguments, shared by every fact module and rule.

def keyword(call: cst.Call, name: str) -> Optional[cst.BaseExpression]:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg.value
    return None


def positional(call: cst.Call, index: int) -> Optional[cst.BaseExpression]:
    pos = [a for a in call.args if a.keyword is None and not a.star]
    return pos[index].value if 0 <= index < len(pos) else None  # a negative index is no position


def argument(call: cst.Call, index: int, name: str) -> Optional[cst.BaseExpression]:
    """The argument bound to parameter ``name`` at position ``index``."""
    value = keyword(call, name)
    return value if value is not None else positional(call, index)


def has_star_args(call: cst.Call) -> bool:
    return any(a.star for a in call.args)


_UNKNOWN = object()

#: Folding stops here: an integer wider than this many bits (~300 digits, past any float) is not a
#: value a rule can use, and computing one a file asks for (``10 ** 10 ** 8``) can take minutes.
MAX_INT_BITS = 1024
#: how many nested operations ``literal`` follows; a deeper expression (a 1000-term ``+`` chain)
#: is unknown rather than a RecursionError
MAX_FOLD_DEPTH = 32
#: the longest integer literal read: 0b and 1024 binary digits (a longer one is wider than MAX_INT_BITS)
_MAX_INTEGER_TEXT = MAX_INT_BITS + 2


def fits(value: object) -> bool:
    """Is ``value`` small enough to fold and report (every value but a very wide integer)?"""
    return not isinstance(value, int) or value.bit_length() <= MAX_INT_BITS


def fold(operator: cst.BaseBinaryOp, left: object, right: object) -> object:
    """``left <operator> right`` for two numbers (not bools), or UNKNOWN.

    Unknown too when the result would be wider than MAX_INT_BITS (checked before a power is
    computed, so that it costs no time), overflows a float (``1e308 * 10``) or is not a real
    number (``(-8) ** 0.5``).
    """
    if not (_is_number(left) and _is_number(right) and fits(left) and fits(right)):
        return _UNKNOWN
    try:
        if isinstance(operator, cst.Add):
            result = left + right  # type: ignore[operator]
        elif isinstance(operator, cst.Subtract):
            result = left - right  # type: ignore[operator]
        elif isinstance(operator, cst.Multiply):
            result = left * right  # type: ignore[operator]
        elif isinstance(operator, cst.Divide):
            result = left / right  # type: ignore[operator]
        elif isinstance(operator, cst.FloorDivide):
            result = left // right  # type: ignore[operator]
        elif isinstance(operator, cst.Power):
            if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1 \
                    and (abs(left).bit_length() - 1) * right > MAX_INT_BITS:
                return _UNKNOWN  # at least 2 ** MAX_INT_BITS: not computed at all
            result = left**right  # type: ignore[operator]
        else:
            return _UNKNOWN
    except (ArithmeticError, ValueError):  # OverflowError and ZeroDivisionError are ArithmeticErrors
        return _UNKNOWN
    if isinstance(result, float) and not math.isfinite(result):
        return _UNKNOWN
    return result if _is_number(result) and fits(result) else _UNKNOWN


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def literal(expr: Optional[cst.BaseExpression], default: object = _UNKNOWN) -> object:
    """The Python value of a literal expression (numbers, strings, bools, None, tuples)."""
    value = _literal(expr, MAX_FOLD_DEPTH)
    return default if value is _UNKNOWN else value


def _literal(expr: Optional[cst.BaseExpression], depth: int) -> object:
    if expr is None or depth < 0:
        return _UNKNOWN
    if isinstance(expr, cst.Integer):
        if len(expr.value) > _MAX_INTEGER_TEXT:
            return _UNKNOWN  # ``int()`` of thousands of digits raises (and would not fit)
        number = int(expr.evaluated_value)
        return number if fits(number) else _UNKNOWN
    if isinstance(expr, cst.Float):
        return float(expr.evaluated_value)
    if isinstance(expr, cst.Imaginary):
        return _UNKNOWN
    if isinstance(expr, cst.SimpleString):
        return expr.evaluated_value
    if isinstance(expr, cst.ConcatenatedString):
        return _concatenated(expr)
    if isinstance(expr, cst.Name):
        return {"True": True, "False": False, "None": None}.get(expr.value, _UNKNOWN)
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        inner = _literal(expr.expression, depth - 1)
        return -inner if _is_number(inner) else _UNKNOWN  # type: ignore[operator]
    if isinstance(expr, cst.BinaryOperation):
        if isinstance(expr.operator, cst.FloorDivide):
            return _UNKNOWN
        return fold(expr.operator, _literal(expr.left, depth - 1), _literal(expr.right, depth - 1))
    if isinstance(expr, cst.Tuple) or isinstance(expr, cst.List):
        values = []
        for element in expr.elements:
            value = _literal(element.value, depth - 1)
            if value is _UNKNOWN:
                return _UNKNOWN
            values.append(value)
        return tuple(values)
    return _UNKNOWN


def _concatenated(expr: cst.ConcatenatedString) -> object:
    """``"a" "b"``: libcst's own evaluated_value recurses once per part (10k parts: RecursionError)."""
    parts: list[object] = []
    node: cst.BaseExpression = expr
    while isinstance(node, cst.ConcatenatedString):
        parts.append(node.left)
        node = node.right
    parts.append(node)
    values = []
    for part in parts:
        if not isinstance(part, cst.SimpleString):
            return _UNKNOWN  # an f-string
        values.append(part.evaluated_value)
    if all(isinstance(v, str) for v in values):
        return "".join(values)  # type: ignore[arg-type]
    if all(isinstance(v, bytes) for v in values):
        return b"".join(values)  # type: ignore[arg-type]
    return _UNKNOWN


def is_unknown(value: object) -> bool:
    return value is _UNKNOWN


UNKNOWN = _UNKNOWN
