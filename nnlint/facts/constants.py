"""Literal values behind names: local and module constants, imported constants, argparse defaults.

``Constants.value(expr)`` answers "what number or string does this expression hold?" for the
simple cases real training scripts use::

    LR = 1e-3                                   # a module constant (also imported from config.py)
    lr = LR * 10                                # arithmetic on known values
    parser.add_argument("--lr", type=float, default=0.1)
    args = parser.parse_args()
    torch.optim.Adam(params, lr=args.lr)        # -> 0.1, the argparse default

Anything that may take more than one value (a name assigned in two branches, an argparse
destination declared twice with different defaults, ``set_defaults`` in a branch) is unknown
(``None``), so rules stay quiet rather than guess.
"""
from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, Mapping, Optional

import libcst as cst

from nnlint.facts.names import dotted_name, fits, fold, is_unknown, keyword, literal, positional

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

_MAX_DEPTH = 8
#: scalar types a constant may have; anything else (objects, containers of unknowns) is not a constant
_SCALARS = (int, float, str, bool)
_PARSE_CALLS = frozenset({"parse_args", "parse_known_args", "parse_intermixed_args"})
_TYPE_CONVERSIONS: Mapping[str, type] = {"int": int, "float": float, "str": str}
#: an argparse destination seen with different defaults
_CONFLICT = object()


class Constants:
    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts

    # -- public API ------------------------------------------------------------
    def value(self, expr: Optional[cst.BaseExpression]) -> Any:
        """The scalar (or tuple of scalars) ``expr`` certainly holds, else ``None``."""
        return self._value(expr, 0)

    def exported(self) -> dict[str, Any]:
        """Module-level names bound exactly once to a known value (what other files may import)."""
        dataflow = self._facts.dataflow
        module = self._facts.module
        found: dict[str, Any] = {}
        for statement in module.body:
            if not isinstance(statement, cst.SimpleStatementLine):
                continue
            for small in statement.body:
                targets: list[cst.BaseExpression] = []
                if isinstance(small, cst.Assign):
                    targets = [t.target for t in small.targets]
                elif isinstance(small, cst.AnnAssign) and small.value is not None:
                    targets = [small.target]
                for target in targets:
                    if not isinstance(target, cst.Name):
                        continue
                    definitions = dataflow.assignments(module, target.value)
                    if len(definitions) != 1 or definitions[0].value is None:
                        continue
                    value = self._value(definitions[0].value, 0)
                    if value is not None:
                        found[target.value] = value
        return found

    def argparse_defaults(self) -> Mapping[str, Any]:
        """Destination -> default of every ``add_argument`` in the file with one known default."""
        return {dest: value for dest, value in self._argparse.items() if value is not _CONFLICT}

    # -- implementation ----------------------------------------------------------
    def _value(self, expr: Optional[cst.BaseExpression], depth: int) -> Any:
        if expr is None or depth > _MAX_DEPTH:
            return None
        direct = literal(expr)
        if not is_unknown(direct):
            return direct if _is_constant(direct) else None
        if isinstance(expr, cst.Name):
            return self._name_value(expr, depth)
        if isinstance(expr, cst.Attribute):
            return self._attribute_value(expr, depth)
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
            inner = self._value(expr.expression, depth + 1)
            return -inner if _is_number(inner) else None
        if isinstance(expr, cst.BinaryOperation):
            return _arithmetic(expr.operator, self._value(expr.left, depth + 1), self._value(expr.right, depth + 1))
        if isinstance(expr, (cst.Tuple, cst.List)):
            values = [self._value(element.value, depth + 1) for element in expr.elements
                      if not isinstance(element, cst.StarredElement)]
            if len(values) != len(expr.elements) or any(v is None for v in values):
                return None
            return tuple(values)
        return None

    def _name_value(self, name: cst.Name, depth: int) -> Any:
        definitions = self._facts.dataflow.definitions(name)
        if len(definitions) == 1:
            definition = definitions[0]
            if definition.value is not None:
                return self._value(definition.value, depth + 1)
            if not isinstance(definition.statement, (cst.Import, cst.ImportFrom)):
                return None  # a parameter, loop target or augmented assignment: not one value
        elif definitions:
            return None
        return self._imported(name)

    def _attribute_value(self, attribute: cst.Attribute, depth: int) -> Any:
        imported = self._imported(attribute)
        if imported is not None:
            return imported
        receiver = attribute.value
        if isinstance(receiver, cst.Name) and self._holds_parsed_arguments(receiver):
            default = self._argparse.get(attribute.attr.value)
            return None if default is _CONFLICT else default
        return None

    def _imported(self, expr: cst.BaseExpression) -> Any:
        """A constant another linted file defines: ``from config import LR`` or ``config.LR``."""
        qualname = self._facts.names.qualname(expr)
        if qualname is None:
            return None
        value = self._facts.project.constant(qualname, near=self._facts.path)
        return value if _is_constant(value) else None

    def _holds_parsed_arguments(self, name: cst.Name) -> bool:
        """Is ``name`` the namespace of ``parser.parse_args()`` (directly or as a helper's ``args`` parameter)?"""
        if not self._argparse:
            return False
        definitions = self._facts.dataflow.definitions(name)
        if not definitions:
            return False
        for definition in definitions:
            value = definition.value
            if isinstance(value, cst.Call) and _is_parse_call(value):
                continue
            if isinstance(definition.statement, cst.Assign) and isinstance(definition.statement.value, cst.Call) \
                    and _is_parse_call(definition.statement.value):
                continue  # args, unknown = parser.parse_known_args()
            if isinstance(definition.statement, cst.Param) and name.value in {"args", "opt", "opts", "flags", "cfg"}:
                continue  # def train(args, model, ...): the script passes its parsed arguments along
            return False
        return True

    @cached_property
    def _argparse(self) -> dict[str, Any]:
        defaults: dict[str, Any] = {}

        def record(dest: str, value: Any) -> None:
            if dest in defaults and defaults[dest] != value:
                defaults[dest] = _CONFLICT
            else:
                defaults[dest] = value

        for call in self._facts.calls():
            method = call.func.attr.value if isinstance(call.func, cst.Attribute) else None
            if method == "add_argument":
                dest = _destination(call)
                if dest is None:
                    continue
                default_expr = keyword(call, "default")
                if default_expr is None:
                    # argparse's own default: None, or False/True for store_true/store_false
                    action = literal(keyword(call, "action"), None)
                    record(dest, {"store_true": False, "store_false": True}.get(action, _CONFLICT))
                    continue
                value = self._value(default_expr, 1)
                converter = _TYPE_CONVERSIONS.get(dotted_name(keyword(call, "type") or cst.Name("str")) or "")
                if isinstance(value, str) and converter is not None and converter is not str:
                    try:
                        value = converter(value)  # argparse applies type= to string defaults
                    except ValueError:  # also int() of more than 4300 digits
                        value = None
                    if not fits(value):
                        value = None
                record(dest, value if value is not None else _CONFLICT)
            elif method == "set_defaults":
                for arg in call.args:
                    if arg.keyword is not None:
                        value = self._value(arg.value, 1)
                        defaults[arg.keyword.value] = value if value is not None else _CONFLICT
        return defaults


def _destination(call: cst.Call) -> Optional[str]:
    dest = literal(keyword(call, "dest"), None)
    if isinstance(dest, str):
        return dest
    flags = [literal(arg.value, None) for arg in call.args if arg.keyword is None and not arg.star]
    if not flags or not all(isinstance(flag, str) for flag in flags):
        return None
    long_flags = [f for f in flags if f.startswith("--")]
    if long_flags:
        return long_flags[0][2:].replace("-", "_")
    short = [f for f in flags if f.startswith("-")]
    if short:
        return short[0].lstrip("-").replace("-", "_")
    first = positional(call, 0)
    value = literal(first, None)
    return value if isinstance(value, str) else None


def _is_parse_call(call: cst.Call) -> bool:
    return isinstance(call.func, cst.Attribute) and call.func.attr.value in _PARSE_CALLS


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_constant(value: Any) -> bool:
    if isinstance(value, tuple):
        return all(_is_constant(v) for v in value)
    return isinstance(value, _SCALARS) and fits(value)


def _arithmetic(operator: cst.BaseBinaryOp, left: Any, right: Any) -> Any:
    # bounded like literal(): a file's `10 ** 10 ** 8` is unknown, not minutes of lint time
    value = fold(operator, left, right)
    return None if is_unknown(value) else value
