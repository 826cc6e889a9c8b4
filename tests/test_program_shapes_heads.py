"""Output heads and hand-written softmaxes in the shape of real bugs: a ReLU right below a model's own
normaliser (reported at the ReLU, where the fix goes), a softmin over distances written in steps,
and a softmax built element by element in a buffer. A line ending in ``# NN202`` must get exactly
that finding; no other finding of the selected codes may appear (see ``test_program_shapes``)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import nnlint
from tests.test_program_shapes import _expected

SELECT = ["NN202", "NN402"]

CASES: dict[str, dict[str, str]] = {
    # the model's forward ends relu -> log_softmax; a module-level model trained with nll_loss
    "relu-below-log-softmax": {
        "mnist.py": '''
import torch.nn as nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(784, 120)
        self.l2 = nn.Linear(120, 10)

    def forward(self, x):
        x = x.view(-1, 784)
        x = F.relu(self.l1(x))
        x = F.relu(self.l2(x))  # NN202
        return F.log_softmax(x, dim=1)

model = Net()

def train(loader):
    for data, target in loader:
        loss = F.nll_loss(model(data), target)
        loss.backward()
''',
    },
    # add_module builds the head Linear, ReLU, Softmax; the criterion arrives as a parameter
    "add-module-relu-before-softmax": {
        "conv.py": '''
import torch

class ConvNet(torch.nn.Module):
    def __init__(self, n_out):
        super().__init__()
        self.fc = torch.nn.Sequential()
        self.fc.add_module("fc1", torch.nn.Linear(320, 50))
        self.fc.add_module("relu_1", torch.nn.ReLU())
        self.fc.add_module("fc2", torch.nn.Linear(50, n_out))
        self.fc.add_module("relu_2", torch.nn.ReLU())  # NN202
        self.fc.add_module("softmax", torch.nn.Softmax(dim=1))

    def forward(self, x):
        return self.fc.forward(x.view(-1, 320))

def train(model, loss, x, y):
    output = loss.forward(model.forward(x), y)
    output.backward()

def main(x, y):
    train(ConvNet(10), torch.nn.CrossEntropyLoss(), x, y)
''',
    },
    # the loss applies log_softmax to a model defined in another file whose forward ends in ReLU
    "log-softmax-in-the-loss-over-a-relu-model": {
        "model.py": '''
import torch.nn as nn
import torch.nn.functional as F

class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return F.relu(self.fc(x))  # NN202
''',
        "train.py": '''
import torch.nn.functional as F
from model import Classifier

classifier = Classifier()

def step(x, y):
    return F.nll_loss(F.log_softmax(classifier(x), dim=1), y)
''',
    },
    # correct heads: ReLU only on hidden layers, log_softmax on the logits
    "hidden-relu-only": {
        "ok.py": '''
import torch
import torch.nn as nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(784, 120)
        self.l2 = nn.Linear(120, 10)

    def forward(self, x):
        x = F.relu(self.l1(x))
        return F.log_softmax(self.l2(x), dim=1)

head = nn.Sequential(nn.Linear(320, 50), nn.ReLU(), nn.Linear(50, 10), nn.Softmax(dim=1))
model = Net()

def train(x, y):
    F.nll_loss(model(x), y).backward()
    F.nll_loss(torch.log(head(x)), y).backward()
''',
    },
    # TF1: every layer made by one helper ending in tf.nn.relu; the regression head's output goes
    # masked to a smooth L1 written in the file: reported at the head's call of the helper
    "helper-relu-on-a-regression-head": {
        "rpn.py": '''
import tensorflow as tf

def conv(x, n, name):
    with tf.variable_scope(name):
        h = tf.layers.conv2d(x, n, 3, padding="same")
        h = tf.layers.batch_normalization(h)
        return tf.nn.relu(h)

def smooth_l1(deltas, targets, sigma=3.0):
    diffs = tf.subtract(deltas, targets)
    small = tf.cast(tf.less(tf.abs(diffs), 1.0 / sigma ** 2), tf.float32)
    return small * 0.5 * tf.square(diffs) * sigma ** 2 + (1 - small) * (tf.abs(diffs) - 0.5 / sigma ** 2)

class RPN:
    def __init__(self, x, targets, mask):
        h = conv(x, 128, "conv1")
        h = conv(h, 128, "conv2")
        self.scores = tf.layers.conv2d(h, 2, 1)
        r_map = conv(h, 14, "conv3")  # NN202
        self.loss = tf.reduce_sum(smooth_l1(r_map * mask, targets * mask))
''',
    },
    # the same helper, but the head is a plain conv; a "loss" that is no distance; a helper called once
    "helper-relu-on-hidden-layers-only": {
        "ok.py": '''
import tensorflow as tf

def conv(x, n):
    return tf.nn.relu(tf.layers.conv2d(x, n, 3, padding="same"))

def l1_loss(pred, target):
    return tf.reduce_mean(tf.abs(pred - target))

def margin_loss(pred, target):
    return tf.reduce_mean(tf.abs(pred) - target)

def head(x, targets):
    h = conv(conv(x, 64), 64)
    return l1_loss(tf.layers.conv2d(h, 4, 1), targets) + margin_loss(conv(h, 4), targets)
''',
        "once.py": '''
import tensorflow as tf

def out_layer(x, n):
    return tf.nn.relu(tf.layers.dense(x, n))  # NN202

def mse_loss(pred, target):
    return tf.reduce_mean(tf.square(pred - target))

def head(x, targets):
    return mse_loss(out_layer(x, 1), targets)
''',
    },
    # a function that builds the whole model, called for two graphs: the fix goes into it
    "model-function-called-twice": {
        "graph.py": '''
import tensorflow as tf

def model(x):
    h = tf.layers.dense(x, 64, activation=tf.nn.relu)
    return tf.nn.relu(tf.layers.dense(h, 1))  # NN202

def mse_loss(pred, target):
    return tf.reduce_mean(tf.square(pred - target))

def losses(x_train, y_train, x_test, y_test):
    return mse_loss(model(x_train), y_train), mse_loss(model(x_test), y_test)
''',
    },
    # a softmin over distances in three steps: exp(-d / t) of large distances underflows to 0 / 0
    "softmin-in-steps": {
        "voting.py": '''
import torch

def vote(dists, temp):
    mavg = torch.stack(dists)
    num = torch.exp(-mavg / temp)
    den = num.sum(dim=0, keepdim=True)
    weights = num / den  # NN402
    return weights

def boltzmann(energy, beta):
    w = torch.exp(-beta * energy)
    return w / w.sum()  # NN402
''',
    },
    # a softmax built element by element in a zero buffer, then normalised in place
    "softmax-in-a-buffer": {
        "qa.py": '''
import torch

def masked_softmax(logits, candidates, device):
    probs = torch.zeros(len(candidates)).to(device)
    for i, idxs in enumerate(candidates):
        if idxs:
            probs[i] = torch.exp(torch.max(logits[idxs]))
    probs /= torch.sum(probs)  # NN402
    return probs
''',
    },
    # correct softmaxes and softmins stay quiet
    "stable-softmaxes": {
        "ok.py": '''
import torch
import torch.nn.functional as F

def shifted(x):
    e = torch.exp(x - x.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)

def library(x):
    return torch.softmax(x, dim=-1)

def from_log_probs(x):
    lp = F.log_softmax(x, dim=1)
    p = lp.exp()
    return p / p.sum(1, keepdim=True)

def shifted_softmin(d, t):
    num = torch.exp(-(d - d.min(dim=0, keepdim=True).values) / t)
    return num / num.sum(dim=0, keepdim=True)

def gaussian_window(size, sigma):
    coords = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    g /= g.sum()
    return g

def buffer_of_other_values(x, n):
    probs = torch.zeros(n)
    for i in range(n):
        probs[i] = torch.exp(x[i])
    probs[0] = 1.0
    probs /= torch.sum(probs)
    return probs

def buffer_of_log_probs(x, n):
    probs = torch.zeros(n)
    for i in range(n):
        probs[i] = torch.exp(F.log_softmax(x[i], dim=0))
    probs /= probs.sum()
    return probs
''',
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_head_shape(case: str, tmp_path: Path) -> None:
    files = CASES[case]
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    result = nnlint.lint_paths([str(tmp_path)], select=SELECT, use_cache=False, jobs=1)
    assert not result.errors
    got = {(Path(f.path).relative_to(tmp_path).as_posix(), f.line, f.code) for f in result.findings}
    assert got == _expected(files)


def test_relu_below_the_normaliser_is_removed_by_the_fix() -> None:
    """The finding at the ReLU below ``log_softmax`` carries the fix that drops it, the loss related."""
    source = textwrap.dedent(CASES["relu-below-log-softmax"]["mnist.py"])
    findings = nnlint.lint_source(source, path="mnist.py", select=["NN202"])
    assert [(f.line, [r.line for r in f.related]) for f in findings] == [(14, [21])]
    assert findings[0].fix is not None


def test_softmin_message_names_the_underflow() -> None:
    source = textwrap.dedent(CASES["softmin-in-steps"]["voting.py"])
    messages = [f.message for f in nnlint.lint_source(source, path="voting.py", select=["NN402"])]
    assert len(messages) == 2 and all("underflow" in message for message in messages)
