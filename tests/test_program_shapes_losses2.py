"""Losses and the activations before them, in the shapes real training code takes: a loss object
made by the factory that defines the loss function, an activation applied in one branch before a
loss, a loss (and its activation) chosen by a flag, the other squashing activation before a logits
loss, a model returned together with its loss (also a model class defined inside a function). Each case is written for this suite; a line ending in ``# NN201`` must get exactly that
finding; no other finding of the selected codes may appear."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import nnlint
from test_program_shapes import _expected

CASES: dict[str, dict[str, str]] = {
    "loss-object-of-the-factory-that-defines-the-loss": {
        "losses.py": '''
class SigmoidCrossEntropy:
    def create_loss(self):
        import torch
        bce = torch.nn.BCELoss(reduction="none")

        def loss(output, labels):
            return bce(torch.sigmoid(output), labels)  # NN204

        return loss


def softmax_loss():
    import torch
    ce = torch.nn.CrossEntropyLoss()

    def loss(output, labels):
        return ce(torch.softmax(output, 1), labels)  # NN201

    return loss
''',
    },
    "loss-object-of-the-factory-quiet": {
        "losses.py": '''
import torch


class SigmoidCrossEntropy:
    def create_loss(self):
        bce = torch.nn.BCEWithLogitsLoss(reduction="none")

        def loss(output, labels):
            return bce(output, labels)

        return loss

    def rebound(self):
        bce = torch.nn.BCELoss()
        if self.regression:
            bce = torch.nn.MSELoss()

        def loss(output, labels):
            return bce(torch.sigmoid(output), labels)  # one of two losses: not known

        return loss


def probabilities_loss():
    bce = torch.nn.BCELoss()

    def loss(probs, labels):
        return bce(probs, labels)

    return loss
''',
    },
    "other-squashing-activation-before-a-logits-loss": {
        "model.py": '''
import torch.nn.functional as F


class Infomax:
    def loss_func(self, inputs, labels):
        if self.task == "regression":
            loss = F.mse_loss(self.model(inputs), labels)
        else:
            preds = self.model(inputs)
            if self.n_tasks == 1:
                logits = preds.view(-1, self.n_classes)
                softmax_dim = 1
            else:
                logits = preds.view(-1, self.n_tasks, self.n_classes)
                softmax_dim = 2
            proba = F.softmax(logits, dim=softmax_dim)  # NN201
            loss = F.binary_cross_entropy_with_logits(proba, labels)
        return loss


def sigmoid_into_cross_entropy(logits, y):
    return F.cross_entropy(logits.sigmoid(), y)  # NN201


def quiet(logits, y, soft_targets):
    return F.cross_entropy(logits, y) + F.binary_cross_entropy_with_logits(logits, soft_targets.softmax(-1))
''',
    },
    "activation-in-a-branch-before-the-loss": {
        "loss.py": '''
import torch
import torch.nn as nn


class PRMLoss(nn.Module):
    def __init__(self, placeholder_token_id, reward_token_ids=None):
        super().__init__()
        self.loss = nn.CrossEntropyLoss(ignore_index=-100)
        self.placeholder_token_id = placeholder_token_id
        self.reward_token_ids = reward_token_ids

    def forward(self, inputs, logits, labels):
        placeholder_mask = inputs == self.placeholder_token_id
        logits = logits[placeholder_mask]
        labels = labels[placeholder_mask]
        if self.reward_token_ids is not None:
            logits = logits[..., self.reward_token_ids]
            logits = logits.softmax(dim=-1)  # NN201
            for i, token in enumerate(self.reward_token_ids):
                labels = torch.where(labels == token, i, labels)
        return self.loss(logits, labels)


class MultiLabelLoss(nn.Module):
    def __init__(self):
        super().__init__()
        self.criterion = nn.BCEWithLogitsLoss()

    def forward(self, scores, targets):
        if self.squash:
            scores = torch.sigmoid(scores)  # NN201
        return self.criterion(scores.view(-1), targets.view(-1))
''',
    },
    "activation-in-a-branch-quiet": {
        "loss.py": '''
import torch.nn as nn
import torch.nn.functional as F


class Loss(nn.Module):
    def __init__(self):
        super().__init__()
        self.loss = nn.CrossEntropyLoss()
        self.nll = nn.NLLLoss()

    def forward(self, logits, labels):
        if not self.training:
            logits = logits.softmax(dim=-1)  # only outside training
        return self.loss(logits, labels)

    def log_probs(self, logits, labels):
        if self.normalise:
            logits = F.log_softmax(logits, -1)  # NLLLoss wants log-probabilities
        return self.nll(logits, labels)

    def kept_aside(self, logits, labels):
        if self.report_probs:
            probs = logits.softmax(dim=-1)  # another name: not what the loss is given
            self.last_probs = probs
        return self.loss(logits, labels)


def scaled(logits, labels, temperature=None):
    if temperature is not None:
        logits = logits / temperature
    return F.cross_entropy(logits, labels)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.loss = nn.CrossEntropyLoss()

    def forward(self, x, y=None):
        out = self.fc(x)
        if y is None:
            out = F.softmax(out, -1)  # returned: never reaches the loss
            return out
        return self.loss(out, y)

    def batches(self, loader):
        for x, y in loader:
            out = self.fc(x)
            if y is None:
                out = F.softmax(out, -1)
                self.predictions.append(out)
                continue
            self.loss(out, y).backward()
''',
    },
    "loss-and-activation-chosen-by-one-flag": {
        "encoder.py": '''
import torch
import torch.nn as nn


class CrossEncoder:
    def fit(self, loader, optimizer, loss_fct=None, activation_fct=None):
        if loss_fct is None:
            loss_fct = nn.BCELoss() if self.num_labels == 1 else nn.CrossEntropyLoss()  # NN204
        if activation_fct is None:
            activation_fct = nn.Sigmoid() if self.num_labels == 1 else nn.Identity()
        for features, labels in loader:
            if self.use_amp:
                with torch.autocast("cuda"):
                    logits = activation_fct(self.model(**features).logits)
                    loss_value = loss_fct(logits, labels)
            else:
                logits = activation_fct(self.model(**features).logits)
                if self.num_labels == 1:
                    logits = logits.view(-1)
                loss_value = loss_fct(logits, labels)
            loss_value.backward()
            optimizer.step()

    def predict_loss(self, features, labels, flat=False):
        loss_fct = nn.BCELoss() if flat else nn.CrossEntropyLoss()
        scores = self.model(**features).logits
        return loss_fct(torch.sigmoid(scores), labels)  # NN204
''',
    },
    "loss-defaulted-when-none": {
        "train.py": '''
import torch
import torch.nn as nn
import torch.nn.functional as F


def train(model, loader, criterion=None):
    if criterion is None:
        criterion = nn.BCEWithLogitsLoss()
    for x, y in loader:
        criterion(torch.sigmoid(model(x)), y).backward()  # NN201


def train_log_probs(model, loader, criterion=None):
    if criterion is None:
        criterion = nn.NLLLoss()
    for x, y in loader:
        criterion(F.log_softmax(model(x), dim=1), y).backward()
''',
    },
    "loss-chosen-in-init-given-a-sigmoid": {
        "classifier.py": '''
import torch.nn as nn


class TextClassifier(nn.Module):
    def __init__(self, multi_label):
        super().__init__()
        self.decoder = nn.Linear(16, 3)
        if multi_label:
            self.loss_function = nn.BCELoss()
        else:
            self.loss_function = nn.CrossEntropyLoss()

    def multi_label_loss(self, label_scores, one_hot):
        sigmoid = nn.Sigmoid()
        return self.loss_function(sigmoid(label_scores), one_hot)  # NN204

    def single_label_loss(self, label_scores, indices):
        return self.loss_function(label_scores, indices)
''',
    },
    "loss-chosen-by-a-flag-quiet": {
        "encoder.py": '''
import torch
import torch.nn as nn


class CrossEncoder:
    def fit(self, loader, loss_fct=None, activation_fct=None):
        if loss_fct is None:
            loss_fct = nn.BCEWithLogitsLoss() if self.num_labels == 1 else nn.CrossEntropyLoss()
        if activation_fct is None:
            activation_fct = nn.Identity()
        for features, labels in loader:
            logits = activation_fct(self.model(**features).logits)
            loss_fct(logits, labels).backward()

    def probabilities(self, loader):
        loss_fct = nn.BCELoss() if self.num_labels == 1 else nn.CrossEntropyLoss()
        activation_fct = nn.Identity() if self.num_labels == 1 else nn.Sigmoid()
        for features, labels in loader:
            logits = activation_fct(self.model(**features).logits)
            loss_fct(logits, labels).backward()  # the sigmoid goes with the other loss

    def regression(self, loader):
        loss_fct = nn.BCELoss() if self.binary else nn.MSELoss()
        for features, labels in loader:
            loss_fct(self.model(**features), labels).backward()  # a model nnlint cannot trace
''',
    },
    "model-returned-with-its-loss": {
        "conftest.py": '''
import numpy as np
import pytest
import tensorflow as tf
import torch
import torch.nn as nn
from tensorflow import keras


@pytest.fixture
def linear_models():
    tf_model = tf_linear_model((10,), 3)
    tf_loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    torch_model = torch_linear_model((10,), 3)
    torch_loss = nn.CrossEntropyLoss()
    return tf_model, tf_loss, torch_model, torch_loss


def tf_linear_model(input_shape, output_shape):
    return keras.Sequential([
        tf.keras.layers.InputLayer(input_shape=input_shape),
        tf.keras.layers.Dense(output_shape),
        tf.keras.layers.Softmax()  # NN201
    ])


def torch_linear_model(input_shape_arg, output_shape_arg):
    input_size = np.prod(input_shape_arg).item()

    class Model(nn.Module):
        def __init__(self, input_shape, output_shape):
            super().__init__()
            self.linear_stack = nn.Sequential(
                nn.Flatten(start_dim=1),
                nn.Linear(input_shape, output_shape),
                nn.Softmax()  # NN201
            )

        def forward(self, x):
            return self.linear_stack(x.float())

    return Model(input_size, output_shape_arg)


def build():
    model = nn.Sequential(nn.Linear(4, 3), nn.Sigmoid())  # NN201
    return model, nn.BCEWithLogitsLoss()
''',
    },
    "model-returned-with-its-loss-quiet": {
        "factory.py": '''
import tensorflow as tf
import torch.nn as nn
from tensorflow import keras


def logits_model():
    model = nn.Sequential(nn.Linear(4, 3))
    return model, nn.CrossEntropyLoss()


def log_probabilities_model():
    model = nn.Sequential(nn.Linear(4, 3), nn.LogSoftmax(dim=1))
    return model, nn.NLLLoss()


def distillation():
    teacher = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))  # two models: which one the loss is for is not known
    student = nn.Sequential(nn.Linear(4, 3))
    return teacher, student, nn.CrossEntropyLoss()


def keras_probabilities():
    model = keras.Sequential([keras.layers.Dense(3), keras.layers.Softmax()])
    return model, tf.keras.losses.SparseCategoricalCrossentropy()


def separately(kind):
    model = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))
    if kind == "model":
        return model
    return nn.CrossEntropyLoss()
''',
    },
}


def _write(tmp_path: Path, files: dict[str, str]) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nnlint]\n")
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))


@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_shape(case: str, tmp_path: Path) -> None:
    _write(tmp_path, CASES[case])
    result = nnlint.lint_paths([str(tmp_path)], select=["NN2", "NN4"], use_cache=False, jobs=1)
    assert not result.errors
    got = {(Path(f.path).relative_to(tmp_path).as_posix(), f.line, f.code) for f in result.findings}
    assert got == _expected(CASES[case])
