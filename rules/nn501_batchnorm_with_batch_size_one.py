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

import libcst as cst

from nnlint.facts.loaders import unbatches
from nnlint.facts.names import argument, has_star_args, keyword
from nnlint.rule import Context, Rule


class BatchnormWithBatchSizeOne(Rule):
    code = "NN501"
    name = "batchnorm-with-batch-size-one"
    severity = "warning"
    default = True
    fixable = False
    options = {}

    def check(self, ctx: Context) -> None:
        loaders = ctx.facts.loaders
        for call in ctx.facts.calls():
            if loaders.is_dataloader(call):
                self._check_loader(ctx, call)
            elif isinstance(call.func, cst.Attribute) and call.func.attr.value == "fit":
                self._check_fit(ctx, call)

    # -- PyTorch ----------------------------------------------------------------
    def _check_loader(self, ctx: Context, call: cst.Call) -> None:
        loaders = ctx.facts.loaders
        if has_star_args(call) or keyword(call, "batch_sampler") is not None:
            return
        size_expr = argument(call, 1, "batch_size")
        explicit = size_expr is not None
        if explicit and loaders.int_value(size_expr) != 1:
            return
        for training in loaders.training_loops_over(call):
            if not explicit and unbatches(training.loop):
                continue  # a data set that yields whole batches, squeezed after the default batch of 1
            if loaders.runs_batchnorm_model(training):
                message = ("training with batch_size=1 on a model with BatchNorm: batch statistics are meaningless"
                           if explicit else
                           "DataLoader's default batch_size is 1, and the model trained on it has BatchNorm")
                ctx.report(call, message)
                return

    # -- Keras --------------------------------------------------------------------
    def _check_fit(self, ctx: Context, call: cst.Call) -> None:
        assert isinstance(call.func, cst.Attribute)
        size = keyword(call, "batch_size")
        if size is None or ctx.facts.loaders.int_value(size) != 1:
            return
        summary = ctx.facts.models.model_of(call.func.value)
        if summary is not None and summary.framework == "keras" and summary.has_batchnorm:
            ctx.report(call, "fit(batch_size=1) on a model with BatchNormalization: batch statistics are meaningless")
