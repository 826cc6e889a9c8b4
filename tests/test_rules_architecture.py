"""Edge cases of the architecture rules NN101, NN102, NN103, NN104 and NN901."""
from __future__ import annotations

import textwrap

import pytest

import nnlint
from nnlint.config import Settings


def lines(code: str, source: str, **options: object) -> list[int]:
    settings = Settings(rule_options={code: {k.replace("_", "-"): v for k, v in options.items()}})
    findings = nnlint.lint_source(textwrap.dedent(source), path="x.py", select=[code], settings=settings)
    assert all(f.code == code for f in findings)
    return sorted(f.line for f in findings)


# -- NN103 standard-normal-weight-init ------------------------------------------------------------
NN103_BAD = {
    "init_default_std": """
        import torch.nn as nn
        layer = nn.Linear(4, 4)
        nn.init.normal_(layer.weight)
    """,
    "init_std_one_positional": """
        from torch import nn
        layer = nn.Linear(4, 4)
        nn.init.normal_(layer.weight, 0.0, 1.0)
    """,
    "init_from_import_alias": """
        from torch.nn.init import normal_ as gauss
        import torch.nn as nn
        fc = nn.Linear(4, 4)
        gauss(fc.weight, std=0.8)
    """,
    "torch_full_path": """
        import torch
        fc = torch.nn.Linear(4, 4)
        torch.nn.init.normal_(fc.weight, mean=0.0, std=1.0)
    """,
    "tensor_method_default": """
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)
                self.fc.weight.data.normal_()
    """,
    "parameter_randn": """
        import torch
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(128, 64))
    """,
    "parameter_randn_tuple_used_in_matmul": """
        import torch
        from torch.nn import Parameter
        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.proj = Parameter(torch.randn((128, 64)))
            def forward(self, x):
                return torch.matmul(x, self.proj)
    """,
    "tf_random_normal_initializer_default": """
        import tensorflow as tf
        init = tf.random_normal_initializer()
    """,
    "tf_compat_v1_initializer_large": """
        import tensorflow.compat.v1 as tf
        w = tf.get_variable("w", [784, 256], initializer=tf.random_normal_initializer(stddev=1.0))
    """,
    "tf_variable_random_normal_v1": """
        import tensorflow as tf
        W = tf.Variable(tf.random_normal([784, 256]), name="W1")
    """,
    "keras_random_normal_large": """
        from tensorflow import keras
        layer = keras.layers.Dense(64, kernel_initializer=keras.initializers.RandomNormal(stddev=1.0))
    """,
    "keras_standalone_random_normal_large": """
        from keras.initializers import RandomNormal
        from keras.layers import Dense
        layer = Dense(64, kernel_initializer=RandomNormal(mean=0.0, stddev=0.7))
    """,
}

NN103_GOOD = {
    "gpt_small_std": """
        import torch
        import torch.nn as nn
        class GPT(nn.Module):
            def _init_weights(self, module):
                if isinstance(module, nn.Linear):
                    torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                    if module.bias is not None:
                        torch.nn.init.zeros_(module.bias)
                elif isinstance(module, nn.Embedding):
                    torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
    """,
    "dcgan_weights_init": """
        import torch.nn as nn
        def weights_init(m):
            classname = m.__class__.__name__
            if classname.find('Conv') != -1:
                nn.init.normal_(m.weight.data, 0.0, 0.02)
            elif classname.find('BatchNorm') != -1:
                nn.init.normal_(m.weight.data, 1.0, 0.02)
                nn.init.constant_(m.bias.data, 0)
    """,
    "embedding_attribute": """
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.lookup = nn.Embedding(100, 16)
                nn.init.normal_(self.lookup.weight)
    """,
    "embedding_isinstance_branch": """
        import torch.nn as nn
        def init(m):
            if isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight)
    """,
    "embedding_named": """
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.word_emb = nn.Embedding(100, 16)
                nn.init.normal_(self.word_emb.weight, std=1.0)
    """,
    "non_literal_std": """
        import torch.nn as nn
        def init(layer, std):
            nn.init.normal_(layer.weight, std=std)
    """,
    "scaled_randn": """
        import math
        import torch
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self, n_in, n_out):
                super().__init__()
                self.w1 = nn.Parameter(torch.randn(n_in, n_out) * 0.02)
                self.w2 = nn.Parameter(torch.randn(n_in, n_out) / math.sqrt(n_in))
                self.w3 = nn.Parameter(torch.randn(n_in, n_out).mul_(0.02))
    """,
    "vit_tokens_and_positions": """
        import torch
        import torch.nn as nn
        class ViT(nn.Module):
            def __init__(self):
                super().__init__()
                self.cls_token = nn.Parameter(torch.randn(1, 1, 768))
                self.pos_embedding = nn.Parameter(torch.randn(1, 197, 768))
                self.query = nn.Parameter(torch.randn(8, 64))
                self.bias = nn.Parameter(torch.randn(1, 64))
    """,
    "one_dimensional_parameter": """
        import torch
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(torch.randn(64))
    """,
    "reset_parameters_reinitialises": """
        import math
        import torch
        import torch.nn as nn
        class MyLinear(nn.Module):
            def __init__(self, n_in, n_out):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(n_out, n_in))
                self.reset_parameters()
            def reset_parameters(self):
                nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
    """,
    "keras_default_random_normal": """
        import tensorflow as tf
        layer = tf.keras.layers.Dense(64, kernel_initializer=tf.keras.initializers.RandomNormal())
        other = tf.keras.layers.Dense(64, kernel_initializer="random_normal")
    """,
    "tf_small_stddev": """
        import tensorflow as tf
        W = tf.Variable(tf.random.normal([784, 256], stddev=0.01))
        init = tf.random_normal_initializer(stddev=0.02)
    """,
    "tf_embedding_variable": """
        import tensorflow as tf
        embeddings = tf.Variable(tf.random.normal([10000, 128]))
        emb = tf.compat.v1.get_variable("embedding", [10000, 128], initializer=tf.random_normal_initializer())
    """,
    "keras_embedding_initializer": """
        from tensorflow import keras
        emb = keras.layers.Embedding(1000, 64, embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0))
    """,
    "numpy_and_unrelated_normal": """
        import numpy as np
        import torch
        x = torch.randn(32, 784)
        noise = np.random.normal(0, 1, size=(4, 4))
        z = torch.empty(3, 4).normal_()
    """,
}


@pytest.mark.parametrize("name", sorted(NN103_BAD))
def test_nn103_reports(name: str) -> None:
    assert len(lines("NN103", NN103_BAD[name])) == 1


@pytest.mark.parametrize("name", sorted(NN103_GOOD))
def test_nn103_quiet(name: str) -> None:
    assert lines("NN103", NN103_GOOD[name]) == []


def test_nn103_max_std_option() -> None:
    source = """
        import torch.nn as nn
        fc = nn.Linear(2, 2)
        nn.init.normal_(fc.weight, std=0.2)
    """
    assert lines("NN103", source) == []
    assert lines("NN103", source, max_std=0.1) == [4]


# -- NN901 bias-before-batchnorm --------------------------------------------------------------------
NN901_BAD = {
    "sequential_conv_bn": """
        import torch.nn as nn
        net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
    """,
    "explicit_bias_true": """
        from torch import nn
        net = nn.Sequential(nn.Linear(4, 8, bias=True), nn.BatchNorm1d(8))
    """,
    "aliased_imports": """
        from torch.nn import Conv2d as C, BatchNorm2d as BN, Sequential
        net = Sequential(C(3, 8, 3), BN(8))
    """,
    "module_nested_calls": """
        import torch.nn as nn
        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 8, 3)
                self.bn = nn.BatchNorm2d(8)
            def forward(self, x):
                return self.bn(self.conv(x)).relu()
    """,
    "module_through_names_and_reshape": """
        import torch
        import torch.nn as nn
        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(16, 8)
                self.bn = nn.BatchNorm1d(8)
            def forward(self, x):
                out = self.fc(x)
                out = out.view(out.size(0), -1)
                out = self.bn(out)
                return torch.relu(out)
    """,
    "keras_sequential": """
        from tensorflow import keras
        model = keras.Sequential([
            keras.layers.Dense(64, input_shape=(10,)),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu"),
        ])
    """,
    "keras_add": """
        from keras.models import Sequential
        from keras.layers import Conv2D, BatchNormalization
        model = Sequential()
        model.add(Conv2D(32, 3))
        model.add(BatchNormalization())
    """,
}

NN901_GOOD = {
    "resnet_style": """
        import torch.nn as nn
        class BasicBlock(nn.Module):
            def __init__(self, inplanes, planes):
                super().__init__()
                self.conv1 = nn.Conv2d(inplanes, planes, 3, padding=1, bias=False)
                self.bn1 = nn.BatchNorm2d(planes)
                self.relu = nn.ReLU(inplace=True)
            def forward(self, x):
                out = self.conv1(x)
                out = self.bn1(out)
                return self.relu(out)
    """,
    "activation_between": """
        import torch.nn as nn
        import torch.nn.functional as F
        net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.BatchNorm1d(8))
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 8)
                self.bn = nn.BatchNorm1d(8)
            def forward(self, x):
                return self.bn(F.relu(self.fc(x)))
    """,
    "keras_fused_activation": """
        from tensorflow.keras import layers, models
        model = models.Sequential([layers.Dense(64, activation="relu"), layers.BatchNormalization()])
    """,
    "non_literal_bias": """
        import torch.nn as nn
        def block(use_bias):
            return nn.Sequential(nn.Conv2d(3, 8, 3, bias=use_bias), nn.BatchNorm2d(8))
    """,
    "layer_norm_follows": """
        import torch.nn as nn
        net = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8))
    """,
    "batchnorm_before_layer": """
        import torch.nn as nn
        net = nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 8), nn.ReLU())
    """,
    "output_also_used_elsewhere": """
        import torch.nn as nn
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)
                self.bn = nn.BatchNorm1d(4)
                self.out = nn.Linear(4, 2)
            def forward(self, x):
                h = self.fc(x)
                return self.out(self.bn(h) + 1) + self.out(h)
    """,
    "lstm_model": """
        import torch.nn as nn
        class Tagger(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(32, 64, batch_first=True)
                self.fc = nn.Linear(64, 10)
            def forward(self, x):
                out, _ = self.lstm(x)
                return self.fc(out)
    """,
}


@pytest.mark.parametrize("name", sorted(NN901_BAD))
def test_nn901_reports(name: str) -> None:
    assert len(lines("NN901", NN901_BAD[name])) == 1


@pytest.mark.parametrize("name", sorted(NN901_GOOD))
def test_nn901_quiet(name: str) -> None:
    assert lines("NN901", NN901_GOOD[name]) == []


@pytest.mark.parametrize("source, expected", [
    ("import torch.nn as nn\nm = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))\n",
     "nn.Linear(3, 4, bias=False)"),
    ("import torch.nn as nn\nm = nn.Sequential(nn.Linear(3, 4, bias=True), nn.BatchNorm1d(4))\n",
     "nn.Linear(3, 4, bias=False)"),
    ("import torch.nn as nn\nm = nn.Sequential(nn.Linear(3, 4, True), nn.BatchNorm1d(4))\n",
     "nn.Linear(3, 4, False)"),
    ("from tensorflow import keras\nm = keras.Sequential([keras.layers.Dense(4), keras.layers.BatchNormalization()])\n",
     "keras.layers.Dense(4, use_bias=False)"),
])
def test_nn901_fix(source: str, expected: str) -> None:
    from nnlint.fixes import fixed_text

    findings = nnlint.lint_source(source, path="x.py", select=["NN901"])
    assert len(findings) == 1 and findings[0].fix is not None
    assert findings[0].fix.applicability == "unsafe"
    outcome = fixed_text(source, findings, unsafe=True)
    assert outcome is not None and expected in outcome[0]
    assert nnlint.lint_source(outcome[0], path="x.py", select=["NN901"]) == []


# -- NN101 bias-disabled-without-norm -------------------------------------------------------------
NN101_BAD = {
    "sequential_mlp": """
        import torch.nn as nn
        net = nn.Sequential(nn.Linear(4, 8, bias=False), nn.ReLU(), nn.Linear(8, 2))
    """,
    "positional_false": """
        from torch.nn import Linear, ReLU, Sequential
        net = Sequential(Linear(4, 8, False), ReLU(), Linear(8, 2))
    """,
    "conv_without_norm": """
        import torch
        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1 = torch.nn.Conv2d(3, 8, 3, bias=False)
                self.pool = torch.nn.MaxPool2d(2)
                self.conv2 = torch.nn.Conv2d(8, 16, 3)
            def forward(self, x):
                x = self.pool(torch.relu(self.conv1(x)))
                return self.conv2(x)
    """,
    "keras_use_bias_false": """
        import tensorflow as tf
        model = tf.keras.Sequential([
            tf.keras.layers.Dense(64, use_bias=False),
            tf.keras.layers.Activation("relu"),
            tf.keras.layers.Dense(1),
        ])
    """,
}

NN101_GOOD = {
    "conv_then_batchnorm": """
        import torch.nn as nn
        class BasicBlock(nn.Module):
            def __init__(self, inplanes, planes):
                super().__init__()
                self.conv1 = nn.Conv2d(inplanes, planes, 3, padding=1, bias=False)
                self.bn1 = nn.BatchNorm2d(planes)
                self.relu = nn.ReLU(inplace=True)
                self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
                self.bn2 = nn.BatchNorm2d(planes)
            def forward(self, x):
                identity = x
                out = self.conv1(x)
                out = self.bn1(out)
                out = self.relu(out)
                out = self.conv2(out)
                out = self.bn2(out)
                out += identity
                return self.relu(out)
    """,
    "activation_then_norm": """
        import torch.nn as nn
        net = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.ReLU(), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3))
    """,
    "keras_dense_then_bn": """
        from keras import layers, Sequential
        model = Sequential([layers.Dense(64, use_bias=False), layers.BatchNormalization(), layers.Dense(1)])
    """,
    "nanogpt_config_bias": """
        import torch.nn as nn
        class MLP(nn.Module):
            def __init__(self, config):
                super().__init__()
                self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
                self.gelu = nn.GELU()
                self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
            def forward(self, x):
                return self.c_proj(self.gelu(self.c_fc(x)))
    """,
    "llama_style_projections": """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
        class RMSNorm(nn.Module):
            def __init__(self, dim):
                super().__init__()
                self.weight = nn.Parameter(torch.ones(dim))
            def forward(self, x):
                return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight
        class FeedForward(nn.Module):
            def __init__(self, dim, hidden):
                super().__init__()
                self.w1 = nn.Linear(dim, hidden, bias=False)
                self.w2 = nn.Linear(hidden, dim, bias=False)
            def forward(self, x):
                return self.w2(F.silu(self.w1(x)))
    """,
    "last_layer_head": """
        import torch.nn as nn
        net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2, bias=False))
    """,
    "unknown_flow": """
        import torch.nn as nn
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 8, bias=False)
                self.out = nn.Linear(8, 2)
            def forward(self, x):
                h = self.helper(self.fc(x))
                return self.out(h)
    """,
    "functional_batch_norm": """
        import torch.nn as nn
        import torch.nn.functional as F
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 8, bias=False)
                self.out = nn.Linear(8, 2)
            def forward(self, x, rm, rv):
                return self.out(F.batch_norm(self.fc(x), rm, rv))
    """,
}


@pytest.mark.parametrize("name", sorted(NN101_BAD))
def test_nn101_reports(name: str) -> None:
    assert len(lines("NN101", NN101_BAD[name])) == 1


@pytest.mark.parametrize("name", sorted(NN101_GOOD))
def test_nn101_quiet(name: str) -> None:
    assert lines("NN101", NN101_GOOD[name]) == []


# -- NN102 saturating-activation-stack ------------------------------------------------------------
NN102_BAD = {
    "keras_fused_sigmoids": """
        from tensorflow.keras import Sequential
        from tensorflow.keras.layers import Dense
        model = Sequential([
            Dense(64, activation="sigmoid"),
            Dense(64, activation="sigmoid"),
            Dense(64, activation="tanh"),
            Dense(64, activation="sigmoid"),
            Dense(1, activation="sigmoid"),
        ])
    """,
    "module_forward_chain": """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
        class Deep(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(8, 8)
                self.fc2 = nn.Linear(8, 8)
                self.fc3 = nn.Linear(8, 8)
                self.fc4 = nn.Linear(8, 8)
                self.out = nn.Linear(8, 2)
                self.act = nn.Tanh()
            def forward(self, x):
                x = torch.sigmoid(self.fc1(x))
                x = self.act(self.fc2(x))
                x = F.sigmoid(self.fc3(x))
                x = self.fc4(x).tanh()
                return self.out(x)
    """,
}

NN102_GOOD = {
    "three_is_the_limit_and_output_does_not_count": """
        import torch.nn as nn
        model = nn.Sequential(
            nn.Linear(8, 8), nn.Sigmoid(),
            nn.Linear(8, 8), nn.Sigmoid(),
            nn.Linear(8, 8), nn.Sigmoid(),
            nn.Linear(8, 1), nn.Sigmoid(),
        )
    """,
    "normalisation_restarts": """
        import torch.nn as nn
        model = nn.Sequential(
            nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(),
            nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(),
            nn.Linear(8, 2),
        )
    """,
    "relu_network": """
        import torch.nn as nn
        model = nn.Sequential(*[nn.Linear(8, 8), nn.ReLU()] * 6)
        other = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(),
                              nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    """,
    "hand_written_lstm_cell": """
        import torch
        import torch.nn as nn
        class Cell(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.gates = nn.Linear(2 * n, 4 * n)
            def forward(self, x, h, c):
                i, f, g, o = self.gates(torch.cat([x, h], -1)).chunk(4, -1)
                i = torch.sigmoid(i)
                f = torch.sigmoid(f)
                g = torch.tanh(g)
                o = torch.sigmoid(o)
                c = f * c + i * g
                h = o * torch.tanh(c)
                return h, c
    """,
    "lstm_layer": """
        import torch.nn as nn
        class Tagger(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(32, 64, num_layers=4, batch_first=True)
                self.fc = nn.Linear(64, 10)
            def forward(self, x):
                out, _ = self.lstm(x)
                return self.fc(out)
    """,
    "se_block": """
        import torch.nn as nn
        class SE(nn.Module):
            def __init__(self, c):
                super().__init__()
                self.fc = nn.Sequential(nn.Linear(c, c // 4), nn.ReLU(), nn.Linear(c // 4, c), nn.Sigmoid())
            def forward(self, x):
                w = self.fc(x.mean((2, 3)))
                return x * w[:, :, None, None]
    """,
}


@pytest.mark.parametrize("name", sorted(NN102_BAD))
def test_nn102_reports(name: str) -> None:
    assert len(lines("NN102", NN102_BAD[name])) == 1


@pytest.mark.parametrize("name", sorted(NN102_GOOD))
def test_nn102_quiet(name: str) -> None:
    assert lines("NN102", NN102_GOOD[name]) == []


def test_nn102_max_depth_option() -> None:
    source = NN102_GOOD["three_is_the_limit_and_output_does_not_count"]
    assert lines("NN102", source, max_depth=2) == [3]


# -- NN104 init-activation-mismatch ----------------------------------------------------------------
NN104_BAD = {
    "xavier_self_layer_before_relu": """
        import torch.nn as nn
        import torch.nn.functional as F
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(8, 8)
                self.fc2 = nn.Linear(8, 2)
                nn.init.xavier_normal_(self.fc1.weight.data)
            def forward(self, x):
                return self.fc2(F.relu(self.fc1(x)))
    """,
    "kaiming_before_tanh": """
        from torch import nn
        from torch.nn.init import kaiming_normal_
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(8, 8)
                self.act = nn.Tanh()
                self.fc2 = nn.Linear(8, 2)
                kaiming_normal_(self.fc1.weight, nonlinearity="relu")
            def forward(self, x):
                return self.fc2(self.act(self.fc1(x)))
    """,
    "modules_loop_all_relu": """
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(8, 8)
                self.fc2 = nn.Linear(8, 8)
                self.fc3 = nn.Linear(8, 2)
                self.relu = nn.ReLU()
                for m in self.modules():
                    if isinstance(m, nn.Linear):
                        nn.init.xavier_uniform_(m.weight)
            def forward(self, x):
                x = self.relu(self.fc1(x))
                x = self.relu(self.fc2(x))
                return self.fc3(x)
    """,
    "apply_function_on_sequential": """
        import torch.nn as nn
        def init_weights(m):
            if isinstance(m, (nn.Linear,)):
                nn.init.xavier_uniform_(m.weight)
        net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
        net.apply(init_weights)
    """,
    "keras_glorot_with_relu": """
        import tensorflow as tf
        layer = tf.keras.layers.Dense(64, activation=tf.nn.relu, kernel_initializer=tf.keras.initializers.GlorotUniform())
    """,
    "keras_he_then_sigmoid_layer": """
        from keras import Sequential
        from keras.layers import Dense, Activation
        model = Sequential([Dense(64, kernel_initializer="he_uniform"), Activation("sigmoid"), Dense(1)])
    """,
    "tf1_xavier_with_relu_via_variable": """
        import tensorflow as tf
        init = tf.contrib.layers.xavier_initializer()
        def net(X):
            return tf.layers.dense(X, 300, activation=tf.nn.relu, kernel_initializer=init)
    """,
}

NN104_GOOD = {
    "xavier_with_relu_gain": """
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(8, 8)
                self.relu = nn.ReLU()
                nn.init.xavier_uniform_(self.fc1.weight, gain=nn.init.calculate_gain("relu"))
            def forward(self, x):
                return self.relu(self.fc1(x))
    """,
    "xavier_before_tanh_and_kaiming_before_relu": """
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(8, 8)
                self.fc2 = nn.Linear(8, 8)
                self.out = nn.Linear(8, 1)
                nn.init.xavier_uniform_(self.fc1.weight)
                nn.init.kaiming_normal_(self.fc2.weight, mode="fan_out", nonlinearity="relu")
                nn.init.xavier_uniform_(self.out.weight)
            def forward(self, x):
                return self.out(self.fc2(self.fc1(x).tanh()).relu())
    """,
    "library_default_reset_parameters": """
        import math
        import torch
        import torch.nn as nn
        class MyLinear(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 8)
                nn.init.kaiming_uniform_(self.fc.weight, a=math.sqrt(5))
            def forward(self, x):
                return torch.sigmoid(self.fc(x))
    """,
    "batchnorm_between": """
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 8, 3)
                self.bn = nn.BatchNorm2d(8)
                self.relu = nn.ReLU()
                nn.init.xavier_uniform_(self.conv.weight)
            def forward(self, x):
                return self.relu(self.bn(self.conv(x)))
    """,
    "modules_loop_mixed_activations": """
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(8, 8)
                self.fc2 = nn.Linear(8, 8)
                self.fc3 = nn.Linear(8, 2)
                for m in self.modules():
                    if isinstance(m, nn.Linear):
                        nn.init.xavier_uniform_(m.weight)
            def forward(self, x):
                x = self.fc1(x).relu()
                x = self.fc2(x).tanh()
                return self.fc3(x)
    """,
    "transformer_xavier_init": """
        import torch.nn as nn
        class Transformer(nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4), 2)
                self.head = nn.Linear(64, 10)
                for p in self.parameters():
                    if p.dim() > 1:
                        nn.init.xavier_uniform_(p)
            def forward(self, x):
                return self.head(self.encoder(x))
    """,
    "dcgan_weights_init": """
        import torch.nn as nn
        def weights_init(m):
            classname = m.__class__.__name__
            if classname.find('Conv') != -1:
                nn.init.normal_(m.weight.data, 0.0, 0.02)
        netG = nn.Sequential(nn.ConvTranspose2d(100, 64, 4), nn.BatchNorm2d(64), nn.ReLU(True),
                             nn.ConvTranspose2d(64, 3, 4), nn.Tanh())
        netG.apply(weights_init)
    """,
    "keras_matching_and_default": """
        from tensorflow import keras
        model = keras.Sequential([
            keras.layers.Dense(64, activation="relu", kernel_initializer="he_normal"),
            keras.layers.Dense(64, activation="tanh", kernel_initializer="glorot_uniform"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax", kernel_initializer="glorot_uniform"),
        ])
    """,
    "seed_002_he_with_relu": """
        import tensorflow as tf
        he_init = tf.contrib.layers.variance_scaling_initializer()
        hidden1 = tf.layers.dense(X, 300, activation=tf.nn.relu, kernel_initializer=he_init)
    """,
}


@pytest.mark.parametrize("name", sorted(NN104_BAD))
def test_nn104_reports(name: str) -> None:
    assert len(lines("NN104", NN104_BAD[name])) == 1


@pytest.mark.parametrize("name", sorted(NN104_GOOD))
def test_nn104_quiet(name: str) -> None:
    assert lines("NN104", NN104_GOOD[name]) == []


# -- idiomatic code stays quiet under every architecture rule -----------------------------------
ARCHITECTURE_CODES = ["NN101", "NN102", "NN103", "NN104", "NN901"]

IDIOMATIC = {
    "nanogpt": """
        import math
        import torch
        import torch.nn as nn
        from torch.nn import functional as F

        class LayerNorm(nn.Module):
            def __init__(self, ndim, bias):
                super().__init__()
                self.weight = nn.Parameter(torch.ones(ndim))
                self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None
            def forward(self, input):
                return F.layer_norm(input, self.weight.shape, self.weight, self.bias, 1e-5)

        class CausalSelfAttention(nn.Module):
            def __init__(self, config):
                super().__init__()
                self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
                self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
                self.attn_dropout = nn.Dropout(config.dropout)
            def forward(self, x):
                q, k, v = self.c_attn(x).split(64, dim=2)
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                return self.c_proj(y)

        class GPT(nn.Module):
            def __init__(self, config):
                super().__init__()
                self.transformer = nn.ModuleDict(dict(
                    wte=nn.Embedding(config.vocab_size, config.n_embd),
                    wpe=nn.Embedding(config.block_size, config.n_embd),
                    ln_f=LayerNorm(config.n_embd, bias=config.bias),
                ))
                self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
                self.apply(self._init_weights)
                for pn, p in self.named_parameters():
                    if pn.endswith('c_proj.weight'):
                        torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
            def _init_weights(self, module):
                if isinstance(module, nn.Linear):
                    torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                    if module.bias is not None:
                        torch.nn.init.zeros_(module.bias)
                elif isinstance(module, nn.Embedding):
                    torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            def forward(self, idx):
                x = self.transformer.wte(idx)
                x = self.transformer.ln_f(x)
                return self.lm_head(x)
    """,
    "torchvision_resnet": """
        import torch.nn as nn

        def conv3x3(in_planes, out_planes, stride=1):
            return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)

        class BasicBlock(nn.Module):
            expansion = 1
            def __init__(self, inplanes, planes, stride=1, downsample=None):
                super().__init__()
                self.conv1 = conv3x3(inplanes, planes, stride)
                self.bn1 = nn.BatchNorm2d(planes)
                self.relu = nn.ReLU(inplace=True)
                self.conv2 = conv3x3(planes, planes)
                self.bn2 = nn.BatchNorm2d(planes)
                self.downsample = downsample
            def forward(self, x):
                identity = x
                out = self.conv1(x)
                out = self.bn1(out)
                out = self.relu(out)
                out = self.conv2(out)
                out = self.bn2(out)
                if self.downsample is not None:
                    identity = self.downsample(x)
                out += identity
                out = self.relu(out)
                return out

        class ResNet(nn.Module):
            def __init__(self, num_classes=1000):
                super().__init__()
                self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
                self.bn1 = nn.BatchNorm2d(64)
                self.relu = nn.ReLU(inplace=True)
                self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
                self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
                self.fc = nn.Linear(512, num_classes)
                for m in self.modules():
                    if isinstance(m, nn.Conv2d):
                        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                        nn.init.constant_(m.weight, 1)
                        nn.init.constant_(m.bias, 0)
            def forward(self, x):
                x = self.conv1(x)
                x = self.bn1(x)
                x = self.relu(x)
                x = self.maxpool(x)
                x = self.avgpool(x)
                x = torch.flatten(x, 1)
                return self.fc(x)
    """,
    "dcgan": """
        import torch.nn as nn

        def weights_init(m):
            classname = m.__class__.__name__
            if classname.find('Conv') != -1:
                nn.init.normal_(m.weight.data, 0.0, 0.02)
            elif classname.find('BatchNorm') != -1:
                nn.init.normal_(m.weight.data, 1.0, 0.02)
                nn.init.constant_(m.bias.data, 0)

        class Generator(nn.Module):
            def __init__(self, nz=100, ngf=64, nc=3):
                super().__init__()
                self.main = nn.Sequential(
                    nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
                    nn.BatchNorm2d(ngf * 8),
                    nn.ReLU(True),
                    nn.ConvTranspose2d(ngf * 8, nc, 4, 2, 1, bias=False),
                    nn.Tanh(),
                )
            def forward(self, input):
                return self.main(input)

        netG = Generator()
        netG.apply(weights_init)
    """,
    "lstm_classifier": """
        import torch
        import torch.nn as nn

        class LSTMClassifier(nn.Module):
            def __init__(self, vocab, dim, hidden, classes):
                super().__init__()
                self.embedding = nn.Embedding(vocab, dim)
                self.lstm = nn.LSTM(dim, hidden, num_layers=2, batch_first=True, dropout=0.2)
                self.fc = nn.Linear(hidden, classes)
                nn.init.normal_(self.embedding.weight)
                for name, param in self.lstm.named_parameters():
                    if "weight" in name:
                        nn.init.xavier_uniform_(param)
            def forward(self, x):
                out, (h, c) = self.lstm(self.embedding(x))
                return self.fc(torch.tanh(h[-1]))
    """,
    "keras_cnn": """
        from tensorflow import keras
        from tensorflow.keras import layers

        model = keras.Sequential([
            layers.Conv2D(32, 3, use_bias=False, kernel_initializer="he_normal"),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(128, activation="relu", kernel_initializer="he_uniform"),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ])
    """,
}


@pytest.mark.parametrize("name", sorted(IDIOMATIC))
def test_idiomatic_code_is_quiet(name: str) -> None:
    source = textwrap.dedent(IDIOMATIC[name])
    findings = nnlint.lint_source(source, path="x.py", select=ARCHITECTURE_CODES)
    assert findings == []


@pytest.mark.parametrize("source", ["", "class (", "import torch.nn as nn\nnn.Sequential(*layers)\n",
                                    "import torch.nn as nn\nnn.init.normal_()\nnn.Parameter()\n"])
def test_bad_input_does_not_crash(source: str) -> None:
    nnlint.lint_source(source, path="x.py", select=ARCHITECTURE_CODES)
