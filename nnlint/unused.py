"""NN002: suppression comments that silence nothing, or name a code that does not exist.

Suppressions are applied as a file is checked, so which of them were used is found by checking
the file once more with its suppression comments blanked out (same length: every position
stays), running only the enabled rules the comments name. That second check happens only for
files with suppression comments, and its result is cached with the file's findings.

Not reported: codes of rules that are not enabled for the file (``--select``, per-file-ignores:
the comment may matter in another run), other tools' ``# noqa`` codes, a bare ``# noqa``, and
codes on a place this file records for other files to report at (a model's output activation:
whether another file reports there is not known here).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Optional

from nnlint.findings import Edit, Finding, Fix
from nnlint.suppression import Directive, parse_directives, parse_suppressions, silenced_by

CODE = "NN002"


def unused_suppressions(checker_for: Any, plan: Any, catalogue: Any, source: Any, text: str,
                        summary: Any, index: Any) -> list[Finding]:
    """NN002 findings for ``text`` (the file ``source`` as checked); ``checker_for(codes)`` gives a
    :class:`~nnlint.checker.FileChecker` that runs only ``codes``."""
    from nnlint.config import ignored_for_path

    info = catalogue.by_code.get(CODE)
    if info is None or CODE not in plan.codes:
        return []
    lowered = text.lower()
    if "nnlint:" not in lowered and "noqa" not in lowered:
        return []
    directives = parse_directives(text)
    if not directives:
        return []
    ignored = set(ignored_for_path(plan.settings, source.display, catalogue))
    if CODE in ignored:
        return []
    enabled = [code for code in plan.codes if code not in ignored and code != CODE]
    known = [rule.code for rule in catalogue.rules]
    selectors = {code for directive in directives for code, _, _ in directive.codes}
    wanted = tuple(sorted(code for code in enabled if any(code.startswith(s) for s in selectors)))
    suppressions = parse_suppressions(text)
    raw: list[Finding] = []
    if wanted:
        masked = _blanked(text, directives)
        checker = checker_for(wanted)
        first = checker.summarize(source, masked.encode("utf-8"))
        raw = [f for f in checker.check(source, index, first.findings).findings if f.path == source.display]
    # a place other files may report at (its suppression comments were read when it was recorded)
    raw.extend(Finding(code, "", "info", "", source.display, site.line, site.column, site.end_line, site.end_column)
               for site in _sites(summary) for code in enabled)
    used = silenced_by(suppressions, directives, raw)
    findings: list[Finding] = []
    lines = text.splitlines(keepends=True)
    for number, directive in enumerate(directives):
        problems: list[tuple[str, str]] = []
        for code, _, _ in directive.codes:
            if directive.kind == "noqa" and not code.startswith("NN"):
                continue  # another tool's code
            if CODE.startswith(code) or (number, code) in used:
                continue
            if not any(k.startswith(code) for k in known):
                problems.append((code, "unknown code"))
            elif any(e.startswith(code) for e in enabled):
                problems.append((code, "nothing to silence"))
        if not problems:
            continue
        message = "Unused suppression: " + ", ".join(f"{code} ({why})" for code, why in problems)
        finding = Finding(CODE, info.name, info.severity, message, source.display, directive.line,
                          directive.start + 1, directive.line, directive.end + 1,
                          fix=_removal(directive, {code for code, _ in problems}, lines))
        if not suppressions.silences(finding):
            findings.append(finding)
    return findings


def _blanked(text: str, directives: list[Directive]) -> str:
    """``text`` with each directive replaced by spaces (columns are characters: positions stay)."""
    lines = text.splitlines(keepends=True)
    for directive in directives:
        line = lines[directive.line - 1]
        lines[directive.line - 1] = line[:directive.start + 1] + " " * (directive.end - directive.start - 1) \
            + line[directive.end:]
    return "".join(lines)


def _sites(value: Any, depth: int = 0) -> Iterator[Any]:
    """Every :class:`~nnlint.facts.index.Site` in a module summary."""
    from nnlint.facts.index import Site

    if value is None or depth > 12 or isinstance(value, (str, bytes, int, float, bool)):
        return
    if isinstance(value, Site):
        yield value
    elif dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            yield from _sites(getattr(value, field.name), depth + 1)
    elif isinstance(value, (tuple, list, frozenset, set)):
        for item in value:
            yield from _sites(item, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _sites(item, depth + 1)


def _removal(directive: Directive, unused: set[str], lines: list[str]) -> Optional[Fix]:
    """Remove the unused codes; the whole directive (with its reason) when none is left."""
    kept = [code for code, _, _ in directive.codes if code not in unused]
    line = directive.line
    if kept:
        first, last = directive.codes[0][1], directive.codes[-1][2]
        return Fix(f"Remove {', '.join(sorted(unused))}",
                   (Edit(line, first + 1, line, last + 1, ", ".join(text for text, _, _ in directive.codes
                                                                     if text not in unused)),))
    body = lines[line - 1].rstrip("\r\n") if line - 1 < len(lines) else ""
    comment = body[directive.comment_start:directive.comment_end]
    after = comment.find("#", directive.end - directive.comment_start)
    end = directive.comment_start + after if after >= 0 else directive.comment_end
    start = directive.start
    if after < 0:  # nothing after it: the spaces before it go too
        start = len(body[:start].rstrip())
    if start == 0 and end >= len(body.rstrip()):  # the line held only this comment: remove the line
        if line < len(lines):
            return Fix("Remove the suppression comment", (Edit(line, 1, line + 1, 1, ""),))
        return Fix("Remove the suppression comment", (Edit(line, 1, line, len(body) + 1, ""),))
    return Fix("Remove the suppression comment", (Edit(line, start + 1, line, end + 1, ""),))
