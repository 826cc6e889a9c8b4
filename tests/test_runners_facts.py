"""Runners: the functions that run a module they are given, in their file and across files."""
from __future__ import annotations

import libcst as cst

from nnlint.facts.index import ProjectIndex
from test_models_facts import facts_of

UTILS = '''
def forward_step(model, batch, criterion):
    logits = model.forward(batch.x)
    return logits, criterion(logits, batch.y)

def through(net, batch, criterion):
    return forward_step(net, batch, criterion)

def later(model, x):
    return lambda: model(x)

def keeps(model, x):
    model = model.float()
    return model(x)

def logs(model, value):
    print(model, value)
'''


def _runs(source: str, project: ProjectIndex | None = None) -> dict[str, str]:
    facts = facts_of(source, module="train", path="train.py", project=project)
    code = cst.Module([]).code_for_node
    return {code(call): code(found) for call in facts.calls()
            if (found := facts.runners.module_run_by(call)) is not None}


def test_positions_of_the_parameters_a_function_runs() -> None:
    facts = facts_of(UTILS, module="utils", path="utils.py")
    assert facts.runners.exported() == {"forward_step": (0, 2), "through": (0,)}


def test_a_call_runs_what_it_hands_over_in_the_same_file_and_from_another() -> None:
    utils = facts_of(UTILS, module="utils", path="utils.py").summary()
    assert utils.runners == {"forward_step": (0, 2), "through": (0,)}
    source = '''
from utils import forward_step, through, logs

def step(m, b):
    return m(b)

def validation(model, batch, criterion):
    out = forward_step(model, batch, criterion)
    out2 = through(model, batch, criterion)
    logs(model, out)
    return step(model, batch)
'''
    assert _runs(source, ProjectIndex([utils])) == {
        "forward_step(model, batch, criterion)": "model",
        "through(model, batch, criterion)": "model",
        "step(model, batch)": "model",
    }
    assert _runs(source) == {"step(model, batch)": "model"}  # the other file unknown: nothing
