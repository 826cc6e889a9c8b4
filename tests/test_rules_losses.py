"""Output-layer/loss rules: NN202 (hidden activation on the output), NN203 (softmax over one
unit), NN204 (BCELoss on a sigmoid output)."""
from __future__ import annotations

from pathlib import Path

import pytest

import nnlint


def lines(source: str, code: str) -> list[int]:
    return [f.line for f in nnlint.lint_source(source, path="x.py", select=[code]) if f.code == code]


def last(source: str) -> list[int]:
    return [len(source.splitlines())]


def line_of(source: str, text: str) -> list[int]:
    """Where the finding belongs: the line of ``text`` (the activation)."""
    return [next(n for n, line in enumerate(source.splitlines(), start=1) if text in line)]


TORCH_IMPORTS = [
    "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F",
    "import torch\nfrom torch import nn\nfrom torch.nn import functional as F",
]
KERAS_IMPORTS = ["from tensorflow import keras", "import keras", "import tensorflow.keras as keras"]

NET = '''
{imports}

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 10)
        self.act = {act}

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        {ret}
'''


# -- NN202 ----------------------------------------------------------------------
@pytest.mark.parametrize("imports", TORCH_IMPORTS)
@pytest.mark.parametrize("act, ret, loss, fires", [
    ("nn.ReLU()", "return self.act(x)", "nn.CrossEntropyLoss()", True),
    ("nn.ReLU(inplace=True)", "return self.act(x)", "nn.MSELoss()", True),
    ("nn.LeakyReLU(0.1)", "return self.act(x)", "nn.BCEWithLogitsLoss()", True),
    ("nn.GELU()", "return self.act(x)", "nn.SmoothL1Loss()", True),
    ("nn.SiLU()", "return self.act(x)", "nn.L1Loss()", True),
    ("nn.ELU()", "return self.act(x)", "nn.NLLLoss()", True),
    ("nn.ReLU6()", "return self.act(x)", "nn.HuberLoss()", True),
    ("None", "return F.relu(x)", "nn.CrossEntropyLoss()", True),
    ("None", "return x.relu()", "nn.CrossEntropyLoss()", True),
    ("None", "return torch.relu(x).view(x.size(0), -1)", "nn.CrossEntropyLoss()", True),
    ("None", "return F.dropout(F.relu(x), 0.5)", "nn.CrossEntropyLoss()", True),
    # quiet
    ("None", "return x", "nn.CrossEntropyLoss()", False),
    ("nn.Softplus()", "return self.act(x)", "nn.MSELoss()", False),
    ("nn.ReLU()", "return self.act(x)", "nn.PoissonNLLLoss(log_input=False)", False),
    ("nn.ReLU()", "return self.act(x)", "MyLoss()", False),
    ("nn.ReLU()", "return self.act(x) if self.training else x", "nn.MSELoss()", False),
    ("nn.Tanh()", "return self.act(x)", "nn.MSELoss()", False),
])
def test_module_output_to_loss(imports: str, act: str, ret: str, loss: str, fires: bool) -> None:
    source = NET.format(imports=imports, act=act, ret=ret) + f'''
model = Net()
criterion = {loss}
for x, y in loader:
    out = model(x)
    loss = criterion(out, y)
'''
    # reported at the activation where forward applies it (the fix removes that call)
    expected = line_of(source, ret)
    assert lines(source, "NN202") == (expected if fires else [])


def test_optional_activation_attribute_is_quiet() -> None:
    source = NET.format(imports=TORCH_IMPORTS[0], act="nn.ReLU() if positive else nn.Identity()",
                        ret="return self.act(x)").replace("self.act", "self.relu")
    source += "model = Net()\nloss = nn.MSELoss()(model(x), y)\n"
    assert lines(source, "NN202") == []
    plain = source.replace("nn.ReLU() if positive else nn.Identity()", "nn.ReLU()")
    assert lines(plain, "NN202") == line_of(plain, "return self.relu(x)")


def test_backbone_ending_in_relu_is_quiet() -> None:
    source = '''
import torch.nn as nn
import torchvision

class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 64, 3)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.conv(x))

class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        x = self.pool(self.encoder(x)).flatten(1)
        return self.head(x)

features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())   # never fed to a loss
head = nn.Linear(8, 10)
backbone = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
model = Classifier()
resnet = torchvision.models.resnet18()
criterion = nn.CrossEntropyLoss()
a = criterion(model(x), y)
b = criterion(head(backbone(x)), y)
c = criterion(resnet(x), y)
emb = features(x)
'''
    assert lines(source, "NN202") == []


def test_nested_sequential_and_shared_block_helper() -> None:
    source = '''
import torch.nn as nn
import torch.nn.functional as F

def mlp(sizes):
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)

model = nn.Sequential(nn.Sequential(nn.Linear(4, 8), nn.ReLU()), nn.Linear(8, 3), nn.ReLU(), nn.Dropout(0.1))
fine = nn.Sequential(nn.Sequential(nn.Linear(4, 8), nn.ReLU()), nn.Linear(8, 3))
mlp_model = mlp([4, 8, 3])
l1 = F.cross_entropy(model(x), y)
l2 = F.cross_entropy(fine(x), y)
l3 = F.cross_entropy(mlp_model(x), y)
'''
    # mlp() adds a ReLU after every Linear, the last one included: its logits pass a ReLU;
    # reported at the activations, where the fix goes
    assert lines(source, "NN202") == [8, 11]


def test_feature_matching_and_distillation_are_quiet() -> None:
    source = '''
import torch
import torch.nn as nn
import torch.nn.functional as F

vgg = nn.Sequential(nn.Conv2d(3, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU())
student = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
teacher = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
mse = nn.MSELoss()
perceptual = mse(vgg(fake), vgg(real))
target = teacher(x).detach()
distill = F.mse_loss(student(x), target)
with torch.no_grad():
    t = F.relu(teacher_logits)
hint = F.l1_loss(F.relu(s), t)
wrong = F.mse_loss(student(x), y.float())
'''
    assert lines(source, "NN202") == line_of(source, "student = nn.Sequential")


def test_activation_right_before_the_loss() -> None:
    source = '''
import torch.nn.functional as F
a = F.cross_entropy(F.relu(logits), y)
b = F.binary_cross_entropy_with_logits(F.leaky_relu(z), y)
c = F.mse_loss(F.softplus(z), y)
d = F.cross_entropy(logits, y)
penalty = F.mse_loss(F.relu(margin - dist), torch.zeros_like(dist))
over = F.l1_loss(F.relu(pred - upper), zeros)
e = F.mse_loss(F.relu(fc(x)), y)
'''
    # a regression loss on a bare relu(...) is a penalty term; on logits a ReLU is always wrong
    assert lines(source, "NN202") == [3, 4]


def test_loss_inside_forward() -> None:
    source = '''
import torch.nn as nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 1)
        self.act = nn.ReLU()

    def forward(self, x, y):
        pred = self.act(self.fc(x))
        return F.mse_loss(pred, y)
'''
    assert lines(source, "NN202") == line_of(source, "pred = self.act(")


def test_loss_in_a_trainer_and_wrapped_model() -> None:
    source = '''
import torch.nn as nn

class Trainer:
    def __init__(self):
        self.model = nn.DataParallel(nn.Sequential(nn.Linear(4, 2), nn.ReLU()).cuda())
        self.criterion = nn.CrossEntropyLoss()

    def step(self, x, y):
        return self.criterion(self.model(x), y)
'''
    assert lines(source, "NN202") == line_of(source, "nn.ReLU()")


@pytest.mark.parametrize("keras", KERAS_IMPORTS)
@pytest.mark.parametrize("activation, loss, fires", [
    ("relu", "'mse'", True),
    ("relu", "'categorical_crossentropy'", True),
    ("relu", "keras.losses.SparseCategoricalCrossentropy(from_logits=True)", True),
    ("swish", "keras.losses.MeanSquaredError()", True),
    ("gelu", "'binary_crossentropy'", True),
    ("relu", "'poisson'", False),
    ("relu", "custom_loss", False),
    ("softplus", "'mse'", False),
    ("linear", "'mse'", False),
    ("sigmoid", "'binary_crossentropy'", False),
    ("softmax", "'categorical_crossentropy'", False),
])
def test_keras_compile(keras: str, activation: str, loss: str, fires: bool) -> None:
    source = f'''{keras}
model = keras.Sequential([keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1, activation="{activation}")])
model.compile(optimizer="adam", loss={loss})
'''
    assert lines(source, "NN202") == ([2] if fires else [])  # the output layer


def test_keras_add_functional_and_layers() -> None:
    source = '''import tensorflow as tf
from tensorflow.keras import layers

seq = tf.keras.Sequential()
seq.add(layers.Dense(32, activation="relu"))
seq.add(layers.Dense(10))
seq.add(layers.ReLU())
seq.compile(loss="categorical_crossentropy")

inputs = tf.keras.Input(shape=(8,))
x = layers.Dense(16, activation="relu")(inputs)
outputs = layers.Dense(1, activation=tf.nn.relu)(x)
model = tf.keras.Model(inputs, outputs)
model.compile(optimizer="adam", loss="mae")

encoder = tf.keras.Sequential([layers.Dense(16, activation="relu"), layers.Dense(4, activation="relu")])
z = encoder(inputs)
head = layers.Dense(1)(z)
regressor = tf.keras.Model(inputs, head)
regressor.compile(loss="mse")
'''
    assert lines(source, "NN202") == [7, 12]  # the ReLU layer, the Dense with activation=relu


def test_keras_subclassed_model() -> None:
    source = '''from tensorflow import keras

class Regressor(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(64, activation="relu")
        self.out = keras.layers.Dense(1, activation="relu")

    def call(self, x):
        return self.out(self.hidden(x))

model = Regressor()
model.compile(optimizer="adam", loss="mse")
'''
    assert lines(source, "NN202") == line_of(source, "self.out = ")


MODEL_202 = NET.format(imports=TORCH_IMPORTS[0], act="nn.ReLU()", ret="return self.act(x)")
MODEL_204 = '''import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid())

    def forward(self, x):
        return self.body(x)
'''


@pytest.mark.parametrize("code, model_file, loss", [
    ("NN202", MODEL_202, "nn.CrossEntropyLoss()"),
    ("NN204", MODEL_204, "nn.BCELoss()"),
])
@pytest.mark.parametrize("layout, train", [
    ("model.py", "from model import Net\nmodel = Net()\n"),
    ("model.py", "import model as arch\nnet = arch.Net()\nmodel = net\n"),
    ("pkg/model.py", "from .model import Net\nmodel = Net()\n"),
])
def test_cross_file(tmp_path: Path, code: str, model_file: str, loss: str, layout: str, train: str) -> None:
    pytest.importorskip("nnlint.facts.constants")
    (tmp_path / layout).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / layout).write_text(model_file)
    if layout.startswith("pkg/"):
        (tmp_path / "pkg" / "__init__.py").write_text("")
    folder = "pkg/" if layout.startswith("pkg/") else ""
    train_source = train + f"import torch.nn as nn\ncriterion = {loss}\nloss = criterion(model(x), y)\n"
    (tmp_path / f"{folder}train.py").write_text(train_source)
    result = nnlint.lint_paths([str(tmp_path)], select=[code], use_cache=False)
    assert result.errors == ()
    loss_place = ("train.py", len(train_source.splitlines()))
    if code == "NN202":  # reported at the activation in the model's file, the loss as a related place
        expected = (Path(layout).name, line_of(model_file, "return self.act(x)")[0])
        assert [(Path(r.path).name, r.line) for f in result.findings for r in f.related] == [loss_place]
    else:
        expected = loss_place
    assert [(Path(f.path).name, f.line) for f in result.findings] == [expected]


def test_cross_file_feature_extractor_is_quiet(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text(MODEL_202)
    (tmp_path / "train.py").write_text(
        "import torch.nn as nn\nfrom model import Net\nnet = Net()\nhead = nn.Linear(10, 2)\n"
        "loss = nn.CrossEntropyLoss()(head(net(x)), y)\n")
    result = nnlint.lint_paths([str(tmp_path)], select=["NN202"], use_cache=False)
    assert result.findings == ()


# -- NN203 ----------------------------------------------------------------------
@pytest.mark.parametrize("keras", KERAS_IMPORTS)
@pytest.mark.parametrize("layer, fires", [
    ('keras.layers.Dense(1, activation="softmax")', True),
    ('keras.layers.Dense(units=1, activation="softmax")', True),
    ("keras.layers.Dense(1, activation=keras.activations.softmax)", True),
    ('keras.layers.Dense(1, activation="log_softmax")', True),
    ('keras.layers.Dense(1, activation="sigmoid")', False),
    ('keras.layers.Dense(2, activation="softmax")', False),
    ('keras.layers.Dense(n, activation="softmax")', False),
    ("keras.layers.Dense(1)", False),
])
def test_keras_fused_softmax(keras: str, layer: str, fires: bool) -> None:
    source = f'''{keras}
model = keras.Sequential([
    keras.layers.Dense(8, activation="relu"),
    {layer},
])
'''
    assert lines(source, "NN203") == ([4] if fires else [])


def test_keras_units_from_a_module_constant_and_tf_callable() -> None:
    source = '''import tensorflow as tf
NUM_CLASSES = 1
OTHER = 3
a = tf.keras.layers.Dense(NUM_CLASSES, activation="softmax")
b = tf.keras.layers.Dense(OTHER, activation="softmax")
c = tf.keras.layers.Dense(1, activation=tf.nn.softmax)
'''
    assert lines(source, "NN203") == [4, 6]


def test_keras_separate_softmax_layers() -> None:
    source = '''from tensorflow import keras
from tensorflow.keras import layers

a = keras.Sequential([layers.Dense(1), layers.Activation("softmax")])
b = keras.Sequential([layers.Dense(1), layers.Dropout(0.2), layers.Softmax()])
c = keras.Sequential([layers.Dense(1), layers.Softmax(axis=1)])
d = keras.Sequential([layers.Dense(1), layers.Activation("sigmoid")])
m = keras.Sequential()
m.add(layers.Dense(1))
m.add(layers.Activation("softmax"))

inputs = keras.Input(shape=(4,))
x = layers.Dense(1)(inputs)
out = layers.Activation("softmax")(x)
ok = layers.Activation("softmax")(layers.Dense(5)(inputs))
p = keras.activations.softmax(layers.Dense(1)(inputs))
'''
    assert lines(source, "NN203") == [4, 5, 10, 14, 16]


@pytest.mark.parametrize("imports", TORCH_IMPORTS)
@pytest.mark.parametrize("seq, fires", [
    ("nn.Linear(8, 1), nn.Softmax(dim=-1)", True),
    ("nn.Linear(8, 1), nn.Dropout(0.5), nn.LogSoftmax(dim=-1)", True),
    ("nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 1), nn.Softmax(dim=1)", True),
    ("nn.Flatten(), nn.Linear(784, 16), nn.BatchNorm1d(16), nn.Linear(16, 1), nn.Softmax(1)", True),
    # quiet: the normalised axis may not be the one-unit axis
    ("nn.Linear(8, 1), nn.Softmax(dim=1)", False),
    ("nn.Linear(8, 1), nn.Softmax()", False),
    ("nn.Flatten(2), nn.Linear(8, 1), nn.Softmax(dim=1)", False),
    ("nn.Flatten(), nn.Linear(8, 1), nn.Unflatten(1, (1, 1)), nn.Softmax(dim=1)", False),
    ("nn.Flatten(), nn.Conv1d(1, 1, 3), nn.Linear(8, 1), nn.Softmax(dim=1)", False),
    ("nn.Linear(8, 2), nn.Softmax(dim=-1)", False),
    ("nn.Linear(8, 1), nn.Sigmoid()", False),
    ("nn.Linear(8, 1), nn.Softmax2d()", False),
])
def test_torch_sequential(imports: str, seq: str, fires: bool) -> None:
    source = f"{imports}\nmodel = nn.Sequential(\n    {seq},\n)\n"
    assert lines(source, "NN203") == ([5] if fires else [])


ATTENTION = '''
import torch
import torch.nn as nn
import torch.nn.functional as F

class Pool(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.score = nn.Linear(dim, 1)
        self.drop = nn.Dropout(0.1)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, h):
        {body}
'''


@pytest.mark.parametrize("body, fires", [
    ("return F.softmax(self.score(h), dim=-1)", True),
    ("return torch.softmax(self.score(h), -1)", True),
    ("return self.score(h).softmax(-1)", True),
    ("return self.score(h).softmax(dim=-1)", True),
    ("return self.softmax(self.score(h))", True),
    ("return F.log_softmax(self.drop(self.score(h)), dim=-1)", True),
    ("s = self.score(h)\n        return F.softmax(s, dim=-1)", True),
    # attention pooling over the time axis, or after a reshape: correct
    ("return F.softmax(self.score(h), dim=1)", False),
    ("return F.softmax(self.score(h).squeeze(-1), dim=-1)", False),
    ("return F.softmax(self.score(h).transpose(1, 2), dim=-1)", False),
    ("return F.softmax(self.score(h))", False),
    ("return torch.sigmoid(self.score(h))", False),
    ("return F.softmax(h, dim=-1)", False),
])
def test_torch_module_forward(body: str, fires: bool) -> None:
    source = ATTENTION.format(body=body)
    assert lines(source, "NN203") == (last(source) if fires else [])


def test_layer_chosen_in_a_branch_is_quiet() -> None:
    source = ATTENTION.format(body="return F.softmax(self.score(h), dim=-1)").replace(
        "self.score = nn.Linear(dim, 1)",
        "if dim > 4:\n            self.score = nn.Linear(dim, 3)\n        else:\n            self.score = nn.Linear(dim, 1)")
    assert "else:" in source
    assert lines(source, "NN203") == []


def test_keras_add_in_branches_and_positional_activation() -> None:
    source = """from tensorflow import keras
m = keras.Sequential()
m.add(keras.layers.Dense(8, "relu"))
if n_classes == 1:
    m.add(keras.layers.Dense(1))
else:
    m.add(keras.layers.Dense(n_classes))
    m.add(keras.layers.Activation("softmax"))
out = keras.layers.Dense(1, "softmax")
"""
    assert lines(source, "NN203") == [9]


def test_softmax_of_unknown_or_wide_layers_is_quiet() -> None:
    source = '''
import torch.nn as nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.out = nn.Linear(16, n)
        self.gate = make_gate()

    def forward(self, x):
        a = F.softmax(self.out(x), dim=-1)
        b = F.softmax(self.gate(x), dim=-1)
        return a, b

def head(x, fc):
    return F.softmax(fc(x), dim=-1)
'''
    assert lines(source, "NN203") == []


# -- NN204 ----------------------------------------------------------------------
@pytest.mark.parametrize("imports", TORCH_IMPORTS)
@pytest.mark.parametrize("act, ret, loss, fires", [
    ("nn.Sigmoid()", "return self.act(x)", "nn.BCELoss()", True),
    ("None", "return torch.sigmoid(x)", "nn.BCELoss()", True),
    ("None", "return x.sigmoid().view(-1)", "nn.BCELoss(reduction='sum')", True),
    ("None", "return F.sigmoid(x)", "nn.BCELoss()", True),
    # quiet
    ("None", "return x", "nn.BCELoss()", False),
    ("None", "return x", "nn.BCEWithLogitsLoss()", False),
    ("nn.Sigmoid()", "return self.act(x)", "nn.MSELoss()", False),
    ("nn.Sigmoid()", "return self.act(x)", "nn.L1Loss()", False),
    ("None", "return torch.sigmoid(x).clamp(1e-6, 1 - 1e-6)", "nn.BCELoss()", False),
    ("None", "return torch.sigmoid(x) * self.mask", "nn.BCELoss()", False),
])
def test_bce_on_model_output(imports: str, act: str, ret: str, loss: str, fires: bool) -> None:
    source = NET.format(imports=imports, act=act, ret=ret) + f'''
model = Net()
criterion = {loss}
for x, y in loader:
    loss = criterion(model(x), y)
'''
    assert lines(source, "NN204") == (last(source) if fires else [])


def test_bce_functional_spellings() -> None:
    source = '''
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn import BCELoss as B
a = F.binary_cross_entropy(torch.sigmoid(z), y)
b = F.binary_cross_entropy(z.sigmoid(), y, weight=w)
p = torch.special.expit(z)
c = F.binary_cross_entropy(p, y)
d = B()(nn.Sigmoid()(z), y)
e = F.binary_cross_entropy_with_logits(z, y)
f = F.binary_cross_entropy(probs, y)
g = F.binary_cross_entropy((torch.sigmoid(a) + torch.sigmoid(b)) / 2, y)
h = F.binary_cross_entropy(F.softmax(z, 1)[:, 1], y)
'''
    assert lines(source, "NN204") == [6, 7, 9, 10]


def test_gan_discriminators() -> None:
    source = '''
import torch.nn as nn

class D(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(3, 64, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
                                  nn.Conv2d(64, 1, 4, 1, 0), nn.Sigmoid())

    def forward(self, x):
        return self.main(x).view(-1, 1).squeeze(1)

class DLogits(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(3, 64, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(64, 1, 4, 1, 0))

    def forward(self, x):
        return self.main(x).view(-1)

netD = D()
netD2 = DLogits()
bce = nn.BCELoss()
bce_logits = nn.BCEWithLogitsLoss()
errD = bce(netD(real), label)
errD2 = bce_logits(netD2(real), label)
'''
    assert lines(source, "NN204") == [25]
    assert lines(source, "NN202") == []


def test_gan_loop_reusing_one_output_variable() -> None:
    # pytorch/examples dcgan: the discriminator's forward picks data_parallel or a plain call,
    # and the loop rebinds `output` before every loss
    source = '''
import torch.nn as nn

class D(nn.Module):
    def __init__(self, ngpu):
        super().__init__()
        self.ngpu = ngpu
        self.main = nn.Sequential(nn.Conv2d(3, 1, 4, 1, 0), nn.Sigmoid())

    def forward(self, input):
        if input.is_cuda and self.ngpu > 1:
            output = nn.parallel.data_parallel(self.main, input, range(self.ngpu))
        else:
            output = self.main(input)
        return output.view(-1, 1).squeeze(1)

netD = D(1)
criterion = nn.BCELoss()
for real, fake in loader:
    output = netD(real)
    errD_real = criterion(output, ones)
    output = netD(fake.detach())
    errD_fake = criterion(output, zeros)
'''
    assert lines(source, "NN204") == [21, 23]


def test_model_and_prediction_reaching_the_loss_as_parameters() -> None:
    # pytorch/examples siamese_network: the model is a parameter of train(); a loss helper
    # receives the prediction as a parameter
    source = '''
import torch
import torch.nn as nn
import torch.nn.functional as F

class Siamese(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, a, b):
        return self.sigmoid(self.fc(a - b))

def train(model, loader):
    criterion = nn.BCELoss()
    for a, b, y in loader:
        loss = criterion(model(a, b).squeeze(), y)

def bce(pred, target):
    return F.binary_cross_entropy(pred, target)

def main():
    model = Siamese().to("cuda")
    train(model, loader)
    bce(torch.sigmoid(logits), target)
    bce(probabilities, target)
'''
    assert lines(source, "NN204") == [18]
    assert lines(source.replace("    bce(probabilities, target)\n", ""), "NN204") == [18, 21]


AUXILIARY_GAN = '''
import torch
import torch.nn as nn
import torch.nn.functional as F

class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(784, 128), nn.LeakyReLU(0.2))
        self.adv_layer = nn.Sequential(nn.Linear(128, 1), nn.Sigmoid())
        self.aux_layer = nn.Sequential(nn.Linear(128, 10), nn.Softmax())

    def forward(self, img):
        out = self.body(img.view(img.shape[0], -1))
        return self.adv_layer(out), self.aux_layer(out)

class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(784, 20)
        self.dec = nn.Linear(20, 784)

    def decode(self, z):
        return torch.sigmoid(self.dec(z))

    def forward(self, x):
        mu = self.enc(x)
        return self.decode(mu), mu

def vae_loss(recon_x, x, mu):
    return F.binary_cross_entropy(recon_x, x, reduction="sum") + mu.pow(2).sum()

discriminator = Discriminator()
adversarial_loss = nn.BCELoss()
auxiliary_loss = nn.CrossEntropyLoss()
model = VAE()
for imgs, labels in loader:
    real_pred, real_aux = discriminator(imgs)
    d_loss = adversarial_loss(real_pred, valid) + auxiliary_loss(real_aux, labels)
    recon, mu = model(imgs)
    loss = vae_loss(recon, imgs, mu)
'''


def test_elements_of_a_tuple_output_reach_their_losses() -> None:
    # PyTorch-GAN acgan/sgan: sigmoid validity and softmax class head returned together;
    # pytorch/examples vae: the reconstruction is element 0 and the loss helper's parameter
    assert lines(AUXILIARY_GAN, "NN204") == [31, 39]
    assert lines(AUXILIARY_GAN, "NN201") == [11]  # the nn.Softmax() of the class head
    # a logits head on the class output is fine
    assert lines(AUXILIARY_GAN.replace(", nn.Softmax())", ")"), "NN201") == []


def test_keras_sigmoid_with_binary_crossentropy_is_quiet() -> None:
    source = '''from tensorflow import keras
model = keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="adam", loss="binary_crossentropy")
other = keras.Sequential([keras.layers.Dense(1, activation="sigmoid")])
other.compile(loss=keras.losses.BinaryCrossentropy())
loss = keras.losses.binary_crossentropy(y, keras.activations.sigmoid(z))
'''
    assert lines(source, "NN204") == []


def test_bce_fix() -> None:
    from nnlint.fixes import fixed_text

    source = '''import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.functional import binary_cross_entropy
a = F.binary_cross_entropy(torch.sigmoid(logits), y, reduction="sum")
b = F.binary_cross_entropy(out.sigmoid(), y)
c = binary_cross_entropy(torch.sigmoid(z), y)
p = torch.sigmoid(z)
d = F.binary_cross_entropy(p, y)
e = nn.BCELoss()(torch.sigmoid(z), y)
'''
    findings = nnlint.lint_source(source, path="x.py", select=["NN204"])
    assert [f.line for f in findings] == [5, 6, 7, 9, 10]
    assert [f.line for f in findings if f.fix is not None] == [5, 6]
    assert all(f.fix.applicability == "unsafe" for f in findings if f.fix is not None)
    assert fixed_text(source, findings, unsafe=False) is None
    outcome = fixed_text(source, findings, unsafe=True)
    assert outcome is not None
    fixed, _ = outcome
    assert 'a = F.binary_cross_entropy_with_logits(logits, y, reduction="sum")' in fixed
    assert "b = F.binary_cross_entropy_with_logits(out, y)" in fixed
    assert "c = binary_cross_entropy(torch.sigmoid(z), y)" in fixed
    assert [f.line for f in nnlint.lint_source(fixed, path="x.py", select=["NN204"])] == [7, 9, 10]


def test_bce_inside_forward_and_optional_sigmoid() -> None:
    source = '''
import torch.nn as nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self, probs):
        super().__init__()
        self.fc = nn.Linear(8, 1)
        self.sigmoid = nn.Sigmoid()
        self.squash = nn.Sigmoid() if probs else nn.Identity()

    def forward(self, x, y):
        a = F.binary_cross_entropy(self.sigmoid(self.fc(x)), y)
        b = F.binary_cross_entropy(self.squash(self.fc(x)), y)
        return a + b
'''
    assert lines(source, "NN204") == [13]
