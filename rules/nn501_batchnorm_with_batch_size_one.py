'''
## What it does
Reports a model with batch normalisation that is trained one example at a time. That is a
`DataLoader(..., batch_size=1)` (or a `DataLoader` without `batch_size`, whose default is
1) iterated by a training loop (a loop that calls `backward()`, directly or in a local
function the loader is passed to) that calls a model with `BatchNorm` layers, or a Keras
`model.fit(..., batch_size=1)` on a model with `BatchNormalization`. The batch size may be a
literal, a constant or an argparse default (`--batch-size` with `default=1`).

Evaluation loaders (`batch_size=1` is common and harmless there, BN uses its running
statistics in `eval()` mode) are not reported: only a loader iterated in a loop that calls
`backward()` counts.

## Why is this bad?
In training mode BatchNorm normalises each channel with the mean and variance of the
current batch. With one example the "batch statistics" are those of a single sample:
`BatchNorm1d` on a `(1, C)` input has one value per channel and raises `ValueError:
Expected more than 1 value per channel when training`; `BatchNorm2d` runs, but it
normalises every feature map by its own spatial statistics, so the running averages used
at test time do not match what the network was trained on and train/test behaviour
diverge. Use a larger batch, or a normalisation that does not depend on the batch
(`GroupNorm`, `LayerNorm`, `InstanceNorm`), or freeze BN (`eval()` on the BN layers) when
fine-tuning with tiny batches.

## Example
```python
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

model = nn.Sequential(nn.Linear(20, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 2))
optimizer = torch.optim.Adam(model.parameters())
train_loader = DataLoader(train_set, batch_size=1, shuffle=True)  # NN501

for x, y in train_loader:
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
```

## Use instead
```python
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

model = nn.Sequential(nn.Linear(20, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 2))
optimizer = torch.optim.Adam(model.parameters())
train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
test_loader = DataLoader(test_set, batch_size=1)

for x, y in train_loader:
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
```

## Source
Seed 004_81a3f3f84632e452.txt (batch normalisation section): BN estimates mean and
variance from each mini-batch; when the batch is very small these statistics can be quite
inaccurate ("当批量非常小时，统计可能相当不准确"), so the batch must be representative.
Seed 000_15ef46e869a43bad.txt: computing the statistics on the batch instances is
unreliable, which is why moving averages are used at prediction time. Seed
001_05b9fd847e40edfb.txt: when debugging with the batch size reduced to 1, remove the
batch-normalisation layers ("将批处理规模减少到1并删除批归一化层").
In Keras the same applies to `BatchNormalization` with `fit(batch_size=1)`.

In short: Train batch norm with batches of more than one sample (or `drop_last=True`). Public
reference: PyTorch documentation, `torch.nn.BatchNorm1d` (statistics over the mini-batch),
https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm1d.html; Ioffe & Szegedy (2015,
arXiv:1502.03167).
'''
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import libcst as cst

from nnlint.facts.names import argument, has_star_args, keyword, literal
from nnlint.rule import Context, Rule

_DATALOADERS = frozenset({"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"})
#: wrappers around an iterable in a ``for`` statement: ``enumerate(loader)``, ``tqdm(loader)``
_ITERATION_WRAPPERS = frozenset({"enumerate", "tqdm", "iter", "zip", "tqdm.tqdm", "tqdm.auto.tqdm",
                                 "tqdm.notebook.tqdm", "tqdm.std.tqdm", "rich.progress.track"})


@dataclass(frozen=True, eq=False)
class TrainingLoop:
    loop: cst.For
    #: maps parameters of the loop's function to the arguments a call site passed
    bindings: tuple[tuple[str, cst.BaseExpression], ...] = ()


class BatchnormWithBatchSizeOne(Rule):
    code = "NN501"
    name = "batchnorm-with-batch-size-one"
    severity = "warning"
    default = True
    fixable = False
    options = {}

    def check(self, ctx: Context) -> None:
        names = ctx.facts.names
        for call in ctx.facts.calls():
            qualname = names.qualname(call.func)
            if qualname in _DATALOADERS:
                self._check_loader(ctx, call)
            elif isinstance(call.func, cst.Attribute) and call.func.attr.value == "fit":
                self._check_fit(ctx, call)

    # -- PyTorch ----------------------------------------------------------------
    def _check_loader(self, ctx: Context, call: cst.Call) -> None:
        if has_star_args(call) or keyword(call, "batch_sampler") is not None:
            return
        size_expr = argument(call, 1, "batch_size")
        explicit = size_expr is not None
        if explicit and _int_value(ctx, size_expr) != 1:
            return
        assigned = _assigned_name(ctx, call)
        if assigned is None:
            return
        for training in _training_loops_over(ctx, *assigned):
            if not explicit and _unbatches(training.loop):
                continue  # a data set that yields whole batches, squeezed after the default batch of 1
            if self._calls_batchnorm_model(ctx, training):
                message = ("training with batch_size=1 on a model with BatchNorm: batch statistics are meaningless"
                           if explicit else
                           "DataLoader's default batch_size is 1, and the model trained on it has BatchNorm")
                ctx.report(call, message)
                return

    def _calls_batchnorm_model(self, ctx: Context, training: TrainingLoop) -> bool:
        models = ctx.facts.models
        bound = dict(training.bindings)
        for node in _walk(training.loop.body):
            if not isinstance(node, cst.Call):
                continue
            callee: cst.BaseExpression = node.func
            if isinstance(callee, cst.Name) and callee.value in bound:
                callee = bound[callee.value]
            summary = models.model_of(callee)
            if summary is not None and summary.has_batchnorm:
                return True
        return False

    # -- Keras --------------------------------------------------------------------
    def _check_fit(self, ctx: Context, call: cst.Call) -> None:
        assert isinstance(call.func, cst.Attribute)
        size = keyword(call, "batch_size")
        if size is None or _int_value(ctx, size) != 1:
            return
        summary = ctx.facts.models.model_of(call.func.value)
        if summary is not None and summary.framework == "keras" and summary.has_batchnorm:
            ctx.report(call, "fit(batch_size=1) on a model with BatchNormalization: batch statistics are meaningless")


def _int_value(ctx: Context, expr: Optional[cst.BaseExpression]) -> object:
    if expr is None:
        return None
    value = literal(ctx.facts.dataflow.resolve(expr), None)
    if value is None:
        value = ctx.facts.constants.value(expr)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _assigned_name(ctx: Context, call: cst.Call) -> Optional[tuple[cst.Name, cst.CSTNode]]:
    """``(train_loader, statement)`` for ``train_loader = DataLoader(...)``."""
    parent = ctx.facts.parent(call)
    if isinstance(parent, cst.Assign) and len(parent.targets) == 1 and isinstance(parent.targets[0].target, cst.Name):
        return parent.targets[0].target, parent
    if isinstance(parent, cst.AnnAssign) and isinstance(parent.target, cst.Name):
        return parent.target, parent
    return None


def _training_loops_over(ctx: Context, loader: cst.Name, statement: cst.CSTNode) -> Iterator[TrainingLoop]:
    """Loops that iterate over ``loader`` (as bound by ``statement``) and call ``backward()``:
    in its scope, or in a local function it is passed to (``train(model, train_loader, optimizer)``)."""
    dataflow = ctx.facts.dataflow
    scope = dataflow.scope_of(loader)
    for node in ctx.facts.walk(scope) if scope is not None else ():
        if isinstance(node, cst.For) and _calls_backward(node):
            iterated = _iterated_name(ctx, node.iter)
            if iterated is not None and iterated.value == loader.value and any(
                d.statement is statement for d in dataflow.definitions(iterated)
            ):
                yield TrainingLoop(node)
        elif isinstance(node, cst.Call) and isinstance(node.func, cst.Name):
            function = ctx.facts.names.functions.get(node.func.value)
            if function is None or node.func.value in ctx.facts.names.bindings:
                continue
            bindings = _bind_arguments(function, node)
            for parameter, argument_value in bindings:
                if (isinstance(argument_value, cst.Name) and argument_value.value == loader.value
                        and any(d.statement is statement for d in dataflow.definitions(argument_value))):
                    for loop in _walk(function.body):
                        if isinstance(loop, cst.For) and _calls_backward(loop):
                            iterated = _iterated_name(ctx, loop.iter)
                            if iterated is not None and iterated.value == parameter:
                                yield TrainingLoop(loop, tuple(bindings))


def _iterated_name(ctx: Context, iterable: cst.BaseExpression) -> Optional[cst.Name]:
    """``loader`` in ``for b in loader`` / ``enumerate(loader)`` / ``tqdm(loader, ...)``."""
    names = ctx.facts.names
    while isinstance(iterable, cst.Call) and iterable.args:
        func = iterable.func
        builtin = isinstance(func, cst.Name) and func.value not in names.bindings
        if (func.value if builtin else names.qualname(func)) not in _ITERATION_WRAPPERS:  # type: ignore[union-attr]
            return None
        iterable = iterable.args[0].value
    return iterable if isinstance(iterable, cst.Name) else None


def _bind_arguments(function: cst.FunctionDef, call: cst.Call) -> list[tuple[str, cst.BaseExpression]]:
    params = [p.name.value for p in list(function.params.posonly_params) + list(function.params.params)]
    bound: list[tuple[str, cst.BaseExpression]] = []
    position = 0
    for arg in call.args:
        if arg.star:
            return bound
        if arg.keyword is not None:
            bound.append((arg.keyword.value, arg.value))
        elif position < len(params):
            bound.append((params[position], arg.value))
            position += 1
    return bound


def _calls_backward(loop: cst.For) -> bool:
    return any(
        isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "backward"
        for node in _walk(loop.body)
    )


def _unbatches(loop: cst.For) -> bool:
    """Does the loop undo the loader's batch dimension (``x.squeeze(0)``)?"""
    for node in _walk(loop.body):
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in (
            "squeeze", "squeeze_"
        ):
            return True
    return False


def _walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))
