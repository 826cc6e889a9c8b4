"""nnlint.facts.tensors: recognising tensor ops in every spelling."""
from __future__ import annotations

import textwrap
from typing import Optional

import libcst as cst
import pytest

from nnlint.facts import FileFacts
from nnlint.facts.tensors import (
    EXP,
    FUNCTION_STYLE,
    LOG,
    LOG_SOFTMAX,
    MAX,
    METHOD_STYLE,
    MODULE_STYLE,
    SOFTMAX,
    SUM,
    TensorOp,
    TensorOps,
    original_text,
)
from nnlint.rule import Context

HEADER = """
import math
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tensorflow as tf
import tensorflow.compat.v1 as tf1
from tensorflow import keras
import jax
import jax.numpy as jnp
from torch.nn.functional import softmax as sm
"""


def facts_for(source: str) -> FileFacts:
    return FileFacts("t.py", cst.parse_module(textwrap.dedent(source)), module_name="t")


def last_value(facts: FileFacts) -> cst.BaseExpression:
    """The right-hand side of the file's last statement (``y = <expr>``)."""
    statement = facts.module.body[-1]
    assert isinstance(statement, cst.SimpleStatementLine)
    assign = statement.body[0]
    assert isinstance(assign, cst.Assign)
    return assign.value


def op_of(expression: str, prelude: str = "") -> Optional[TensorOp]:
    facts = facts_for(HEADER + prelude + f"y = {expression}\n")
    return TensorOps(facts).op(last_value(facts))


@pytest.mark.parametrize(
    "expression, kind, style, framework",
    [
        ("torch.log(x)", LOG, FUNCTION_STYLE, "torch"),
        ("torch.log_(x)", LOG, FUNCTION_STYLE, "torch"),
        ("x.log()", LOG, METHOD_STYLE, "torch"),
        ("x.log_()", LOG, METHOD_STYLE, "torch"),
        ("tf.math.log(x)", LOG, FUNCTION_STYLE, "tensorflow"),
        ("tf1.log(x)", LOG, FUNCTION_STYLE, "tensorflow"),
        ("np.log(x)", LOG, FUNCTION_STYLE, "numpy"),
        ("jnp.log(x)", LOG, FUNCTION_STYLE, "jax"),
        ("torch.exp(x)", EXP, FUNCTION_STYLE, "torch"),
        ("x.exp()", EXP, METHOD_STYLE, "torch"),
        ("tf.exp(x)", EXP, FUNCTION_STYLE, "tensorflow"),
        ("F.softmax(x, dim=1)", SOFTMAX, FUNCTION_STYLE, "torch"),
        ("torch.softmax(x, 1)", SOFTMAX, FUNCTION_STYLE, "torch"),
        ("sm(x, 1)", SOFTMAX, FUNCTION_STYLE, "torch"),
        ("x.softmax(-1)", SOFTMAX, METHOD_STYLE, "torch"),
        ("nn.Softmax(dim=1)(x)", SOFTMAX, MODULE_STYLE, "torch"),
        ("tf.nn.softmax(x)", SOFTMAX, FUNCTION_STYLE, "tensorflow"),
        ("keras.activations.softmax(x)", SOFTMAX, FUNCTION_STYLE, "keras"),
        ("tf.keras.activations.softmax(x)", SOFTMAX, FUNCTION_STYLE, "keras"),
        ("keras.layers.Softmax()(x)", SOFTMAX, MODULE_STYLE, "keras"),
        ("jax.nn.softmax(x)", SOFTMAX, FUNCTION_STYLE, "jax"),
        ("F.log_softmax(x, 1)", LOG_SOFTMAX, FUNCTION_STYLE, "torch"),
        ("nn.LogSoftmax(1)(x)", LOG_SOFTMAX, MODULE_STYLE, "torch"),
        ("torch.sum(x, 1)", SUM, FUNCTION_STYLE, "torch"),
        ("x.sum(-1, keepdim=True)", SUM, METHOD_STYLE, "torch"),
        ("tf.reduce_sum(x, axis=1)", SUM, FUNCTION_STYLE, "tensorflow"),
        ("x.amax(1)", MAX, METHOD_STYLE, "torch"),
        ("torch.max(x, 1)", MAX, FUNCTION_STYLE, "torch"),
    ],
)
def test_spellings(expression: str, kind: str, style: str, framework: str) -> None:
    found = op_of(expression)
    assert found is not None, expression
    assert (found.kind, found.style, found.framework) == (kind, style, framework)
    assert found.operand is not None and cst.Module([]).code_for_node(found.operand) == "x"


@pytest.mark.parametrize(
    "expression",
    [
        "math.log(x)",  # not a tensor op
        "math.exp(x)",
        "self.log('loss', x)",  # Lightning logging: log with arguments
        "logger.log(10, 'msg')",
        "x.exp(2)",
        "np.log",  # not a call
        "F.relu(x)",
        "nn.ReLU()(x)",
        "max(x)",
        "F.softmax(*args)",
        "self.softmax(x)",  # a method or layer of the module, unknown here
        "self.exp()",
    ],
)
def test_not_tensor_ops(expression: str) -> None:
    assert op_of(expression) is None


def test_dimension_argument() -> None:
    found = op_of("F.softmax(x, dim=-1)")
    assert found is not None and found.dim is not None and cst.Module([]).code_for_node(found.dim) == "-1"
    found = op_of("x.softmax(1)")
    assert found is not None and found.dim is not None and cst.Module([]).code_for_node(found.dim) == "1"
    found = op_of("nn.Softmax(dim=2)(x)")
    assert found is not None and found.dim is not None and cst.Module([]).code_for_node(found.dim) == "2"
    found = op_of("torch.log(x)")
    assert found is not None and found.dim is None


def test_resolved_op_follows_local_variables() -> None:
    facts = facts_for(HEADER + "p = F.softmax(x, 1)\nq = p\ny = torch.log(q)\n")
    ops = TensorOps(facts)
    log = ops.op(last_value(facts))
    assert log is not None and log.kind == LOG
    assert ops.op(log.operand) is None  # `q` itself is a name
    inner = ops.resolved_op(log.operand)
    assert inner is not None and inner.kind == SOFTMAX


def test_resolved_op_is_unknown_after_a_branch() -> None:
    facts = facts_for(HEADER + "def f(x, c):\n    p = F.softmax(x, 1)\n    if c:\n        p = x\n    return torch.log(p)\n")
    ops = TensorOps(facts)
    log = next(op for call in facts.calls() if (op := ops.op(call)) is not None and op.kind == LOG)
    assert ops.resolved_op(log.operand) is None


def test_layer_held_by_variable_or_attribute() -> None:
    source = HEADER + textwrap.dedent(
        """
        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                self.act = nn.Softmax(dim=-1)
                self.other = nn.ReLU()

            def forward(self, x):
                a = self.act(x)
                b = self.other(x)
                local = nn.LogSoftmax(1)
                c = local(x)
                return a, b, c
        """
    )
    facts = facts_for(source)
    ops = TensorOps(facts)
    found = {cst.Module([]).code_for_node(call): ops.op(call) for call in facts.calls()}
    assert found["self.act(x)"] is not None and found["self.act(x)"].kind == SOFTMAX
    assert found["self.other(x)"] is None
    assert found["local(x)"] is not None and found["local(x)"].kind == LOG_SOFTMAX


def test_attribute_assigned_twice_is_unknown() -> None:
    source = HEADER + textwrap.dedent(
        """
        class Head(nn.Module):
            def __init__(self, flag):
                super().__init__()
                self.act = nn.Softmax(dim=-1)
                if flag:
                    self.act = nn.Identity()

            def forward(self, x):
                return self.act(x)
        """
    )
    facts = facts_for(source)
    ops = TensorOps(facts)
    call = next(c for c in facts.calls() if cst.Module([]).code_for_node(c) == "self.act(x)")
    assert ops.op(call) is None


def test_original_text_keeps_indentation_and_ignores_form_feeds() -> None:
    source = "import torch\n\x0c\ndef f(x):\n    return torch.log(\n        x,\n    )\n"
    facts = FileFacts("t.py", cst.parse_module(source), module_name="t")
    ctx = Context("t.py", source, facts)
    call = next(iter(facts.calls()))
    assert original_text(ctx, call) == "torch.log(\n        x,\n    )"
    assert original_text(ctx, call.func) == "torch.log"
