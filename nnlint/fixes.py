"""Applying fixes: non-overlapping text edits, kept only if the result still parses."""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

from nnlint.findings import Finding, Fix


def _offsets(text: str) -> list[int]:
    starts = [0]
    for index, char in enumerate(text):
        if char == "\n":
            starts.append(index + 1)
    return starts


def _offset(starts: Sequence[int], line: int, column: int) -> int:
    return starts[line - 1] + column - 1


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
    starts = _offsets(text)
    accepted: list[tuple[int, int, str]] = []
    applied = 0
    for fix in sorted(fixes, key=lambda f: min((e.line, e.column) for e in f.edits)):
        spans = [
            (_offset(starts, e.line, e.column), _offset(starts, e.end_line, e.end_column), e.content)
            for e in fix.edits
        ]
        if any(a < y and x < b for a, b, _ in spans for x, y, _ in accepted):
            continue
        if any(a > b or b > len(text) for a, b, _ in spans):
            continue
        accepted.extend(spans)
        applied += 1
    for start, end, content in sorted(accepted, key=lambda s: s[0], reverse=True):
        text = text[:start] + content + text[end:]
    return text, applied


def parses(text: str) -> bool:
    import libcst as cst

    try:
        cst.parse_module(text)
    except Exception:
        return False
    return True


def fixed_text(text: str, findings: Sequence[Finding], unsafe: bool = False) -> Optional[tuple[str, int]]:
    """The text with this round's fixes applied, or ``None`` if nothing applies or it would not parse."""
    fixes = applicable(findings, unsafe)
    if not fixes:
        return None
    new_text, count = apply_fixes(text, fixes)
    if count == 0 or new_text == text or not parses(new_text):
        return None
    return new_text, count
