'''
## What it does
Reports an optimizer `step()` in a training loop whose iteration never clears the
gradients that step applies.

A training loop is a loop whose iteration calls `backward()` and `step()`, directly or
through functions of the same file, or a Lightning `training_step` with manual optimization
(`self.manual_backward(loss)` and `opt.step()`: the trainer calls it once per batch). Clearing means `optimizer.zero_grad()`,
`model.zero_grad()` on the model the optimizer updates, or `p.grad = None`.

It also reports a loop that clears the wrong gradients: `zero_grad()` only on another
optimizer, or on a model the stepped optimizer was not built over
(`optim.Adam(netD.parameters())` stepped while only `netG.zero_grad()` runs).
Gradient accumulation, where `zero_grad()` sits under the same `if` as the step, and
`zero_grad()` at the end of the iteration, after the step, are correct and not reported.

## Why is this bad?
PyTorch adds every `backward()` into `.grad`; nothing resets it for you. Without
`zero_grad()` each update uses the sum of the gradients of all previous batches, which
grows without bound: the effective learning rate explodes and training diverges or
oscillates. The bug is silent: no error, only a loss curve that behaves strangely.

## Example
```python
import torch.nn as nn
import torch.optim as optim

model = nn.Linear(10, 1)
criterion = nn.MSELoss()
optimizer = optim.SGD(model.parameters(), lr=0.01)

for inputs, targets in loader:
    loss = criterion(model(inputs), targets)
    loss.backward()
    optimizer.step()  # NN303
```

```python
import torch.nn as nn
import torch.optim as optim

netD, netG = Discriminator(), Generator()
optimizerD = optim.Adam(netD.parameters(), lr=2e-4)
optimizerG = optim.Adam(netG.parameters(), lr=2e-4)

for real in loader:
    netG.zero_grad()
    errD = criterion(netD(real), ones) + criterion(netD(netG(noise).detach()), zeros)
    errD.backward()
    optimizerD.step()  # NN303
    errG = criterion(netD(netG(noise)), ones)
    errG.backward()
    optimizerG.step()
```

## Use instead
```python
import torch.nn as nn
import torch.optim as optim

model = nn.Linear(10, 1)
criterion = nn.MSELoss()
optimizer = optim.SGD(model.parameters(), lr=0.01)

for inputs, targets in loader:
    optimizer.zero_grad()
    loss = criterion(model(inputs), targets)
    loss.backward()
    optimizer.step()
```

```python
import torch.nn as nn
import torch.optim as optim

netD, netG = Discriminator(), Generator()
optimizerD = optim.Adam(netD.parameters(), lr=2e-4)
optimizerG = optim.Adam(netG.parameters(), lr=2e-4)

for real in loader:
    netD.zero_grad()
    errD = criterion(netD(real), ones) + criterion(netD(netG(noise).detach()), zeros)
    errD.backward()
    optimizerD.step()
    netG.zero_grad()
    errG = criterion(netD(netG(noise)), ones)
    errG.backward()
    optimizerG.step()
```

## Fix safety
The fix inserts `optimizer.zero_grad()` on the line after `optimizer.step()`, in the same
block: every step then starts the next accumulation from zero, and gradient accumulation (a step
every few batches) keeps working. It is unsafe: code that deliberately kept gradients across
steps (rare, and then better written with an explicit accumulator) would change. There is no fix
when the step is reached through a helper function or shares its line with an `if`.

## Source
Seed 003_1540c0685162747f.txt, "每个批量数据训练都要执行的代码流程" (the code every batch must
run): the canonical PyTorch step begins with `optimizer.zero_grad()` ("设置优化器初始梯度为0",
set the optimizer's gradients to zero), then forward, loss, `train_loss += loss.item()`,
`loss.backward()` and `optimizer.step()`.

In short: Call `optimizer.zero_grad()` once per step: gradients accumulate in `.grad` until cleared.
Public reference: PyTorch documentation, `torch.optim.Optimizer.zero_grad`,
https://pytorch.org/docs/stable/generated/torch.optim.Optimizer.zero_grad.html; PyTorch tutorial,
"Optimizing Model Parameters",
https://pytorch.org/tutorials/beginner/basics/optimization_tutorial.html.
'''
from __future__ import annotations

from typing import Optional

from nnlint.facts.edits import Edits, insert_after, line_statement
from nnlint.facts.loops import Event, exclusive
from nnlint.rule import Context, Rule


class MissingZeroGrad(Rule):
    code = "NN303"
    name = "missing-zero-grad"
    severity = "error"
    default = True
    fixable = True
    options = {}

    def check(self, ctx: Context) -> None:
        loops = ctx.facts.loops
        reported: set[object] = set()
        for training in loops.training_loops:
            zeros = training.of_kind("zero_grad")
            for step in training.of_kind("step"):
                if step.node in reported:
                    continue
                relevant = [z for z in zeros if not exclusive(z, step)]
                if any(loops.zeroes(z, step.receiver) for z in relevant):
                    continue
                reported.add(step.node)
                if relevant:
                    cleared = ", ".join(sorted({z.receiver or "?" for z in relevant}))
                    ctx.report(step.node, f"{step.receiver}.step() but zero_grad() only clears {cleared}: "
                                          f"the gradients {step.receiver} applies accumulate across iterations")
                else:
                    ctx.report(step.node, f"{step.receiver}.step() in a loop without zero_grad(): "
                                          "gradients accumulate across iterations",
                               fix=_zero_grad_fix(ctx, step), fix_message=f"Call {step.receiver}.zero_grad() after "
                               "the step", applicability="unsafe")


def _zero_grad_fix(ctx: Context, step: Event) -> Optional[Edits]:
    """``optimizer.zero_grad()`` on the line after the step, in this loop's own code: the next
    iteration starts from zero, and accumulating over several backwards before a step still works."""
    statement = line_statement(ctx, step.node) if step.receiver is not None and not step.via else None
    return insert_after(ctx, statement, f"{step.receiver}.zero_grad()") if statement is not None else None
