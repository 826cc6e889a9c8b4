"""A progress bar on standard error for runs that take more than about a second.

Only on a terminal: nothing on a pipe or a file, in CI (the ``CI`` variable) or with
``TERM=dumb``. rich is imported only once the bar is due, so short runs (a pre-commit hook)
pay nothing for it. The bar is transient: it is erased before the report is written.
"""
from __future__ import annotations

import threading
from typing import Any, Mapping, Optional, TextIO

#: seconds a run takes before the bar appears
DELAY = 1.0


def progress_bar(stream: TextIO, environ: Mapping[str, str], delay: float = DELAY) -> Optional["ProgressBar"]:
    """A bar for ``stream`` if it is an interactive terminal outside CI, else ``None``."""
    if environ.get("CI", "").strip().lower() not in ("", "0", "false") or environ.get("TERM") == "dumb":
        return None
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError, OSError):
        return None
    return ProgressBar(stream, delay) if interactive else None


class ProgressBar:
    """Called by the engine as ``bar(phase, done, total)``; shown from ``delay`` seconds on."""

    def __init__(self, stream: TextIO, delay: float = DELAY) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._state: tuple[str, int, int] = ("Linting", 0, 0)
        self._progress: Any = None
        self._task: Any = None
        self._closed = False
        self._timer = threading.Timer(delay, self._show)
        self._timer.daemon = True
        self._timer.start()

    def __call__(self, phase: str, done: int, total: int) -> None:
        with self._lock:
            self._state = (phase, done, total)
            if self._progress is not None:
                self._update()

    @property
    def shown(self) -> bool:
        return self._progress is not None

    def _show(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with self._lock:
            if self._closed:
                return
            console = Console(file=self._stream, stderr=True)
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), console=console, transient=True)
            self._task = self._progress.add_task(self._state[0], total=None)
            self._update()
            self._progress.start()

    def _update(self) -> None:
        phase, done, total = self._state
        self._progress.update(self._task, description=phase, completed=done, total=total or None)

    def close(self) -> None:
        """Stop (and erase) the bar; safe to call more than once."""
        self._timer.cancel()
        with self._lock:
            self._closed = True
            if self._progress is not None:
                self._progress.stop()
                self._progress = None
