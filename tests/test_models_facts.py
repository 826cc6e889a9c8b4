"""ModelFacts: models as layer sequences, their outputs, losses and model_of (also across files)."""
from __future__ import annotations


import libcst as cst
import pytest

from nnlint.facts import FileFacts
from nnlint.facts.index import ModuleSummary, ProjectIndex, Site
from nnlint.facts.models import ModelFacts, ModelSummary


def facts_of(source: str, module: str = "x", project: ProjectIndex | None = None, path: str = "x.py") -> FileFacts:
    return FileFacts(path, cst.parse_module(source), module_name=module, project=project)


def summaries(source: str) -> dict[str, ModelSummary]:
    return {m.name: m.summary for m in facts_of(source).models.models}


TORCH_NET = '''
import torch
import torch.nn as nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = self.drop(x)
        x = self.fc2(x)
        return x.softmax(-1)
'''


def test_module_subclass_layers_in_data_flow_order() -> None:
    model = facts_of(TORCH_NET).models.models[0]
    assert model.summary == ModelSummary("Net", "x.Net", "torch", ("Linear", "ReLU", "Dropout", "Linear", "Softmax"),
                                         "softmax", 3, True, False,
                                         output_site=Site("x.py", 17, 16, 17, 29))  # ``x.softmax(-1)``
    assert [layer.attribute for layer in model.layers] == ["fc1", "drop", "fc2"]
    assert model.layers[0].kind == "Linear" and model.layers[2].units == 3
    assert model.layers[1].kwarg("p") is None


@pytest.mark.parametrize("ret, expected", [
    ("return torch.sigmoid(self.fc(x))", "sigmoid"),
    ("return F.log_softmax(self.fc(x), dim=1)", "log_softmax"),
    ("x = self.fc(x)\n        return x", None),
    ("return self.fc(x).view(-1)", None),
    ("return self.fc(x).sigmoid().view(-1)", "sigmoid"),
    ("x = self.fc(x)\n        if not self.training:\n            x = x.softmax(-1)\n        return x", None),
    ("return self.fc(x) if self.training else self.fc(x).softmax(-1)", None),
])
def test_output_activation_of_forward(ret: str, expected: str | None) -> None:
    source = f'''
from torch import nn
import torch
import torch.nn.functional as F
class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
    def forward(self, x):
        {ret}
'''
    assert summaries(source)["M"].output_activation == expected


def test_sequential_nested_and_ordered_dict() -> None:
    source = '''
from collections import OrderedDict
from torch.nn import Sequential, Linear, BatchNorm1d, Sigmoid, ReLU
seq = Sequential(OrderedDict([("fc", Linear(3, 4)), ("body", Sequential(BatchNorm1d(4), ReLU()))]),)
head = Sequential(Linear(4, 1), Sigmoid())
'''
    found = summaries(source)
    assert set(found) == {"seq", "head"}
    assert found["seq"].layers == ("Linear", "BatchNorm1d", "ReLU")
    assert found["seq"].has_batchnorm and found["seq"].output_activation == "relu"
    assert found["head"].output_activation == "sigmoid" and found["head"].output_units == 1


def test_sequential_inside_a_model_class_is_not_a_second_model() -> None:
    source = '''
import torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
        self.head = nn.Linear(2, 5)
    def forward(self, x):
        return self.head(self.body(x))
'''
    found = summaries(source)
    assert list(found) == ["Net"]
    assert found["Net"].layers == ("Linear", "BatchNorm1d", "Linear")
    assert found["Net"].has_batchnorm and found["Net"].output_units == 5


@pytest.mark.parametrize("keras", ["from tensorflow import keras", "import keras", "import tensorflow.keras as keras"])
def test_keras_sequential_add_and_activation(keras: str) -> None:
    source = f'''
{keras}
model = keras.Sequential([keras.layers.Dense(64, activation="relu"), keras.layers.Dropout(0.2)])
model.add(keras.layers.Dense(10))
model.add(keras.layers.Activation("softmax"))
model.compile(loss=keras.losses.CategoricalCrossentropy(from_logits=True))
'''
    facts = facts_of(source)
    summary = facts.models.models[0].summary
    assert summary.layers == ("Dense", "ReLU", "Dropout", "Dense", "Softmax")
    assert summary.output_activation == "softmax" and summary.output_units == 10 and summary.has_dropout
    (site,) = facts.losses.sites
    assert site.expects == "logits" and site.model == summary


def test_keras_functional_model() -> None:
    source = '''
import tensorflow as tf
inputs = tf.keras.Input(shape=(3,))
x = tf.keras.layers.Dense(4, activation="relu")(inputs)
x = tf.keras.layers.BatchNormalization()(x)
outputs = tf.keras.layers.Dense(1, activation="sigmoid")(x)
model = tf.keras.Model(inputs=inputs, outputs=outputs)
model.compile(loss="binary_crossentropy")
'''
    facts = facts_of(source)
    summary = facts.models.models[0].summary
    assert summary.layers == ("Dense", "ReLU", "BatchNormalization", "Dense", "Sigmoid")
    assert summary.output_activation == "sigmoid" and summary.output_units == 1 and summary.has_batchnorm
    (site,) = facts.losses.sites
    assert site.kind == "binary_crossentropy" and site.expects == "probs"


def _name_use(facts: FileFacts, name: str) -> cst.Name:
    uses = [n for n in facts.walk() if isinstance(n, cst.Name) and n.value == name]
    return uses[-1]


@pytest.mark.parametrize("ctor, batchnorm, dropout", [
    ("models.resnet18()", True, False),
    ("models.vgg16_bn(weights=None)", True, True),
    ("models.vgg16()", False, True),
    ("models.alexnet()", False, True),
    ("models.densenet121()", True, False),
])
def test_model_of_torchvision(ctor: str, batchnorm: bool, dropout: bool) -> None:
    facts = facts_of(f"from torchvision import models\nnet = {ctor}.to('cpu')\nnet(x)\n")
    summary = facts.models.model_of(_name_use(facts, "net"))
    assert summary is not None and (summary.has_batchnorm, summary.has_dropout) == (batchnorm, dropout)


def test_model_of_unknown_is_none() -> None:
    facts = facts_of("def f(net):\n    return net(x)\n")
    assert facts.models.model_of(_name_use(facts, "net")) is None
    assert facts.models.model_of(None) is None


def test_model_of_self_attribute_and_wrappers() -> None:
    source = TORCH_NET + '''
class Trainer:
    def __init__(self):
        self.model = torch.nn.DataParallel(Net())
    def step(self, x):
        return self.model(x)
'''
    facts = facts_of(source)
    attribute = [n for n in facts.walk() if isinstance(n, cst.Attribute) and n.attr.value == "model"][-1]
    summary = facts.models.model_of(attribute)
    assert summary is not None and summary.name == "Net"


def _exports(facts: FileFacts) -> ModuleSummary:
    """The model part of ``FileFacts.summary()`` (without constants, which another module owns)."""
    return ModuleSummary(facts.module_name, facts.path, models=facts.models.exported_summaries(),
                         bindings=dict(facts.names.bindings))


@pytest.mark.parametrize("import_line, expr", [
    ("from model import Net", "Net()"),
    ("import model", "model.Net()"),
    ("from . import model as m", "m.Net()"),
])
def test_model_of_across_files(import_line: str, expr: str) -> None:
    module, defining = ("train", "model") if "from ." not in import_line else ("pkg.train", "pkg.model")
    exported = _exports(facts_of(TORCH_NET, module=defining, path=defining.replace(".", "/") + ".py"))
    assert exported.models["Net"].output_activation == "softmax"
    project = ProjectIndex([exported])
    facts = facts_of(f"{import_line}\nnet = {expr}\nnet(x)\n", module=module, project=project,
                     path="pkg/train.py" if module == "pkg.train" else "train.py")
    summary = facts.models.model_of(_name_use(facts, "net"))
    assert summary is not None and summary.name == "Net" and summary.output_units == 3


@pytest.mark.parametrize("loss_line, kind, expects", [
    ("crit = nn.CrossEntropyLoss()\nloss = crit(model(x), y)", "cross_entropy", "logits"),
    ("loss = F.nll_loss(model(x), y)", "nll", "log_probs"),
    ("loss = nn.BCELoss()(model(x), y)", "bce", "probs"),
])
def test_loss_sites_and_what_feeds_them(loss_line: str, kind: str, expects: str) -> None:
    source = TORCH_NET + f"model = Net()\n{loss_line}\n"
    facts = facts_of(source)
    (site,) = facts.losses.sites
    assert (site.kind, site.expects) == (kind, expects)
    assert facts.outputs.activation_of(site.prediction) == "softmax"


def test_loss_object_on_self() -> None:
    source = '''
from torch.nn import CrossEntropyLoss as CE
class Trainer:
    def __init__(self):
        self.criterion = CE()
    def step(self, out, y):
        return self.criterion(out, y)
'''
    (site,) = facts_of(source).losses.sites
    assert site.kind == "cross_entropy" and site.constructor is not None


@pytest.mark.parametrize("source", [
    "", "x = 1\n", "class A:\n    pass\n", "import torch.nn as nn\nclass N(nn.Module):\n    pass\n",
    "import torch.nn as nn\nclass N(nn.Module):\n    def forward(self):\n        return\n",
    "import torch.nn as nn\nclass A(B):\n    pass\nclass B(A):\n    pass\nA()\n",
    "import torch.nn as nn\nclass N(nn.Module):\n    def __init__(self):\n        self.n = N()\n"
    "    def forward(self, x):\n        return self.n(x)\nN()(1)\n",
    "import torch.nn as nn\nnn.Sequential(*layers)\nnn.Sequential()\n",
    "from tensorflow import keras\nkeras.Model()\nkeras.Sequential(5)\nm = keras.Sequential()\nm.add()\n",
    "import torch.nn as nn\nx = y = nn.Sequential(nn.ReLU())\n(a, b) = nn.Linear(1, 1), 2\n",
])
def test_odd_input_never_raises(source: str) -> None:
    facts = facts_of(source)
    facts.models.models
    facts.losses.sites
    facts.models.exported_summaries()
    for node in list(facts.walk()):
        if isinstance(node, cst.BaseExpression):
            facts.models.model_of(node)
            facts.outputs.activation_of(node)


def test_summaries_are_picklable() -> None:
    import pickle

    summary = facts_of(TORCH_NET).models.exported_summaries()["Net"]
    assert pickle.loads(pickle.dumps(summary)) == summary


def test_modelfacts_is_the_facts_attribute() -> None:
    assert isinstance(facts_of("").models, ModelFacts)


SUBCLASSED_NET = '''
import torch.nn as nn
from model import Net

class Wrapped(Net):
    pass

class Local(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)
'''


def test_phase_one_facts_are_kept_when_the_project_answers_alike() -> None:
    from nnlint.facts.index import RecordingIndex

    first = FileFacts("train.py", cst.parse_module(SUBCLASSED_NET), module_name="train", project=RecordingIndex())
    first.summary()
    # an index without `model.Net` answers the recorded question exactly as the empty one did
    unrelated = ProjectIndex([ModuleSummary("other", "other.py")])
    assert first.with_project(unrelated) is first
    assert first.project is unrelated


def test_phase_one_facts_are_rebuilt_when_an_answer_changes() -> None:
    from nnlint.facts.index import RecordingIndex

    first = FileFacts("train.py", cst.parse_module(SUBCLASSED_NET), module_name="train", project=RecordingIndex())
    before = first.summary()
    assert "Wrapped" not in before.models  # Net is unknown in phase one
    exported = _exports(facts_of(TORCH_NET, module="model", path="model.py"))
    project = ProjectIndex([exported])
    second = first.with_project(project)
    assert second is not first
    assert second._tree is first._tree and second.names is first.names  # the index-independent part
    assert second.models.exported_summaries()["Wrapped"].framework == "torch"  # a model now
    assert second.summary().models["Local"] == before.models["Local"]


BRANCHED_FORWARD = '''
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

class Discriminator(nn.Module):
    def __init__(self, ngpu):
        super().__init__()
        self.ngpu = ngpu
        self.main = nn.Sequential(nn.Linear(8, 1), nn.Sigmoid())
        self.other = nn.Sequential(nn.Linear(8, 1), nn.Tanh())

    def forward(self, x):
        if x.is_cuda and self.ngpu > 1:
            out = nn.parallel.data_parallel(self.main, x, range(self.ngpu))
        elif self.training:
            out = checkpoint(self.main, x, use_reentrant=False)
        else:
            out = self.main(x)
        return out.view(-1, 1).squeeze(1)

class Mixed(Discriminator):
    def forward(self, x):
        if self.ngpu:
            out = self.main(x)
        else:
            out = self.other(x)
        return out
'''


def test_branches_that_agree_give_the_output_activation() -> None:
    found = summaries(BRANCHED_FORWARD)
    assert found["Discriminator"].output_activation == "sigmoid"
    assert found["Discriminator"].output_units == 1


def test_branches_that_disagree_leave_the_output_unknown() -> None:
    assert summaries(BRANCHED_FORWARD)["Mixed"].output_activation is None


SIGMOID_NET = '''
import torch.nn as nn

class Scorer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 1)
        self.out = nn.Sigmoid()

    def forward(self, a, b):
        return self.out(self.fc(a - b))

class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 1)

    def forward(self, a, b):
        return self.fc(a - b)

def train(args, model, loader, *, epochs=1):
    for a, b, y in loader:
        scores = model(a, b).squeeze()
'''


def _parameter_model(source: str) -> ModelSummary | None:
    facts = facts_of(source)
    (use,) = [n for n in facts.walk() if isinstance(n, cst.Call) and isinstance(n.func, cst.Name)
              and n.func.value == "model"]
    return facts.models.model_of(use.func)


@pytest.mark.parametrize("calls, expected", [
    ("def main():\n    model = Scorer().to('cuda')\n    train(args, model, loader)\n", "Scorer"),
    ("train(args, Scorer(), loader)\ntrain(args, model=Scorer(), loader=loader)\n", "Scorer"),
    ("train(args, Scorer(), loader)\ntrain(args, Plain(), loader)\n", None),  # the calls disagree
    ("", None),  # never called here
    ("train(*everything)\n", None),
    ("train = wrap(train)\ntrain(args, Scorer(), loader)\n", None),  # another binding of the name
    ("train(args, Scorer(), loader)\ntrain = wrap(train)\ntrain(args, Plain(), loader)\n", None),
    ("train(args, Scorer(), loader)\nThread(target=train, args=(args, Plain(), loader))\n", None),
    ("train(args, Scorer(), loader)\nrunner.train(args, Plain())\nf(train=1)\n", "Scorer"),  # other names
])
def test_model_of_a_parameter_follows_the_calls_in_this_file(calls: str, expected: str | None) -> None:
    summary = _parameter_model(SIGMOID_NET + calls)
    assert (summary.name if summary is not None else None) == expected


def test_a_parameter_traced_to_what_the_call_passes() -> None:
    facts = facts_of(SIGMOID_NET + "train(args, Scorer(), loader)\n")
    (scores,) = [n for n in facts.walk() if isinstance(n, cst.Name) and n.value == "scores"]
    value = facts.dataflow.value_of(scores)
    assert facts.outputs.activation_of(value) == "sigmoid"


VAE = '''
import torch
import torch.nn as nn
import torch.nn.functional as F

class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.mu = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 784)
        self.head = nn.Sequential(nn.Linear(400, 10), nn.Softmax(dim=1))

    def encode(self, x):
        return self.mu(F.relu(self.fc1(x)))

    def decode(self, z, temperature=1.0):
        return torch.sigmoid(self.fc3(z) / temperature)

    def classify(self, x):
        return self.head(F.relu(self.fc1(x)))

    def forward(self, x):
        mu = self.encode(x)
        return self.decode(mu), mu, self.classify(x)

class Recursive(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def step(self, x):
        return self.step(torch.tanh(self.fc(x)))

    def forward(self, x):
        return self.step(x)
'''


def test_tuple_output_elements_through_helper_methods() -> None:
    summary = summaries(VAE)["VAE"]
    assert summary.output_activation is None  # a tuple is not one output
    assert summary.output_elements == ("sigmoid", None, "softmax")


def test_unpacked_element_of_a_model_call() -> None:
    facts = facts_of(VAE + "model = VAE()\nrecon, mu, probs = model(x)\nF.binary_cross_entropy(recon, x)\n"
                     "F.mse_loss(mu, t)\nF.cross_entropy(probs, y)\n")
    by_kind = {site.kind: facts.outputs.activation_of(site.prediction) for site in facts.losses.sites}
    assert by_kind == {"bce": "sigmoid", "mse": None, "cross_entropy": "softmax"}


def test_recursive_helper_method_terminates_unknown() -> None:
    assert summaries(VAE)["Recursive"].output_activation is None


def test_unpacked_element_of_a_model_from_another_file() -> None:
    exported = _exports(facts_of(VAE, module="vae", path="vae.py"))
    facts = facts_of("from vae import VAE\nimport torch.nn.functional as F\nmodel = VAE()\n"
                     "recon, mu, probs = model(x)\nF.binary_cross_entropy(recon, x)\n",
                     module="train", project=ProjectIndex([exported]), path="train.py")
    (site,) = facts.losses.sites
    assert facts.outputs.activation_of(site.prediction) == "sigmoid"


def test_recording_index_refuses_reuse_after_an_unrecorded_question() -> None:
    from nnlint.facts.index import RecordingIndex

    recording = RecordingIndex()
    assert recording.model("x.Net", "x.py") is None
    assert recording.answers_alike(ProjectIndex([]))
    recording.resolve("x.Net")  # answered, but not recorded
    assert not recording.answers_alike(ProjectIndex([]))


def test_branching_traces_stay_linear() -> None:
    import time

    chain = "".join(
        f"    if a:\n        {out} = torch.relu({inp})\n    elif b:\n        {out} = torch.tanh({inp})\n"
        f"    elif c:\n        {out} = torch.sigmoid({inp})\n    else:\n        {out} = torch.exp({inp})\n"
        for out, inp in [("y", "x"), ("x", "y")] * 4)
    recursive = ("def train(model):\n    for x in data:\n        loss = F.cross_entropy(model(x), y)\n"
                 "    if c:\n        train(model)\n    if d:\n        train(model)\n    train(model)\ntrain(net)\n")
    source = ("import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\ncriterion = nn.CrossEntropyLoss()\n"
              "for i in range(10):\n" + chain + "    loss = criterion(x, t)\n" + recursive)
    facts = facts_of(source)
    started = time.perf_counter()
    activations = [facts.outputs.activation_of(site.prediction) for site in facts.losses.sites]
    assert activations == [None, None]  # the branches disagree; the recursive parameter is unknown
    assert time.perf_counter() - started < 5.0  # exponential in the branches before memoisation
