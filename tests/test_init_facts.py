"""nnlint.facts.init: normal draws, whether their scale matters, and Xavier/He inits with what follows."""
from __future__ import annotations

import textwrap

import libcst as cst

from nnlint.facts import FileFacts
from nnlint.facts.init import (
    HE,
    KERAS_INITIALIZER,
    NORMAL_INIT,
    PARAMETER,
    TF_INITIALIZER,
    TF_VARIABLE,
    XAVIER,
)


def facts_of(source: str, path: str = "model.py") -> FileFacts:
    return FileFacts(path, cst.parse_module(textwrap.dedent(source)))


def test_normal_draws_with_their_form_std_and_target() -> None:
    facts = facts_of("""
        import torch
        import torch.nn as nn
        import tensorflow as tf

        class MLP(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(784, 256)
                nn.init.normal_(self.fc.weight, mean=0.0, std=0.02)
                self.fc.weight.data.normal_()
                self.W = nn.Parameter(torch.randn(784, 10))
                self.scaled = nn.Parameter(torch.randn(784, 10) * 0.02)

        init = tf.random_normal_initializer()
        keras_init = tf.keras.initializers.RandomNormal(stddev=s)
        W1 = tf.Variable(tf.random.normal([784, 256], stddev=0.5))
    """)
    draws = facts.init.normal_draws
    assert [(d.form, d.std, d.target) for d in draws] == [
        (NORMAL_INIT, 0.02, None),
        (NORMAL_INIT, 1.0, None),
        (PARAMETER, 1.0, "W"),
        (TF_INITIALIZER, 1.0, "init"),
        (KERAS_INITIALIZER, None, "keras_init"),  # a stddev that is not a literal is unknown
        (TF_VARIABLE, 0.5, "W1"),
    ]
    variable = draws[-1]
    assert variable.node is not variable.call  # reported at tf.random.normal, built by tf.Variable


def _scale_matters(source: str, path: str = "model.py") -> list[bool]:
    facts = facts_of(source, path)
    return [facts.init.scale_matters(draw) for draw in facts.init.normal_draws]


def test_embeddings_and_norm_scales_are_conventional() -> None:
    assert _scale_matters("""
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(10, 10)
                self.table = nn.Embedding(100, 10)
                nn.init.normal_(self.fc.weight)
                nn.init.normal_(self.table.weight)
                nn.init.normal_(self.pos_embedding.weight)

        def init_weights(m):
            if isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight)
            if isinstance(m, nn.LayerNorm):
                nn.init.normal_(m.weight)
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight)
    """) == [True, False, False, False, False, True]


def test_a_parameter_scaled_reinitialised_or_normalised_where_it_is_used() -> None:
    assert _scale_matters("""
        import torch
        import torch.nn as nn

        class Plain(nn.Module):
            def __init__(self, n, m):
                super().__init__()
                self.W = nn.Parameter(torch.randn(n, m))

            def forward(self, x):
                return x @ self.W

        class Scaled(nn.Module):
            def __init__(self, n, m):
                super().__init__()
                self.proj = nn.Parameter(torch.randn(n, m))

            def forward(self, x):
                return x @ self.proj * self.scale

        class Placeholder(nn.Module):
            def __init__(self, n, m):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(n, m))
                nn.init.kaiming_uniform_(self.weight)

        class HeadMixing(nn.Module):
            def __init__(self, heads):
                super().__init__()
                self.mix_weight = nn.Parameter(torch.randn(heads, heads))
                self.norm = nn.LayerNorm(heads)

            def forward(self, attn):
                mixed = torch.einsum("bhij,hg->bijg", attn, self.mix_weight)
                return self.norm(mixed)

        class Tokens(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.cls_token = nn.Parameter(torch.randn(1, 1, n))
                self.vector = nn.Parameter(torch.randn(n))
    """) == [True, False, False, False, False, False]


def test_a_unit_tests_parameter_does_not_matter() -> None:
    source = """
        import unittest
        import torch
        import torch.nn as nn

        class TestLayer(unittest.TestCase):
            def test_it(self):
                self.weight = nn.Parameter(torch.randn(4, 4))
    """
    assert _scale_matters(source) == [False]


def test_tensorflow_fan_in_and_names() -> None:
    assert _scale_matters("""
        import tensorflow as tf

        W = tf.Variable(tf.random.normal([784, 256]))
        w_regression = tf.Variable(tf.random.normal([3, 1]))
        params.append(tf.Variable(tf.random.normal([10, 10]), name="bias"))
        embedding_init = tf.random_normal_initializer()
        layer = tf.keras.layers.Dense(10, kernel_initializer=tf.random_normal_initializer())
    """) == [True, False, False, False, True]


def test_scheme_inits_follow_the_model_data_flow() -> None:
    facts = facts_of("""
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(10, 10)
                self.fc2 = nn.Linear(10, 10)
                self.fc3 = nn.Linear(10, 1)
                nn.init.xavier_uniform_(self.fc1.weight)
                nn.init.kaiming_normal_(self.fc2.weight, nonlinearity="relu")
                nn.init.xavier_uniform_(self.fc3.weight, gain=2.0)
                nn.init.kaiming_normal_(self.fc3.weight, nonlinearity="tanh")

            def forward(self, x):
                x = F.relu(self.fc1(x))
                x = torch.tanh(self.fc2(x))
                return self.fc3(x)
    """)
    inits = facts.init.scheme_inits
    # a gain= or a non-ReLU nonlinearity= tunes the scheme: not a plain one
    assert [(i.scheme, i.framework, i.activations) for i in inits] == [
        (XAVIER, "torch", ("ReLU",)),
        (HE, "torch", ("Tanh",)),
    ]


def test_scheme_inits_of_an_init_function_applied_to_a_model() -> None:
    facts = facts_of("""
        import torch.nn as nn

        def init_weights(m):
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)

        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
        model.apply(init_weights)
    """)
    assert [i.activations for i in facts.init.scheme_inits] == [("ReLU", "ReLU")]


def test_keras_scheme_inits_and_their_activation() -> None:
    facts = facts_of("""
        from tensorflow import keras

        model = keras.Sequential([
            keras.layers.Dense(64, activation="relu", kernel_initializer="glorot_uniform"),
            keras.layers.Dense(64, kernel_initializer=keras.initializers.HeNormal()),
            keras.layers.Activation("sigmoid"),
            keras.layers.Dense(10, kernel_initializer=keras.initializers.VarianceScaling(scale=2.0)),
        ])
    """)
    inits = facts.init.scheme_inits
    assert [(i.scheme, i.framework, i.activations) for i in inits] == [
        (XAVIER, "tensorflow", ("ReLU",)),
        (HE, "tensorflow", ("Sigmoid",)),
    ]
    assert all(isinstance(i.node, (cst.SimpleString, cst.Call)) for i in inits)  # the initializer is reported
