'''
## What it does
Reports a training script that never seeds its random number generators.

A training script is a file with a training loop (`backward()` and an optimizer `step()` in a
loop), a Keras `model.fit(...)` or a Lightning `trainer.fit(...)` that runs as a program: its
module-level code (an `if __name__ == "__main__":` block included) reaches the training,
directly or through the file's functions and methods, also when a function is handed to a
launcher (`mp.spawn(main, ...)`, `fire.Fire(main)`). A module that only defines training
functions for another file is not reported (the caller seeds), nor one whose `__main__` block
only runs a demo. The file is reported once, at its first training loop or `fit` call.

Any call whose name contains `seed` counts as seeding: `torch.manual_seed`, `random.seed`,
`np.random.seed`, `tf.random.set_seed`, `keras.utils.set_random_seed`, `seed_everything`
(Lightning), `transformers.set_seed`, `accelerate.utils.set_seed`, and your own helper imported
from another module (`from utils import set_seed`). Seeded generator objects
(`np.random.default_rng(0)`, `np.random.RandomState(0)`) count too.

This rule is opinionated and off by default: many experiments are meant to vary between runs.

## Why is this bad?
Weight initialisation, data shuffling, dropout masks and augmentation all draw from random
generators. Without a seed, every run trains a different network: two runs of the same code
give different losses and accuracies after a fixed number of epochs, so a change cannot be
told apart from run-to-run noise, and a failure cannot be reproduced for debugging.

## Example
```python
import torch

model = torch.nn.Linear(10, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for inputs, targets in loader:  # NN903
    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(model(inputs), targets)
    loss.backward()
    optimizer.step()
```

## Use instead
```python
import random

import numpy as np
import torch

random.seed(0)
np.random.seed(0)
torch.manual_seed(0)

model = torch.nn.Linear(10, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for inputs, targets in loader:
    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(model(inputs), targets)
    loss.backward()
    optimizer.step()
```

## Source
Seed 004_81a3f3f84632e452.txt (dropout section): "当处理概率层时(比如 dropout)，我总是建议设置随机种子
(当使用 TensorFlow 后端时，设置`np.random.seed(...)`和`tf.random.set_seed(...)`)" (with
probabilistic layers such as dropout, always set the random seeds); that way experiments can
be repeated and results compared without bias, while without explicit seeds every training
run is different and performance after a fixed number of epochs is hard to compare.

In short: Seed every random generator before training (`torch.manual_seed`, `np.random.seed`,
`tf.random.set_seed`). Public reference: PyTorch documentation, "Reproducibility",
https://pytorch.org/docs/stable/notes/randomness.html; Keras documentation,
`keras.utils.set_random_seed`, https://keras.io/api/utils/python_utils/.
'''
from __future__ import annotations

from typing import Iterator, Optional

import libcst as cst

from nnlint.facts.loops import scope_calls
from nnlint.facts.names import dotted_name, positional
from nnlint.rule import Context, Rule

_FIT_METHODS = frozenset({"fit", "fit_generator"})
_SEEDED_GENERATORS = frozenset({"numpy.random.default_rng", "numpy.random.RandomState", "numpy.random.Generator"})
_LIGHTNING = ("pytorch_lightning.", "lightning.")


class TrainingWithoutRandomSeed(Rule):
    code = "NN903"
    name = "training-without-random-seed"
    severity = "info"
    default = False
    fixable = False
    options = {}

    def check(self, ctx: Context) -> None:
        anchors: set[cst.CSTNode] = {t.node for t in ctx.facts.loops.training_loops}
        anchors.update(_fit_calls(ctx))
        if not anchors or _seeds(ctx) or not _runs_as_program(ctx, anchors):
            return
        first = next(node for node in ctx.facts.walk() if node in anchors)
        what = "training loop" if isinstance(first, (cst.For, cst.While)) else "training"
        ctx.report(first, f"{what} in a script that never seeds its random generators: call "
                          f"{_seeding_call(ctx, first)} for reproducible runs",
                   end_node=first.iter if isinstance(first, cst.For) else first.test if isinstance(first, cst.While)
                   else None)


def _seeding_call(ctx: Context, anchor: cst.CSTNode) -> str:
    """The seeding call of the framework that trains here (the message names one that fits)."""
    keras = "keras.utils.set_random_seed (or tf.random.set_seed with np.random.seed and random.seed)"
    if isinstance(anchor, cst.Call) and isinstance(anchor.func, cst.Attribute):
        constructor = _constructor(ctx, anchor.func.value)
        if constructor is not None and constructor.startswith(_LIGHTNING):
            return "seed_everything(...)"
        return keras  # a Keras fit(), whatever else the file imports
    if ctx.facts.names.imports_any(("torch",)):
        return "torch.manual_seed / np.random.seed / random.seed"
    return keras


def _fit_calls(ctx: Context) -> Iterator[cst.Call]:
    names = ctx.facts.names
    keras_file = names.imports_any(("keras", "tensorflow"))
    for call in ctx.facts.calls():
        func = call.func
        if not isinstance(func, cst.Attribute) or func.attr.value not in _FIT_METHODS:
            continue
        if names.qualname(func) is not None:
            continue
        receiver = func.value
        model = ctx.facts.models.model_of(receiver)
        if model is not None:
            if model.framework == "keras":
                yield call
            continue
        constructor = _constructor(ctx, receiver)
        if constructor is not None and constructor.startswith(_LIGHTNING) and constructor.endswith(".Trainer"):
            yield call
        elif keras_file and (constructor is None or constructor.startswith(("keras.", "tensorflow."))):
            yield call


def _constructor(ctx: Context, receiver: cst.BaseExpression) -> Optional[str]:
    """Qualified name of the class ``receiver`` was built from (``trainer = pl.Trainer()``)."""
    value = ctx.facts.dataflow.resolve(receiver) if isinstance(receiver, cst.Name) else receiver
    if isinstance(value, cst.Call):
        return ctx.facts.names.qualname(value.func) or dotted_name(value.func)
    return None


def _seeds(ctx: Context) -> bool:
    names = ctx.facts.names
    for call in ctx.facts.calls():
        func = call.func
        text = names.qualname(func) or dotted_name(func) or (func.attr.value if isinstance(func, cst.Attribute) else "")
        if "seed" in text.rsplit(".", 1)[-1].lower():
            return True
        if text in _SEEDED_GENERATORS and positional(call, 0) is not None:
            return True
    return False


def _runs_as_program(ctx: Context, anchors: set[cst.CSTNode]) -> bool:
    """Does module-level code (a ``__main__`` block included) reach one of the anchors?"""
    loops = ctx.facts.loops
    if any(loops.function_of(node) is None for node in anchors):
        return True  # trains at module level
    methods: dict[str, list[cst.FunctionDef]] = {}
    for cls in ctx.facts.names.classes.values():
        if isinstance(cls.body, cst.IndentedBlock):
            for statement in cls.body.body:
                if isinstance(statement, cst.FunctionDef):
                    methods.setdefault(statement.name.value, []).append(statement)
    functions = {name: f for name, f in ctx.facts.names.functions.items() if name not in ctx.facts.names.bindings}
    reached: set[cst.FunctionDef] = set()
    frontier: list[cst.CSTNode] = [ctx.module]
    while frontier:
        scope = frontier.pop()
        for call in scope_calls(ctx.facts, scope):
            targets: list[cst.FunctionDef] = []
            callee = loops.callee(call)
            if callee is not None:
                targets.append(callee)
            elif isinstance(call.func, cst.Attribute):
                targets.extend(methods.get(call.func.attr.value, ()))  # trainer.train(): a local class's method
            for arg in call.args:  # mp.spawn(main, ...), fire.Fire(main), Process(target=train)
                if isinstance(arg.value, cst.Name) and arg.value.value in functions:
                    targets.append(functions[arg.value.value])
            for function in targets:
                if function not in reached:
                    reached.add(function)
                    frontier.append(function)
    return any(loops.function_of(node) in reached for node in anchors)


