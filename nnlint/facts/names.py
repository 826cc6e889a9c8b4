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

from typing import Iterable, Mapping, Optional, Sequence

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
    for statement in body:
        if isinstance(statement, cst.ClassDef):
            collector.classes[statement.name.value] = statement
        elif isinstance(statement, cst.FunctionDef):
            collector.functions[statement.name.value] = statement
        elif isinstance(statement, (cst.If, cst.Try, cst.With)):
            blocks: list[cst.BaseSuite] = [statement.body]
            if isinstance(statement, cst.If) and statement.orelse is not None:
                blocks.append(statement.orelse.body if isinstance(statement.orelse, cst.Else) else cst.IndentedBlock([statement.orelse]))
            if isinstance(statement, cst.Try):
                blocks.extend(handler.body for handler in statement.handlers)
            for block in blocks:
                if isinstance(block, cst.IndentedBlock):
                    _collect_top_level_definitions(block.body, collector)


class Names:
    """Resolve expressions of one file to canonical qualified names."""

    def __init__(
        self,
        module: cst.Module,
        module_name: str,
        is_package: bool = False,
        nodes: Optional[Iterable[cst.CSTNode]] = None,
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

    def qualname(self, expr: Optional[cst.BaseExpression]) -> Optional[str]:
        """Canonical qualified name of a Name/Attribute chain, or ``None``.

        Locally defined classes/functions resolve to ``<this module>.<name>``;
        names that are neither imported nor defined here resolve to ``None``.
        """
        if expr is None:
            return None
        dotted = dotted_name(expr)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        if head in self.bindings:
            base = self.bindings[head]
        elif head in self.classes or head in self.functions:
            base = f"{self.module_name}.{head}" if self.module_name else head
        else:
            return None
        return canonical(f"{base}.{rest}" if rest else base)

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


def literal(expr: Optional[cst.BaseExpression], default: object = _UNKNOWN) -> object:
    """The Python value of a literal expression (numbers, strings, bools, None, tuples)."""
    if expr is None:
        return default
    if isinstance(expr, cst.Integer):
        return int(expr.evaluated_value)
    if isinstance(expr, cst.Float):
        return float(expr.evaluated_value)
    if isinstance(expr, cst.Imaginary):
        return default
    if isinstance(expr, (cst.SimpleString, cst.ConcatenatedString)):
        value = expr.evaluated_value
        return value if value is not None else default
    if isinstance(expr, cst.Name):
        return {"True": True, "False": False, "None": None}.get(expr.value, default)
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        inner = literal(expr.expression, default)
        return -inner if isinstance(inner, (int, float)) and not isinstance(inner, bool) else default
    if isinstance(expr, cst.BinaryOperation):
        left, right = literal(expr.left, default), literal(expr.right, default)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
            try:
                if isinstance(expr.operator, cst.Multiply):
                    return left * right  # type: ignore[operator]
                if isinstance(expr.operator, cst.Divide):
                    return left / right  # type: ignore[operator]
                if isinstance(expr.operator, cst.Add):
                    return left + right  # type: ignore[operator]
                if isinstance(expr.operator, cst.Subtract):
                    return left - right  # type: ignore[operator]
                if isinstance(expr.operator, cst.Power):
                    return left**right  # type: ignore[operator]
            except (ArithmeticError, ValueError):
                return default
        return default
    if isinstance(expr, cst.Tuple) or isinstance(expr, cst.List):
        values = [literal(e.value, default) for e in expr.elements]
        return default if any(v is default for v in values) else tuple(values)
    return default


def is_unknown(value: object) -> bool:
    return value is _UNKNOWN


UNKNOWN = _UNKNOWN
