'''
## What it does
Reports an Adam-family optimizer constructed with a learning rate above `max-lr` (0.01).

Adam-family: PyTorch `Adam`, `AdamW`, `Adamax`, `NAdam`, `RAdam`; Keras `Adam`, `AdamW`,
`Adamax`, `Nadam`; TF1 `tf.train.AdamOptimizer`.

The learning rate is read from the `lr=` / `learning_rate=` argument (Keras also accepts the
legacy `lr=`) or the positional one (`Adam(params, 0.1)`, `tf.train.AdamOptimizer(0.1)`), and
resolved through literals, arithmetic, module constants (also imported from another linted
file) and argparse defaults (`lr=args.lr` with `parser.add_argument("--lr", default=0.1)`).

The rule stays quiet when the constructor's value is not what training runs with: a learning
rate schedule object (`keras.optimizers.schedules.ExponentialDecay(...)`), parameter groups
with their own `"lr"`, a warm-up, cyclic or lambda scheduler over the optimizer (`OneCycleLR`,
`CyclicLR`, `LambdaLR`, `get_linear_schedule_with_warmup`, ...; a `LambdaLR` whose factor is
known to be at least 1 at step 0, such as a linear decay, does start at the constructor's
rate and is reported), learning rates set by hand in
the file (`param_group["lr"] = lr`, `optimizer.learning_rate.assign(...)`, a Keras
`LearningRateScheduler` callback), and optimizers over a plain list of tensors
(`Adam([image], lr=0.05)`, which optimizes inputs, not a network). Small networks known to
have at most `max-shallow-depth` weight layers (a linear model, a two-layer policy or GCN) are
not reported either: they tolerate large steps, and 1e-2 to 3e-2 is a common working setting
for them. Nor are optimizers in test code (a unit test picks a rate for what it checks, not
for training), and models whose class derives from a model class nnlint cannot read (a
library's demo model, a project base class outside the linted tree): a model of unknown size
is not taken to be deep. Models the linter does not see at all (a model passed in from
elsewhere) are reported.

## Why is this bad?
Adam scales every step by a running estimate of the gradient's magnitude, so its learning
rate is close to the size of each weight update. With 0.1, every weight moves by about 0.1
per step, which is far larger than typical weights (about 0.01 to 0.1 at initialisation):
the loss oscillates or diverges, or ReLU units die early. The default of 0.001 works for
most networks, and Adam needs far less tuning of the learning rate than SGD. A rate that
looks like it was copied from an SGD script (0.1) is the usual cause.

## Example
```python
import argparse
import torch
from tensorflow import keras

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
args = parser.parse_args()

optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)  # NN312
optimizer = torch.optim.AdamW(model.parameters(), 0.05, weight_decay=0.01)  # NN312
keras_model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.02), loss="mse")  # NN312


def fit(model, epochs):
    optimizer = torch.optim.Adam(model.parameters(), lr=0.08)  # NN312
    final = 0.01
    # a linear decay: LambdaLR multiplies by 1.0 at step 0, so training starts at 0.08
    decay = lambda epoch: (1 - epoch / epochs) * (1.0 - final) + final
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=decay)
```

## Use instead
```python
import argparse
import torch
from tensorflow import keras

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=1e-3)
args = parser.parse_args()

optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
optimizer = torch.optim.AdamW(model.parameters(), 3e-4, weight_decay=0.01)
keras_model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="mse")
# OneCycleLR sets the learning rate itself (max_lr is its peak, reached after warm-up)
optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01, total_steps=1000)


def warm_up(step):
    return min(1.0, (step + 1) / 4000)  # 0.00025 at step 0: the rate is reached after warm-up


optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warm_up)


# a subclass of a model nnlint cannot read: its size is unknown
class FusedAdamCheck(DemoModel):
    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.1)
```

## Options
* `max-lr` (default `0.01`): the largest learning rate accepted; Adam-family optimizers built
  with a higher one are reported.
* `max-shallow-depth` (default `3`): models known to have at most this many weight layers
  (dense, convolutional, recurrent, attention) are not reported.

## Source
Seed 001_05b9fd847e40edfb.txt (section "提高学习率", raise the learning rate): "对于 ADAM
优化器，我们发现在很多经历中，学习率大约为 0.001 时，表现很不错" (with the Adam optimizer, a
learning rate of about 0.001 worked well in many experiments). Seed 002_1779c8f13c5dbb22.txt
("AdamOptimizer"): Adam is an adaptive learning rate algorithm that needs less tuning of the
learning rate; "You can often use the default value η = 0.001". Seed 000_15ef46e869a43bad.txt
("学习率调度"): a high learning rate makes training diverge ("高学习率会导致训练时的发散").
Seed 004_81a3f3f84632e452.txt trains its Keras MLP with `Adam(lr=0.001, ...)` and keeps 0.1 for
momentum SGD.

In short: Start Adam near its default learning rate of 0.001 and tune from there. Public reference:
Kingma & Ba, "Adam: A Method for Stochastic Optimization" (2014, arXiv:1412.6980), default alpha =
0.001; PyTorch documentation, `torch.optim.Adam` (`lr=1e-3`),
https://pytorch.org/docs/stable/generated/torch.optim.Adam.html.
'''
from __future__ import annotations

from typing import Iterator, Optional

import libcst as cst

from nnlint.facts import layers as L
from nnlint.facts.optimizers import OptimizerSite, weight_layers
from nnlint.facts.testcode import in_test_code
from nnlint.rule import Context, Rule


class AdamLearningRateTooHigh(Rule):
    code = "NN312"
    name = "adam-learning-rate-too-high"
    severity = "warning"
    default = True
    fixable = False
    options = {"max-lr": 0.01, "max-shallow-depth": 3}
    option_ranges = {"max-lr": {"above": 0}, "max-shallow-depth": {"minimum": 0}}

    def check(self, ctx: Context) -> None:
        threshold = ctx.number_option("max-lr", above=0)
        shallow = ctx.int_option("max-shallow-depth")
        optimizers = ctx.facts.optimizers
        for site in optimizers.sites:
            if site.family != "adam":
                continue
            lr = optimizers.learning_rate(site)
            argument = site.lr_argument()
            if lr is None or argument is None or lr <= threshold:
                continue
            if optimizers.trains_plain_tensors(site) or optimizers.lr_overridden(site):
                continue
            if in_test_code(ctx.facts, site.node):
                continue
            depth = optimizers.known_depth(site)
            if depth is not None and depth <= shallow:
                continue  # a small network known in full
            if depth is None and not _known_deep(ctx, site, shallow) and _of_unreadable_model_class(ctx, site):
                continue  # unknown size is not "deep"
            written = ctx.code_for(argument).strip()
            shown = f"{lr:g}" if written == f"{lr:g}" or written == repr(lr) else f"{written} = {lr:g}"
            ctx.report(argument, f"{site.kind.name} with learning rate {shown}: Adam-family optimizers diverge "
                                 f"at rates this high; about 1e-3 is the usual starting point")


def _known_deep(ctx: Context, site: OptimizerSite, shallow: int) -> bool:
    models = ctx.facts.optimizers.trained_models(site)
    return bool(models) and sum(weight_layers(m) for m in models) > shallow


def _of_unreadable_model_class(ctx: Context, site: OptimizerSite) -> bool:
    """Is a trained model an instance of (or ``self`` in) a class derived from a class nnlint cannot read?"""
    return any(_unreadable_base(ctx, cls) for cls in _owner_classes(ctx, site))


def _owner_classes(ctx: Context, site: OptimizerSite) -> Iterator[cst.ClassDef]:
    params = site.params_argument()
    if params is None:
        return
    facts = ctx.facts
    for node in facts.walk(params):
        if not (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
                and node.func.attr.value in ("parameters", "named_parameters")):
            continue
        owner = node.func.value
        if isinstance(owner, cst.Name) and owner.value == "self":
            cls = next((a for a in facts.ancestors(owner) if isinstance(a, cst.ClassDef)), None)
            if cls is not None:
                yield cls
            continue
        value = facts.dataflow.resolve(owner) if isinstance(owner, cst.Name) else None
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value in facts.names.classes:
            yield facts.names.classes[value.func.value]


def _unreadable_base(ctx: Context, cls: cst.ClassDef, depth: int = 0) -> bool:
    names = ctx.facts.names
    for base in cls.bases:
        expr = base.value
        if isinstance(expr, cst.Name) and expr.value in names.classes and depth < 4:
            if _unreadable_base(ctx, names.classes[expr.value], depth + 1):
                return True
            continue
        qualname: Optional[str] = names.qualname(expr)
        if qualname is not None and (
                qualname in L.TORCH_MODULE_BASES or qualname in L.KERAS_MODEL_BASES
                or L.layer_kind(qualname) is not None or qualname.startswith("torchvision.models.")
                or ctx.facts.project.model(qualname, near=ctx.facts.module_name) is not None):
            continue  # a module base, a known layer or architecture, or a model of this project
        return True
    return False
