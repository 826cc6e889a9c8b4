'''
## What it does
Reports `model.eval()` inside a training loop or an epoch loop when the loop's next
training steps run before any `model.train()`.

The iteration is read in order and around the loop, through helper functions of the same
file: a `train()` function that starts with `model.train()` (the PyTorch examples style),
or an evaluation helper that ends with `model.train()` (nanoGPT's `estimate_loss`), puts
the model back in training mode in time and is not reported. A model that is put in eval
mode on purpose but never trained (a frozen feature extractor the optimizer does not
update) is not reported either, nor is a model that trains in eval mode by design: its whole
set of parameters is frozen (`requires_grad = False` over `model.parameters()`, or
`model.requires_grad_(False)`) and `model.eval()` is called before the training steps, as
linear probing does to keep the frozen backbone's batch-norm statistics fixed while only a
head trains. When the model is put in eval mode again before the next training step, that
later call is the one reported. Outside training loops, a function that runs the model after
`model.eval()` and then calls `model.eval()` again, where another function of the file restores
`model.train()` after its evaluation, is reported at the second call: `train()` was meant.

## Why is this bad?
`model.eval()` is a switch, not a scope: it stays on until `model.train()`. After the first
validation pass every later epoch trains with dropout disabled and batch normalisation
using its running statistics instead of the batch's, and without updating them. The model
trains without regularisation, BN layers go stale, and the run silently differs from what
the code suggests, typically after the first evaluation.

## Example
```python
import torch

optimizer = torch.optim.Adam(model.parameters())
for epoch in range(epochs):
    for inputs, targets in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        optimizer.step()
    model.eval()  # NN308
    with torch.no_grad():
        for inputs, targets in val_loader:
            val_loss = criterion(model(inputs), targets)
```

## Use instead
```python
import torch

optimizer = torch.optim.Adam(model.parameters())
for epoch in range(epochs):
    model.train()
    for inputs, targets in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        for inputs, targets in val_loader:
            val_loss = criterion(model(inputs), targets)

# linear probing: the pretrained encoder is frozen and kept in eval mode, only its head trains
for weight in encoder.parameters():
    weight.requires_grad = False
encoder.head.requires_grad_(True)
probe_optimizer = torch.optim.SGD(encoder.head.parameters(), lr=0.1)
for epoch in range(epochs):
    encoder.eval()
    for inputs, targets in train_loader:
        probe_optimizer.zero_grad()
        criterion(encoder(inputs), targets).backward()
        probe_optimizer.step()
```

## Source
Seed 002_1779c8f13c5dbb22.txt: dropout is used only while training ("测试和预测阶段是不能dropout
的", no dropout at test and prediction time) and batch normalisation uses moving averages at
test time but batch statistics in training, controlled by an `is_training` switch. Seed
004_81a3f3f84632e452.txt and seed 000_15ef46e869a43bad.txt: dropout is active only in the
training phase. Training after `model.eval()` without `model.train()` leaves those
switches in the test position.

In short: Switch back with `model.train()` after an evaluation inside the training loop. Public
reference: PyTorch documentation, `torch.nn.Module.train` and `torch.nn.Module.eval`,
https://pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.train.
'''
from __future__ import annotations

from typing import Optional, Sequence

import libcst as cst

from nnlint.facts.loops import Event, LoopFacts, after, covers, model_runs, repeated_evals
from nnlint.facts.names import dotted_name, literal, positional
from nnlint.rule import Context, Rule


class EvalModeNeverReset(Rule):
    code = "NN308"
    name = "eval-mode-never-reset"
    severity = "warning"
    default = True
    fixable = False
    options = {}

    def check(self, ctx: Context) -> None:
        loops = ctx.facts.loops
        reported: set[object] = set()
        candidates = [t.node for t in loops.training_loops] + list(loops.outer_loops)
        for loop in candidates:
            events = loops.iteration(loop)
            for index, event in enumerate(events):
                if event.kind != "eval" or event.inner_loops or event.node in reported:
                    continue
                if _trains_before_reset(loops, events, index) and not _frozen_on_purpose(ctx, events, index):
                    reported.add(event.node)
                    ctx.report(event.node, f"{event.receiver}.eval() in the training loop is never undone: the "
                                           f"next training steps run in eval mode; call {event.receiver}.train()")
        for switch in repeated_evals(ctx.facts):
            if switch.node not in reported:
                ctx.report(switch.node, f"{switch.receiver}.eval() again after running {switch.receiver} in eval mode: "
                                        f"it stays in eval mode; call {switch.receiver}.train() to restore training mode")


def _trains_before_reset(loops: LoopFacts, events: Sequence[Event], index: int) -> bool:
    model = events[index].receiver
    if model is None:
        return False
    for event in after(events, index):
        if event.kind == "train" and covers(event.receiver, model):
            return False
        if event.kind == "eval" and _sets_mode_of(event.receiver, model):
            return False  # eval mode is set again before training: that call decides
        if event.kind == "step" and _steps_model(loops, event, model, events):
            return True
    return False


def _sets_mode_of(receiver: Optional[str], model: str) -> bool:
    return receiver is not None and (receiver == model or model.startswith(receiver + "."))


def _frozen_on_purpose(ctx: Context, events: Sequence[Event], index: int) -> bool:
    """Linear probing: ``model.eval()`` comes before the training steps of the same iteration and
    the model's parameters are frozen, so only a head (its own or a new one) trains."""
    model = events[index].receiver
    if model is None:
        return False
    loops = ctx.facts.loops
    before_steps = any(e.kind == "step" and _steps_model(loops, e, model, events)
                       for e in after(events, index, cyclic=False))
    return before_steps and _frozen(ctx, model)


def _frozen(ctx: Context, model: str) -> bool:
    """``for p in model.parameters(): p.requires_grad = False`` or ``model.requires_grad_(False)``."""
    wanted = {model, model.removesuffix(".module")}
    facts = ctx.facts
    for node in facts.walk():
        if isinstance(node, cst.For) and isinstance(node.iter, cst.Call) and isinstance(node.iter.func, cst.Attribute) \
                and node.iter.func.attr.value in ("parameters", "named_parameters") \
                and _owner(node.iter.func.value) in wanted:
            target = node.target
            if isinstance(target, cst.Tuple) and target.elements:
                target = target.elements[-1].value
            if isinstance(target, cst.Name) and _switches_off_grad(ctx, node.body, target.value):
                return True
        elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
                and node.func.attr.value == "requires_grad_" and _owner(node.func.value) in wanted \
                and literal(positional(node, 0), None) is False:
            return True
    return False


def _owner(expr: cst.BaseExpression) -> Optional[str]:
    text = dotted_name(expr)
    return text.removesuffix(".module") if text is not None else None


def _switches_off_grad(ctx: Context, body: cst.CSTNode, parameter: str) -> bool:
    for node in ctx.facts.walk(body):
        if isinstance(node, cst.Assign) and literal(node.value, None) is False and any(
                isinstance(t.target, cst.Attribute) and t.target.attr.value == "requires_grad"
                and dotted_name(t.target.value) == parameter for t in node.targets):
            return True
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
                and node.func.attr.value == "requires_grad_" and dotted_name(node.func.value) == parameter \
                and literal(positional(node, 0), None) is False:
            return True
    return False


def _steps_model(loops: LoopFacts, step: Event, model: str, events: Sequence[Event]) -> bool:
    models = loops.models_of_optimizer(step.receiver)
    if models is not None:
        return any(covers(m, model) for m in models)
    return any(not run.grad_disabled for run in model_runs(events, model))
