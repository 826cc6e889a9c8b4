"""NN310 on loss tensors kept past their loop iteration: appended to a list, stored in a dict under
a per-step key, or handed to a same-file meter that adds them to an attribute. A line ending in
``# NN310`` must get exactly that finding; no other NN310 may appear."""
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
"""

FIRES: dict[str, str] = {
    # the PyTorch FAQ shape: the list outlives the loop, also after backward
    "append-after-backward": """
losses = []
for x, y in loader:
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    losses.append(loss)  # NN310
print(sum(l.item() for l in losses))
""",
    "tuple-made-list-and-dict": """
def train(model, loader, opt):
    history, log = [], {}
    for step, (x, y) in enumerate(loader):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        history.append(loss)  # NN310
        log[step] = loss  # NN310
    return history, log
""",
    # a counter the loop increments is a new key every step
    "dict-keyed-by-counter": """
def fit(model, loader, opt, epochs):
    count = 0
    for epoch in range(epochs):
        step_log = {}
        for batch in loader:
            out = model(**batch)
            loss = out.loss
            loss.backward()
            opt.step()
            step_log[count] = loss  # NN310
            count += 1
        print({k: float(v) for k, v in step_log.items()})
""",
    # the model returns a dict whose "loss" is backpropagated; the whole dict is kept
    "dict-output-appended": """
def train_epoch(module, loader, opt):
    outputs = []
    for i, batch in enumerate(loader):
        opt.zero_grad()
        output = module.training_step(batch, i)
        output["loss"].backward()
        opt.step()
        outputs.append(output)  # NN310
    return module.training_epoch_end(outputs)
""",
    # 0 on one branch, a backpropagated loss tensor on the other
    "zero-or-loss-appended": """
def train(net, disc, loader, opt, opt_d, adversarial, adv_criterion):
    hist = []
    for x, y in loader:
        d_loss = 0
        if adversarial:
            d_loss = adv_criterion(disc(net(x).detach()), y)
            d_loss.backward()
            opt_d.step()
        hist.append(d_loss)  # NN310
    return hist
""",
    # the running sum gets the same 0-or-loss name
    "zero-or-loss-summed": """
def train(net, loader, adversarial, criterion):
    total = 0.0
    for x, y in loader:
        g_loss = 0
        if adversarial:
            g_loss = criterion(net(x), y)
            g_loss.backward()
        total += g_loss  # NN310
    print(total)
""",
    "dict-in-while-loop": """
def fit(model, batches, opt):
    log = {}
    step = 0
    while step < 100:
        x, y = next(batches)
        loss = F.mse_loss(model(x), y)
        loss.backward()
        log[step] = loss  # NN310
        step += 1
    print(log)
""",
    "meter-adds-argument": """
class Meter:
    def __init__(self):
        self.sum = torch.tensor(0.)
        self.n = 0

    def update(self, v, n=1):
        self.sum += v * n
        self.n += n

meter = Meter()
for x, y in loader:
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    meter.update(loss, len(x))  # NN310
""",
    "meter-appends-moved-argument": """
class History:
    def __init__(self, name):
        self.values = []

    def add(self, value):
        self.values.append(value.cpu())

def train(model, loader, opt, criterion):
    hist = History("train")
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        opt.step()
        hist.add(value=loss)  # NN310
""",
}

QUIET: dict[str, str] = {
    # filled on the first pass, then overwritten in place: the list never grows
    "filled-once-then-copied": """
outs = []
for step in range(100):
    for i in range(4):
        loss = F.mse_loss(model(x), t)
        loss.backward()
        if step == 0:
            outs.append(loss)
        else:
            with torch.no_grad():
                outs[i].copy_(loss)
""",
    "filled-while-short": """
window = []
for x, y in loader:
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    if len(window) < 8:
        window.append(loss)
""",
    "detached-values": """
losses, log, outputs = [], {}, []
meter = None
for step, (x, y) in enumerate(loader):
    loss = F.cross_entropy(model(x), y)
    output = {"loss": loss}
    loss.backward()
    opt.step()
    losses.append(loss.item())
    losses.append(loss.detach())
    losses.append(float(loss))
    log[step] = loss.data
    outputs.append({"loss": loss.item()})
""",
    # one entry overwritten every step keeps one graph, not one per step
    "constant-key": """
log = {}
for x, y in loader:
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    log["loss"] = loss
""",
    # micro-batch losses collected to be backpropagated once
    "list-backpropagated": """
def step(model, chunks, opt):
    losses = []
    for x, y in chunks:
        losses.append(F.cross_entropy(model(x), y))
    torch.stack(losses).sum().backward()
    opt.step()

def step_sum(model, chunks, opt):
    parts = []
    for x, y in chunks:
        parts.append(F.mse_loss(model(x), y))
    total = sum(parts)
    total.backward()

def step_mean(model, chunks, opt):
    parts = []
    for x, y in chunks:
        parts.append(F.mse_loss(model(x), y))
    loss = torch.stack(parts).mean()
    loss.backward()
""",
    # a loop that only computes losses hands them to the caller, which may backpropagate them
    "returned-by-non-training-loop": """
def per_task_losses(model, tasks):
    losses = []
    for x, y in tasks:
        losses.append(F.cross_entropy(model(x), y))
    return losses
""",
    "under-no-grad": """
class Meter:
    def __init__(self):
        self.sum = 0.0

    def update(self, v):
        self.sum += v

def evaluate(model, loader):
    meter = Meter()
    losses = []
    with torch.no_grad():
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            meter.update(loss)
            losses.append(loss)
    return meter, losses
""",
    # the outputs come from under no_grad, the loss is read after the block: no graph
    "computed-under-no-grad": """
def evaluate(model, loader):
    losses = []
    total = 0.0
    for step, batch in enumerate(loader):
        with torch.no_grad():
            outputs = model(**batch)
        loss = outputs.loss
        losses.append(loss)
        total += loss
    print(torch.stack(losses).mean(), total)
""",
    # a list made inside the loop lives one iteration
    "list-per-iteration": """
for x, y in loader:
    parts = []
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    parts.append(loss)
""",
    "meter-that-detaches": """
class Meter:
    def __init__(self):
        self.sum = 0.0
        self.values = []

    def update(self, v):
        self.sum += v.item()

    def add(self, v):
        if torch.is_tensor(v):
            v = v.detach()
        self.values.append(v)

    def record(self, v, n):
        self.count = n
        self.last = v

meter = Meter()
for x, y in loader:
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    meter.update(loss)
    meter.add(loss)
    meter.record(loss, len(x))
    meter.update(loss.item())
""",
    # a meter made anew every iteration
    "meter-per-iteration": """
class Meter:
    def __init__(self):
        self.sum = 0.0

    def update(self, v):
        self.sum += v

for x, y in loader:
    meter = Meter()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    meter.update(loss)
""",
    # not a loss: an output that was never backpropagated, and a non-list with an append method
    "not-a-loss": """
outputs = []
queue = Queue()
for x, y in loader:
    output = model(x)
    outputs.append(output)
    loss = F.cross_entropy(output, y)
    loss.backward()
    queue.append(loss)
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
def test_kept_loss_fires(case: str, tmp_path: Path) -> None:
    got, expected = _findings(FIRES[case], tmp_path)
    assert expected and got == expected


@pytest.mark.parametrize("case", sorted(QUIET))
def test_kept_loss_look_alike_is_quiet(case: str, tmp_path: Path) -> None:
    got, _ = _findings(QUIET[case], tmp_path)
    assert got == set()


@pytest.mark.parametrize("case", ["zero-or-loss-appended", "zero-or-loss-summed"])
def test_zero_or_loss_gets_no_fix(case: str, tmp_path: Path) -> None:
    """``.item()``/``.detach()`` would fail on the ``0`` path, so no fix is offered."""
    text = HEADER + textwrap.dedent(FIRES[case])
    (tmp_path / "train.py").write_text(text)
    result = nnlint.lint_paths([str(tmp_path)], select=["NN310"], use_cache=False, jobs=1)
    assert [f.fix for f in result.findings] == [None]


def test_kept_loss_fix_detaches(tmp_path: Path) -> None:
    text = HEADER + textwrap.dedent(FIRES["append-after-backward"])
    (tmp_path / "train.py").write_text(text)
    result = nnlint.lint_paths([str(tmp_path)], select=["NN310"], use_cache=False, jobs=1)
    [finding] = result.findings
    assert finding.fix is not None
    assert "loss.detach()" in repr(finding.fix)
