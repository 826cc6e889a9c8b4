"""Recall of nnlint on real bug-fix commits (not part of CI: it needs fetched repositories).

``cases.tsv`` lists one real bug a row: the repository, the buggy commit (the parent of the
fix), the file and line where the fix went, and the code nnlint should report there. The
repositories are read from local git mirrors (``--mirrors``, one ``owner+name/repo`` git
directory each, as the project's fetch tool lays them out); each buggy commit is exported
whole (a model in ``model.py`` and its loss in ``train.py`` are one program) and linted once
with ``--select ALL``.

    python bench/realworld/score.py [--mirrors /work/.mirror] [--cases bench/realworld/cases.tsv]

Prints recall per code: found in the right file, and found within ``--slack`` lines.

``heldout.tsv`` has the same columns: bug fixes collected without running nnlint and never
used to develop it, scored once as they were collected (``--cases bench/realworld/heldout.tsv``).
Rows are added to it, never moved into ``cases.tsv``; a shape learnt from one of its misses makes
that row a development case, so report its figure as of when it was first scored.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import io
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
FIELDS = ("id", "repo", "buggy_commit", "fixed_commit", "path", "line", "code", "shape", "reference")


@dataclass(frozen=True)
class Case:
    id: str
    repo: str
    buggy_commit: str
    fixed_commit: str
    path: str
    line: int
    code: str
    shape: str
    reference: str


@dataclass(frozen=True)
class Outcome:
    case: Case
    status: str  # "line", "file", "missed" or "unavailable"
    detail: str


def read_cases(path: Path) -> list[Case]:
    cases: list[Case] = []
    with open(path, newline="", encoding="utf-8") as handle:
        rows = csv.DictReader(
            (line for line in handle if line.strip() and not line.startswith("#")), delimiter="\t"
        )
        for row in rows:
            cases.append(
                Case(
                    id=row["id"].strip(),
                    repo=row["repo"].strip(),
                    buggy_commit=row["buggy_commit"].strip(),
                    fixed_commit=row["fixed_commit"].strip(),
                    path=row["path"].strip(),
                    line=int(row["line"]),
                    code=row["code"].strip(),
                    shape=(row.get("shape") or "").strip(),
                    reference=(row.get("reference") or "").strip(),
                )
            )
    return cases


def git_dir(mirrors: Path, repo: str) -> Optional[Path]:
    base = mirrors / repo.replace("/", "+") / "repo"
    for candidate in (base / ".git", base):  # a snapshot is either a bare git directory or a clone
        if (candidate / "objects").is_dir():
            return candidate
    return None


def export_tree(git: Path, commit: str, destination: Path) -> bool:
    """Write the Python files of ``commit`` under ``destination`` (once; reused afterwards).

    Blob by blob rather than ``git archive``: a snapshot may lack its largest files, and a
    missing data file must not stop the code from being exported.
    """
    done = destination / ".exported"
    if done.exists():
        return True
    listing = subprocess.run(
        ["git", f"--git-dir={git}", "ls-tree", "-r", "-z", commit], capture_output=True
    )
    if listing.returncode != 0:
        return False
    wanted: list[tuple[str, str]] = []
    for entry in listing.stdout.split(b"\0"):
        if not entry:
            continue
        meta, _, raw_path = entry.partition(b"\t")
        parts = meta.split()
        path = raw_path.decode("utf-8", "surrogateescape")
        if len(parts) == 3 and parts[1] == b"blob" and path.endswith((".py", ".pyi", ".cfg")) \
                and not path.startswith("/") and ".." not in Path(path).parts:
            wanted.append((parts[2].decode(), path))
    destination.mkdir(parents=True, exist_ok=True)
    batch = subprocess.run(
        ["git", f"--git-dir={git}", "cat-file", "--batch"],
        input="".join(f"{sha}\n" for sha, _ in wanted).encode(), capture_output=True,
    )
    stream = io.BytesIO(batch.stdout)
    for sha, path in wanted:
        header = stream.readline().split()
        if len(header) != 3:  # "<sha> missing": absent from the snapshot
            continue
        data = stream.read(int(header[2]))
        stream.read(1)
        target = destination / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    # A project's own [tool.nnlint] settings would change what "ALL" means: pyproject.toml is
    # not exported, so every tree is linted as a new user would.
    done.write_text(commit)
    return True


def lint(tree: Path, nnlint: list[str], paths: list[str]) -> list[dict]:
    """Lint ``paths`` of ``tree`` as a project: a ``[tool.nnlint]`` at its root makes nnlint index
    the modules they import and the files that import them, as the pre-commit hook does."""
    (tree / "pyproject.toml").write_text("[tool.nnlint]\n")
    present = [p for p in paths if (tree / p).exists()]
    if not present:
        return []
    result = subprocess.run(
        nnlint + ["--select", "ALL", "--format", "json", "--no-cache", "--exit-zero", *present],
        cwd=tree,
        capture_output=True,
        text=True,
    )
    try:
        return json.loads(result.stdout)["findings"]
    except (ValueError, KeyError):
        sys.stderr.write(f"{tree}: nnlint failed: {result.stderr[-2000:]}\n")
        return []


def score(cases: list[Case], mirrors: Path, work: Path, slack: int, nnlint: list[str],
          whole: bool = False) -> list[Outcome]:
    findings_of: dict[tuple[str, str], list[dict]] = {}
    outcomes: list[Outcome] = []
    for case in cases:
        key = (case.repo, case.buggy_commit)
        if key not in findings_of:
            git = git_dir(mirrors, case.repo)
            tree = work / f"{case.repo.replace('/', '+')}@{case.buggy_commit[:12]}"
            if git is None or not export_tree(git, case.buggy_commit, tree):
                findings_of[key] = None  # type: ignore[assignment]
            else:
                # the files of this commit's cases (the answer for a file is the whole project's)
                paths = ["."] if whole else sorted({c.path for c in cases if (c.repo, c.buggy_commit) == key})
                findings_of[key] = lint(tree, nnlint, paths)
        findings = findings_of[key]
        if findings is None:
            outcomes.append(Outcome(case, "unavailable", "repository or commit not fetched"))
            continue
        wanted = os.path.normpath(case.path)
        in_file = [f for f in findings if os.path.normpath(f["path"]) == wanted and f["code"] == case.code]
        near = [f for f in in_file if abs(f["line"] - case.line) <= slack]
        if near:
            outcomes.append(Outcome(case, "line", f"line {near[0]['line']}"))
        elif in_file:
            outcomes.append(Outcome(case, "file", "lines " + ",".join(str(f["line"]) for f in in_file)))
        else:
            others = sorted({f["code"] for f in findings if os.path.normpath(f["path"]) == wanted})
            outcomes.append(Outcome(case, "missed", "other codes in file: " + (",".join(others) or "none")))
    return outcomes


def report(outcomes: list[Outcome], verbose: bool) -> None:
    per_code: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        per_code[outcome.case.code].append(outcome)
    scored = [o for o in outcomes if o.status != "unavailable"]
    print(f"{'code':<8}{'cases':>6}{'file':>7}{'line':>7}   file%  line%")
    for code in sorted(per_code):
        rows = [o for o in per_code[code] if o.status != "unavailable"]
        if not rows:
            continue
        file_hits = sum(o.status in ("file", "line") for o in rows)
        line_hits = sum(o.status == "line" for o in rows)
        print(f"{code:<8}{len(rows):>6}{file_hits:>7}{line_hits:>7}  {100 * file_hits / len(rows):5.0f}% {100 * line_hits / len(rows):5.0f}%")
    if scored:
        file_hits = sum(o.status in ("file", "line") for o in scored)
        line_hits = sum(o.status == "line" for o in scored)
        print(f"{'all':<8}{len(scored):>6}{file_hits:>7}{line_hits:>7}  {100 * file_hits / len(scored):5.0f}% {100 * line_hits / len(scored):5.0f}%")
    missing = len(outcomes) - len(scored)
    if missing:
        print(f"{missing} case(s) not scored: repository or commit not available locally")
    if verbose:
        for outcome in outcomes:
            if outcome.status != "line":
                c = outcome.case
                print(f"  {outcome.status:<11} {c.id} {c.code} {c.repo}@{c.buggy_commit[:10]} {c.path}:{c.line}  ({outcome.detail}) {c.shape}")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=Path, default=HERE / "cases.tsv")
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--work", type=Path, default=HERE / ".trees", help="where buggy trees are exported")
    parser.add_argument("--slack", type=int, default=3, help="lines either side that count as the right line")
    parser.add_argument("--code", action="append", help="score only these codes")
    parser.add_argument("--id", action="append", help="score only these case ids")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every case not found on its line")
    parser.add_argument("--checkout", type=Path,
                        help="run the nnlint package of this source checkout (e.g. an older commit) instead")
    parser.add_argument("--whole", action="store_true",
                        help="lint each whole tree instead of the cases' files (slower; the same answer)")
    args = parser.parse_args(argv)
    cases = read_cases(args.cases)
    if args.code:
        cases = [c for c in cases if c.code in args.code]
    if args.id:
        cases = [c for c in cases if c.id in args.id]
    nnlint = [sys.executable, "-I", "-m", "nnlint"]  # -I: the linted tree cannot shadow nnlint
    if args.checkout is not None:
        # that checkout's package and its own rules/ (an installed nnlint maps nnlint._rules elsewhere)
        nnlint = [sys.executable, "-I", "-c", "import sys, pathlib; root = sys.argv.pop(1); sys.path.insert(0, root); "
                  "import nnlint.catalogue as c; c.rules_directory = lambda: pathlib.Path(root, 'rules'); "
                  "import nnlint.cli; sys.exit(nnlint.cli.main(sys.argv[1:]))", str(args.checkout.resolve())]
    report(score(cases, args.mirrors, args.work, args.slack, nnlint, args.whole), args.verbose)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
