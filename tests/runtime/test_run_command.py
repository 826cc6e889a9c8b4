"""``nnlint run``: an unmodified training script (no nnlint import) monitored through
PyTorch's global hooks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from nnlint.integrations.run import parse, run_command, UsageError

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent('''
    import json, sys
    import torch
    from torch import nn

    steps = int(sys.argv[sys.argv.index("--steps") + 1])
    json.dump(sys.argv, open("argv.json", "w"))
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
    if "--dead" in sys.argv:
        nn.init.constant_(model[2].bias, -100.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    nan_at = int(sys.argv[sys.argv.index("--nan-at") + 1]) if "--nan-at" in sys.argv else -1
    for step in range(steps):
        x = torch.randn(16, 8)
        if step == nan_at:
            x[0, 0] = float("nan")
        loss = nn.functional.mse_loss(model(x), x[:, :1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 10 == 9:
            with torch.no_grad():  # an evaluation now and then: not a training step
                model.eval()
                model(torch.randn(4, 8))
                model.train()
    print("trained", steps)
    if "--crash" in sys.argv:
        raise ValueError("the script's own bug")
    if "--interrupt" in sys.argv:
        raise KeyboardInterrupt
    if "--exit" in sys.argv:
        sys.exit(int(sys.argv[sys.argv.index("--exit") + 1]))
''')


def nnlint_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "nnlint", "run", *args], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=180)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "train.py"
    path.write_text(SCRIPT)
    return path


def test_findings_report_exit_status_and_arguments(tmp_path: Path, script: Path) -> None:
    done = nnlint_run(tmp_path, "--check-every", "5", "--log-dir", "runs/exp", "train.py", "--steps", "40",
                      "--dead", "--nan-at", "30", "--mode", "x")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "trained 40"  # the script's output, untouched
    assert json.loads((tmp_path / "argv.json").read_text()) == \
        ["train.py", "--steps", "40", "--dead", "--nan-at", "30", "--mode", "x"]
    report = done.stderr
    assert "What to do first" in report and "NR201" in report and "'3'" in report
    assert "NR301" in report and "at step 29" in report  # the first step of each optimizer is not watched
    events = (tmp_path / "runs" / "exp" / "events.jsonl").read_text().splitlines()
    assert json.loads(events[-1])["event"] == "end"
    assert not done.stderr.count("\r")  # no status line when not on a terminal


def test_raise_mode_exits_1(tmp_path: Path, script: Path) -> None:
    done = nnlint_run(tmp_path, "--mode", "raise", "--check-every", "5", "train.py", "--steps", "40",
                      "--nan-at", "12")
    assert done.returncode == 1
    assert "TrainingError: NR301" in done.stderr and "trained" not in done.stdout
    assert 'File "' in done.stderr and "train.py" in done.stderr  # the traceback names the script's line
    assert "nnlint/integrations/run.py" not in done.stderr


def test_module_and_exit_status(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text(SCRIPT)
    done = nnlint_run(tmp_path, "-m", "pkg.train", "--steps", "15", "--exit", "3")
    assert done.returncode == 3, done.stderr
    assert done.stdout.strip() == "trained 15"
    assert json.loads((tmp_path / "argv.json").read_text())[1:] == ["--steps", "15", "--exit", "3"]
    assert "nothing to do (14 step(s) watched" in done.stderr


def test_crash_and_interrupt_still_report(tmp_path: Path, script: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.nn.modules import module as torch_module
    from torch.optim import optimizer as torch_optimizer

    monkeypatch.chdir(tmp_path)
    backward = torch.Tensor.backward
    assert run_command(["--check-every", "5", "train.py", "--steps", "12", "--dead", "--crash"]) == 1
    err = capsys.readouterr().err
    assert "ValueError: the script's own bug" in err and "NR201" in err
    assert run_command(["train.py", "--steps", "3", "--interrupt"]) == 130
    assert "nnlint: interrupted" in capsys.readouterr().err
    # every global hook is gone, and backward is torch's own again
    assert not torch_module._global_forward_pre_hooks and not torch_optimizer._global_optimizer_post_hooks
    assert torch.Tensor.backward is backward


def test_usage_errors() -> None:
    with pytest.raises(UsageError):
        parse(["--mode", "loud", "train.py"])
    with pytest.raises(UsageError):
        parse(["--check-every"])
    options = parse(["--mode=fix", "-m", "pkg.train", "--mode", "warn"])
    assert (options.mode, options.module, options.args) == ("fix", "pkg.train", ["--mode", "warn"])
    assert run_command(["missing.py"]) == 2


def test_status_line_on_a_terminal(tmp_path: Path, script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from nnlint.integrations.run import Runner

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.chdir(tmp_path)
    terminal = Terminal()
    assert Runner(parse(["--check-every", "5", "train.py", "--steps", "20", "--dead"]), terminal).run() == 0
    lines = [part for part in terminal.getvalue().split("\r\033[K") if part.startswith("nnlint: step")]
    assert lines and "loss" in lines[0] and lines[-1].startswith("nnlint: step 1")
    assert lines[-1].splitlines()[0].endswith("findings 1")  # the report starts on a line of its own
