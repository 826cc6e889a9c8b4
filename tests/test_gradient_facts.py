"""nnlint.facts.gradients: which expressions hold gradients, and where they are clipped by value."""
from __future__ import annotations

import textwrap

import libcst as cst

from nnlint.facts import FileFacts


def facts_of(source: str) -> FileFacts:
    return FileFacts("train.py", cst.parse_module(textwrap.dedent(source)))


def test_value_clips_of_every_framework() -> None:
    facts = facts_of("""
        import torch
        import tensorflow as tf
        from tensorflow import keras

        opt = keras.optimizers.Adam(1e-3, clipvalue=1.0)
        torch.nn.utils.clip_grad_value_(model.parameters(), 1.0)
        for p in model.parameters():
            p.grad.data.clamp_(-1, 1)
            p.data.clamp_(-1, 1)
        grads = tape.gradient(loss, model.trainable_variables)
        clipped = [tf.clip_by_value(g, -1.0, 1.0) for g in grads]
        activations = tf.clip_by_value(x, 0.0, 6.0)
        torch.clamp(x, 0, 1)
    """)
    clips = facts.gradients.value_clips
    assert [c.framework for c in clips] == ["keras", "torch", "torch", "tensorflow"]
    assert isinstance(clips[0].node, cst.Float)  # the clipvalue= value


def test_is_gradient() -> None:
    facts = facts_of("""
        def step(tape, loss, variables, opt, x):
            computed = tape.gradient(loss, variables)
            for g, v in zip(computed, variables):
                use(g, v)
            pairs = opt.compute_gradients(loss)
            use(pairs, x)
    """)
    gradients = facts.gradients
    names = {n.value: n for n in facts.nodes_of(cst.Name) if n.value in ("g", "v", "pairs", "x")
             and isinstance(facts.parent(facts.parent(n)), cst.Call)}
    assert gradients.is_gradient(names["g"])  # a loop over zip(gradients, variables)
    assert gradients.is_gradient(names["pairs"])
    assert not gradients.is_gradient(names["x"])
    assert not gradients.is_gradient(None)


def test_norm_is_an_option() -> None:
    facts = facts_of("""
        import torch

        if args.clip_mode == "norm":
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        elif args.clip_mode == "value":
            torch.nn.utils.clip_grad_value_(model.parameters(), 1.0)

        def train():
            torch.nn.utils.clip_grad_value_(model.parameters(), 1.0)
    """)
    gradients = facts.gradients
    assert [gradients.norm_is_an_option(c.node) for c in gradients.value_clips] == [True, False]
