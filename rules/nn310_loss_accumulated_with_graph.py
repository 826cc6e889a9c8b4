'''
## What it does
Reports `total += loss` across loop iterations where `loss` is a loss tensor that still
carries its autograd graph, instead of `loss.item()`.

A loss tensor is the result of a criterion (`criterion(out, y)` with
`criterion = nn.CrossEntropyLoss()`, or a function named like `criterion`/`loss_fn`), of a
functional loss (`F.cross_entropy(...)`, `F.mse_loss(...)`), a model output's `.loss`, or any
tensor the loop calls `.backward()` on (`loss, mse = my_loss(...); loss.backward()`). What a
function or method of the file returns is one when all its returns are (a `train_step` that
returns its loss), and so are the parts of a tuple it returns and the values of a dict of
losses (`for name, value in parts.items(): totals[name] += value`), an entry of one
(`out["bpp_loss"]` of `out = criterion(...)`), the sum of a list of them (`sum(parts)`,
`reduce(lambda x, y: x + y, parts)`), and a term of a backpropagated total that a helper returns
with it (`total, part = helper(); total.backward()` where the helper adds `part` into `total`).
`total` (or the dict `totals`) must be set before the loop and never backpropagated itself
(summing losses of micro-batches to call `total.backward()` once is correct), nor returned
from a loop that does not backpropagate (the caller may), and the sum must not run under
`torch.no_grad()`/`inference_mode()`, where there is no graph to keep (nor add a loss read
from outputs computed under it: `loss = outputs.loss` after a `with torch.no_grad():` block).

A loss tensor kept in a container that outlives the iteration holds its graph the same way,
also after `loss.backward()`: `losses.append(loss)` on a list made before the loop,
`log[step] = loss` into a dict made before the loop under a key that changes every iteration
(the loop's target or a counter it increments), `outputs.append(output)` where
`output["loss"]` is what the loop backpropagates or a dict literal holds a loss tensor, and
`meter.update(loss)` on an instance, made before the loop, of a class of the same file whose
method adds its argument (or each item of a list it is given) to an attribute
(`self.sum += val`) or appends it. A list or meter held on `self` (made in another method)
counts the same when a loop of a method fills it, or a method that is one training step:
Lightning's `training_step` (`self.training_step_outputs.append(log)` with `log` holding the
loss), or a method that calls `backward()` and `optimizer.step()` outside any loop of its own.
The same exceptions apply (a list of micro-batch losses later summed and backpropagated, or
handed to `accelerator.backward(...)`/`manual_backward(...)`, is correct, also when another
method of the class does it), and a list the same iteration clears
(`outputs.clear()`) holds a bounded number of losses. Backpropagating only the newest item
(`losses[-1].backward()`) does not free the others.

## Why is this bad?
Adding a tensor that requires grad to `total` makes `total` a tensor whose graph holds
every iteration's graph, with all activations saved for backward. Memory grows with each
batch until the epoch ends or the GPU runs out of memory, and every logging line that
reads `total` forces a device sync. `loss.item()` turns the value into a Python float and
lets each iteration's graph be freed.

## Example
```python
import torch.nn as nn

criterion = nn.CrossEntropyLoss()
running_loss = 0.0
for inputs, labels in loader:
    optimizer.zero_grad()
    loss = criterion(model(inputs), labels)
    loss.backward()
    optimizer.step()
    running_loss += loss  # NN310
print(running_loss / len(loader))
```

## Use instead
```python
import torch.nn as nn

criterion = nn.CrossEntropyLoss()
running_loss = 0.0
for inputs, labels in loader:
    optimizer.zero_grad()
    loss = criterion(model(inputs), labels)
    loss.backward()
    optimizer.step()
    running_loss += loss.item()
print(running_loss / len(loader))
```

## Fix safety
The fix replaces `loss` by `loss.item()`. It is unsafe: `total` becomes a Python float,
which is right when it is only logged or averaged, but code that later treats `total` as
a tensor (`total.device`, `torch.stack`, `total.backward()` in another file) breaks.
For a kept loss the fix stores `loss.detach()`, which stays a tensor on its device; it is
unsafe too, since code in another file that backpropagates the kept tensors breaks. No fix is
offered for a kept dict or model output, nor for a name that is `0` on some paths (there is
no `.item()` on an int).

## Source
Seed 003_1540c0685162747f.txt, "每个批量数据训练都要执行的代码流程" (the code every batch must
run): the loss of the batch is added to the total as `train_loss += loss.item()`
("将该批次的损失加到总损失中", add this batch's loss to the total loss).

In short: Accumulate `loss.item()` (or `loss.detach()`), not the loss tensor itself. Public
reference: PyTorch FAQ, "Don't accumulate history across your training loop",
https://pytorch.org/docs/stable/notes/faq.html.
'''
from __future__ import annotations

import libcst as cst

from nnlint.facts.tensors import original_text
from nnlint.rule import Context, Rule


class LossAccumulatedWithGraph(Rule):
    code = "NN310"
    name = "loss-accumulated-with-graph"
    severity = "warning"
    default = True
    fixable = True
    options = {}

    def check(self, ctx: Context) -> None:
        facts = ctx.facts
        accumulation = facts.accumulation
        for node in facts.nodes_of(cst.AugAssign):
            if not (isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.AddAssign)
                    and accumulation.accumulator(node) is not None):
                continue
            loss = accumulation.loss_operand(node.value)
            if loss is None or not accumulation.accumulates_across_iterations(node):
                continue
            name = original_text(ctx, node.target)
            message = f"{name} += a loss tensor keeps every iteration's autograd graph alive; add loss.item()"
            if accumulation.may_be_number(loss):  # ``0`` on some paths: no ``.item()`` to call there
                ctx.report(node, message)
                continue
            ctx.report(
                node,
                message,
                fix=[(loss, f"{original_text(ctx, loss)}.item()")],
                fix_message=f"Accumulate {original_text(ctx, loss)}.item()",
                applicability="unsafe",
            )
        for kept in accumulation.kept_losses():
            where = original_text(ctx, kept.node)
            if kept.loss is None or accumulation.may_be_number(kept.loss):
                ctx.report(kept.node, f"{where} keeps a loss tensor and its autograd graph alive in "
                                      f"{kept.kept_in} every iteration; keep detached values")
                continue
            text = original_text(ctx, kept.loss)
            if not isinstance(kept.loss, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)):
                text = f"({text})"
            ctx.report(
                kept.node,
                f"{where} keeps a loss tensor and its autograd graph alive in {kept.kept_in} every "
                f"iteration; store {text}.detach() or {text}.item()",
                fix=[(kept.loss, f"{text}.detach()")],
                fix_message=f"Keep {text}.detach()",
                applicability="unsafe",
            )
