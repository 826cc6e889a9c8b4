"""The ``nnlint`` command end to end: subcommands, flags, formats, exit codes, fixes,
configuration and suppression comments.

Most tests call :func:`nnlint.cli.main` in-process with a private catalogue (the real
NN001 plus two small test rules, one with a safe and one with an unsafe fix), so they do
not depend on which real rules exist. A few run the real command in a subprocess.
"""
from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import nnlint.catalogue
from nnlint import cli
from nnlint.catalogue import load_catalogue, rules_directory

REPO = Path(__file__).resolve().parents[1]
SARIF_SCHEMA = REPO.parent / "shared/data/sarif-schema-2.1.0.json"

FLAG_SOFTMAX = '''"""
## What it does
Test rule: flags `nn.Softmax(...)` and offers a safe fix.
"""
from nnlint.rule import Context, Rule


class CliFlagSoftmax(Rule):
    code = "NN871"
    name = "cli-flag-softmax"
    severity = "error"
    default = True
    fixable = True
    options = {}

    def check(self, ctx: Context) -> None:
        for call in ctx.facts.calls():
            if ctx.facts.names.qualname(call.func) == "torch.nn.Softmax":
                ctx.report(call, "softmax layer here", fix=[(call.func, "nn.Identity")], fix_message="Use nn.Identity")
'''

FLAG_SIGMOID = '''"""
## What it does
Test rule: flags `nn.Sigmoid(...)` and offers an unsafe fix.
"""
from nnlint.rule import Context, Rule


class CliFlagSigmoid(Rule):
    code = "NN872"
    name = "cli-flag-sigmoid"
    severity = "warning"
    default = True
    fixable = True
    options = {}

    def check(self, ctx: Context) -> None:
        for call in ctx.facts.calls():
            if ctx.facts.names.qualname(call.func) == "torch.nn.Sigmoid":
                ctx.report(call, "sigmoid layer here", fix=[(call.func, "nn.Tanh")], applicability="unsafe")
'''

SOFTMAX = "import torch.nn as nn\nhead = nn.Softmax(dim=1)\n"
SIGMOID = "import torch.nn as nn\nact = nn.Sigmoid()\n"
CLEAN = "import torch.nn as nn\nlayer = nn.Linear(4, 2)\n"


@pytest.fixture(scope="module")
def private_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli_rules")
    shutil.copy(rules_directory() / "nn001_parse_error.py", directory)
    (directory / "nn871_cli_flag_softmax.py").write_text(FLAG_SOFTMAX)
    (directory / "nn872_cli_flag_sigmoid.py").write_text(FLAG_SIGMOID)
    return directory


@pytest.fixture()
def run(private_rules: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path):
    """Run ``nnlint ARGS`` in-process in ``tmp_path`` with the private catalogue; -> (rc, out, err)."""
    real = nnlint.catalogue.load_catalogue
    monkeypatch.setattr(nnlint.catalogue, "load_catalogue", lambda directory=None: real(directory or private_rules))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FORCE_COLOR", raising=False)

    def invoke(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


def write(root: Path, name: str, body: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path


def run_module(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1", **env)
    return subprocess.run(
        [sys.executable, "-m", "nnlint", *args], capture_output=True, text=True, cwd=cwd, env=environment, timeout=120
    )


# -- invocation -------------------------------------------------------------------

def test_no_path_lints_the_current_directory(run, tmp_path: Path) -> None:
    write(tmp_path, "pkg/model.py", SOFTMAX)
    write(tmp_path, "pkg/clean.py", CLEAN)
    write(tmp_path, "notes.txt", "torch")
    code, out, err = run()
    assert code == 1 and err == ""
    assert out.splitlines() == [
        f"{os.path.join('pkg', 'model.py')}:2:8: NN871 softmax layer here",
        "Found 1 error (1 fixable with --fix).",
    ]


def test_check_subcommand_and_several_paths(run, tmp_path: Path) -> None:
    write(tmp_path, "a/m.py", SOFTMAX)
    write(tmp_path, "b/m.py", SIGMOID)
    write(tmp_path, "c/m.py", SOFTMAX)
    code, out, _ = run("check", "b", "a")
    assert code == 1
    assert [line.split(":")[0] for line in out.splitlines() if ": NN" in line] == [os.path.join("b", "m.py"), os.path.join("a", "m.py")]
    assert run("b", "a")[1] == out


def test_python_dash_m_and_exit_codes(tmp_path: Path) -> None:
    write(tmp_path, "broken.py", "import torch\nx = (1,\n")
    write(tmp_path, "plain.py", "print('hello')\n")
    bad = run_module(["broken.py", "plain.py"], tmp_path)
    assert bad.returncode == 1, bad.stderr
    assert bad.stdout.splitlines()[0] == "broken.py:2:5: NN001 syntax error: '(' was never closed"
    assert run_module(["plain.py"], tmp_path).returncode == 0
    assert run_module(["--exit-zero", "broken.py"], tmp_path).returncode == 0
    missing = run_module(["nope.py"], tmp_path)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr == "nnlint: error: nope.py: no such file or directory\n"


def test_console_script_is_installed(tmp_path: Path) -> None:
    script = shutil.which("nnlint")
    if script is None:
        pytest.skip("nnlint is not installed (pip install -e .)")
    done = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"nnlint {nnlint.__version__}"


def test_usage_errors_exit_2(run, tmp_path: Path) -> None:
    for args in (["--format", "xml"], ["--jobs", "0"], ["--jobs", "many"], ["--no-such-flag"]):
        with pytest.raises(SystemExit) as info:
            run(*args)
        assert info.value.code == 2, args


def test_unknown_selector_on_the_command_line(run, tmp_path: Path) -> None:
    write(tmp_path, "m.py", SOFTMAX)
    code, out, err = run("--select", "NN871,NN8711", "m.py")
    assert code == 2 and out == ""
    assert err == "nnlint: error: --select: unknown rule selector 'NN8711' (did you mean 'NN871'?)\n"
    code, _, err = run("--ignore", "NX1", "m.py")
    assert code == 2 and err.startswith("nnlint: error: --ignore: unknown rule selector 'NX1'")


def test_select_ignore_extend_select(run, tmp_path: Path) -> None:
    write(tmp_path, "m.py", SOFTMAX + "act = nn.Sigmoid()\nx = (\n")
    codes = lambda out: [line.split()[1] for line in out.splitlines() if line.startswith("m.py:")]  # noqa: E731
    assert codes(run("--no-cache", "m.py")[1]) == ["NN001"]  # a syntax error: nothing else can run
    write(tmp_path, "m.py", SOFTMAX + "act = nn.Sigmoid()\n")
    assert codes(run("m.py")[1]) == ["NN871", "NN872"]
    assert codes(run("--select", "NN871", "m.py")[1]) == ["NN871"]
    assert codes(run("--select", "nn87", "--ignore", "NN871", "m.py")[1]) == ["NN872"]
    assert codes(run("--select", "NN001", "--extend-select", "NN872", "m.py")[1]) == ["NN872"]
    assert run("--ignore", "NN8", "m.py")[0] == 0


def test_internal_error_is_one_line_unless_verbose(run, tmp_path: Path, monkeypatch) -> None:
    import nnlint.engine

    def explode(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(nnlint.engine, "lint_paths", explode)
    write(tmp_path, "m.py", SOFTMAX)
    code, out, err = run("m.py")
    assert code == 2 and out == ""
    assert err == "nnlint: internal error: RuntimeError: boom\n"
    code, _, err = run("--verbose", "m.py")
    assert code == 2 and "Traceback" in err and err.endswith("nnlint: internal error: RuntimeError: boom\n")


def test_rule_crash_is_reported_and_exits_2(run, tmp_path: Path, private_rules: Path, monkeypatch) -> None:
    from nnlint.checker import FileChecker

    original = FileChecker._loaded_rules

    def with_crash(self):
        rules = original(self)

        class Crash:
            def check(self, ctx):
                raise ValueError("rule bug")

        return rules + [(nnlint.catalogue.load_catalogue().by_code["NN872"], Crash())]

    monkeypatch.setattr(FileChecker, "_loaded_rules", with_crash)
    write(tmp_path, "m.py", SOFTMAX)
    code, out, err = run("--no-cache", "m.py")
    assert code == 2
    assert "NN871" in out, "findings are still reported"
    assert "ValueError: rule bug" in err and "Traceback" not in err


# -- output formats -----------------------------------------------------------------

def test_default_format_is_concise_off_a_terminal_and_full_on_one(run, tmp_path: Path, monkeypatch) -> None:
    write(tmp_path, "m.py", SOFTMAX)
    _, concise, _ = run("m.py")
    assert concise.splitlines()[0] == "m.py:2:8: NN871 softmax layer here"
    monkeypatch.setattr(cli, "_isatty", lambda stream: True)
    _, full, _ = run("--color", "never", "m.py")
    assert full.splitlines()[:6] == [
        "m.py:2:8: NN871 [*] softmax layer here",
        "  |",
        "2 | head = nn.Softmax(dim=1)",
        "  |        ^^^^^^^^^^^^^^^^^ NN871",
        "  |",
        "  = help: Use nn.Identity",
    ]
    assert full.splitlines()[-1] == "Found 1 error (1 fixable with --fix)."


def test_color_flag(run, tmp_path: Path) -> None:
    write(tmp_path, "m.py", SOFTMAX)
    assert "\x1b[" in run("--color", "always", "m.py")[1]
    assert "\x1b[" not in run("--color", "never", "--format", "full", "m.py")[1]


def test_json_paths_stay_as_given(run, tmp_path: Path) -> None:
    write(tmp_path, "src/pkg/m.py", SOFTMAX)
    code, out, _ = run("--format", "json", "src")
    assert code == 1
    data = json.loads(out)
    assert data["version"] == 1 and len(data["findings"]) == 1
    finding = data["findings"][0]
    assert finding["path"] == os.path.join("src", "pkg", "m.py")
    assert (finding["line"], finding["column"], finding["end_line"], finding["end_column"]) == (2, 8, 2, 25)
    assert finding["code"] == "NN871" and finding["severity"] == "error" and finding["name"] == "cli-flag-softmax"
    assert finding["fix"]["edits"] == [{"line": 2, "column": 8, "end_line": 2, "end_column": 18, "content": "nn.Identity"}]
    code, out, _ = run("--no-cache", "--format", "json", str(tmp_path / "src"))
    assert json.loads(out)["findings"][0]["path"] == str(tmp_path / "src" / "pkg" / "m.py")
    assert json.loads(run("--format", "json", "--select", "NN001", "src")[1]) == {"version": 1, "findings": []}


def test_cached_findings_keep_the_path_as_given_this_time(run, tmp_path: Path) -> None:
    write(tmp_path, "src/m.py", SOFTMAX)
    assert json.loads(run("--format", "json", "src")[1])["findings"][0]["path"] == os.path.join("src", "m.py")
    absolute = str(tmp_path / "src")
    assert json.loads(run("--format", "json", absolute)[1])["findings"][0]["path"] == os.path.join(absolute, "m.py")
    os.chdir(tmp_path / "src")
    assert json.loads(run("--format", "json", ".")[1])["findings"][0]["path"] == "m.py"


def test_sarif_from_the_command_line_validates(run, tmp_path: Path) -> None:
    write(tmp_path, "my models/m.py", SOFTMAX + SIGMOID)
    code, out, _ = run("--format", "sarif", "my models")
    assert code == 1
    document = json.loads(out)
    run_ = document["runs"][0]
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run_["results"]}
    assert uris == {"my%20models/m.py"}
    ids = [r["id"] for r in run_["tool"]["driver"]["rules"]]
    assert ids == ["NN001", "NN871", "NN872"]
    assert [(r["ruleId"], ids[r["ruleIndex"]], r["level"]) for r in run_["results"]] == [
        ("NN871", "NN871", "error"),
        ("NN872", "NN872", "warning"),
    ]
    if not SARIF_SCHEMA.is_file():
        pytest.skip(f"the official SARIF schema is missing: {SARIF_SCHEMA} (the structure was checked above)")
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(document, json.loads(SARIF_SCHEMA.read_text()), cls=jsonschema.Draft7Validator)


def test_github_format(run, tmp_path: Path) -> None:
    write(tmp_path, "m.py", SOFTMAX + "act = nn.Sigmoid()\n")
    code, out, _ = run("--format", "github", "m.py")
    assert out.splitlines() == [
        "::error file=m.py,line=2,col=8,endLine=2,endColumn=25,title=NN871::softmax layer here",
        "::warning file=m.py,line=3,col=7,endLine=3,endColumn=19,title=NN872::sigmoid layer here",
    ]


def test_quiet_and_statistics(run, tmp_path: Path) -> None:
    write(tmp_path, "m.py", SOFTMAX * 2 + "act = nn.Sigmoid()\n")
    code, out, _ = run("--quiet", "m.py")
    assert code == 1 and len(out.splitlines()) == 3 and "Found" not in out
    write(tmp_path, "clean.py", CLEAN)
    assert run("--quiet", "clean.py")[1] == ""
    assert run("clean.py")[1] == "All checks passed!\n"
    code, out, _ = run("--statistics", "m.py")
    assert code == 1
    assert out.splitlines() == ["2\tNN871\t[*] cli-flag-softmax", "1\tNN872\t    cli-flag-sigmoid"]
    data = json.loads(run("--statistics", "--format", "json", "m.py")[1])
    assert [(row["code"], row["count"], row["fixable"]) for row in data] == [("NN871", 2, True), ("NN872", 1, False)]


# -- fixes --------------------------------------------------------------------------

def test_fix_applies_safe_fixes_only(run, tmp_path: Path) -> None:
    path = write(tmp_path, "m.py", SOFTMAX + "act = nn.Sigmoid()\n")
    code, out, _ = run("m.py")
    assert out.splitlines()[-2:] == [
        "Found 1 error and 1 warning (1 fixable with --fix).",
        "1 hidden fix can be enabled with --unsafe-fixes.",
    ]
    code, out, _ = run("--fix", "m.py")
    assert code == 1
    assert path.read_text() == "import torch.nn as nn\nhead = nn.Identity(dim=1)\nact = nn.Sigmoid()\n"
    assert out.splitlines() == [
        "m.py:3:7: NN872 sigmoid layer here",
        "Found 1 error and 1 warning (1 fixed, 1 remaining).",
        "1 hidden fix can be enabled with --unsafe-fixes.",
    ]
    code, out, _ = run("--fix", "--unsafe-fixes", "m.py")
    assert code == 0 and out == "Found 1 warning (1 fixed, 0 remaining).\n"
    assert path.read_text() == "import torch.nn as nn\nhead = nn.Identity(dim=1)\nact = nn.Tanh()\n"
    assert run("--fix", "m.py") == (0, "All checks passed!\n", "")


def test_diff_shows_the_fixes_and_writes_nothing(run, tmp_path: Path) -> None:
    path = write(tmp_path, "m.py", SOFTMAX + "act = nn.Sigmoid()\n")
    write(tmp_path, "clean.py", CLEAN)
    before = path.read_bytes()
    code, out, err = run("--no-cache", "--diff", ".")
    assert code == 1 and path.read_bytes() == before
    assert out == (
        "--- m.py\n+++ m.py\n@@ -1,3 +1,3 @@\n import torch.nn as nn\n"
        "-head = nn.Softmax(dim=1)\n+head = nn.Identity(dim=1)\n act = nn.Sigmoid()\n"
    )
    assert err == "Would fix 1 error.\n"
    code, out, err = run("--no-cache", "--diff", "--unsafe-fixes", "--fix", "m.py")  # --diff wins over --fix
    assert code == 1 and "+act = nn.Tanh()\n" in out and err == "Would fix 1 error and 1 warning.\n"
    assert path.read_bytes() == before
    run("--no-cache", "--fix", "--unsafe-fixes", "m.py")
    assert run("--no-cache", "--diff", "--unsafe-fixes", "m.py") == (0, "", "No fixes would be applied.\n")


def test_diff_marks_a_missing_final_line_break(run, tmp_path: Path) -> None:
    write(tmp_path, "m.py", SOFTMAX.rstrip("\n"))
    out = run("--no-cache", "--diff", "m.py")[1]
    assert out.endswith("-head = nn.Softmax(dim=1)\n\\ No newline at end of file\n"
                        "+head = nn.Identity(dim=1)\n\\ No newline at end of file\n")


def test_show_fixes_lists_what_was_fixed(run, tmp_path: Path) -> None:
    write(tmp_path, "a.py", SOFTMAX + "other = nn.Softmax(dim=0)\n")
    write(tmp_path, "b.py", SOFTMAX + SIGMOID)
    code, out, _ = run("--no-cache", "--fix", "--show-fixes", "a.py", "b.py")
    assert code == 1
    assert out.splitlines()[-7:] == [
        "Found 3 errors and 1 warning (3 fixed, 1 remaining).",
        "1 hidden fix can be enabled with --unsafe-fixes.",
        "Fixed 3 findings:",
        "- a.py:",
        "    2 \u00d7 NN871 (cli-flag-softmax)",
        "- b.py:",
        "    1 \u00d7 NN871 (cli-flag-softmax)",
    ]
    write(tmp_path, "a.py", SOFTMAX)
    code, _, err = run("--no-cache", "--diff", "--show-fixes", "a.py")
    assert code == 1 and err == "Would fix 1 finding:\n- a.py:\n    1 \u00d7 NN871 (cli-flag-softmax)\n"
    assert "Fixed" not in run("--no-cache", "--fix", "--show-fixes", "b.py")[1]  # nothing more to fix there


# -- output file and standard input ----------------------------------------------------

def stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_output_file_gets_the_report(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "m.py", SOFTMAX + "act = nn.Sigmoid()\n")
    monkeypatch.setenv("FORCE_COLOR", "1")  # a file is never coloured, nor given the terminal's format
    code, out, err = run("-o", "reports/lint.txt", "m.py")
    assert (code, out, err) == (1, "", "")
    assert (tmp_path / "reports/lint.txt").read_text() == (
        "m.py:2:8: NN871 softmax layer here\n"
        "m.py:3:7: NN872 sigmoid layer here\n"
        "Found 1 error and 1 warning (1 fixable with --fix).\n"
        "1 hidden fix can be enabled with --unsafe-fixes.\n"
    )
    assert run("--output-file", "lint.json", "--format", "json", "m.py")[:2] == (1, "")
    assert [f["code"] for f in json.loads((tmp_path / "lint.json").read_text())["findings"]] == ["NN871", "NN872"]
    assert run("-o", "stats.txt", "--statistics", "m.py")[:2] == (1, "")
    assert (tmp_path / "stats.txt").read_text().splitlines()[0] == "1\tNN871\t[*] cli-flag-softmax"


def test_output_file_that_cannot_be_written(run, tmp_path: Path) -> None:
    write(tmp_path, "m.py", SOFTMAX)
    write(tmp_path, "taken", "a file, not a folder")
    code, out, err = run("-o", "taken/report.txt", "m.py")
    assert code == 2 and out == "" and err.startswith("nnlint: error: --output-file: taken/report.txt: cannot write")


def test_stdin_is_linted_as_the_given_name(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "pyproject.toml", """
        [tool.nnlint]
        per-file-ignores = { "tests/*" = ["NN871"] }
        """)
    write(tmp_path, "src/m.py", CLEAN)  # what is on disk does not count: the editor's text does
    stdin(monkeypatch, SOFTMAX.encode())
    assert run("--stdin-filename", "src/m.py", "-") == (
        1, f"{os.path.join('src', 'm.py')}:2:8: NN871 softmax layer here\nFound 1 error (1 fixable with --fix).\n", "")
    stdin(monkeypatch, SOFTMAX.encode())
    assert run("--stdin-filename", "tests/test_new.py", "-")[0] == 0  # per-file-ignores, for a file not on disk
    stdin(monkeypatch, SOFTMAX.encode())
    assert run("-")[1].startswith("-:2:8: NN871 ")
    stdin(monkeypatch, SOFTMAX.encode())
    assert run("--stdin-filename", "src/m.py")[0] == 1  # as ruff: the name alone reads standard input
    assert (tmp_path / "src/m.py").read_text() == CLEAN


def test_stdin_configuration_is_found_from_the_given_name(run, tmp_path: Path, monkeypatch) -> None:
    write(tmp_path, "project/pyproject.toml", """
        [tool.nnlint]
        ignore = ["NN871"]
        """)
    stdin(monkeypatch, SOFTMAX.encode())
    assert run("--stdin-filename", "project/m.py", "-")[0] == 0
    stdin(monkeypatch, SOFTMAX.encode())
    assert run("--stdin-filename", "elsewhere/m.py", "-")[0] == 1


def test_stdin_fix_prints_the_fixed_text(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "m.py", CLEAN)
    text = (SOFTMAX + "act = nn.Sigmoid()\n").replace("\n", "\r\n").encode()
    stdin(monkeypatch, text)
    code, out, err = run("--fix", "--stdin-filename", "m.py", "-")
    assert code == 1
    assert out == text.replace(b"nn.Softmax", b"nn.Identity").decode()  # its own line breaks, nothing else
    assert err.splitlines() == ["m.py:3:7: NN872 sigmoid layer here",
                                "Found 1 error and 1 warning (1 fixed, 1 remaining).",
                                "1 hidden fix can be enabled with --unsafe-fixes."]
    assert (tmp_path / "m.py").read_text() == CLEAN  # nothing is written
    stdin(monkeypatch, CLEAN.encode())
    assert run("--fix", "-") == (0, CLEAN, "All checks passed!\n")  # nothing to fix: the text as it came


def test_stdin_usage_errors(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "m.py", SOFTMAX)
    stdin(monkeypatch, SOFTMAX.encode())
    code, _, err = run("-", "m.py")
    assert code == 2 and "cannot be linted together with other paths" in err
    code, _, err = run("--stdin-filename", "x.py", "m.py")
    assert code == 2 and "--stdin-filename: only with '-'" in err


def test_stdin_is_one_file_of_the_project(tmp_path: Path) -> None:
    """The real rules: an editor's unsaved ``model.py`` is checked with the ``train.py`` on disk that imports it."""
    write(tmp_path, "model.py", """\
        import torch.nn as nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 3)

            def forward(self, x):
                return self.fc(x)
        """)
    write(tmp_path, "train.py", """\
        import torch
        import torch.nn as nn
        from model import Net

        model = Net()
        criterion = nn.CrossEntropyLoss()
        loss = criterion(model(torch.randn(2, 4)), torch.tensor([0, 1]))
        """)
    (tmp_path / ".git").mkdir()
    edited = (tmp_path / "model.py").read_text().replace("return self.fc(x)", "return self.fc(x).softmax(dim=1)")
    done = subprocess.run([sys.executable, "-m", "nnlint", "--no-cache", "--stdin-filename", "model.py", "-"],
                          input=edited, capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith("model.py:10:16: NN201 ")
    assert run_module(["--no-cache", "model.py"], tmp_path).returncode == 0  # the file on disk is fine


# -- configuration and suppression, end to end ----------------------------------------

def test_pyproject_settings_apply_and_flags_override(run, tmp_path: Path) -> None:
    write(
        tmp_path,
        "pyproject.toml",
        """
        [tool.nnlint]
        ignore = ["NN872"]
        extend-exclude = ["generated"]
        per-file-ignores = { "tests/*" = ["NN871"] }
        """,
    )
    write(tmp_path, "src/m.py", SOFTMAX + "act = nn.Sigmoid()\n")
    write(tmp_path, "tests/test_m.py", SOFTMAX)
    write(tmp_path, "generated/m.py", SOFTMAX)
    write(tmp_path, "build/m.py", SOFTMAX)
    code, out, _ = run("--format", "json")
    found = [(f["path"], f["code"]) for f in json.loads(out)["findings"]]
    assert found == [(os.path.join("src", "m.py"), "NN871")]
    code, out, _ = run("--format", "json", "--ignore", "NN001")  # the flag replaces the configured ignore
    assert [f["code"] for f in json.loads(out)["findings"]] == ["NN871", "NN872"]
    # the configuration is found from the first path, not the working directory
    os.chdir(tmp_path / "src")
    assert [f["code"] for f in json.loads(run("--format", "json", ".")[1])["findings"]] == ["NN871"]


def test_explicit_path_is_linted_even_if_excluded(run, tmp_path: Path) -> None:
    write(tmp_path, "build/m.py", SOFTMAX)
    assert run("build")[0] == 1  # like ruff without --force-exclude
    assert run(".")[0] == 0


@pytest.mark.parametrize(
    "body, silenced",
    [
        ("head = nn.Softmax(dim=1)  # nnlint: ignore[NN871]\n", True),
        ("head = nn.Softmax(dim=1)  # nnlint: ignore[NN871] the loss wants probabilities\n", True),
        ("head = nn.Softmax(dim=1)  # nnlint: ignore[NN8]\n", True),
        ("head = nn.Softmax(dim=1)  # nnlint: ignore[nn871]\n", True),
        ("# nnlint: ignore[NN871] deliberate\nhead = nn.Softmax(dim=1)\n", True),
        ("# nnlint: ignore[NN871]\n# more explanation\nhead = nn.Softmax(dim=1)\n", True),
        ("head = nn.Softmax(\n    dim=1,  # nnlint: ignore[NN871]\n)\n", True),
        ("# nnlint: ignore-file[NN871]\nx = 1\nhead = nn.Softmax(dim=1)\n", True),
        ("head = nn.Softmax(dim=1)  # nnlint: ignore\n", False),
        ("head = nn.Softmax(dim=1)  # nnlint: ignore[]\n", False),
        ("head = nn.Softmax(dim=1)  # nnlint: ignore[NN872]\n", False),
        ("# nnlint: ignore[NN871]\n\nhead = nn.Softmax(dim=1)\n", False),
        ("x = 1  # nnlint: ignore[NN871]\nhead = nn.Softmax(dim=1)\n", False),
        ("doc = '# nnlint: ignore-file[NN871]'\nhead = nn.Softmax(dim=1)\n", False),
        # flake8's and ruff's spelling: on the finding's lines only; bare, it silences every code
        ("head = nn.Softmax(dim=1)  # noqa: NN871\n", True),
        ("head = nn.Softmax(dim=1)  # NOQA:NN8\n", True),
        ("head = nn.Softmax(dim=1)  # noqa: E501, NN871 the loss wants probabilities\n", True),
        ("head = nn.Softmax(dim=1)  # noqa\n", True),
        ("head = nn.Softmax(dim=1)  # type: ignore # noqa\n", True),
        ("head = nn.Softmax(\n    dim=1,  # noqa: NN871\n)\n", True),
        ("head = nn.Softmax(dim=1)  # noqa: E501\n", False),
        ("head = nn.Softmax(dim=1)  # noqa: NN872\n", False),
        ("head = nn.Softmax(dim=1)  # noqa-like comment\n", False),
        ("# noqa: NN871\nhead = nn.Softmax(dim=1)\n", False),
        ("doc = '# noqa'; head = nn.Softmax(dim=1)\n", False),
    ],
)
def test_suppression_comments(run, tmp_path: Path, body: str, silenced: bool) -> None:
    write(tmp_path, "m.py", "import torch.nn as nn\n" + body)
    code, out, _ = run("--no-cache", "m.py")
    assert (code == 0) is silenced, out


def test_suppression_only_silences_the_named_code(run, tmp_path: Path) -> None:
    write(tmp_path, "m.py", "import torch.nn as nn\nblock = [nn.Softmax(1), nn.Sigmoid()]  # nnlint: ignore[NN871]\n")
    code, out, _ = run("m.py")
    assert code == 1 and "NN872" in out and "NN871" not in out


# -- explain and rules --------------------------------------------------------------

def test_explain_plain_text(run) -> None:
    code, out, _ = run("explain", "nn871")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "# NN871: cli-flag-softmax"
    assert "Severity: error" in lines[2] and "fixable: yes" in lines[2]
    assert "## What it does" in out and "flags `nn.Softmax(...)`" in out
    assert run("explain", "cli-flag-softmax")[1] == out


def test_explain_renders_markdown_on_a_terminal(run, monkeypatch) -> None:
    pytest.importorskip("rich")
    monkeypatch.setattr(cli, "_isatty", lambda stream: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    code, out, _ = run("explain", "NN871")
    assert code == 0 and "What it does" in out and "## What it does" not in out


def test_explain_unknown_code(run) -> None:
    code, out, err = run("explain", "NM871")
    assert code == 2 and out == ""
    assert err == "nnlint: error: unknown rule 'NM871' (did you mean 'NN871'?); 'nnlint rules' lists them\n"
    code, _, err = run("explain", "cli-flag-softmx")
    assert code == 2 and "did you mean 'cli-flag-softmax'" in err


def test_explain_json(run) -> None:
    data = json.loads(run("explain", "--format", "json", "NN872")[1])
    assert data["code"] == "NN872" and data["fixable"] is True and data["default"] is True
    assert data["doc"].startswith("## What it does")


def test_rules_lists_the_private_catalogue(run) -> None:
    code, out, _ = run("rules")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:6] == ["Code", "Name", "Kind", "Default", "Fix", "Severity"]
    assert [line.split()[:5] for line in lines[1:]] == [
        ["NN001", "parse-error", "static", "on", "no"],
        ["NN871", "cli-flag-softmax", "static", "on", "yes"],
        ["NN872", "cli-flag-sigmoid", "static", "on", "yes"],
    ]


def test_rules_from_the_real_catalogue(tmp_path: Path) -> None:
    real = load_catalogue()
    done = run_module(["rules", "--format", "json"], tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [row["code"] for row in data] == [info.code for info in real.rules]
    for row in data:
        assert set(row) >= {"code", "name", "kind", "default", "fixable", "severity", "summary"}
        assert row["kind"] == ("runtime" if row["code"].startswith("NR") else "static")
    text = run_module(["rules"], tmp_path).stdout.splitlines()
    assert [line.split()[0] for line in text[1:]] == [info.code for info in real.rules]


# -- start-up cost --------------------------------------------------------------------

def test_import_and_non_dl_files_stay_light(tmp_path: Path) -> None:
    write(tmp_path, "plain.py", "print('no deep learning here')\n")
    code = (
        "import sys\n"
        "import nnlint.cli\n"
        "light = not any(m in sys.modules for m in ('libcst', 'rich', 'torch', 'nnlint.engine'))\n"
        "rc = nnlint.cli.main(['plain.py'])\n"
        "print(light, rc, sorted(m for m in ('libcst', 'rich', 'torch', 'nnlint.engine') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "True 0 []"


def test_linting_never_imports_torch(tmp_path: Path) -> None:
    write(tmp_path, "m.py", SOFTMAX)
    code = "import sys, nnlint.cli\nnnlint.cli.main(['--no-cache', 'm.py'])\nprint('torch' in sys.modules)\n"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60,
    )
    assert done.stdout.splitlines()[-1] == "False", done.stderr


def test_broken_pipe_is_quiet(tmp_path: Path) -> None:
    for index in range(200):
        write(tmp_path, f"m{index:03d}.py", "import torch\nx = (\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "nnlint", "--no-cache", "--format", "full", "."],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1"),
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.readline()
    process.stdout.close()
    err = process.stderr.read().decode()
    process.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err


# -- the bundled examples -------------------------------------------------------------

EXAMPLES = REPO / "examples"
BUG_MARKER = re.compile(r"#\s*bug \((N[NR]\d{3})\)")


def marked_codes(path: Path) -> set[str]:
    return set(BUG_MARKER.findall(path.read_text(encoding="utf-8")))


def test_examples_trigger_their_marked_rules_and_nothing_else(tmp_path: Path) -> None:
    """Each ``# bug (NNxxx)`` marker names a finding nnlint must report in that file (once the
    rule exists); nothing unmarked may be reported; the clean example stays clean."""
    files = sorted(EXAMPLES.glob("*.py"))
    assert len(files) >= 5 and (EXAMPLES / "clean_training.py") in files
    catalogue = load_catalogue()
    enabled = {info.code for info in catalogue.static_rules if info.default}
    done = run_module(["--format", "json", "--no-cache", str(EXAMPLES)], tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stderr == ""
    reported: dict[str, set[str]] = {}
    for finding in json.loads(done.stdout)["findings"]:
        reported.setdefault(Path(finding["path"]).name, set()).add(finding["code"])
    assert "clean_training.py" not in reported, reported.get("clean_training.py")
    assert not marked_codes(EXAMPLES / "clean_training.py")
    checked = 0
    for path in files:
        marked = marked_codes(path)
        expected = marked & enabled
        found = reported.get(path.name, set())
        assert expected <= found, f"{path.name}: missing {sorted(expected - found)}"
        assert found <= marked, f"{path.name}: unexpected {sorted(found - marked)}"
        checked += len(expected)
    assert checked >= 5, "the examples must exercise the rules that exist"


def test_examples_cover_the_headline_rules() -> None:
    marked = set().union(*(marked_codes(path) for path in EXAMPLES.glob("*.py")))
    assert {"NN101", "NN102", "NN201", "NN301"} <= marked
    frameworks = {path.name: path.read_text() for path in EXAMPLES.glob("*.py")}
    assert any("import torch" in text for text in frameworks.values())
    assert any("keras" in text for text in frameworks.values())
    assert any("tf.train.Saver" in text for text in frameworks.values())
