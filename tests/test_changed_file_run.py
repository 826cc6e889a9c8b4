"""A pre-commit run lints only the changed files, with the project around them read for context.
After a whole-tree run, the unchanged files are answered from the cache: the run checks the changed
file (and what its edit invalidates), and gives the answer ``nnlint .`` gives."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import nnlint
import nnlint.engine as engine

MODEL = '''
import torch.nn as nn
import torch.nn.functional as F
import config


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(config.WIDTH, 10)

    def forward(self, x):
        return F.softmax(self.fc(x), dim=1)
'''

TRAIN = '''
import torch
import torch.nn.functional as F
from model import Net
from helpers import batches


def fit(loader):
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in batches(loader):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
'''


def _project(root: Path, users: int) -> None:
    (root / "pyproject.toml").write_text("[tool.nnlint]\n")
    (root / "config.py").write_text("WIDTH = 32\n")  # no framework code: read for its constants
    (root / "helpers.py").write_text("import torch\n\n\ndef batches(loader):\n    yield from loader\n")
    (root / "model.py").write_text(textwrap.dedent(MODEL))
    for n in range(users):
        (root / f"train_{n}.py").write_text(textwrap.dedent(TRAIN))
    # calls a function of train_0 without importing helpers: part of the index ``nnlint .`` builds
    (root / "main.py").write_text("import torch\nfrom train_0 import fit\n\nfit(torch.utils.data.DataLoader([]))\n")


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files each run checks (rather than answers from the cache)."""
    seen: list[str] = []
    original = engine.FileChecker.check

    def check(self, source, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(Path(source.display).name)
        return original(self, source, *args, **kwargs)

    monkeypatch.setattr(engine.FileChecker, "check", check)
    return seen


def test_a_changed_file_after_a_whole_run_is_the_only_file_checked(tmp_path: Path, checked: list[str]) -> None:
    _project(tmp_path, users=6)
    whole = nnlint.lint_paths([str(tmp_path)], engine.discover_settings([str(tmp_path)]), jobs=1)
    expected = sorted((Path(f.path).name, f.line, f.code) for f in whole.findings
                      if Path(f.path).name == "helpers.py")
    checked.clear()
    helpers = tmp_path / "helpers.py"
    helpers.write_text(helpers.read_text() + "# a comment changes nothing another file reads\n")
    alone = nnlint.lint_paths([str(helpers)], engine.discover_settings([str(helpers)]), jobs=1)
    assert checked == ["helpers.py"]
    assert sorted((Path(f.path).name, f.line, f.code) for f in alone.findings) == expected


def test_the_model_file_alone_gets_the_findings_its_users_place_there(tmp_path: Path, checked: list[str]) -> None:
    _project(tmp_path, users=3)
    settings = engine.discover_settings([str(tmp_path)])
    whole = nnlint.lint_paths([str(tmp_path)], settings, jobs=1)
    in_model = sorted((f.line, f.code) for f in whole.findings if Path(f.path).name == "model.py")
    assert (13, "NN201") in in_model  # the softmax, placed there by the losses of train_*.py
    model = tmp_path / "model.py"
    model.write_text(model.read_text() + "# touched\n")
    alone = nnlint.lint_paths([str(model)], engine.discover_settings([str(model)]), jobs=1)
    assert sorted((f.line, f.code) for f in alone.findings if Path(f.path).name == "model.py") == in_model
