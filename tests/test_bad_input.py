"""Bad input never crashes nnlint and never prints a traceback.

Syntax errors, undecodable bytes, BOMs, CRLF, tabs, empty files, huge or pathologically
nested files, symlink loops, missing paths, directories without Python, repeated paths.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nnlint.catalogue
from nnlint import cli
from nnlint.catalogue import rules_directory

REPO = Path(__file__).resolve().parents[1]

FLAG_SOFTMAX = '''"""
## What it does
Test rule: flags `nn.Softmax(...)`.
"""
from nnlint.rule import Context, Rule


class BadInputFlagSoftmax(Rule):
    code = "NN881"
    name = "bad-input-flag-softmax"
    severity = "error"
    default = True
    fixable = False
    options = {}

    def check(self, ctx: Context) -> None:
        for call in ctx.facts.calls():
            if ctx.facts.names.qualname(call.func) == "torch.nn.Softmax":
                ctx.report(call, "softmax layer here")
'''

SOFTMAX = "import torch.nn as nn\nhead = nn.Softmax(dim=1)\n"


@pytest.fixture(scope="module")
def private_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bad_input_rules")
    shutil.copy(rules_directory() / "nn001_parse_error.py", directory)
    (directory / "nn881_bad_input_flag_softmax.py").write_text(FLAG_SOFTMAX)
    return directory


@pytest.fixture()
def lint(private_rules: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path):
    """``nnlint --format json --no-cache ARGS`` in-process in ``tmp_path`` -> (exit code, findings, stderr)."""
    real = nnlint.catalogue.load_catalogue
    monkeypatch.setattr(nnlint.catalogue, "load_catalogue", lambda directory=None: real(directory or private_rules))
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str) -> tuple[int, list[dict], str]:
        code = cli.main(["--format", "json", "--no-cache", *args])
        captured = capsys.readouterr()
        findings = json.loads(captured.out)["findings"] if captured.out else []
        return code, findings, captured.err

    return invoke


def nnlint_process(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "nnlint", "--no-cache", *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout,
    )


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text and "internal error" not in text, text


def positions(findings: list[dict]) -> list[tuple[str, int, int]]:
    return [(f["code"], f["line"], f["column"]) for f in findings]


def test_syntax_error_is_nn001_at_its_position_and_other_files_are_still_linted(lint, tmp_path: Path) -> None:
    (tmp_path / "a_broken.py").write_text("import torch.nn as nn\n\ndef f(:\n    pass\n")
    (tmp_path / "b_model.py").write_text(SOFTMAX)
    code, findings, err = lint(".")
    assert code == 1 and err == ""
    assert [(f["path"], f["code"], f["line"], f["column"]) for f in findings] == [
        ("a_broken.py", "NN001", 3, 7),
        ("b_model.py", "NN881", 2, 8),
    ]
    assert findings[0]["message"].startswith("syntax error: ")


def test_syntax_error_through_the_real_command(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import torch\nfor x in range(3) print(x)\n")
    done = nnlint_process(["--format", "concise", "broken.py"], tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0].startswith("broken.py:2:")
    assert " NN001 syntax error" in done.stdout
    assert_no_traceback(done.stderr)


def test_invalid_utf8(lint, tmp_path: Path) -> None:
    (tmp_path / "latin.py").write_bytes(b"import torch\nname = '\xe9t\xe9'\n")
    (tmp_path / "ok.py").write_text(SOFTMAX)
    code, findings, err = lint(".")
    assert code == 1 and err == ""
    assert positions(findings) == [("NN001", 2, 9), ("NN881", 2, 8)]
    assert "UTF-8" in findings[0]["message"]


def test_unknown_coding_cookie(lint, tmp_path: Path) -> None:
    # a codec registered at run time (``future_fstrings``) is unknown here: the file is read as UTF-8
    (tmp_path / "m.py").write_bytes(b"# -*- coding: future_fstrings -*-\n" + SOFTMAX.encode())
    code, findings, err = lint("m.py")
    assert code == 1 and err == "" and positions(findings) == [("NN881", 3, 8)]
    # ... and if it is not UTF-8 either, it is a parse error
    (tmp_path / "m.py").write_bytes(b"# -*- coding: klingon -*-\nimport torch\nx = '\xff'\n")
    code, findings, err = lint("m.py")
    assert code == 1 and err == "" and positions(findings) == [("NN001", 1, 1)]


def test_declared_latin1_file_is_decoded(lint, tmp_path: Path) -> None:
    (tmp_path / "m.py").write_bytes(b"# -*- coding: latin-1 -*-\nimport torch.nn as nn\nname = '\xe9'; head = nn.Softmax(1)\n")
    code, findings, _ = lint("m.py")
    assert positions(findings) == [("NN881", 3, 20)]


def test_bom_does_not_shift_columns(lint, tmp_path: Path) -> None:
    (tmp_path / "m.py").write_bytes("\ufeffimport torch.nn as nn; head = nn.Softmax(1)\n".encode("utf-8"))
    code, findings, _ = lint("m.py")
    assert positions(findings) == [("NN881", 1, 31)]


def test_crlf_and_lone_cr_line_endings(lint, tmp_path: Path) -> None:
    (tmp_path / "crlf.py").write_bytes(b"import torch.nn as nn\r\n\r\nhead = nn.Softmax(dim=1)\r\n")
    code, findings, _ = lint("crlf.py")
    assert positions(findings) == [("NN881", 3, 8)]
    assert (findings[0]["end_line"], findings[0]["end_column"]) == (3, 25)


def test_crlf_full_output_has_no_carriage_returns(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_bytes(b"import torch\r\nx = (\r\n")
    done = nnlint_process(["--format", "full", "m.py"], tmp_path)
    assert done.returncode == 1 and "\r" not in done.stdout
    assert "2 | x = (" in done.stdout


def test_tabs(lint, tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("import torch.nn as nn\nif True:\n\thead = nn.Softmax(dim=1)\n")
    code, findings, _ = lint("m.py")
    assert positions(findings) == [("NN881", 3, 9)]


def test_inconsistent_tabs_are_a_parse_error(lint, tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("import torch\nif True:\n        x = 1\n\ty = 2\n")
    code, findings, err = lint("m.py")
    assert code == 1 and err == "" and [f["code"] for f in findings] == ["NN001"]


@pytest.mark.parametrize(
    "content",
    [b"", b"\n", b"   \n\n", b"# torch\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf# torch\n", b"import torch"],
)
def test_empty_and_trivial_files(lint, tmp_path: Path, content: bytes) -> None:
    (tmp_path / "m.py").write_bytes(content)
    assert lint("m.py") == (0, [], "")


def test_null_bytes_and_binary_garbage(lint, tmp_path: Path) -> None:
    (tmp_path / "nul.py").write_bytes(b"import torch\nx = 1\x00\n")
    (tmp_path / "bin.py").write_bytes(bytes(range(256)) * 4 + b"torch")
    code, findings, err = lint(".")
    assert code == 1 and err == ""
    assert sorted(f["path"] for f in findings) == ["bin.py", "nul.py"]
    assert {f["code"] for f in findings} == {"NN001"}


def test_five_megabyte_file_finishes_fast(tmp_path: Path) -> None:
    lines = ["import torch.nn as nn", ""]
    size, index = 0, 0
    while size < 5_000_000:
        line = f"layer_{index} = nn.Linear({index % 64 + 1}, {index % 32 + 1})"
        lines.append(line)
        size += len(line) + 1
        index += 1
    (tmp_path / "generated.py").write_text("\n".join(lines) + "\n")
    (tmp_path / "model.py").write_text("import torch\nx = (\n")
    start = time.monotonic()
    try:
        done = nnlint_process(["--format", "concise", "."], tmp_path, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("linting a 5 MB file took more than 30 s")
    elapsed = time.monotonic() - start
    assert_no_traceback(done.stderr)
    assert "model.py:2:" in done.stdout, "the other file is still linted"
    assert elapsed < 30


@pytest.mark.parametrize(
    "expression",
    ["'-' * 10000 + '1'", "'(' * 5000 + ')' * 5000", "'not ' * 50000 + 'x'", "'a' + '.b' * 100000"],
    ids=["unary-chain", "nested-parens", "not-chain", "attribute-chain"],
)
def test_pathological_nesting_does_not_crash(tmp_path: Path, expression: str) -> None:
    (tmp_path / "deep.py").write_text("import torch\nx = " + eval(expression) + "\n")
    (tmp_path / "model.py").write_text("import torch\nx = (\n")
    done = nnlint_process(["--format", "json", "."], tmp_path, timeout=60)
    assert done.returncode in (1, 2), f"nnlint died (exit {done.returncode}): {done.stderr[-500:]}"
    assert "Traceback" not in done.stderr
    paths = {f["path"] for f in json.loads(done.stdout)["findings"]}
    assert "model.py" in paths


def test_symlink_loop(lint, tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(SOFTMAX)
    os.symlink(tmp_path / "pkg", tmp_path / "pkg" / "again")
    os.symlink(tmp_path / "pkg" / "self_link.py", tmp_path / "pkg" / "self_link.py")  # a dangling self-loop
    code, findings, err = lint(".")
    assert code == 1 and err == ""
    assert [(f["path"], f["code"]) for f in findings] == [(os.path.join("pkg", "m.py"), "NN881")]


def test_missing_path_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(SOFTMAX)
    done = nnlint_process(["m.py", "does/not/exist.py"], tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "nnlint: error: does/not/exist.py: no such file or directory\n"


def test_directory_without_python_files(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("import torch\n")
    (tmp_path / "docs" / "model.py.txt").write_text("import torch\nx = (\n")
    (tmp_path / "docs" / "folder.py").mkdir()  # a directory with a .py name is not a file
    done = nnlint_process(["docs"], tmp_path)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == "All checks passed!\n"


def test_path_given_twice_is_linted_once(lint, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "m.py").write_text(SOFTMAX)
    for args in (["d/m.py", "d/m.py"], ["d", "d/m.py", "./d", str(tmp_path / "d")], ["d/m.py", "./d/../d/m.py"]):
        code, findings, _ = lint(*args)
        assert len(findings) == 1, args


def test_unusual_file_names(lint, tmp_path: Path) -> None:
    for name in ("with space.py", "ünï cödé.py", "comma,colon:.py"):
        (tmp_path / name).write_text(SOFTMAX)
    code, findings, _ = lint(".")
    assert sorted(f["path"] for f in findings) == sorted(["comma,colon:.py", "with space.py", "ünï cödé.py"])


def test_unreadable_file(lint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file the user may not read (simulated: the suite may run as root, who reads anything)."""
    import errno

    (tmp_path / "secret.py").write_text(SOFTMAX)
    (tmp_path / "other.py").write_text(SOFTMAX)
    real_open = os.open

    def guarded_open(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.path.basename(os.fsdecode(name)) == "secret.py":
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(name))
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)
    code, findings, err = lint(".")
    assert code == 2 and "secret.py: cannot read file" in err
    assert [f["path"] for f in findings] == ["other.py"]
    assert_no_traceback(err)
