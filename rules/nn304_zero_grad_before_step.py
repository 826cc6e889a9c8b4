'''
## What it does
Reports `zero_grad()` that runs after `backward()` and before the `step()` that should
apply those gradients, so the step applies nothing.

Three shapes are reported: `loss.backward(); optimizer.zero_grad(); optimizer.step()` in one
iteration; `zero_grad()` inside a gradient-accumulation loop (an inner loop that calls
`backward()` but not `step()`) whose optimizer steps after that loop; and `zero_grad()` on
every iteration of a loop that steps only every k-th (`if (i + 1) % k == 0: optimizer.step()`).
In the last two each micro-step wipes the gradients of the previous ones. A Lightning
`training_step` with manual optimization counts as the loop body (the trainer calls it
once per batch), with `self.manual_backward(loss)` as its `backward()`. `zero_grad()` at the start of the iteration, at
its end after the step, or between two networks' updates (GANs) is correct, and so is
`optimizer.step(closure)` (L-BFGS style), whose closure clears and recomputes the gradients.

## Why is this bad?
`step()` reads `.grad`. Zeroing it between `backward()` and `step()` makes every update
use zero (or `None`) gradients: with plain SGD nothing is learned, with momentum or Adam
the parameters keep drifting on stale state. In an accumulation loop only the last
micro-batch contributes, so the effective batch is a fraction of what was intended.
Training runs without an error, the loss just does not go down as it should.

## Example
```python
import torch

optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for inputs, targets in loader:
    loss = criterion(model(inputs), targets)
    loss.backward()
    optimizer.zero_grad()  # NN304
    optimizer.step()
```

```python
import torch

optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
for batches in loader:
    for inputs, targets in batches:
        optimizer.zero_grad()  # NN304
        loss = criterion(model(inputs), targets) / len(batches)
        loss.backward()
    optimizer.step()
```

```python
import torch

for i, (inputs, targets) in enumerate(loader):
    optimizer.zero_grad()  # NN304
    loss = criterion(model(inputs), targets) / accumulation_steps
    loss.backward()
    if (i + 1) % accumulation_steps == 0:
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
    optimizer.step()
```

```python
import torch

optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
for batches in loader:
    for inputs, targets in batches:
        loss = criterion(model(inputs), targets) / len(batches)
        loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
```

```python
import torch

for i, (inputs, targets) in enumerate(loader):
    loss = criterion(model(inputs), targets) / accumulation_steps
    loss.backward()
    if (i + 1) % accumulation_steps == 0:
        optimizer.step()
        optimizer.zero_grad()
```

## Source
Seed 003_1540c0685162747f.txt, "每个批量数据训练都要执行的代码流程" (the code every batch must
run): `optimizer.zero_grad()` comes first, before the forward pass, and `loss.backward()`
is directly followed by `optimizer.step()` ("参数进行更新", update the parameters).

In short: Order each step as `zero_grad()`, forward, `backward()`, `step()`. Public reference:
PyTorch documentation, "torch.optim: taking an optimization step",
https://pytorch.org/docs/stable/optim.html#taking-an-optimization-step.
'''
from __future__ import annotations

from typing import Sequence

import libcst as cst

from nnlint.facts.loops import Event, LoopFacts, exclusive, looks_like_optimizer
from nnlint.facts.names import dotted_name, keyword, positional
from nnlint.rule import Context, Rule


class ZeroGradBeforeStep(Rule):
    code = "NN304"
    name = "zero-grad-before-step"
    severity = "error"
    default = True
    fixable = False
    options = {}

    def check(self, ctx: Context) -> None:
        loops = ctx.facts.loops
        reported: set[object] = set()
        for training in loops.training_loops:
            events = training.events
            for index, step in enumerate(events):
                if step.kind != "step" or _steps_with_closure(loops, step):
                    continue
                for zero, message in _wiping_zero_grads(loops, events, index):
                    if zero.node not in reported:
                        reported.add(zero.node)
                        ctx.report(zero.node, message)


def _steps_with_closure(loops: LoopFacts, step: Event) -> bool:
    """``optimizer.step(closure)``: the step re-runs the closure, which clears and recomputes the gradients itself."""
    call = step.node
    if not isinstance(call, cst.Call):
        return False
    if keyword(call, "closure") is not None:
        return True
    first = positional(call, 0)
    if first is None:
        return False
    text = dotted_name(first)
    # scaler.step(optimizer) passes the optimizer, not a closure
    return not (loops.is_optimizer(text) or looks_like_optimizer(text) or text == step.receiver)


def _wiping_zero_grads(loops: LoopFacts, events: Sequence[Event], index: int) -> list[tuple[Event, str]]:
    step = events[index]
    found: list[tuple[Event, str]] = []
    last_backward = None
    for position in range(index - 1, -1, -1):
        event = events[position]
        if event.kind == "backward" and not exclusive(event, step):
            last_backward = position
            break
    if last_backward is None:
        return found
    step_guards = set(step.guards)
    for position in range(last_backward + 1, index):
        zero = events[position]
        if zero.kind != "zero_grad" or not loops.zeroes(zero, step.receiver):
            continue
        # only a zero_grad that runs whenever the step runs
        if set(zero.guards) <= step_guards:
            found.append((zero, f"zero_grad() between backward() and {step.receiver}.step(): "
                                "the step applies cleared gradients"))
    # accumulation loop: an inner loop that backpropagates (but never steps) and zeroes on each pass
    step_loops = set(step.inner_loops)
    for position in range(0, index):
        zero = events[position]
        if zero.kind != "zero_grad":
            continue
        for inner in zero.inner_loops:
            if inner in step_loops:
                continue
            in_inner = [e for e in events if inner in e.inner_loops]
            if any(e.kind == "step" for e in in_inner):
                continue
            zero_at = in_inner.index(zero)
            if any(e.kind == "backward" for e in in_inner[zero_at + 1:]) and loops.zeroes(zero, step.receiver) \
                    and not exclusive(zero, step):
                found.append((zero, f"zero_grad() inside the accumulation loop: each pass wipes the gradients "
                                    f"accumulated for {step.receiver}.step()"))
                break
    found.extend(_cleared_between_accumulated_steps(loops, events, index))
    return found


def _cleared_between_accumulated_steps(loops: LoopFacts, events: Sequence[Event], index: int) -> list[tuple[Event, str]]:
    """``if (i + 1) % k == 0: opt.step()`` with ``zero_grad()`` every iteration: nothing accumulates."""
    step = events[index]
    every_kth = [g for g in step.guards if isinstance(g.node, cst.If) and g.branch == 0
                 and any(isinstance(op, cst.Modulo) for op in _operators(g.node.test))]
    if not every_kth:
        return []
    found: list[tuple[Event, str]] = []
    for position, zero in enumerate(events[:index]):
        if zero.kind != "zero_grad" or not loops.zeroes(zero, step.receiver) \
                or any(g in zero.guards for g in every_kth) or not set(zero.guards) <= set(step.guards):
            continue  # cleared only when stepping (correct), or under a condition of its own
        if any(e.kind == "backward" and not any(g in e.guards for g in every_kth) for e in events[position + 1:index]):
            found.append((zero, f"zero_grad() runs every iteration but {step.receiver}.step() only every few: "
                                "the gradients meant to accumulate are cleared; zero them after the step"))
    return found


def _operators(expr: cst.BaseExpression) -> list[cst.CSTNode]:
    out: list[cst.CSTNode] = []
    pending: list[cst.CSTNode] = [expr]
    while pending:
        node = pending.pop()
        if isinstance(node, cst.BinaryOperation):
            out.append(node.operator)
            pending.extend((node.left, node.right))
        elif isinstance(node, cst.Comparison):
            pending.append(node.left)
            pending.extend(target.comparator for target in node.comparisons)
        elif isinstance(node, cst.UnaryOperation):
            pending.append(node.expression)
        elif isinstance(node, cst.BooleanOperation):
            pending.extend((node.left, node.right))
    return out
