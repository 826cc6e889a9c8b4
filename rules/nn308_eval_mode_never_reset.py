'''
## What it does
Reports `model.eval()` inside a training loop or an epoch loop when the loop's next
training steps run before any `model.train()`.

The iteration is read in order and around the loop, through helper functions of the same
file: a `train()` function that starts with `model.train()` (the PyTorch examples style),
or an evaluation helper that ends with `model.train()` (nanoGPT's `estimate_loss`), puts
the model back in training mode in time and is not reported. A model that is put in eval
mode on purpose but never trained (a frozen feature extractor the optimizer does not
update) is not reported either.

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
```

## Source
Seed 002_1779c8f13c5dbb22.txt: dropout is used only while training ("测试和预测阶段是不能dropout
的", no dropout at test and prediction time) and batch normalisation uses moving averages at
test time but batch statistics in training, controlled by an `is_training` switch. Seed
004_81a3f3f84632e452.txt and seed 000_15ef46e869a43bad.txt: dropout is active only in the
training phase. Training after `model.eval()` without `model.train()` leaves those
switches in the test position.
'''
from __future__ import annotations

from typing import Sequence

from nnlint.facts.loops import Event, LoopFacts, after, covers, model_runs
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
                if _trains_before_reset(loops, events, index):
                    reported.add(event.node)
                    ctx.report(event.node, f"{event.receiver}.eval() in the training loop is never undone: the "
                                           f"next training steps run in eval mode; call {event.receiver}.train()")


def _trains_before_reset(loops: LoopFacts, events: Sequence[Event], index: int) -> bool:
    model = events[index].receiver
    if model is None:
        return False
    for event in after(events, index):
        if event.kind == "train" and covers(event.receiver, model):
            return False
        if event.kind == "step" and _steps_model(loops, event, model, events):
            return True
    return False


def _steps_model(loops: LoopFacts, step: Event, model: str, events: Sequence[Event]) -> bool:
    models = loops.models_of_optimizer(step.receiver)
    if models is not None:
        return any(covers(m, model) for m in models)
    return any(not run.grad_disabled for run in model_runs(events, model))
