'''
## What it does
Reports PyTorch's `nn.BCELoss` / `F.binary_cross_entropy` computed on a sigmoid output.

The sigmoid may be the last layer of a model (`nn.Sigmoid()`, or a `forward` that returns
`torch.sigmoid(...)`), or applied right before the loss (`torch.sigmoid(logits)`, `logits.sigmoid()`, `F.sigmoid`,
`torch.special.expit`, also kept in a variable or reshaped with `.view(-1)`). The model may
be defined in another file than the loss.

A loss object chosen by a flag (`nn.BCELoss() if num_labels == 1 else nn.CrossEntropyLoss()`, or
an `if`/`else` in `__init__`) counts as `BCELoss` where what it is given is a sigmoid, leaving out
the values chosen under the other side of the same test (`nn.Sigmoid() if num_labels == 1 else
nn.Identity()`). It is reported once, at the loss call, or at the `nn.BCELoss()` when several
calls use it.

A loss helper method that branches on the model's task (`if self.method == "binary": return
F.binary_cross_entropy(y_pred, y)`) is reported when every call of it in the file passes what a
helper of the same class returns under the same test, and that is a sigmoid
(`if self.method == "binary": return torch.sigmoid(x)`).

Not reported: Keras/TensorFlow (a sigmoid output with `binary_crossentropy` and
`from_logits=False` is the documented Keras idiom, and Keras recovers the logits itself),
a sigmoid output trained with another loss (an autoencoder with a `Sigmoid` output and
`MSELoss`), probabilities that are not a plain sigmoid (clamped, averaged, multiplied by a
mask) and a model output that nnlint cannot trace.

The message says which case it is. Under CUDA autocast (`with torch.autocast("cuda")`,
`torch.cuda.amp.autocast()`, `accelerator.autocast()`, an `@autocast` helper, or Lightning's
`Trainer(precision="16-mixed")` around a `training_step`) the loss is a crash: PyTorch raises
"unsafe to autocast" on the first step. A sigmoid written at the loss (`torch.sigmoid(logits)`)
throws away logits that are right there. A model whose last layer is a sigmoid (the GAN
discriminator and VAE decoder of many tutorials) trains, but loses its gradient wherever it is
confidently wrong.

## Why is this bad?
`BCELoss` takes `log(p)` and `log(1 - p)` of probabilities that were computed in floating
point: once a logit is beyond about +17 (float32; about +8 in float16) the sigmoid rounds to
exactly `1.0`, `log(1 - p)` is `-inf`, and PyTorch clamps it to `-100`. The loss is then
capped at 100 and its gradient is exactly zero (from the other side the gradient shrinks below
a logit of about -28 and is zero below -88), so confidently wrong predictions stop being
corrected; `BCEWithLogitsLoss` keeps a gradient of size 1 there. Under CUDA autocast
`BCELoss` is refused outright: PyTorch raises "torch.nn.functional.binary_cross_entropy and
torch.nn.BCELoss are unsafe to autocast". `BCEWithLogitsLoss` fuses the
sigmoid into the loss with the log-sum-exp trick (`max(z, 0) - z * y + log(1 + exp(-|z|))`),
which is exact for every logit and equally cheap; it also takes `pos_weight` for
imbalanced labels.

## Example
```python
import torch
import torch.nn as nn
import torch.nn.functional as F


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(784, 256), nn.LeakyReLU(0.2), nn.Linear(256, 1), nn.Sigmoid())

    def forward(self, x):
        return self.net(x)


netD = Discriminator()
criterion = nn.BCELoss()


def d_step(real, labels):
    loss = criterion(netD(real), labels)  # NN204
    loss.backward()


def multilabel_loss(logits, targets):
    return F.binary_cross_entropy(torch.sigmoid(logits), targets)  # NN204


def d_step_mixed_precision(real, labels, scaler):
    with torch.autocast("cuda", dtype=torch.float16):
        loss = criterion(netD(real), labels)  # NN204
    scaler.scale(loss).backward()
```

## Use instead
```python
import torch
import torch.nn as nn
import torch.nn.functional as F


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(784, 256), nn.LeakyReLU(0.2), nn.Linear(256, 1))

    def forward(self, x):
        return self.net(x)  # a logit


netD = Discriminator()
criterion = nn.BCEWithLogitsLoss()


def d_step(real, labels):
    loss = criterion(netD(real), labels)
    loss.backward()


def multilabel_loss(logits, targets):
    return F.binary_cross_entropy_with_logits(logits, targets)


class AutoEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.decoder = nn.Sequential(nn.Linear(32, 784), nn.Sigmoid())  # pixels in [0, 1]

    def forward(self, z):
        return self.decoder(z)


def reconstruction_loss(model, z, images):
    return F.mse_loss(model(z), images)
```
Apply `torch.sigmoid` to the logits where probabilities are needed (metrics, thresholds,
sampling), outside the loss.

## Fix safety
A fix is offered only for the functional spelling with the sigmoid written inside the
call, `F.binary_cross_entropy(torch.sigmoid(z), y, ...)` (also `z.sigmoid()`,
`F.sigmoid(z)`), through a module alias under which `binary_cross_entropy_with_logits`
resolves: it becomes `F.binary_cross_entropy_with_logits(z, y, ...)`, keeping the other
arguments (both functions take `target, weight, size_average, reduce, reduction` in the same
order). It is unsafe: the loss is the same wherever the sigmoid did not saturate, but where
`BCELoss` clamped `log(0)` to `-100` the new loss is larger and has a gradient, which changes
training. A loss object (`criterion = nn.BCELoss()`, possibly shared) or a model ending in
`nn.Sigmoid()` is reported without a fix.

## Source
Seed 003_1540c0685162747f.txt: to avoid the exponential blowing up ("为防止在计算e的X次方这种指数运算时
可能出现的指数爆炸问题") the scores must be shifted by the largest score before exponentiating,
and the loss is paired with the classifier ("逻辑回归损失(对数似然损失)", "多类别Softmax分类器对应
交叉熵损失"): the log-likelihood loss is computed from the scores in one numerically stable step,
which for the logistic case is `BCEWithLogitsLoss`. Seed 001_05b9fd847e40edfb.txt:
"不要在输出层使用激活函数" (no activation on the output layer): the model outputs logits and the
loss applies the sigmoid.

In short: Feed logits to `BCEWithLogitsLoss` (or `binary_crossentropy(from_logits=True)`) instead of
a sigmoid to `BCELoss`. Public reference: PyTorch documentation, `torch.nn.BCEWithLogitsLoss` (more
numerically stable than a sigmoid followed by `BCELoss`),
https://pytorch.org/docs/stable/generated/torch.nn.BCEWithLogitsLoss.html.
'''
from __future__ import annotations

from typing import Optional

import libcst as cst

from nnlint.facts import layers as L
from nnlint.facts.dispatch import matching_returns
from nnlint.facts.losses import LossSite
from nnlint.facts.outputs import Step
from nnlint.facts.names import positional
from nnlint.facts.tensors import original_text
from nnlint.rule import Context, Rule

_BCE = "torch.nn.functional.binary_cross_entropy"
_WITH_LOGITS = "torch.nn.functional.binary_cross_entropy_with_logits"
_SIGMOID_FUNCTIONS = frozenset({"torch.sigmoid", "torch.nn.functional.sigmoid", "torch.special.expit"})


class BceOnSigmoidOutput(Rule):
    code = "NN204"
    name = "bce-on-sigmoid-output"
    severity = "warning"
    default = True
    fixable = True
    options = {}

    def check(self, ctx: Context) -> None:
        for site in ctx.facts.losses.sites:
            if site.kind != "bce" or site.framework != "torch" or site.prediction is None:
                continue
            activation, step = _last_activation(ctx.facts.outputs.steps(site.prediction))
            if activation != "sigmoid" and not self._dispatched_sigmoid(ctx, site):
                continue
            message = _message(ctx, site, step)
            fix = self._fix(ctx, site)
            if fix is None:
                ctx.report(site.node, message)
            else:
                ctx.report(site.node, message, fix=fix, applicability="unsafe",
                           fix_message="Use binary_cross_entropy_with_logits on the logits")
        self._check_chosen(ctx)

    def _check_chosen(self, ctx: Context) -> None:
        """A ``BCELoss`` picked by a flag (``nn.BCELoss() if n == 1 else nn.CrossEntropyLoss()``) and given
        a sigmoid: one finding per picked loss, at its call, or at the loss when several calls use it."""
        calls: dict[int, tuple[cst.Call, list[LossSite]]] = {}
        for site in ctx.facts.losses.chosen_sites:
            if site.kind == "bce" and site.constructor is not None \
                    and ctx.facts.outputs.activation_with(site.prediction, site.constructor) == "sigmoid":
                entry = calls.setdefault(id(site.constructor), (site.constructor, []))
                if all(site.node is not seen.node for seen in entry[1]):
                    entry[1].append(site)
        for constructor, sites in calls.values():
            message = _message(ctx, sites[0], None).replace("binary cross-entropy", "binary cross-entropy (the "
                                                            "BCELoss a flag picks)", 1)
            if len(sites) == 1:
                ctx.report(sites[0].node, message, related=[(constructor, "the BCELoss the flag picks")])
            else:
                ctx.report(constructor, message, related=[(site.node, "a loss it computes") for site in sites])

    def _dispatched_sigmoid(self, ctx: Context, site: LossSite) -> bool:
        """A loss helper method whose prediction parameter is, at every call, what a same-class helper
        returns under the loss's own ``if self.task == ...`` branch, and that is a sigmoid."""
        prediction = site.prediction
        definitions = ctx.facts.dataflow.definitions(prediction) if isinstance(prediction, cst.Name) else []
        if len(definitions) != 1 or not isinstance(definitions[0].statement, cst.Param):
            return False
        passed = matching_returns(ctx.facts, definitions[0].statement, site.node)
        return bool(passed) and all(isinstance(value, cst.Call) and self._sigmoid_operand(ctx, value) is not None
                                    for value in passed or ())

    def _fix(self, ctx: Context, site: LossSite) -> Optional[list[tuple[cst.CSTNode, str]]]:
        call = site.node
        names = ctx.facts.names
        if site.constructor is not None or names.qualname(call.func) != _BCE:
            return None
        prediction = positional(call, 0)
        if prediction is None or prediction is not site.prediction or not isinstance(prediction, cst.Call):
            return None
        logits = self._sigmoid_operand(ctx, prediction)
        if logits is None:
            return None
        func = call.func
        if isinstance(func, cst.Attribute):
            new_func: cst.BaseExpression = func.with_changes(attr=cst.Name("binary_cross_entropy_with_logits"))
        elif isinstance(func, cst.Name):
            new_func = cst.Name("binary_cross_entropy_with_logits")
        else:
            return None
        if names.qualname(new_func) != _WITH_LOGITS:
            return None  # the with-logits name is not reachable under this alias
        func_text = original_text(ctx, func)
        old_name = func.attr.value if isinstance(func, cst.Attribute) else func.value
        if not func_text.endswith(old_name):
            return None
        return [(func, func_text[: -len(old_name)] + "binary_cross_entropy_with_logits"),
                (prediction, original_text(ctx, logits))]

    def _sigmoid_operand(self, ctx: Context, call: cst.Call) -> Optional[cst.BaseExpression]:
        """``z`` of ``torch.sigmoid(z)`` / ``F.sigmoid(z)`` / ``z.sigmoid()``, when that is all the call does."""
        if ctx.facts.names.qualname(call.func) in _SIGMOID_FUNCTIONS:
            if len(call.args) == 1 and call.args[0].keyword is None and not call.args[0].star:
                return call.args[0].value
            return None
        func = call.func
        if (isinstance(func, cst.Attribute) and func.attr.value == "sigmoid" and not call.args
                and ctx.facts.names.qualname(func) is None
                and isinstance(func.value, (cst.Name, cst.Attribute, cst.Call, cst.Subscript))
                and not (isinstance(func.value, cst.Name) and func.value.value in ("self", "cls"))):
            return func.value
        return None


def _last_activation(steps: tuple[Step, ...]) -> tuple[Optional[str], Optional[Step]]:
    """The activation a traced prediction ends in (a reshape or dropout after it aside), and its step."""
    for step in steps:
        if step.category in (L.SHAPE, L.DROPOUT):
            continue
        if step.category == L.ACTIVATION:
            return L.ACTIVATION_FUNCTIONS.get(step.kind, step.kind.lower()), step
        return step.output_activation, step
    return None, None


def _message(ctx: Context, site: LossSite, step: Optional[Step]) -> str:
    fix = "drop the sigmoid and use BCEWithLogitsLoss / binary_cross_entropy_with_logits"
    if ctx.facts.precision.under_autocast(site.node):
        return f"binary cross-entropy on a sigmoid output under autocast: PyTorch raises 'unsafe to autocast'; {fix}"
    if step is not None and step.category == L.MODEL:
        return (f"binary cross-entropy on the sigmoid output of {step.kind}: past a logit of about 17 the loss is "
                f"clamped at 100 and its gradient is zero; return logits and use BCEWithLogitsLoss, which is also "
                f"the one autocast allows")
    return ("binary cross-entropy of a sigmoid taken before the loss: past a logit of about 17 it is clamped at "
            f"100 and its gradient is zero; {fix} on the logits")
