"""nnlint.facts.dropout: dropout calls, the methods forward runs, and training flags."""
from __future__ import annotations

import textwrap

import libcst as cst

from nnlint.facts import FileFacts
from nnlint.facts.dropout import (
    ATTENTION,
    CONTRIB_DROPOUT,
    FUNCTIONAL,
    MODULE_CALL,
    TF_DROPOUT,
    WRAPPER,
    first_parameter,
)

TORCH = """
import torch.nn as nn
import torch.nn.functional as F

P = 0.3

class Block(nn.Module):
    def forward(self, x):
        x = self.helper(x)
        if self.training:
            x = F.dropout(x, 0.5)
        return nn.Dropout(0.1)(x)

    def helper(self, x):
        p = self.p if self.training else 0.0
        return F.scaled_dot_product_attention(x, x, x, dropout_p=p)

    def unused(self, x):
        return F.dropout(x, P)

class Child(Block):
    def forward(me, x):
        return F.dropout(x)

class NotAModule:
    def forward(self, x):
        return F.dropout(x)
"""


def facts_of(source: str) -> FileFacts:
    return FileFacts("model.py", cst.parse_module(textwrap.dedent(source)))


def test_sites_and_the_methods_forward_runs() -> None:
    facts = facts_of(TORCH)
    dropout = facts.dropout
    sites = dropout.sites
    assert [s.kind for s in sites] == [FUNCTIONAL, MODULE_CALL, ATTENTION, FUNCTIONAL, FUNCTIONAL, FUNCTIONAL]
    methods = [dropout.forward_method(s.call) for s in sites]
    assert [m.name.value if m is not None else None for m in methods] == [
        "forward", "forward", "helper", None, "forward", None]  # `unused` is never run by forward
    assert first_parameter(methods[4]) == "me"  # a subclass of a module class, its own receiver name
    assert [dropout.under_training_test(s.call) for s in sites] == [True, False, False, False, False, False]


def test_training_dependent_rates_and_constants() -> None:
    facts = facts_of(TORCH)
    dropout = facts.dropout
    attention = next(s.call for s in dropout.sites if s.kind == ATTENTION)
    rate = attention.args[3].value
    assert dropout.follows_training(rate)  # through the local `p`
    unused = dropout.sites[3].call
    assert dropout.constant(unused.args[1].value) == 0.3  # a module constant
    assert dropout.constant(None) is None
    assert not dropout.follows_training(unused.args[1].value)


def test_tensorflow_sites_and_keras_call_methods() -> None:
    facts = facts_of("""
        import tensorflow as tf

        class Layer(tf.keras.layers.Layer):
            def call(self, x):
                return tf.nn.dropout(x, rate=0.5)

        def net(x, is_training):
            cell = tf.nn.rnn_cell.DropoutWrapper(cell, output_keep_prob=0.5)
            y = tf.contrib.layers.dropout(x, keep_prob=0.8)
            z = tf.cond(is_training, lambda: tf.nn.dropout(y, 0.5), lambda: y)
            return tf.nn.dropout(z, 0.5)
    """)
    dropout = facts.dropout
    sites = dropout.sites
    assert [s.kind for s in sites] == [TF_DROPOUT, WRAPPER, CONTRIB_DROPOUT, TF_DROPOUT, TF_DROPOUT]
    assert [dropout.keras_call_method(s.call) for s in sites] == [True, False, False, False, False]
    assert [dropout.under_training_test(s.call) for s in sites] == [False, False, False, True, False]
