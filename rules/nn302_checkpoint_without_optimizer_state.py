'''
## What it does
Reports `torch.save` of a model's `state_dict()` inside the training loop (or in a helper
the loop calls) without the optimizer's `state_dict()`, in a file that trains with a
stateful optimizer.

Stateful optimizers are the Adam family (Adam, AdamW, Adamax, NAdam, RAdam, SparseAdam),
RMSprop, Adagrad, Adadelta, and SGD with a non-zero `momentum`. A weights-only export after
the loop, a best-model snapshot (saved under a comparison with a "best" value, or to a path
containing "best"), the optimizer's state saved to a file of its own in the same iteration,
the final weights saved to a "last"/"final" file next to it (`last.pt`,
`model_final.pth`, unless the name says checkpoint), and a checkpoint dict with an optimizer
entry are not reported. Neither are weights-only snapshots of a program without a resume
path: the file loads weights (`torch.load`, `load_state_dict`, a `load_checkpoint` helper) only
in code that never reaches the training loop (a `stylize`/`predict`/`evaluate` function), so
the snapshots are read for inference, never to continue training. A load in the training
function, in a function that calls it (`main()` restoring `--resume` before `train()`), in
its class or at module level beside a module-level loop is a resume path and keeps the
finding.

## Why is this bad?
A checkpoint written during training exists to resume it. Adam keeps two moving averages
per parameter and a step count; momentum SGD keeps a velocity. Resuming from weights only
restarts those from zero: Adam's bias correction and the momentum warm up again, the first
updates after the restart are far larger than the ones before it, and the loss jumps. The
resumed run is not the run that was checkpointed, and results stop being reproducible.

## Example
```python
import torch

optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
if resume_from:
    model.load_state_dict(torch.load(resume_from))
for epoch in range(epochs):
    for inputs, targets in loader:
        optimizer.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        optimizer.step()
    torch.save(model.state_dict(), f"checkpoint_{epoch}.pt")  # NN302
```

## Use instead
```python
import torch

optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(epochs):
    for inputs, targets in loader:
        optimizer.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        optimizer.step()
    checkpoint = {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    torch.save(checkpoint, f"checkpoint_{epoch}.pt")
```
A program that only reads its snapshots back for inference may save the weights alone:
```python
import torch


def train(model, loader, epochs):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(epochs):
        for inputs, targets in loader:
            optimizer.zero_grad()
            criterion(model(inputs), targets).backward()
            optimizer.step()
        torch.save(model.state_dict(), f"weights_{epoch}.pt")


def predict(model, path, inputs):
    model.load_state_dict(torch.load(path))
    with torch.no_grad():
        return model.eval()(inputs)
```

## Source
Seed 001_05b9fd847e40edfb.txt: when saving and restoring model weights in TensorFlow, create
the Saver after the AdamOptimizer, because Adam also has state that must be restored
("ADAM 也有需要恢复的状态"). Seed 004_81a3f3f84632e452.txt and seed 000_15ef46e869a43bad.txt
describe the per-parameter state of momentum, RMSProp and Adam (moving averages of
gradients and squared gradients) that the updates depend on.

In short: Save and restore the optimizer's `state_dict()` with the model's when training is to be
resumed. Public reference: PyTorch tutorial, "Saving and Loading Models" (saving a general
checkpoint for resuming training),
https://pytorch.org/tutorials/beginner/saving_loading_models.html.
'''
from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from nnlint.facts.loops import Event
from nnlint.facts.names import argument, dotted_name, keyword, literal
from nnlint.rule import Context, Rule

_STATEFUL = frozenset({"Adam", "AdamW", "Adamax", "NAdam", "RAdam", "SparseAdam", "RMSprop", "Adagrad", "Adadelta",
                       "Adam8bit", "AdamW8bit", "FusedAdam", "Lion"})
_MAX_DEPTH = 4
_MAX_SCOPE = 64  # functions followed up the call graph from the training loops
_EXPORT_NAME = re.compile(r"(?<![a-z])(last|final)(?![a-z])")
_CHECKPOINT_NAME = re.compile(r"ckpt|checkpoint|resume|state")
#: a project's own loader of saved weights: load_checkpoint, restore_weights, resume_from_snapshot, load_model
_WEIGHT_LOADER = re.compile(r"^_*(load|restore|resume)\w*(ckpt|checkpoint|snapshot|state|weight|model|pretrained)"
                            r"|^_*resume", re.IGNORECASE)
_WEIGHT_LOAD_FUNCTIONS = frozenset({"torch.load", "safetensors.torch.load_file", "safetensors.torch.load_model"})


class CheckpointWithoutOptimizerState(Rule):
    code = "NN302"
    name = "checkpoint-without-optimizer-state"
    severity = "warning"
    default = True
    fixable = False
    options = {}

    def check(self, ctx: Context) -> None:
        loops = ctx.facts.loops
        stateful = _stateful_optimizer(ctx)
        if stateful is None:
            return
        reported: set[cst.CSTNode] = set()
        candidates = [t.node for t in loops.training_loops] + list(loops.outer_loops)
        for loop in candidates:
            saves = [(event, _contents(ctx, argument(event.node, 0, "obj"), event, 0))
                     for event in loops.iteration(loop) if event.kind == "save" and isinstance(event.node, cst.Call)]
            # the optimizer's state saved to its own file in the same iteration: `opt{step}.pt`
            if any(optimizer_state for _, (_, optimizer_state) in saves):
                continue
            for event, (model_state, optimizer_state) in saves:
                if event.node in reported or _best_model_export(ctx, event.node):
                    continue
                if model_state and not optimizer_state:
                    if not reported and _loaded_only_for_inference(ctx):
                        return  # weights-only snapshots with no resume path
                    reported.add(event.node)
                    ctx.report(event.node, f"checkpoint in the training loop saves the model but not the "
                                           f"{stateful} optimizer's state_dict(): resuming restarts its state")


def _stateful_optimizer(ctx: Context) -> Optional[str]:
    names = ctx.facts.names
    for call in ctx.facts.calls():
        qualname = names.qualname(call.func)
        if qualname is None:
            continue
        last = qualname.rsplit(".", 1)[-1]
        if last in _STATEFUL and ("optim" in qualname or qualname.startswith(("torch.", "transformers.", "bitsandbytes."))):
            return last
        if qualname == "torch.optim.SGD":
            momentum = _number(ctx, keyword(call, "momentum"))
            if isinstance(momentum, (int, float)) and momentum > 0:
                return "SGD(momentum)"
    return None


def _number(ctx: Context, expr: Optional[cst.BaseExpression]) -> object:
    if expr is None:
        return None
    value = literal(ctx.facts.dataflow.resolve(expr), None)
    if value is not None:
        return value
    try:
        constants = ctx.facts.constants
    except ImportError:  # the constants facts are optional for this rule
        return None
    value = constants.value(expr)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _contents(ctx: Context, expr: Optional[cst.BaseExpression], event: Event, depth: int) -> tuple[bool, bool]:
    """(has a model state_dict, has an optimizer state_dict or an optimizer entry) in a save payload."""
    if expr is None or depth > _MAX_DEPTH:
        return False, False
    loops = ctx.facts.loops
    model_state = optimizer_state = False
    for node in ctx.facts.walk(expr):
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "state_dict":
            owner = dotted_name(node.func.value)
            if loops.is_optimizer(owner) or _optimizer_state_helper(node):
                optimizer_state = True
            else:
                model_state = True
        elif isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
            text = node.evaluated_value
            if isinstance(text, str) and "optim" in text.lower():
                optimizer_state = True
        elif isinstance(node, cst.Arg) and node.keyword is not None and "optim" in node.keyword.value.lower():
            optimizer_state = True
        elif isinstance(node, cst.Name):
            inner = _name_value(ctx, node, event)
            if inner is not None:
                m, o = _contents(ctx, inner, event, depth + 1)
                model_state, optimizer_state = model_state or m, optimizer_state or o
    return model_state, optimizer_state


def _optimizer_state_helper(call: cst.Call) -> bool:
    # FSDP.optim_state_dict(model, optimizer) and the like
    name = dotted_name(call.func) or ""
    return "optim" in name.lower()


def _name_value(ctx: Context, name: cst.Name, event: Event) -> Optional[cst.BaseExpression]:
    value = ctx.facts.dataflow.value_of(name)
    if value is not None:
        return value
    # a parameter of the helper the save is in: the argument at the loop's call
    loops = ctx.facts.loops
    for call in reversed(event.via):
        function = loops.callee(call)
        if function is None or loops.function_of(name) is not function:
            continue
        params = [p.name.value for p in (*function.params.posonly_params, *function.params.params)]
        if name.value in params:
            offset = 1 if params and params[0] == "self" and isinstance(call.func, cst.Attribute) else 0
            return argument(call, params.index(name.value) - offset, name.value)
    return None


def _best_model_export(ctx: Context, save: cst.Call) -> bool:
    """A snapshot for inference: under ``if val < best``, saved to a "best" path, or to a "last"/"final"
    weights file (the ``best.pt`` + ``last.pt`` pair) that does not call itself a checkpoint."""
    for arg in save.args[1:]:
        texts = [ctx.code_for(n).lower() for n in ctx.facts.walk(arg.value)
                 if isinstance(n, (cst.SimpleString, cst.FormattedStringText))]
        if any("best" in text for text in texts):
            return True
        if any(_EXPORT_NAME.search(text) for text in texts) and not any(_CHECKPOINT_NAME.search(t) for t in texts):
            return True
        if isinstance(arg.value, (cst.Name, cst.Attribute)) and "best" in (dotted_name(arg.value) or "").lower():
            return True
    for ancestor in ctx.facts.ancestors(save):
        if isinstance(ancestor, cst.If) and "best" in ctx.code_for(ancestor.test).lower():
            return True
        if isinstance(ancestor, (cst.For, cst.While, cst.FunctionDef)):
            break
    return False


def _loaded_only_for_inference(ctx: Context) -> bool:
    """Does the file load weights, and only in code that never reaches a training loop?"""
    loads = [call for call in ctx.facts.calls() if _loads_weights(ctx, call)]
    if not loads:
        return False  # nothing says how the snapshots are used
    loops = ctx.facts.loops
    functions: set[cst.FunctionDef] = set()
    module_level = False
    pending = [loops.function_of(t.node) for t in loops.training_loops]
    pending += [loops.function_of(loop) for loop in loops.outer_loops]
    while pending:
        function = pending.pop()
        if function is None:
            module_level = True
        elif function not in functions and len(functions) < _MAX_SCOPE:
            functions.add(function)
            pending.extend(loops.function_of(call) for call in loops.call_sites(function))
    classes = {loops.class_of(f) for f in functions} - {None}
    for call in loads:
        function = loops.function_of(call)
        if function is None and module_level:
            return False
        if function is not None and (function in functions or loops.class_of(function) in classes):
            return False  # a resume path: weights are loaded where training runs
    return True


def _loads_weights(ctx: Context, call: cst.Call) -> bool:
    if ctx.facts.names.qualname(call.func) in _WEIGHT_LOAD_FUNCTIONS:
        return True
    name = (dotted_name(call.func) or "").rsplit(".", 1)[-1]
    return name == "load_state_dict" or bool(_WEIGHT_LOADER.search(name))
