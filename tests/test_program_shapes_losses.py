"""Losses applied by a function of another project file (``loss_coteaching(out1, out2, y)`` in
``loss.py``): what a call passes there reaches the loss. Each case is written for this suite; a line
ending in ``# NN201`` must get exactly that finding; no other finding of the selected codes may appear."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import nnlint
from test_program_shapes import _expected

LOSS_MODULE = '''
import torch.nn.functional as F


def pair_loss(y_1, y_2, t, weight=0.5):
    loss_1 = F.cross_entropy(y_1, t, reduction="none")
    loss_2 = F.cross_entropy(y_2, t, reduction="none")
    return (weight * loss_1 + (1 - weight) * loss_2).mean()


def scaled_loss(y, t):
    return F.cross_entropy(y.exp(), t)  # what reaches the loss is not the parameter itself


def keyword_loss(t, *, pred):
    return F.cross_entropy(pred, t)
'''

LOSS_CLASSES = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class FocalLoss(nn.Module):
    def __init__(self, gamma=2.0):
        super().__init__()
        self.gamma = gamma

    def forward(self, inputs, targets):
        bce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
        return ((1 - torch.exp(-bce)) ** self.gamma * bce).mean()


class CrossEntropy2d(nn.Module):
    def forward(self, predict, target):
        n, c, h, w = predict.size()
        mask = target >= 0
        predict = predict.transpose(1, 2).transpose(2, 3).contiguous()
        predict = predict[mask.view(n, h, w, 1).repeat(1, 1, 1, c)].view(-1, c)
        return F.cross_entropy(predict, target[mask])


class ProbabilityLoss(nn.Module):
    def forward(self, probs, targets):
        return F.binary_cross_entropy(probs.clamp(1e-6, 1 - 1e-6), targets)
'''


CASES: dict[str, dict[str, str]] = {
    "softmax-into-a-loss-of-another-file": {
        "losses.py": LOSS_MODULE,
        "main.py": '''
import torch.nn.functional as F
from losses import keyword_loss, pair_loss


def train(model1, model2, loader, optimizer):
    for images, labels in loader:
        out1 = F.softmax(model1(images), dim=1)  # NN201
        out2 = F.log_softmax(model2(images), dim=1)  # NN201
        loss = pair_loss(out1, out2, labels)
        loss = loss + keyword_loss(labels, pred=F.softmax(model1(images), dim=1))  # NN201
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
''',
    },
    "logits-into-a-loss-of-another-file": {
        "losses.py": LOSS_MODULE,
        "main.py": '''
import torch.nn.functional as F
from losses import pair_loss, scaled_loss


def train(model1, model2, loader, optimizer):
    for images, labels in loader:
        loss = pair_loss(model1(images), model2(images), labels)
        loss = loss + scaled_loss(F.log_softmax(model1(images), dim=1), labels)
        probabilities = F.softmax(model1(images), dim=1)  # logged, not a loss input
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
''',
    },
    # loss module classes: calling an instance hands the argument to the loss in its forward,
    # through reshapes and a mask (a 2-D cross entropy), in another file or in the same one
    "softmax-into-a-loss-module-class": {
        "losses.py": LOSS_CLASSES,
        "main.py": '''
import torch
import torch.nn as nn
import torch.nn.functional as F
from losses import CrossEntropy2d, FocalLoss


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, x):
        return torch.sigmoid(self.fc(x)), x  # NN201


class SmoothedCE(nn.Module):
    def forward(self, logits, target):
        return 0.9 * F.cross_entropy(logits, target) + 0.1 * F.cross_entropy(logits, target.flip(0))


net = Net()
criterion = FocalLoss().cuda()
for x, y in loader:
    pred, _ = net(x)
    criterion(pred, y).backward()


def segmentation_loss(pred, label):
    return CrossEntropy2d()(F.softmax(pred, dim=1), label)  # NN201


def smoothed_loss(pred, label):
    return SmoothedCE()(F.softmax(pred, dim=1), label)  # NN201
''',
    },
    # the same classes given logits, and a class whose forward makes probabilities itself
    "logits-into-a-loss-module-class": {
        "losses.py": LOSS_CLASSES,
        "main.py": '''
import torch
import torch.nn as nn
import torch.nn.functional as F
from losses import CrossEntropy2d, FocalLoss, ProbabilityLoss


def train(net, loader):
    focal, dense, prob = FocalLoss(), CrossEntropy2d(), ProbabilityLoss()
    for x, y in loader:
        out = net(x)
        loss = focal(out, y) + dense(out, y) + prob(torch.sigmoid(out), y)
        loss.backward()
''',
    },
}

def _write(tmp_path: Path, files: dict[str, str]) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nnlint]\n")
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))


@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_of_another_file(case: str, tmp_path: Path) -> None:
    _write(tmp_path, CASES[case])
    result = nnlint.lint_paths([str(tmp_path)], select=["NN2"], use_cache=False, jobs=1)
    assert not result.errors
    got = {(Path(f.path).relative_to(tmp_path).as_posix(), f.line, f.code) for f in result.findings}
    assert got == _expected(CASES[case])


def test_the_caller_alone_gets_the_same_answer(tmp_path: Path) -> None:
    """pre-commit passes only ``main.py``: the loss module is read for context."""
    files = CASES["softmax-into-a-loss-of-another-file"]
    _write(tmp_path, files)
    settings = nnlint.engine.discover_settings([str(tmp_path)])
    alone = nnlint.lint_paths([str(tmp_path / "main.py")], settings, select=["NN2"], use_cache=False, jobs=1)
    got = {(Path(f.path).name, f.line, f.code) for f in alone.findings}
    assert got == _expected(files)
    related = {Path(place.path).name for f in alone.findings for place in f.related}
    assert related == {"main.py"}  # the call that hands the output to the loss


def test_a_changed_loss_module_changes_the_cached_answer(tmp_path: Path) -> None:
    files = CASES["softmax-into-a-loss-of-another-file"]
    _write(tmp_path, files)
    settings = nnlint.engine.discover_settings([str(tmp_path)])

    def codes() -> list[tuple[str, int]]:
        result = nnlint.lint_paths([str(tmp_path)], settings, select=["NN201"], use_cache=True, jobs=1)
        return sorted((Path(f.path).name, f.line) for f in result.findings)

    assert len(codes()) == 3
    assert len(codes()) == 3  # warm
    (tmp_path / "losses.py").write_text(textwrap.dedent(LOSS_MODULE).replace("F.cross_entropy", "F.mse_loss"))
    assert codes() == []


WRAPPER_PACKAGE = {
    "wrap/__init__.py": "from .drop import LearnedDropout\n",
    "wrap/drop.py": '''
import torch
import torch.nn as nn


class LearnedDropout(nn.Module):
    """Applies the layer it is given to its dropped-out input (concrete dropout)."""

    def __init__(self, p=0.1):
        super().__init__()
        self.p_logit = nn.Parameter(torch.tensor(p))

    def forward(self, x, layer):
        output = layer(x * torch.sigmoid(self.p_logit))
        self.penalty = sum(torch.sum(w ** 2) for w in layer.parameters())
        return output
''',
}

NET_WITH_WRAPPER = '''
import torch.nn as nn
import torch.nn.functional as F
from wrap import LearnedDropout


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 10)
        self.drop = LearnedDropout()
        self.softmax = nn.Softmax(dim=1)  # NN201

    def forward(self, x):
        x = F.relu(self.fc1(x))
        return self.drop(x, nn.Sequential(self.fc2, self.softmax))


model = Net()
for x, y in loader:
    loss = F.cross_entropy(model(x), y)
    loss.backward()
'''


@pytest.mark.parametrize("handed", ["nn.Sequential(self.fc2, self.softmax)", "self.fc2"])
def test_a_module_that_applies_the_module_it_is_given(handed: str, tmp_path: Path) -> None:
    """``self.drop(x, nn.Sequential(self.fc2, self.softmax))``: the module handed in makes the output."""
    files = {**WRAPPER_PACKAGE, "train.py": NET_WITH_WRAPPER.replace(
        "nn.Sequential(self.fc2, self.softmax)", handed)}
    if handed == "self.fc2":  # logits: nothing to report
        files["train.py"] = files["train.py"].replace("  # NN201", "")
    (tmp_path / "wrap").mkdir()
    _write(tmp_path, files)
    result = nnlint.lint_paths([str(tmp_path)], select=["NN2"], use_cache=False, jobs=1)
    got = {(Path(f.path).relative_to(tmp_path).as_posix(), f.line, f.code) for f in result.findings}
    assert got == _expected(files)
