"""``--add-ignore``: a comment that silences each finding, merged with what is there, idempotent."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nnlint import cli
from nnlint.add_ignore import with_ignores
from nnlint.findings import Finding

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> int:
    return cli.main(["--no-cache", "--format", "concise", *args])


def _finding(code: str, line: int, end_line: int = 0) -> Finding:
    return Finding(code, "x", "warning", "m", "m.py", line, 1, end_line or line, 2)


def test_comment_added_merged_and_appended() -> None:
    text = "a = f(x)\nb = g(x)  # nnlint: ignore[NN101] reason\nc = h(x)  # type: ignore\n"
    new, count, left = with_ignores(text, [_finding("NN401", 1), _finding("NN201", 1), _finding("NN401", 2),
                                           _finding("NN105", 3)])
    assert (count, left) == (3, 0)
    assert new.splitlines() == [
        "a = f(x)  # nnlint: ignore[NN201, NN401]",
        "b = g(x)  # nnlint: ignore[NN101, NN401] reason",
        "c = h(x)  # type: ignore  # nnlint: ignore[NN105]",
    ]
    assert with_ignores(new, [_finding("NN401", 1), _finding("NN401", 2), _finding("NN105", 3)])[1] == 0


def test_never_inside_a_multi_line_string_and_not_after_a_backslash() -> None:
    text = 'x = f("""a\nb""", y)\nz = 1 + \\\n    2\nw = (1,\n     """q\nr""")\n'
    new, count, _ = with_ignores(text, [_finding("NN401", 1, 2), _finding("NN105", 3, 4), _finding("NN201", 5, 7)])
    assert new.splitlines() == [
        'x = f("""a', 'b""", y)  # nnlint: ignore[NN401]',
        "z = 1 + \\", "    2  # nnlint: ignore[NN105]",
        "w = (1,  # nnlint: ignore[NN201]", '     """q', 'r""")',
    ]
    assert count == 3


def test_a_comment_line_above_when_no_line_can_take_one() -> None:
    text = 'def f():\n    g("""a\nb""")\n'
    new, count, _ = with_ignores(text, [_finding("NN401", 2, 3)])
    # line 2 ends inside the string, line 3 is the string's end, but the statement's line 3 can take a comment
    assert new == 'def f():\n    g("""a\nb""")  # nnlint: ignore[NN401]\n'
    text = 'def f():\n    g("""a\nb\n""" + """c\nd""")\n'
    new, count, _ = with_ignores(text, [_finding("NN401", 2, 3)])
    assert new == 'def f():\n    # nnlint: ignore[NN401]\n    g("""a\nb\n""" + """c\nd""")\n' and count == 1


def test_line_breaks_are_kept() -> None:
    new, _, _ = with_ignores("a = f(x)\r\nb = 1\r\n", [_finding("NN401", 1)])
    assert new == "a = f(x)  # nnlint: ignore[NN401]\r\nb = 1\r\n"


def test_relint_after_add_ignore_is_clean_on_the_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    assert _run("examples") == 1
    assert _run("--add-ignore", "examples") == 0
    assert "Added 13 ignore comments to 4 files." in capsys.readouterr().err
    after = {p: p.read_bytes() for p in (tmp_path / "examples").glob("*.py")}
    assert _run("examples") == 0
    assert _run("--add-ignore", "examples") == 0  # idempotent
    assert {p: p.read_bytes() for p in (tmp_path / "examples").glob("*.py")} == after


def test_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": text}
             for text in (["import torch\n", "%matplotlib inline"],
                          ["!pip list\n", "y = torch.log(torch.softmax(x, 1))  # note\n", "s = '''a\n", "'''"])]
    notebook = {"cells": cells, "metadata": {"language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "nb.ipynb").write_text(json.dumps(notebook, indent=1))
    monkeypatch.chdir(tmp_path)
    assert _run("nb.ipynb") == 1
    assert _run("--add-ignore", "nb.ipynb") == 0
    written = json.loads((tmp_path / "nb.ipynb").read_text())
    assert written["cells"][1]["source"][1] == "y = torch.log(torch.softmax(x, 1))  # note  # nnlint: ignore[NN401]\n"
    assert written["cells"][1]["source"][0] == "!pip list\n"
    nbformat = pytest.importorskip("nbformat")
    nbformat.validate(nbformat.reads((tmp_path / "nb.ipynb").read_text(), as_version=4))
    assert _run("nb.ipynb") == 0


def test_add_ignore_refuses_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.py").write_text("import torch\ny = torch.log(torch.softmax(x, 1))\n")
    assert _run("--add-ignore", "--fix", "m.py") == 2
    assert "ignore" not in (tmp_path / "m.py").read_text()
