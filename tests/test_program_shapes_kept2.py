"""NN310 on loss tensors kept past their iteration in the shapes of real training code: meters fed
an entry of a criterion's dict, lists and meters held on ``self`` by a training step, losses summed
with ``reduce`` in an optimisation loop, and loss terms a helper returns next to the total it
backpropagates. A line ending in ``# NN310`` must get exactly that finding; no other NN310 may
appear."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import nnlint
from test_program_shapes import _expected

HEADER = """\
import torch
import torch.nn as nn
import torch.nn.functional as F
from functools import reduce
"""

METER = """
class AverageMeter:
    def __init__(self):
        self.sum = 0
        self.count = 0

    def update(self, val, n=1):
        self.val = val
        self.sum += val * n
        self.count += n
"""

FIRES: dict[str, str] = {
    # the criterion returns a dict of tensors; its entries go to a running-average meter
    "meter-fed-criterion-entries": METER + """
def train_one_epoch(model, criterion, loader, optimizer):
    loss_meter = AverageMeter()
    bpp_meter = AverageMeter()
    for x in loader:
        optimizer.zero_grad()
        out = criterion(model(x), x)
        out["loss"].backward()
        optimizer.step()
        loss_meter.update(out["loss"])  # NN310
        bpp_meter.update(out["bpp_loss"], len(x))  # NN310
""",
    # the model's output dict: its backpropagated entry is a loss tensor
    "meter-fed-backpropagated-entry": METER + """
def train(model, loader, optimizer):
    meter = AverageMeter()
    for batch in loader:
        result = model(batch)
        result["total"].backward()
        optimizer.step()
        meter.update(result["total"])  # NN310
""",
    # a runner keeps its meter on self; each train step hands it a list of loss terms that the
    # helper added into the total it backpropagates
    "runner-meter-gets-loss-terms": """
class Meter:
    def __init__(self, names):
        self.sums = [0] * len(names)

    def update(self, values):
        for i, v in enumerate(values):
            self.sums[i] += v


class Runner:
    def __init__(self, model, optimizer):
        self.model = model
        self.optimizer = optimizer
        self.losses = Meter(["coarse", "fine"])

    def losses_of(self, x, y):
        coarse_out, fine_out = self.model(x)
        coarse = self.distance(coarse_out, y).mean()
        fine = self.distance(fine_out, y).mean()
        total = coarse + fine * 0.5
        return total, coarse, fine

    def train_step(self, x, y):
        total, coarse, fine = self.losses_of(x, y)
        self.model.zero_grad()
        total.backward()
        self.optimizer.step()
        self.losses.update([coarse * 1000, fine * 1000])  # NN310
""",
    # Lightning calls training_step once per batch; the list lives on the module all epoch
    "lightning-step-outputs": """
import lightning.pytorch as pl


class Forecaster(pl.LightningModule):
    def __init__(self, loss):
        super().__init__()
        self.loss = loss
        self.training_step_outputs = []

    def step(self, x, y):
        prediction = self(x)
        if self.predicting:
            loss = None
        else:
            loss = self.loss(prediction, y)
        log = {"loss": loss, "n_samples": x.size(0)}
        return log, prediction

    def training_step(self, batch, batch_idx):
        x, y = batch
        log, out = self.step(x, y)
        self.training_step_outputs.append(log)  # NN310
        return log

    def on_train_epoch_end(self):
        self.training_step_outputs.clear()
""",
    # an optimisation loop keeps every summed loss for its convergence test and backpropagates the newest
    "reduce-in-while-loop": """
def optimize(params, loss_function, max_iter=1000):
    optimizer = torch.optim.Adam(params)
    losses = []
    while True:
        optimizer.zero_grad()
        loss = loss_function(*params)
        if not isinstance(loss, (tuple, list)):
            loss = [loss]
        losses.append(reduce(lambda x, y: x + y, loss))  # NN310
        if len(losses) > max_iter or len(losses) > 2 and losses[-2] - losses[-1] < 1e-6:
            break
        losses[-1].backward(retain_graph=True)
        optimizer.step()
""",
    # the optimizer is kept in a dict with the models (``models_bag["optimizer"].step()``)
    "optimizer-held-in-a-dict": """
criterion = nn.CrossEntropyLoss()


def train(loader, models_bag):
    total_loss = 0.0
    for x, y in loader:
        models_bag["optimizer"].zero_grad()
        loss = criterion(models_bag["net"](x), y)
        loss.backward()
        models_bag["optimizer"].step()
        total_loss += loss  # NN310
    return total_loss
""",
    "sum-of-parts-accumulated": """
def train(model, loader, optimizer):
    running = 0.0
    for x, y in loader:
        out = model(x)
        parts = [F.mse_loss(out, y), F.l1_loss(out, y)]
        torch.stack(parts).sum().backward()
        optimizer.step()
        running += sum(parts)  # NN310
    print(running)
""",
    # a method with its own batch loop fills a list the object keeps
    "history-on-self-in-loop": """
class Trainer:
    def __init__(self, model, optimizer):
        self.model = model
        self.optimizer = optimizer
        self.history = []

    def fit(self, loader):
        for x, y in loader:
            self.optimizer.zero_grad()
            loss = F.cross_entropy(self.model(x), y)
            loss.backward()
            self.optimizer.step()
            self.history.append(loss)  # NN310
""",
    # an agent's update backpropagates and steps: one call is one iteration of the caller's loop
    "agent-update-keeps-loss": """
class Agent:
    def __init__(self, policy, optimizer):
        self.policy = policy
        self.optimizer = optimizer
        self.losses: list = []

    def update(self, batch):
        loss = F.smooth_l1_loss(self.policy(batch.obs), batch.target)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.losses.append(loss)  # NN310
""",
    # backpropagating the newest item leaves every earlier one (and its graph) in the list
    "newest-item-backpropagated": """
class Fitter:
    def __init__(self, params, loss_fn):
        self.params = params
        self.loss_fn = loss_fn
        self.optimizer = torch.optim.LBFGS(params)
        self.trace = []

    def run(self, steps):
        for _ in range(steps):
            self.optimizer.zero_grad()
            self.trace.append(self.loss_fn(self.params))  # NN310
            self.trace[-1].backward()
            self.optimizer.step()
""",
}

QUIET: dict[str, str] = {
    "training-step-keeps-detached": """
import lightning.pytorch as pl


class Model(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.outputs = []
        self.scalars = []
        self.logs = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.outputs.append(loss.detach())
        self.scalars.append(loss.item())
        self.logs.append({"loss": loss.detach(), "n": len(x)})
        return loss
""",
    # the meter turns what it gets into a number itself
    "self-meter-that-detaches": """
class Meter:
    def __init__(self):
        self.sum = 0.0
        self.sums = [0.0, 0.0]

    def update(self, val, n=1):
        self.sum += val.item() * n

    def update_all(self, values):
        for i, v in enumerate(values):
            self.sums[i] += float(v)


class Runner:
    def __init__(self, model, optimizer):
        self.model = model
        self.optimizer = optimizer
        self.meter = Meter()

    def train_step(self, x, y):
        loss = F.mse_loss(self.model(x), y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.meter.update(loss, len(x))
        self.meter.update_all([loss, loss * 2])
""",
    # filled and cleared in the same iteration: at most one iteration's losses are held
    # the same kept items, backpropagated through a local made from them, or one at a time
    "kept-for-later-backward-by-trainer": """
class Trainer:
    def __init__(self, model, optimizer):
        self.model = model
        self.optimizer = optimizer
        self.chunk_losses = []
        self.history = []

    def fit(self, chunks):
        for x, y in chunks:
            self.chunk_losses.append(F.mse_loss(self.model(x), y))
        total = sum(self.chunk_losses)
        total.backward()
        self.optimizer.step()
""",
    # micro-batch losses kept to be handed to a backward helper one by one after the loop
    "kept-for-accelerator-backward": """
def step(model, accelerator, chunks, optimizer):
    losses = []
    for x, y in chunks:
        losses.append(F.mse_loss(model(x), y))
    for i in range(len(losses)):
        accelerator.backward(losses[i])
    optimizer.step()
""",
    "filled-and-cleared-each-iteration": """
class Trainer:
    def __init__(self, model, optimizer):
        self.model = model
        self.optimizer = optimizer
        self.pending = []

    def train_step(self, x, y):
        loss = F.cross_entropy(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        self.pending.append(loss)
        print(torch.stack(self.pending).mean().item())
        self.pending.clear()


def train(model, loader, optimizer):
    window = []
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        window.append(loss)
        if len(window) == 8:
            print(torch.stack(window).mean().item())
            window.clear()
""",
    # the kept losses are backpropagated together by another method
    "kept-for-later-backward": """
import lightning.pytorch as pl


class Accumulating(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.saved = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.saved.append(F.cross_entropy(self(x), y))
        if len(self.saved) == 4:
            self.flush()

    def flush(self):
        total = torch.stack(self.saved).sum()
        self.manual_backward(total)
        self.optimizers().step()
        self.saved = []
""",
    # validation runs without gradients; a method that only evaluates is no training step
    "validation-step-outputs": """
import lightning.pytorch as pl


class Model(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.validation_step_outputs = []

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.validation_step_outputs.append(loss)
        return loss
""",
    # a list made again at the start of each step, and a loss kept once per fit call
    "made-in-the-step-or-kept-once": """
class Trainer:
    def __init__(self, model, optimizer):
        self.model = model
        self.optimizer = optimizer
        self.parts = []
        self.final = []

    def train_step(self, x, y):
        self.parts = []
        loss = F.cross_entropy(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        self.parts.append(loss)

    def fit(self, loader):
        for epoch in range(3):
            for x, y in loader:
                loss = F.cross_entropy(self.model(x), y)
                loss.backward()
                self.optimizer.step()
        self.final.append(loss)
""",
    # micro-batch losses summed with reduce, backpropagated once after the loop
    "reduced-then-backpropagated": """
def step(model, chunks, optimizer):
    losses = []
    for x, y in chunks:
        parts = [F.mse_loss(model(x), y), F.l1_loss(model(x), y)]
        losses.append(reduce(lambda a, b: a + b, parts))
    torch.stack(losses).sum().backward()
    optimizer.step()
""",
    # only the backpropagated entry is a loss; the helper's other output is not added into the total
    "other-entries-and-outputs": METER + """
class Runner:
    def __init__(self, model, optimizer):
        self.model = model
        self.optimizer = optimizer
        self.meter = AverageMeter()

    def forward_and_loss(self, x, y):
        out = self.model(x)
        loss = F.mse_loss(out, y)
        score = self.metric(out, y)
        return loss, score

    def train_step(self, x, y):
        loss, score = self.forward_and_loss(x, y)
        loss.backward()
        self.optimizer.step()
        self.meter.update(score)


def train(model, loader, optimizer):
    acc_meter = AverageMeter()
    for batch in loader:
        result = model(batch)
        result["loss"].backward()
        optimizer.step()
        acc_meter.update(result["accuracy"])
""",
}


def _findings(source: str, tmp_path: Path) -> tuple[set[tuple[str, int, str]], set[tuple[str, int, str]]]:
    text = HEADER + textwrap.dedent(source)
    (tmp_path / "train.py").write_text(text)
    result = nnlint.lint_paths([str(tmp_path)], select=["NN310"], use_cache=False, jobs=1)
    assert not result.errors
    got = {(Path(f.path).name, f.line, f.code) for f in result.findings}
    return got, _expected({"train.py": text})


@pytest.mark.parametrize("case", sorted(FIRES))
def test_kept_loss_shape_fires(case: str, tmp_path: Path) -> None:
    got, expected = _findings(FIRES[case], tmp_path)
    assert expected and got == expected


@pytest.mark.parametrize("case", sorted(QUIET))
def test_kept_loss_look_alike_is_quiet(case: str, tmp_path: Path) -> None:
    got, _ = _findings(QUIET[case], tmp_path)
    assert got == set()


def test_list_of_losses_gets_no_fix(tmp_path: Path) -> None:
    """A meter given a list of loss terms, or a kept dict, has no single expression to detach."""
    for case in ("runner-meter-gets-loss-terms", "lightning-step-outputs"):
        text = HEADER + textwrap.dedent(FIRES[case])
        (tmp_path / "train.py").write_text(text)
        result = nnlint.lint_paths([str(tmp_path)], select=["NN310"], use_cache=False, jobs=1)
        assert [f.fix for f in result.findings] == [None]


def test_criterion_entry_fix_detaches_the_entry(tmp_path: Path) -> None:
    text = HEADER + textwrap.dedent(FIRES["meter-fed-criterion-entries"])
    (tmp_path / "train.py").write_text(text)
    result = nnlint.lint_paths([str(tmp_path)], select=["NN310"], use_cache=False, jobs=1)
    fixes = sorted(repr(f.fix) for f in result.findings)
    assert len(fixes) == 2 and 'out["loss"].detach()' in fixes[1] + fixes[0] \
        and 'out["bpp_loss"].detach()' in fixes[0] + fixes[1]
