"""Output-layer rules: NN201 (activation applied by the loss)."""
from __future__ import annotations

from pathlib import Path

import pytest

import nnlint


def lines(source: str, code: str) -> list[int]:
    return [f.line for f in nnlint.lint_source(source, path="x.py", select=[code]) if f.code == code]


def line_of(source: str, text: str) -> int:
    """The line the finding belongs on: where ``text`` (the activation) is."""
    return next(n for n, line in enumerate(source.splitlines(), start=1) if text in line)


NET = '''
{imports}

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        {ret}
'''
TORCH_IMPORTS = [
    "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F",
    "import torch\nfrom torch import nn\nfrom torch.nn import functional as F",
]


@pytest.mark.parametrize("imports", TORCH_IMPORTS)
@pytest.mark.parametrize("ret, loss, fires", [
    ("return F.softmax(x, dim=1)", "nn.CrossEntropyLoss()", True),
    ("return x.softmax(-1)", "nn.CrossEntropyLoss()", True),
    ("return torch.softmax(x, 1)", "nn.CrossEntropyLoss()", True),
    ("return nn.Softmax(dim=1)(x)", "nn.CrossEntropyLoss()", True),
    ("return F.log_softmax(x, dim=1)", "nn.CrossEntropyLoss()", True),
    ("return torch.sigmoid(x)", "nn.BCEWithLogitsLoss()", True),
    ("return x", "nn.CrossEntropyLoss()", False),
    ("return F.log_softmax(x, dim=1)", "nn.NLLLoss()", False),
    ("return torch.sigmoid(x)", "nn.MSELoss()", False),
    ("return x.softmax(-1) if not self.training else x", "nn.CrossEntropyLoss()", False),
])
def test_model_output_to_loss(imports: str, ret: str, loss: str, fires: bool) -> None:
    source = NET.format(imports=imports, ret=ret) + f'''
model = Net()
criterion = {loss}
for x, y in loader:
    out = model(x)
    loss = criterion(out, y)
'''
    # reported where the fix goes: the activation in forward
    assert lines(source, "NN201") == ([line_of(source, ret)] if fires else [])
    related = [f.related for f in nnlint.lint_source(source, path="x.py", select=["NN201"])]
    assert related == ([(nnlint.Related("x.py", len(source.splitlines()), 12, len(source.splitlines()), 29,
                                         f"the {loss.split('.')[-1][:-2]} it feeds"),)] if fires else [])


def test_softmax_only_in_eval_mode_is_quiet() -> None:
    source = NET.format(imports=TORCH_IMPORTS[0], ret="if not self.training:\n            x = F.softmax(x, 1)\n"
                        "        return x") + "model = Net()\nloss = F.cross_entropy(model(x), y)\n"
    assert lines(source, "NN201") == []


def test_sequential_model_and_aliased_loss_class() -> None:
    source = '''
from torch.nn import Sequential, Linear, Softmax, CrossEntropyLoss as CE
model = Sequential(Linear(4, 3), Softmax(dim=1))
loss = CE()(model(x), y)
'''
    assert lines(source, "NN201") == [3]


def test_functional_losses_and_direct_activations() -> None:
    source = '''
import torch
import torch.nn.functional as F
a = F.cross_entropy(F.softmax(logits, dim=-1), y)
b = F.binary_cross_entropy_with_logits(torch.sigmoid(logits), y)
c = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
d = F.nll_loss(F.log_softmax(logits, 1), y)
p = torch.sigmoid(logits)
e = F.binary_cross_entropy_with_logits(p, y)
'''
    assert lines(source, "NN201") == [4, 5, 8]


def test_loss_object_on_self_in_a_trainer() -> None:
    source = NET.format(imports=TORCH_IMPORTS[0], ret="return F.softmax(x, 1)") + '''
class Trainer:
    def __init__(self):
        self.model = Net()
        self.criterion = nn.CrossEntropyLoss()

    def step(self, x, y):
        return self.criterion(self.model(x), y)
'''
    assert lines(source, "NN201") == [line_of(source, "return F.softmax(x, 1)")]


def test_word_language_model_regression() -> None:
    # shape of pytorch/examples before commit 1800513: an RNN language model returning
    # log_softmax trained with CrossEntropyLoss
    source = '''
import torch.nn as nn
import torch.nn.functional as F

class RNNModel(nn.Module):
    def __init__(self, ntoken, nhid):
        super().__init__()
        self.rnn = nn.LSTM(nhid, nhid)
        self.decoder = nn.Linear(nhid, ntoken)

    def forward(self, input, hidden):
        output, hidden = self.rnn(input, hidden)
        decoded = self.decoder(output)
        return F.log_softmax(decoded, dim=1), hidden
'''
    # a tuple return is not traced: the output is unknown and the rule stays quiet
    assert lines(source + "model = RNNModel(10, 4)\nloss = nn.CrossEntropyLoss()(model(x, h), y)\n",
                 "NN201") == []
    single = source.replace("return F.log_softmax(decoded, dim=1), hidden", "return F.log_softmax(decoded, dim=1)")
    fixed = single + "model = RNNModel(10, 4)\ncriterion = nn.NLLLoss()\nloss = criterion(model(x, h), y)\n"
    broken = single + "model = RNNModel(10, 4)\ncriterion = nn.CrossEntropyLoss()\nloss = criterion(model(x, h), y)\n"
    assert lines(fixed, "NN201") == []
    assert lines(broken, "NN201") == [line_of(broken, "return F.log_softmax(decoded, dim=1)")]


def test_nanogpt_style_logits_are_quiet() -> None:
    source = '''
import torch.nn as nn
from torch.nn import functional as F

class GPT(nn.Module):
    def __init__(self, n_embd, vocab_size):
        super().__init__()
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)

    def forward(self, x, targets=None):
        x = self.ln_f(x)
        logits = self.lm_head(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss
'''
    assert lines(source, "NN201") == []


@pytest.mark.parametrize("keras", ["from tensorflow import keras", "import keras", "import tensorflow.keras as keras"])
@pytest.mark.parametrize("activation, loss, fires", [
    ("softmax", "keras.losses.CategoricalCrossentropy(from_logits=True)", True),
    ("softmax", "keras.losses.SparseCategoricalCrossentropy(from_logits=True)", True),
    ("sigmoid", "keras.losses.BinaryCrossentropy(from_logits=True)", True),
    ("softmax", "'categorical_crossentropy'", False),
    ("softmax", "keras.losses.CategoricalCrossentropy()", False),
    ("relu", "keras.losses.CategoricalCrossentropy(from_logits=True)", False),
])
def test_keras_compile(keras: str, activation: str, loss: str, fires: bool) -> None:
    source = f'''{keras}
model = keras.Sequential([keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10, activation="{activation}")])
model.compile(optimizer="adam", loss={loss})
'''
    assert lines(source, "NN201") == ([2] if fires else [])  # the output layer


def test_keras_functional_and_activation_layer() -> None:
    source = '''import tensorflow as tf
inputs = tf.keras.Input(shape=(8,))
x = tf.keras.layers.Dense(10)(inputs)
outputs = tf.keras.layers.Activation("softmax")(x)
model = tf.keras.Model(inputs, outputs)
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
model.compile(loss=loss_fn)
'''
    assert lines(source, "NN201") == [4]


def test_tf_logits_loss_on_softmax() -> None:
    source = '''import tensorflow as tf
loss = tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=tf.nn.softmax(z))
ok = tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=z)
'''
    assert lines(source, "NN201") == [2]


MODEL_FILE = NET.format(imports=TORCH_IMPORTS[0], ret="return F.softmax(x, dim=1)")


@pytest.mark.parametrize("layout, train", [
    ({"model.py": MODEL_FILE}, "from model import Net\nmodel = Net()\n"),
    ({"model.py": MODEL_FILE}, "import model as arch\nnet = arch.Net()\nmodel = net\n"),
    ({"pkg/__init__.py": "", "pkg/model.py": MODEL_FILE}, "from .model import Net\nmodel = Net()\n"),
])
def test_cross_file(tmp_path: Path, layout: dict[str, str], train: str) -> None:
    pytest.importorskip("nnlint.facts.constants")  # FileFacts.summary() needs the constants facts
    for name, text in layout.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    folder = "pkg/" if "pkg/model.py" in layout else ""
    train_source = train + "import torch.nn as nn\ncriterion = nn.CrossEntropyLoss()\nloss = criterion(model(x), y)\n"
    (tmp_path / f"{folder}train.py").write_text(train_source)
    result = nnlint.lint_paths([str(tmp_path)], select=["NN201"], use_cache=False)
    assert result.errors == ()
    # reported at the activation in the model's file, with the loss as a related place
    assert [(Path(f.path).name, f.line) for f in result.findings] == [
        ("model.py", line_of(MODEL_FILE, "return F.softmax(x, dim=1)"))]
    assert [(Path(r.path).name, r.line) for f in result.findings for r in f.related] == [
        ("train.py", len(train_source.splitlines()))]
