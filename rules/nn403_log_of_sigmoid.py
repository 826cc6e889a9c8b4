'''
## What it does
Reports the logarithm of a sigmoid, or of one minus a sigmoid, computed in two steps.

This is the hand-written binary cross-entropy `-(y * log(p) + (1 - y) * log(1 - p))` on
`p = sigmoid(x)`, in any spelling: `torch.log(torch.sigmoid(x))`, `torch.log(1 - p)` with `p = torch.sigmoid(x)`,
`p = self.sig(x)` with `self.sig = nn.Sigmoid()`, `x.sigmoid().log()`, `tf.math.log(tf.sigmoid(x))`,
also with an epsilon added (`torch.log(torch.sigmoid(x) + 1e-8)`) or the sigmoid clamped first,
and the log of a model's output when the model ends in a sigmoid. Probabilities kept in a
variable and guarded where the log is taken (`torch.log(p.clamp(min=eps))`, as in losses
that also weight by `p`) are not reported: the guard keeps the result finite.

## Why is this bad?
A sigmoid saturates: past a logit of about 17 (float32) `sigmoid(x)` rounds to exactly `1`, so
`log(1 - p)` is `log(0) = -inf`, and below about -88 `p` underflows to `0` and `log(p)` is
`-inf`. The loss turns `inf`, its gradient `NaN`, and training breaks; well before that, the
two-step form loses every digit of precision the logit had. An epsilon only hides the
problem: the loss is capped at `-log(eps)` and its gradient vanishes exactly where the model
is most wrong. `F.logsigmoid(x)` computes `log(sigmoid(x))` directly and stably, and
`log(1 - sigmoid(x))` is `F.logsigmoid(-x)`.

## Example
```python
import torch
import torch.nn as nn


class FocalLoss(nn.Module):
    def __init__(self):
        super().__init__()
        self.sig = nn.Sigmoid()

    def forward(self, logits, target):
        p = self.sig(logits)
        log_pos = torch.log(p)  # NN403
        log_neg = torch.log(1 - torch.sigmoid(logits) + 1e-6)  # NN403
        return -(target * (1 - p) ** 2 * log_pos + (1 - target) * p ** 2 * log_neg).mean()
```

## Use instead
```python
import torch
import torch.nn as nn
import torch.nn.functional as F


class FocalLoss(nn.Module):
    def forward(self, logits, target):
        p = torch.sigmoid(logits)
        log_pos = F.logsigmoid(logits)
        log_neg = F.logsigmoid(-logits)
        return -(target * (1 - p) ** 2 * log_pos + (1 - target) * p ** 2 * log_neg).mean()
```
For a plain binary cross-entropy, pass the logits to `F.binary_cross_entropy_with_logits`
(Keras/TensorFlow: `tf.nn.sigmoid_cross_entropy_with_logits`, or a loss with
`from_logits=True`; `tf.math.log_sigmoid(x)` for the log itself).

## Fix safety
No fix: the logits the rewrite needs are often in another expression or another function.

## Source
Seed 003_1540c0685162747f.txt warns that the exponential in softmax/sigmoid outputs blows up
("指数爆炸") and must be computed in a stable form; its loss notes pair the sigmoid output
with the log loss. The library form of that stable computation is a function of the logits:
PyTorch's `F.logsigmoid` and `BCEWithLogitsLoss` ("more numerically stable than using a plain
Sigmoid followed by a BCELoss", torch.nn.BCEWithLogitsLoss documentation), TensorFlow's
`tf.nn.sigmoid_cross_entropy_with_logits`.

In short: Use `F.logsigmoid(x)` (or a logits loss) instead of `log(sigmoid(x))`. Public reference:
PyTorch documentation, `torch.nn.functional.logsigmoid`,
https://pytorch.org/docs/stable/generated/torch.nn.functional.logsigmoid.html, and
`torch.nn.BCEWithLogitsLoss`.
'''
from __future__ import annotations

from typing import Optional

import libcst as cst

from nnlint.facts.names import literal
from nnlint.facts.tensors import SIGMOID, TensorOps
from nnlint.rule import Context, Rule


class LogOfSigmoid(Rule):
    code = "NN403"
    name = "log-of-sigmoid"
    severity = "warning"
    default = True
    fixable = False
    options = {}

    def check(self, ctx: Context) -> None:
        ops = ctx.facts.tensors
        for log in ops.logs():
            call = log.call
            assert log.operand is not None
            found = _sigmoid_under(ctx, ops, log.operand)
            if found is None:
                continue
            complement, what = found
            if complement:
                ctx.report(call, f"log(1 - sigmoid) of {what}: -inf once the sigmoid saturates; use "
                                 "F.logsigmoid(-logits), or binary_cross_entropy_with_logits")
            else:
                ctx.report(call, f"log(sigmoid) of {what}: -inf once the sigmoid saturates; use "
                                 "F.logsigmoid(logits), or binary_cross_entropy_with_logits")


def _sigmoid_under(ctx: Context, ops: TensorOps, operand: cst.BaseExpression) -> Optional[tuple[bool, str]]:
    """``(complement, what)`` when ``operand`` is a sigmoid, or one minus it, past variables,
    epsilons and clamps; ``None`` otherwise."""
    complement = guarded_variable = False
    expr: Optional[cst.BaseExpression] = operand
    for _ in range(8):
        if expr is None:
            return None
        value = ops.resolve(expr) or expr
        guarded = ops.guarded(value)
        if guarded is not None:
            # ``torch.log(xs_neg.clamp(min=eps))``: probabilities kept for other uses, guarded on purpose
            guarded_variable = guarded_variable or isinstance(guarded, cst.Name)
            expr = guarded
            continue
        if guarded_variable:
            return None
        if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Subtract) \
                and literal(value.left, None) in (1, 1.0) and not complement:
            complement, expr = True, value.right
            continue
        op = ops.op(value)
        if op is not None and op.kind == SIGMOID:
            return complement, "a sigmoid"
        if isinstance(value, cst.Call) and ctx.facts.outputs.activation_of(value) == "sigmoid" and op is None:
            return complement, "a model output that ends in sigmoid"
        return None
    return None
