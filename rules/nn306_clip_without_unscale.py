'''
## What it does
Reports gradient clipping of `GradScaler`-scaled gradients without
`scaler.unscale_(optimizer)` first.

The gradients are scaled when the loss was backpropagated with
`scaler.scale(loss).backward()`; `torch.nn.utils.clip_grad_norm_`/`clip_grad_value_`
must then come after `scaler.unscale_(optimizer)`.

A function that clips and then calls `scaler.step(optimizer)` is reported too, even when the
backward and the training loop are elsewhere (an optimizer wrapper's `step()` method), when
`scaler` is a `GradScaler` (built as one in the file, annotated `GradScaler`, or named like
`scaler`) and no `unscale_` runs before the clip, neither in that function nor in a caller in
the same file before it calls the function. Clipping after `scaler.step()` is reported by NN305 instead.

## Why is this bad?
With a `GradScaler` the gradients in `.grad` are multiplied by the loss scale (65536 at
the start, adjusted as training runs). Clipping them to `max_norm=1.0` before unscaling
compares the threshold with a norm that is thousands of times too large: almost every
step is clipped to a tiny update, and how much changes whenever the scaler adjusts its
scale. `scaler.step()` unscales only afterwards. The PyTorch AMP recipe is
`scaler.scale(loss).backward()`, `scaler.unscale_(optimizer)`, clip, `scaler.step(optimizer)`,
`scaler.update()`.

## Example
```python
import torch

scaler = torch.cuda.amp.GradScaler()
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
for inputs, targets in loader:
    optimizer.zero_grad()
    with torch.autocast("cuda", dtype=torch.float16):
        loss = criterion(model(inputs), targets)
    scaler.scale(loss).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # NN306
    scaler.step(optimizer)
    scaler.update()
```

## Use instead
```python
import torch

scaler = torch.cuda.amp.GradScaler()
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
for inputs, targets in loader:
    optimizer.zero_grad()
    with torch.autocast("cuda", dtype=torch.float16):
        loss = criterion(model(inputs), targets)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    scaler.update()
```

## Fix safety
The fix inserts `scaler.unscale_(optimizer)` on the line above the clip, with the clip's
indentation. It is safe: `scaler.step()` skips unscaling gradients that are already unscaled, so
only the clipping changes, to the threshold the code asked for. It is offered only when the
backward, the clip and the step are in the loop's own code (so the scaler and optimizer names are
the ones in scope) and nothing in the loop calls `unscale_` yet (a second call before `update()`
raises). A clip found from `scaler.step()` alone gets no fix: the optimizer stepped, or the
scaler itself, may not exist where the clip is (`if grad_scaler is not None:`).

## Source
Seed 002_1779c8f13c5dbb22.txt, "梯度裁剪（Gradient Clipping）": clipping limits gradient
values to a threshold ("使它不超过设定的阈值", so they do not exceed the set threshold), which
only works on the true gradients. Seed 000_15ef46e869a43bad.txt shows how a clipnorm of 1.0
rescales a gradient vector by its norm: a norm inflated by the loss scale makes that
rescaling meaningless. The unscale-before-clip order is the PyTorch AMP recipe.

In short: With a `GradScaler`, call `scaler.unscale_(optimizer)` before clipping. Public reference:
PyTorch documentation, "Automatic Mixed Precision examples: working with unscaled gradients",
https://pytorch.org/docs/stable/notes/amp_examples.html#working-with-unscaled-gradients.
'''
from __future__ import annotations

from typing import Optional, Sequence

import libcst as cst

from nnlint.facts.edits import Edits, block_statement, insert_before
from nnlint.facts.loops import Event, TrainingLoop, after, before
from nnlint.rule import Context, Rule


class ClipWithoutUnscale(Rule):
    code = "NN306"
    name = "clip-without-unscale"
    severity = "error"
    default = True
    fixable = True
    options = {}

    def check(self, ctx: Context) -> None:
        names = ctx.facts.names
        reported: set[object] = set()
        for training in ctx.facts.loops.training_loops:
            events = training.events
            for index, clip in enumerate(events):
                if clip.kind != "clip" or clip.node in reported:
                    continue
                qualname = names.qualname(clip.node.func)  # type: ignore[attr-defined]
                if qualname is None or not qualname.startswith("torch."):
                    continue  # accelerator.clip_grad_norm_ and friends unscale for you
                for event in before(events, index):
                    if event.kind == "unscale" or event.kind == "step":
                        break
                    if event.kind == "backward":
                        scaled = event if event.scaler is not None else _scaled_alternative(ctx, events, event)
                        if scaled is not None:
                            reported.add(clip.node)
                            step = next((e for e in after(events, index) if e.kind == "step"), None)
                            optimizer = step.receiver if step is not None else None
                            unscale = f"{scaled.scaler}.unscale_({optimizer or 'optimizer'})"
                            ctx.report(clip.node, f"clipping gradients scaled by {scaled.scaler}: call "
                                                  f"{unscale} before clipping",
                                       fix=_unscale_fix(ctx, training, clip, scaled, step, unscale),
                                       fix_message=f"Call {unscale} before clipping")
                        break
        # an optimizer wrapper's ``step()``: clip, then ``scaler.step(optimizer)``; the backward is elsewhere
        in_loops = {e.node for training in ctx.facts.loops.training_loops for e in training.events}
        for found in ctx.facts.precision.scaled_clips:
            if found.clip not in in_loops and found.clip not in reported:
                reported.add(found.clip)
                unscale = f"{found.scaler}.unscale_({found.optimizer or 'optimizer'})"
                ctx.report(found.clip, f"clipping gradients before {found.scaler}.step(): they are still "
                                       f"scaled; call {unscale} before clipping")


def _scaled_alternative(ctx: Context, events: Sequence[Event], backward: Event) -> Optional[Event]:
    """``scaler.scale(loss).backward() if scaler else loss.backward()``: the scaled twin of a plain backward."""
    branch = next((a for a in ctx.facts.ancestors(backward.node) if isinstance(a, cst.IfExp)), None)
    if branch is None:
        return None
    for event in events:
        if event.kind == "backward" and event.scaler is not None and branch in ctx.facts.ancestors(event.node):
            return event
    return None


def _unscale_fix(ctx: Context, training: TrainingLoop, clip: Event, scaled: Event, step: Optional[Event],
                 unscale: str) -> Optional[Edits]:
    """``scaler.unscale_(optimizer)`` on the line above the clip, when the clip, the backward and the
    step are all in this loop's own code (names valid at the clip) and nothing unscales yet (a
    second ``unscale_`` before ``update()`` raises)."""
    if step is None or step.receiver is None or clip.via or scaled.via or step.via \
            or training.of_kind("unscale"):
        return None
    statement = block_statement(ctx, clip.node)
    return insert_before(ctx, statement, unscale) if statement is not None else None
