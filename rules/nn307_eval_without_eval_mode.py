'''
## What it does
Reports evaluation code that runs a model with dropout or batch normalisation while the
model is still in training mode.

The model counts as in eval mode after `model.eval()` earlier in the function (also through
a local alias: `model = context.model; model.eval()`), or before every call of that function.

Evaluation code is a function named like `evaluate`/`validate`/`test`/`estimate_loss`, a
model call under `torch.no_grad()`/`inference_mode()` outside the training loop and in
code that never calls `backward()`, or a model fed a batch of evaluation data (`points, y =
next(iter(test_loader))` every few steps inside the training loop) in a block that does not
backpropagate it (test-time adaptation trains on test data on purpose), or a function named for
sampling or prediction (`sample(n)` of a GAN synthesizer) that does not backpropagate and that no
training loop of the file reaches, running a model the same file trains and never switches to eval
mode. A model handed to a project function that runs it (`forward_step(model, batch)` of another
file) is run by that call, in evaluation code and in the training loop alike. A script that trains
nothing (no optimizer, no `backward()`) and runs a pretrained model
(`models.resnet18(pretrained=True)`, `weights=...`) it never switches to eval mode is reported where
the model is loaded; an inference scope that trains nothing and calls `model.train()` before the
evaluation is reported at that `model.train()`. The model must be known to contain dropout or batch
normalisation (a model class or `nn.Sequential` of this project, or a torchvision
constructor, also one picked by name: `models.__dict__[name](...)`); `model.eval()` ...
`model.train()` around the evaluation (nanoGPT's `estimate_loss`) is correct, and so is a shape
smoke test that feeds the model made-up tensors of literal sizes (`net(torch.randn(1, 3, 32, 32))`
in a `test()` helper of a model file; `torch.randn(self.batch_size, dim)` is sampling noise), as
are unit tests (a pytest/unittest `test_*.py` file or a `unittest.TestCase` method) and code under a
context manager handed the model (`with eval_mode(model):`, which may switch it).

A model whose layers nnlint cannot see (a library model, a parameter, a module assembled by a
registry) is reported only on evidence from the program itself, and never where the file
switches a model of that name to eval mode elsewhere: the program puts it in training mode
(`model.train()`, also in another file whose training loop then hands the model to this file's
`do_eval(model, loader)`) on the way to a function named for evaluation; or an inference entry point
(a function named like `predict`/`evaluate`/`test` that nothing in the project calls, nor any
function on the way to it) runs `self` of an `nn.Module` subclass or a parameter the same file
trains; or a script that never backpropagates nor builds an optimizer runs a module it built in
the same scope (top level or a function) and moved to a device (`.cuda()`) or loaded weights into
(`load_state_dict`), under `torch.no_grad()` in a loop (not one from `from_pretrained`, which returns
it in eval mode). Models are followed through star imports (a package `__init__` that re-exports
`from .generator import *`), the blocks of other files a model builds in a loop, and alternative
constructors (`Encoder.load(path)`, a classmethod returning the model).

## Why is this bad?
In training mode dropout zeroes random units and batch normalisation normalises with the
statistics of the current batch (and updates its running averages with evaluation data).
Validation metrics computed that way are noisy, pessimistic and depend on the batch size;
test predictions are not reproducible; and BN's running statistics are polluted with
evaluation data. `torch.no_grad()` does not change any of this: it only turns off autograd.

## Example
```python
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(256, 10)

    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


def evaluate(model, loader):
    correct = 0
    with torch.no_grad():
        for inputs, targets in loader:
            correct += (model(inputs).argmax(1) == targets).sum().item()  # NN307
    return correct


model = Net()
print(evaluate(model, test_loader))
```

## Use instead
```python
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(256, 10)

    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


def evaluate(model, loader):
    model.eval()
    correct = 0
    with torch.no_grad():
        for inputs, targets in loader:
            correct += (model(inputs).argmax(1) == targets).sum().item()
    return correct


model = Net()
print(evaluate(model, test_loader))
```

## Fix safety
The fix inserts `model.eval()` above the outermost statement of the evaluation (a `with
torch.no_grad():` block or loop over the evaluation data, never the training loop) and
`model.train()` below it, so the model is back in the mode it was in. It is unsafe: the evaluation
results change (dropout off, batch norm running statistics used), which is the point, but a
`model.train()` placed below a statement that hands the model to other code could come later than
that code expects. There is no fix when the statement can leave early (`return`, `break`, `raise`),
which would skip `model.train()`. A finding at `model.train()` replaces it with `model.eval()`, and one
at a pretrained model's loading appends `.eval()` to it (both unsafe for the same reason).

## Source
Seed 002_1779c8f13c5dbb22.txt: no dropout at test and prediction time ("测试和预测阶段是不能
dropout的"), and batch normalisation uses the moving averages at test time, switched by
`is_training`. Seed 004_81a3f3f84632e452.txt: dropout is active only in the training phase
and removed when predicting. Seed 000_15ef46e869a43bad.txt: after training, dropout does
nothing. In PyTorch that switch is `model.eval()`.

In short: Call `model.eval()` before evaluating and `model.train()` before training again. Public
reference: PyTorch documentation, `torch.nn.Module.eval` (dropout and batch norm behave differently
in evaluation), https://pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.eval.
'''
from __future__ import annotations

from nnlint.facts.edits import around
from nnlint.facts.testcode import in_test_code
from nnlint.rule import Context, Rule


class EvalWithoutEvalMode(Rule):
    code = "NN307"
    name = "eval-without-eval-mode"
    severity = "warning"
    default = True
    fixable = True
    options = {}

    def check(self, ctx: Context) -> None:
        facts = ctx.facts
        evaluation = facts.evaluation
        training_nodes = evaluation.training_nodes
        reported: set[tuple[int, str]] = set()
        for call in facts.calls():
            found = evaluation.model_call(call)
            if found is None:
                continue
            model, model_expr = found
            scope = facts.loops.function_of(call)
            key = (id(scope), model)
            if key in reported or not evaluation.in_evaluation(call, scope):
                continue
            if evaluation.synthetic_input(call) or in_test_code(facts, call) or evaluation.in_model_context(call, model):
                continue  # a smoke test, a unit test, or ``with eval_mode(model):``
            summaries = evaluation.model_summaries(model_expr, scope)
            mode = evaluation.mode_at(call, scope, model)
            if mode == "unknown" and evaluation.trained_here_never_evaluated(model):
                mode = "train"  # callers from other files: but this file trains it and never calls eval()
            if summaries is None:
                # A model nnlint cannot see (a library model, a parameter, one built in another
                # file): the evidence is the program itself (see the facts for what counts).
                unseen = evaluation.unseen_model_in_training_mode(call, scope, model, mode)
                if unseen is None:
                    continue
                message = unseen
            else:
                if not all(s.has_dropout or s.has_batchnorm for s in summaries) or mode not in ("train", "none"):
                    continue
                layers = " and ".join(k for k, on in (
                    ("dropout", all(s.has_dropout for s in summaries)),
                    ("batch norm", all(s.has_batchnorm for s in summaries))) if on) or "dropout or batch norm"
                message = f"{model} has {layers} but is evaluated in training mode: call {model}.eval() first"
            reported.add(key)
            switch = evaluation.training_switch(call, scope, model) if mode == "train" else None
            pretrained = evaluation.pretrained_never_evaluated(call)
            site = (id(pretrained or switch or call), model)
            if site in reported:
                continue  # the same load or train() reached from another scope
            reported.add(site)
            if pretrained is not None:  # a pretrained model an inference script never switches to eval mode
                ctx.report(pretrained, f"{model} is a pretrained model that is run in training mode: "
                                       f"call {model}.eval() after loading it",
                           related=[(call, f"{model} is run here")],
                           fix=[(pretrained, f"{ctx.code_for(pretrained)}.eval()")],
                           fix_message=f"Call {model}.eval() after loading it", applicability="unsafe")
                continue
            if switch is not None:  # ``model.train()`` where an inference script meant ``model.eval()``
                receiver = ctx.code_for(switch.func.value)  # type: ignore[attr-defined]
                ctx.report(switch, f"{model}.train() puts {model} in training mode for the evaluation below: "
                                   f"call {model}.eval() instead", related=[(call, f"{model} is evaluated here")],
                           fix=[(switch, f"{receiver}.eval()")], fix_message=f"Call {model}.eval() instead",
                           applicability="unsafe")
                continue
            ctx.report(call, message, fix=around(ctx, call, set(training_nodes), f"{model}.eval()",
                                                  f"{model}.train()", evaluation.calls_backward),
                       fix_message=f"Call {model}.eval() before the evaluation and {model}.train() after it",
                       applicability="unsafe")
