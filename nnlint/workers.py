"""Parallel checking with file affinity: a file's two phases run in the same process.

Each worker keeps the files it parsed in phase one until phase two, so nothing is
parsed twice. Work is split by bytes, so the slowest worker bounds the wall time.
The order of findings never depends on the number of workers: the engine sorts.
"""
from __future__ import annotations

import multiprocessing
import traceback
from multiprocessing.connection import Connection
from typing import Any, Optional, Sequence, Tuple

from nnlint.catalogue import Catalogue
from nnlint.checker import CheckPlan, FileChecker, PhaseOne, PhaseTwo, python_can_fork
from nnlint.collector import collector_paused
from nnlint.facts.index import ProjectIndex
from nnlint.files import SourceFile
from nnlint.findings import Finding


def _serve(conn: Connection, plan: CheckPlan, catalogue: Optional["Catalogue"] = None) -> None:
    # A worker lives for one run and keeps its files' trees until phase two: the cyclic
    # collector's passes over them would free nothing (see nnlint.collector).
    with collector_paused():
        _serve_requests(conn, FileChecker(plan, catalogue))


def _serve_requests(conn: Connection, checker: FileChecker) -> None:
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        operation, payload = request
        try:
            if operation == "summarize":
                reply: Any = [checker.summarize(source) for source in payload]
            else:
                index, items = payload
                reply = [checker.check(source, index, early) for source, early in items]
            conn.send(("ok", reply))
        except BaseException as error:  # report, never hang the parent
            conn.send(("error", f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=3)}"))


class WorkerPool:
    """``jobs`` worker processes; worker ``i`` handles ``assignment[i]`` in both phases."""

    def __init__(self, plan: CheckPlan, jobs: int, catalogue: Optional["Catalogue"] = None) -> None:
        method = "fork" if python_can_fork() else "spawn"
        # a forked worker inherits the catalogue for free; a spawned one reads the rules itself
        inherited = catalogue if method == "fork" else None
        context = multiprocessing.get_context(method)
        self._connections: list[Connection] = []
        self._processes: list[Any] = []
        for _ in range(jobs):
            parent, child = context.Pipe()
            process = context.Process(target=_serve, args=(child, plan, inherited), daemon=True)
            process.start()
            child.close()
            self._connections.append(parent)
            self._processes.append(process)

    @property
    def size(self) -> int:
        return len(self._connections)

    def _round(self, requests: Sequence[Optional[tuple[str, Any]]]) -> list[Any]:
        for conn, request in zip(self._connections, requests):
            if request is not None:
                conn.send(request)
        replies: list[Any] = []
        for conn, request in zip(self._connections, requests):
            if request is None:
                replies.append([])
                continue
            status, reply = conn.recv()
            if status != "ok":
                raise RuntimeError(f"worker failed: {reply}")
            replies.append(reply)
        return replies

    def summarize(self, assignment: Sequence[Sequence[SourceFile]]) -> list[list[PhaseOne]]:
        return self._round([("summarize", list(files)) if files else None for files in assignment])

    def check(
        self,
        index: ProjectIndex,
        assignment: Sequence[Sequence[Tuple[SourceFile, Tuple[Finding, ...]]]],
    ) -> list[list[PhaseTwo]]:
        return self._round([("check", (index, list(items))) if items else None for items in assignment])

    def close(self) -> None:
        for conn in self._connections:
            try:
                conn.send(None)
                conn.close()
            except OSError:
                pass
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def balance(sizes: Sequence[int], workers: int) -> list[list[int]]:
    """Split item indices into ``workers`` groups of similar total size (largest first)."""
    groups: list[list[int]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for index in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        target = loads.index(min(loads))
        groups[target].append(index)
        loads[target] += sizes[index]
    for group in groups:
        group.sort()
    return groups
