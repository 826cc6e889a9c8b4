"""Static-checker throughput: nnlint (cold and warm) against TorchFix on one real tree.

    python bench/static_throughput.py TREE [--jobs N] [--torchfix-venv DIR] [--create-venv]

Every tool runs as its own subprocess, so each pays its own interpreter start-up and
imports, as a user would. In one run it times:

* nnlint cold: every default rule, a fresh empty cache directory (the first run in a tree);
* nnlint warm: the same command again, reusing that cache (a re-run with nothing changed);
* ``torchfix TREE`` from its own virtual environment (``--create-venv`` makes it with
  ``python -m venv`` + ``pip install torchfix``; skipped with a message if unavailable);
* ``ruff check`` if ruff is on PATH (a reference point: a native linter);

and prints files, lines, seconds, files/s and the ratios to TorchFix. A start-up section
then times ``nnlint small.py`` (a small PyTorch model) and ``nnlint notdl.py`` (no DL
code at all) against ``python -c pass``: the median wall time of several runs.

The machine's load average is printed before and after: throughput on a shared machine
is only comparable within one run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

HERE = Path(__file__).resolve().parent
DEFAULT_VENV = HERE / ".venv-torchfix"

SMALL_MODEL = '''\
"""A small PyTorch model and training step (start-up benchmark input)."""
import torch
from torch import nn


class Classifier(nn.Module):
    def __init__(self, features: int = 32, classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(features, 64),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Linear(64, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    model.train()
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()
'''

NOT_DL = '''\
"""Plain Python: nothing a neural-network rule could look at."""
import json
import sys


def main(argv: list[str]) -> int:
    data = {"args": argv, "count": len(argv)}
    json.dump(data, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
'''


@dataclass
class Timing:
    tool: str
    seconds: Optional[float]
    files: int
    lines: int
    note: str = ""
    returncode: Optional[int] = None

    @property
    def files_per_second(self) -> Optional[float]:
        if self.seconds is None or self.seconds <= 0:
            return None
        return self.files / self.seconds


@dataclass
class Report:
    tree: str
    files: int
    lines: int
    jobs: int
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    throughput: list[Timing] = field(default_factory=list)
    startup: dict[str, float] = field(default_factory=dict)


def count_tree(tree: Path) -> tuple[int, int]:
    """(.py files, lines) below ``tree``; the same denominator for every tool."""
    files = lines = 0
    for path in sorted(tree.rglob("*.py")):
        if not path.is_file():
            continue
        files += 1
        with open(path, "rb") as handle:
            lines += handle.read().count(b"\n")
    return files, lines


def nnlint_command() -> list[str]:
    """The ``nnlint`` console script next to this interpreter, else ``python -m nnlint``."""
    script = Path(sys.executable).with_name("nnlint")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "nnlint"]


#: the environment of every timed tool (see --keep-bytecode-setting)
CHILD_ENV: dict[str, str] = dict(os.environ)


def timed(command: Sequence[str], cwd: Optional[Path] = None, timeout: Optional[float] = None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(
        list(command), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        errors="replace", timeout=timeout, env=CHILD_ENV,
    )
    return time.perf_counter() - start, done


def nnlint_config(directory: Path, cache: Optional[Path]) -> Path:
    """A configuration with every default rule and the cache where the benchmark wants it."""
    config = directory / "pyproject.toml"
    lines = ["[tool.nnlint]"]
    if cache is not None:
        lines.append(f"cache-dir = {json.dumps(os.path.relpath(cache, directory))}")
    config.write_text("\n".join(lines) + "\n")
    return config


def time_nnlint(tree: Path, jobs: int, files: int, lines: int, work: Path) -> list[Timing]:
    cache = work / "nnlint-cache"
    config = nnlint_config(work, cache)
    command = nnlint_command() + [str(tree), "--config", str(config), "--jobs", str(jobs), "--exit-zero", "--statistics"]
    out: list[Timing] = []
    for label in ("nnlint cold", "nnlint warm"):
        seconds, done = timed(command, cwd=work)
        note = _summary_line(done)
        if done.returncode not in (0, 1):
            note = f"exit {done.returncode}: {done.stderr.strip()[-300:]}"
        out.append(Timing(label, seconds, files, lines, note, done.returncode))
    return out


def _summary_line(done: subprocess.CompletedProcess) -> str:
    findings = 0
    for line in done.stdout.splitlines():
        head = line.split("\t", 1)[0].strip()
        if head.isdigit():
            findings += int(head)
    return f"{findings} findings"


def torchfix_executable(venv: Path) -> Optional[Path]:
    for name in ("bin/torchfix", "Scripts/torchfix.exe"):
        candidate = venv / name
        if candidate.exists():
            return candidate
    return None


def create_venv(venv: Path) -> Optional[str]:
    """Make ``venv`` with TorchFix from PyPI; an error message, or ``None`` on success."""
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        subprocess.run([str(python), "-m", "pip", "install", "-q", "torchfix"], check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        return f"could not create {venv}: {error}"
    return None


def time_torchfix(tree: Path, jobs: int, files: int, lines: int, venv: Path, timeout: Optional[float]) -> Timing:
    executable = torchfix_executable(venv)
    if executable is None:
        return Timing("torchfix", None, files, lines, f"skipped: no torchfix in {venv} (run with --create-venv)")
    try:
        seconds, done = timed([str(executable), "--jobs", str(jobs), str(tree)], timeout=timeout)
    except subprocess.TimeoutExpired:
        return Timing("torchfix", None, files, lines, f"skipped: over the {timeout:.0f} s timeout")
    note = ""
    for line in done.stdout.splitlines() + done.stderr.splitlines():
        if line.startswith("Finished checking"):
            note = line.strip()
    if "Traceback" in done.stderr and not note:
        note = "crashed: " + done.stderr.strip().splitlines()[-1][:200]
    return Timing("torchfix", seconds, files, lines, note, done.returncode)


def time_ruff(tree: Path, files: int, lines: int) -> Optional[Timing]:
    ruff = shutil.which("ruff")
    if ruff is None:
        return None
    seconds, done = timed([ruff, "check", "--no-cache", "--exit-zero", "--quiet", str(tree)])
    return Timing("ruff (reference)", seconds, files, lines, "", done.returncode)


def time_startup(work: Path, runs: int) -> dict[str, float]:
    small = work / "small.py"
    notdl = work / "notdl.py"
    small.write_text(SMALL_MODEL)
    notdl.write_text(NOT_DL)
    config = nnlint_config(work, work / "startup-cache")
    base = nnlint_command() + ["--config", str(config)]
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "nnlint small.py (cached)": base + ["small.py"],
        "nnlint small.py --no-cache": base + ["--no-cache", "small.py"],
        "nnlint notdl.py": base + ["notdl.py"],
    }
    out: dict[str, float] = {}
    for label, command in cases.items():
        if runs > 1 or "cached" in label:
            timed(command, cwd=work)  # warm the OS file cache; for "(cached)", fill nnlint's
        out[label] = statistics.median(timed(command, cwd=work)[0] for _ in range(runs))
    return out


def run(args: argparse.Namespace) -> Report:
    tree = Path(args.tree).resolve()
    if not tree.is_dir():
        raise SystemExit(f"static_throughput: {tree} is not a directory")
    files, lines = count_tree(tree)
    report = Report(str(tree), files, lines, args.jobs, os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="nnlint-bench-") as tmp:
        work = Path(tmp)
        report.throughput.extend(time_nnlint(tree, args.jobs, files, lines, work))
        if args.no_torchfix:
            report.throughput.append(Timing("torchfix", None, files, lines, "skipped (--no-torchfix)"))
        else:
            venv = Path(args.torchfix_venv)
            if torchfix_executable(venv) is None and args.create_venv:
                problem = create_venv(venv)
                if problem:
                    print(f"static_throughput: {problem}", file=sys.stderr)
            report.throughput.append(time_torchfix(tree, args.jobs, files, lines, venv, args.torchfix_timeout))
        if not args.no_ruff:
            ruff = time_ruff(tree, files, lines)
            if ruff is not None:
                report.throughput.append(ruff)
        if args.startup_runs > 0:
            startup_dir = work / "startup"
            startup_dir.mkdir()
            report.startup = time_startup(startup_dir, args.startup_runs)
    report.load_after = os.getloadavg()
    return report


def render(report: Report) -> str:
    load = lambda values: " ".join(f"{v:.2f}" for v in values)  # noqa: E731
    lines = [
        f"tree: {report.tree}",
        f"files: {report.files}  lines: {report.lines}  jobs: {report.jobs}  cpus: {os.cpu_count()}",
        f"load average before: {load(report.load_before)}  after: {load(report.load_after)}",
        "",
        f"{'tool':<18} {'seconds':>9} {'files/s':>9} {'x torchfix':>11}  note",
    ]
    torchfix = next((t for t in report.throughput if t.tool == "torchfix"), None)
    base = torchfix.files_per_second if torchfix else None
    for timing in report.throughput:
        rate = timing.files_per_second
        seconds = f"{timing.seconds:9.2f}" if timing.seconds is not None else f"{'-':>9}"
        per = f"{rate:9.1f}" if rate is not None else f"{'-':>9}"
        ratio = f"{rate / base:10.1f}x" if rate is not None and base else f"{'-':>11}"
        lines.append(f"{timing.tool:<18} {seconds} {per} {ratio}  {timing.note}")
    if report.startup:
        lines += ["", "start-up (median wall time)"]
        for label, seconds in report.startup.items():
            lines.append(f"  {label:<28} {seconds:6.3f} s")
    return "\n".join(lines)


def to_json(report: Report) -> dict:
    data = asdict(report)
    for item, timing in zip(data["throughput"], report.throughput):
        item["files_per_second"] = timing.files_per_second
    return data


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tree", help="a directory of Python files (e.g. diffusers' src/)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes for each tool (default: all cores)")
    parser.add_argument("--torchfix-venv", default=str(DEFAULT_VENV), help="virtual environment with torchfix (default: bench/.venv-torchfix)")
    parser.add_argument("--create-venv", action="store_true", help="create the TorchFix venv (python -m venv + pip install torchfix) if missing")
    parser.add_argument("--no-torchfix", action="store_true", help="do not run TorchFix")
    parser.add_argument("--torchfix-timeout", type=float, default=None, help="give up on TorchFix after this many seconds")
    parser.add_argument("--no-ruff", action="store_true", help="do not run ruff even if installed")
    parser.add_argument("--startup-runs", type=int, default=7, help="runs per start-up case, median reported (0: skip)")
    parser.add_argument("--quick", action="store_true", help="smoke mode: no TorchFix, no ruff, 1 start-up run")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--keep-bytecode-setting", action="store_true",
        help="keep PYTHONDONTWRITEBYTECODE for the tools (default: unset it, as on a user's machine; "
        "with it set, every start recompiles the modules that have no .pyc yet)",
    )
    args = parser.parse_args(argv)
    if not args.keep_bytecode_setting:
        CHILD_ENV.pop("PYTHONDONTWRITEBYTECODE", None)
    if args.quick:
        args.no_torchfix, args.no_ruff, args.startup_runs = True, True, min(args.startup_runs, 1)
    report = run(args)
    print(render(report))
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(report), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
