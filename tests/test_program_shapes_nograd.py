"""Evaluation after ``eval()`` that still records the graph (NN309) and an eval mode left on (NN308), in the
shapes real projects give them: a trainer class's own ``validation_step``, a model handed to a module-level
epoch function, one function for the training and the validation pass, an evaluation hook a subclass
overrides. A line ending in ``# NN309`` must get exactly that finding; no other finding of the selected
codes may appear."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Optional

import pytest

import nnlint
from nnlint.fixes import fixed_text

_MARK = re.compile(r"#\s*((?:NN\d{3}[ ,]*)+)\s*$")

CASES: dict[str, dict[str, str]] = {
    # a library's own estimator (no Lightning): validation_step is a plain method; the helper it calls
    # also runs the training step, so the fix belongs at the call
    "own-validation-step-through-a-shared-helper": {
        "net.py": '''
import torch


class NeuralNet:
    def __init__(self, module, criterion, optimizer):
        self.module_ = module
        self.criterion_ = criterion
        self.optimizer_ = optimizer

    def infer(self, x):
        return self.module_(x)

    def validation_step(self, Xi, yi):
        self.module_.eval()
        y_pred = self.infer(Xi)  # NN309
        return self.criterion_(y_pred, yi)

    def train_step(self, Xi, yi):
        self.module_.train()
        self.optimizer_.zero_grad()
        loss = self.criterion_(self.infer(Xi), yi)
        loss.backward()
        self.optimizer_.step()
        return loss
''',
    },
    # the same trainer done right, and Lightning-style classes: the trainer turns gradients off itself
    "validation-step-done-right-and-lightning-hooks": {
        "net.py": '''
import torch


class NeuralNet:
    def __init__(self, module, criterion):
        self.module_ = module
        self.criterion_ = criterion

    def infer(self, x):
        return self.module_(x)

    def validation_step(self, Xi, yi):
        self.module_.eval()
        with torch.no_grad():
            y_pred = self.infer(Xi)
        return self.criterion_(y_pred, yi)

    def train_step(self, Xi, yi):
        self.module_.train()
        loss = self.criterion_(self.infer(Xi), yi)
        loss.backward()
        return loss
''',
        "lit.py": '''
from project.base import BaseModule


class Classifier(BaseModule):
    def validation_step(self, batch, batch_idx):
        self.model.eval()
        return self.model(batch[0])


class Mixin:
    def test_step(self, batch, batch_idx):
        self.model.eval()
        return self.model(batch[0])
''',
    },
    # the model reaches a module-level epoch function through its parameter
    "model-through-a-function-parameter": {
        "train.py": '''
import torch


def run_epoch(data, model, loss_compute):
    total = 0.0
    for batch in data:
        out = model.forward(batch.src)
        total += loss_compute(out, batch.trg)
    return total


def main(model, train_data, valid_data, loss_compute, epochs):
    for epoch in range(epochs):
        model.train()
        train_loss = run_epoch(train_data, model, loss_compute)
        model.eval()
        valid_loss = run_epoch(valid_data, model, loss_compute)  # NN309
        model.eval()
        with torch.no_grad():
            test_loss = run_epoch(valid_data, model, loss_compute)
''',
    },
    # an inference helper named for it gets the model from its callers: the fix goes inside it,
    # once for every caller (a helper a training pass shares is fixed at the call, above)
    "model-through-an-inference-helper": {
        "demo.py": '''
import torch


def test_net(net, refine_net, image):
    x = torch.from_numpy(image).unsqueeze(0)
    y, feature = net(x)  # NN309
    return refine_net(y, feature)


def main(net, refine_net, images):
    net.eval()
    refine_net.eval()
    return [test_net(net, refine_net, image) for image in images]
''',
    },
    # a trainer's validation never calls eval() (NN307's concern) nor turns gradients off: every
    # validation batch records a graph
    "validation-without-eval-or-no-grad": {
        "trainer.py": '''
import torch


class Trainer:
    def __init__(self, net_g, criterion, train_dataset, val_dataset):
        self.netG = net_g
        self.criterion = criterion
        self.optimizer = torch.optim.Adam(self.netG.parameters(), lr=1e-4)
        self.train_dataset = train_dataset
        self.val_dataset = val_dataset

    def _run_epoch(self):
        for data in self.train_dataset:
            inputs, targets = self.get_input(data)
            loss = self.criterion(self.netG(inputs), targets)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()

    def _validate(self):
        total = 0.0
        for data in self.val_dataset:
            inputs, targets = self.get_input(data)
            outputs = self.netG(inputs)  # NN309
            total += self.criterion(outputs, targets).item()
        return total

    def _validate_without_graphs(self):
        total = 0.0
        with torch.no_grad():
            for data in self.val_dataset:
                inputs, targets = self.get_input(data)
                total += self.criterion(self.netG(inputs), targets).item()
        return total

    @torch.no_grad()
    def validate_decorated(self):
        return [self.netG(x) for x, _ in self.val_dataset]

    def validate_metrics(self):
        return [self.metric(x) for x, _ in self.val_dataset]

    def adapt_on_test(self):
        for x, _ in self.val_dataset:
            self.netG(x).mean().backward()
            self.optimizer.step()

    def get_input(self, data):
        return data["x"], data["y"]

    def metric(self, x):
        return x.mean()
''',
    },
    # one function trains and validates: the training pass's backward() runs before eval(), never
    # after it; gradients used after eval() (a saliency map) still need them
    "training-pass-beside-the-validation": {
        "train.py": '''
import torch


def train(model, train_loader, val_loader, optimizer, epochs):
    for p in model.backbone.parameters():
        p.requires_grad = False
    for epoch in range(epochs):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        model.eval()
        for x, y in val_loader:
            print(model(x).argmax(1) == y)  # NN309


def saliency(model, train_loader, images, optimizer):
    for x, y in train_loader:
        optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()
    model.eval()
    for image in images:
        image.requires_grad_(True)
        model(image).max().backward()
        yield image.grad
''',
    },
    # a helper that trains on what it is given, or switches it back to training mode, is not an evaluation
    "function-parameter-look-alikes": {
        "train.py": '''
import torch


def fit(data, model, optimizer):
    for x, y in data:
        optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()


def resume(data, model):
    model.train()
    return [model(x) for x in data]


def log_shapes(data, name):
    return [x.shape for x in data]


def main(model, teacher, data, optimizer):
    teacher.eval()
    fit(data, model, optimizer)
    model.eval()
    resume(data, model)
    log_shapes(data, model)
''',
    },
    # one function for both passes: the eval path runs the model with gradients on, only the
    # training path uses them
    "shared-train-and-valid-function": {
        "training.py": '''
import torch


def train_and_valid(model, optimizer, data_loader, is_train, loss_fn):
    if is_train:
        model.train()
    else:
        model.eval()
    total = 0.0
    for batch in data_loader:
        ypred = model(batch.X)  # NN309
        loss = loss_fn(ypred, batch.y)
        if is_train:
            for param in model.parameters():
                param.grad = None
            loss.backward()
            optimizer.step()
        total += loss.item()
    return total
''',
    },
    # the same function done right, and one whose eval path needs gradients too
    "shared-train-and-valid-look-alikes": {
        "__select__": "NN309",
        "training.py": '''
import torch


def train_and_valid(model, optimizer, data_loader, is_train, loss_fn):
    if is_train:
        model.train()
    else:
        model.eval()
    total = 0.0
    for batch in data_loader:
        with torch.set_grad_enabled(is_train):
            ypred = model(batch.X)
        loss = loss_fn(ypred, batch.y)
        if is_train:
            loss.backward()
            optimizer.step()
        total += loss.item()
    return total


def attack_or_train(model, optimizer, data_loader, is_train, loss_fn):
    if is_train:
        model.train()
    else:
        model.eval()
    for batch in data_loader:
        ypred = model(batch.X)
        loss = loss_fn(ypred, batch.y)
        loss.backward()
        if is_train:
            optimizer.step()


def phases(model, optimizer, loaders, loss_fn):
    for phase in ["train", "val"]:
        if phase == "train":
            model.train()
        else:
            model.eval()
        for inputs, labels in loaders[phase]:
            optimizer.zero_grad()
            if phase == "train":
                outputs = model(inputs)
            else:
                with torch.no_grad():
                    outputs = model(inputs)
            loss = loss_fn(outputs, labels)
            if phase == "train":
                loss.backward()
                optimizer.step()
''',
    },
    # a callback puts the model in eval mode around a helper and back in training mode after it:
    # the helper is the evaluation, reported where it runs the model
    "helper-bracketed-by-its-caller": {
        "callbacks.py": '''
import torch


class ImageCallback:
    def __init__(self, model, loader):
        self.model = model
        self.loader = loader

    def on_epoch_end(self):
        self.model.eval()
        masks = self.prediction_masks()
        self.model.train()
        return masks

    def prediction_masks(self):
        return [self.model(x) for x in self.loader]  # NN309
''',
    },
    # an evaluation hook a subclass implements: the validation path calls it under no_grad, the test path not
    "overridden-evaluation-hook": {
        "trainer.py": '''
import torch


class NNTrainer:
    def __init__(self, model):
        self.model = model

    def test(self, loaders):
        self.model.eval()
        self.evaluate(loaders)  # NN309

    def evaluate(self, loaders):
        raise NotImplementedError

    def train(self, loader, val_loader, epochs):
        for epoch in range(epochs):
            self.model.train()
            self.fit_epoch(loader)
            self.model.eval()
            with torch.no_grad():
                self.validation(val_loader)

    def validation(self, loaders):
        self.evaluate(loaders)

    def fit_epoch(self, loader):
        pass
''',
    },
    # the same hook where no caller turns gradients off: nothing says what it does
    "evaluation-hook-without-evidence": {
        "trainer.py": '''
import torch


class NNTrainer:
    def __init__(self, model):
        self.model = model

    def test(self, loaders):
        self.model.eval()
        self.evaluate(loaders)

    def evaluate(self, loaders):
        raise NotImplementedError

    def validation(self, loaders):
        self.model.eval()
        self.evaluate(loaders)


class Logged:
    def __init__(self, model):
        self.model = model

    def validate(self, x):
        self.model.eval()
        with torch.no_grad():
            out = self.model(x)
        self.log_outputs(out)

    def predict(self, x):
        with torch.no_grad():
            self.log_outputs(x)

    def log_outputs(self, out):
        print(out)
''',
    },
    # a predict method puts the net in eval mode before the batches and again after them, where its
    # sibling restores training mode: the second call was meant to be train()
    "eval-mode-set-again-instead-of-restored": {
        "__select__": "NN308",
        "base.py": '''
import torch


class Model:
    def __init__(self, net):
        self.net = net

    def score_in_batches(self, dataloader, score_func, eval_=True):
        if eval_:
            self.net.eval()
        with torch.no_grad():
            scores = [score_func(self.net(x), y) for x, y in dataloader]
        if eval_:
            self.net.train()
        return scores

    def predict(self, dataloader, eval_=True):
        if eval_:
            self.net.eval()
        with torch.no_grad():
            preds = [self.net(x) for x in dataloader]
        if eval_:
            self.net.eval()  # NN308
        return preds
''',
    },
    # an inference helper that leaves eval mode on, or switches back to training later, and a
    # file where no function restores training mode after an evaluation
    "eval-mode-set-again-look-alikes": {
        "__select__": "NN308",
        "base.py": '''
import torch


class Model:
    def __init__(self, net, head):
        self.net = net
        self.head = head

    def score(self, dataloader, score_func):
        self.net.eval()
        with torch.no_grad():
            scores = [score_func(self.net(x), y) for x, y in dataloader]
        self.net.train()
        return scores

    def predict(self, x):
        self.net.eval()
        with torch.no_grad():
            return self.net(x)

    def predict_twice(self, x):
        self.net.eval()
        with torch.no_grad():
            first = self.net(x)
        self.net.eval()
        second = self.net.forward(x)
        self.net.train()
        return first, second

    def reset(self, x):
        self.net.eval()
        self.net.eval()
        return self.net(x)

    def embed(self, x):
        self.head.eval()
        with torch.no_grad():
            y = self.head(x)
        self.head.eval()
        return y
''',
    },
}


def _expected(files: dict[str, str]) -> set[tuple[str, int, str]]:
    found: set[tuple[str, int, str]] = set()
    for name, text in files.items():
        for number, line in enumerate(textwrap.dedent(text).splitlines(), start=1):
            match = _MARK.search(line)
            if match:
                for code in re.findall(r"NN\d{3}", match.group(1)):
                    found.add((name, number, code))
    return found


@pytest.mark.parametrize("case", sorted(CASES))
def test_nograd_shape(case: str, tmp_path: Path) -> None:
    files = dict(CASES[case])
    select = files.pop("__select__", "NN308,NN309")
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    result = nnlint.lint_paths([str(tmp_path)], select=select.split(","), use_cache=False, jobs=1)
    assert not result.errors
    got = {(Path(f.path).relative_to(tmp_path).as_posix(), f.line, f.code) for f in result.findings}
    assert got == _expected(files)


def _fixed(source: str) -> Optional[str]:
    text = textwrap.dedent(source)
    outcome = fixed_text(text, nnlint.lint_source(text, path="m.py", select=["NN309"]), unsafe=True)
    return outcome[0] if outcome is not None else None


def test_call_of_a_helper_is_wrapped_in_no_grad() -> None:
    source = '''
    import torch


    def run_epoch(data, model):
        return [model(x) for x in data]


    def main(model, valid_data):
        model.eval()
        valid_loss = run_epoch(valid_data, model)
        print(valid_loss)
    '''
    assert _fixed(source) == textwrap.dedent(source).replace('''\
    valid_loss = run_epoch(valid_data, model)
    print(valid_loss)
''', '''\
    with torch.no_grad():
        valid_loss = run_epoch(valid_data, model)
        print(valid_loss)
''')


def test_pass_shared_with_training_gets_no_no_grad_fix() -> None:
    # no_grad around the shared loop would break the training pass's backward()
    source = textwrap.dedent(CASES["shared-train-and-valid-function"]["training.py"])
    assert [f.line for f in nnlint.lint_source(source, path="m.py", select=["NN309"])] == [12]
    assert _fixed(source) is None
