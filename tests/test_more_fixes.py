"""Fixes of NN201, NN202, NN203, NN303, NN306, NN307, NN309 and NN402, checked before and after.

Every fix is compared with the exact text expected (nothing else in the file changes), must parse,
and must remove the finding so that a second round finds nothing more to fix (idempotent).
"""
from __future__ import annotations

import textwrap
from typing import Optional

import pytest

import nnlint
from nnlint.fixes import fixed_text, parses


def fix(source: str, code: str, unsafe: bool = True) -> Optional[str]:
    """The text after as many rounds of ``code``'s fixes as apply (the engine's loop), or ``None``."""
    text = textwrap.dedent(source)
    changed = False
    for _ in range(10):
        outcome = fixed_text(text, nnlint.lint_source(text, path="m.py", select=[code]), unsafe=unsafe)
        if outcome is None:
            break
        text, changed = outcome[0], True
    return text if changed else None


def check(source: str, code: str, expected: str, unsafe: bool = True) -> None:
    source, expected = textwrap.dedent(source), textwrap.dedent(expected)
    assert nnlint.lint_source(source, path="m.py", select=[code]), "the snippet must have a finding"
    result = fix(source, code, unsafe)
    assert result == expected
    assert parses(result)
    assert nnlint.lint_source(result, path="m.py", select=[code]) == []  # so a second --fix changes nothing
    if unsafe:
        assert fix(source, code, unsafe=False) is None, f"{code}'s fix must be unsafe"


def no_fix(source: str, code: str) -> None:
    findings = nnlint.lint_source(textwrap.dedent(source), path="m.py", select=[code])
    assert findings and all(f.fix is None for f in findings), findings


# -- NN306 -------------------------------------------------------------------------------------
AMP = """\
import torch

scaler = torch.cuda.amp.GradScaler()
for inputs, targets in loader:
    optimizer.zero_grad()
    scaler.scale(criterion(model(inputs), targets)).backward()
    # clip
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(),
                                          1.0)  # keep
    scaler.step(optimizer)
    scaler.update()
"""


def test_nn306_inserts_unscale_before_the_clip_and_is_safe() -> None:
    expected = AMP.replace("    # clip\n", "    # clip\n    scaler.unscale_(optimizer)\n")
    check(AMP, "NN306", expected, unsafe=False)


def test_nn306_keeps_crlf_line_breaks() -> None:
    source = AMP.replace("\n", "\r\n")
    result = fix(source, "NN306", unsafe=False)
    assert result == source.replace("    # clip\r\n", "    # clip\r\n    scaler.unscale_(optimizer)\r\n")


def test_nn306_no_fix_when_unscale_comes_after_the_clip() -> None:
    # a second unscale_ before update() raises: the order has to be fixed by hand
    no_fix(AMP.replace("    scaler.step(optimizer)\n", "    scaler.unscale_(optimizer)\n    scaler.step(optimizer)\n"),
           "NN306")


# -- NN402 -------------------------------------------------------------------------------------
SOFTMAXES = """\
import torch
import numpy as np
import tensorflow as tf


def a(scores):
    return torch.exp(scores) / torch.exp(scores).sum(dim=-1, keepdim=True)


def b(logits):
    e = logits.exp()
    return e / e.sum(-1, keepdim=True)


def c(x):
    return torch.exp(x) / torch.sum(torch.exp(x), dim=1, keepdim=True)


def d(x):
    return tf.exp(x) / tf.reduce_sum(tf.exp(x), axis=-1, keepdims=True)


def n(x):
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


def f(x):
    return torch.exp(x) / torch.exp(x).sum()
"""


def test_nn402_subtracts_the_max_over_the_summed_axes() -> None:
    lines = {
        "torch.exp(scores) / torch.exp(scores).sum(dim=-1, keepdim=True)":
            "torch.exp(scores - scores.amax(dim=-1, keepdim=True)) / "
            "torch.exp(scores - scores.amax(dim=-1, keepdim=True)).sum(dim=-1, keepdim=True)",
        "e = logits.exp()": "e = (logits - logits.amax(-1, keepdim=True)).exp()",
        "torch.exp(x) / torch.sum(torch.exp(x), dim=1, keepdim=True)":
            "torch.exp(x - torch.amax(x, dim=1, keepdim=True)) / "
            "torch.sum(torch.exp(x - torch.amax(x, dim=1, keepdim=True)), dim=1, keepdim=True)",
        "tf.exp(x) / tf.reduce_sum(tf.exp(x), axis=-1, keepdims=True)":
            "tf.exp(x - tf.reduce_max(x, axis=-1, keepdims=True)) / "
            "tf.reduce_sum(tf.exp(x - tf.reduce_max(x, axis=-1, keepdims=True)), axis=-1, keepdims=True)",
        "np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)":
            "np.exp(x - np.max(x, axis=-1, keepdims=True)) / "
            "np.sum(np.exp(x - np.max(x, axis=-1, keepdims=True)), axis=-1, keepdims=True)",
        "torch.exp(x) / torch.exp(x).sum()": "torch.exp(x - x.max()) / torch.exp(x - x.max()).sum()",
    }
    expected = SOFTMAXES
    for before, after in lines.items():
        expected = expected.replace(before, after)
    check(SOFTMAXES, "NN402", expected, unsafe=False)


def test_nn402_fixed_code_computes_the_same_softmax_without_overflow() -> None:
    torch = pytest.importorskip("torch")
    source = SOFTMAXES.replace("import tensorflow as tf\n", "").split("\n\n\ndef d(")[0] + "\n"
    fixed = fix(source, "NN402")
    assert fixed is not None
    before: dict = {}
    after: dict = {}
    exec(compile(source, "before.py", "exec"), before)  # noqa: S102 - the test's own snippet
    exec(compile(fixed, "after.py", "exec"), after)  # noqa: S102
    x = torch.randn(4, 5, dtype=torch.float64)
    for name in "abc":
        assert torch.allclose(before[name](x), after[name](x))
        assert torch.allclose(after[name](x * 1000), torch.softmax(x * 1000, dim=-1 if name != "c" else 1))
        assert torch.isnan(before[name](x * 1000)).any()  # the reason for the fix


def test_nn402_no_fix_where_the_max_would_not_broadcast_like_the_sum_or_repeat_a_call() -> None:
    no_fix("import torch\ndef g(x):\n    return torch.exp(x) / torch.exp(x).sum(-1)\n", "NN402")
    no_fix("import torch\ndef g(m, x):\n    return torch.exp(m(x)) / torch.exp(m(x)).sum(-1, keepdim=True)\n",
           "NN402")


# -- NN201 / NN202 -----------------------------------------------------------------------------
MODELS = """\
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.sm = nn.Softmax(dim=1)

    def forward(self, x):
        return self.sm(self.fc(x))


class Net3(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = self.fc(x)
        return x.softmax(dim=1)


seq = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))
seq2 = nn.Sequential(
    nn.Linear(4, 3),  # logits
    nn.Sigmoid(),
)
crit = nn.CrossEntropyLoss()
bce = nn.BCEWithLogitsLoss()
for x, y in loader:
    loss = crit(Net()(x), y) + crit(seq(x), y) + bce(seq2(x), y) + crit(Net3()(x), y)
    loss2 = crit(F.softmax(seq(x) + 1, dim=1), y)
"""


def test_nn201_drops_the_output_activation() -> None:
    expected = (MODELS.replace("return self.sm(self.fc(x))", "return self.fc(x)")
                .replace("return x.softmax(dim=1)", "return x")
                .replace("nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))", "nn.Sequential(nn.Linear(4, 3))")
                .replace("    nn.Sigmoid(),\n", "")
                .replace("crit(F.softmax(seq(x) + 1, dim=1), y)", "crit((seq(x) + 1), y)"))
    # the trailing comma of the dropped last layer stays: `nn.Linear(4, 3),  # logits` keeps its comment
    expected = expected.replace("    nn.Linear(4, 3),  # logits\n)", "    nn.Linear(4, 3),  # logits\n)")
    check(MODELS, "NN201", expected)


def test_nn201_keras_activation_argument_is_deleted() -> None:
    source = """\
    from tensorflow import keras

    model = keras.Sequential([
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax", name="out"),
    ])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    """
    check(source, "NN201", textwrap.dedent(source).replace('Dense(10, activation="softmax", name="out")',
                                                           'Dense(10, name="out")'))


def test_nn202_drops_a_hidden_activation_on_the_output() -> None:
    source = """\
    import torch.nn as nn
    import torch.nn.functional as F


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return F.relu(self.fc(x))


    for x, y in loader:
        loss = nn.MSELoss()(Net()(x), y)
    """
    check(source, "NN202", textwrap.dedent(source).replace("return F.relu(self.fc(x))", "return self.fc(x)"))


# -- NN203 -------------------------------------------------------------------------------------
def test_nn203_replaces_the_softmax_with_a_sigmoid() -> None:
    source = """\
    import torch.nn as nn
    import torch.nn.functional as F
    from tensorflow import keras


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 1)

        def forward(self, x):
            return F.softmax(self.fc(x), dim=-1)


    seq = nn.Sequential(nn.Flatten(), nn.Linear(4, 1), nn.Softmax(dim=1))
    k = keras.Sequential([keras.layers.Dense(1, activation='softmax')])
    """
    expected = (textwrap.dedent(source).replace("F.softmax(self.fc(x), dim=-1)", "F.sigmoid(self.fc(x))")
                .replace("nn.Softmax(dim=1)", "nn.Sigmoid()").replace("'softmax'", "'sigmoid'"))
    check(source, "NN203", expected)


# -- NN303 -------------------------------------------------------------------------------------
def test_nn303_zero_grad_after_the_step_keeps_accumulation() -> None:
    source = """\
    import torch

    for i, (x, y) in enumerate(loader):
        criterion(model(x), y).backward()
        if (i + 1) % 4 == 0:
            optimizer.step()  # update
        # next
    """
    expected = textwrap.dedent(source).replace("optimizer.step()  # update\n",
                                               "optimizer.step()  # update\n        optimizer.zero_grad()\n")
    check(source, "NN303", expected)


def test_nn303_last_line_without_a_line_break() -> None:
    source = "import torch\nfor x in loader:\n    loss.backward()\n    opt.step()"
    check(source, "NN303", source + "\n    opt.zero_grad()")


# -- NN307 -------------------------------------------------------------------------------------
TRAIN = """\
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.fc(self.drop(x))


model = Net()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(3):
    for x, y in train_loader:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
    with torch.no_grad():
        for x, y in test_loader:
            out = model(x)
"""


def test_nn307_eval_before_the_evaluation_and_train_after() -> None:
    expected = TRAIN.replace("    with torch.no_grad():\n", "    model.eval()\n    with torch.no_grad():\n") + \
        "    model.train()\n"
    check(TRAIN, "NN307", expected)


def test_nn307_no_fix_when_the_evaluation_can_return_early() -> None:
    no_fix(TRAIN.replace("out = model(x)", "out = model(x)\n            if out is None:\n                break"),
           "NN307")


# -- NN309 -------------------------------------------------------------------------------------
EVALUATE = """\
import torch


def evaluate(model, loader):
    model.eval()
    correct = 0
    for x, y in loader:
        # predictions
        out = model(x)

        correct += (out.argmax(1) == y).sum().item()
    model.train()
    return correct
"""


def test_nn309_wraps_the_evaluation_loop_in_no_grad() -> None:
    expected = EVALUATE.replace("""\
    for x, y in loader:
        # predictions
        out = model(x)

        correct += (out.argmax(1) == y).sum().item()
""", """\
    with torch.no_grad():
        for x, y in loader:
            # predictions
            out = model(x)

            correct += (out.argmax(1) == y).sum().item()
""")
    check(EVALUATE, "NN309", expected)


def test_nn309_no_fix_over_a_multiline_string_or_without_torch() -> None:
    no_fix(EVALUATE.replace("# predictions", 'note = """a\nb"""'), "NN309")
    no_fix(EVALUATE.replace("import torch\n", "import torch.nn.functional as F\n"), "NN309")


def test_nn309_in_a_helper_the_evaluation_in_its_body_is_wrapped() -> None:
    source = """\
    import torch


    class Pipeline:
        def _val_loop(self, dl_val):
            self.model.eval()
            return self._inner_loop(dl_val)

        def _inner_loop(self, dl):
            total = 0.0
            for X, y in dl:
                total += self.loss_fn(self.model(X), y).item()
            return total
    """
    expected = textwrap.dedent(source).replace(
        "        for X, y in dl:\n            total += self.loss_fn(self.model(X), y).item()\n        return total\n",
        "        with torch.no_grad():\n            for X, y in dl:\n"
        "                total += self.loss_fn(self.model(X), y).item()\n            return total\n")
    assert expected != textwrap.dedent(source)
    check(source, "NN309", expected)


# -- NN105 (attention kernels) -----------------------------------------------------------------
ATTENTION = """\
import torch.nn as nn
import torch.nn.functional as F
from flash_attn import flash_attn_func


class Attention(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, q, k, v):
        x = F.scaled_dot_product_attention(
            q,
            k,
            v,
            dropout_p=self.p,
        )
        return flash_attn_func(x, k, v, self.p, causal=True)
"""


def test_nn105_attention_rate_follows_the_training_flag() -> None:
    expected = ATTENTION.replace("dropout_p=self.p,", "dropout_p=self.p if self.training else 0.0,").replace(
        "flash_attn_func(x, k, v, self.p,", "flash_attn_func(x, k, v, self.p if self.training else 0.0,")
    check(ATTENTION, "NN105", expected, unsafe=True)
