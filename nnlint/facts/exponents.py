"""What an exponent passed to ``exp`` looks like: shifted by something (``x - x.max()``), negated
(``-d / t``: a softmin), or a negated square (``-x ** 2 / s``: a Gaussian window).
Local variables are followed to their value."""
from __future__ import annotations

import libcst as cst

from nnlint.facts.names import literal
from nnlint.facts.tensors import TensorOps


def is_shifted(ops: TensorOps, expr: cst.BaseExpression) -> bool:
    """``x - m`` or ``-(x - m)``, also through a local variable."""
    while isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        expr = expr.expression
    value = ops.resolve(expr)
    return isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Subtract)


def has_square(ops: TensorOps, expr: cst.BaseExpression) -> bool:
    """``x ** 2``, ``x.pow(2)``, ``torch.square(x)``, under negations, products and quotients."""
    while isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        expr = expr.expression
    value = ops.resolve(expr) or expr
    if isinstance(value, cst.BinaryOperation):
        if isinstance(value.operator, cst.Power):
            return literal(value.right, None) == 2
        return isinstance(value.operator, (cst.Multiply, cst.Divide)) and any(
            has_square(ops, side) for side in (value.left, value.right))
    func = value.func if isinstance(value, cst.Call) else None
    return isinstance(func, cst.Attribute) and func.attr.value in ("square", "pow")


def is_negated(ops: TensorOps, exponent: cst.BaseExpression) -> bool:
    """``-d``, ``-d / t``, ``-beta * e``, ``d / -t``: a negated exponent (a softmin over ``d``)."""
    value = ops.resolve(exponent) or exponent
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, (cst.Multiply, cst.Divide)):
        return any(is_negated(ops, side) for side in (value.left, value.right))
    if isinstance(value, cst.UnaryOperation) and isinstance(value.operator, cst.Minus):
        return True
    number = literal(value, None)
    return isinstance(number, (int, float)) and not isinstance(number, bool) and number < 0
