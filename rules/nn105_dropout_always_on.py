'''
## What it does
Reports dropout that stays on at evaluation and inference time. It looks for:

* `F.dropout(x, p)` (also `F.dropout1d`/`dropout2d`/`dropout3d`) in the `forward` of an
  `nn.Module` subclass (or a method `forward` calls) without a `training` argument. Unlike
  the `nn.Dropout` module, the functional form does not look at `model.eval()`: its
  `training` parameter defaults to `True`.
* a hand-written dropout module (an `nn.Module` subclass named `*Dropout*` whose `forward`
  draws a random mask with `torch.rand`/`bernoulli`) that never reads `self.training`
  (Monte-Carlo, concrete and Bayesian dropout classes are on by design and not reported), and
  an inverted-dropout mask in any module's `forward` (or a method it runs) that never reads it:
  a `bernoulli_(q)` draw rescaled by the same keep probability (`mask / (1 - p)`).
* `F.scaled_dot_product_attention(q, k, v, dropout_p=p)` (or flash-attn's `flash_attn_func` and
  its variants) in a module's `forward` with a rate that does not look at `self.training` (these
  kernels have no `training` parameter), reported at the rate, and
  an `nn.Dropout(p)(x)` built inside `forward`: a module made there is always in training mode.
* TensorFlow 1 graph code (a graph fed through `tf.placeholder`) that calls
  `tf.nn.dropout(x, 0.5)` / `tf.nn.dropout(x, keep_prob=0.5)` / `tf.nn.dropout(x, rate=0.5)`
  with a constant probability, `tf.contrib.layers.dropout(x, keep_prob)` without
  `is_training`, or an RNN cell wrapped as `DropoutWrapper(cell, output_keep_prob=0.5)`:
  the same graph then drops units when it is evaluated.
* `tf.nn.dropout` with a constant rate in the `call` of a Keras layer or model, outside
  an `if training:` branch.

`training=self.training`, an explicit `training=True` (Monte-Carlo dropout is a deliberate
choice), `training=False` and calls under `if self.training:` are not reported.
`F.alpha_dropout` and `F.feature_alpha_dropout` default to `training=False` and are never
active by accident.

## Why is this bad?
Dropout is a training-time regulariser: it zeroes random units and rescales the rest so
that, at test time, the full network can be used unchanged. If it stays on during
evaluation, every prediction is computed by a random sub-network: validation metrics are
noisy and pessimistic, results are not reproducible, and the deployed model is worse than
the one that was trained.

## Example
```python
import torch
import torch.nn as nn
import torch.nn.functional as F
from flash_attn import flash_attn_func


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.dropout(x, p=0.5)  # NN105
        return self.fc2(x)


class Attention(nn.Module):
    def __init__(self, dim, dropout):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.dropout = dropout

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout)  # NN105
        return nn.Dropout(0.1)(y)  # NN105


class FlashAttention(nn.Module):
    def __init__(self, dim, dropout):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.dropout = dropout

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return flash_attn_func(q, k, v, dropout_p=self.dropout, causal=True)  # NN105


class SparseDropout(nn.Module):
    def __init__(self, p=0.5):
        super().__init__()
        self.keep = 1 - p

    def forward(self, x):
        mask = (torch.rand(x._values().size()) + self.keep).floor().bool()  # NN105
        return torch.sparse_coo_tensor(x._indices()[:, mask], x._values()[mask] / self.keep, x.shape)
```

```python
import tensorflow as tf

x = tf.placeholder(tf.float32, [None, 784])
hidden = tf.layers.dense(x, 256, activation=tf.nn.relu)
hidden_drop = tf.nn.dropout(hidden, keep_prob=0.5)  # NN105
logits = tf.layers.dense(hidden_drop, 10)
cell = tf.nn.rnn_cell.DropoutWrapper(tf.nn.rnn_cell.BasicLSTMCell(128), output_keep_prob=0.5)  # NN105


class LstmModel:
    def __init__(self, keep_prob=0.8, dropout=0.5):
        self.keep_prob = keep_prob
        self.inputs = tf.placeholder(tf.float32, [None, 30, 8])
        self.embed_keep = tf.constant(dropout)

    def build(self):
        embedded = tf.nn.dropout(self.inputs, self.embed_keep)  # NN105
        cell = tf.nn.rnn_cell.BasicLSTMCell(128)
        if self.keep_prob < 1.0:  # a Python number: the graph keeps it
            cell = tf.nn.rnn_cell.DropoutWrapper(cell, output_keep_prob=self.keep_prob)  # NN105
        return tf.nn.dynamic_rnn(cell, embedded, dtype=tf.float32)
```

## Use instead
```python
import torch
import torch.nn as nn
import torch.nn.functional as F
from flash_attn import flash_attn_func


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.dropout(x, p=0.5, training=self.training)
        return self.fc2(x)


class Attention(nn.Module):
    def __init__(self, dim, dropout):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.dropout = dropout
        self.out_drop = nn.Dropout(0.1)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.out_drop(y)


class FlashAttention(nn.Module):
    def __init__(self, dim, dropout):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.dropout = dropout

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return flash_attn_func(q, k, v, dropout_p=self.dropout if self.training else 0.0, causal=True)


class SparseDropout(nn.Module):
    def __init__(self, p=0.5):
        super().__init__()
        self.keep = 1 - p

    def forward(self, x):
        if not self.training:
            return x
        mask = (torch.rand(x._values().size()) + self.keep).floor().bool()
        return torch.sparse_coo_tensor(x._indices()[:, mask], x._values()[mask] / self.keep, x.shape)
```

```python
import tensorflow as tf

x = tf.placeholder(tf.float32, [None, 784])
keep_prob = tf.placeholder_with_default(1.0, shape=())
hidden = tf.layers.dense(x, 256, activation=tf.nn.relu)
hidden_drop = tf.nn.dropout(hidden, keep_prob=keep_prob)
logits = tf.layers.dense(hidden_drop, 10)
cell = tf.nn.rnn_cell.DropoutWrapper(tf.nn.rnn_cell.BasicLSTMCell(128), output_keep_prob=keep_prob)


class LstmModel:
    """One graph for training and one for evaluation, built with ``is_training``."""

    def __init__(self, is_training, keep_prob=0.8):
        self.inputs = tf.placeholder(tf.float32, [None, 30, 8])
        cell = tf.nn.rnn_cell.BasicLSTMCell(128)
        if is_training and keep_prob < 1.0:
            cell = tf.nn.rnn_cell.DropoutWrapper(cell, output_keep_prob=keep_prob)
        self.embed_keep = tf.placeholder_with_default(1.0, shape=())
        embedded = tf.nn.dropout(self.inputs, self.embed_keep)
        self.outputs = tf.nn.dynamic_rnn(cell, embedded, dtype=tf.float32)
```
Or use an `nn.Dropout(p)` module (PyTorch) / a `keras.layers.Dropout(rate)` layer, which
follow `model.train()`/`model.eval()` and Keras' `training` flag by themselves.

## Fix safety
For `F.dropout` the fix adds `training=self.training`; for an attention kernel it passes
`dropout_p=p if self.training else 0.0`. It is marked unsafe because it
changes what the model computes in eval mode, which is the point, but code that relied on
stochastic inference without saying so (Monte-Carlo dropout) would lose it; such code
should pass `training=True` explicitly. TensorFlow findings have no fix.

## Source
Seed 002_1779c8f13c5dbb22.txt, "Dropout": dropout must not be applied at test and
prediction time ("测试和预测阶段是不能dropout的"); its TF1 code passes
`is_training=is_training` (a placeholder) to `dropout`, and notes that `tf.nn.dropout(X,
keep_prob)` cannot take `is_training`, so `keep_prob` must then be a placeholder.
Seed 004_81a3f3f84632e452.txt: dropout is active only in the training phase and is
removed when the model predicts new data. Seed 000_15ef46e869a43bad.txt: during training
dropout drops inputs and rescales the rest; after training it does nothing.
In PyTorch the equivalent is `nn.Dropout` or `F.dropout(..., training=self.training)`.

In short: Make dropout follow the training flag: `nn.Dropout` modules or `training=self.training`.
Public reference: PyTorch documentation, `torch.nn.functional.dropout` (`training` argument) and
`torch.nn.Dropout`, https://pytorch.org/docs/stable/generated/torch.nn.Dropout.html; Srivastava et
al., "Dropout" (JMLR 2014).
'''
from __future__ import annotations

from typing import Optional

import libcst as cst

from nnlint.facts.dropout import (ATTENTION, CONTRIB_DROPOUT, FUNCTIONAL, MODULE_CALL, WRAPPER, DropoutFacts,
                                  DropoutSite, first_parameter)
from nnlint.facts.names import argument, dotted_name, has_star_args, keyword, positional
from nnlint.facts.tensors import original_text
from nnlint.rule import Context, Rule


class DropoutAlwaysOn(Rule):
    code = "NN105"
    name = "dropout-always-on"
    severity = "warning"
    default = True
    fixable = True
    options = {}

    def check(self, ctx: Context) -> None:
        dropout = ctx.facts.dropout
        graph_mode: Optional[bool] = None
        for site in dropout.sites:
            if site.kind == FUNCTIONAL:
                self._check_torch(ctx, dropout, site.call)
            elif site.kind == ATTENTION:
                self._check_attention(ctx, dropout, site.call)
            elif site.kind == MODULE_CALL:
                if dropout.forward_method(site.call) is not None:
                    ctx.report(site.call, "a dropout module built inside forward is always in training mode: "
                                          "create it in __init__")
            else:
                if graph_mode is None:
                    graph_mode = ctx.facts.models.tf1_graph
                self._check_tensorflow(ctx, dropout, site, graph_mode)
        for draw in dropout.hand_written:
            ctx.report(draw, "hand-written dropout that never reads self.training: it stays on in eval mode")

    # -- PyTorch ------------------------------------------------------------------
    def _check_torch(self, ctx: Context, dropout: DropoutFacts, call: cst.Call) -> None:
        if has_star_args(call) or argument(call, 2, "training") is not None or not call.args:
            return
        method = dropout.forward_method(call)
        if method is None or dropout.under_training_test(call):
            return
        receiver = first_parameter(method)
        if receiver is None:
            ctx.report(call, "F.dropout without training=: it stays on in eval mode")
            return
        last = call.args[-1].value  # append the argument after the last one, keeping the call's layout
        ctx.report(
            call,
            "F.dropout without training=: it stays on in eval mode",
            fix=[(last, f"{original_text(ctx, last)}, training={receiver}.training")],
            fix_message=f"Pass training={receiver}.training",
            applicability="unsafe",
        )

    def _check_attention(self, ctx: Context, dropout: DropoutFacts, call: cst.Call) -> None:
        """``F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout)`` (or a flash-attn kernel):
        no ``training`` argument, so the rate must follow ``self.training``; reported at the rate."""
        rate = dropout.attention_rate(call)
        method = dropout.forward_method(call)
        if rate is None or dropout.constant(rate) in (0, 0.0) or dropout.follows_training(rate) \
                or method is None or dropout.under_training_test(call):
            return
        kernel = (dotted_name(call.func) or "attention").rsplit(".", 1)[-1]
        receiver = first_parameter(method)
        text = original_text(ctx, rate)
        ctx.report(rate, f"{kernel} with a dropout_p that eval mode does not turn off: "
                         "pass dropout_p=p if self.training else 0.0",
                   fix=[(rate, f"{text} if {receiver}.training else 0.0")] if receiver else None,
                   fix_message=f"Pass {text} if {receiver}.training else 0.0", applicability="unsafe")

    # -- TensorFlow -----------------------------------------------------------------
    def _check_tensorflow(self, ctx: Context, dropout: DropoutFacts, site: DropoutSite, graph_mode: bool) -> None:
        call = site.call
        if has_star_args(call) or dropout.under_training_test(call):
            return
        if site.kind == WRAPPER:
            kept = (keyword(call, k) for k in ("input_keep_prob", "output_keep_prob", "state_keep_prob"))
            if graph_mode and any(dropout.fixed_in_graph(k, call) for k in kept):
                ctx.report(call, "DropoutWrapper with a constant keep probability: it stays on when the graph is "
                                 "evaluated; feed keep_prob through a placeholder (1.0 at inference)")
            return
        if site.kind == CONTRIB_DROPOUT:
            if not graph_mode or argument(call, 3, "is_training") is not None:
                return
            keep = argument(call, 1, "keep_prob")
            value = dropout.constant(keep) if keep is not None else 0.5
            if isinstance(value, (int, float)) and 0 < value < 1:
                ctx.report(call, "dropout without is_training: it stays on when the graph is evaluated")
            return
        # keep_prob (TF1) and rate (TF2) are both "drop something" strictly between 0 and 1
        probability = keyword(call, "keep_prob") or keyword(call, "rate") or positional(call, 1)
        if graph_mode and dropout.fixed_in_graph(probability, call):
            ctx.report(call, "tf.nn.dropout with a constant probability: it stays on when the graph is evaluated")
        elif not graph_mode and _probability(dropout.constant(probability)) and dropout.keras_call_method(call):
            ctx.report(call, "tf.nn.dropout with a constant rate in call(): it stays on at inference")


def _probability(value: object) -> bool:
    """A number strictly between 0 and 1."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1
