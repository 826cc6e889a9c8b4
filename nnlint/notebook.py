"""Jupyter notebooks: their code cells as one Python text, positions back in cells, and fixes written back.

The code cells are joined in order (a model built in one cell and the loss in a later one
are found together). IPython syntax that is not Python (``%magic``, ``%%cell magic``,
``!shell``, ``obj?``) is replaced line for line by ``pass`` or a blank line, so every
other line and column stays where it is in its cell. The notebook is read with ``json``
only; writing back replaces the ``source`` of the changed cells in the original text and
leaves every other byte (outputs, metadata, indentation, key order) as it was.
"""
from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

NOTEBOOK_SUFFIX = ".ipynb"
#: outputs (plots, tables) make notebooks much larger than their code; the code is limited separately
MAX_NOTEBOOK_BYTES = 20_000_000
#: cell magics whose body is Python run by IPython; the body of any other (``%%bash``) is not Python
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug", "pypy"})

_LINE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+")
_BREAK = re.compile(r"\r\n?|\n")
#: ``obj?``, ``obj.attr??``, ``?obj``: IPython's help
_HELP = re.compile(r"^(?:\?{1,2}.*|[A-Za-z_][\w.]*(?:\(\))?\?{1,2})\s*$")
#: ``files = !ls``, ``t = %time f()``: a shell or magic result assigned
_ASSIGNED = re.compile(r"^[A-Za-z_][\w.,\s\[\]]*?\s*=\s*[!%]")
#: a PEP 263 declaration in the first two lines would make the joined (UTF-8) text decode otherwise
_CODING = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")


class NotebookError(ValueError):
    """The file is not a notebook that can be linted; ``line``/``column`` point into the file."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@dataclass(frozen=True)
class Cell:
    """A code cell: ``number`` is its 1-based position among all cells, as a reader counts them."""

    number: int
    #: first line of the cell in the joined text (1-based) and how many lines it has there
    start: int
    lines: int
    #: the cell's code as written, magics included
    source: str
    #: lines of the cell (1-based) that are not Python and were replaced in the joined text
    masked: Tuple[int, ...] = ()


@dataclass(frozen=True)
class Notebook:
    text: str
    cells: Tuple[Cell, ...]
    #: the code cells joined, each ending with a line break, IPython syntax replaced
    python: str

    def cell(self, number: int) -> Optional[Cell]:
        return next((cell for cell in self.cells if cell.number == number), None)

    def locate(self, line: int, column: int) -> Optional[tuple[Cell, int, int]]:
        """(cell, line in the cell, column) of a 1-based position in :attr:`python`."""
        cells = [cell for cell in self.cells if cell.lines]
        if not cells or line < 1:
            return None
        at = bisect.bisect_right([cell.start for cell in cells], line) - 1
        cell = cells[max(at, 0)]
        inside = line - cell.start + 1
        if inside > cell.lines:  # past the end (an error at the end of the text): the last line
            return cell, cell.lines, column
        return cell, inside, column


def is_notebook(path: str) -> bool:
    return path.lower().endswith(NOTEBOOK_SUFFIX)


def load_notebook(data: bytes) -> Notebook:
    """The notebook in ``data``; :class:`NotebookError` if it is not a valid nbformat 4 notebook."""
    try:
        text = data.decode("utf-8")  # a byte order mark is kept: it is written back as it was
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = len(data[data.rfind(b"\n", 0, error.start) + 1:error.start].decode("utf-8", "replace")) + 1
        raise NotebookError(f"not a valid notebook: invalid UTF-8 byte 0x{data[error.start]:02x}", line,
                            column) from None
    try:
        document = json.loads(text[1:] if text.startswith("\ufeff") else text)
    except json.JSONDecodeError as error:
        raise NotebookError(f"not a valid notebook: invalid JSON: {error.msg}", error.lineno, error.colno) from None
    except (RecursionError, MemoryError, ValueError):
        raise NotebookError("not a valid notebook: JSON nested too deeply to read") from None
    return _from_document(text, document)


def _from_document(text: str, document: Any) -> Notebook:
    if not isinstance(document, dict):
        raise NotebookError("not a valid notebook: the top level is not a JSON object")
    version = document.get("nbformat")
    if "worksheets" in document or (isinstance(version, int) and not isinstance(version, bool) and version < 4):
        raise NotebookError("not a supported notebook: nbformat 4 is needed (convert it with "
                            "'jupyter nbconvert --to notebook')")
    cells = document.get("cells")
    if not isinstance(cells, list):
        raise NotebookError("not a valid notebook: no 'cells' list")
    if not _is_python(document.get("metadata")):
        return Notebook(text, (), "")
    joined: list[str] = []
    found: list[Cell] = []
    line = 1
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict):
            raise NotebookError(f"not a valid notebook: cell {number} is not a JSON object")
        if cell.get("cell_type") != "code":
            continue
        source = _source_text(cell.get("source"), number)
        code, masked = mask_ipython(source)
        if source and not source.endswith(("\n", "\r")):
            code += "\n"
        count = len(_BREAK.findall(code))
        found.append(Cell(number, line, count, source, masked))
        joined.append(code)
        line += count
    python = "".join(joined)
    return Notebook(text, tuple(found), _without_coding_declaration(python))


def _is_python(metadata: Any) -> bool:
    """A notebook of another kernel (R, Julia) has no Python to check; no metadata means Python."""
    if not isinstance(metadata, dict):
        return True
    for key, field in (("language_info", "name"), ("kernelspec", "language")):
        value = metadata.get(key)
        if isinstance(value, dict) and isinstance(value.get(field), str):
            return value[field].lower() in ("python", "python3", "ipython", "ipython3")
    return True


def _source_text(source: Any, number: int) -> str:
    if isinstance(source, str):
        return source
    if isinstance(source, list) and all(isinstance(part, str) for part in source):
        return "".join(source)
    if source is None:
        return ""
    raise NotebookError(f"not a valid notebook: the source of cell {number} is not text")


def _without_coding_declaration(python: str) -> str:
    """Blank a coding declaration in the first two lines (the joined text is always UTF-8)."""
    lines = _LINE.findall(python[:4096])
    for index, line in enumerate(lines[:2]):
        match = _CODING.match(line)
        if match and match.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
            start = sum(len(text) for text in lines[:index])
            body = line.rstrip("\r\n")
            return python[:start] + "#" + " " * (len(body) - 1) + python[start + len(body):]
    return python


# -- IPython syntax ---------------------------------------------------------------------

def mask_ipython(source: str) -> tuple[str, Tuple[int, ...]]:
    """``source`` with IPython-only lines replaced (same number of lines), and their numbers.

    A line magic, shell escape or help request becomes ``pass`` at its indentation (it may be
    the only statement of a block); the body of a non-Python cell magic becomes blank lines.
    Only lines that start a statement are looked at: a ``%`` or ``!`` continuing an
    expression, or inside a string, is Python.
    """
    lines = _LINE.findall(source)
    masked: list[int] = []
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].lstrip().startswith("%%"):
        name = lines[first].lstrip()[2:].split(None, 1)
        end = len(lines) if not name or name[0] not in PYTHON_CELL_MAGICS else first + 1
        for index in range(first, end):
            lines[index] = _blank(lines[index])
            masked.append(index + 1)
    depth, quote, continued = 0, "", False
    for index, line in enumerate(lines):
        if index + 1 in masked:
            continue
        if depth == 0 and not quote and not continued and _is_ipython(line):
            body = line.rstrip("\r\n")
            indent = body[: len(body) - len(body.lstrip())]
            lines[index] = indent + "pass" + line[len(body):]
            masked.append(index + 1)
            continue
        depth, quote, continued = _scan(line, depth, quote)
    return "".join(lines), tuple(sorted(masked))


def _blank(line: str) -> str:
    return line[len(line.rstrip("\r\n")):]


def _is_ipython(line: str) -> bool:
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return False
    return stripped[0] in "%!?" or _HELP.match(stripped) is not None or _ASSIGNED.match(stripped) is not None


def _scan(line: str, depth: int, quote: str) -> tuple[int, str, bool]:
    """Bracket depth, open string delimiter and backslash continuation after ``line``."""
    index, end = 0, len(line)
    comment = False
    while index < end:
        char = line[index]
        if quote:
            if char == "\\":
                index += 2
                continue
            if line.startswith(quote, index):
                index += len(quote)
                quote = ""
                continue
            index += 1
            continue
        if char == "#":
            comment = True
            break
        if char in "\"'":
            quote = char * 3 if line.startswith(char * 3, index) else char
            index += len(quote)
            continue
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(depth - 1, 0)
        index += 1
    body = line.rstrip("\r\n")
    continued = not comment and body.endswith("\\") and body != line
    if len(quote) == 1 and not continued:
        quote = ""  # a one-quote string ends with its line (or it is a syntax error)
    return depth, quote, continued


# -- writing back ------------------------------------------------------------------------

def with_sources(notebook: Notebook, sources: Mapping[int, str]) -> bytes:
    """The notebook's bytes with the code of the cells numbered in ``sources`` replaced.

    Only the ``source`` values of those cells change; they are written in the style of the
    value they replace (a list of lines or one string, its indentation, ASCII escapes).
    """
    text = notebook.text
    spans = _source_spans(text)
    ascii_only = text.isascii() and "\\u" in text
    pieces: list[tuple[int, int, str]] = []
    for number, source in sources.items():
        if not 1 <= number <= len(spans) or spans[number - 1] is None:
            raise NotebookError(f"cell {number} has no source to replace")
        start, end = spans[number - 1]  # type: ignore[misc]
        pieces.append((start, end, _format_source(text, start, end, source, ascii_only)))
    for start, end, value in sorted(pieces, reverse=True):
        text = text[:start] + value + text[end:]
    bom = b"\xef\xbb\xbf" if text.startswith("\ufeff") else b""
    return bom + text.lstrip("\ufeff").encode("utf-8")


def _format_source(text: str, start: int, end: int, source: str, ascii_only: bool) -> str:
    old = text[start:end]
    if not old.startswith("["):
        return json.dumps(source, ensure_ascii=ascii_only)
    parts = re.findall(r"[^\n]*\n|[^\n]+", source)
    if not parts:
        return "[]"
    inner = old[1:-1]
    if inner.strip():
        opening = inner[: len(inner) - len(inner.lstrip())]
        closing = inner[len(inner.rstrip()):]
    else:  # "[]" before: indent as the notebook does elsewhere
        line_start = text.rfind("\n", 0, start) + 1
        key_indent = text[line_start:start][: len(text[line_start:start]) - len(text[line_start:start].lstrip())]
        unit = _indent_unit(text)
        opening, closing = ("\n" + key_indent + unit, "\n" + key_indent) if unit is not None else ("", "")
    separator = "," + opening if opening else ", " if ", " in inner else ","
    items = separator.join(json.dumps(part, ensure_ascii=ascii_only) for part in parts)
    return "[" + opening + items + closing + "]"


def _indent_unit(text: str) -> Optional[str]:
    match = re.match(r"\ufeff?\s*\{\r?\n([ \t]*)", text)
    return match.group(1) if match else None


_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _source_spans(text: str) -> list[Optional[tuple[int, int]]]:
    """For each cell in order, where its ``source`` value is in ``text`` (the last one if repeated).

    ``text`` is known to be valid JSON (it was loaded): only the structure is walked here,
    each other value is skipped with the decoder.
    """
    decoder = json.JSONDecoder()
    spans: list[Optional[tuple[int, int]]] = []

    def skip(index: int) -> int:
        return _WHITESPACE.match(text, index).end()  # type: ignore[union-attr]

    def expect(index: int, char: str) -> int:
        if text[index:index + 1] != char:
            raise NotebookError(f"not a valid notebook: {char!r} expected at offset {index}")
        return skip(index + 1)

    def value_end(index: int) -> int:
        return int(decoder.raw_decode(text, index)[1])

    def members(index: int, on_value: Callable[[str, int], int]) -> int:
        """Walk the object at ``index``; ``on_value(key, start)`` returns where each value ends."""
        index = expect(skip(index), "{")
        if text[index:index + 1] == "}":
            return index + 1
        while True:
            key, index = decoder.raw_decode(text, index)
            index = skip(on_value(key, expect(skip(index), ":")))
            if text[index:index + 1] == "}":
                return index + 1
            index = expect(index, ",")

    def cells(key: str, index: int) -> int:
        if key != "cells":
            return value_end(index)
        spans.clear()
        index = expect(index, "[")
        while text[index:index + 1] != "]":
            found: list[tuple[int, int]] = []

            def source(cell_key: str, at: int) -> int:
                end = value_end(at)
                if cell_key == "source":
                    found.append((at, end))
                return end

            index = skip(members(index, source))
            spans.append(found[-1] if found else None)
            if text[index:index + 1] == ",":
                index = skip(index + 1)
        return index + 1

    members(1 if text.startswith("\ufeff") else 0, cells)
    return spans


# -- fixes -------------------------------------------------------------------------------

def fix_cells(notebook: Notebook, findings: Sequence[Any]) -> Optional[tuple[dict[int, str], list[Any]]]:
    """The new code of each cell the findings' fixes change and the findings fixed, or ``None``.

    Fixes come in positions of :attr:`Notebook.python`. A fix applies when each of its edits
    stays in one cell and leaves the cell's IPython lines alone; it is then applied to the
    cell as written, so magics are kept.
    """
    from nnlint.findings import Edit, Fix
    from nnlint.fixes import apply_fixes_which

    by_cell: dict[int, list[tuple[Any, Fix]]] = {}
    for finding in findings:
        fix = finding.fix
        edits: list[Edit] = []
        cells: set[int] = set()
        for edit in fix.edits:
            placed = _edit_in_cell(notebook, edit)
            if placed is None:
                break
            cell, moved = placed
            cells.add(cell.number)
            edits.append(moved)
        else:
            if len(cells) == 1:
                by_cell.setdefault(cells.pop(), []).append((finding, Fix(fix.message, tuple(edits), fix.applicability)))
    changed: dict[int, str] = {}
    fixed: list[Any] = []
    for number, pairs in by_cell.items():
        cell = notebook.cell(number)
        assert cell is not None
        code = cell.source
        padded = code if not code or code.endswith(("\n", "\r")) else code + "\n"
        new, applied = apply_fixes_which(padded, [fix for _, fix in pairs])
        if not applied or new == padded:
            continue
        if padded != code and new.endswith("\n"):
            new = new[:-1]  # the line break the joined text added
        changed[number] = new
        fixed.extend(pairs[i][0] for i in applied)
    return (changed, fixed) if changed else None


def _edit_in_cell(notebook: Notebook, edit: Any) -> Optional[tuple[Cell, Any]]:
    import dataclasses

    start = notebook.locate(edit.line, edit.column)
    if start is None:
        return None
    cell, line, column = start
    if edit.line > cell.start + cell.lines - 1:
        return None
    end_line = edit.end_line - cell.start + 1
    if end_line > cell.lines + 1 or (end_line == cell.lines + 1 and edit.end_column != 1) or end_line < line:
        return None  # it reaches into the next cell
    for masked in cell.masked:
        if (line, column) < (masked, 1 << 30) and (end_line, edit.end_column) > (masked, 1):
            return None  # it would change an IPython line
    return cell, dataclasses.replace(edit, line=line, column=column, end_line=end_line)
