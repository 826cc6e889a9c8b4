"""``# nnlint: ignore[CODES]`` and ``# nnlint: ignore-file[CODES]`` comments.

* ``# nnlint: ignore[NN201]`` (optionally ``, NN202`` and a free-text reason after the
  bracket) silences those codes for a finding on any line of its range, or when it
  stands on a comment-only line directly above the finding's first line.
* ``# nnlint: ignore-file[NN1]`` anywhere in the file silences the codes for the file.

Codes are required (a bare ``# nnlint: ignore`` silences nothing) and may be prefixes.

* ``# noqa: NN201`` (flake8's and ruff's spelling) silences those codes for a finding on
  any line of its range, and a bare ``# noqa`` every code there, as ruff does; unlike
  ``# nnlint: ignore``, not from the line above.

Only real comments count: the text inside a string literal is not a directive.
"""
from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from nnlint.findings import Finding

_DIRECTIVE = re.compile(r"#\s*nnlint:\s*(ignore-file|ignore)\[([^\]]*)\]", re.I)
#: ``# noqa``, ``# noqa: NN201, E501``, ``# NOQA:NN2`` (not ``# noqa-ish``)
_NOQA = re.compile(r"#\s*noqa(?:\s*:\s*([A-Z]+[0-9]*(?:\s*,?\s*[A-Z]+[0-9]+)*)?|(?![\w-]))", re.I)
#: the code of a bare ``# noqa``: the prefix of every code
EVERY_CODE = ""


@dataclass(frozen=True)
class Suppressions:
    by_line: dict[int, tuple[str, ...]] = field(default_factory=dict)
    comment_only_lines: frozenset[int] = frozenset()
    file_codes: tuple[str, ...] = ()
    #: ``# noqa`` comments by line (a bare one as :data:`EVERY_CODE`): only their own line counts
    noqa: dict[int, tuple[str, ...]] = field(default_factory=dict)

    def silences(self, finding: Finding) -> bool:
        if _matches(finding.code, self.file_codes):
            return True
        last = max(finding.end_line, finding.line)
        for line in range(finding.line, last + 1):
            if _matches(finding.code, self.by_line.get(line, ())) or _matches(finding.code, self.noqa.get(line, ())):
                return True
        line = finding.line - 1
        while line in self.comment_only_lines:
            if _matches(finding.code, self.by_line.get(line, ())):
                return True
            line -= 1
        return False

    def codes_at(self, line: int, end_line: int) -> tuple[str, ...]:
        """Codes (and prefixes) silenced for a finding on lines ``line``..``end_line``."""
        codes = list(self.file_codes)
        for number in range(line, max(line, end_line) + 1):
            codes.extend(self.by_line.get(number, ()))
            codes.extend(self.noqa.get(number, ()))
        above = line - 1
        while above in self.comment_only_lines:
            codes.extend(self.by_line.get(above, ()))
            above -= 1
        return tuple(dict.fromkeys(codes))

    def filter(self, findings: Iterable[Finding]) -> list[Finding]:
        return [f for f in findings if not self.silences(f)]


def _matches(code: str, selectors: Sequence[str]) -> bool:
    return any(code.startswith(selector) for selector in selectors)


def _codes(text: str) -> tuple[str, ...]:
    return tuple(c.strip().upper() for c in re.split(r"[,\s]+", text) if c.strip())


def parse_suppressions(source: str) -> Suppressions:
    lowered = source.lower()
    if "nnlint:" not in lowered and "noqa" not in lowered:
        return Suppressions()
    by_line: dict[int, tuple[str, ...]] = {}
    noqa: dict[int, tuple[str, ...]] = {}
    comment_only: set[int] = set()
    file_codes: list[str] = []
    for line, text, only in _comments(source):
        if only:
            comment_only.add(line)
        for match in _DIRECTIVE.finditer(text):
            codes = _codes(match.group(2))
            if match.group(1).lower() == "ignore-file":
                file_codes.extend(codes)
            else:
                by_line[line] = by_line.get(line, ()) + codes
        for match in _NOQA.finditer(text):
            noqa[line] = noqa.get(line, ()) + (_codes(match.group(1)) if match.group(1) else (EVERY_CODE,))
    return Suppressions(by_line, frozenset(comment_only), tuple(file_codes), noqa)


def _comments(source: str) -> Iterable[tuple[int, str, bool]]:
    """(line, comment text, whether the line holds nothing but the comment)."""
    lines = source.splitlines()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        # Unparseable files are reported as NN001 anyway; fall back to a line scan.
        for number, line in enumerate(lines, start=1):
            index = line.find("#")
            if index >= 0:
                yield number, line[index:], not line[:index].strip()
        return
    for token in tokens:
        if token.type == tokenize.COMMENT:
            number, column = token.start
            prefix = lines[number - 1][:column] if number - 1 < len(lines) else ""
            yield number, token.string, not prefix.strip()


@dataclass(frozen=True)
class Directive:
    """One suppression comment as written, for reporting it unused (NN002). Columns are 0-based."""

    line: int
    kind: str  # "ignore" | "ignore-file" | "noqa"
    #: the codes as written, each with its (start, end) columns
    codes: tuple[tuple[str, int, int], ...]
    #: the directive's own span (``# nnlint: ignore[...]``, ``# noqa: ...``) and the comment's
    start: int
    end: int
    comment_start: int
    comment_end: int
    comment_only: bool


def parse_directives(source: str) -> list[Directive]:
    """Every ``# nnlint: ignore[...]``, ``ignore-file[...]`` and ``# noqa: ...`` with codes, in order."""
    found: list[Directive] = []
    lines = source.splitlines()
    for line, text, only in _comments(source):
        column = (lines[line - 1].find(text) if line - 1 < len(lines) else -1)
        if column < 0:
            continue
        spans: list[tuple[str, int, int, int, int, int]] = []
        for match in _DIRECTIVE.finditer(text):
            spans.append((match.group(1).lower(), match.start(), match.end(), match.start(2), match.end(2), 2))
        for match in _NOQA.finditer(text):
            if match.group(1):
                spans.append(("noqa", match.start(), match.end(), match.start(1), match.end(1), 1))
        for kind, start, end, inner, inner_end, _ in sorted(spans, key=lambda s: s[1]):
            codes = tuple((m.group().upper(), column + inner + m.start(), column + inner + m.end())
                          for m in re.finditer(r"[^,\s]+", text[inner:inner_end]))
            found.append(Directive(line, kind, codes, column + start, column + end, column, column + len(text), only))
    return found


def silenced_by(suppressions: Suppressions, directives: Sequence[Directive],
                findings: Iterable[Finding]) -> set[tuple[int, str]]:
    """(index in ``directives``, code as written) of every code that silences one of ``findings``,
    by the rules of :meth:`Suppressions.silences`."""
    used: set[tuple[int, str]] = set()
    by_line: dict[int, list[int]] = {}
    files: list[int] = []
    for index, directive in enumerate(directives):
        (files if directive.kind == "ignore-file" else by_line.setdefault(directive.line, [])).append(index)

    def mark(indices: Iterable[int], code: str, kinds: tuple[str, ...]) -> None:
        for index in indices:
            if directives[index].kind in kinds:
                used.update((index, c) for c, _, _ in directives[index].codes if code.startswith(c))

    for finding in findings:
        mark(files, finding.code, ("ignore-file",))
        for line in range(finding.line, max(finding.end_line, finding.line) + 1):
            mark(by_line.get(line, ()), finding.code, ("ignore", "noqa"))
        line = finding.line - 1
        while line in suppressions.comment_only_lines:
            mark(by_line.get(line, ()), finding.code, ("ignore",))
            line -= 1
    return used
