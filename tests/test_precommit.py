"""The pre-commit hook, for real: ``pre-commit try-repo`` installs nnlint from a copy of this
checkout into pre-commit's own virtualenv and runs it on a throwaway repository.

Slow (pre-commit builds a virtualenv and installs libcst and rich from the package index);
skipped when ``pre-commit`` or ``git`` is missing.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NEEDED = ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml", "nnlint", "rules")

pytestmark = pytest.mark.skipif(
    shutil.which("pre-commit") is None or shutil.which("git") is None,
    reason="needs pre-commit and git",
)


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=nnlint-test", "-c", "user.email=test@example.invalid",
         "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args],
        cwd=cwd, check=True, capture_output=True, timeout=60,
    )


def test_hook_definition() -> None:
    yaml = pytest.importorskip("yaml")
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    (hook,) = hooks
    assert hook["id"] == "nnlint" and hook["entry"] == "nnlint"
    # notebooks too: nnlint lints their code cells
    assert hook["language"] == "python" and hook["types_or"] == ["python", "pyi", "jupyter"]
    assert hook["require_serial"] is False


def test_pre_commit_try_repo(tmp_path: Path) -> None:
    # try-repo needs a committed repository; the checkout may hold uncommitted work, so commit a copy.
    hook_repo = tmp_path / "hook-repo"
    hook_repo.mkdir()
    for name in NEEDED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, hook_repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, hook_repo / name)
    git(hook_repo, "init", "-q")
    git(hook_repo, "add", "-A")
    git(hook_repo, "commit", "-q", "-m", "snapshot")

    project = tmp_path / "project"
    project.mkdir()
    (project / "bad_model.py").write_text("import torch.nn as nn\nmodel = nn.Sequential(nn.Linear(4, 2) nn.ReLU())\n")
    (project / "good_model.py").write_text("import torch.nn as nn\nmodel = nn.Sequential(nn.Linear(4, 2), nn.ReLU())\n")
    (project / "notes.txt").write_text("import torch\nx = (\n")  # not Python: the hook never sees it
    git(project, "init", "-q")
    git(project, "add", "-A")

    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "NO_COLOR": "1",
    }

    def try_repo() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pre-commit", "try-repo", str(hook_repo), "nnlint", "--all-files", "--color", "never"],
            cwd=project, capture_output=True, text=True, env=env, timeout=900,
        )

    failing = try_repo()
    output = failing.stdout + failing.stderr
    assert failing.returncode == 1, output
    assert "bad_model.py:2:" in output and "NN001" in output
    assert "good_model.py" not in output and "notes.txt" not in output
    assert "Traceback" not in output

    git(project, "rm", "-q", "-f", "bad_model.py")
    passing = try_repo()
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "Passed" in passing.stdout
