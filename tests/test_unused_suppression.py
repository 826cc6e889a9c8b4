"""NN002: suppression comments that silence nothing are reported and removed by the safe fix."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import nnlint
from nnlint import cli
from nnlint.fixes import fixed_text

REPO = Path(__file__).resolve().parents[1]

SOURCE = '''import torch


def score(x):
    a = torch.zeros(3)  # nnlint: ignore[NN401] stale
    # nnlint: ignore[NN401]
    b = torch.ones(3)
    c = torch.log(torch.softmax(x, dim=1))  # nnlint: ignore[NN401, NN2O1]
    d = 1  # noqa: E501, NN105  # type: ignore
    e = 2  # noqa
    return torch.log(torch.softmax(x, dim=1))  # noqa: NN401
'''


def _nn002(source: str, **kwargs: object) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in nnlint.lint_source(source, path="m.py", **kwargs) if f.code == "NN002"]


def test_unused_and_unknown_codes_are_reported() -> None:
    assert _nn002(SOURCE) == [
        (5, "Unused suppression: NN401 (nothing to silence)"),
        (6, "Unused suppression: NN401 (nothing to silence)"),
        (8, "Unused suppression: NN2O1 (unknown code)"),
        (9, "Unused suppression: NN105 (nothing to silence)"),
    ]


def test_codes_of_rules_not_enabled_are_left_alone() -> None:
    assert _nn002(SOURCE, select=["NN002", "NN1"]) == [
        (8, "Unused suppression: NN2O1 (unknown code)"), (9, "Unused suppression: NN105 (nothing to silence)")]
    assert _nn002(SOURCE, ignore=["NN002"]) == []


def test_the_fix_removes_what_is_unused_and_keeps_the_rest() -> None:
    findings = nnlint.lint_source(SOURCE, path="m.py")
    outcome = fixed_text(SOURCE, findings)
    assert outcome is not None
    fixed, count = outcome
    assert count == 4
    assert fixed.splitlines()[4:10] == [
        "    a = torch.zeros(3)",
        "    b = torch.ones(3)",
        "    c = torch.log(torch.softmax(x, dim=1))  # nnlint: ignore[NN401]",
        "    d = 1  # noqa: E501  # type: ignore",
        "    e = 2  # noqa",
        "    return torch.log(torch.softmax(x, dim=1))  # noqa: NN401",
    ]
    assert _nn002(fixed) == []
    assert [f.code for f in nnlint.lint_source(fixed, path="m.py")] == []


def test_ignore_file_and_nn002_itself() -> None:
    source = "# nnlint: ignore-file[NN105]\nimport torch\nx = torch.zeros(3)  # nnlint: ignore[NN401, NN002]\n"
    assert _nn002(source) == [(1, "Unused suppression: NN105 (nothing to silence)")]


def test_a_suppression_another_file_may_use_is_not_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "model.py").write_text(
        "import torch.nn as nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(4, 3)\n        self.act = nn.Softmax(dim=1)\n\n"
        "    def forward(self, x):\n        return self.act(self.fc(x))  # nnlint: ignore[NN201]\n")
    (tmp_path / "train.py").write_text(
        "import torch.nn as nn\nfrom model import Net\n\nmodel = Net()\ncriterion = nn.CrossEntropyLoss()\n"
        "loss = criterion(model(x), y)\n")
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--no-cache", "--format", "concise", "."]) == 0, capsys.readouterr().out
    (tmp_path / "model.py").write_text((tmp_path / "model.py").read_text().replace("NN201", "NN202"))
    capsys.readouterr()
    assert cli.main(["--no-cache", "--format", "concise", "."]) == 1
    assert "NN201" in capsys.readouterr().out


def test_fix_add_ignore_round_trip_on_the_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--no-cache", "--add-ignore", "examples"]) == 0
    assert cli.main(["--no-cache", "examples"]) == 0  # every comment added is used
    for path in (tmp_path / "examples").glob("*.py"):
        path.write_text(path.read_text().replace("torch.log(torch.softmax(", "torch.log_softmax(("))
    assert cli.main(["--no-cache", "--select", "NN002", "examples"]) in (0, 1)
    assert cli.main(["--no-cache", "--fix", "examples"]) in (0, 1)
    assert cli.main(["--no-cache", "--select", "NN002", "examples"]) == 0
