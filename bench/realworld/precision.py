"""Precision of nnlint on well-known clean training code (not part of CI: it needs fetched repositories).

``clean_projects.tsv`` lists one project a row: the repository, the commit, the folder to lint
(``.`` for all of it) and a note. Each commit is exported whole from a local git mirror
(``--mirrors``, one ``owner+name/repo`` git directory each, as the project's fetch tool lays them
out), so a model defined outside the folder is still seen, and the folder is linted at the
DEFAULT selection, as a new user would run it.

    python bench/realworld/precision.py [--mirrors /work/.mirror] [-v]

Prints per project the Python lines linted (files that can contain DL code), the findings, and
findings per 20k lines, then the total; ``-v`` lists every finding.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from score import export_tree, git_dir  # noqa: E402  (the same export as the recall benchmark)

from nnlint.config import Settings  # noqa: E402
from nnlint.files import discover, may_contain_dl_code, read_bytes  # noqa: E402

PER_LINES = 20_000


@dataclass(frozen=True)
class Project:
    repo: str
    commit: str
    subdir: str
    note: str

    @property
    def label(self) -> str:
        return self.repo if self.subdir in ("", ".") else f"{self.repo}/{self.subdir}"


@dataclass(frozen=True)
class Measured:
    project: Project
    lines: int
    findings: tuple[dict, ...]
    available: bool


def read_projects(path: Path) -> list[Project]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = csv.DictReader(
            (line for line in handle if line.strip() and not line.startswith("#")), delimiter="\t"
        )
        return [
            Project(
                repo=row["repo"].strip(),
                commit=row["commit"].strip(),
                subdir=(row.get("subdir") or ".").strip() or ".",
                note=(row.get("note") or "").strip(),
            )
            for row in rows
        ]


def linted_lines(tree: Path, subdir: str) -> int:
    """Lines of the files nnlint parses below ``subdir``: discovered, and mentioning a DL framework."""
    total = 0
    here = os.getcwd()
    os.chdir(tree)  # exclude patterns are matched relative to the working directory, as the CLI does
    try:
        for file in discover([subdir], Settings()):
            data = read_bytes(file.absolute)
            if data is not None and may_contain_dl_code(data):
                total += data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    finally:
        os.chdir(here)
    return total


def lint(tree: Path, subdir: str, nnlint: list[str]) -> tuple[dict, ...]:
    result = subprocess.run(
        nnlint + ["--format", "json", "--no-cache", "--exit-zero", subdir],
        cwd=tree,
        capture_output=True,
        text=True,
    )
    try:
        findings = json.loads(result.stdout)["findings"]
    except (ValueError, KeyError):
        sys.stderr.write(f"{tree}: nnlint failed: {result.stderr[-2000:]}\n")
        return ()
    return tuple(sorted(findings, key=lambda f: (f["path"], f["line"], f["column"], f["code"])))


def measure(projects: list[Project], mirrors: Path, work: Path, nnlint: list[str]) -> list[Measured]:
    measured: list[Measured] = []
    for project in projects:
        git = git_dir(mirrors, project.repo)
        tree = work / f"{project.repo.replace('/', '+')}@{project.commit[:12]}"
        if git is None or not export_tree(git, project.commit, tree) or not (tree / project.subdir).exists():
            measured.append(Measured(project, 0, (), False))
            continue
        measured.append(
            Measured(project, linted_lines(tree, project.subdir), lint(tree, project.subdir, nnlint), True)
        )
    return measured


def rate(findings: int, lines: int) -> float:
    return PER_LINES * findings / lines if lines else 0.0


def report(measured: list[Measured], verbose: bool) -> None:
    width = max([len(m.project.label) for m in measured] + [7])
    print(f"{'project':<{width}} {'lines':>8} {'findings':>9} {'per 20k':>8}  codes")
    lines = findings = 0
    for m in measured:
        if not m.available:
            print(f"{m.project.label:<{width}} {'not fetched (or commit/folder missing)':>30}")
            continue
        codes = Counter(f["code"] for f in m.findings)
        summary = " ".join(f"{code}x{n}" for code, n in sorted(codes.items()))
        print(f"{m.project.label:<{width}} {m.lines:>8} {len(m.findings):>9} {rate(len(m.findings), m.lines):>8.2f}  {summary}")
        lines += m.lines
        findings += len(m.findings)
    print(f"{'total':<{width}} {lines:>8} {findings:>9} {rate(findings, lines):>8.2f}")
    if verbose:
        for m in measured:
            for f in m.findings:
                print(f"  {m.project.label}: {f['path']}:{f['line']}: {f['code']} {f['message']}")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=Path, default=HERE / "clean_projects.tsv")
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--work", type=Path, default=HERE / ".trees" / "precision", help="where commits are exported")
    parser.add_argument("--repo", action="append", help="measure only these repositories (owner/name)")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every finding")
    args = parser.parse_args(argv)
    projects = read_projects(args.projects)
    if args.repo:
        projects = [p for p in projects if p.repo in args.repo]
    nnlint = [sys.executable, "-I", "-m", "nnlint"]  # -I: the linted tree cannot shadow nnlint
    report(measure(projects, args.mirrors, args.work.resolve(), nnlint), args.verbose)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
