"""The engine's own guarantees, checked with a small catalogue of test rules.

A private catalogue (written to a temp dir) keeps these tests independent of the
real rules: one rule that flags ``nn.Softmax(...)`` calls and offers a fix, one whose
fix would break the syntax, one that crashes.
"""
from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import pytest

from nnlint.catalogue import load_catalogue, rules_directory
from nnlint.config import ConfigError, Settings
from nnlint.engine import lint_paths

FLAG_SOFTMAX = '''
"""
## What it does
Test rule.
"""
import libcst as cst
from nnlint.rule import Context, Rule


class FlagSoftmax(Rule):
    code = "NN801"
    name = "flag-softmax"
    severity = "warning"
    fixable = True

    def check(self, ctx: Context) -> None:
        for call in ctx.facts.calls():
            if ctx.facts.names.qualname(call.func) == "torch.nn.Softmax":
                ctx.report(call, "softmax here", fix=[(call.func, "nn.Identity")], fix_message="use Identity")
'''

BREAKING_FIX = '''
"""
## What it does
Test rule whose fix breaks the file.
"""
from nnlint.rule import Context, Rule


class BreakingFix(Rule):
    code = "NN802"
    name = "breaking-fix"
    severity = "warning"
    fixable = True

    def check(self, ctx: Context) -> None:
        for call in ctx.facts.calls():
            if ctx.facts.names.qualname(call.func) == "torch.nn.ReLU":
                ctx.report(call, "relu here", fix=[(call, "nn.ReLU(")])
'''

CRASHING = '''
"""
## What it does
Test rule that crashes on files defining a class.
"""
import libcst as cst
from nnlint.rule import Context, Rule


class Crashing(Rule):
    code = "NN803"
    name = "crashing"
    severity = "warning"

    def check(self, ctx: Context) -> None:
        if any(isinstance(n, cst.ClassDef) for n in ctx.facts.walk()):
            raise ValueError("boom")
'''


@pytest.fixture()
def catalogue(tmp_path: Path):
    directory = tmp_path / "catalogue"
    directory.mkdir()
    shutil.copy(rules_directory() / "nn001_parse_error.py", directory)
    (directory / "nn801_flag_softmax.py").write_text(FLAG_SOFTMAX)
    (directory / "nn802_breaking_fix.py").write_text(BREAKING_FIX)
    (directory / "nn803_crashing.py").write_text(CRASHING)
    return load_catalogue(directory)


def write(root: Path, name: str, body: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path


SOFTMAX_FILE = """\
import torch.nn as nn
head = nn.Softmax(dim=1)
"""


def lint(paths, catalogue, **kwargs):
    settings = kwargs.pop("settings", Settings())
    return lint_paths([str(p) for p in paths], settings, catalogue=catalogue, **kwargs)


def test_parallel_output_is_identical_to_serial(tmp_path: Path, catalogue) -> None:
    tree = tmp_path / "tree"
    for i in range(14):
        body = SOFTMAX_FILE * (i % 3 + 1) if i % 2 else "import torch\nx = (\n"
        write(tree, f"pkg{i % 3}/m{i:02d}.py", body)
    write(tree, "plain.py", "print('no deep learning here')\n")
    serial = lint([tree], catalogue, jobs=1, use_cache=False)
    parallel = lint([tree], catalogue, jobs=2, use_cache=False)
    assert serial.findings == parallel.findings
    assert serial.files_seen == 15 and serial.files_checked == 14
    codes = {f.code for f in serial.findings}
    assert codes == {"NN001", "NN801"}


def test_results_are_sorted_by_file_then_position(tmp_path: Path, catalogue) -> None:
    write(tmp_path, "b.py", SOFTMAX_FILE * 2)
    write(tmp_path, "a.py", SOFTMAX_FILE)
    result = lint([tmp_path / "b.py", tmp_path / "a.py"], catalogue, use_cache=False)
    assert [(Path(f.path).name, f.line) for f in result.findings] == [("b.py", 2), ("b.py", 4), ("a.py", 2)]


def test_paths_stay_as_given(tmp_path: Path, catalogue, monkeypatch) -> None:
    write(tmp_path, "src/model.py", SOFTMAX_FILE)
    monkeypatch.chdir(tmp_path)
    result = lint(["src"], catalogue, use_cache=False)
    assert [f.path for f in result.findings] == [os.path.join("src", "model.py")]


def test_warm_cache_does_not_parse(tmp_path: Path, catalogue, monkeypatch) -> None:
    write(tmp_path, "proj/m.py", SOFTMAX_FILE)
    settings = Settings(root=tmp_path)
    first = lint([tmp_path / "proj"], catalogue, settings=settings)
    assert (tmp_path / ".nnlint_cache" / ".gitignore").read_text().strip().endswith("*")

    from nnlint import checker

    def refuse(*args, **kwargs):
        raise AssertionError("a cached file was parsed again")

    monkeypatch.setattr(checker.FileChecker, "summarize", refuse)
    monkeypatch.setattr(checker.FileChecker, "check", refuse)
    second = lint([tmp_path / "proj"], catalogue, settings=settings)
    assert second.findings == first.findings and len(first.findings) == 1


def test_cache_sees_edits(tmp_path: Path, catalogue) -> None:
    path = write(tmp_path, "proj/m.py", SOFTMAX_FILE)
    settings = Settings(root=tmp_path)
    assert len(lint([path], catalogue, settings=settings).findings) == 1
    path.write_text(SOFTMAX_FILE * 3)
    assert len(lint([path], catalogue, settings=settings).findings) == 3


def test_cache_keyed_by_selection(tmp_path: Path, catalogue) -> None:
    path = write(tmp_path, "proj/m.py", SOFTMAX_FILE)
    settings = Settings(root=tmp_path)
    assert len(lint([path], catalogue, settings=settings).findings) == 1
    assert lint([path], catalogue, settings=settings, ignore=["NN801"]).findings == ()


def test_corrupt_cache_is_a_miss(tmp_path: Path, catalogue) -> None:
    path = write(tmp_path, "proj/m.py", SOFTMAX_FILE)
    settings = Settings(root=tmp_path)
    lint([path], catalogue, settings=settings)
    cache_files = list((tmp_path / ".nnlint_cache").rglob("*.json"))
    assert cache_files
    for cache_file in cache_files:
        cache_file.write_bytes(b"not a cache")
    assert len(lint([path], catalogue, settings=settings).findings) == 1


@pytest.mark.parametrize(
    "body, silenced",
    [
        ("head = nn.Softmax(dim=1)  # nnlint: ignore[NN801]\n", True),
        ("head = nn.Softmax(dim=1)  # nnlint: ignore[NN8] prefix with a reason\n", True),
        ("head = nn.Softmax(dim=1)  # nnlint: ignore[NN001, NN801] two codes\n", True),
        ("# nnlint: ignore[NN801] -- deliberate\nhead = nn.Softmax(dim=1)\n", True),
        ("head = nn.Softmax(  # nnlint: ignore[NN801]\n    dim=1,\n)\n", True),
        ("head = nn.Softmax(\n    dim=1,  # nnlint: ignore[NN801]\n)\n", True),
        ("head = nn.Softmax(dim=1)  # nnlint: ignore\n", False),
        ("head = nn.Softmax(dim=1)  # nnlint: ignore[NN802]\n", False),
        ("x = 1  # nnlint: ignore[NN801]\nhead = nn.Softmax(dim=1)\n", False),
        ("s = '# nnlint: ignore-file[NN801]'\nhead = nn.Softmax(dim=1)\n", False),
        ("# nnlint: ignore-file[NN8]\n\nhead = nn.Softmax(dim=1)\n", True),
    ],
)
def test_suppression_comments(tmp_path: Path, catalogue, body: str, silenced: bool) -> None:
    path = write(tmp_path, "m.py", "import torch.nn as nn\n" + body)
    findings = lint([path], catalogue, use_cache=False, select=["NN801"]).findings
    assert (findings == ()) is silenced, findings


def test_per_file_ignores(tmp_path: Path, catalogue) -> None:
    tree = tmp_path / "tree"
    write(tree, "tests/test_m.py", SOFTMAX_FILE)
    write(tree, "src/m.py", SOFTMAX_FILE)
    settings = Settings(root=tree, per_file_ignores=(("tests/*", ("NN8",)),))
    result = lint([tree], catalogue, settings=settings, use_cache=False)
    assert [Path(f.path).parent.name for f in result.findings] == ["src"]


def test_fix_rewrites_atomically_and_keeps_encoding_details(tmp_path: Path, catalogue) -> None:
    original = "\ufeffimport torch.nn as nn\r\nhead = nn.Softmax(dim=1)\r\n"
    (tmp_path / "work").mkdir()
    path = tmp_path / "work" / "m.py"
    path.write_bytes(original.encode("utf-8"))
    os.chmod(path, 0o640)
    result = lint([path], catalogue, fix=True, select=["NN801"])
    assert result.fixed == 1 and result.findings == ()
    assert path.read_bytes() == "\ufeffimport torch.nn as nn\r\nhead = nn.Identity(dim=1)\r\n".encode("utf-8")
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert [p.name for p in path.parent.iterdir()] == ["m.py"], "temporary files left behind"


def test_nothing_to_fix_leaves_file_untouched(tmp_path: Path, catalogue) -> None:
    path = write(tmp_path, "m.py", "import torch.nn as nn\nhead = nn.Linear(2, 2)\n")
    before = path.read_bytes(), os.stat(path).st_mtime_ns
    result = lint([path], catalogue, fix=True)
    assert result.fixed == 0
    assert (path.read_bytes(), os.stat(path).st_mtime_ns) == before


def test_fix_that_would_not_parse_is_not_written(tmp_path: Path, catalogue) -> None:
    path = write(tmp_path, "m.py", "import torch.nn as nn\nact = nn.ReLU()\n")
    before = path.read_bytes()
    result = lint([path], catalogue, fix=True, select=["NN802"])
    assert result.fixed == 0 and path.read_bytes() == before
    assert [f.code for f in result.findings] == ["NN802"]


def test_a_crashing_rule_is_reported_not_raised(tmp_path: Path, catalogue) -> None:
    path = write(tmp_path, "m.py", "import torch.nn as nn\nclass Net(nn.Module):\n    pass\nh = nn.Softmax()\n")
    result = lint([path], catalogue, use_cache=False, select=["NN8"])
    assert [f.code for f in result.findings] == ["NN801"]
    assert len(result.errors) == 1 and "NN803" in result.errors[0] and "ValueError: boom" in result.errors[0]


def test_missing_path_is_a_config_error(tmp_path: Path, catalogue) -> None:
    with pytest.raises(ConfigError, match="no such file or directory"):
        lint([tmp_path / "missing"], catalogue)


def test_path_given_twice_and_symlink_loop(tmp_path: Path, catalogue) -> None:
    write(tmp_path, "d/m.py", SOFTMAX_FILE)
    os.symlink(tmp_path / "d", tmp_path / "d" / "loop")
    result = lint([tmp_path / "d", tmp_path / "d" / "m.py", tmp_path / "d"], catalogue, use_cache=False)
    assert result.files_seen == 1 and len(result.findings) == 1


def test_default_excludes(tmp_path: Path, catalogue) -> None:
    tree = tmp_path / "tree"
    for folder in (".git", ".venv", "venv", "build", "lib/site-packages", "x.egg-info"):
        write(tree, f"{folder}/m.py", SOFTMAX_FILE)
    write(tree, "src/m.py", SOFTMAX_FILE)
    result = lint([tree], catalogue, use_cache=False)
    assert result.files_seen == 1


def test_exclude_setting(tmp_path: Path, catalogue) -> None:
    tree = tmp_path / "tree"
    write(tree, "generated/m.py", SOFTMAX_FILE)
    write(tree, "src/m.py", SOFTMAX_FILE)
    settings = Settings(root=tree, extend_exclude=("generated",))
    assert lint([tree], catalogue, settings=settings, use_cache=False).files_seen == 1


def test_collector_is_paused_during_a_run_and_restored_after(tmp_path: Path, catalogue) -> None:
    import gc

    from nnlint.collector import collector_paused

    states: list[bool] = []
    with collector_paused():
        states.append(gc.isenabled())
        with collector_paused():
            states.append(gc.isenabled())
        states.append(gc.isenabled())
    assert states == [False, False, False] and gc.isenabled()

    with pytest.raises(RuntimeError):
        with collector_paused():
            raise RuntimeError("boom")
    assert gc.isenabled()

    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled(), "a collector the caller disabled stays disabled"
    finally:
        gc.enable()

    (tmp_path / "m.py").write_text("import torch.nn as nn\nnn.Softmax(dim=1)\n")
    result = lint_paths([str(tmp_path)], Settings(), jobs=1, use_cache=False, catalogue=catalogue)
    assert [f.code for f in result.findings] == ["NN801"] and gc.isenabled()
