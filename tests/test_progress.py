"""The progress bar: on a terminal after a delay, never on a pipe or in CI, erased before the report."""
from __future__ import annotations

import io
import time
from pathlib import Path

import nnlint
from nnlint.progress import ProgressBar, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_only_on_an_interactive_terminal_outside_ci() -> None:
    assert progress_bar(io.StringIO(), {}) is None  # a pipe or a file
    assert progress_bar(Terminal(), {"CI": "true"}) is None
    assert progress_bar(Terminal(), {"TERM": "dumb"}) is None
    bar = progress_bar(Terminal(), {"CI": "0"})
    assert isinstance(bar, ProgressBar)
    bar.close()


def test_short_runs_show_nothing() -> None:
    stream = Terminal()
    bar = ProgressBar(stream, delay=5.0)
    bar("Parsing", 1, 2)
    bar.close()
    assert not bar.shown and stream.getvalue() == ""


def test_long_runs_show_the_phase_and_counts() -> None:
    stream = Terminal()
    bar = ProgressBar(stream, delay=0.0)
    deadline = time.monotonic() + 10
    while not bar.shown and time.monotonic() < deadline:
        time.sleep(0.01)
    bar("Checking", 3, 7)
    assert bar.shown
    bar.close()
    bar.close()  # twice is fine
    assert "Checking" in stream.getvalue() and "3/7" in stream.getvalue()


def test_the_engine_reports_each_file_parsed_and_checked(tmp_path: Path) -> None:
    for name in "abc":
        (tmp_path / f"{name}.py").write_text("import torch\ny = torch.log(torch.softmax(x, 1))\n")
    calls: list[tuple[str, int, int]] = []
    nnlint.lint_paths([str(tmp_path)], use_cache=False, jobs=1, progress=lambda *call: calls.append(call))
    assert calls[0] == ("Parsing", 0, 3) and ("Parsing", 3, 3) in calls
    assert ("Checking", 0, 3) in calls and calls[-1] == ("Checking", 3, 3)
