"""``.gitignore`` rules, as git reads them, for walking a project (``respect-gitignore``).

A folder's ``.gitignore`` applies below that folder; rules of deeper files come later and
win, the last matching rule decides, ``!pattern`` re-includes, and nothing below an ignored
folder can be re-included (git does not look inside it). The repository's
``.git/info/exclude`` applies from its top. The files are read as text (at most
:data:`MAX_GITIGNORE_BYTES`); a line that is not a valid pattern is ignored, like git does.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional

#: a larger ``.gitignore`` is not a real one: it is skipped
MAX_GITIGNORE_BYTES = 1_000_000


@dataclass(frozen=True)
class Rule:
    """One pattern of a ``.gitignore`` file, matched against paths relative to ``base``."""

    base: str
    regex: "re.Pattern[str]"
    negated: bool
    directories_only: bool


@dataclass(frozen=True)
class Rules:
    """The rules that apply in one folder, outermost first (immutable: each folder extends its parent's)."""

    rules: tuple[Rule, ...] = ()

    def extended(self, folder: str) -> "Rules":
        """These rules plus those of ``folder``'s own ``.gitignore``."""
        added = read_rules(os.path.join(folder, ".gitignore"), folder)
        return Rules(self.rules + added) if added else self

    def ignores(self, path: str, is_directory: bool) -> bool:
        """Is ``path`` (absolute) ignored? The last rule that matches decides."""
        for rule in reversed(self.rules):
            if rule.directories_only and not is_directory:
                continue
            relative = os.path.relpath(path, rule.base).replace(os.sep, "/")
            if relative.startswith("../") or relative == "..":
                continue
            if rule.regex.match(relative):
                return not rule.negated
        return False


def rules_above(folder: str) -> Rules:
    """The rules that apply in ``folder`` from the git work tree around it: ``.git/info/exclude``
    and every ``.gitignore`` from the top of the work tree down to ``folder`` itself, less those
    that ignore ``folder`` or a folder above it (a folder given explicitly is linted)."""
    folder = os.path.abspath(folder)
    chain: list[str] = []
    current = folder
    top: Optional[str] = None
    while True:
        chain.append(current)
        if os.path.exists(os.path.join(current, ".git")):
            top = current
            break
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    if top is None:
        return Rules().extended(folder)
    rules = Rules(read_rules(os.path.join(top, ".git", "info", "exclude"), top))
    for directory in reversed(chain):
        rules = rules.extended(directory)
    # a folder given explicitly is linted, like a file: rules that ignore it (or a folder
    # above it) do not apply below it, the others do (``*_pb2.py``, ``build/``)
    return Rules(tuple(rule for rule in rules.rules
                       if rule.negated or not any(Rules((rule,)).ignores(directory, True) for directory in chain)))


def read_rules(path: str, base: str) -> tuple[Rule, ...]:
    """The rules of one ignore file (none when it is missing, unreadable or too large)."""
    try:
        if not os.path.isfile(path) or os.path.getsize(path) > MAX_GITIGNORE_BYTES:
            return ()
        with open(path, "rb") as handle:
            text = handle.read(MAX_GITIGNORE_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return ()
    rules: list[Rule] = []
    for line in text.splitlines():
        rule = parse(line, base)
        if rule is not None:
            rules.append(rule)
    return tuple(rules)


def parse(line: str, base: str) -> Optional[Rule]:
    """One ``.gitignore`` line as a rule (``None``: blank, a comment, or not a pattern)."""
    line = _strip_trailing_spaces(line)
    if not line or line.startswith("#"):
        return None
    negated = line.startswith("!")
    if negated:
        line = line[1:]
    elif line.startswith(("\\!", "\\#")):
        line = line[1:]
    directories_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    line = line.lstrip("/")
    try:
        body = _translate(line)
        regex = re.compile(("" if anchored else "(?:.*/)?") + body + "(?:/.*)?$", re.DOTALL)
    except (re.error, ValueError):
        return None
    return Rule(base, regex, negated, directories_only)


def _strip_trailing_spaces(line: str) -> str:
    stripped = line.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(line):
        return stripped + " "  # ``foo\ ``: an escaped trailing space is kept
    return stripped


def _translate(pattern: str) -> str:
    """A gitignore glob as a regular expression over ``/``-separated relative paths."""
    parts: list[str] = []
    segments = pattern.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            # ``**/x``: any leading folders; ``x/**``: everything inside; ``a/**/b``: zero or more folders
            parts.append(".*" if last else "(?:[^/]*/)*")
            continue
        parts.append(_translate_segment(segment) + ("" if last else "/"))
    return "".join(parts)


def _translate_segment(segment: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(segment):
        char = segment[index]
        if char == "\\" and index + 1 < len(segment):
            out.append(re.escape(segment[index + 1]))
            index += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = segment.find("]", index + 2)
            if end == -1:
                raise ValueError("unclosed character class")
            inside = segment[index + 1:end]
            if inside.startswith("!"):
                inside = "^" + inside[1:]
            out.append("[" + inside.replace("\\", "\\\\") + "]")
            index = end + 1
            continue
        else:
            out.append(re.escape(char))
        index += 1
    return "".join(out)

