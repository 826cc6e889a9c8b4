"""Reshapes of tensors whose axes moved on the way (NN502): each case is a small program written for
this suite in the shape of a real bug - a helper's attention result reshaped without moving the heads
back, tokens reshaped back to a feature map, a ``-1`` that swallows the axes after a named one, an
RNN's final state flattened across the batch - next to correct code that must stay quiet. A line
ending in ``# NN502`` must get exactly that finding; no other NN502 finding may appear."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import nnlint
from test_program_shapes import _expected

HEADER = '''
import math
import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
'''

CASES: dict[str, str] = {
    # heads moved before the sequence axis, chunked, through a module-level helper, reshaped back
    "attention-helper-keeps-the-heads-axis": HEADER + '''

def attend(q, k, v, mask=None):
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.size()[-1])
    if mask is not None:
        scores = scores.permute(1, 0, 2, 3) + mask
        scores = scores.permute(1, 0, 2, 3)
    weights = F.softmax(scores, dim=-1)
    return torch.matmul(weights, v), weights


class SelfAttention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.head_width = width // heads
        self.qkv = nn.Linear(width, 3 * width)
        self.kv = nn.Linear(width, 2 * width)
        self.q = nn.Linear(width, width)

    def forward(self, x, mask):
        batch, length, width = x.size()
        qkv = self.qkv(x).reshape(batch, length, self.heads, 3 * self.head_width)
        qkv = qkv.permute(0, 2, 1, 3)
        q, k, v = qkv.chunk(3, dim=-1)
        out, weights = attend(q, k, v, mask)
        return out.reshape(batch, length, self.heads * self.head_width)  # NN502

    def cross(self, x, y, mask):
        batch, length, width = x.size()
        kv = self.kv(x).reshape(batch, length, self.heads, 2 * self.head_width).permute(0, 2, 1, 3)
        q = self.q(y).reshape(batch, length, self.heads, self.head_width).permute(0, 2, 1, 3)
        k, v = kv.chunk(2, dim=-1)
        out, _ = attend(q, k, v, mask)
        return out.reshape(batch, length, width)  # NN502

    def moved_back(self, x, mask):
        batch, length, width = x.size()
        qkv = self.qkv(x).reshape(batch, length, self.heads, 3 * self.head_width)
        qkv = qkv.permute(0, 2, 1, 3)
        q, k, v = qkv.chunk(3, dim=-1)
        out, weights = attend(q, k, v, mask)
        out = out.permute(0, 2, 1, 3)
        return out.reshape(batch, length, self.heads * self.head_width)

    def transposed_back(self, x, mask):
        batch, length, width = x.size()
        q, k, v = self.qkv(x).reshape(batch, length, self.heads, 3 * self.head_width).transpose(1, 2).chunk(3, -1)
        out, _ = attend(q, k, v, mask)
        return out.transpose(1, 2).reshape(batch, length, -1)

    def einops(self, x, mask):
        batch, length, width = x.size()
        q, k, v = self.qkv(x).reshape(batch, length, self.heads, 3 * self.head_width).transpose(1, 2).chunk(3, -1)
        out, _ = attend(q, k, v, mask)
        return rearrange(out, "b h l d -> b l (h d)")
''',
    # a feature map flattened to tokens, blocks applied, reshaped back to a map without transposing
    "tokens-back-to-a-map": HEADER + '''

class Stage(nn.Module):
    def forward(self, x):
        B, C, H, W = x.shape
        x = x.flatten(2).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return x.reshape(B, C, H, W)  # NN502

    def transposed_back(self, x):
        B, C, H, W = x.shape
        x = x.flatten(2).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return x.transpose(1, 2).reshape(B, C, H, W)

    def tokens(self, x):
        B, C, H, W = x.shape
        x = x.flatten(2).transpose(1, 2)
        x = self.norm(x)
        return x.reshape(B, H * W, C)

    def maybe_tokens(self, pair):
        x, m = pair
        if self.map_input:
            B, C, H, W = x.shape
            x = x.flatten(2).transpose(1, 2)
        x = x + self.drop(self.attn(self.norm(x)))
        x, m = self.pruner(x, m) if self.pruner else (x, m)
        if self.map_output:
            x = self.peg(x.reshape(B, C, H, W))  # NN502
        return x, m

    def merged_in_the_moved_order(self, x):
        b, m, c, t, n = x.size()
        out = self.proj(x.permute(0, 3, 4, 1, 2).reshape(b * m * t * n, c)).reshape(b, t, n, m, -1)
        return out

    def gate(self, x, m):
        B, N, C = x.shape
        m = m * self.controller(x).sigmoid().reshape(B, 1, 1, N)
        return m.detach().reshape(B, N)

    def maybe_moved(self, x, flag):
        B, C, H, W = x.shape
        if flag:
            x = x.flatten(2).transpose(1, 2)
        return x.reshape(B, C, H, W)
''',
    # a 4-D conv output: -1 before the height takes channels and width together
    "minus-one-across-an-axis": HEADER + '''

class Audio(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        out = F.relu(self.bn(self.conv(x)))
        n = out.size(0)
        h = out.size(2)
        return out.view(n, -1, h, 1)  # NN502

    def transposed_first(self, x):
        out = F.relu(self.bn(self.conv(x)))
        n = out.size(0)
        h = out.size(2)
        return out.transpose(-1, -2).reshape(n, -1, h, 1)

    def merged_in_order(self, x):
        out = F.relu(self.bn(self.conv(x)))
        n = out.size(0)
        c = out.size(1)
        return out.view(n, c, -1)


def unknown_rank(x):
    n = x.size(0)
    h = x.size(2)
    return x.view(n, -1, h, 1)
''',
    # an RNN's final state is (layers * directions, batch, hidden) whatever batch_first says
    "rnn-final-state": HEADER + '''

class Encoder(nn.Module):
    def __init__(self, birnn):
        super().__init__()
        self.birnn = birnn
        self.rnn = nn.LSTM(input_size=4, hidden_size=8, num_layers=2, bidirectional=birnn)
        self.gru = nn.GRU(4, 8, batch_first=True)

    def forward(self, inputs):
        batch_size = inputs.size()[1]
        outputs, (ht, ct) = self.rnn(inputs)
        return ht[-1] if not self.birnn else ht[-2:].view(batch_size, -1)  # NN502

    def transposed(self, inputs):
        batch_size = inputs.size()[1]
        outputs, (ht, ct) = self.rnn(inputs)
        return ht[-2:].transpose(0, 1).reshape(batch_size, -1)

    def last_layer(self, inputs):
        batch_size = inputs.size(1)
        outputs, (ht, ct) = self.rnn(inputs)
        return ht[-1].view(batch_size, -1)

    def layers_apart(self, inputs):
        batch_size = inputs.size(1)
        outputs, (ht, ct) = self.rnn(inputs)
        return ht.view(2, 2 if self.birnn else 1, batch_size, -1)

    def batch_first(self, inputs):
        batch_size = inputs.size(0)
        outputs, h_n = self.gru(inputs)
        return h_n.view(batch_size, -1)
''',
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layout_case(case: str, tmp_path: Path) -> None:
    files = {"model.py": textwrap.dedent(CASES[case])}
    (tmp_path / "model.py").write_text(files["model.py"])
    result = nnlint.lint_paths([str(tmp_path)], select=["NN502"], use_cache=False, jobs=1)
    assert not result.errors
    got = {(Path(f.path).relative_to(tmp_path).as_posix(), f.line, f.code) for f in result.findings}
    assert got == _expected(files)
