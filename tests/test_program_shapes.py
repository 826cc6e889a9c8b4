"""How real programs are put together: each case is a small project written for this suite, in
the shape of a real bug (a model through a parameter, a trainer class, Lightning's ``self(x)``,
tensor ops between the activation and the loss ...). A line ending in ``# NN201`` must get
exactly that finding; no other finding of the selected codes may appear."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

import nnlint
from nnlint.engine import discover_settings

_MARK = re.compile(r"#\s*((?:NN\d{3}[ ,]*)+)\s*$")

MODEL_SOFTMAX = '''
import torch.nn as nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(10, 20)
        self.fc2 = nn.Linear(20, 3)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        return F.softmax(self.fc2(x), dim=1)
'''

#: the same model, with the finding it gets when a loss elsewhere applies softmax again
MODEL_SOFTMAX_FLAGGED = MODEL_SOFTMAX.replace("return F.softmax(self.fc2(x), dim=1)",
                                              "return F.softmax(self.fc2(x), dim=1)  # NN201")

CASES: dict[str, dict[str, str]] = {
    # train() gets model and criterion as parameters from main() in the same file; Net from another file
    "parameters-across-files": {
        "model.py": MODEL_SOFTMAX_FLAGGED,
        "train.py": '''
import torch
import torch.nn as nn
from model import Net

def train(model, loader, criterion, optimizer):
    model.train()
    for x, y in loader:
        optimizer.zero_grad()
        out = model(x)
        loss = criterion(out, y)
        loss.backward()
        optimizer.step()

def main():
    model = Net().cuda()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train(model, [], criterion, optimizer)
''',
    },
    # LightningModule: self(x) is the module's own forward
    "lightning-self-call": {
        "lit.py": '''
import torch
import torch.nn as nn
import torch.nn.functional as F
import pytorch_lightning as pl

class LitModel(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Linear(784, 128)
        self.layer2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.layer1(x))
        return F.softmax(self.layer2(x), dim=1)  # NN201

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        return F.cross_entropy(logits, y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)
''',
    },
    # a trainer class stores model/criterion/optimizer from its constructor
    "trainer-class": {
        "trainer.py": '''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 3), nn.Softmax(dim=1))  # NN201

    def forward(self, x):
        return self.net(x)

class Trainer:
    def __init__(self, model, criterion, optimizer):
        self.model = model
        self.criterion = criterion
        self.optimizer = optimizer

    def train_epoch(self, loader):
        self.model.train()
        for x, y in loader:
            self.optimizer.zero_grad()
            loss = self.criterion(self.model(x), y)
            loss.backward()
            self.optimizer.step()

model = Net()
trainer = Trainer(model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1))
trainer.train_epoch([])
''',
    },
    # self.forward(x), a Sequential built from a list, the loss stored on self
    "self-forward-and-list-sequential": {
        "net.py": '''
import torch.nn as nn

class Net(nn.Module):
    def __init__(self, n_classes):
        super().__init__()
        layers = [nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, n_classes), nn.Softmax(dim=-1)]  # NN201
        self.layers = nn.Sequential(*layers)
        self.loss_fn = nn.CrossEntropyLoss()

    def forward(self, x):
        return self.layers(x)

    def loss(self, x, y):
        return self.loss_fn(self.forward(x), y)
''',
    },
    # wrappers that keep the model, and .module
    "wrappers": {
        "ddp.py": '''
import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 3)

    def forward(self, x):
        return torch.softmax(self.fc(x), dim=1)  # NN201

model = Net().to("cuda")
model = DDP(model, device_ids=[0])
criterion = nn.CrossEntropyLoss()
loss = criterion(model.module(x), y)
''',
    },
    # a helper that appends a ReLU after every layer, the last one included
    "helper-built-layers": {
        "mlp.py": '''
import torch.nn as nn

def make_layers(sizes):
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers.append(nn.Linear(a, b))
        layers.append(nn.ReLU(inplace=True))  # NN202
    return layers

def make_head(sizes):
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return layers

model = nn.Sequential(*make_layers([4, 8, 3]))
fine = nn.Sequential(*make_head([4, 8, 3]))
criterion = nn.CrossEntropyLoss()
bad = criterion(model(x), y)
good = criterion(fine(x), y)
''',
    },
    # ReLU on the logits, then the loss's own log_softmax
    "relu-before-log-softmax": {
        "relu.py": '''
import torch.nn as nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 3)

    def forward(self, x):
        return F.relu(self.fc(x))  # NN202

model = Net()
loss = F.nll_loss(F.log_softmax(model(x), dim=1), y)
''',
    },
    # tensor ops between the activation and the loss
    "tensor-ops": {
        "model.py": MODEL_SOFTMAX_FLAGGED,
        "ops.py": '''
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd import Variable
from model import Net

model = Net()
criterion = nn.CrossEntropyLoss()
a = criterion(model(x)[:, :3], y)
b = criterion(torch.cat([model(x1), model(x2)]), y)
c = criterion(Variable(model(x)), y)
d = criterion(model(x).data.view(-1, 3), y)
e = criterion(torch.exp(F.log_softmax(z, dim=1)), y)  # NN201
f = criterion(torch.cat([model(x1), z]), y)
''',
    },
    # a loss passed as a default argument and as a function value
    "loss-defaults-and-values": {
        "fit.py": '''
import torch
import torch.nn as nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 1)

    def forward(self, x):
        return torch.sigmoid(self.fc(x))  # NN201

def fit(model, x, y, loss_fn=nn.BCEWithLogitsLoss()):
    return loss_fn(model(x), y)

def fit2(model, x, y, loss_fn):
    return loss_fn(model(x), y)

net = Net()
fit(net, x, y)
fit2(net, x, y, F.binary_cross_entropy_with_logits)
''',
    },
    # where the values disagree, nothing is reported
    "disagreeing-values": {
        "mixed.py": '''
import torch.nn as nn

class Probs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 3)

    def forward(self, x):
        return self.fc(x).softmax(-1)

class Logits(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 3)

    def forward(self, x):
        return self.fc(x)

def step(model, x, y):
    return nn.CrossEntropyLoss()(model(x), y)

def pick(name):
    if name == "a":
        return Probs()
    return Logits()

step(Probs(), x, y)
step(Logits(), x, y)
net = pick("a")
nn.CrossEntropyLoss()(net(x), y)
''',
    },
    # a parameter whose function is also handed around as a value: unseen callers, unknown
    "unseen-callers": {
        "unseen.py": '''
import torch.nn as nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 3)

    def forward(self, x):
        return F.softmax(self.fc(x), dim=1)

def step(model, x, y):
    return F.cross_entropy(model(x), y)

step(Net(), x, y)
hooks = [step]
''',
    },
    # nn.Sequential() filled by add_module, run through .forward(), loss called through .forward()
    "add-module-and-forward": {
        "build.py": '''
import torch

class ConvNet(torch.nn.Module):
    def __init__(self, n_out):
        super().__init__()
        self.fc = torch.nn.Sequential()
        self.fc.add_module("fc", torch.nn.Linear(50, n_out))
        self.fc.add_module("softmax", torch.nn.Softmax(dim=1))  # NN201

    def forward(self, x):
        return self.fc.forward(x)

def build_model():
    model = torch.nn.Sequential()
    model.add_module("linear", torch.nn.Linear(4, 3))
    model.add_module("relu", torch.nn.ReLU())  # NN202
    return model

def train(model, loss, x, y):
    return loss.forward(model.forward(x), y)

train(ConvNet(10), torch.nn.CrossEntropyLoss(), x, y)
head = build_model()
torch.nn.MSELoss()(head(x), y)
''',
    },
    # a loss module whose criterion is a constructor default; iterating over a softmax output
    "default-criterion-and-loop-over-rows": {
        "loss.py": '''
import torch
import torch.nn as nn

class PerGraphLoss(nn.Module):
    def __init__(self, loss=nn.CrossEntropyLoss(reduction="sum")):
        super().__init__()
        self.loss = loss

    def forward(self, raw_scores, target):
        total = 0
        outputs = torch.softmax(raw_scores, -1)  # NN201
        for out in outputs:
            total = total + self.loss(out, target)
        return total

class Passed(nn.Module):
    def __init__(self, loss=nn.CrossEntropyLoss()):
        super().__init__()
        self.loss = loss

    def forward(self, scores, target):
        return self.loss(torch.softmax(scores, -1), target)

Passed(loss=nn.NLLLoss())
''',
    },
    # ReLU on the logits below the model's own log_softmax
    "relu-below-model-log-softmax": {
        "nll.py": '''
import torch.nn as nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(784, 10)

    def forward(self, x):
        x = F.relu(self.l1(x))  # NN202
        return F.log_softmax(x, dim=1)

model = Net()
loss = F.nll_loss(model(data), target)
''',
    },
    # ``import model; model = model.Net()``: the module name rebound to the instance
    "module-name-rebound": {
        "__select__": "NN308",
        "model.py": '''
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)
        self.drop = nn.Dropout(0.2)

    def forward(self, x):
        return self.fc(self.drop(x))
''',
        "train.py": '''
import torch
import model

model = model.Net()
optimizer = torch.optim.Adam(model.parameters())
criterion = torch.nn.MSELoss()

def test(x, y):
    model.eval()  # NN308
    with torch.no_grad():
        return criterion(model(x), y).item()

def train(batches, x_val, y_val):
    model.train()
    for i, (x, y) in enumerate(batches):
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
        if i % 100 == 0:
            print(test(x_val, y_val))
''',
    },
    # a loss from a helper that returns several tensors: backpropagated, then summed with its graph
    "loss-from-a-tuple-returning-helper": {
        "__select__": "NN310",
        "losses.py": '''
import torch.nn.functional as F

def my_loss(pred, target):
    mse = F.mse_loss(pred, target)
    return mse * 2, mse
''',
        "training.py": '''
import torch
import torch.nn as nn
from losses import my_loss

net = nn.Linear(4, 1)
optimizer = torch.optim.Adam(net.parameters())
running_loss = 0.0
logged = 0.0
for x, y in loader:
    optimizer.zero_grad()
    loss, mse = my_loss(net(x), y)
    loss.backward()
    optimizer.step()
    running_loss += loss  # NN310
    logged += mse.item()
''',
    },
    # evaluation over a test loader after the training loop, in the function that trains
    "evaluation-after-training-loop": {
        "__select__": "NN307",
        "main.py": '''
import torch
import torch.nn as nn

def main(train_loader, test_loader):
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Linear(16, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for epoch in range(10):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        errors = 0
        for x, y in test_loader:
            out = model(x)  # NN307
            errors += (out.argmax(1) != y).sum().item()
        model.eval()
        for x, y in test_loader:
            errors += (model(x).argmax(1) != y).sum().item()
''',
    },
    # a model nnlint cannot see, put in training mode by the same program and never back
    "unknown-model-put-in-training-mode": {
        "__select__": "NN307",
        "scripts.py": '''
import torch

def predict(model, loader):
    outputs = []
    with torch.no_grad():
        for batch in loader:
            outputs.append(model.generate(batch))  # NN307
    return outputs

def checked(model, loader):
    model.eval()
    with torch.no_grad():
        return [model(batch) for batch in loader]

def init_memory(model, loader):
    # statistics gathered in training mode on purpose (a memory bank): not an evaluation
    with torch.no_grad():
        return [model(batch) for batch in loader]

def train(model, loader, optimizer):
    for epoch in range(3):
        model.train()
        bank = init_memory(model, loader)
        for batch in loader:
            optimizer.zero_grad()
            model(**batch).loss.backward()
            optimizer.step()
        predict(model, loader)
        checked(model, loader)
''',
        # no training mode anywhere: an unknown model is not reported
        "infer.py": '''
import torch

def evaluate(model, loader):
    with torch.no_grad():
        return [model(batch) for batch in loader]

evaluate(torch.hub.load("repo", "net"), [])
''',
    },
    # TF1: a graph-building helper returns the softmax; its caller passes it as logits=
    "tf1-helper-returns-activation": {
        "train.py": '''
import tensorflow as tf

def rnn_model(x, weight, bias):
    last = tf.nn.relu(tf.matmul(x, weight))
    return tf.nn.softmax(tf.matmul(last, weight) + bias)  # NN201

def probabilities(logits):
    return tf.nn.softmax(logits)

def main(x, y, w, b):
    logits_out = rnn_model(x, w, b)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(logits=logits_out, labels=y))
    predictions = probabilities(tf.matmul(x, w))
    return loss, predictions
''',
    },
    # TF1: the model function in another file returns a tuple; the caller unpacks the output
    "tf1-model-function-across-files": {
        "include/__init__.py": "",
        "include/model.py": '''
import tensorflow as tf

def model():
    x = tf.placeholder(tf.float32, shape=[None, 3072])
    y = tf.placeholder(tf.float32, shape=[None, 10])
    hidden = tf.layers.dense(inputs=x, units=128, activation=tf.nn.relu)
    softmax = tf.layers.dense(inputs=hidden, units=10, activation=tf.nn.softmax, name="out")  # NN201
    return x, y, softmax, hidden

def logits_model():
    x = tf.placeholder(tf.float32, shape=[None, 3072])
    return x, tf.layers.dense(inputs=x, units=10)
''',
        "train.py": '''
import tensorflow as tf
from include.model import model, logits_model

x, y, output, features = model()
loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits_v2(logits=output, labels=y))
x2, logits = logits_model()
loss2 = tf.nn.softmax_cross_entropy_with_logits_v2(logits=logits, labels=y)
''',
    },
    # one of three models chosen by flags: each applies an activation the loss applies again
    "models-chosen-by-flag": {
        "nets.py": '''
import torch.nn as nn
import torch.nn.functional as F

class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        return self.softmax(self.fc(x))  # NN201

class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        return F.log_softmax(self.fc(x), dim=1)  # NN201

class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        return self.fc(x)
''',
        "main.py": '''
import torch.nn.functional as F
from nets import MLP, CNN, Plain

def train(args, loader):
    if args.model == "mlp":
        net = MLP().to(args.device)
    else:
        net = CNN().to(args.device)
    for x, y in loader:
        loss = F.cross_entropy(net(x), y)
        loss.backward()

def train_any(args, loader):
    if args.model == "mlp":
        net = MLP()
    elif args.model == "cnn":
        net = CNN()
    else:
        net = Plain()
    for x, y in loader:
        out = net(x)
        F.cross_entropy(out, y).backward()
''',
    },
    # a library model held by a context object: train() switches it through a local alias,
    # then validates through predict(), which never calls eval()
    "eval-mode-through-an-alias": {
        "__select__": "NN307",
        "scripts.py": '''
import torch

def predict(model, loader):
    out = []
    with torch.no_grad():
        for batch in loader:
            out.append(model.generate(batch["input"]))  # NN307
    return out

def validate(context):
    return predict(context.model, context.val_loader)

def validate_in_eval_mode(context):
    model = context.model
    model.eval()
    return predict(context.model, context.val_loader)

def train(context):
    model = context.model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    for epoch in range(3):
        for batch in context.train_loader:
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        validate(context)
        validate_in_eval_mode(context)
''',
    },
    # every few training steps, one test batch runs through the model still in training mode;
    # test-time adaptation (backward on test data) and a device named ``dev`` are not evaluation
    "test-batch-inside-the-training-loop": {
        "__select__": "NN307",
        "net.py": '''
import torch.nn as nn

class PointNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 16)
        self.bn = nn.BatchNorm1d(16)

    def forward(self, x):
        return self.bn(self.fc(x))
''',
        "train.py": '''
import torch
import torch.nn.functional as F
from net import PointNet

dev = torch.device("cuda")
classifier = PointNet().to(dev)
optimizer = torch.optim.Adam(classifier.parameters())
for epoch in range(10):
    for i, data in enumerate(dataloader, 0):
        points, target = data
        points = points.to(dev)
        optimizer.zero_grad()
        loss = F.nll_loss(classifier(points), target)
        loss.backward()
        optimizer.step()
        if i % 10 == 0:
            j, data = next(enumerate(testdataloader, 0))
            points, target = data
            points = points.transpose(2, 1).to(dev)
            pred = classifier(points)  # NN307
            print(F.nll_loss(pred, target).item())
        if i % 10 == 5:
            batch = next(iter(test_loader))
            adapted = classifier(batch.to(dev))
            adapted.entropy().mean().backward()
''',
    },
    # a trainer whose file imports only the project's own modules (no framework name in it)
    "trainer-file-without-framework-imports": {
        "__select__": "NN309",
        "trainer.py": '''
import utils.stats


class Trainer:
    def __init__(self, model, loss):
        self.model = model
        self.loss = loss

    def validate(self, valid_iter):
        self.model.eval()
        stats = utils.stats.Statistics()
        for batch in valid_iter:
            outputs = self.model(batch.src)  # NN309
            stats.update(self.loss(outputs, batch.tgt))
        self.model.train()
        return stats
''',
    },
    # the evaluation switches the model to eval mode, then delegates the batches to a helper;
    # an adversarial evaluation that needs gradients delegates just the same, on purpose
    "evaluation-delegated-to-a-helper": {
        "__select__": "NN309",
        "pipeline.py": '''
import torch


class Pipeline:
    def __init__(self, model, loss_fn):
        self.model = model
        self.loss_fn = loss_fn

    def _val_loop(self, dl_val):
        self.model.eval()
        return self._inner_loop(dl_val)

    def _test_loop(self, dl_test):
        self.model.eval()
        with torch.no_grad():
            return self._inner_loop(dl_test)

    def _attack_loop(self, dl):
        self.model.eval()
        x = self._inner_loop(dl)
        x.requires_grad_(True)
        self.loss_fn(self.model(x), 0).backward()

    def _inner_loop(self, dl):
        total = 0.0
        for X, y in dl:
            pred = self.model(X)  # NN309
            total += self.loss_fn(pred, y).item()
        return total
''',
    },
    # a multi-task weighting helper clips, then backpropagates (no loop, no optimizer in sight);
    # an update helper that clips and steps after its caller's backward() is right
    "clipping-in-straight-line-helpers": {
        "__select__": "NN305",
        "weighting.py": '''
import torch


class Weighting:
    def __init__(self, max_norm, optimizer):
        self.max_norm = max_norm
        self.optimizer = optimizer

    def backward(self, losses, shared_parameters):
        loss = losses.sum()
        if self.max_norm > 0:
            torch.nn.utils.clip_grad_norm_(shared_parameters, self.max_norm)  # NN305
        loss.backward()
        return loss

    def update(self, parameters):
        torch.nn.utils.clip_grad_norm_(parameters, self.max_norm)
        self.optimizer.step()
        self.optimizer.zero_grad()

    def late(self, loss, parameters):
        loss.backward()
        self.optimizer.step()
        torch.nn.utils.clip_grad_norm_(parameters, self.max_norm)  # NN305
''',
    },
    # Lightning manual optimization: the trainer loops over training_step, which zeroes the
    # gradients on every batch but steps only every k-th
    "lightning-manual-optimization": {
        "__select__": "NN303,NN304",
        "module.py": '''
import lightning as L


class GAN(L.LightningModule):
    def __init__(self, accumulate=4):
        super().__init__()
        self.automatic_optimization = False
        self.accumulate = accumulate

    def training_step(self, batch, batch_idx):
        g_opt, d_opt = self.optimizers()
        g_loss = self.generator_loss(batch)
        g_opt.zero_grad()  # NN304
        self.manual_backward(g_loss)
        if (batch_idx + 1) % self.accumulate == 0:
            self.clip_gradients(g_opt, gradient_clip_val=1.0, gradient_clip_algorithm="norm")
            g_opt.step()
        d_loss = self.discriminator_loss(batch)
        self.manual_backward(d_loss)
        d_opt.step()  # NN303
''',
    },
    # a pipeline class trains the model it was given and validates it under no_grad, never in
    # eval mode (its callers are in other files); a sibling class that calls eval() is right
    "pipeline-trains-and-validates-its-model": {
        "__select__": "NN307",
        "pipeline.py": '''
import torch


class Pipeline:
    def __init__(self, model, loss_fn):
        self.model = model
        self.loss_fn = loss_fn

    def _train_loop(self, dl_tr):
        for X, y in dl_tr:
            loss = self.loss_fn(self.model(X), y)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()

    def _val_loop(self, dl_val):
        with torch.no_grad():
            metric = torch.zeros(1)
            return [self.model(X) for X, _ in dl_val], metric  # NN307

    def train(self, optimizer_cls, dl_tr, dl_val, n_epochs=10):
        self.optimizer = optimizer_cls(self.model.parameters(), lr=0.1)
        for epoch in range(n_epochs):
            torch.zeros(1)
            self._train_loop(dl_tr)
            self._val_loop(dl_val)


class CarefulPipeline(Pipeline):
    pass
''',
        "careful.py": '''
import torch


class Careful:
    def __init__(self, model, loss_fn):
        self.model = model
        self.loss_fn = loss_fn

    def _train_loop(self, dl_tr, optimizer):
        self.model.train()
        for X, y in dl_tr:
            loss = self.loss_fn(self.model(X), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def _val_loop(self, dl_val):
        self.model.eval()
        with torch.no_grad():
            return [self.model(X) for X, _ in dl_val]
''',
    },
    # the learning rate is a constant of a configuration module that imports no framework; the
    # optimizer goes to a factory that compiles the deep model it returns
    "learning-rate-from-a-config-module": {
        "__select__": "NN312",
        "CONFIG.py": '''
learning_rate = 1.0
small_rate = 0.001
''',
        "keras_model.py": '''
from tensorflow.keras.models import Sequential
from tensorflow.keras.layers import LSTM, Dense, Embedding

def create_model(total_words, hidden_size, optimizer="adam"):
    model = Sequential()
    model.add(Embedding(total_words, hidden_size))
    for _ in range(4):
        model.add(LSTM(units=hidden_size, return_sequences=True))
    model.add(Dense(total_words, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer=optimizer)
    return model
''',
        "train.py": '''
from tensorflow.keras.optimizers import Adam
import CONFIG
from keras_model import create_model

optimizer = Adam(lr=CONFIG.learning_rate)  # NN312
model = create_model(total_words=100, hidden_size=10, optimizer=optimizer)
fine = create_model(total_words=100, hidden_size=10, optimizer=Adam(lr=CONFIG.small_rate))
''',
    },
    # a skorch-style estimator is given the module class and the loss: it feeds one to the other
    "library-estimator-with-criterion": {
        "example.py": '''
import torch.nn as nn
from skorch import NeuralNetClassifier

if __name__ == "__main__":
    class MyModule(nn.Module):
        def __init__(self):
            super().__init__()
            self.output = nn.Linear(20, 2)
            self.softmax = nn.Softmax(dim=-1)

        def forward(self, X):
            return self.softmax(self.output(X))  # NN201

    class Logits(nn.Module):
        def __init__(self):
            super().__init__()
            self.output = nn.Linear(20, 2)

        def forward(self, X):
            return self.output(X)

    net = NeuralNetClassifier(MyModule, criterion=nn.CrossEntropyLoss, max_epochs=10)
    default = NeuralNetClassifier(MyModule, max_epochs=10)  # skorch's default NLLLoss takes probabilities
    fine = NeuralNetClassifier(module=Logits, criterion=nn.CrossEntropyLoss())
''',
    },
    # TF 0.x took (logits, labels) positionally; TF 2 takes (labels, logits): a graph script
    # (placeholders) is the former, a TF 2 distillation loss with soft labels the latter
    "tensorflow-positional-logits": {
        "graph.py": '''
import tensorflow as tf
import tflearn

X = tf.placeholder(shape=(None, 784), dtype=tf.float32)
Y = tf.placeholder(shape=(None, 10), dtype=tf.float32)
net = tflearn.fully_connected(X, 128, activation="tanh")
net = tflearn.fully_connected(net, 10, activation="softmax")  # NN201
loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(net, Y))
''',
        "distill.py": '''
import tensorflow as tf

def distillation_loss(teacher_logits, student_logits):
    soft_labels = tf.nn.softmax(teacher_logits / 2.0)
    return tf.nn.softmax_cross_entropy_with_logits(soft_labels, student_logits)
''',
    },
    # the training step is a closure a framework helper built from the parameters (it steps and
    # clears the gradients); the evaluation every few steps leaves the model in eval mode
    "framework-step-closure": {
        "__select__": "NN303,NN308",
        "train.py": '''
import torch
import texar.torch as tx

def main(model, iterator, eval_steps):
    train_op = tx.core.get_train_op(params=model.parameters(), hparams=None)

    def _train_epoch():
        model.train()
        for step, batch in enumerate(iterator):
            loss = model(batch)
            loss.backward()
            train_op()
            if step % eval_steps == 0:
                _eval_epoch()

    @torch.no_grad()
    def _eval_epoch():
        model.eval()  # NN308
        for batch in iterator:
            model(batch)

    for epoch in range(10):
        _train_epoch()
''',
    },
    # a factory returning one of several models, all with dropout or batch norm
    "factory-of-models": {
        "__select__": "NN307",
        "models.py": '''
import torch
import torch.nn as nn

class A(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))

    def forward(self, x):
        return self.body(x)

def get_model(name):
    if name == "a":
        return A()
    return nn.Sequential(nn.Linear(4, 2), nn.BatchNorm1d(2))

def validate(loader):
    net = get_model("b")
    with torch.no_grad():
        return [net(x) for x, _ in loader]  # NN307
''',
    },
}


def _expected(files: dict[str, str]) -> set[tuple[str, int, str]]:
    found: set[tuple[str, int, str]] = set()
    for name, text in files.items():
        for number, line in enumerate(textwrap.dedent(text).splitlines(), start=1):
            match = _MARK.search(line)
            if match:
                for code in re.findall(r"NN\d{3}", match.group(1)):
                    found.add((name, number, code))
    return found


@pytest.mark.parametrize("case", sorted(CASES))
def test_program_shape(case: str, tmp_path: Path) -> None:
    files = dict(CASES[case])
    select = files.pop("__select__", "NN2")
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    result = nnlint.lint_paths([str(tmp_path)], select=select.split(","), use_cache=False, jobs=1)
    assert not result.errors
    got = {(Path(f.path).relative_to(tmp_path).as_posix(), f.line, f.code) for f in result.findings}
    assert got == _expected(files)


TRAIN_IMPORTING = '''
import torch.nn as nn
from {module} import Net

model = Net()
criterion = nn.CrossEntropyLoss()
loss = criterion(model(x), y)
'''


@pytest.mark.parametrize("layout, module", [
    ("pkg/model.py", "pkg.model"),          # a package
    ("src/pkg/model.py", "pkg.model"),      # src layout
    ("nspkg/model.py", "nspkg.model"),      # a namespace package (no __init__.py)
])
def test_changed_file_alone_gets_the_whole_project_answer(tmp_path: Path, layout: str, module: str) -> None:
    """pre-commit passes only the changed file: the modules it imports are indexed all the same."""
    (tmp_path / "pyproject.toml").write_text("[tool.nnlint]\n")
    model_file = tmp_path / layout
    model_file.parent.mkdir(parents=True)
    model_file.write_text(textwrap.dedent(MODEL_SOFTMAX))
    if not layout.startswith("nspkg"):
        (model_file.parent / "__init__.py").write_text("")
    train = tmp_path / "train.py"
    train.write_text(TRAIN_IMPORTING.format(module=module))
    settings = discover_settings([str(train)])
    whole = nnlint.lint_paths([str(tmp_path)], settings, select=["NN201"], use_cache=False, jobs=1)
    alone = nnlint.lint_paths([str(train)], settings, select=["NN201"], use_cache=False, jobs=1)
    # at the activation in the model's file (line 13 of MODEL_SOFTMAX); the loss is the related place
    assert [(Path(f.path).name, f.line) for f in whole.findings] == [("model.py", 13)]
    assert [(Path(f.path).name, f.line) for f in alone.findings] == [("model.py", 13)]
    assert alone.files_checked == 1
    model_alone = nnlint.lint_paths([str(model_file)], settings, select=["NN201"], use_cache=False, jobs=1)
    assert model_alone.findings == whole.findings


def test_readme_suppression_example_silences_the_activation(tmp_path: Path) -> None:
    """The README's example: the comment sits on the activation, where NN201 now points."""
    source = textwrap.dedent('''
        import torch.nn as nn

        probs = nn.Softmax(dim=1){comment}
        model = nn.Sequential(nn.Linear(4, 3), probs)
        loss = nn.CrossEntropyLoss()(model(x), y)
        ''')
    comment = "  # nnlint: ignore[NN201] the loss here expects probabilities"
    reported = nnlint.lint_source(source.format(comment=""), path="m.py", select=["NN201"])
    assert [(f.line, f.related[0].line) for f in reported] == [(4, 6)]
    assert nnlint.lint_source(source.format(comment=comment), path="m.py", select=["NN201"]) == []


def test_ignore_on_the_activation_in_another_file(tmp_path: Path) -> None:
    """With the model in model.py, the finding is at the loss; the comment on the activation still counts."""
    (tmp_path / "model.py").write_text(textwrap.dedent(MODEL_SOFTMAX).replace(
        "return F.softmax(self.fc2(x), dim=1)", "return F.softmax(self.fc2(x), dim=1)  # nnlint: ignore[NN2]"))
    (tmp_path / "train.py").write_text(TRAIN_IMPORTING.format(module="model"))
    assert nnlint.lint_paths([str(tmp_path)], select=["NN201"], use_cache=False, jobs=1).findings == ()
    (tmp_path / "model.py").write_text(textwrap.dedent(MODEL_SOFTMAX))
    found = nnlint.lint_paths([str(tmp_path)], select=["NN201"], use_cache=False, jobs=1).findings
    assert [(Path(f.path).name, f.line, Path(f.related[0].path).name, f.related[0].line) for f in found] \
        == [("model.py", 13, "train.py", 7)]


CROSS_FILE_PASSING = {
    "model.py": MODEL_SOFTMAX,
    "train.py": '''
import torch.nn as nn

def source_only(encoder, classifier, loader, criterion=nn.CrossEntropyLoss()):
    for x, y in loader:
        loss = criterion(classifier(encoder(x)), y)
        loss.backward()

class Trainer:
    def __init__(self, model, loss_fn):
        self.model = model
        self.loss_fn = loss_fn

    def step(self, x, y):
        return self.loss_fn(self.model(x), y)
''',
    "main.py": '''
import copy
import torch.nn as nn
import model
import train
from train import Trainer

classifier = model.Classifier().cuda()
train.source_only(nn.Flatten(), classifier, [])
Trainer(copy.deepcopy(classifier), nn.CrossEntropyLoss()).step(x, y)
Trainer(nn.Linear(4, 2), nn.CrossEntropyLoss())
''',
}


def test_models_and_losses_passed_from_another_file(tmp_path: Path) -> None:
    """``train.source_only(enc, model.Classifier().cuda(), ...)`` in main.py reaches train.py's loss;
    the answer for each file alone (the pre-commit hook) is the whole project's."""
    (tmp_path / "pyproject.toml").write_text("[tool.nnlint]\n")
    for name, text in CROSS_FILE_PASSING.items():
        (tmp_path / name).write_text(textwrap.dedent(text).replace("class Net", "class Classifier"))
    settings = discover_settings([str(tmp_path)])
    whole = nnlint.lint_paths([str(tmp_path)], settings, select=["NN201"], use_cache=False, jobs=1)
    # source_only: every caller passes the Classifier; Trainer: one caller passes a Linear (logits)
    assert [(Path(f.path).name, f.line) for f in whole.findings] == [("model.py", 13)]
    assert [(Path(r.path).name, r.line) for r in whole.findings[0].related] == [("train.py", 6)]
    for name in CROSS_FILE_PASSING:
        alone = nnlint.lint_paths([str(tmp_path / name)], settings, select=["NN201"], use_cache=False, jobs=1)
        assert [f for f in alone.findings if Path(f.path).name == name] \
            == [f for f in whole.findings if Path(f.path).name == name], name


def test_a_caller_changing_what_it_passes_is_not_served_stale(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nnlint]\n")
    for name, text in CROSS_FILE_PASSING.items():
        (tmp_path / name).write_text(textwrap.dedent(text).replace("class Net", "class Classifier"))
    settings = discover_settings([str(tmp_path)])

    def run() -> list[str]:
        result = nnlint.lint_paths([str(tmp_path)], settings, select=["NN201"], jobs=1)
        return [Path(f.path).name for f in result.findings]

    assert run() == ["model.py"]
    main = tmp_path / "main.py"
    main.write_text(main.read_text().replace("classifier = model.Classifier().cuda()", "classifier = nn.Linear(4, 2)"))
    assert run() == []


def test_accumulation_by_modulo(tmp_path: Path) -> None:
    """NN304: zero_grad() on every micro-batch of a loop that steps every k-th; quiet when the
    clearing is inside the stepping branch, or when a step is skipped for a non-finite loss."""
    source = textwrap.dedent('''
        import torch

        def accumulate(model, loader, optimizer, k):
            for i, (x, y) in enumerate(loader):
                optimizer.zero_grad()  # NN304
                loss = torch.nn.functional.cross_entropy(model(x), y) / k
                loss.backward()
                if (i + 1) % k == 0:
                    optimizer.step()

        def accumulate_right(model, loader, optimizer, k):
            for i, (x, y) in enumerate(loader):
                loss = torch.nn.functional.cross_entropy(model(x), y) / k
                loss.backward()
                if (i + 1) % k == 0:
                    optimizer.step()
                    optimizer.zero_grad()

        def skip_bad_steps(model, loader, optimizer):
            for x, y in loader:
                optimizer.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x), y)
                loss.backward()
                if torch.isfinite(loss):
                    optimizer.step()
        ''')
    (tmp_path / "train.py").write_text(source)
    found = nnlint.lint_paths([str(tmp_path)], select=["NN304"], use_cache=False, jobs=1).findings
    assert [f.line for f in found] == [n for n, line in enumerate(source.splitlines(), 1) if "# NN304" in line]


def test_attention_dropout_that_ignores_eval_mode() -> None:
    """NN105: ``scaled_dot_product_attention(dropout_p=self.dropout)`` has no training switch; a rate
    chosen with ``self.training`` (inline or through a local) is right."""
    source = textwrap.dedent('''
        import torch.nn as nn
        import torch.nn.functional as F

        class Attention(nn.Module):
            def __init__(self, dropout):
                super().__init__()
                self.dropout = dropout

            def forward(self, q, k, v):
                always = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout, is_causal=True)  # NN105
                inline = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0)
                p = self.dropout if self.training else 0.0
                local = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
                off = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0)
                return always + inline + local + off
        ''')
    found = nnlint.lint_source(source, path="attn.py", select=["NN105"])
    assert [f.line for f in found] == [n for n, line in enumerate(source.splitlines(), 1) if "# NN105" in line]


def test_inverted_dropout_mask_that_ignores_eval_mode() -> None:
    """NN105: a module that rescales a ``bernoulli`` mask by its keep probability is dropout, whatever
    its name; one that checks ``self.training`` (stochastic depth), or a mask not rescaled, is not."""
    source = textwrap.dedent('''
        import torch
        import torch.nn as nn

        class Cell(nn.Module):
            def __init__(self, dim, dropout=0.15):
                super().__init__()
                self.fc = nn.Linear(dim, dim)
                self.dropout = dropout

            def mask(self, x, dropout):
                keep = torch.empty_like(x).bernoulli_(1 - dropout)  # NN105
                keep /= (1 - dropout)
                return keep

            def forward(self, x):
                h = self.fc(x)
                return h * self.mask(h, self.dropout)

        class DropPath(nn.Module):
            def __init__(self, p):
                super().__init__()
                self.p = p

            def forward(self, x):
                if not self.training or self.p == 0:
                    return x
                keep = 1 - self.p
                mask = x.new_empty(x.shape[0], 1).bernoulli_(keep)
                return x * mask / keep

        class RandomErase(nn.Module):
            def forward(self, x):
                return x * torch.empty_like(x).bernoulli_(0.9)

        class MCDropoutCell(nn.Module):
            def forward(self, x):
                return x * x.new_empty(x.shape).bernoulli_(0.8) / 0.8
        ''')
    found = nnlint.lint_source(source, path="cell.py", select=["NN105"])
    assert [f.line for f in found] == [n for n, line in enumerate(source.splitlines(), 1) if "# NN105" in line]


def test_adam_rate_on_a_shallow_model_behind_a_parallel_wrapper() -> None:
    """NN312 looks through ``parallelize_module``/``fully_shard`` to the model: a two-layer toy model
    trained with a high rate is the rule's documented exception; a deep one is reported."""
    source = textwrap.dedent('''
        import torch
        import torch.nn as nn
        from torch.distributed.tensor.parallel import parallelize_module

        class Toy(nn.Module):
            def __init__(self):
                super().__init__()
                self.in_proj = nn.Linear(10, 32)
                self.out_proj = nn.Linear(32, 5)

            def forward(self, x):
                return self.out_proj(torch.relu(self.in_proj(x)))

        class Deep(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = nn.Sequential(*[nn.Linear(32, 32) for _ in range(8)])

            def forward(self, x):
                return self.layers(x)

        toy = parallelize_module(module=Toy().to("cuda"), device_mesh=mesh, parallelize_plan=plan)
        quiet = torch.optim.AdamW(toy.parameters(), lr=0.25)
        deep = parallelize_module(Deep().to("cuda"), mesh, plan)
        loud = torch.optim.AdamW(deep.parameters(), lr=0.25)  # NN312
        ''')
    found = nnlint.lint_source(source, path="tp.py", select=["NN312"])
    assert [f.line for f in found] == [n for n, line in enumerate(source.splitlines(), 1) if "# NN312" in line]


def test_fix_never_touches_a_file_read_only_for_context(tmp_path: Path) -> None:
    """``nnlint --fix train.py``: the files indexed with it are read, not rewritten (and not an error)."""
    (tmp_path / "pyproject.toml").write_text("[tool.nnlint]\n")
    fixable = textwrap.dedent('''
        import torch
        import model

        total = 0.0
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model.net(x), y)
            loss.backward()
            total += loss
        ''')
    (tmp_path / "model.py").write_text("import torch.nn as nn\nnet = nn.Linear(4, 2)\n")
    (tmp_path / "train.py").write_text(fixable)
    (tmp_path / "other.py").write_text(fixable.replace("total", "running"))
    settings = discover_settings([str(tmp_path)])
    result = nnlint.lint_paths([str(tmp_path / "model.py")], settings, select=["NN310"], use_cache=False,
                               jobs=1, fix=True, unsafe_fixes=True)
    assert result.errors == ()
    assert (tmp_path / "train.py").read_text() == fixable
    assert (tmp_path / "other.py").read_text() == fixable.replace("total", "running")
