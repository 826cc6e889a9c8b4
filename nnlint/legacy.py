"""Reading Python 2 training scripts.

Much published deep-learning code (TF1 tutorials, early PyTorch repositories) is Python 2, and
its bugs are the ones nnlint looks for. CPython 3 rejects such a file for a handful of
statements that say nothing about the network: ``print x``, ``exec code``, ``except E, e:``,
``raise E, "message"``. :func:`as_python3` rewrites exactly those, keeping every line where it
was, so that the findings in the rest of the file point at the right lines. A file read this
way gets no fixes (a fix computed on the rewritten text must not be written to the original).
"""
from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass, field
from typing import Mapping, Optional

# statements whose Python 2 form takes its argument without parentheses
_STATEMENT_KEYWORDS = frozenset({"print", "exec"})
_OPENERS, _CLOSERS = "([{", ")]}"


@dataclass(frozen=True)
class Python3Reading:
    """A Python 2 file as Python 3 text, line for line."""

    text: str
    #: line -> how many columns its indentation grew when tabs were expanded (Python 2 counted a
    #: tab as up to 8 columns, Python 3 rejects a mix of tabs and spaces); other lines keep columns
    indent_growth: Mapping[int, int] = field(default_factory=dict)

    def original_column(self, line: int, column: int) -> int:
        """A 1-based column of the rewritten text as a column of the original line."""
        return max(column - self.indent_growth.get(line, 0), 1)


def as_python3(text: str) -> Optional[Python3Reading]:
    """``text`` with its Python 2 print/exec/except/raise statements in Python 3 form, line for
    line, if that makes it valid Python 3; ``None`` when there is nothing to rewrite or the file
    has other errors (a real syntax error stays a syntax error)."""
    growth: dict[int, int] = {}
    if _has_mixed_indentation(text):
        text, growth = _expand_indentation(text)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    edits = _edits(tokens)
    if not edits:  # no Python 2 statement: a Python 3 file with a real error (tabs mixed with spaces)
        return None
    rewritten = _apply(text, edits)
    try:
        ast.parse(rewritten)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return Python3Reading(rewritten, growth)


def _has_mixed_indentation(text: str) -> bool:
    indents = {line[: len(line) - len(line.lstrip(" \t"))] for line in text.splitlines()}
    return any("\t" in indent for indent in indents) and any(" " in indent for indent in indents)


def _expand_indentation(text: str) -> tuple[str, dict[int, int]]:
    """Leading tabs expanded as Python 2 read them (to the next multiple of 8)."""
    lines = text.splitlines(keepends=True)
    growth: dict[int, int] = {}
    for number, line in enumerate(lines, start=1):
        body = line.lstrip(" \t")
        indent = line[: len(line) - len(body)]
        if "\t" in indent and body.strip():
            expanded = indent.expandtabs(8)
            lines[number - 1] = expanded + body
            growth[number] = len(expanded) - len(indent)
    return "".join(lines), growth


#: (line, column, number of characters replaced, replacement); lines are 1-based as in tokenize
_Edit = tuple[int, int, int, str]


def _edits(tokens: list[tokenize.TokenInfo]) -> list[_Edit]:
    edits: list[_Edit] = []
    for statement in _logical_lines(tokens):
        edits.extend(_statement_edits(statement))
    return edits


def _logical_lines(tokens: list[tokenize.TokenInfo]) -> list[list[tokenize.TokenInfo]]:
    """The significant tokens of each simple statement (split at NEWLINE, ``;`` and a block's ``:``
    followed by a statement on the same line, as in ``if x: print y``)."""
    skip = {tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING}
    statements: list[list[tokenize.TokenInfo]] = []
    current: list[tokenize.TokenInfo] = []
    depth = 0
    for token in tokens:
        if token.type in skip:
            continue
        if token.type in (tokenize.NEWLINE, tokenize.ENDMARKER) or (depth == 0 and token.string == ";"):
            if current:
                statements.append(current)
            current = []
            continue
        if token.type == tokenize.OP and token.string in _OPENERS:
            depth += 1
        elif token.type == tokenize.OP and token.string in _CLOSERS:
            depth = max(depth - 1, 0)
        current.append(token)
        if depth == 0 and token.string == ":" and current[0].string in _COMPOUND:
            statements.append(current)  # the header; what follows on the line is a statement
            current = []
    if current:
        statements.append(current)
    return statements


_COMPOUND = frozenset({"if", "elif", "else", "for", "while", "with", "try", "except", "finally", "def", "class"})


def _statement_edits(statement: list[tokenize.TokenInfo]) -> list[_Edit]:
    first = statement[0]
    if first.type == tokenize.NAME and first.string in _STATEMENT_KEYWORDS:
        return _call_form(statement)
    if first.string == "except" and statement[-1].string == ":":
        return _except_as(statement)
    if first.string == "raise":
        return _raise_call(statement)
    return []


def _call_form(statement: list[tokenize.TokenInfo]) -> list[_Edit]:
    """``print x, y`` -> ``print(x, y)``; ``print >>f, x`` -> ``print(  f, x)``."""
    keyword, rest = statement[0], statement[1:]
    if rest and (rest[0].string in ("(", "=", ".", "[") or _is_operator_use(rest[0])):
        return []  # already a call, or ``print`` used as a name
    line, column = keyword.end
    if not rest:
        return [(line, column, 0, "()")]
    edits: list[_Edit] = []
    if rest[0].start == (line, column + 1):
        edits.append((line, column, 1, "("))  # the space after the keyword becomes the parenthesis
    else:
        edits.append((line, column, 0, "("))
    if rest[0].string == ">>":
        edits.append((*rest[0].start, 2, "  "))  # the stream is printed too: harmless for analysis
    last = statement[-1]
    edits.append((*last.end, 0, ")"))
    return edits


def _is_operator_use(token: tokenize.TokenInfo) -> bool:
    return token.type == tokenize.OP and token.string not in ("(", "[", "{", "-", "+", "~", ">>", "`")


def _except_as(statement: list[tokenize.TokenInfo]) -> list[_Edit]:
    """``except (A, B), e:`` -> ``except (A, B) as e:`` (a comma at bracket depth zero)."""
    depth = 0
    for index, token in enumerate(statement[1:-1], start=1):
        if token.string in _OPENERS:
            depth += 1
        elif token.string in _CLOSERS:
            depth -= 1
        elif token.string == "," and depth == 0 and index + 2 == len(statement) - 1:
            return [(*token.start, 1, " as")]
    return []


def _raise_call(statement: list[tokenize.TokenInfo]) -> list[_Edit]:
    """``raise E, "message"`` -> ``raise E("message")``."""
    depth = 0
    for token in statement[1:]:
        if token.string in _OPENERS:
            depth += 1
        elif token.string in _CLOSERS:
            depth -= 1
        elif token.string == "," and depth == 0:
            return [(*token.start, 1, "("), (*statement[-1].end, 0, ")")]
    return []


def _apply(text: str, edits: list[_Edit]) -> str:
    lines = text.splitlines(keepends=True)
    # right to left within a line, so that earlier columns stay valid
    for line, column, length, replacement in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        if 1 <= line <= len(lines):
            source = lines[line - 1]
            lines[line - 1] = source[:column] + replacement + source[column + length:]
    return "".join(lines)
