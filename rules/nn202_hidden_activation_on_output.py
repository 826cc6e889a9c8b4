'''
## What it does
Reports a ReLU-family activation as the last layer of a model whose output is fed to a loss.

Hidden-layer activations are the ReLU family:
`ReLU`, `ReLU6`, `LeakyReLU`, `PReLU`, `RReLU`, `ELU`, `SELU`, `CELU`, `GELU`, `SiLU`/swish,
`Mish`, `Hardswish`; reported only when that output is what a loss is computed on.

Recognised outputs: an `nn.Sequential` ending in `nn.ReLU()`, an `nn.Module` whose `forward`
returns `F.relu(self.fc(x))` / `self.act(self.fc(x))` / `x.relu()`, a Keras model whose
last layer has `activation="relu"` (or is a `ReLU()`/`Activation("relu")` layer), also in
the functional API and in `model.add(...)` style, and the activation applied right before
the loss (`criterion(F.relu(out), y)`), also below the loss's own normaliser
(`F.nll_loss(F.log_softmax(F.relu(logits)), y)`, a `forward` ending
`return F.log_softmax(F.relu(self.fc(x)))`, a `Sequential` ending `ReLU(), Softmax()`). The
finding points at the activation (the layer or call to remove, also in another file, also when a
normaliser follows it), with the loss as a related location. The model may be defined in another
file than the loss. Recognised losses: `CrossEntropyLoss`, `NLLLoss`, `BCELoss`, `BCEWithLogitsLoss`,
`MultiLabelSoftMarginLoss`, `KLDivLoss`, `MSELoss`, `L1Loss`, `SmoothL1Loss`, `HuberLoss`
(classes and `F.` functions), the Keras cross-entropy / `mse` / `mae` / `huber` losses
given to `compile` or called directly, and a regression loss written in the same file: a
function named like a loss (`smooth_l1`, `reg_loss`, `huber`) that takes `abs`/`square` of its
first argument minus its second (`smooth_l1(pred * mask, target * mask)`: the mask is skipped).
When the output comes from a layer helper called for every layer (`deltas = dense(h, 4)`, where
`dense` ends in `tf.nn.relu`), the finding is at that call: the helper is right for the others.

Not reported: a backbone, encoder or feature extractor ending in ReLU whose output goes
through another layer before the loss (or to no loss at all); a loss whose target is
itself computed by a network (feature matching, perceptual and distillation losses, where
both sides are activations); a regression loss on a bare `F.relu(...)` of a tensor that is
not a layer's output (a penalty such as `F.mse_loss(F.relu(margin - d), zeros)`); `Softplus`
outputs; an activation attribute chosen at run time (`nn.ReLU() if a else nn.Identity()`);
and losses nnlint cannot identify or that are meant for non-negative predictions
(`PoissonNLLLoss(log_input=False)`, custom losses).

## Why is this bad?
The output layer has to be able to produce every value the loss needs. A ReLU clamps the
logits or regression outputs to `>= 0` (ReLU6 to `[0, 6]`; GELU, SiLU, ELU to roughly
`> -1`): `BCEWithLogitsLoss` can then never predict a probability below 0.5, a regressor
can never output a negative value, and every output unit whose pre-activation goes
negative gets zero gradient and stops learning (a dead output). The mistake is easy to
make when all layers are built by one helper that appends the activation, and the model
still trains to a worse loss without any error.

## Example
```python
import tensorflow as tf
import torch.nn as nn
import torch.nn.functional as F
from tensorflow import keras


def block(n_in, n_out):
    return [nn.Linear(n_in, n_out), nn.ReLU()]


model = nn.Sequential(*block(784, 128), nn.Linear(128, 10), nn.ReLU())  # NN202
criterion = nn.CrossEntropyLoss()


def train_step(x, y):
    loss = criterion(model(x), y)
    loss.backward()


regressor = keras.Sequential([
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(1, activation="relu"),  # NN202
])
regressor.compile(optimizer="adam", loss="mse")


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return F.relu(self.fc(x))  # NN202


classifier = Classifier()


def nll_step(x, y):
    return F.nll_loss(F.log_softmax(classifier(x), dim=1), y)


def dense(x, n):
    return tf.nn.relu(tf.layers.dense(x, n))


def smooth_l1(pred, target):
    diff = tf.abs(pred - target)
    return tf.where(diff < 1.0, 0.5 * diff ** 2, diff - 0.5)


def box_head(x, boxes):
    deltas = dense(dense(x, 256), 4)  # NN202
    return smooth_l1(deltas, boxes)
```

## Use instead
```python
import torch.nn as nn
from tensorflow import keras


def block(n_in, n_out):
    return [nn.Linear(n_in, n_out), nn.ReLU()]


model = nn.Sequential(*block(784, 128), nn.Linear(128, 10))  # logits: no activation
criterion = nn.CrossEntropyLoss()


def train_step(x, y):
    loss = criterion(model(x), y)
    loss.backward()


regressor = keras.Sequential([
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(1),  # linear output
])
regressor.compile(optimizer="adam", loss="mse")
```
If the predictions must be positive, use an activation made for outputs (`Softplus`,
`exp` of a log-rate with `PoissonNLLLoss(log_input=True)`) rather than a hidden-layer one.

## Fix safety
The fix removes the activation the finding points at: `return F.relu(self.fc(x))` becomes
`return self.fc(x)`, the last layer of a `Sequential` is dropped, a Keras layer's `activation=` is
deleted. It is unsafe: code that uses the model's output elsewhere may rely on it being
non-negative. There is no fix when the activation is a layer followed by a normaliser in a
`Sequential`, is in another file, or the finding is at the call of a layer helper.

## Source
Seed 001_05b9fd847e40edfb.txt, "不要在输出层使用激活函数" (do not use an activation function
on the output layer): "这应该是显而易见的道理,但如果使用共享函数构建每个层,那就很容易犯这样的错误"
(obvious, but easy to get wrong when every layer is built by one shared function), right
after recommending ReLU as the default non-linearity for the hidden layers.
Seed 003_1540c0685162747f.txt computes the cross-entropy loss from the classifier's raw
scores ("多类别Softmax分类器对应交叉熵损失"), which a ReLU would clamp.

In short: End the network with a linear output layer; a ReLU belongs to hidden layers. Public
reference: PyTorch documentation, `torch.nn.CrossEntropyLoss` (raw, unnormalised scores),
https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html; Goodfellow, Bengio &
Courville, "Deep Learning" (2016), section 6.2.2, output units.
'''
from __future__ import annotations

from typing import Optional

import libcst as cst

from nnlint.facts import layers as L
from nnlint.facts.heads import activation_below, helper_call, regression_losses
from nnlint.facts.losses import LossSite
from nnlint.facts.outputs import OutputActivation, OutputFacts, Step
from nnlint.facts.names import argument
from nnlint.facts.edits import drop_activation, report_activation
from nnlint.rule import Context, Rule

#: ModelSummary.output_activation names of hidden-layer activations (Softplus is an output activation)
_HIDDEN = frozenset(L.ACTIVATION_FUNCTIONS[k] for k in L.HIDDEN_ACTIVATIONS - {"Softplus"})

#: loss kind -> how its prediction is described in the message; other kinds (unknown, or
#: made for non-negative predictions) stay quiet
_LOSSES: dict[str, str] = {
    "cross_entropy": "logits",
    "bce_with_logits": "logits",
    "multilabel_soft_margin": "logits",
    "nll": "log-probabilities",
    "kl_div": "log-probabilities",
    "bce": "probabilities",
    "categorical_crossentropy": "probabilities",
    "sparse_categorical_crossentropy": "probabilities",
    "binary_crossentropy": "probabilities",
    "mse": "regression outputs",
    "l1": "regression outputs",
    "smooth_l1": "regression outputs",
    "huber": "regression outputs",
}
#: categories of steps that compute something (a reshape or dropout of the labels does not)
_COMPUTING = frozenset({L.ACTIVATION, L.DENSE, L.CONV, L.NORM, L.MODEL, L.CONTAINER, L.RECURRENT,
                        L.ATTENTION, L.EMBEDDING, L.POOL})


class HiddenActivationOnOutput(Rule):
    code = "NN202"
    name = "hidden-activation-on-output"
    severity = "warning"
    default = True
    fixable = True
    options = {}

    def check(self, ctx: Context) -> None:
        outputs = ctx.facts.outputs
        for site in (*ctx.facts.losses.sites, *regression_losses(ctx)):
            described = _LOSSES.get(site.kind)
            if described is None:
                continue
            below = False
            if site.prediction is not None:
                steps = outputs.steps(site.prediction)
                below_steps = _below_normaliser(steps, described)
                below = below_steps is not steps
                activation, by_a_layer = _last_activation(below_steps)
                if described == "regression outputs" and not by_a_layer:
                    continue  # ``mse(F.relu(margin - d), zeros)``: a penalty, not a model's output layer
            elif site.model is not None:
                activation = site.model.output_activation
            else:
                continue
            if activation not in _HIDDEN:
                continue
            if _target_is_computed(ctx, outputs, site):
                continue  # feature matching / distillation: both sides are activations
            clamped = "logits" if below else described  # below a normaliser: what it normalises
            message = (f"the output fed to this loss ends in {activation}, a hidden-layer activation: "
                       f"its {clamped} are clamped; remove the activation from the output layer")
            if below:  # the loss's or model's own log_softmax comes last: the ReLU is right below it
                where = activation_below(ctx, outputs.activation_site(site.prediction)[0])
                if where is None or where.activation != activation:
                    ctx.report(site.node, message)
                    continue
                report_activation(ctx, self.code, site, message, "the loss it feeds", where, drop_activation,
                                  f"Remove the {activation} from the output")
            else:  # a helper that ends every layer in a ReLU: the fix goes at the call of the output layer
                call = helper_call(ctx, site.prediction)
                where = OutputActivation(activation, call, None) if call is not None else None
                report_activation(ctx, self.code, site, message, "the loss it feeds", where, drop_activation,
                                  f"Remove the {activation} from the output")


def _below_normaliser(steps: tuple[Step, ...], described: str) -> tuple[Step, ...]:
    """``nll_loss(log_softmax(relu(logits)))``: the steps below the loss's own normaliser, whose
    input are the logits (a ReLU there clamps them just the same)."""
    meaningful = [step for step in steps if step.category not in (L.SHAPE, L.DROPOUT)]
    if not meaningful:
        return steps
    first = meaningful[0]
    normalisers = ("LogSoftmax", "Softmax") if described != "regression outputs" else ()
    normalisers += ("Sigmoid",) if described == "probabilities" else ()
    if len(meaningful) > 1 and first.category == L.ACTIVATION and first.kind in normalisers:
        return tuple(meaningful[1:])
    if first.category in (L.MODEL, L.CONTAINER):
        # a model whose forward ends ``F.log_softmax(F.relu(self.fc(x)))``: its last layers
        kinds = [k for k in first.layers if L.KIND_CATEGORIES.get(k) not in (L.SHAPE, L.DROPOUT)]
        if len(kinds) > 1 and kinds[-1] in normalisers:
            return tuple(Step(kind, L.KIND_CATEGORIES.get(kind, L.OTHER)) for kind in reversed(kinds[:-1]))
    return steps


def _last_activation(steps: tuple[Step, ...]) -> tuple[Optional[str], bool]:
    """The activation a traced prediction ends in, and whether it is applied to a layer's or model's output."""
    meaningful = [step for step in steps if step.category not in (L.SHAPE, L.DROPOUT)]
    if not meaningful:
        return None, False
    first = meaningful[0]
    if first.category == L.ACTIVATION:
        by_a_layer = len(meaningful) > 1 and meaningful[1].category in _COMPUTING - {L.ACTIVATION}
        return L.ACTIVATION_FUNCTIONS.get(first.kind, first.kind.lower()), by_a_layer
    if first.category in (L.MODEL, L.CONTAINER):
        return first.output_activation, True
    return None, False


def _target_is_computed(ctx: Context, outputs: OutputFacts, site: LossSite) -> bool:
    """Is the loss's target produced by a network or an activation (``mse(vgg(x), vgg(y))``)?"""
    if site.prediction is None:
        return False  # Keras compile: the targets are data
    if site.framework == "torch":
        target = argument(site.node, 1, "target")
    else:
        target = argument(site.node, 0, "y_true")
    if target is None:
        return False
    resolved: Optional[cst.BaseExpression] = ctx.facts.dataflow.resolve(target, 8) or target
    for node in ctx.facts.walk(resolved):
        if isinstance(node, cst.Call) and any(step.category in _COMPUTING for step in outputs.steps(node)):
            return True
    return False
