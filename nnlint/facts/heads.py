"""Output heads: what sits right below a model's final normaliser.

``return F.log_softmax(F.relu(self.fc(x)))`` and ``nn.Sequential(..., nn.ReLU(), nn.Softmax())``
end in a normaliser, but what a rule about the output layer has to point at is the activation
below it (the line a fix changes). :func:`activation_below` finds that node in this file.
:func:`regression_losses` finds the calls of a regression loss written by hand in the file, and
:func:`helper_call` the call of a shared layer helper an output comes from.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import libcst as cst

from nnlint.facts import layers as L
from nnlint.facts.losses import LossSite
from nnlint.facts.outputs import OutputActivation

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.rule import Context


def activation_below(ctx: "Context", normaliser: Optional[cst.CSTNode]) -> Optional[OutputActivation]:
    """The activation applied right before ``normaliser`` (a call applying it, ``F.log_softmax(x)``,
    or a layer of a Sequential, ``nn.Softmax()``), named as in ``ACTIVATION_FUNCTIONS``, with its node
    in this file or the site another file recorded for a model's output (``F.log_softmax(net(x))``);
    ``None`` when what comes right before is not an activation (a layer) or is not known."""
    if not isinstance(normaliser, cst.Call):
        return None
    from nnlint.facts.edits import activation_operand

    outputs = ctx.facts.outputs
    operand = activation_operand(ctx, normaliser)
    if operand is not None:
        steps = [s for s in outputs.steps(operand) if s.category not in (L.SHAPE, L.DROPOUT)]
        if not steps:
            return None
        if steps[0].category == L.ACTIVATION:
            name: Optional[str] = _name(steps[0].kind)
        elif steps[0].category in (L.MODEL, L.CONTAINER):
            name = steps[0].output_activation
        else:
            return None
        node, site = outputs.activation_site(operand)
        known = name is not None and (node is not None or site is not None)
        return OutputActivation(name, node, site) if known else None
    for sequence in ctx.facts.models.sequences:
        layers = [layer for layer in sequence.layers if layer.category not in (L.SHAPE, L.DROPOUT)]
        for before, layer in zip(layers, layers[1:]):
            if layer.node is normaliser:
                return OutputActivation(_name(before.kind), before.node, None) \
                    if before.category == L.ACTIVATION else None
    return None


def _name(kind: str) -> str:
    return L.ACTIVATION_FUNCTIONS.get(kind, kind.lower())


#: words in a function's name that say it computes a loss (``smooth_l1``, ``reg_loss``, ``huber``)
_LOSS_WORDS = ("loss", "l1", "l2", "huber", "mse", "mae")
#: elementwise functions that make a difference into a distance
_DISTANCES = frozenset({"abs", "square", "pow"})
_SUBTRACT = frozenset({"tensorflow.subtract", "tensorflow.math.subtract", "torch.sub", "torch.subtract"})


def regression_losses(ctx: "Context") -> tuple[LossSite, ...]:
    """Calls of a regression loss written in this file, ``smooth_l1(pred * mask, target * mask)``:
    a module-level function named like a loss whose first two parameters are subtracted and the
    difference taken ``abs``/``square``/``** 2``. The prediction is the first argument, without a
    mask both arguments are multiplied by."""
    facts = ctx.facts
    found: list[LossSite] = []
    for statement in facts.module.body:
        if isinstance(statement, cst.FunctionDef) and _is_regression_loss(ctx, statement):
            for call in facts.calls():
                if isinstance(call.func, cst.Name) and call.func.value == statement.name.value \
                        and facts.values.callee(call) is statement and len(call.args) >= 2 \
                        and not any(arg.star or arg.keyword for arg in call.args[:2]):
                    prediction = _unmasked(ctx, call.args[0].value, call.args[1].value)
                    found.append(LossSite(call, "smooth_l1", "values", "torch", prediction))
    return tuple(found)


def _is_regression_loss(ctx: "Context", function: cst.FunctionDef) -> bool:
    if not any(word in function.name.value.lower() for word in _LOSS_WORDS):
        return False
    params = [p.name.value for p in function.params.params[:2]]
    if len(params) < 2:
        return False
    differences: set[str] = set()  # locals holding ``pred - target``
    distance = False
    for node in ctx.facts.walk(function.body):
        if isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name) \
                and _difference(ctx, node.value, params):
            differences.add(node.targets[0].target.value)
        if isinstance(node, cst.Call) and node.args:
            func = node.func
            name = func.attr.value if isinstance(func, cst.Attribute) else \
                func.value if isinstance(func, cst.Name) else ""
            operand = node.args[0].value
            distance = distance or (name in _DISTANCES and (_difference(ctx, operand, params) or (
                isinstance(operand, cst.Name) and operand.value in differences)))
    return distance


def _difference(ctx: "Context", expr: cst.BaseExpression, params: list[str]) -> bool:
    """``a - b`` or ``tf.subtract(a, b)`` of the two parameters, either way round."""
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Subtract):
        sides = [expr.left, expr.right]
    elif isinstance(expr, cst.Call) and ctx.facts.names.qualname(expr.func) in _SUBTRACT and len(expr.args) == 2:
        sides = [arg.value for arg in expr.args]
    else:
        return False
    return sorted(s.value if isinstance(s, cst.Name) else "" for s in sides) == sorted(params)


def _unmasked(ctx: "Context", prediction: cst.BaseExpression, target: cst.BaseExpression) -> cst.BaseExpression:
    """``pred`` for ``loss(pred * mask, target * mask)``: a mask keeps the sign of what it multiplies."""
    if not (isinstance(prediction, cst.BinaryOperation) and isinstance(prediction.operator, cst.Multiply)
            and isinstance(target, cst.BinaryOperation) and isinstance(target.operator, cst.Multiply)):
        return prediction
    for kept, mask in ((prediction.left, prediction.right), (prediction.right, prediction.left)):
        if ctx.code_for(mask).strip() in (ctx.code_for(target.left).strip(), ctx.code_for(target.right).strip()):
            return kept
    return prediction


def helper_call(ctx: "Context", prediction: Optional[cst.BaseExpression]) -> Optional[cst.Call]:
    """The call of a same-file layer helper the prediction is the output of (``r = conv(h)``), when
    the helper also makes hidden layers (a call of it takes what another call returned: ``conv(conv(x))``,
    ``h = conv(x); h = conv(h)``): the fix goes at that call, not into the helper. ``None`` for a
    helper that builds a whole model (``logits = model(x)``)."""
    facts = ctx.facts
    value = facts.dataflow.resolve(prediction, 8) if prediction is not None else None
    if not isinstance(value, cst.Call) or not isinstance(value.func, cst.Name):
        return None
    function = facts.values.callee(value)
    if function is None:
        return None
    calls = [c for c in facts.calls() if isinstance(c.func, cst.Name) and c.func.value == value.func.value
             and facts.values.callee(c) is function]
    for call in calls:
        for arg in call.args:
            inner = facts.dataflow.resolve(arg.value, 8) if isinstance(arg.value, cst.Name) else arg.value
            if any(inner is other for other in calls):
                return value
    return None
