"""Evaluation of a model whose class nnlint cannot see (a parameter, a library model, a module
assembled from a registry): each case is a small project written for this suite in the shape of a
real missing-``eval()`` bug, together with the correct code next to it that must stay quiet. A
line ending in ``# NN307`` must get exactly that finding; no other NN307 may appear."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import nnlint
from test_program_shapes import _expected

#: a classifier whose layers come from a registry: nnlint cannot tell whether it has dropout
REGISTRY_MODEL = '''
import torch
import torch.nn as nn
from registry import build_layers


class ClassifierBase(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layers = build_layers(config)

    def forward(self, x):
        return self.layers(x)

    def predict_batch(self, x):
        with torch.no_grad():
            return self(x).softmax(-1)  # NN307

    def predict(self, x):
        return self.predict_batch(x).argmax(-1)
'''

CASES: dict[str, dict[str, str]] = {
    # a library function named for evaluation runs a model parameter that the same file trains;
    # nothing in the project calls it, so its users must know to call eval() first
    "entry-point-parameter": {
        "lib.py": '''
import torch


def train_model(loader, model, criterion, optimizer):
    model.train()
    for inputs, targets in loader:
        optimizer.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        optimizer.step()
    return model


def dnn_test_model(loader, model):
    correct = 0
    for inputs, targets in loader:
        outputs = model(inputs)  # NN307
        correct += (outputs.argmax(1) == targets).sum().item()
    return correct


def validate_model(loader, net):
    net.eval()
    with torch.no_grad():
        return [net(inputs) for inputs, _ in loader]
''',
    },
    # the way here runs through a helper called only by an uncalled function; a helper whose one
    # caller switches to eval mode first stays quiet, and so does a parameter that is only moved to
    # a device (no sign in the file that anyone trains it)
    "entry-point-through-a-helper": {
        "infer.py": '''
import torch


def fit(model, batches, optimizer):
    model.train()
    for x, y in batches:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()


def _predict_batches(model, batches):
    with torch.no_grad():
        return [model(x) for x, _ in batches]  # NN307


def predict(model, batches):
    return _predict_batches(model, batches)


def predict_all(net, batches):
    with torch.no_grad():
        return [net(x) for x, _ in batches]


def evaluate(net, batches):
    net.eval()
    return predict_all(net, batches)


def run_inference(encoder, batches, device):
    encoder = encoder.to(device)
    with torch.no_grad():
        return [encoder(x.to(device)) for x, _ in batches]
''',
    },
    # a caller in another file that passes a model nnlint can name is followed (it switches the
    # model to eval mode before calling predict); evaluate, which nothing calls, is an entry point
    "entry-point-called-from-another-file": {
        "helpers.py": '''
import torch


def fit(model, loader, optimizer):
    model.train()
    for x, y in loader:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


def predict(model, loader):
    with torch.no_grad():
        return [model(x) for x, _ in loader]


def evaluate(model, loader):
    with torch.no_grad():
        return [model(x) for x, _ in loader]  # NN307
''',
        "main.py": '''
import torch
from torchvision.models import resnet18
from helpers import fit, predict

model = resnet18()
fit(model, train_loader, torch.optim.SGD(model.parameters(), lr=0.1))
model.eval()
predictions = predict(model, test_loader)
''',
    },
    # self of an nn.Module subclass whose layers nnlint cannot see, in a predict method nothing calls
    # but its sibling; the same method with self.eval() first, and a Lightning validation_step, are fine
    "module-predict-method": {
        "model.py": REGISTRY_MODEL,
        "safe_model.py": REGISTRY_MODEL.replace(
            "with torch.no_grad():\n            return self(x).softmax(-1)  # NN307",
            "self.eval()\n        with torch.no_grad():\n            return self(x).softmax(-1)"),
        "lit.py": '''
import torch
import torch.nn.functional as F
import pytorch_lightning as pl
from registry import build_layers


class LitClassifier(pl.LightningModule):
    def __init__(self, config):
        super().__init__()
        self.layers = build_layers(config)

    def forward(self, x):
        return self.layers(x)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        with torch.no_grad():
            self.log("val_loss", F.cross_entropy(self(x), y))
''',
    },
    # the class is visible and has neither dropout nor batch norm: eval() changes nothing
    "module-without-dropout-or-batchnorm": {
        "model.py": REGISTRY_MODEL,
        "plain.py": '''
import torch
import torch.nn as nn


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))

    def predict(self, x):
        with torch.no_grad():
            return self(x).argmax(-1)
''',
    },
    # a script that gets torch from a star import (nnlint cannot resolve torch.no_grad by name)
    # embeds a batch at a time with a module built by a library; a Hugging Face model comes back
    # from from_pretrained in eval mode already
    "script-star-import": {
        "embed.py": '''
from mylib.embeddings import *

embedder = load_embeddings(args.name)["embeddings"].cpu()
if args.cuda:
    embedder = embedder.cuda()

vectors = []
for batch in chunks(lines, 32):
    with torch.no_grad():
        vectors.append(embedder(to_tensor(batch)))  # NN307
''',
        "hf.py": '''
import torch
from transformers import AutoModel

encoder = AutoModel.from_pretrained("bert-base-uncased").cuda()
for batch in batches:
    with torch.no_grad():
        states = encoder(**batch).last_hidden_state
''',
    },
    # torch.no_grad() inside a training loop (an EMA copy, metrics on the training batch) is not an
    # evaluation; the model evaluated after training without eval() is
    "script-no-grad-in-training-loop": {
        "train.py": '''
import copy
import torch
from mylib import build_model

model = build_model().cuda()
ema = copy.deepcopy(model).cuda()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
for epoch in range(10):
    for x, y in train_loader:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            ema_logits = ema(x)
            train_acc = (model(x).argmax(1) == y).float().mean()
''',
        "predict.py": '''
import torch
from mylib import build_model

net = build_model()
net.load_state_dict(torch.load("net.pt"))
net = net.cuda()
with torch.no_grad():
    for x in images:
        print(net(x.cuda()).argmax(1))  # NN307
''',
    },
    # a model assembled in one file from blocks of another: the blocks' dropout is the model's
    "dropout-in-a-block-of-another-file": {
        "blocks.py": '''
import torch.nn as nn

class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        return self.drop(self.fc(x).relu())
''',
        "net.py": '''
import torch.nn as nn
from blocks import Block

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = Block(64)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(self.body(x))
''',
        "evaluate.py": '''
import torch
from net import Net

def evaluate(model, loader):
    with torch.no_grad():
        return sum((model(x).argmax(1) == y).sum().item() for x, y in loader)  # NN307

model = Net()
model.load_state_dict(torch.load("net.pt"))
print(evaluate(model, loader))
''',
    },
    # the same blocks without dropout or batch norm: eval() would change nothing
    "plain-block-of-another-file": {
        "blocks.py": '''
import torch.nn as nn

class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def forward(self, x):
        return self.fc(x).relu()
''',
        "net.py": '''
import torch.nn as nn
from blocks import Block

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = Block(64)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(self.body(x))
''',
        "evaluate.py": '''
import torch
from net import Net

def evaluate(model, loader):
    with torch.no_grad():
        return sum((model(x).argmax(1) == y).sum().item() for x, y in loader)

model = Net()
model.load_state_dict(torch.load("net.pt"))
print(evaluate(model, loader))
''',
    },
    # a synthesizer whose fit() trains a generator with batch norm and whose sample() draws from it
    # in training mode; the users call sample() after fit(). The noise sizes are attributes: real
    # sampling, not a shape smoke test
    "sample-from-trained-generator": {
        "synth.py": '''
import torch
import torch.nn as nn
from torch.optim import Adam


class Generator(nn.Module):
    def __init__(self, dim, out):
        super().__init__()
        self.seq = nn.Sequential(nn.Linear(dim, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, out))

    def forward(self, x):
        return self.seq(x)


class Stack(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.seq = nn.Sequential(*layers)

    def forward(self, x):
        return self.seq(x)


class Synthesizer:
    def __init__(self, batch_size=64, dim=16):
        self.batch_size = batch_size
        self.dim = dim

    def fit(self, loader, out):
        self.generator = Generator(self.dim, out)
        optimizer = Adam(self.generator.parameters(), lr=2e-4)
        for real in loader:
            noise = torch.randn(self.batch_size, self.dim)
            loss = (self.generator(noise) - real).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def sample(self, n):
        data = []
        for _ in range(n // self.batch_size + 1):
            noise = torch.randn(self.batch_size, self.dim)
            data.append(self.generator(noise).detach().numpy())  # NN307
        return data


class StackSynthesizer:
    def fit(self, loader, layers, noise_dim=8):
        self.noise_dim = noise_dim
        self.generator = Stack(layers)
        optimizer = Adam(self.generator.parameters(), lr=2e-4)
        for noise, real in loader:
            loss = (self.generator(noise) - real).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def sample(self, n):
        return self.generator(torch.randn(n, self.noise_dim)).detach()  # NN307
''',
    },
    # the same synthesizer done right, and look-alikes: sample() switches to eval mode; samples drawn
    # for progress inside the training loop; a generate() that backpropagates (it optimises the noise)
    "sample-from-trained-generator-quiet": {
        "synth.py": '''
import torch
import torch.nn as nn
from torch.optim import Adam


class Generator(nn.Module):
    def __init__(self, dim, out):
        super().__init__()
        self.seq = nn.Sequential(nn.Linear(dim, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, out))

    def forward(self, x):
        return self.seq(x)


class Synthesizer:
    def fit(self, loader, out):
        self.generator = Generator(16, out)
        optimizer = Adam(self.generator.parameters(), lr=2e-4)
        for real in loader:
            loss = (self.generator(torch.randn(64, 16)) - real).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def sample(self, n):
        self.generator.eval()
        with torch.no_grad():
            return self.generator(torch.randn(n, 16))


class ProgressSynthesizer:
    def fit(self, loader, out):
        self.generator = Generator(16, out)
        optimizer = Adam(self.generator.parameters(), lr=2e-4)
        for step, real in enumerate(loader):
            loss = (self.generator(torch.randn(64, 16)) - real).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % 100 == 0:
                self.sample_preview(16)

    def sample_preview(self, n):
        return self.generator(torch.randn(n, 16)).detach()


class Inverter:
    def fit(self, loader, out):
        self.generator = Generator(16, out)
        optimizer = Adam(self.generator.parameters(), lr=2e-4)
        for real in loader:
            loss = (self.generator(torch.randn(64, 16)) - real).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def generate(self, target, steps):
        z = torch.zeros(1, 16, requires_grad=True)
        for _ in range(steps):
            loss = (self.generator(z) - target).pow(2).mean()
            z.grad = None
            loss.backward()
            z.data -= 0.1 * z.grad
        return z
''',
    },
    # an inference script that calls model.train() where it meant model.eval(): the finding goes
    # where the fix goes, the train() call
    "inference-script-calls-train": {
        "net.py": '''
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 64)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(self.drop(self.fc(x).relu()))
''',
        "inference.py": '''
import torch
from net import Net


def main(clips):
    model = Net()
    model.load_state_dict(torch.load("net.pt"))
    model.train()  # NN307
    with torch.no_grad():
        for clip in clips:
            print(model.forward(clip).argmax(1))


if __name__ == "__main__":
    main([])
''',
        "train.py": '''
import torch
from net import Net


def main(train_loader, test_loader):
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    for x, y in train_loader:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        for x, y in test_loader:
            print(model(x).argmax(1) == y)  # NN307
''',
    },
    # a torchvision classifier picked by name: every one has batch norm or dropout
    "torchvision-model-picked-by-name": {
        "evaluate.py": '''
import torch
import torchvision
from torchvision import models


def evaluate(name, loader):
    model = models.__dict__[name](num_classes=10)
    model.load_state_dict(torch.load("model.pt"))
    with torch.no_grad():
        for x, y in loader:
            print(model(x).argmax(1) == y)  # NN307


def validate(name, loader):
    model = getattr(torchvision.models, name)(num_classes=10)
    with torch.no_grad():
        for x, y in loader:
            print(model(x).argmax(1) == y)  # NN307


def test_split(name, loader):
    model = models.__dict__[name](num_classes=10)
    model.eval()
    with torch.no_grad():
        for x, y in loader:
            print(model(x).argmax(1) == y)


def evaluate_zoo(zoo, name, loader):
    model = getattr(zoo, name)(num_classes=10)
    with torch.no_grad():
        for x, y in loader:
            print(model(x).argmax(1) == y)
''',
    },
    # a script that runs a pretrained model and trains nothing: eval() belongs where it is loaded
    "pretrained-model-run-in-training-mode": {
        "cam.py": '''
from torchvision import models
from cams import GradCAM


def main(args):
    model = models.resnet18(pretrained=True).to(args.device)  # NN307
    extractor = GradCAM(model, "layer4")
    for image in args.images:
        scores = model(image.unsqueeze(0))
        print(extractor(scores.argmax().item(), scores))


if __name__ == "__main__":
    main(None)
''',
        "features.py": '''
from torchvision import models


def main(images):
    model = models.__dict__["vgg16"](weights=models.VGG16_Weights.DEFAULT)  # NN307
    return [model(image) for image in images]
''',
    },
    # look-alikes: switched to eval mode where loaded, fine-tuned, or not pretrained
    "pretrained-model-quiet": {
        "cam.py": '''
from torchvision import models


def main(images):
    model = models.resnet18(pretrained=True).eval()
    return [model(image) for image in images]
''',
        "finetune.py": '''
import torch
from torchvision import models


def main(loader):
    model = models.resnet18(pretrained=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for x, y in loader:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
''',
        "scratch.py": '''
from torchvision import models


def main(images):
    model = models.resnet18(pretrained=False)
    return [model(image) for image in images]
''',
    },
    # shape smoke tests on made-up tensors whose sizes are literals, also through a name
    "smoke-test-literal-sizes": {
        "net.py": '''
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())

    def forward(self, x):
        return self.body(x)


def test():
    net = Net()
    size = 32
    print(net(torch.randn(2, 3, size, size)).shape)
    print(net(torch.zeros((1, 3, 64, 64))).shape)


def check_shapes(batch_size, size):
    net = Net()
    with torch.no_grad():
        print(net(torch.randn(batch_size, 3, size, size)).shape)


test()
check_shapes(2, 32)
''',
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_evaluation_shape(case: str, tmp_path: Path) -> None:
    files = CASES[case]
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    result = nnlint.lint_paths([str(tmp_path)], select=["NN307"], use_cache=False, jobs=1)
    assert not result.errors
    got = {(Path(f.path).relative_to(tmp_path).as_posix(), f.line, f.code) for f in result.findings}
    assert got == _expected(files)
