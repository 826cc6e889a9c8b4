"""How projects spread a program over files: star imports (``from utils import *``, a package
``__init__`` re-exporting its modules with ``from .generator import *``), blocks of other files
built in loops, alternative constructors (``Model.load(path)``), and the mode a model is in when
another file hands it to an evaluation function. A line ending in ``# NN307`` must get exactly
that finding; no other finding of the selected codes may appear."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import nnlint
from test_program_shapes import _expected

BLOCK = '''
import torch.nn as nn
import torch.nn.functional as F


class ResidualBlock(nn.Module):
    def __init__(self, channels, dropout=0.1):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=1)
        self.dropout = dropout

    def forward(self, x):
        return x + F.dropout(self.conv(x), p=self.dropout, training=self.training)
'''

GENERATOR = '''
import torch.nn as nn
from vocoder.layers import ResidualBlock


class Generator(nn.Module):
    def __init__(self, channels=64, layers=10):
        super().__init__()
        self.blocks = nn.ModuleList()
        for _ in range(layers):
            block = ResidualBlock(channels)
            self.blocks += [block]

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x
'''

DECODE = '''
import torch
from vocoder.models import Generator


def main(checkpoint, features):
    model = Generator()
    model.load_state_dict(torch.load(checkpoint)["generator"])
    model = model.to("cuda")
    for c in features:
        with torch.no_grad():
            y = model(c)  # {mark}
        print(y.shape)
'''

UTILS_EVALUATE = '''
import torch


def do_eval(model, loader):
    correct = 0
    for batch in loader:
        outputs = model(**batch)  # {mark}
        correct += (outputs.logits.argmax(-1) == batch["labels"]).sum().item()
    return correct
'''

TRAIN_WITH_STAR = '''
import torch
from transformers import AutoModelForSequenceClassification
from utils import *


def main(loader, eval_loader):
    model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased")
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    for epoch in range(3):
        model.train()
        for step, batch in enumerate(loader):
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if step % 100 == 0:
                {before_eval}print(do_eval(model, eval_loader))
'''

CASES: dict[str, dict[str, str]] = {
    # a package ``__init__`` re-exports its modules with star imports; the generator's residual
    # blocks (another file) are built in a loop and carry its dropout
    "star-reexported-model-with-blocks-of-another-file": {
        "vocoder/__init__.py": "",
        "vocoder/layers/__init__.py": "from vocoder.layers.residual_block import *  # noqa\n",
        "vocoder/layers/residual_block.py": BLOCK,
        "vocoder/models/__init__.py": "from .generator import *  # noqa\n",
        "vocoder/models/generator.py": GENERATOR,
        "decode.py": DECODE.format(mark="NN307"),
    },
    # the same script, switching the model to eval mode after loading it
    "star-reexported-model-evaluated": {
        "vocoder/__init__.py": "",
        "vocoder/layers/__init__.py": "from vocoder.layers.residual_block import *  # noqa\n",
        "vocoder/layers/residual_block.py": BLOCK,
        "vocoder/models/__init__.py": "from .generator import *  # noqa\n",
        "vocoder/models/generator.py": GENERATOR,
        "decode.py": DECODE.format(mark="").replace('model = model.to("cuda")', 'model = model.to("cuda").eval()'),
    },
    # the parts file's ``import torch.nn as nn`` reaches the model file only through ``from .parts
    # import *``; the blocks (with batch norm) too, and a same-file model holds the one built of them
    "star-imported-parts-and-aliases": {
        "networks/__init__.py": "",
        "networks/parts.py": '''
import torch.nn as nn


class DoubleConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, x):
        return self.block(x)
''',
        "networks/generator.py": '''
from .parts import *


class UNet(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.inc = DoubleConv(cin, 32)
        self.outc = nn.Conv2d(32, cout, 1)

    def forward(self, x):
        return self.outc(self.inc(x))


class WNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.kspace = UNet(2, 2)
        self.image = UNet(1, 1)

    def forward(self, x):
        return self.image(self.kspace(x))
''',
        "predict.py": '''
import torch
from networks.generator import WNet

if __name__ == "__main__":
    net = WNet()
    net.load_state_dict(torch.load("generator.pt"))
    for path in test_files:
        image = net(torch.load(path))  # NN307
        torch.save(image, path + ".out")
''',
    },
    # ``from utils import *``: the training loop calls ``model.train()`` and then hands the model to
    # utils' evaluation function, which never switches it to eval mode
    "star-imported-evaluation-called-in-training-mode": {
        "utils.py": UTILS_EVALUATE.format(mark="NN307"),
        "train.py": TRAIN_WITH_STAR.format(before_eval=""),
    },
    # the caller switches to eval mode before the call (and back after it): correct
    "star-imported-evaluation-called-in-eval-mode": {
        "utils.py": UTILS_EVALUATE.format(mark=""),
        "train.py": TRAIN_WITH_STAR.format(before_eval="model.eval()\n                ").replace(
            "print(do_eval(model, eval_loader))", "print(do_eval(model, eval_loader))\n                model.train()"),
    },
    # a helper named for evaluation that training also runs (its result is backpropagated), and a
    # deliberate ``train(True)`` right before a call that restores the mode after it: quiet
    "evaluation-helper-run-in-training-mode-on-purpose": {
        "utils.py": UTILS_EVALUATE.format(mark=""),
        "train.py": '''
import torch
from utils import do_eval


def fit(model, loader, optimizer):
    for epoch in range(3):
        model.train()
        for batch in loader:
            loss = do_eval(model, [batch])
            loss.backward()
            optimizer.step()


def remove_baseline(model, loader):
    was_training = model.training
    model.train(True)
    result = do_eval(model, loader)
    model.train(was_training)
    return result
''',
    },
    # a file binding a name of its own is not reading it from the star import
    "star-import-shadowed-by-a-local-name": {
        "utils.py": UTILS_EVALUATE.format(mark=""),
        "train.py": TRAIN_WITH_STAR.format(before_eval="").replace(
            "def main(loader, eval_loader):", "def main(loader, eval_loader, do_eval=print):"),
    },
    # a test script builds its model through a registry nnlint cannot follow, loads trained weights
    # and runs it under no_grad in a loop: nothing ever switches it to eval mode
    "registry-model-loaded-and-run-by-a-script": {
        "test.py": '''
import torch
from registry import ModelFactory


def main(config, checkpoint, problem):
    model = ModelFactory.build_model(config)
    model.cuda()
    model.load_state_dict(torch.load(checkpoint))
    with torch.no_grad():
        for batch in problem.batches():
            logits = model(batch)  # NN307
            print(logits.argmax(-1))
''',
        "inference_evaluated.py": '''
import torch
from registry import ModelFactory


def main(config, checkpoint, problem):
    model = ModelFactory.build_model(config)
    model.load_state_dict(torch.load(checkpoint))
    model.eval()
    with torch.no_grad():
        return [model(batch) for batch in problem.batches()]
''',
        "finetune.py": '''
import torch
from registry import ModelFactory


def main(config, checkpoint, problem):
    model = ModelFactory.build_model(config)
    model.load_state_dict(torch.load(checkpoint))
    optimizer = torch.optim.Adam(model.parameters())
    with torch.no_grad():
        for batch in problem.batches():
            print(model(batch).argmax(-1))
    for batch in problem.batches():
        optimizer.zero_grad()
        model(batch).sum().backward()
        optimizer.step()
''',
    },
    # an alternative constructor (a classmethod that loads weights) returns a model with dropout
    "classmethod-loader-returns-the-model": {
        "hub.py": '''
import torch
import torch.nn as nn


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.drop = nn.Dropout(0.1)

    def forward(self, x):
        return self.drop(self.fc(x))


class Pretrained:
    @classmethod
    def load(cls, path, device="cpu"):
        model = Encoder()
        model.load_state_dict(torch.load(path, map_location=device))
        return model


def inference(path, x):
    model = Pretrained.load(path)
    with torch.inference_mode():
        return model(x)  # NN307


def inference_in_eval_mode(path, x):
    model = Pretrained.load(path).eval()
    with torch.inference_mode():
        return model(x)
''',
    },
}


def _write(tmp_path: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))


@pytest.mark.parametrize("case", sorted(CASES))
def test_project_shape(case: str, tmp_path: Path) -> None:
    files = CASES[case]
    _write(tmp_path, files)
    result = nnlint.lint_paths([str(tmp_path)], select=["NN307"], use_cache=False, jobs=1)
    assert not result.errors
    got = {(Path(f.path).relative_to(tmp_path).as_posix(), f.line, f.code) for f in result.findings}
    assert got == _expected(files)


@pytest.mark.parametrize("case, changed", [
    ("star-reexported-model-with-blocks-of-another-file", "decode.py"),
    ("star-imported-evaluation-called-in-training-mode", "utils.py"),
])
def test_changed_file_gets_the_whole_project_answer(case: str, changed: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """pre-commit passes only the changed file: the star imports are followed from it all the same."""
    files = CASES[case]
    _write(tmp_path, files)
    (tmp_path / "pyproject.toml").write_text("[tool.nnlint]\n")  # the project root
    monkeypatch.chdir(tmp_path)
    result = nnlint.lint_paths([changed], select=["NN307"], use_cache=False, jobs=1)
    assert not result.errors
    got = {(Path(f.path).as_posix(), f.line, f.code) for f in result.findings}
    assert got == {item for item in _expected(files) if item[0] == changed}
