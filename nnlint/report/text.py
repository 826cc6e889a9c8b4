"""Human-readable output: ``full`` (ruff-like frames) and ``concise`` (one line per finding)."""
from __future__ import annotations

import difflib
import json
import re
import unicodedata
from collections import Counter
from typing import Iterable, Mapping, Optional, Sequence, TextIO, Union

from nnlint.findings import Finding, source_key

#: Longest range shown line by line in a frame; longer ones show their first and last lines.
MAX_FRAME_LINES = 4
#: Most changed lines a fix's diff under a finding shows (the rest: ``--diff``)
MAX_FIX_LINES = 12
_NEWLINE = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class _Style:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled and text else text

    def bold(self, text: str) -> str:
        return self(text, "1")

    def red(self, text: str) -> str:
        return self(text, "1;31")

    def yellow(self, text: str) -> str:
        return self(text, "1;33")

    def cyan(self, text: str) -> str:
        return self(text, "36")

    def blue(self, text: str) -> str:
        return self(text, "1;34")

    def dim(self, text: str) -> str:
        return self(text, "2")

    def green(self, text: str) -> str:
        return self(text, "32")


def is_runtime(finding: Finding) -> bool:
    return not finding.path and finding.line <= 0


def where(finding: Finding) -> str:
    """``path:line:col`` for static findings; ``runtime[step 12, fc1]`` for runtime ones."""
    if not is_runtime(finding):
        if finding.line <= 0:
            return finding.path
        return position(finding.path, finding.cell, finding.line, finding.column)
    parts = []
    if finding.step is not None:
        parts.append(f"step {finding.step}")
    if finding.module:
        parts.append(finding.module)
    return f"runtime[{', '.join(parts)}]" if parts else "runtime"


def position(path: str, cell: Optional[int], line: int, column: int) -> str:
    """``path:line:col``, or ``nb.ipynb:cell 5:3:9`` in a notebook (the line counted in the cell)."""
    where = path if cell is None else f"{path}:cell {cell}"
    return f"{where}:{line}:{max(column, 1)}"


def _one_line(text: str) -> str:
    """Messages stay on one line so that ``concise`` output is one finding per line."""
    return _CONTROL.sub(" ", " ".join(_NEWLINE.split(text)))


def fix_counts(findings: Sequence[Finding], unsafe_fixes: bool) -> tuple[int, int]:
    """(fixable with the current flags, fixable only with ``--unsafe-fixes``)."""
    safe = sum(1 for f in findings if f.fix is not None and (unsafe_fixes or f.fix.applicability == "safe"))
    hidden = sum(1 for f in findings if f.fix is not None and f.fix.applicability == "unsafe" and not unsafe_fixes)
    return safe, hidden


def _plural(count: int, word: str) -> str:
    if count == 1:
        return f"{count} {word}"
    return f"{count} {word}es" if word.endswith("x") else f"{count} {word}s"


#: how the summary names each severity
_SEVERITY_WORDS = (("error", "error"), ("warning", "warning"), ("info", "info finding"))


def count_by_severity(severities: Iterable[str]) -> str:
    """``4 errors and 9 warnings``, ``1 error, 2 warnings and 1 info finding`` (``0 errors`` for none)."""
    counts = Counter(severities)
    parts = [_plural(counts[severity], word) for severity, word in _SEVERITY_WORDS if counts[severity]]
    parts += [_plural(count, f"{severity} finding") for severity, count in sorted(counts.items())
              if severity not in dict(_SEVERITY_WORDS)]
    if not parts:
        return "0 errors"
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def summary_lines(
    findings: Sequence[Finding], fixed: Union[int, Sequence[Finding]], unsafe_fixes: bool
) -> list[str]:
    """The summary, counting by severity. ``fixed``: the findings ``--fix`` repaired (a bare
    number counts them as errors: their severities are unknown)."""
    fixed_severities = ["error"] * fixed if isinstance(fixed, int) else [f.severity for f in fixed]
    remaining = len(findings)
    if remaining == 0 and not fixed_severities:
        return ["All checks passed!"]
    total = count_by_severity([f.severity for f in findings] + fixed_severities)
    fixable, hidden = fix_counts(findings, unsafe_fixes)
    if fixed_severities:
        head = f"Found {total} ({len(fixed_severities)} fixed, {remaining} remaining)."
    elif fixable:
        head = f"Found {total} ({fixable} fixable with --fix)."
    else:
        head = f"Found {total}."
    lines = [head]
    if hidden:
        lines.append(f"{_plural(hidden, 'hidden fix')} can be enabled with --unsafe-fixes.")
    return lines


def write_text(
    findings: Sequence[Finding],
    stream: TextIO,
    *,
    full: bool,
    sources: Mapping[str, str],
    color: bool,
    fixed: Union[int, Sequence[Finding]] = 0,
    summary: bool = True,
    unsafe_fixes: bool = False,
) -> None:
    style = _Style(color)
    split_cache: dict[str, list[str]] = {}
    for finding in findings:
        if full:
            stream.write(_frame(finding, sources, split_cache, style, unsafe_fixes))
        else:
            stream.write(
                f"{style.bold(where(finding))}: {_code(finding, style)} {_one_line(finding.message)}\n"
            )
    if summary:
        for line in summary_lines(findings, fixed, unsafe_fixes):
            stream.write(line + "\n")


def _code(finding: Finding, style: _Style) -> str:
    if finding.severity == "error":
        return style.red(finding.code)
    if finding.severity == "warning":
        return style.yellow(finding.code)
    return style.cyan(finding.code)


def _frame(
    finding: Finding,
    sources: Mapping[str, str],
    split_cache: dict[str, list[str]],
    style: _Style,
    unsafe_fixes: bool,
) -> str:
    marker = ""
    if finding.fix is not None and (unsafe_fixes or finding.fix.applicability == "safe"):
        marker = "[*] "
    out = [f"{style.bold(where(finding))}: {_code(finding, style)} {marker}{_one_line(finding.message)}\n"]
    key = source_key(finding.path, finding.cell)
    text = sources.get(key) if finding.path else None
    if text is not None and finding.line > 0:
        lines = split_cache.get(key)
        if lines is None:
            lines = split_cache[key] = _NEWLINE.split(text)
        if finding.line <= len(lines):
            out.append(_snippet(finding, lines, style))
    for place in finding.related:
        out.append(f"  {style.blue('=')} related: {position(place.path, place.cell, place.line, place.column)}: "
                   f"{_one_line(place.message)}\n")
    if finding.fix is not None:
        out.append(f"  {style.blue('=')} help: {_one_line(finding.fix.message)}\n")
        if text is not None:
            out.append(_fix_diff(finding, text, style))
    out.append("\n")
    return "".join(out)


def _fix_diff(finding: Finding, text: str, style: _Style) -> str:
    """The lines the finding's fix changes, as a small diff with old and new line numbers
    (nothing when its edits are in another notebook cell or no longer apply)."""
    from nnlint.fixes import apply_fixes_which

    fix = finding.fix
    if fix is None or not fix.edits or any(edit.cell != finding.cell for edit in fix.edits):
        return ""
    fixed, applied = apply_fixes_which(text, [fix])
    if not applied or fixed == text:
        return ""
    old, new = _NEWLINE.split(text), _NEWLINE.split(fixed)
    rows: list[tuple[str, int, str]] = []
    for tag, a, b, c, d in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag != "equal":
            rows += [("-", number + 1, old[number]) for number in range(a, b)]
            rows += [("+", number + 1, new[number]) for number in range(c, d)]
    gutter = max(len(str(number)) for _, number, _ in rows)
    out = [f"    {style.dim(fix.applicability.capitalize() + ' fix')}\n"]
    for sign, number, line in rows[:MAX_FIX_LINES]:
        paint = style.red if sign == "-" else style.green
        out.append(f"    {style.blue(str(number).rjust(gutter))} {paint(sign + ' ' + _display(line, 0, 0)[0])}\n")
    if len(rows) > MAX_FIX_LINES:
        out.append(f"    {' ' * gutter} {style.dim(f'... {len(rows) - MAX_FIX_LINES} more lines (see --diff)')}\n")
    return "".join(out)


def _snippet(finding: Finding, lines: list[str], style: _Style) -> str:
    first = finding.line
    last = min(max(finding.end_line, first), len(lines))
    numbers = list(range(first, last + 1))
    if len(numbers) > MAX_FRAME_LINES:
        numbers = [first, -1, last]
    gutter = len(str(last))
    bar = style.blue("|")
    blank = " " * gutter
    out = [f"{blank} {bar}\n"]
    for number in numbers:
        if number == -1:
            out.append(f"{style.blue('.' * gutter)} {bar} ...\n")
            continue
        raw = lines[number - 1]
        start = finding.column if number == first else _indent_width(raw) + 1
        end = finding.end_column if number == last and finding.end_line >= first else len(raw) + 1
        if number != last:
            end = len(raw) + 1
        shown, caret_start, caret_end = _display(raw, start, end)
        out.append(f"{style.blue(str(number).rjust(gutter))} {bar} {shown}\n")
        width = max(caret_end - caret_start, 1)
        label = f" {finding.code}" if number == numbers[-1] else ""
        underline = style.red("^" * width + label) if finding.severity == "error" else style.yellow("^" * width + label)
        out.append(f"{blank} {bar} {' ' * caret_start}{underline}\n")
    out.append(f"{blank} {bar}\n")
    return "".join(out)


def _indent_width(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _char_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _display(line: str, start: int, end: int) -> tuple[str, int, int]:
    """The line as shown (tabs expanded, control characters made visible) and caret columns.

    ``start``/``end`` are 1-based character columns (end exclusive); the results are
    0-based display columns, so carets line up under wide characters and tabs too.
    """
    shown: list[str] = []
    width = 0
    caret_start = caret_end = None
    for index, char in enumerate(line, start=1):
        if index == start:
            caret_start = width
        if index == end:
            caret_end = width
        if char == "\t":
            step = 4 - width % 4
            shown.append(" " * step)
            width += step
        elif _CONTROL.match(char):
            shown.append("?")
            width += 1
        else:
            shown.append(char)
            width += _char_width(char)
    if caret_start is None:
        caret_start = width
    if caret_end is None or caret_end < caret_start:
        caret_end = width if end > len(line) else caret_start
    return "".join(shown), caret_start, caret_end


def write_statistics(
    findings: Sequence[Finding], stream: TextIO, *, as_json: bool, unsafe_fixes: bool = False
) -> None:
    counts = Counter(f.code for f in findings)
    names = {f.code: f.name for f in findings}
    fixable = {
        f.code for f in findings if f.fix is not None and (unsafe_fixes or f.fix.applicability == "safe")
    }
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    if as_json:
        data = [
            {"code": code, "name": names[code], "count": count, "fixable": code in fixable}
            for code, count in rows
        ]
        stream.write(json.dumps(data, indent=2) + "\n")
        return
    width = max((len(str(count)) for _, count in rows), default=1)
    for code, count in rows:
        marker = "[*]" if code in fixable else "   "
        stream.write(f"{str(count).rjust(width)}\t{code}\t{marker} {names[code]}\n")

