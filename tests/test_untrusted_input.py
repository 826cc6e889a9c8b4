"""A tree from a stranger (a pull request linted in CI) cannot make nnlint misbehave.

``--fix`` edits the line the parser reported whatever the line endings, and one file that
cannot be fixed does not stop the others; symbolic links do not lead nnlint out of the paths
it was given, and nothing but regular files is opened; odd file names, huge files,
unreadable directories and bad configuration values give clear messages, never an
internal error.
"""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path
from typing import Iterator

import pytest

import nnlint.engine
from nnlint import cli
from nnlint.config import Settings
from nnlint.engine import lint_paths
from nnlint.files import write_atomically
from nnlint.fixes import apply_fixes
from nnlint.findings import Edit, Fix

REPO = Path(__file__).resolve().parents[1]

#: NN401 (log of a softmax) has a safe fix: ``torch.log(F.softmax(x, dim=1))`` -> ``F.log_softmax(x, dim=1)``
LOG_SOFTMAX_LINES = [
    "import torch",
    "import torch.nn.functional as F",
    "",
    "def nll(logits):",
    "    y = 1",
    "    return torch.log(F.softmax(logits, dim=1))",
]
FIXED_LAST_LINE = "    return F.log_softmax(logits, dim=1)"


def log_softmax_source(newlines: list[str]) -> bytes:
    """The NN401 example with the given line break after each line."""
    assert len(newlines) == len(LOG_SOFTMAX_LINES)
    return "".join(line + nl for line, nl in zip(LOG_SOFTMAX_LINES, newlines)).encode()


def fixed(newlines: list[str]) -> bytes:
    lines = LOG_SOFTMAX_LINES[:-1] + [FIXED_LAST_LINE]
    return "".join(line + nl for line, nl in zip(lines, newlines)).encode()


@pytest.fixture()
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path):
    """``nnlint --no-cache --select NN001,NN401 ARGS`` in-process in ``tmp_path`` -> (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str) -> tuple[int, str, str]:
        code = cli.main(["--no-cache", "--select", "NN001,NN401", *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


def json_findings(out: str) -> list[tuple[str, str, int]]:
    return [(f["path"], f["code"], f["line"]) for f in json.loads(out)["findings"]]


def assert_clean_stderr(err: str) -> None:
    assert "internal error" not in err and "Traceback" not in err and "panicked" not in err, err


# -- --fix and line breaks ----------------------------------------------------------

def test_fix_lands_on_the_reported_line_after_lone_carriage_returns(run, tmp_path: Path) -> None:
    """Lines broken by a lone \\r (as the parser counts them), the last one by \\n."""
    newlines = ["\r", "\r", "\r", "\r", "\r", "\n"]
    path = tmp_path / "model.py"
    path.write_bytes(log_softmax_source(newlines))
    code, out, err = run("--format", "json", "model.py")
    assert code == 1 and json_findings(out) == [("model.py", "NN401", 6)]
    code, out, err = run("--fix", "--format", "json", "model.py")
    assert_clean_stderr(err)
    assert code == 0 and json_findings(out) == []
    assert path.read_bytes() == fixed(newlines)


def test_fix_in_a_file_with_mixed_line_breaks(run, tmp_path: Path) -> None:
    """One stray \\r in a \\n file: CPython reads it as a line break, and so must the fix."""
    newlines = ["\r", "\n", "\n", "\r\n", "\n", "\n"]
    path = tmp_path / "model.py"
    path.write_bytes(log_softmax_source(newlines))
    code, out, err = run("--format", "json", "model.py")
    assert_clean_stderr(err)
    assert code == 1 and json_findings(out) == [("model.py", "NN401", 6)]
    code, out, err = run("--fix", "--format", "json", "model.py")
    assert code == 0 and json_findings(out) == []
    assert path.read_bytes() == fixed(newlines)


def test_cr_only_file_among_others_every_file_is_fixed(run, tmp_path: Path) -> None:
    files = {
        "a_unix.py": ["\n"] * 6,
        "b_old_mac.py": ["\r"] * 6,
        "c_windows.py": ["\r\n"] * 6,
        "d_unix.py": ["\n"] * 6,
    }
    for name, newlines in files.items():
        (tmp_path / name).write_bytes(log_softmax_source(newlines))
    code, out, err = run("--fix", "--format", "json", ".")
    assert_clean_stderr(err)
    assert code == 0 and json_findings(out) == []
    for name, newlines in files.items():
        assert (tmp_path / name).read_bytes() == fixed(newlines), name


def test_a_file_that_cannot_be_fixed_does_not_stop_the_others(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a.py", "b.py", "c.py"):
        (tmp_path / name).write_bytes(log_softmax_source(["\n"] * 6))
    real_write = nnlint.engine.write_atomically

    def write(path: str, data: bytes) -> None:
        if os.path.basename(path) == "b.py":
            raise PermissionError(errno.EACCES, "Permission denied", path)
        real_write(path, data)

    monkeypatch.setattr(nnlint.engine, "write_atomically", write)
    code, out, err = run("--fix", "--format", "json", ".")
    assert code == 2
    assert "b.py: not fixed: " in err and "Permission denied" in err
    assert_clean_stderr(err)
    assert json_findings(out) == [("b.py", "NN401", 6)]  # what is still wrong is still reported
    assert (tmp_path / "a.py").read_bytes() == fixed(["\n"] * 6)
    assert (tmp_path / "c.py").read_bytes() == fixed(["\n"] * 6)
    assert (tmp_path / "b.py").read_bytes() == log_softmax_source(["\n"] * 6)


def test_edits_are_located_with_the_parsers_line_breaks() -> None:
    text = "a = 1\rb = 2\r\nc = old\fvalue\n"  # \r and \r\n break lines; a form feed does not
    fix = Fix("rename", (Edit(line=3, column=5, end_line=3, end_column=8, content="new"),))
    assert apply_fixes(text, [fix]) == ("a = 1\rb = 2\r\nc = new\fvalue\n", 1)
    beyond = Fix("stale", (Edit(line=9, column=1, end_line=9, end_column=2, content="x"),))
    assert apply_fixes(text, [beyond]) == (text, 0)  # positions from another text: nothing applied


def test_line_break_mix_that_crashes_the_cst_parser(tmp_path: Path) -> None:
    """libcst's native parser panics on a \\r line followed by a \\r\\n one (a Rust panic, not an Exception)."""
    (tmp_path / "mixed.py").write_bytes(b"import torch\rimport torch.nn.functional as F\r\n")
    (tmp_path / "model.py").write_bytes(log_softmax_source(["\n"] * 6))
    env = dict(os.environ, PYTHONPATH=str(REPO), RUST_BACKTRACE="1")
    done = subprocess.run(
        [sys.executable, "-m", "nnlint", "--no-cache", "--select", "NN001,NN401", "--format", "json", "."],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )
    assert_clean_stderr(done.stderr)
    assert done.returncode == 1 and json_findings(done.stdout) == [("model.py", "NN401", 6)]


# -- symbolic links and files that are not regular --------------------------------

@pytest.fixture()
def tree_with_links(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """project/ with links out of it (to a file, a directory, /dev/zero) and one within it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.py"
    victim.write_bytes(log_softmax_source(["\n"] * 6))
    project = tmp_path / "project"
    (project / "pkg").mkdir(parents=True)
    (project / "pkg" / "own.py").write_bytes(log_softmax_source(["\n"] * 6))
    os.symlink(victim, project / "pkg" / "stolen.py")
    os.symlink(outside, project / "elsewhere")
    os.symlink("/dev/zero", project / "zero.py")
    os.symlink(project / "pkg", project / "same")  # stays inside: followed (and walked once)
    yield project, victim


def test_links_leaving_the_linted_paths_are_skipped_and_never_fixed(
    run, tree_with_links: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, victim = tree_with_links
    before = victim.read_bytes()
    monkeypatch.chdir(project)
    code, out, err = run("--fix", "--format", "json", ".")
    assert code == 0 and json_findings(out) == []
    assert victim.read_bytes() == before, "a file outside the project was rewritten"
    assert (project / "pkg" / "own.py").read_bytes() == fixed(["\n"] * 6)
    skipped = [line for line in err.splitlines() if "leaves the linted paths" in line]
    assert sorted(skipped) == sorted(
        f"nnlint: warning: {name}: skipped: a symbolic link that leaves the linted paths"
        for name in ("elsewhere", os.path.join("pkg", "stolen.py"), "zero.py")
    )
    assert_clean_stderr(err)


def test_link_to_the_filesystem_root_is_not_walked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = Path(os.path.realpath(tmp_path)) / "project"
    project.mkdir()
    (project / "model.py").write_bytes(log_softmax_source(["\n"] * 6))
    os.symlink("/", project / "everything")
    real_scandir = os.scandir

    def scandir(path: str = "."):
        real, spelled = os.path.realpath(path), os.path.abspath(path)
        if spelled.startswith(str(project)) and not real.startswith(str(project)):
            raise AssertionError(f"walked {real} from {spelled}, outside the linted paths")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = lint_paths([str(project)], Settings(), select="NN001,NN401", use_cache=False, jobs=1)
    assert result.files_seen == 1 and [f.code for f in result.findings] == ["NN401"]
    assert result.warnings == (
        f"{project / 'everything'}: skipped: a symbolic link that leaves the linted paths",
    )


def test_links_inside_the_tree_and_given_links_are_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "model.py").write_bytes(log_softmax_source(["\n"] * 6))
    os.symlink(real / "model.py", real / "again.py")
    os.symlink(real, tmp_path / "given")
    result = lint_paths([str(tmp_path / "given")], Settings(), select="NN001,NN401", use_cache=False, jobs=1)
    assert result.warnings == () and result.files_seen == 1 and len(result.findings) == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_reported_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.py")
    (tmp_path / "model.py").write_bytes(log_softmax_source(["\n"] * 6))
    result = lint_paths([str(tmp_path)], Settings(), select="NN001,NN401", use_cache=False, jobs=1)
    assert result.warnings == (f"{tmp_path / 'pipe.py'}: skipped: not a regular file",)
    assert [f.code for f in result.findings] == ["NN401"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_reading_a_path_that_became_a_fifo_does_not_block(tmp_path: Path) -> None:
    """A file replaced by a FIFO between discovery and reading: opening it must not wait for a writer."""
    os.mkfifo(tmp_path / "pipe.py")
    script = f"from nnlint.files import read_bytes; print(read_bytes({str(tmp_path / 'pipe.py')!r}))"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("reading a FIFO blocked")
    assert done.stdout.strip() == "None"


def test_fixes_are_never_written_through_a_link(tmp_path: Path) -> None:
    target = tmp_path / "target.py"
    target.write_text("x = 1\n")
    os.symlink(target, tmp_path / "link.py")
    with pytest.raises(OSError):
        write_atomically(str(tmp_path / "link.py"), b"x = 2\n")
    assert target.read_text() == "x = 1\n" and os.path.islink(tmp_path / "link.py")


# -- file names, sizes, permissions -------------------------------------------------

def _bad_name(tmp_path: Path) -> Path:
    try:
        path = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"bad\xff.py")))
        path.write_bytes(log_softmax_source(["\n"] * 6))
    except (OSError, UnicodeError):
        pytest.skip("the file system does not take non-UTF-8 file names")
    return path


@pytest.mark.parametrize("fmt", ["json", "sarif", "github", "full", "concise"])
def test_file_name_that_is_not_utf8(run, tmp_path: Path, fmt: str) -> None:
    _bad_name(tmp_path)
    code, out, err = run("--format", fmt, ".")
    assert_clean_stderr(err)
    assert code == 1
    if fmt == "json":
        assert json_findings(out) == [("bad\\xff.py", "NN401", 6)]
    elif fmt == "sarif":
        assert len(json.loads(out)["runs"][0]["results"]) == 1
    else:
        assert "bad\\xff.py" in out


def test_file_over_the_size_limit_is_not_read(tmp_path: Path) -> None:
    big = tmp_path / "generated.py"
    with open(big, "wb") as handle:  # sparse: 100 MB on paper, nothing on disk
        handle.write(b"import torch\n")
        handle.truncate(100_000_000)
    (tmp_path / "model.py").write_bytes(log_softmax_source(["\n"] * 6))
    tracemalloc.start()
    try:
        result = lint_paths([str(tmp_path)], Settings(), select="NN001,NN401", use_cache=False, jobs=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 30_000_000, f"{peak / 1e6:.0f} MB allocated: the big file was read"
    assert result.warnings == (
        f"{big}: skipped: 100.0 MB is over the 2 MB limit for one file (generated code?)",
    )
    assert [f.code for f in result.findings] == ["NN401"]


def _deny(monkeypatch: pytest.MonkeyPatch, locked: Path) -> None:
    """Make ``locked`` behave like a directory with mode 000 (root ignores real permissions)."""
    locked_str = os.path.abspath(locked)

    def below(path: object) -> bool:
        text = os.path.abspath(os.fsdecode(path)) if isinstance(path, (str, bytes, os.PathLike)) else ""
        return text.startswith(locked_str + os.sep)

    def denied(path: object) -> OSError:
        return PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))  # type: ignore[arg-type]

    real_stat, real_lstat, real_scandir, real_open = os.stat, os.lstat, os.scandir, os.open

    def stat(path, *args, **kwargs):
        if below(path):
            raise denied(path)
        return real_stat(path, *args, **kwargs)

    def lstat(path, *args, **kwargs):
        if below(path):
            raise denied(path)
        return real_lstat(path, *args, **kwargs)

    def scandir(path="."):
        if os.path.abspath(os.fsdecode(path)) == locked_str or below(path):
            raise denied(path)
        return real_scandir(path)

    def open_(path, *args, **kwargs):
        if below(path):
            raise denied(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(os, "lstat", lstat)
    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "open", open_)


def test_unreadable_directories_are_reported(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("locked", "ok"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.py").write_bytes(log_softmax_source(["\n"] * 6))
    _deny(monkeypatch, tmp_path / "locked")
    for args in (["locked", "ok"], ["."]):  # an unreadable root, and an unreadable subdirectory
        code, out, err = run("--format", "json", *args)
        assert_clean_stderr(err)
        assert code == 2, args
        assert "nnlint: error: locked: cannot read directory: Permission denied" in err, args
        assert json_findings(out) == [(os.path.join("ok", "model.py"), "NN401", 6)], args


# -- configuration values ---------------------------------------------------------

def write_config(tmp_path: Path, body: str) -> None:
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent(body))
    (tmp_path / "model.py").write_bytes(log_softmax_source(["\n"] * 6))


@pytest.mark.parametrize(
    "body, expected",
    [
        ('per-file-ignores = { "" = ["NN401"] }', "per-file-ignores: '' is not a file pattern"),
        ('per-file-ignores = { "a\\u0000b" = ["NN401"] }', "per-file-ignores: 'a\\x00b' is not a file pattern"),
        ('extend-exclude = ["gen/\\u0000"]', "extend-exclude: 'gen/\\x00' is not a file pattern"),
    ],
    ids=["empty-pattern", "nul-pattern", "nul-exclude"],
)
def test_bad_file_patterns_are_configuration_errors(run, tmp_path: Path, body: str, expected: str) -> None:
    write_config(tmp_path, f"[tool.nnlint]\n{body}\n")
    code, out, err = run(".")
    assert code == 2 and out == ""
    assert expected in err
    assert_clean_stderr(err)


def test_nul_in_a_path_is_a_clear_error(run) -> None:
    code, out, err = run("model\0.py")
    assert code == 2 and out == ""
    assert err == "nnlint: error: model\\x00.py: a path cannot contain a NUL character\n"


@pytest.mark.parametrize(
    "table, option, value, expected",
    [
        ("NN312", "max-lr", "-1", "must be > 0"),
        ("NN312", "max-lr", "0", "must be > 0"),
        ("NN312", "max-lr", "nan", "must be a finite number"),
        ("NN312", "max-lr", "inf", "must be a finite number"),
        ("NN312", "max-shallow-depth", "-1", "must be >= 0"),
        ("NN102", "max-depth", "0", "must be >= 1"),
        ("saturating-activation-stack", "max-depth", "-3", "must be >= 1"),
        ("NN103", "max-std", "-inf", "must be a finite number"),
        ("NN103", "max-std", "0.0", "must be > 0"),
        ("NN311", "min-depth", "0", "must be >= 1"),
        ("NN902", "min-depth", "-2", "must be >= 1"),
    ],
)
def test_out_of_range_options_are_configuration_errors(
    run, tmp_path: Path, table: str, option: str, value: str, expected: str
) -> None:
    write_config(tmp_path, f"[tool.nnlint.{table}]\n{option} = {value}\n")
    code, out, err = run(".")
    assert code == 2 and out == ""
    assert f"option {option!r} of " in err and expected in err and str(tmp_path / "pyproject.toml") in err
    assert_clean_stderr(err)


@pytest.mark.parametrize(
    "table, option, value",
    [("NN312", "max-lr", "0.05"), ("NN312", "max-shallow-depth", "0"), ("NN102", "max-depth", "1"), ("NN103", "max-std", "2")],
)
def test_options_in_range_are_accepted(run, tmp_path: Path, table: str, option: str, value: str) -> None:
    write_config(tmp_path, f"[tool.nnlint.{table}]\n{option} = {value}\n")
    code, out, err = run(".")
    assert code == 1 and err == ""


# -- code that is valid but beyond the CST parser ---------------------------------

def test_ten_thousand_concatenated_strings_are_not_called_new_syntax(run, tmp_path: Path) -> None:
    strings = " ".join('"a"' for _ in range(10_000))
    (tmp_path / "table.py").write_text(f"import torch\nx = (\n    {strings}\n)\n")
    (tmp_path / "model.py").write_bytes(log_softmax_source(["\n"] * 6))
    start = time.monotonic()
    code, out, err = run("--format", "json", ".")
    assert time.monotonic() - start < 30
    assert json_findings(out) == [("model.py", "NN401", 6)]  # no NN001 "newer Python version?" for table.py
    assert code == 1
    assert err == (
        "nnlint: warning: table.py: skipped: too deeply nested to analyse (10000 implicitly concatenated "
        "strings from line 3; the CST parser takes at most 3000)\n"
    )


def test_long_string_table_in_a_reported_statement_does_not_abort_the_run(run, tmp_path: Path) -> None:
    """3000 strings parse, but libcst nests them 3000 deep: locating a finding there recurses too far."""
    strings = " ".join('"a"' for _ in range(3000))
    lines = LOG_SOFTMAX_LINES[:5] + [f"    return torch.log(F.softmax(logits, dim=1)) + len({strings})"]
    (tmp_path / "table.py").write_text("\n".join(lines) + "\n")
    (tmp_path / "model.py").write_bytes(log_softmax_source(["\n"] * 6))
    code, out, err = run("--format", "json", ".")
    assert_clean_stderr(err)
    assert code == 1 and json_findings(out) == [("model.py", "NN401", 6)]
    assert err == (
        "nnlint: warning: table.py: NN401 skipped: too deeply nested to analyse "
        "(3000 implicitly concatenated strings from line 6)\n"
    )


# -- documentation -------------------------------------------------------------------

def test_docs_and_hook_use_the_console_script() -> None:
    """``python -m nnlint`` puts the working directory first on ``sys.path``: an untrusted tree can shadow modules."""
    hook = (REPO / ".pre-commit-hooks.yaml").read_text()
    assert "entry: nnlint\n" in hook and "python -m" not in hook
    readme = (REPO / "README.md").read_text()
    usage = readme.split("## Using the static checker", 1)[1].split("\n## ", 1)[0]
    assert "python -m nnlint" in usage and "shadow" in usage


@pytest.mark.parametrize("body", [
    "y = x" + ".relu()" * 1000,                                   # a 1000-call chain
    "x = " + " + ".join(["1"] * 1000),                            # a 1000-term sum
    "for i in range(3):\n    if i == 0:\n        pass\n"          # a 2000-branch elif chain
    + "".join(f"    elif i == {k}:\n        pass\n" for k in range(1, 2000)),
])
def test_pathologically_deep_valid_code_is_skipped_quickly(tmp_path: Path, body: str) -> None:
    """Valid code nested deeper than anything real takes the CST parser and the facts minutes: it is
    skipped with a warning, in well under a second, and the other files are still checked."""
    import time

    import nnlint

    (tmp_path / "deep.py").write_text("import torch\n" + body + "\n")
    (tmp_path / "model.py").write_text("import torch.nn as nn\nmodel = nn.Sequential(nn.Linear(4, 3), nn.Softmax(1))\n"
                                       "loss = nn.CrossEntropyLoss()(model(x), y)\n")
    started = time.perf_counter()
    result = nnlint.lint_paths([str(tmp_path)], select=["NN201"], use_cache=False, jobs=1)
    assert time.perf_counter() - started < 5
    assert [Path(f.path).name for f in result.findings] == ["model.py"]
    assert any("deep.py: skipped: too deeply nested to analyse" in w for w in result.warnings)
    assert result.errors == ()
