'''
## What it does
Reports gradient clipping by value where clipping by norm would keep the gradient's direction.

Clipping by value is `torch.nn.utils.clip_grad_value_` (and `accelerator.clip_grad_value_`),
a Keras optimizer's `clipvalue=` argument, `tf.clip_by_value` applied to gradients
(`[(tf.clip_by_value(g, -1.0, 1.0), v) for g, v in grads_and_vars]`), and clamping gradients
by hand (`p.grad.clamp_(-1, 1)`, `p.grad.data.clamp_(-1, 1)`, `torch.clamp(p.grad, -1, 1)`).
A tensor counts as a gradient when it is a `.grad`, a name containing `grad`, or a loop or
comprehension variable over the result of `tape.gradient(...)` / `compute_gradients(...)`.

This rule is opinionated and off by default: clipping by value is a legitimate choice (DQN
clamps its gradients to [-1, 1] on purpose); it changes the update's direction, which is
seldom what is wanted when the goal is only to stop exploding steps.

## Why is this bad?
Clipping by value clips each component of the gradient vector on its own. When one component
is large and the others are small, the result points in a different direction from the true
gradient: `[0.9, 100.0]` clipped to 1.0 becomes `[0.9, 1.0]`, almost 45 degrees away. Clipping
by norm rescales the whole vector when its norm exceeds the threshold, so the step keeps the
direction of steepest descent and only its length is limited: `[0.9, 100.0]` becomes
`[0.0090, 0.99996]`.

## Example
```python
import torch
from tensorflow import keras

optimizer = keras.optimizers.SGD(learning_rate=0.01, clipvalue=1.0)  # NN905

for inputs, targets in loader:
    opt.zero_grad()
    loss_fn(model(inputs), targets).backward()
    torch.nn.utils.clip_grad_value_(model.parameters(), 1.0)  # NN905
    opt.step()
```

## Use instead
```python
import torch
from tensorflow import keras

optimizer = keras.optimizers.SGD(learning_rate=0.01, clipnorm=1.0)

for inputs, targets in loader:
    opt.zero_grad()
    loss_fn(model(inputs), targets).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
```

## Source
Seed 000_15ef46e869a43bad.txt ("渐变剪辑", gradient clipping): in Keras clipping is the
`clipvalue` or `clipnorm` argument of the optimizer; "如果我们需要不改变渐变向量方向的渐变剪辑，您应该
使用剪辑规范而不是剪辑值" (if the clipping must not change the direction of the gradient vector,
clip by norm instead of by value): for the gradient [0.9, 100.0], `clipvalue=1.0` gives
[0.9, 1.0] while `clipnorm=1.0` gives [0.00899964, 0.999595]. Seed 002_1779c8f13c5dbb22.txt
("梯度裁剪") clips with `tf.clip_by_value(grad, -threshold, threshold)` over `grads_and_vars`.

In short: Clip by norm (`clip_grad_norm_`, Keras `clipnorm`), which keeps the gradient's direction.
Public reference: PyTorch documentation, `torch.nn.utils.clip_grad_norm_`,
https://pytorch.org/docs/stable/generated/torch.nn.utils.clip_grad_norm_.html; Pascanu et al. (2013,
arXiv:1211.5063).
'''
from __future__ import annotations

from nnlint.rule import Context, Rule

_INSTEAD = {"keras": "clipnorm=", "tensorflow": "tf.clip_by_norm / tf.clip_by_global_norm",
            "torch": "torch.nn.utils.clip_grad_norm_"}
_MESSAGE = ("clipping gradients by value changes their direction ([0.9, 100] -> [0.9, 1.0]); "
            "clip by norm ({}) to keep it")


class GradientClippingByValue(Rule):
    code = "NN905"
    name = "gradient-clipping-by-value"
    severity = "info"
    default = False
    fixable = False
    options = {}

    def check(self, ctx: Context) -> None:
        gradients = ctx.facts.gradients
        for clip in gradients.value_clips:
            if not gradients.norm_is_an_option(clip.node):  # a configurable choice between the two is fine
                ctx.report(clip.node, _MESSAGE.format(_INSTEAD[clip.framework]))
