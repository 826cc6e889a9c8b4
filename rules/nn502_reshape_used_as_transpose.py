'''
## What it does
Reports `view`/`reshape` calls that reorder a tensor's own dimensions instead of transposing
them. After
`b, c, t = x.shape` (or `x.size()`), a call such as `x.view(b, t, c)`,
`x.reshape(b, h * w, c)` (after `b, c, h, w = x.shape`) or `torch.reshape(x, (t, b, c))`
names the unpacked sizes in a different order than they were unpacked, on the same,
unchanged `x`. Sizes read one by one count the same way: `n = x.shape[0]; c = x.shape[1];
p = x.shape[2] * x.shape[3]` then `x.view(n, p, c)`, or `x.view(x.size(0), -1, x.size(1))`
(the `-1` stands for the dims no argument names).

Splitting or merging dimensions in their original order is fine: `x.view(b, c * t)`,
`x.view(b, -1)`, `x.view(B, T, n_head, C // n_head)` after `B, T, C = x.size()`.
So is a reshape that follows a transpose: `x.transpose(1, 2).contiguous().view(b, t, c)`,
or `x = x.permute(0, 2, 1)` before the `view` (the rule follows reassignments).

The axes are followed through what happens to the tensor in between, inside one function:
`permute`/`transpose`/`flatten`, `chunk`/`split`, element-wise ops, a same-file helper such as
`attention(q, k, v)` returning `softmax(q @ k.T) @ v`, blocks applied to tokens, and an RNN's final
state (`h_n` is `(layers, batch, hidden)` whatever `batch_first` says). So
`values.reshape(b, t, heads * hd)` of heads moved before time, `x.reshape(B, C, H, W)` of
`x.flatten(2).transpose(1, 2)` tokens, `h_n[-2:].view(batch, -1)` with the batch size read from the
input, and `x.view(n, -1, h, 1)` of a conv output (the `-1` takes channels and width across the
height) are reported.

## Why is this bad?
`view` and `reshape` never move data: they reinterpret the same memory, row-major, with a
new shape. Asking for `(b, t, c)` from a `(b, c, t)` tensor does not swap channels and
time; it cuts the flat buffer into different rows, mixing values of different channels
and time steps. The shapes line up, nothing raises, and the network silently learns from
scrambled inputs. Reordering axes is `permute`/`transpose` (followed by `reshape` if the
dimensions must also be merged).

## Example
```python
import torch.nn as nn


class TemporalHead(nn.Module):
    def __init__(self, channels, classes):
        super().__init__()
        self.fc = nn.Linear(channels, classes)

    def forward(self, x):
        b, c, t = x.shape
        x = x.view(b, t, c)  # NN502
        return self.fc(x)


def to_tokens(feature_map):
    b, c, h, w = feature_map.shape
    return feature_map.reshape(b, h * w, c)  # NN502


def tokens_to_map(blocks, x):
    B, C, H, W = x.shape
    x = x.flatten(2).transpose(1, 2)
    for block in blocks:
        x = block(x)
    return x.reshape(B, C, H, W)  # NN502
```

## Use instead
```python
import torch.nn as nn


class TemporalHead(nn.Module):
    def __init__(self, channels, classes):
        super().__init__()
        self.fc = nn.Linear(channels, classes)

    def forward(self, x):
        b, c, t = x.shape
        x = x.transpose(1, 2)
        return self.fc(x)


def to_tokens(feature_map):
    b, c, h, w = feature_map.shape
    return feature_map.flatten(2).transpose(1, 2)


def tokens_to_map(blocks, x):
    B, C, H, W = x.shape
    x = x.flatten(2).transpose(1, 2)
    for block in blocks:
        x = block(x)
    return x.transpose(1, 2).reshape(B, C, H, W)
```
In TensorFlow, `tf.reshape` has the same semantics; use `tf.transpose(x, perm)`.

## Source
Seed 001_05b9fd847e40edfb.txt, "检查你的重构" (check your reshapes): large matrix reshapes,
such as changing an image's X and Y dimensions, destroy spatial locality and make the
network learn the reshaping too; be especially careful when reshaping several
images/channels, and use a proper stacking/alignment operation instead.

In short: Swap dimensions with `permute`/`transpose`; `view`/`reshape` only regroup them. Public
reference: PyTorch documentation, `torch.Tensor.view` and `torch.permute`,
https://pytorch.org/docs/stable/generated/torch.permute.html.
'''
from __future__ import annotations

import libcst as cst

from nnlint.facts.shapes import reordered
from nnlint.rule import Context, Rule


class ReshapeUsedAsTranspose(Rule):
    code = "NN502"
    name = "reshape-used-as-transpose"
    severity = "error"
    default = True
    fixable = False
    options = {}

    def check(self, ctx: Context) -> None:
        shapes = ctx.facts.shapes
        for call in ctx.facts.calls():
            reshape = shapes.reshape(call)
            if reshape is None:
                self._check_layout(ctx, call)
                continue
            tensor = reshape.tensor
            read = shapes.dims_read_one_by_one(tensor, reshape.shape)
            if read is not None and reordered(read):
                ctx.report(call, f"{reshape.name} reorders the dims of {tensor.value} (sizes read as "
                                 f"{tensor.value}.shape[i] in another order): use permute/transpose")
                continue
            for unpacking in shapes.unpackings_of(tensor):
                groups = shapes.dims_per_argument(unpacking, reshape.shape)
                if groups is not None and reordered(groups):
                    requested = ", ".join(" * ".join(unpacking.dims[i] for i in g) for g in groups)
                    ctx.report(
                        call,
                        f"{reshape.name} reorders the dims of {tensor.value} "
                        f"({', '.join(unpacking.dims)} -> {requested}): use permute/transpose",
                    )
                    break
            else:
                self._check_layout(ctx, call)

    def _check_layout(self, ctx: Context, call: cst.Call) -> None:
        """A reshape of a tensor whose axes were moved (permute, RNN state, helper function) on the way."""
        reshape = ctx.facts.shapes.reshape_of(call)
        if reshape is not None and ctx.facts.layouts.mixes(reshape, reshape.tensor):
            ctx.report(call, f"{reshape.name} cuts across the axes this tensor holds (followed through "
                             f"permutes, chunks, helper calls and RNN states, the sizes it names are not in "
                             f"that order): permute/transpose first")
