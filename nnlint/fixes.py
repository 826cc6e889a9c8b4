"""Applying fixes: non-overlapping text edits, kept only if the result still parses."""
from __future__ import annotations

import re
from typing import Iterable, Optional, Sequence

from nnlint.findings import Finding, Fix

#: Line breaks as libcst counts them for positions (and CPython reads them): not str.splitlines(),
#: which also breaks at form feeds and other characters that are not line breaks in Python.
_LINE_BREAK = re.compile(r"\r\n?|\n")


def _offsets(text: str) -> list[int]:
    """Where each line starts, lines ending at ``\\r\\n``, ``\\r`` or ``\\n`` like the parser's positions."""
    return [0] + [match.end() for match in _LINE_BREAK.finditer(text)]


def _offset(starts: Sequence[int], text: str, line: int, column: int) -> Optional[int]:
    """The string index of 1-based (line, column), or ``None`` if it is not in ``text``."""
    if not 1 <= line <= len(starts) or column < 1:
        return None
    start = starts[line - 1]
    end = starts[line] if line < len(starts) else len(text)
    offset = start + column - 1
    # a column may point just past the line's last character (an end position), not into the next line
    return offset if offset <= end else None


def applicable(findings: Iterable[Finding], unsafe: bool) -> list[Fix]:
    return [
        f.fix for f in findings
        if f.fix is not None and f.fix.edits and (unsafe or f.fix.applicability == "safe")
    ]


def apply_fixes(text: str, fixes: Sequence[Fix]) -> tuple[str, int]:
    """Apply as many fixes as do not overlap; returns the new text and how many were applied.

    A fix whose edits overlap an already accepted fix waits for the next round (the
    engine re-lints and tries again), as ruff does.
    """
    new_text, applied = apply_fixes_which(text, fixes)
    return new_text, len(applied)


def apply_fixes_which(text: str, fixes: Sequence[Fix]) -> tuple[str, list[int]]:
    """:func:`apply_fixes`, saying which of ``fixes`` (their indices) were applied."""
    starts = _offsets(text)
    accepted: list[tuple[int, int, str]] = []
    applied: list[int] = []
    order = sorted(range(len(fixes)), key=lambda i: min((e.line, e.column) for e in fixes[i].edits))
    for number in order:
        fix = fixes[number]
        located = [
            (_offset(starts, text, e.line, e.column), _offset(starts, text, e.end_line, e.end_column), e.content)
            for e in fix.edits
        ]
        spans = [(a, b, content) for a, b, content in located if a is not None and b is not None]
        if len(spans) != len(located):  # an edit outside the text: positions from another version of it
            continue
        if any(a < y and x < b for a, b, _ in spans for x, y, _ in accepted):
            continue
        if any(a > b or b > len(text) for a, b, _ in spans):
            continue
        accepted.extend(spans)
        applied.append(number)
    for start, end, content in sorted(accepted, key=lambda s: s[0], reverse=True):
        text = text[:start] + content + text[end:]
    return text, applied


def parses(text: str) -> bool:
    """Does libcst parse ``text`` the way the checker does (line breaks alike, no panic)?"""
    from nnlint.checker import parse_cst

    try:
        parse_cst(text)
    except Exception:
        return False
    return True


def fixed_text(text: str, findings: Sequence[Finding], unsafe: bool = False) -> Optional[tuple[str, int]]:
    """The text with this round's fixes applied, or ``None`` if nothing applies or it would not parse."""
    outcome = fix_round(text, findings, unsafe)
    return None if outcome is None else (outcome[0], len(outcome[1]))


def fix_round(text: str, findings: Sequence[Finding], unsafe: bool = False) -> Optional[tuple[str, list[Finding]]]:
    """:func:`fixed_text`, with the findings whose fixes were applied instead of their number."""
    fixable = fixable_findings(findings, unsafe)
    if not fixable:
        return None
    new_text, applied = apply_fixes_which(text, [f.fix for f in fixable])  # type: ignore[misc]
    if not applied or new_text == text or not parses(new_text):
        return None
    return new_text, [fixable[i] for i in applied]


def fixable_findings(findings: Iterable[Finding], unsafe: bool) -> list[Finding]:
    """The findings :func:`applicable` takes the fixes of."""
    return [f for f in findings if f.fix is not None and f.fix.edits and (unsafe or f.fix.applicability == "safe")]
