"""Each file is linted with the nearest ``pyproject.toml`` with ``[tool.nnlint]`` above it."""
from __future__ import annotations

from pathlib import Path

import pytest

import nnlint
from nnlint.cli import main

SOURCE = ("import torch\nimport torch.nn.functional as F\n"
          "y = torch.log(F.softmax(x, dim=1))\nz = torch.exp(x) / torch.exp(x).sum()\n")


@pytest.fixture()
def projects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``a`` ignores NN401, ``b`` selects only NN401; ``c`` has no configuration of its own."""
    for name, config in (("a", 'ignore = ["NN401"]\n'), ("b", 'select = ["NN401"]\n'), ("c", None)):
        folder = tmp_path / name
        folder.mkdir()
        if config is not None:
            (folder / "pyproject.toml").write_text(f"[tool.nnlint]\n{config}")
        (folder / "m.py").write_text(SOURCE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def lines(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    main(["--no-cache", "--output-format", "concise", *args])
    return sorted(line for line in capsys.readouterr().out.splitlines() if line.endswith(("max: exp can overflow",
                                                                                         "use log_softmax")))


def test_each_path_gets_its_own_configuration_in_any_order(projects: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    expected = ["a/m.py:4:5: NN402 softmax written by hand without subtracting the max: exp can overflow",
                "b/m.py:3:5: NN401 log(softmax(x)) is unstable: use log_softmax"]
    assert lines(capsys, "a", "b") == expected
    assert lines(capsys, "b", "a") == expected
    assert lines(capsys, "b/m.py", "a/m.py") == expected
    assert lines(capsys, ".") == expected + [
        "c/m.py:3:5: NN401 log(softmax(x)) is unstable: use log_softmax",
        "c/m.py:4:5: NN402 softmax written by hand without subtracting the max: exp can overflow"]


def test_flags_apply_to_every_configuration_and_config_to_every_file(projects: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert lines(capsys, "--select", "NN402", "b", "a") == [
        "a/m.py:4:5: NN402 softmax written by hand without subtracting the max: exp can overflow",
        "b/m.py:4:5: NN402 softmax written by hand without subtracting the max: exp can overflow"]
    assert lines(capsys, "--config", "b/pyproject.toml", "a", "b") == [
        "a/m.py:3:5: NN401 log(softmax(x)) is unstable: use log_softmax",
        "b/m.py:3:5: NN401 log(softmax(x)) is unstable: use log_softmax"]


def test_lint_paths_resolves_per_file_without_settings(projects: Path) -> None:
    result = nnlint.lint_paths(["b", "a"], use_cache=False)
    assert sorted((f.path, f.code) for f in result.findings) == [("a/m.py", "NN402"), ("b/m.py", "NN401")]
    assert result.files_seen == 2


def test_fix_writes_each_file_under_its_own_configuration(projects: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    main(["--fix", "b", "a"])
    capsys.readouterr()
    assert "F.log_softmax" in (projects / "b/m.py").read_text() and "amax" not in (projects / "b/m.py").read_text()
    assert "x.max()" in (projects / "a/m.py").read_text() and "torch.log(" in (projects / "a/m.py").read_text()
