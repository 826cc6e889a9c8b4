'''
## What it does
Reports `torch.save` of a model's `state_dict()` inside the training loop (or in a helper
the loop calls) without the optimizer's `state_dict()`, in a file that trains with a
stateful optimizer.

Stateful optimizers are the Adam family (Adam, AdamW, Adamax, NAdam, RAdam, SparseAdam),
RMSprop, Adagrad, Adadelta, and SGD with a non-zero `momentum`. A weights-only export after
the loop, a best-model snapshot (saved under a comparison with a "best" value, or to a path
containing "best"), the optimizer's state saved to a file of its own in the same iteration,
the final weights saved to a "last"/"final" file next to it (`last.pt`,
`model_final.pth`, unless the name says checkpoint), and a checkpoint dict with an optimizer
entry are not reported. Neither are weights-only snapshots of a program without a resume
path: the file loads weights (`torch.load`, `load_state_dict`, a `load_checkpoint` helper) only
in code that never reaches the training loop (a `stylize`/`predict`/`evaluate` function), so
the snapshots are read for inference, never to continue training. A load in the training
function, in a function that calls it (`main()` restoring `--resume` before `train()`), in
its class or at module level beside a module-level loop is a resume path and keeps the
finding.

A checkpoint helper in a file that builds no optimizer (the training loop that calls it is
elsewhere) is reported when it saves a model's and an LR scheduler's `state_dict()` but never
mentions an optimizer: the scheduler's state is only read to resume training, so the
checkpoint is meant for resuming, and it lacks the optimizer's state.

## Why is this bad?
A checkpoint written during training exists to resume it. Adam keeps two moving averages
per parameter and a step count; momentum SGD keeps a velocity. Resuming from weights only
restarts those from zero: Adam's bias correction and the momentum warm up again, the first
updates after the restart are far larger than the ones before it, and the loss jumps. The
resumed run is not the run that was checkpointed, and results stop being reproducible.

## Example
```python
import torch

optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
if resume_from:
    model.load_state_dict(torch.load(resume_from))
for epoch in range(epochs):
    for inputs, targets in loader:
        optimizer.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        optimizer.step()
    torch.save(model.state_dict(), f"checkpoint_{epoch}.pt")  # NN302
```
```python
import torch


def save_checkpoint(directory, model, lr_scheduler, step):
    torch.save(model.state_dict(), f"{directory}/model_{step}.pt")  # NN302
    torch.save(lr_scheduler.state_dict(), f"{directory}/scheduler_{step}.pt")
```

## Use instead
```python
import torch

optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(epochs):
    for inputs, targets in loader:
        optimizer.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        optimizer.step()
    checkpoint = {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    torch.save(checkpoint, f"checkpoint_{epoch}.pt")
```
```python
import torch


def save_checkpoint(directory, model, optimizer, lr_scheduler, step):
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": lr_scheduler.state_dict()}, f"{directory}/checkpoint_{step}.pt")
```
A program that only reads its snapshots back for inference may save the weights alone:
```python
import torch


def train(model, loader, epochs):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(epochs):
        for inputs, targets in loader:
            optimizer.zero_grad()
            criterion(model(inputs), targets).backward()
            optimizer.step()
        torch.save(model.state_dict(), f"weights_{epoch}.pt")


def predict(model, path, inputs):
    model.load_state_dict(torch.load(path))
    with torch.no_grad():
        return model.eval()(inputs)
```

## Source
Seed 001_05b9fd847e40edfb.txt: when saving and restoring model weights in TensorFlow, create
the Saver after the AdamOptimizer, because Adam also has state that must be restored
("ADAM 也有需要恢复的状态"). Seed 004_81a3f3f84632e452.txt and seed 000_15ef46e869a43bad.txt
describe the per-parameter state of momentum, RMSProp and Adam (moving averages of
gradients and squared gradients) that the updates depend on.

In short: Save and restore the optimizer's `state_dict()` with the model's when training is to be
resumed. Public reference: PyTorch tutorial, "Saving and Loading Models" (saving a general
checkpoint for resuming training),
https://pytorch.org/tutorials/beginner/saving_loading_models.html.
'''
from __future__ import annotations

import libcst as cst

from nnlint.facts.names import argument
from nnlint.rule import Context, Rule


class CheckpointWithoutOptimizerState(Rule):
    code = "NN302"
    name = "checkpoint-without-optimizer-state"
    severity = "warning"
    default = True
    fixable = False
    options = {}

    def check(self, ctx: Context) -> None:
        loops = ctx.facts.loops
        checkpoints = ctx.facts.checkpoints
        for save in checkpoints.resume_saves_without_optimizer:
            ctx.report(save, "checkpoint saves the model and the LR scheduler's state but not the optimizer's "
                             "state_dict(): resuming restarts the optimizer's state")
        stateful = checkpoints.stateful_optimizer
        if stateful is None:
            return
        reported: set[cst.CSTNode] = set()
        candidates = [t.node for t in loops.training_loops] + list(loops.outer_loops)
        for loop in candidates:
            saves = [(event, checkpoints.contents(argument(event.node, 0, "obj"), event))
                     for event in loops.iteration(loop) if event.kind == "save" and isinstance(event.node, cst.Call)]
            # the optimizer's state saved to its own file in the same iteration: `opt{step}.pt`
            if any(optimizer_state for _, (_, optimizer_state) in saves):
                continue
            for event, (model_state, optimizer_state) in saves:
                if event.node in reported or checkpoints.best_model_export(event.node):  # type: ignore[arg-type]
                    continue
                if model_state and not optimizer_state:
                    if not reported and checkpoints.loaded_only_for_inference:
                        return  # weights-only snapshots with no resume path
                    reported.add(event.node)
                    ctx.report(event.node, f"checkpoint in the training loop saves the model but not the "
                                           f"{stateful} optimizer's state_dict(): resuming restarts its state")
