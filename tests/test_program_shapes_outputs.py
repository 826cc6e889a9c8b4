"""Where a model's output layer is, in the shapes real models take: a module built and called
inline, a Sequential subclass, a default constructor argument, heads applied in a loop, a
library MLP's last width. A line ending in ``# NN201`` must get exactly that finding; no other
finding of the selected codes may appear (the helpers are those of ``test_program_shapes``)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import nnlint
from test_program_shapes import _expected

CASES: dict[str, dict[str, str]] = {
    # nn.LogSoftmax(dim=1)(x) built and called inline; the model goes to a library estimator whose
    # loss, left out, is CrossEntropyLoss; the net is one of two models chosen by a flag
    "inline-module-into-estimator-default-loss": {
        "backbones.py": '''
import torch
from torch import nn

class ConvNet(nn.Module):
    def __init__(self, n_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8, n_classes)

    def forward(self, x):
        x = torch.flatten(torch.relu(self.conv(x)).mean((2, 3)), 1)
        logits = nn.LogSoftmax(dim=1)(self.fc(x))  # NN201
        return logits

class MLP(nn.Module):
    def __init__(self, n_in, n_classes):
        super().__init__()
        self.fc = nn.Linear(n_in, n_classes)

    def forward(self, x):
        return nn.LogSoftmax(dim=1)(self.fc(x))  # NN201
''',
        "solver.py": '''
from torch.optim import AdamW
from skada.deep import DeepCoral
from backbones import ConvNet, MLP

def get_estimator(name, n_classes):
    if name == "images":
        model = ConvNet(n_classes=n_classes)
    else:
        model = MLP(16, n_classes=n_classes).double()
    return DeepCoral(model, optimizer=AdamW, layer_name="fc", max_epochs=1)
''',
    },
    # the same inline module, right: its log-probabilities go to NLLLoss (also as the estimator's loss)
    "inline-module-with-nll-loss": {
        "net.py": '''
import torch.nn as nn
from skada.deep import DeepCoral

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        return nn.LogSoftmax(dim=1)(self.fc(x))

model = Net()
criterion = nn.NLLLoss()

def step(x, y):
    return criterion(model(x), y)

estimator = DeepCoral(Net(), layer_name="fc", base_criterion=nn.NLLLoss())
''',
    },
    # an nn.Sequential subclass hands its modules to super().__init__: the last one is the output
    "sequential-subclass-output": {
        "heads.py": '''
import torch.nn as nn

class BinaryOutput(nn.Sequential):
    def __init__(self):
        super().__init__(
            nn.LazyLinear(1),
            nn.Sigmoid(),  # NN201
        )

class Scorer(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(16, 32)
        self.head = BinaryOutput()
        self.loss = nn.BCEWithLogitsLoss()

    def forward(self, x):
        return self.head(self.body(x))

    def training_step(self, x, y):
        return self.loss(self(x), y)
''',
    },
    # right: the Sequential subclass ending in a sigmoid is trained with BCELoss (probabilities)
    "sequential-subclass-with-bce": {
        "__select__": "NN201,NN202,NN203",
        "heads.py": '''
import torch.nn as nn

class BinaryOutput(nn.Sequential):
    def __init__(self, width):
        super().__init__(nn.Linear(width, 1), nn.Sigmoid())

head = BinaryOutput(8)
criterion = nn.BCELoss()

def step(x, y):
    return criterion(head(x), y)
''',
    },
    # a default constructor argument is the output activation, placed by a helper that __init__
    # calls; the loss is the other default; the one caller leaves both to their defaults
    "default-activation-argument": {
        "dnn.py": '''
import torch.nn as nn

class DenseNet(nn.Module):
    def __init__(self, n_classes, activation=nn.ReLU(), pred_activation=nn.Softmax(dim=1),  # NN201
                 criter_spec=nn.CrossEntropyLoss()):
        super().__init__()
        self.criterion = criter_spec
        self._create_network(n_classes, activation, pred_activation=pred_activation)

    def _create_network(self, n_classes, activation, pred_activation):
        self.network = nn.Sequential(nn.Linear(10, 20), activation)
        self.network_tail = nn.Sequential(nn.Linear(20, n_classes), pred_activation)

    def forward(self, x):
        return self.network_tail(self.network(x))

    def fit(self, loader, optimizer):
        for x, y in loader:
            optimizer.zero_grad()
            loss = self.criterion(self(x), y)
            loss.backward()
            optimizer.step()

net = DenseNet(3)
''',
    },
    # right: every caller replaces the default activation with nn.Identity()
    "default-activation-overridden": {
        "dnn.py": '''
import torch.nn as nn

class DenseNet(nn.Module):
    def __init__(self, n_classes, pred_activation=nn.Softmax(dim=1), criter_spec=nn.CrossEntropyLoss()):
        super().__init__()
        self.criterion = criter_spec
        self._create_network(n_classes, pred_activation)

    def _create_network(self, n_classes, pred_activation):
        self.network_tail = nn.Sequential(nn.Linear(20, n_classes), pred_activation)

    def forward(self, x):
        return self.network_tail(x)

    def fit(self, loader):
        for x, y in loader:
            self.criterion(self(x), y).backward()

net = DenseNet(3, pred_activation=nn.Identity())
other = DenseNet(5, nn.Identity())
''',
    },
    # one softmax per head, in a loop over the model's heads: appended to a list, or concatenated
    # onto an empty tensor; each is read back by a loss that applies softmax itself
    "heads-in-a-loop": {
        "heads.py": '''
import torch
import torch.nn as nn
import torch.nn.functional as F

class ListHeads(nn.Module):
    def __init__(self, n_heads):
        super().__init__()
        self.body = nn.Linear(16, 32)
        self.heads = nn.ModuleList([nn.Linear(32, 4) for _ in range(n_heads)])

    def forward(self, x):
        h = torch.relu(self.body(x))
        outs = []
        for head in self.heads:
            outs.append(F.softmax(head(h), dim=1))  # NN201
        return outs

class CatHeads(nn.Module):
    def __init__(self, n_heads):
        super().__init__()
        self.body = nn.Linear(16, 32)
        self.state_heads = nn.ModuleList([nn.Linear(32, 8) for _ in range(n_heads)])

    def forward(self, x):
        b = x.size(0)
        h = torch.relu(self.body(x))
        preds = torch.tensor([])
        for _, state_head in enumerate(self.state_heads):
            pred = state_head(h).view(b, 2, 4)
            pred = F.softmax(pred, dim=1)  # NN201
            preds = torch.cat((preds, pred.unsqueeze(-1)), dim=-1)
        return preds, h

criterion = nn.CrossEntropyLoss()

def train_lists(model: ListHeads, x, ys):
    loss = 0
    for out, y in zip(model(x), ys):
        loss = loss + criterion(out, y)
    return loss

list_model = ListHeads(3)
cat_model = CatHeads(3)

def step(x, ys, targets):
    total = train_lists(list_model, x, ys)
    preds, _ = cat_model(x)
    return total + criterion(preds, targets) + criterion(torch.stack(list_model(x)).mean(0), ys[0])
''',
    },
    # right: the loop's softmax outputs are only sampled from; the loss gets the logits
    "heads-in-a-loop-sampled": {
        "heads.py": '''
import torch
import torch.nn as nn
import torch.nn.functional as F

class Policy(nn.Module):
    def __init__(self, n_heads):
        super().__init__()
        self.body = nn.Linear(16, 32)
        self.heads = nn.ModuleList([nn.Linear(32, 4) for _ in range(n_heads)])

    def forward(self, x):
        h = torch.relu(self.body(x))
        logits = []
        for head in self.heads:
            logits.append(head(h))
        return logits

    def act(self, x):
        probs = []
        for logit in self.forward(x):
            probs.append(F.softmax(logit, dim=-1))
        return [torch.multinomial(p, 1) for p in probs]

policy = Policy(2)
criterion = nn.CrossEntropyLoss()

def step(x, ys):
    actions = policy.act(x)
    loss = sum(criterion(logit, y) for logit, y in zip(policy(x), ys))
    return loss, actions
''',
    },
    # NN203: the one unit is a library MLP's last width; the Sequential is the model's prediction
    # (an attention Sequential over the rows, normalising dim=1 of its score, is not)
    "library-mlp-one-unit-softmax": {
        "__select__": "NN203",
        "deepdds.py": '''
import torch
from torch import nn
from torchdrug.layers import MLP

class DeepDDS(nn.Module):
    def __init__(self, context_size, hidden_dims):
        super().__init__()
        self.cell_mlp = nn.Linear(context_size, 64)
        self.attention = nn.Sequential(nn.Linear(64, 1), nn.Softmax(dim=1))
        self.final = nn.Sequential(
            MLP(input_dim=128, hidden_dims=[*hidden_dims, 1], dropout=0.5),
            nn.Softmax(dim=1),  # NN203
        )

    def forward(self, context, left, right):
        features = self.cell_mlp(context) * self.attention(self.cell_mlp(context))
        joined = torch.cat([features, left, right], dim=1)
        return self.final(joined)

class Binary(nn.Module):
    def __init__(self):
        super().__init__()
        self.final = nn.Sequential(MLP(64, [32, 2]), nn.Softmax(dim=1))

    def forward(self, x):
        return self.final(x)
''',
    },
    # a model assembled from classes of other files: its output is its decoder's, and another
    # file trains the decoder alone through the model it holds (``model.decoder(x)``)
    "submodule-of-other-file-model": {
        "decoder.py": '''
import torch.nn as nn

class Decoder(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.out = nn.Linear(32, vocab)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        return self.softmax(self.out(x))  # NN201
''',
        "model.py": '''
import torch.nn as nn
from decoder import Decoder

class Seq2Seq(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.encoder = nn.Linear(32, 32)
        self.decoder = Decoder(vocab)

    def forward(self, x):
        return self.decoder(self.encoder(x))
''',
        "train.py": '''
import torch.nn as nn
from model import Seq2Seq

def train(model, criterion, batches):
    for x, y in batches:
        out = model.decoder(x)
        loss = criterion(out[:, :-1].permute(0, 2, 1), y)
        loss.backward()

def main(batches):
    train(Seq2Seq(100), nn.CrossEntropyLoss(), batches)
''',
        "whole.py": '''
import torch.nn as nn
from model import Seq2Seq

net = Seq2Seq(100)
criterion = nn.CrossEntropyLoss()
for x, y in batches:
    criterion(net(x).view(-1, 100), y).backward()
''',
    },
    # the same assembly returning logits: nothing to report, through the model or its decoder
    "submodule-of-other-file-model-logits": {
        "decoder.py": '''
import torch.nn as nn

class Decoder(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.out = nn.Linear(32, vocab)

    def forward(self, x):
        return self.out(x)
''',
        "model.py": '''
import torch.nn as nn
from decoder import Decoder

class Seq2Seq(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.encoder = nn.Linear(32, 32)
        self.decoder = Decoder(vocab)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        return self.decoder(self.encoder(x))

    def predict(self, x):
        return self.softmax(self.forward(x))
''',
        "train.py": '''
import torch.nn as nn
from model import Seq2Seq

net = Seq2Seq(100)
criterion = nn.CrossEntropyLoss()
for x, y in batches:
    criterion(net(x), y).backward()
    criterion(net.decoder(x), y).backward()
''',
    },
    # an activation module held in a local variable, and a dtype/device move between the output
    # and the loss
    "activation-module-in-a-variable": {
        "losses.py": '''
import torch
import torch.nn as nn
import torch.nn.functional as F

def loss_calc(pred, label):
    m = nn.LogSoftmax(dim=1)
    pred = m(pred)  # NN201
    return F.cross_entropy(pred, label)

def loss_nll(pred, label):
    m = nn.LogSoftmax(dim=1)
    return F.nll_loss(m(pred), label)

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return torch.sigmoid(self.fc(x))  # NN201

net = Net()
criterion = nn.BCEWithLogitsLoss()
for x, y in loader:
    criterion(net(x).type(torch.cuda.FloatTensor), y).backward()
''',
    },
    # a model returning a dict of heads (and one returning a tuple): the head a loss reads
    "dict-of-heads": {
        "seg.py": '''
import torch
import torch.nn as nn

class SegNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Conv2d(3, 8, 3)
        self.seg = nn.Conv2d(8, 4, 1)
        self.box = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        h = torch.relu(self.body(x))
        out = {"seg": torch.sigmoid(self.seg(h)), "box": self.box(h)}  # NN201
        return out

class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        logits = self.fc(x)
        return logits, torch.softmax(logits, dim=1)

net, heads = SegNet(), TwoHeads()
bce, l1, ce = nn.BCEWithLogitsLoss(), nn.SmoothL1Loss(), nn.CrossEntropyLoss()
for x, y, b, v in loader:
    out = net(x)
    pair = heads(v)
    loss = bce(out["seg"], y) + l1(out["box"], b) + ce(pair[0], y)
    keys = [k for k in out]
    loss.backward()
''',
    },
    # scripts in a folder that is also a package (an ``__init__.py`` at the repository root): a
    # script's ``from model import Net`` is the file next to it
    "sibling-import-in-a-package-folder": {
        "__init__.py": "",
        "model.py": '''
import torch.nn as nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return F.softmax(self.fc(x), dim=1)  # NN201
''',
        "train.py": '''
import torch.nn as nn
from model import Net

net = Net()
criterion = nn.CrossEntropyLoss()
for x, y in loader:
    criterion(net(x), y).backward()
''',
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_output_shape(case: str, tmp_path: Path) -> None:
    files = dict(CASES[case])
    select = files.pop("__select__", "NN201,NN203")
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    result = nnlint.lint_paths([str(tmp_path)], select=select.split(","), use_cache=False, jobs=1)
    assert not result.errors
    got = {(Path(f.path).relative_to(tmp_path).as_posix(), f.line, f.code) for f in result.findings}
    assert got == _expected(files)


def test_a_part_of_a_model_alone_gets_the_whole_project_answer(tmp_path: Path) -> None:
    # pre-commit passes only the changed file: the loss that reports its activation is two imports
    # away (``train.py`` -> ``model.py`` -> ``decoder.py``)
    files = dict(CASES["submodule-of-other-file-model"])
    (tmp_path / "pyproject.toml").write_text("[tool.nnlint]\n")
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    settings = nnlint.engine.discover_settings([str(tmp_path)])
    alone = nnlint.lint_paths([str(tmp_path / "decoder.py")], settings, select=["NN201"], use_cache=False, jobs=1)
    whole = nnlint.lint_paths([str(tmp_path)], settings, select=["NN201"], use_cache=False, jobs=1)
    assert {(f.path, f.line) for f in alone.findings} == {(f.path, f.line) for f in whole.findings}
    assert {(Path(f.path).name, f.line, f.code) for f in alone.findings} == _expected({"decoder.py": files["decoder.py"]})
