'''
## What it does
Reports gradient clipping that runs before `backward()` or after `step()` instead of
between them.

Clipping means `clip_grad_norm_` or `clip_grad_value_`, in any import style.

The order is read around the loop, so a loop that calls `backward()` at the end of one
iteration and clips and steps at the start of the next is correct, and so is clipping
under the same `if` as an accumulated step. Outside a loop, a function that clips and then
calls `backward()` (a multi-task `backward(losses, shared_parameters)` helper), or clips
after its `step()`, is reported too; one that only clips and steps (its caller ran
`backward()`) is not.

## Why is this bad?
Clipping rescales the gradients currently stored in `.grad`. Before `backward()` those
are zeros (or last iteration's, about to be cleared); after `step()` the update has
already been made with the unclipped values. Either way the clipping does nothing and the
run is as exposed to exploding gradients as one without it, while the code suggests it is
protected.

## Example
```python
import torch

optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for inputs, targets in loader:
    optimizer.zero_grad()
    loss = criterion(model(inputs), targets)
    loss.backward()
    optimizer.step()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)  # NN305
```

```python
import torch
from torch.nn.utils import clip_grad_value_

optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for inputs, targets in loader:
    optimizer.zero_grad()
    clip_grad_value_(model.parameters(), 0.5)  # NN305
    loss = criterion(model(inputs), targets)
    loss.backward()
    optimizer.step()
```

## Use instead
```python
import torch

optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for inputs, targets in loader:
    optimizer.zero_grad()
    loss = criterion(model(inputs), targets)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()
```

## Source
Seed 002_1779c8f13c5dbb22.txt, "梯度裁剪（Gradient Clipping）": clipping cuts the gradient
values during backpropagation ("在BP的过程中裁剪一下梯度值") so they do not exceed a threshold;
its TensorFlow code clips between `compute_gradients` and `apply_gradients`. Seed
000_15ef46e869a43bad.txt describes clipping by value and by norm as applied to the
gradient vector before the optimizer uses it. Seed 003_1540c0685162747f.txt lists gradient
clipping among the fixes for exploding gradients and gives the step order
`loss.backward()` then `optimizer.step()`.

In short: Clip gradients after `backward()` and before `optimizer.step()`. Public reference: PyTorch
documentation, `torch.nn.utils.clip_grad_norm_`,
https://pytorch.org/docs/stable/generated/torch.nn.utils.clip_grad_norm_.html; Pascanu et al., "On
the difficulty of training recurrent neural networks" (2013, arXiv:1211.5063).
'''
from __future__ import annotations

from typing import Iterable, Optional

import libcst as cst

from nnlint.facts.loops import Event, LoopFacts, after, before
from nnlint.rule import Context, Rule


class ClipOutsideBackwardStep(Rule):
    code = "NN305"
    name = "clip-outside-backward-step"
    severity = "error"
    default = True
    fixable = False
    options = {}

    def check(self, ctx: Context) -> None:
        loops = ctx.facts.loops
        reported: set[object] = set()
        for training in loops.training_loops:
            events = training.events
            for index, clip in enumerate(events):
                if clip.kind != "clip" or clip.node in reported:
                    continue
                previous = _nearest(loops, clip, before(events, index))
                following = _nearest(loops, clip, after(events, index))
                if previous is None or following is None:
                    continue
                if previous.kind == "step" and following.kind == "backward":
                    reported.add(clip.node)
                    if any(e.kind == "backward" for e in events[:index]):
                        message = (f"gradient clipping after {previous.receiver}.step(): "
                                   "the update already used the unclipped gradients")
                    else:
                        message = _BEFORE_BACKWARD
                    ctx.report(clip.node, message)
        for function in loops.clipping_functions:
            self._check_function(ctx, function, reported)

    def _check_function(self, ctx: Context, function: cst.FunctionDef, reported: set[object]) -> None:
        """Straight-line code outside a loop (``def backward(self, losses): clip(...); loss.backward()``)."""
        loops = ctx.facts.loops
        events = loops.body_events(function)
        for index, clip in enumerate(events):
            if clip.kind != "clip" or clip.node in reported or clip.inner_loops:
                continue
            previous = _nearest(loops, clip, before(events, index, cyclic=False))
            following = _nearest(loops, clip, after(events, index, cyclic=False))
            if previous is None and following is not None and following.kind == "backward":
                message = _BEFORE_BACKWARD
            elif previous is not None and previous.kind == "step" and following is None:
                message = (f"gradient clipping after {previous.receiver}.step(): "
                           "the update already used the unclipped gradients")
            else:
                continue
            reported.add(clip.node)
            ctx.report(clip.node, message)


_BEFORE_BACKWARD = "gradient clipping before backward(): it clips gradients that are about to be replaced"


def _nearest(loops: LoopFacts, clip: Event, events: Iterable[Event]) -> Optional[Event]:
    """The nearest backward() or step() of an optimizer that may own the clipped parameters."""
    for event in events:
        if event.kind == "backward":
            return event
        if event.kind == "step" and _may_own(loops, event.receiver, clip.receiver):
            return event
    return None


def _may_own(loops: LoopFacts, optimizer: Optional[str], model: Optional[str]) -> bool:
    models = loops.models_of_optimizer(optimizer)
    if models is None or model is None:
        return True
    return any(model == m or model.startswith(m + ".") or m.startswith(model + ".") for m in models)
