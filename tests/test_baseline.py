"""``--write-baseline`` / ``--baseline``: only new findings are reported, and recorded ones keep
matching through unrelated edits (lines above, reformatting, a move within the function)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nnlint import cli

REPO = Path(__file__).resolve().parents[1]

SOURCE = '''import torch


def score(x):
    return torch.log(torch.softmax(x, dim=1))


class Head:
    def forward(self, x):
        y = x * 2
        return torch.log(torch.softmax(y, dim=1))
'''


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.py").write_text(SOURCE)
    return tmp_path


def _run(*args: str) -> int:
    return cli.main(["--no-cache", "--format", "concise", *args])


def _record(project: Path) -> Path:
    assert _run("--write-baseline", "base.json", "m.py") == 0
    return project / "base.json"


def test_write_baseline_records_every_finding_and_exits_0(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("m.py") == 1
    document = json.loads(_record(project).read_text())
    assert document["nnlint_baseline"] == 1
    entries = document["findings"]
    assert {(e["path"], e["code"], e["scope"], e["count"]) for e in entries} == {
        ("m.py", "NN401", "score", 1), ("m.py", "NN401", "Head.forward", 1)}
    assert "line" not in entries[0]
    assert "Recorded 2 findings" in capsys.readouterr().err


def test_baseline_hides_recorded_findings(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _record(project)
    capsys.readouterr()
    assert _run("--baseline", "base.json", "m.py") == 0
    assert "NN401" not in capsys.readouterr().out


def test_entries_survive_lines_above_reformatting_and_moves(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _record(project)
    edited = SOURCE.replace("import torch\n", "import torch\nimport os\n\n\nSCALE = 3\n")
    edited = edited.replace("torch.softmax(x, dim=1)", "torch.softmax(\n        x,\n        dim = 1,  # rows\n    )")
    edited = edited.replace("        y = x * 2\n        return torch.log(torch.softmax(y, dim=1))\n",
                            "        return torch.log(torch.softmax(y, dim=1))\n        y = x * 2\n")
    (project / "m.py").write_text(edited)
    capsys.readouterr()
    assert _run("m.py") == 1  # the findings are still there
    capsys.readouterr()
    assert _run("--baseline", "base.json", "m.py") == 0
    assert "NN401" not in capsys.readouterr().out


def test_new_findings_are_reported(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _record(project)
    (project / "m.py").write_text(SOURCE + "\n\ndef third(z):\n    return torch.log(torch.softmax(z, dim=0))\n"
                                  "\n\ndef score_again(x):\n    return torch.log(torch.softmax(x, dim=1))\n")
    capsys.readouterr()
    assert _run("--baseline", "base.json", "m.py") == 1
    out = capsys.readouterr().out
    assert "m.py:15:12: NN401" in out and "m.py:19:12: NN401" in out
    assert "m.py:5:" not in out and "m.py:11:" not in out


def test_a_duplicate_beyond_the_recorded_count_is_new(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _record(project)
    (project / "m.py").write_text(SOURCE.replace(
        "    return torch.log(torch.softmax(x, dim=1))\n",
        "    a = torch.log(torch.softmax(x, dim=1))\n    return torch.log(torch.softmax(x, dim=1))\n", 1))
    capsys.readouterr()
    assert _run("--baseline", "base.json", "m.py") == 1
    assert capsys.readouterr().out.count("NN401") == 1


def test_baseline_paths_are_relative_to_the_baseline(project: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _record(project)
    (project / "sub").mkdir()
    monkeypatch.chdir(project / "sub")
    capsys.readouterr()
    assert _run("--baseline", "../base.json", "../m.py") == 0


def test_notebook_findings_can_be_baselined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": text}
             for text in ("import torch\n%matplotlib inline", "def f(x):\n    return torch.log(torch.softmax(x, 1))")]
    notebook = {"cells": cells, "metadata": {"language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "nb.ipynb").write_text(json.dumps(notebook))
    assert _run("--write-baseline", "b.json", "nb.ipynb") == 0
    assert json.loads((tmp_path / "b.json").read_text())["findings"][0]["scope"] == "f"
    cells[1]["source"] = "x = 1\n\n" + cells[1]["source"]
    (tmp_path / "nb.ipynb").write_text(json.dumps(notebook))
    capsys.readouterr()
    assert _run("--baseline", "b.json", "nb.ipynb") == 0


def test_baseline_on_the_bundled_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    assert _run("examples") == 1
    assert _run("--write-baseline", "b.json", "examples") == 0
    for path in (tmp_path / "examples").glob("*.py"):
        path.write_text("# a header comment\n\n" + path.read_text())
    capsys.readouterr()
    assert _run("--baseline", "b.json", "examples") == 0


@pytest.mark.parametrize("content, words", [
    (b"{not json", "not a JSON baseline"),
    (b"\xff\xfe", "not a JSON baseline"),
    (b"[1, 2]", "not an nnlint baseline"),
    (b'{"nnlint_baseline": 99, "findings": []}', "unsupported baseline version"),
    (b'{"nnlint_baseline": true, "findings": []}', "unsupported baseline version"),
    (b'{"nnlint_baseline": 1, "findings": {}}', "'findings' must be a list"),
    (b'{"nnlint_baseline": 1, "findings": [3]}', "entry 1 is not an object"),
    (b'{"nnlint_baseline": 1, "findings": [{"path": "m.py", "code": "NN401", "scope": 1, '
     b'"fingerprint": "0123456789abcdef"}]}', "'scope' must be a string"),
    (b'{"nnlint_baseline": 1, "findings": [{"path": "m.py", "code": "NN401", "scope": "", '
     b'"fingerprint": "__import__(os)"}]}', "'fingerprint' must be 16"),
    (b'{"nnlint_baseline": 1, "findings": [{"path": "m.py", "code": "NN401", "scope": "", '
     b'"fingerprint": "0123456789abcdef", "count": -1}]}', "'count' must be"),
    (b"[" * 100000 + b"]" * 100000, "baseline"),
])
def test_a_malformed_baseline_is_a_clear_error(project: Path, capsys: pytest.CaptureFixture[str],
                                               content: bytes, words: str) -> None:
    (project / "bad.json").write_bytes(content)
    assert _run("--baseline", "bad.json", "m.py") == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and words in err and "Traceback" not in err


def test_a_missing_baseline_is_an_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("--baseline", "missing.json", "m.py") == 2
    assert "missing.json: cannot read" in capsys.readouterr().err


def test_write_baseline_refuses_fix(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("--write-baseline", "b.json", "--fix", "m.py") == 2
    assert not (project / "b.json").exists()
