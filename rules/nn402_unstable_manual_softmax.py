'''
## What it does
Reports a softmax written out by hand, `exp(x) / sum(exp(x))`, where `x` is not shifted by
its maximum first. Recognised spellings include `torch.exp(x) / torch.exp(x).sum(-1, keepdim=True)`,
`torch.exp(x) / torch.sum(torch.exp(x), dim=1, keepdim=True)`, `e = x.exp()` followed by
`e / e.sum(-1, keepdim=True)` (or `e /= ...`), `tf.exp(x) / tf.reduce_sum(tf.exp(x), axis=-1)`,
a buffer filled in a loop (`p = torch.zeros(n)`, `p[i] = torch.exp(v)`, `p /= p.sum()`), and the
same with `np.exp`/`np.sum` in a deep-learning file. A softmin written by hand, `exp(-d / t)`
or `exp(-beta * e)` normalised by its own sum, is reported too, and so is a softmax per group
(over the edges of each node of a graph) normalised by a per-group sum gathered back by the same
index: `e = src.exp()` then `e / scatter_add(e, index, dim=0)[index]` (`scatter(e, index,
reduce="sum")` or `"mean"`, `torch.zeros(n).index_add_(0, index, e)`, `.scatter_add_(0, index, e)`).

## Why is this bad?
`exp` overflows float32 for inputs above about 88 (float16: about 11), giving `inf / inf = NaN`;
for very negative inputs every term underflows to `0` and the result is `0 / 0 = NaN`.
Logits easily reach such values during training. A negated exponent cannot overflow, but it
underflows: `exp(-d / t)` is `0` for every distance above about `100 * t` (float32), so a softmin
whose distances are all large, or whose temperature is small, returns `0 / 0 = NaN`.
Subtracting the row maximum of the exponent first (for a softmin: the minimum distance) leaves
the result mathematically unchanged (the factor `exp(-max)` cancels) but keeps the largest
term at exactly `1`, so nothing overflows and the denominator is at least `1`.

The rule stays quiet when the exponent already subtracts something (`x - x.max(...)`,
`x - torch.max(x, 1, keepdim=True)[0]`, `x - m`, `-(d - d.min()) / t`,
`src - scatter(src, index, reduce="max")[index]`), is a negated square
(`exp(-x ** 2 / (2 * s ** 2))`: a Gaussian window, whose grid reaches its centre), is a log-probability
(`log_softmax`, `log`) or is bounded by `tanh`/`sigmoid`/`clamp`, when the variable was changed
in place (`x -= ...`), and when a buffer is also written with anything but the exponentials.

## Example
```python
import torch


def attention_weights(scores):
    return torch.exp(scores) / torch.exp(scores).sum(dim=-1, keepdim=True)  # NN402


def normalise(logits):
    e = logits.exp()
    return e / e.sum(-1, keepdim=True)  # NN402


def softmin_weights(dist, temp):
    num = torch.exp(-dist / temp)
    return num / num.sum(dim=0, keepdim=True)  # NN402
```

## Use instead
```python
import torch


def attention_weights(scores):
    return torch.softmax(scores, dim=-1)


def normalise(logits):
    e = (logits - logits.amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


def softmin_weights(dist, temp):
    return torch.softmax(-dist / temp, dim=0)
```
For a softmax per group use `torch_geometric.utils.softmax(src, index)` or `torch_scatter`'s
`scatter_softmax`, or subtract `scatter(src, index, dim=0, reduce="max")[index]` from `src` before `exp`.
In TensorFlow use `tf.nn.softmax(x, axis=-1)`, or subtract
`tf.reduce_max(x, axis=-1, keepdims=True)` before `tf.exp`.

## Fix safety
The fix subtracts the maximum of the exponent over the summed axes inside every `exp` of the
softmax: `torch.exp(x) / torch.exp(x).sum(-1, keepdim=True)` becomes
`torch.exp(x - x.amax(-1, keepdim=True)) / torch.exp(x - x.amax(-1, keepdim=True)).sum(-1, keepdim=True)`
(`tf.reduce_max`, `np.max` and `.max()` alike). It is safe: the factor `exp(-max)` cancels, so the
result is the same where it was finite. It is offered only when the exponent is a plain name or
attribute (repeating it has no side effects) and the sum runs over every element or keeps its
dimensions (`keepdim=True`), so that the maximum broadcasts like the sum. A softmax per group gets
no fix: its maximum must be taken per group too, or a group far below the global maximum underflows.

## Source
Seed 003_1540c0685162747f.txt, "softmax分类器输出值": to prevent the exponential from
blowing up ("防止在计算e的X次方这种指数运算时可能出现的指数爆炸问题"), subtract the largest
class score from every score in both the numerator and the denominator before
exponentiating; the probabilities stay in [0, 1] and still sum to 1. The library
softmax functions (`torch.softmax`, `tf.nn.softmax`) already do this.

In short: Use the library softmax, or subtract the maximum before `exp`. Public reference: PyTorch
documentation, `torch.softmax`, https://pytorch.org/docs/stable/generated/torch.softmax.html;
Goodfellow, Bengio & Courville, "Deep Learning" (2016), section 4.1, on stabilising softmax.
'''
from __future__ import annotations

from typing import Optional

import libcst as cst

from nnlint.facts.edits import subtract_max
from nnlint.facts.exponents import has_square, is_negated, is_shifted
from nnlint.facts.names import positional
from nnlint.facts.tensors import EXP, LOG, LOG_SOFTMAX, SOFTMAX, SUM, TensorOp, TensorOps
from nnlint.rule import Context, Rule

_DIVIDE_FUNCTIONS = frozenset({"torch.div", "torch.true_divide", "torch.divide", "tensorflow.divide",
                               "tensorflow.math.divide", "tensorflow.realdiv", "numpy.divide",
                               "numpy.true_divide", "jax.numpy.divide"})
#: ops whose output is bounded, so exp() of it cannot overflow
_BOUNDED_NAMES = frozenset({"tanh", "sigmoid", "clamp", "clip", "clamp_max", "log_softmax", "logsigmoid",
                            "clip_by_value", "minimum", "cos", "sin"})


class UnstableManualSoftmax(Rule):
    code = "NN402"
    name = "unstable-manual-softmax"
    severity = "warning"
    default = True
    fixable = True
    options = {}

    def check(self, ctx: Context) -> None:
        ops = TensorOps(ctx.facts)
        for node in ctx.facts.nodes_of(cst.BinaryOperation, cst.AugAssign, cst.Call):
            pair = _division(ctx, node)
            if pair is None:
                continue
            numerator, denominator = pair
            exp = self._manual_softmax_exp(ctx, ops, numerator, denominator)
            if exp is not None and exp.operand is not None and not _is_stabilised(ctx, ops, exp.operand):
                total = ops.resolved_op(denominator)
                summed = ops.resolved_op(total.operand) if total is not None else None
                # a per-group normaliser (a subscript) is no op, so no fix: a global max could underflow a group
                fix = subtract_max(ctx, [exp, summed], total) if total is not None and summed is not None else None
                if is_negated(ops, exp.operand):  # exp(-d / t) over distances: a softmin
                    ctx.report(node, "softmin written by hand without subtracting the min: exp(-x) underflows "
                                     "to 0 for large x, and 0 / 0 is NaN", fix=fix,
                               fix_message="Subtract the maximum before exp")
                    continue
                ctx.report(node, "softmax written by hand without subtracting the max: exp can overflow",
                           fix=fix, fix_message="Subtract the maximum before exp")

    def _manual_softmax_exp(self, ctx: Context, ops: TensorOps, numerator: cst.BaseExpression,
                            denominator: cst.BaseExpression) -> Optional[TensorOp]:
        """The ``exp`` op if ``numerator / denominator`` is ``exp(x) / sum(exp(x))``."""
        filled = ops.filled_op(numerator)
        top = ops.resolved_op(numerator) or filled
        if top is None or top.kind != EXP:
            return None
        summand = ops.group_sum(denominator)  # ``e / scatter_add(e, index)[index]``: a softmax per group
        if summand is None:
            total = ops.resolved_op(denominator)
            if total is None or total.kind != SUM or total.operand is None:
                return None
            if isinstance(numerator, cst.Name) and isinstance(total.operand, cst.Name) \
                    and total.operand.value == numerator.value and filled is not None and filled is top:
                return top  # ``buf[i] = exp(v)`` in a loop, then ``buf /= buf.sum()``
            summand = total.operand
        summed = ops.resolved_op(summand)
        if summed is None or summed.kind != EXP:
            return None
        if summed.call is top.call or ctx.code_for(summed.call).strip() == ctx.code_for(top.call).strip():
            return top
        return None


def _division(ctx: Context, node: cst.CSTNode) -> Optional[tuple[cst.BaseExpression, cst.BaseExpression]]:
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Divide):
        return node.left, node.right
    if isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.DivideAssign) and isinstance(
        node.target, cst.Name
    ):
        return node.target, node.value
    if isinstance(node, cst.Call) and ctx.facts.names.qualname(node.func) in _DIVIDE_FUNCTIONS:
        left, right = positional(node, 0), positional(node, 1)
        if left is not None and right is not None:
            return left, right
    return None


def _is_stabilised(ctx: Context, ops: TensorOps, exponent: cst.BaseExpression) -> bool:
    """Is the exponent shifted, non-positive, bounded, or of unknown provenance?"""
    if isinstance(exponent, cst.Name):
        definitions = ctx.facts.dataflow.definitions(exponent)
        if any(isinstance(d.statement, cst.AugAssign) for d in definitions):
            return True  # `x -= x.max(...)` and friends: changed in place, do not guess
    value = ops.resolve(exponent)
    if value is None:
        return True
    if is_negated(ops, value) and has_square(ops, value):
        return True  # ``exp(-x ** 2 / s)``: a Gaussian window over a grid that reaches its centre, exp(0)
    if isinstance(value, cst.UnaryOperation) and isinstance(value.operator, cst.Minus):
        # ``-(d - d.min())`` is shifted; a bare ``-d`` is not: every term may underflow
        return _is_stabilised(ctx, ops, value.expression)
    if isinstance(value, cst.BinaryOperation):
        if isinstance(value.operator, cst.Subtract):
            return True
        if isinstance(value.operator, (cst.Multiply, cst.Divide)):  # ``(x - m) / t``, ``-(x - m) * k``
            return any(is_shifted(ops, side) for side in (value.left, value.right))
        return False
    op = ops.op(value)
    if op is not None:
        return op.kind in (LOG_SOFTMAX, LOG, SOFTMAX)
    if isinstance(value, cst.Call):
        func = value.func
        name = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
        return name in _BOUNDED_NAMES
    return False
