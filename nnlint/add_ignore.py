"""``--add-ignore``: a ``# nnlint: ignore[CODE]`` comment for each finding, where it silences it.

The comment goes at the end of the finding's first line that can take one (not a line that ends
inside a multi-line string or with a backslash); it is merged into an ``# nnlint: ignore[...]``
already there, and appended after any other comment. When no line of the finding can take it, a
comment line is put directly above the finding (which silences it too). Files are replaced in
one step, only if they still parse, and a second run adds nothing.
"""
from __future__ import annotations

import io
import re
import tokenize
from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple

from nnlint.findings import Finding, source_key
from nnlint.suppression import _DIRECTIVE, parse_suppressions

_LINE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+")
_BREAK = re.compile(r"(?:\r\n?|\n)$")


@dataclass(frozen=True)
class AddedIgnores:
    #: (path, how many comments were added or extended) per changed file
    files: Tuple[Tuple[str, int], ...]
    errors: Tuple[str, ...] = ()
    #: findings no comment can silence (one that starts on the line a multi-line string ends on)
    skipped: int = 0

    @property
    def comments(self) -> int:
        return sum(count for _, count in self.files)


def add_ignores(findings: Sequence[Finding], sources: Mapping[str, str]) -> AddedIgnores:
    """Add the comments for ``findings`` (their files as in ``sources``, the text that was linted)."""
    by_path: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        if finding.path and finding.line >= 1 and finding.code != "NN001":  # a syntax error is fixed, not ignored
            by_path[finding.path].append(finding)
    changed: list[tuple[str, int]] = []
    errors: list[str] = []
    skipped = [0]
    for path, found in by_path.items():
        try:
            count = _notebook(path, found, sources, skipped) if path.endswith(".ipynb") \
                else _file(path, found, sources, skipped)
        except (OSError, ValueError) as error:
            errors.append(f"{path}: no ignore comments added: {error}")
            continue
        if count:
            changed.append((path, count))
    return AddedIgnores(tuple(changed), tuple(errors), skipped[0])


def _file(path: str, findings: Sequence[Finding], sources: Mapping[str, str], skipped: list[int]) -> int:
    from nnlint.files import decode_source, encode_source, read_source, write_atomically
    from nnlint.fixes import parses

    data = read_source(path)
    if not isinstance(data, bytes):
        raise OSError(data.message)
    decoded = decode_source(data)
    if sources.get(path) != decoded.text:
        raise ValueError("the file changed while it was linted")
    new, count, left = with_ignores(decoded.text, findings)
    skipped[0] += left
    if not count:
        return 0
    if parses(decoded.text) and not parses(new):
        raise ValueError("the comments would not leave valid Python")
    write_atomically(path, encode_source(new, decoded))
    return count


def _notebook(path: str, findings: Sequence[Finding], sources: Mapping[str, str], skipped: list[int]) -> int:
    from nnlint.files import read_notebook, write_atomically
    from nnlint.notebook import Notebook, mask_ipython, with_sources

    notebook = read_notebook(path)
    if not isinstance(notebook, Notebook):
        raise ValueError(notebook.message)
    by_cell: dict[int, list[Finding]] = defaultdict(list)
    for finding in findings:
        if finding.cell is not None:
            by_cell[finding.cell].append(finding)
    new_sources: dict[int, str] = {}
    total = 0
    for number, found in by_cell.items():
        cell = notebook.cell(number)
        if cell is None or sources.get(source_key(path, number)) != cell.source:
            raise ValueError("the notebook changed while it was linted")
        masked = mask_ipython(cell.source)[0]
        new, count, left = with_ignores(cell.source, found, masked)
        skipped[0] += left
        if count:
            new_sources[number], total = new, total + count
    if new_sources:
        write_atomically(path, with_sources(notebook, new_sources))
    return total


def with_ignores(text: str, findings: Sequence[Finding], python: Optional[str] = None) -> tuple[str, int, int]:
    """``text`` with an ignore comment for each finding not yet silenced, how many lines changed,
    and how many findings no comment can silence.

    ``python`` is ``text`` as Python reads it, line for line (a notebook cell with its magics masked).
    """
    lines = _LINE.findall(text)
    suppressions = parse_suppressions(python if python is not None else text)
    closed = _lines_that_cannot_take_a_comment(python if python is not None else text)
    at_end: dict[int, list[str]] = defaultdict(list)  # line -> codes for a comment at its end
    above: dict[int, list[str]] = defaultdict(list)  # line -> codes for a comment line above it
    left = 0
    for finding in findings:
        if suppressions.silences(finding) or finding.line > len(lines):
            continue
        last = min(max(finding.end_line, finding.line), len(lines))
        line = next((n for n in range(finding.line, last + 1) if n not in closed), None)
        if line is None and finding.line - 1 in closed:  # the line above ends inside a string
            left += 1
            continue
        target = at_end if line is not None else above
        codes = target[line if line is not None else finding.line]
        if finding.code not in codes:
            codes.append(finding.code)
    for number, codes in at_end.items():
        lines[number - 1] = _with_codes(lines[number - 1], codes)
    for number in sorted(above, reverse=True):
        body = lines[number - 1]
        indent = body[: len(body) - len(body.lstrip(" \t"))]
        match = _BREAK.search(body)
        lines.insert(number - 1, f"{indent}# nnlint: ignore[{', '.join(sorted(above[number]))}]"
                                 f"{match.group() if match else chr(10)}")
    return "".join(lines), len(at_end) + len(above), left


def _with_codes(line: str, codes: list[str]) -> str:
    """``line`` with ``codes`` added to its ignore comment (a new one at its end if it has none)."""
    match = _BREAK.search(line)
    brk = match.group() if match else ""
    body = line[: len(line) - len(brk)]
    comment = _comment_start(body)
    directive = _DIRECTIVE.search(body, comment) if comment is not None else None
    if directive is not None and directive.group(1).lower() == "ignore":
        inside = directive.group(2)
        present = [c.strip() for c in re.split(r"[,\s]+", inside) if c.strip()]
        merged = ", ".join(present + [c for c in sorted(codes) if c not in present])
        return body[: directive.start(2)] + merged + body[directive.end(2):] + brk
    return f"{body.rstrip()}  # nnlint: ignore[{', '.join(sorted(codes))}]{brk}"


def _comment_start(line: str) -> Optional[int]:
    """Where the comment of a (complete) line starts, if it has one."""
    try:
        for token in tokenize.generate_tokens(io.StringIO(line + "\n").readline):
            if token.type == tokenize.COMMENT:
                return token.start[1]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None
    return None


def _lines_that_cannot_take_a_comment(text: str) -> set[int]:
    """Lines whose end is inside a token (a multi-line string) or that continue with a backslash."""
    closed: set[int] = set()
    lines = _LINE.findall(text)
    for number, line in enumerate(lines, start=1):
        if line.rstrip("\r\n").endswith("\\"):
            closed.add(number)
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.end[0] > token.start[0]:
                closed.update(range(token.start[0], token.end[0]))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return set(range(1, len(lines) + 1))  # cannot tell where strings are: comments above only
    return closed
