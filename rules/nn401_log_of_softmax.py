'''
## What it does
Reports the logarithm of a softmax computed in two steps instead of with `log_softmax`.
Any spelling is recognised:
`torch.log(F.softmax(x, dim=1))`, `x.softmax(-1).log()`, `torch.log(torch.softmax(x, 1))`,
`p = F.softmax(x, 1)` followed by `torch.log(p)`, `torch.log(nn.Softmax(dim=1)(x))`,
`torch.log(nn.Softmax2d()(x))` (a softmax over the channels),
`tf.math.log(tf.nn.softmax(logits))` or `tf.log(...)`, also with an epsilon added
(`torch.log(F.softmax(x, 1) + 1e-8)`) or the probabilities clamped first
(`torch.log(F.softmax(x, 1).clamp(min=1e-8))`).

The log of a model's output is reported too when the model ends in a softmax
(`nn.Sequential(..., nn.Softmax(dim=1))`, a `forward` returning `F.softmax(...)`).

A guarded log of probabilities kept in a variable (`p = x.softmax(-1)` then
`-(p * torch.log(p.clamp_min(eps))).sum(-1)`, an entropy) is not reported: the
probabilities are needed anyway and the guard keeps the result finite.

## Why is this bad?
Softmax exponentiates: for logits a few dozen apart the small probabilities underflow to
exactly `0` in float32 (and much sooner in float16), and `log(0)` is `-inf`. The loss
becomes `inf`, its gradient `NaN`, and training silently breaks. An epsilon only hides
this: it caps the log-probability at `log(eps)` and biases the loss and its gradient.
`log_softmax` computes `x - logsumexp(x)` with the maximum subtracted first, which is exact
where the two-step version underflows and is also cheaper (one pass instead of
exponentiating, normalising and taking the log).

## Example
```python
import torch
import torch.nn.functional as F


def nll(logits, target):
    log_probs = torch.log(F.softmax(logits, dim=1))  # NN401
    return F.nll_loss(log_probs, target)


def entropy(logits):
    p = logits.softmax(-1)
    return -(p * p.log()).sum(-1)  # NN401
```

## Use instead
```python
import torch
import torch.nn.functional as F


def nll(logits, target):
    log_probs = F.log_softmax(logits, dim=1)
    return F.nll_loss(log_probs, target)


def entropy(logits):
    log_p = logits.log_softmax(-1)
    return -(log_p.exp() * log_p).sum(-1)
```
In TensorFlow use `tf.nn.log_softmax(logits)`, or better pass the logits to
`tf.nn.softmax_cross_entropy_with_logits` / a Keras loss with `from_logits=True`.

## Fix safety
The fix rewrites the directly nested spelling only (`torch.log(F.softmax(x, dim=1))` ->
`F.log_softmax(x, dim=1)`, `x.softmax(d).log()` -> `x.log_softmax(d)`, `tf.math.log(tf.nn.softmax(x))`
-> `tf.nn.log_softmax(x)`), keeping the softmax's arguments and reusing the module alias the
softmax was called through; it is offered only when that name exists in the file. It is
safe: the result is the same up to rounding wherever the original was finite, and finite
where the original was `-inf`. Spellings through a variable (the probabilities may be used
elsewhere), with an epsilon or a clamp, or via an `nn.Softmax` layer are reported without a fix.

## Source
Seed 003_1540c0685162747f.txt (notes on losses: "softmax分类器输出值") says that to avoid
the exponential blowing up ("指数爆炸"), softmax must subtract the largest score from every
score before exponentiating, in numerator and denominator; its cross-entropy section pairs
softmax with the log loss. `log_softmax` is the library form of that stable computation
fused with the log (PyTorch: `F.log_softmax` + `F.nll_loss`, or `F.cross_entropy` on the
logits; TensorFlow/Keras: `tf.nn.log_softmax`, `from_logits=True`).

In short: Use `log_softmax` instead of `log(softmax(x))`. Public reference: PyTorch documentation,
`torch.nn.functional.log_softmax` (numerically more stable than a log after a softmax),
https://pytorch.org/docs/stable/generated/torch.nn.functional.log_softmax.html.
'''
from __future__ import annotations

from typing import Optional

import libcst as cst

from nnlint.facts.tensors import (
    FUNCTION_STYLE,
    LOG_SOFTMAX,
    METHOD_STYLE,
    SOFTMAX,
    FUNCTIONS,
    TensorOp,
    TensorOps,
    original_text,
)
from nnlint.rule import Context, Rule

#: log_softmax functions a fix may call (``keras.activations.log_softmax`` is missing in Keras 2)
_FIX_TARGETS = frozenset(
    name for name, spelling in FUNCTIONS.items()
    if spelling.kind == LOG_SOFTMAX and not name.startswith("keras.activations.")
)


class LogOfSoftmax(Rule):
    code = "NN401"
    name = "log-of-softmax"
    severity = "warning"
    default = True
    fixable = True
    options = {}

    def check(self, ctx: Context) -> None:
        ops = ctx.facts.tensors
        for log in ops.logs():
            call = log.call
            assert log.operand is not None
            direct = ops.op(log.operand)
            if direct is not None and direct.kind == SOFTMAX:
                self._report_nested(ctx, log, direct)
                continue
            softmax = ops.resolved_op(log.operand)
            if softmax is not None and softmax.kind == SOFTMAX:
                ctx.report(call, "log of a softmax computed separately: use log_softmax")
                continue
            if self._softmax_with_epsilon(ctx, ops, log.operand):
                ctx.report(call, "log(softmax + epsilon): use log_softmax instead of an epsilon")
                continue
            if _is_softmax_model_output(ctx, ops, log.operand):
                ctx.report(call, "log of a model output that ends in softmax: output logits and use log_softmax")

    def _report_nested(self, ctx: Context, log: TensorOp, softmax: TensorOp) -> None:
        replacement = self._replacement(ctx, log, softmax)
        message = "log(softmax(x)) is unstable: use log_softmax"
        if replacement is None:
            ctx.report(log.call, message)
            return
        ctx.report(
            log.call,
            message,
            fix=[(log.call, replacement)],
            fix_message="Replace log(softmax(...)) with log_softmax(...)",
            applicability="safe",
        )

    def _replacement(self, ctx: Context, log: TensorOp, softmax: TensorOp) -> Optional[str]:
        # only `log(p)` / `p.log()` themselves; `torch.log(p, out=buf)` keeps its meaning otherwise
        if log.style == FUNCTION_STYLE and len(log.call.args) != 1:
            return None
        func = softmax.call.func
        if isinstance(func, cst.Attribute) and softmax.style in (METHOD_STYLE, FUNCTION_STYLE):
            old_name = func.attr.value
            new_name = "log_softmax" if softmax.style == METHOD_STYLE else _log_name(old_name)
            new_func: cst.BaseExpression = func.with_changes(attr=cst.Name(new_name))
        elif isinstance(func, cst.Name) and softmax.style == FUNCTION_STYLE:
            old_name = func.value
            new_name = _log_name(old_name)
            new_func = cst.Name(new_name)
        else:
            return None
        if softmax.style == FUNCTION_STYLE and ctx.facts.names.qualname(new_func) not in _FIX_TARGETS:
            return None
        # the softmax call's own text with only the called name changed; the log call goes
        func_text = original_text(ctx, func)
        call_text = original_text(ctx, softmax.call)
        if not func_text.endswith(old_name) or not call_text.startswith(func_text):
            return None
        return func_text[: -len(old_name)] + new_name + call_text[len(func_text):]

    def _softmax_with_epsilon(self, ctx: Context, ops: TensorOps, operand: cst.BaseExpression) -> bool:
        """``softmax(x) + eps``, ``softmax(x).clamp(min=eps)``, ``torch.clamp(softmax(x), min=eps)``.

        Only a softmax computed right there: probabilities kept in a variable are usually
        needed as well (``-(p * torch.log(p.clamp_min(eps))).sum()``), and the guard makes
        that code correct.
        """
        probs = ops.guarded(operand)
        found = ops.op(probs) if probs is not None else None
        return found is not None and found.kind == SOFTMAX


def _is_softmax_model_output(ctx: Context, ops: TensorOps, operand: cst.BaseExpression) -> bool:
    """``torch.log(model(x))`` where the model's last operation is a softmax."""
    value = ops.resolve(operand)
    if not isinstance(value, cst.Call):
        return False
    summary = ctx.facts.models.model_of(value.func)
    return summary is not None and summary.output_activation == SOFTMAX


def _log_name(softmax_name: str) -> str:
    return "log_softmax" if softmax_name == "softmax" else f"log_{softmax_name}"

