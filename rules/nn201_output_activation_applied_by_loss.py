'''
## What it does
Reports a softmax or sigmoid on a model's output when the loss it feeds applies it itself.

Reported pairs:

* a softmax (`nn.Softmax`, `F.softmax`, `x.softmax(-1)`, a model whose `forward` ends in one)
  fed to `nn.CrossEntropyLoss` / `F.cross_entropy`;
* a sigmoid fed to `nn.BCEWithLogitsLoss` / `F.binary_cross_entropy_with_logits`;
* the other squashing activation, just as wrong: a softmax fed to `BCEWithLogitsLoss` (which
  applies a sigmoid to the probabilities), a sigmoid fed to `CrossEntropyLoss`;
* a `log_softmax` fed to `CrossEntropyLoss` (redundant: `log_softmax` is idempotent, so
  the loss is right, but the model and loss disagree about who owns the activation; use
  `NLLLoss` with a `log_softmax` output, or drop it);
* Keras/TensorFlow: a last layer with `activation="softmax"`/`"sigmoid"` (or an
  `Activation`/`Softmax` layer) compiled with a loss built with `from_logits=True`, and
  `tf.nn.softmax_cross_entropy_with_logits(logits=tf.nn.softmax(...))` (in TF1 graph code,
  also with the logits passed first positionally, as TF 0.x took them), including layers made
  by `tf.layers.dense`, `tf.contrib.layers`/slim and tflearn with a softmax activation.

The finding points where the fix goes: at the activation (the `F.softmax` or
`self.softmax(x)` call in `forward`, the `nn.Softmax()` inside an `nn.Sequential`, the Keras
layer, the `tf.layers.dense(..., activation=tf.nn.softmax)`), with the loss as a related
location, also when the model lives in another file (`from model import Net`, `import model`,
a model passed to a function of another file, a TF1 helper `def model(): ... return x, y,
output` unpacked by its caller). `# nnlint: ignore[NN201]` on the activation's line silences it.
A loss module class of the project counts as the loss its `forward` hands its input to
(`FocalLoss()(pred, y)` whose `forward` calls `F.binary_cross_entropy_with_logits(inputs, ...)`,
also through reshapes and masks), and a model assembled from classes of other files ends in what
the part it returns ends in (`return self.decoder(h)`; `model.decoder(x)` is that part).
A library estimator given a module and its loss (skorch's `NeuralNetClassifier(MyModule,
criterion=nn.CrossEntropyLoss)`, or one whose default loss is known: skada's `DeepCoral(model)`
trains with `CrossEntropyLoss`) feeds one to the other and counts as a loss site, and so does a
function that returns a model together with its loss (`return model, nn.CrossEntropyLoss()`, a test
fixture returning a Keras and a PyTorch model each with its loss: each loss goes with the one model
of its framework).
The output is found where models put it: a module built and called inline
(`nn.LogSoftmax(dim=1)(x)`), the last module an `nn.Sequential` subclass passes to
`super().__init__`, a default constructor argument (`pred_activation=nn.Softmax(dim=1)`, when
every caller leaves it), one softmax per head in a loop (appended to a list or concatenated).
An activation applied in an `if` branch of the function that computes the loss (`if
self.reward_ids is not None: logits = logits.softmax(-1)`, then `self.loss(logits, labels)`) is
reported: the loss is wrong whenever that branch runs.
When the prediction may come from one of several models (`if args.model == "mlp": net = MLP()
else: net = CNN()`), it is reported only if every one of them is wrong, at each activation.
Not reported: Keras softmax with plain `categorical_crossentropy`, `log_softmax` with
`NLLLoss`, and a softmax applied only when `not self.training` (its value is unknown).

## Why is this bad?
`CrossEntropyLoss` computes `log_softmax` of its input, and `BCEWithLogitsLoss` a
`logsigmoid`. Applying the activation first squashes the values into `[0, 1]`, so the loss
sees a second softmax of probabilities: its gradient shrinks, the model trains slowly or
stalls at a poor accuracy, and nothing crashes to tell you. pytorch/examples had this in
its word language model (a `log_softmax` output fed to `CrossEntropyLoss`, fixed by
switching to `NLLLoss`).

## Example
```python
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        return F.softmax(self.fc(x), dim=1)  # NN201


model = Net()
criterion = nn.CrossEntropyLoss()


def train_step(x, y):
    loss = criterion(model(x), y)
    loss.backward()


def multilabel_step(logits, y):
    return F.binary_cross_entropy_with_logits(logits.sigmoid(), y)  # NN201
```

## Use instead
```python
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        return self.fc(x)  # logits: the loss applies log_softmax


model = Net()
criterion = nn.CrossEntropyLoss()


def train_step(x, y):
    loss = criterion(model(x), y)
    loss.backward()


def multilabel_step(logits, y):
    return F.binary_cross_entropy_with_logits(logits, y)
```
Call `model(x).softmax(-1)` where probabilities are needed (prediction, metrics).

## Fix safety
The fix removes the activation the finding points at: `return F.softmax(x, dim=1)` becomes
`return x` (also `x.softmax(1)`, `self.softmax(x)` for an `nn.Softmax` layer, `nn.Sigmoid()(x)`), the
last layer of `nn.Sequential(..., nn.Softmax(dim=1))` or `keras.Sequential([...])` is dropped, and a
Keras layer's `activation="softmax"` argument is deleted. It is unsafe: code that runs the model for
inference may expect probabilities and must now apply the softmax (or sigmoid) itself. There is no
fix when the activation is in another file or spelled otherwise.

## Source
Seed 001_05b9fd847e40edfb.txt ("不要在输出层使用激活函数": do not use an activation on the
output layer; easy to get wrong when every layer is built by one shared function).
Seed 003_1540c0685162747f.txt pairs the softmax classifier with the cross-entropy loss
("多类别Softmax分类器对应交叉熵损失"), i.e. the loss is computed from the raw scores.

In short: Return logits from the model and let the loss apply softmax/sigmoid (or use
`from_logits=True` in Keras). Public reference: PyTorch documentation, `torch.nn.CrossEntropyLoss`
(the input is unnormalised logits) and `torch.nn.BCEWithLogitsLoss`,
https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html; Keras documentation,
probabilistic losses (`from_logits`), https://keras.io/api/losses/probabilistic_losses/.
'''
from __future__ import annotations

from typing import Optional

from nnlint.facts.losses import LossSite
from nnlint.facts.edits import drop_activation, report_activation
from nnlint.rule import Context, Rule

#: loss kind -> activations that loss applies itself
_APPLIED_BY_LOSS = {
    "cross_entropy": ("softmax", "CrossEntropyLoss"),
    "bce_with_logits": ("sigmoid", "BCEWithLogitsLoss"),
    "multilabel_soft_margin": ("sigmoid", "MultiLabelSoftMarginLoss"),
    "categorical_crossentropy": ("softmax", "a from_logits loss"),
    "sparse_categorical_crossentropy": ("softmax", "a from_logits loss"),
    "binary_crossentropy": ("sigmoid", "a from_logits loss"),
}

#: torch loss kind -> the other squashing activation, which is just as wrong before it
_OTHER_SQUASH = {"cross_entropy": "sigmoid", "bce_with_logits": "softmax", "multilabel_soft_margin": "softmax"}


class OutputActivationAppliedByLoss(Rule):
    code = "NN201"
    name = "output-activation-applied-by-loss"
    severity = "error"
    default = True
    fixable = True
    options = {}

    def check(self, ctx: Context) -> None:
        losses = ctx.facts.losses
        for site in losses.sites:
            if site.expects != "logits" or site.kind not in _APPLIED_BY_LOSS:
                continue
            if site.prediction is not None:
                outputs = ctx.facts.outputs.output_activations(site.prediction)
            else:
                outputs = losses.trained_outputs(site)
            # one of several models (chosen by a flag): a finding needs every one of them to be wrong
            messages = [self._message(site, output.activation) for output in outputs]
            branch = not outputs or any(message is None for message in messages)
            if branch:
                # ``if cond: logits = logits.softmax(-1)`` before the loss: wrong whenever that branch runs
                outputs = ctx.facts.outputs.branch_activations(site.prediction)
                messages = [self._message(site, output.activation) for output in outputs]
            seen: set[object] = set()
            for output, message in zip(outputs, messages):
                place = (id(output.node), output.site)
                if message is None or place in seen:
                    continue  # two models sharing one forward
                seen.add(place)
                report_activation(ctx, self.code, site, message, f"the {_APPLIED_BY_LOSS[site.kind][1]} it feeds",
                                  output if len(outputs) > 1 or branch else None, drop_activation,
                                  f"Remove the {output.activation}: pass the logits")

    @staticmethod
    def _message(site: LossSite, activation: Optional[str]) -> Optional[str]:
        applied, loss_name = _APPLIED_BY_LOSS[site.kind]
        if activation == applied:
            return f"{activation} output fed to {loss_name}, which applies {activation} itself: pass the logits"
        other = _OTHER_SQUASH.get(site.kind)
        if other is not None and activation == other and site.framework == "torch":
            # probabilities squashed again by the other activation: the loss still wants logits
            return f"{activation} output fed to {loss_name}, which applies {applied} to it: pass the logits"
        if activation == "log_softmax" and site.kind == "cross_entropy" and site.framework == "torch":
            return ("log_softmax output fed to CrossEntropyLoss, which applies log_softmax again "
                    "(redundant): use NLLLoss, or return the logits")
        return None
