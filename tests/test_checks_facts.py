"""Facts that answer the questions of evaluation, shape, checkpoint, loader, loss-sum and autocast rules."""
from __future__ import annotations

import textwrap

import libcst as cst

from nnlint.facts import FileFacts
from nnlint.facts.loaders import unbatches
from nnlint.facts.shapes import reordered


def facts_of(source: str) -> FileFacts:
    return FileFacts("m.py", cst.parse_module(textwrap.dedent(source)), module_name="m")


def call_named(facts: FileFacts, text: str) -> cst.Call:
    (call,) = [c for c in facts.calls() if facts.module.code_for_node(c) == text]
    return call


# -- evaluation ------------------------------------------------------------------------------
EVALUATION = """
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.5)
    def forward(self, x):
        return self.drop(x)

def evaluate(model, loader):
    with torch.no_grad():
        for x in loader:
            model.forward(x)

def validate(model, loader):
    model.eval()
    for x in loader:
        model(x)

model = Net()
evaluate(model, test_loader)
validate(model, test_loader)
model(torch.randn(1, 3))
"""


def test_evaluation_names_the_model_a_call_runs_and_whether_it_evaluates() -> None:
    facts = facts_of(EVALUATION)
    evaluation = facts.evaluation
    call = call_named(facts, "model.forward(x)")
    model, expr = evaluation.model_call(call)  # type: ignore[misc]
    assert model == "model" and facts.module.code_for_node(expr) == "model"
    scope = facts.loops.function_of(call)
    assert evaluation.in_evaluation(call, scope)
    assert evaluation.named_or_looping_like_evaluation(call, scope)
    (summary,) = evaluation.model_summaries(expr, scope)  # type: ignore[misc]
    assert summary.has_dropout


def test_evaluation_tracks_the_mode_through_callers() -> None:
    facts = facts_of(EVALUATION)
    evaluation = facts.evaluation
    in_evaluate = call_named(facts, "model.forward(x)")
    in_validate = call_named(facts, "model(x)")
    assert evaluation.mode_at(in_evaluate, facts.loops.function_of(in_evaluate), "model") == "train"
    assert evaluation.mode_at(in_validate, facts.loops.function_of(in_validate), "model") == "eval"
    assert evaluation.synthetic_input(call_named(facts, "model(torch.randn(1, 3))"))
    assert not evaluation.synthetic_input(in_validate)
    assert not evaluation.put_in_training_mode("model")


def test_evaluation_sees_backpropagation_and_a_model_trained_but_never_evaluated() -> None:
    facts = facts_of("""
    import torch
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for x, y in loader:
        loss = crit(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    """)
    evaluation = facts.evaluation
    assert evaluation.calls_backward(facts.module)
    assert evaluation.training_nodes
    assert evaluation.trained_here_never_evaluated("net")
    assert not evaluation.trained_here_never_evaluated("crit")


# -- shapes ------------------------------------------------------------------------------------
def test_shapes_find_unpackings_reshapes_and_the_dims_they_name() -> None:
    facts = facts_of("""
    def f(x):
        b, c, t = x.shape
        y = x.contiguous().view(b, t, c)
        z = x.view(x.size(0), x.size(2), x.size(1))
        w = x.view(b, c * t)
    """)
    shapes = facts.shapes
    (unpacking,) = shapes.unpackings
    assert unpacking.dims == ("b", "c", "t")
    swapped = shapes.reshape(call_named(facts, "x.contiguous().view(b, t, c)"))
    assert swapped is not None and swapped.tensor.value == "x" and swapped.name == "view"
    assert list(shapes.unpackings_of(swapped.tensor)) == [unpacking]
    groups = shapes.dims_per_argument(unpacking, swapped.shape)
    assert groups == [[0], [2], [1]] and reordered(groups)
    read = shapes.reshape(call_named(facts, "x.view(x.size(0), x.size(2), x.size(1))"))
    assert read is not None and shapes.dims_read_one_by_one(read.tensor, read.shape) == [[0], [2], [1]]
    merged = shapes.reshape(call_named(facts, "x.view(b, c * t)"))
    assert merged is not None and not reordered(shapes.dims_per_argument(unpacking, merged.shape) or [])
    assert shapes.reshape(call_named(facts, "x.contiguous()")) is None


def test_shapes_answer_softmax_axes_and_integer_constants() -> None:
    facts = facts_of("""
    import torch
    import torch.nn as nn
    UNITS = 1
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, UNITS), nn.Softmax(dim=1))
    torch.softmax(x, UNITS)
    """)
    shapes = facts.shapes
    (model,) = facts.models.models
    layers = model.layers
    assert shapes.int_value(call_named(facts, "nn.Linear(4, UNITS)").args[1].value) == 1
    assert shapes.flattened_before(layers[:2])
    assert not shapes.flattened_before(layers[1:2])
    assert shapes.normalises_last_axis(layers[2], flattened=True)
    assert not shapes.normalises_last_axis(layers[2], flattened=False)
    softmax = call_named(facts, "torch.softmax(x, UNITS)")
    assert not shapes.last_axis(softmax.args[1].value, "torch", softmax)
    assert not shapes.last_axis(None, "torch", softmax)


# -- checkpoints -------------------------------------------------------------------------------
CHECKPOINT = """
import torch
opt = torch.optim.Adam(model.parameters())
for epoch in range(10):
    for x, y in loader:
        loss = crit(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    state = {"model": model.state_dict()}
    torch.save(state, "ckpt.pt")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, "full.pt")
    torch.save(model.state_dict(), "best.pt")
"""


def test_checkpoints_know_the_stateful_optimizer_and_what_each_save_holds() -> None:
    facts = facts_of(CHECKPOINT)
    checkpoints = facts.checkpoints
    assert checkpoints.stateful_optimizer == "Adam"
    saves = {facts.module.code_for_node(e.node.args[1].value): e  # type: ignore[union-attr]
             for loop in facts.loops.outer_loops for e in facts.loops.iteration(loop) if e.kind == "save"}
    ckpt, full = saves['"ckpt.pt"'], saves['"full.pt"']
    assert checkpoints.contents(ckpt.node.args[0].value, ckpt) == (True, False)  # type: ignore[union-attr]
    assert checkpoints.contents(full.node.args[0].value, full) == (True, True)  # type: ignore[union-attr]
    assert checkpoints.best_model_export(saves['"best.pt"'].node)  # type: ignore[arg-type]
    assert not checkpoints.best_model_export(ckpt.node)  # type: ignore[arg-type]
    assert not checkpoints.loaded_only_for_inference  # nothing is loaded


def test_checkpoints_see_weights_loaded_only_outside_training() -> None:
    facts = facts_of(CHECKPOINT + "\ndef predict():\n    model.load_state_dict(torch.load('ckpt.pt'))\n")
    assert facts.checkpoints.loaded_only_for_inference
    sgd = facts_of("import torch\nopt = torch.optim.SGD(params, lr=0.1, momentum=0.9)\n")
    assert sgd.checkpoints.stateful_optimizer == "SGD(momentum)"
    assert facts_of("import torch\nopt = torch.optim.SGD(params, lr=0.1)\n").checkpoints.stateful_optimizer is None


# -- loaders -----------------------------------------------------------------------------------
def test_loaders_find_the_training_loops_over_a_loader_and_their_models() -> None:
    facts = facts_of("""
    import torch
    import torch.nn as nn
    from torch.utils.data import DataLoader
    BATCH = 1
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))

    def train(model, loader):
        for x in loader:
            model(x.squeeze(0)).sum().backward()

    train_loader = DataLoader(data, batch_size=BATCH)
    train(net, train_loader)
    """)
    loaders = facts.loaders
    construction = call_named(facts, "DataLoader(data, batch_size=BATCH)")
    assert loaders.is_dataloader(construction)
    assert loaders.int_value(construction.args[1].value) == 1
    (loop,) = loaders.training_loops_over(construction)
    assert dict(loop.bindings).keys() == {"model", "loader"}
    assert loaders.runs_batchnorm_model(loop)
    assert unbatches(loop.loop)
    assert not loaders.is_dataloader(call_named(facts, "train(net, train_loader)"))


# -- accumulation --------------------------------------------------------------------------------
def test_accumulation_finds_loss_sums_that_outlive_an_iteration() -> None:
    facts = facts_of("""
    import torch.nn.functional as F
    total = 0
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        total += loss * x.size(0)
        count = 0
        count += len(x)
    """)
    accumulation = facts.accumulation
    total, count = facts.nodes_of(cst.AugAssign)
    operand = accumulation.loss_operand(total.value)  # type: ignore[attr-defined]
    assert isinstance(operand, cst.Name) and operand.value == "loss"
    assert accumulation.accumulates_across_iterations(total)  # type: ignore[arg-type]
    assert accumulation.loss_operand(count.value) is None  # type: ignore[attr-defined]
    assert not accumulation.accumulates_across_iterations(count)  # type: ignore[arg-type]


def test_accumulation_does_not_count_a_sum_that_is_backpropagated() -> None:
    facts = facts_of("""
    total = 0
    for x in loader:
        total += criterion(model(x))
    total.backward()
    """)
    (node,) = facts.nodes_of(cst.AugAssign)
    assert facts.accumulation.is_loss(node.value)  # type: ignore[attr-defined]
    assert not facts.accumulation.accumulates_across_iterations(node)  # type: ignore[arg-type]


# -- precision -----------------------------------------------------------------------------------
def test_precision_sees_autocast_blocks_callers_and_lightning_precision() -> None:
    facts = facts_of("""
    import torch
    import lightning

    def step(x):
        return loss_of(x)

    with torch.autocast("cuda"):
        step(x)
    with torch.autocast("cpu"):
        other(x)
    """)
    precision = facts.precision
    assert precision.under_autocast(call_named(facts, "loss_of(x)"))
    assert not precision.under_autocast(call_named(facts, "other(x)"))
    assert not precision.lightning_mixed_precision
    lightning = facts_of("import lightning\ntrainer = lightning.Trainer(precision='16-mixed')\n"
                         "class M:\n    def training_step(self, b):\n        return f(b)\n")
    assert lightning.precision.lightning_mixed_precision
    assert lightning.precision.under_autocast(call_named(lightning, "f(b)"))
