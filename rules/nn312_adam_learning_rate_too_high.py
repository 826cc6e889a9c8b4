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
`CyclicLR`, `LambdaLR`, `get_linear_schedule_with_warmup`, ...), learning rates set by hand in
the file (`param_group["lr"] = lr`, `optimizer.learning_rate.assign(...)`, a Keras
`LearningRateScheduler` callback), and optimizers over a plain list of tensors
(`Adam([image], lr=0.05)`, which optimizes inputs, not a network). Small networks known to
have at most `max-shallow-depth` weight layers (a linear model, a two-layer policy or GCN) are
not reported either: they tolerate large steps, and 1e-2 to 3e-2 is a common working setting
for them. Models the linter cannot see are reported.

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
'''
from __future__ import annotations

from nnlint.rule import Context, Rule


class AdamLearningRateTooHigh(Rule):
    code = "NN312"
    name = "adam-learning-rate-too-high"
    severity = "warning"
    default = True
    fixable = False
    options = {"max-lr": 0.01, "max-shallow-depth": 3}

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
            depth = optimizers.known_depth(site)
            if depth is not None and depth <= shallow:
                continue  # a small network known in full
            written = ctx.code_for(argument).strip()
            shown = f"{lr:g}" if written == f"{lr:g}" or written == repr(lr) else f"{written} = {lr:g}"
            ctx.report(argument, f"{site.kind.name} with learning rate {shown}: Adam-family optimizers diverge "
                                 f"at rates this high; about 1e-3 is the usual starting point")
