"""nnlint as a package: the wheel carries the rule catalogue (as ``nnlint._rules``) and the
reporters, installs into a fresh virtualenv, and ``nnlint rules`` works from there and from
a plain, uninstalled checkout."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from nnlint.catalogue import load_catalogue

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "nnlint", "rules")


def rule_files() -> list[str]:
    return sorted(p.name for p in (REPO / "rules").glob("*.py"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Build from a copy so that setuptools' build/ and *.egg-info never land in the checkout.
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", ".", "-w", str(out)],
        cwd=source, capture_output=True, text=True, timeout=600,
    )
    if done.returncode != 0 and "No module named" in done.stderr and "setuptools" in done.stderr:
        pytest.skip("setuptools is not installed")
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = out.glob("nnlint-*.whl")
    return built


def test_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    packaged_rules = sorted(Path(n).name for n in names if n.startswith("nnlint/_rules/") and n.endswith(".py"))
    assert packaged_rules == rule_files()
    for module in ("nnlint/cli.py", "nnlint/__main__.py", "nnlint/engine.py", "nnlint/report/__init__.py",
                   "nnlint/report/sarif.py", "nnlint/facts/names.py"):
        assert module in names, module
    assert not any(n.startswith(("tests/", "examples/", "rules/")) for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "nnlint = nnlint.cli:main" in text


def test_installed_wheel_runs(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    located = subprocess.run(
        [str(python), "-c", "import nnlint, nnlint.catalogue as c; print(nnlint.__file__); print(c.rules_directory())"],
        cwd=work, capture_output=True, text=True, env=env, timeout=60,
    )
    module_file, rules_dir = located.stdout.split()
    assert Path(module_file).is_relative_to(venv), "the wheel, not the checkout, must be imported"
    assert Path(rules_dir).is_relative_to(venv) and Path(rules_dir).name == "_rules"

    listed = subprocess.run([str(bindir / "nnlint"), "rules", "--format", "json"],
                            cwd=work, capture_output=True, text=True, env=env, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert [row["code"] for row in json.loads(listed.stdout)] == [i.code for i in load_catalogue().rules]

    (work / "broken.py").write_text("import torch\nx = (\n")
    linted = subprocess.run([str(bindir / "nnlint"), "--no-cache", "broken.py"],
                            cwd=work, capture_output=True, text=True, env=env, timeout=120)
    assert linted.returncode == 1, linted.stderr
    assert linted.stdout.startswith("broken.py:2:5: NN001 ")


def test_plain_checkout_without_site_packages(tmp_path: Path) -> None:
    """`python -m nnlint rules` from the checkout needs neither installation nor libcst/rich."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-S", "-m", "nnlint", "rules"],
                          cwd=REPO, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    codes = [line.split()[0] for line in done.stdout.splitlines()[1:]]
    assert codes == [i.code for i in load_catalogue().rules]
    explain = subprocess.run([sys.executable, "-S", "-m", "nnlint", "explain", "NN001"],
                             cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60)
    assert explain.returncode == 0 and explain.stdout.startswith("# NN001: parse-error")


HEAVY = ("torch", "lightning", "pytorch_lightning", "transformers", "accelerate", "tensorboard", "matplotlib")


def test_import_nnlint_imports_no_framework() -> None:
    """`import nnlint`, the CLI, the integrations package and `nnlint report` (which reads an
    event log) import none of the frameworks the integrations adapt to."""
    code = (
        "import sys, nnlint, nnlint.cli, nnlint.integrations, nnlint.integrations.commands, nnlint.report.events\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_report_command_without_matplotlib(tmp_path: Path) -> None:
    """`nnlint report` reads a log without torch; `--plot` without matplotlib is one line, exit 2."""
    log = tmp_path / "events.jsonl"
    log.write_text('{"event":"start","schema":1,"mode":"warn"}\n'
                   '{"event":"check","step":1,"layers":["fc"],"steps":[{"step":0,"loss":1.0,"grad_norm":{"fc":0.5}},'
                   '{"step":1,"loss":"nan","grad_norm":{"fc":"nan"}}]}\n'
                   '{"event":"finding","code":"NR301","severity":"error","message":"NaN","module":"fc","step":1}\n')
    code = ("import sys\nfor m in ('matplotlib', 'torch'): sys.modules[m] = None\n"
            "import nnlint.cli\n"
            f"rc = nnlint.cli.main(['report', {str(log)!r}, '--plot', {str(tmp_path / 'p.png')!r}])\n"
            "print('rc', rc)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert "rc 2" in done.stdout and "did not finish" in done.stdout and "NR301 error in 'fc' at step 1" in done.stdout
    assert done.stderr.strip() == "nnlint: error: plotting needs matplotlib: pip install 'nnlint[plot]'"
