"""A baseline: today's findings recorded, so that only new ones are reported.

``nnlint --write-baseline nnlint-baseline.json`` records every finding; ``nnlint --baseline
nnlint-baseline.json`` then reports only the findings that are not in it. An entry does not
name a line: it is keyed on the code, the file (relative to the baseline's folder), the
function or class the finding is in (``Net.forward``) and a fingerprint of the finding's
source text with spacing, comments and trailing commas left out. Lines inserted above, a
file reformatted or a finding moved within its function keep matching; the same key found
more often than recorded reports the extra ones.

The file is JSON (never executed) and is checked before use::

    {"nnlint_baseline": 1,
     "findings": [{"path": "src/train.py", "code": "NN201", "scope": "Net.forward",
                   "fingerprint": "3f1c0a9e5b7d2c4e", "count": 1, "message": "..."}]}

``message`` is for the reader and is not compared.
"""
from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import re
import tokenize
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence

from nnlint.config import ConfigError
from nnlint.findings import Finding, source_key

FORMAT_VERSION = 1
#: a baseline larger than this is not read (a big repository's has a few thousand entries)
MAX_BASELINE_BYTES = 50_000_000
_MAX_COUNT = 1_000_000
_FINGERPRINT = re.compile(r"[0-9a-f]{16}")
_LINE_BREAK = re.compile(r"\r\n?|\n")
#: how many lines of a finding's range go into its fingerprint (a finding on a whole class)
_MAX_LINES = 20
_CLOSERS = frozenset(")]}")
_SKIPPED_TOKENS = frozenset({tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                             tokenize.DEDENT, tokenize.ENDMARKER})


@dataclass(frozen=True)
class Key:
    path: str
    code: str
    scope: str
    fingerprint: str


@dataclass(frozen=True)
class Baseline:
    """Recorded findings: how many times each key was seen."""

    counts: Mapping[Key, int]
    #: the folder entries' paths are relative to
    folder: str

    def new_findings(self, findings: Sequence[Finding], sources: Mapping[str, str]) -> list[Finding]:
        """The findings not in the baseline (of a key seen more often than recorded, the later ones)."""
        keys = finding_keys(findings, sources, self.folder)
        left = Counter(self.counts)
        new: list[Finding] = []
        for finding, key in zip(findings, keys):
            if left[key] > 0:
                left[key] -= 1
            else:
                new.append(finding)
        return new


def finding_keys(findings: Sequence[Finding], sources: Mapping[str, str], folder: str) -> list[Key]:
    """Each finding's :class:`Key`; ``sources`` holds the text of the files (and notebook cells) they are in."""
    scopes: dict[str, list[tuple[int, int, str]]] = {}
    keys: list[Key] = []
    for finding in findings:
        where = source_key(finding.path, finding.cell)
        text = sources.get(where)
        if where not in scopes:
            scopes[where] = _scopes(text, finding.cell is not None) if text is not None else []
        scope = _innermost(scopes[where], finding.line)
        keys.append(Key(_relative(finding.path, folder), finding.code, scope, _fingerprint(finding, text)))
    return keys


def write_baseline(path: str, findings: Sequence[Finding], sources: Mapping[str, str]) -> int:
    """Record ``findings`` in ``path`` (replaced in one step); returns how many entries it has."""
    from nnlint.files import replace_file

    folder = _folder(path)
    counts: Counter[Key] = Counter()
    messages: dict[Key, str] = {}
    for finding, key in zip(findings, finding_keys(findings, sources, folder)):
        counts[key] += 1
        messages.setdefault(key, finding.message)
    entries = [
        {"path": key.path, "code": key.code, "scope": key.scope, "fingerprint": key.fingerprint,
         "count": count, "message": messages[key]}
        for key, count in sorted(counts.items(), key=lambda item: (item[0].path, item[0].code, item[0].scope,
                                                                    item[0].fingerprint))
    ]
    data = json.dumps({"nnlint_baseline": FORMAT_VERSION, "findings": entries}, indent=1, ensure_ascii=False)
    try:
        os.makedirs(folder, exist_ok=True)
        replace_file(path, (data + "\n").encode("utf-8"), mode=0o644)
    except OSError as error:
        raise ConfigError(f"--write-baseline: {path}: cannot write: {error.strerror or error}") from None
    return len(entries)


def load_baseline(path: str) -> Baseline:
    """Read and check a baseline file; anything malformed is a :class:`ConfigError` naming it."""
    def bad(why: str) -> ConfigError:
        return ConfigError(f"--baseline: {path}: {why}")

    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BASELINE_BYTES + 1)
    except OSError as error:
        raise bad(f"cannot read: {error.strerror or error}") from None
    if len(data) > MAX_BASELINE_BYTES:
        raise bad(f"over the {MAX_BASELINE_BYTES // 1_000_000} MB limit for a baseline")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise bad(f"not a JSON baseline: {str(error).splitlines()[0][:200]}") from None
    if not isinstance(document, dict) or "nnlint_baseline" not in document:
        raise bad("not an nnlint baseline (no 'nnlint_baseline' version)")
    if document["nnlint_baseline"] != FORMAT_VERSION or isinstance(document["nnlint_baseline"], bool):
        raise bad(f"unsupported baseline version {str(document['nnlint_baseline'])[:20]!r} (this nnlint reads {FORMAT_VERSION})")
    entries = document.get("findings")
    if not isinstance(entries, list):
        raise bad("'findings' must be a list")
    counts: Counter[Key] = Counter()
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise bad(f"entry {number} is not an object")
        values: dict[str, str] = {}
        for name in ("path", "code", "scope", "fingerprint"):
            value = entry.get(name)
            if not isinstance(value, str) or len(value) > 4096 or "\0" in value:
                raise bad(f"entry {number}: '{name}' must be a string")
            values[name] = value
        if not _FINGERPRINT.fullmatch(values["fingerprint"]):
            raise bad(f"entry {number}: 'fingerprint' must be 16 hexadecimal digits")
        count = entry.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= _MAX_COUNT:
            raise bad(f"entry {number}: 'count' must be a whole number from 1 to {_MAX_COUNT}")
        message = entry.get("message", "")
        if not isinstance(message, str):
            raise bad(f"entry {number}: 'message' must be a string")
        counts[Key(values["path"], values["code"], values["scope"], values["fingerprint"])] += count
    return Baseline(dict(counts), _folder(path))


# -- keys -------------------------------------------------------------------------

def _folder(path: str) -> str:
    return os.path.dirname(os.path.realpath(path))


def _relative(path: str, folder: str) -> str:
    """A finding's path from the baseline's folder, with ``/`` (the same baseline on every OS)."""
    if not path or path.startswith("<"):
        return path
    return os.path.relpath(os.path.realpath(path), folder).replace(os.sep, "/")


def _scopes(text: str, in_notebook: bool) -> list[tuple[int, int, str]]:
    """(first line, last line, qualname) of each function and class in ``text``."""
    if in_notebook:
        from nnlint.notebook import mask_ipython

        text = mask_ipython(text)[0]
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    found: list[tuple[int, int, str]] = []
    stack: list[tuple[ast.AST, str]] = [(tree, "")]
    while stack:
        node, prefix = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}.{child.name}" if prefix else child.name
                first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                found.append((first, child.end_lineno or child.lineno, name))
                stack.append((child, name))
            else:
                stack.append((child, prefix))
    return found


def _innermost(scopes: Iterable[tuple[int, int, str]], line: int) -> str:
    best: Optional[tuple[int, int, str]] = None
    for scope in scopes:
        if scope[0] <= line <= scope[1] and (best is None or scope[0] >= best[0]):
            best = scope
    return best[2] if best is not None else ""


def _fingerprint(finding: Finding, text: Optional[str]) -> str:
    """A hash of the finding's source text (its range, else its line) without layout."""
    snippet = ""
    if text is not None and finding.line >= 1:
        lines = _LINE_BREAK.split(text)
        if finding.line <= len(lines):
            last = min(max(finding.end_line, finding.line), len(lines), finding.line + _MAX_LINES - 1)
            part = lines[finding.line - 1:last]
            if last == finding.end_line and finding.end_column > 1:
                part[-1] = part[-1][:finding.end_column - 1]
            part[0] = part[0][max(finding.column - 1, 0):]
            snippet = "\n".join(part)
            if not snippet.strip():
                snippet = lines[finding.line - 1]
    normal = _normalise(snippet)
    return hashlib.sha256(f"{finding.code}\0{normal}".encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _normalise(snippet: str) -> str:
    """The tokens of ``snippet`` without comments, line breaks and trailing commas; strings by value."""
    tokens: list[str] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(snippet).readline):
            if token.type in _SKIPPED_TOKENS:
                continue
            if token.type == tokenize.STRING:
                tokens.append(_string_value(token.string))
                continue
            if token.string in _CLOSERS and tokens and tokens[-1] == ",":
                tokens.pop()
            tokens.append(token.string)
    except (tokenize.TokenError, SyntaxError, IndentationError, ValueError):
        # a range that ends inside a bracket or string: what was read, plus the rest without spaces
        return " ".join(tokens) if tokens else re.sub(r"\s+|#[^\n]*", "", snippet)
    return " ".join(tokens)


def _string_value(literal: str) -> str:
    """``'a'`` and ``"a"`` alike (a formatter changes quotes); f-strings and others as written."""
    try:
        value = ast.literal_eval(literal)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return literal
    return repr(value) if isinstance(value, (str, bytes)) else literal

