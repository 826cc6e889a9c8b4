"""Training-loop shapes of real bugs, each written for this suite: loss sums that keep the graph
through helper methods and dicts of losses, checkpoint helpers that lose the optimizer, and a
binary cross-entropy helper fed a sigmoid by a task-dispatching sibling method. A line ending in
``# NN310`` must get exactly that finding; no other finding of the selected codes may appear."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import nnlint
from test_program_shapes import _expected

SELECT = ["NN204", "NN302", "NN310"]

CASES: dict[str, dict[str, str]] = {
    # a trainer method returns the loss function's dict of loss tensors; summed per name over the epoch
    "loss-dict-through-method": {
        "trainer.py": '''
import torch.nn.functional as F
from collections import defaultdict


class Trainer:
    def __init__(self, model, optimizer):
        self.model = model
        self.optimizer = optimizer

    def compute_losses(self, out, y):
        box = F.l1_loss(out, y)
        cls = F.cross_entropy(out, y)
        return box + cls, {"box": box, "cls": cls}

    def train_one_batch(self, x, y):
        self.optimizer.zero_grad()
        loss, parts = self.compute_losses(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        return parts

    def train_one_epoch(self, loader):
        totals = defaultdict(float)
        for x, y in loader:
            parts = self.train_one_batch(x, y)
            for name, value in parts.items():
                totals[name] += value * len(x)  # NN310
        return totals
''',
    },
    # the same trainer, logging detached parts and Python floats
    "loss-dict-detached": {
        "trainer.py": '''
import torch.nn.functional as F
from collections import defaultdict


class Trainer:
    def __init__(self, model, optimizer):
        self.model = model
        self.optimizer = optimizer

    def compute_losses(self, out, y):
        box = F.l1_loss(out, y)
        cls = F.cross_entropy(out, y)
        return box + cls, {"box": box.detach(), "cls": cls.item()}

    def train_one_batch(self, x, y):
        self.optimizer.zero_grad()
        loss, parts = self.compute_losses(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        return parts

    def train_one_epoch(self, loader):
        totals = defaultdict(float)
        for x, y in loader:
            for name, value in self.train_one_batch(x, y).items():
                totals[name] += value
        return totals
''',
    },
    # a step helper returns the backpropagated loss; the epoch sum is returned for logging
    "step-helper-returns-loss": {
        "train.py": '''
import torch
import torch.nn as nn

criterion = nn.CrossEntropyLoss()


def train_step(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


def evaluate_step(model, x, y):
    with torch.no_grad():
        return criterion(model(x), y)


def train_epoch(model, optimizer, loader):
    total = 0.0
    for x, y in loader:
        total += train_step(model, optimizer, x, y)  # NN310
    return total / len(loader)


def evaluate(model, loader):
    total = 0.0
    for x, y in loader:
        total += evaluate_step(model, x, y)
    return total / len(loader)
''',
    },
    # correct: .item() in the helper; and a sum of losses returned for the caller to backpropagate
    "step-helper-returns-float": {
        "train.py": '''
import torch.nn as nn

criterion = nn.CrossEntropyLoss()


def train_step(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def train_epoch(model, optimizer, loader):
    total = 0.0
    for x, y in loader:
        total += train_step(model, optimizer, x, y)
    return total / len(loader)


def deep_supervision_loss(outputs, y):
    total = 0.0
    for out in outputs:
        total += criterion(out, y)
    return total
''',
    },
    # a checkpoint helper saves weights and the LR scheduler (to resume) but not the AdamW state
    "checkpoint-helper-without-optimizer": {
        "checkpoint_utils.py": '''
import os
import torch


def save_checkpoint(output_dir, model, lr_scheduler, step):
    step_dir = os.path.join(output_dir, f"{step:08d}")
    weights = {k: v.cpu() for k, v in model.state_dict().items()}
    torch.save(weights, os.path.join(step_dir, "model.pt"))  # NN302
    torch.save(lr_scheduler.state_dict(), os.path.join(step_dir, "scheduler.pt"))


def load_checkpoint(output_dir, step, model, lr_scheduler):
    step_dir = os.path.join(output_dir, f"{step:08d}")
    model.load_state_dict(torch.load(os.path.join(step_dir, "model.pt")))
    lr_scheduler.load_state_dict(torch.load(os.path.join(step_dir, "scheduler.pt")))
''',
        "train.py": '''
import torch
from checkpoint_utils import load_checkpoint, save_checkpoint


def main(model, loader, args):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 1000)
    if args.resume:
        load_checkpoint(args.out, args.step, model, scheduler)
    for step, (x, y) in enumerate(loader):
        optimizer.zero_grad()
        model(x, y).backward()
        optimizer.step()
        scheduler.step()
        if step % 1000 == 0:
            save_checkpoint(args.out, model, scheduler, step)
''',
    },
    # correct: the helper saves the optimizer too; a weights-only export for inference saves no scheduler
    "checkpoint-helper-complete": {
        "checkpoint_utils.py": '''
import os
import torch


def save_checkpoint(output_dir, model, optimizer, lr_scheduler, step):
    torch.save(model.state_dict(), os.path.join(output_dir, f"model_{step}.pt"))
    torch.save(optimizer.state_dict(), os.path.join(output_dir, f"optimizer_{step}.pt"))
    torch.save(lr_scheduler.state_dict(), os.path.join(output_dir, f"scheduler_{step}.pt"))


def save_training_state(path, model, lr_scheduler, opt):
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "scheduler": lr_scheduler.state_dict()},
               path)


def export_weights(output_dir, model):
    torch.save(model.state_dict(), os.path.join(output_dir, "model.pt"))
''',
    },
    # a model that dispatches on its task: the loss helper's binary branch gets the sigmoid of
    # the activation helper's binary branch
    "task-dispatching-helpers": {
        "wide_deep.py": '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class WideDeep(nn.Module):
    def __init__(self, method):
        super().__init__()
        self.method = method
        self.fc = nn.Linear(8, 1)

    def forward(self, x):
        return self.fc(x)

    def _activation_fn(self, inp):
        if self.method == "binary":
            return torch.sigmoid(inp)
        return inp

    def _loss_fn(self, y_pred, y_true):
        if self.method == "regression":
            return F.mse_loss(y_pred, y_true)
        if self.method == "binary":
            return F.binary_cross_entropy(y_pred, y_true)  # NN204
        return F.cross_entropy(y_pred, y_true)

    def _training_step(self, x, y):
        y_pred = self._activation_fn(self.forward(x))
        loss = self._loss_fn(y_pred, y)
        loss.backward()
        return loss.item()
''',
    },
    # correct: the loss takes the logits; the sigmoid is only for predictions. And branches on
    # different tests are not matched with each other.
    "task-dispatching-logits": {
        "wide_deep.py": '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class WideDeep(nn.Module):
    def __init__(self, method):
        super().__init__()
        self.method = method
        self.fc = nn.Linear(8, 1)

    def forward(self, x):
        return self.fc(x)

    def _activation_fn(self, inp):
        if self.method == "binary":
            return torch.sigmoid(inp)
        return inp

    def _loss_fn(self, y_pred, y_true):
        if self.method == "binary":
            return F.binary_cross_entropy_with_logits(y_pred, y_true)
        return F.cross_entropy(y_pred, y_true)

    def _training_step(self, x, y):
        loss = self._loss_fn(self.forward(x), y)
        loss.backward()
        return loss.item()

    def predict(self, x):
        return self._activation_fn(self.forward(x))


class Calibrated(nn.Module):
    def __init__(self, squash):
        super().__init__()
        self.squash = squash
        self.fc = nn.Linear(8, 1)

    def _activation_fn(self, inp):
        if self.squash:
            return torch.sigmoid(inp)
        return inp.clamp(0, 1)

    def _loss_fn(self, y_pred, y_true):
        if self.fc.out_features == 1:
            return F.binary_cross_entropy(y_pred, y_true)
        return F.mse_loss(y_pred, y_true)

    def _training_step(self, x, y):
        loss = self._loss_fn(self._activation_fn(self.fc(x)), y)
        loss.backward()
''',
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_training_shape(case: str, tmp_path: Path) -> None:
    files = CASES[case]
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    result = nnlint.lint_paths([str(tmp_path)], select=SELECT, use_cache=False, jobs=1)
    assert not result.errors
    got = {(Path(f.path).relative_to(tmp_path).as_posix(), f.line, f.code) for f in result.findings}
    assert got == _expected(files)
