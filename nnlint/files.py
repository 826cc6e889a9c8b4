"""Finding the files to lint, reading them, and deciding which can contain DL code.

Nothing here imports or executes the code being linted.
"""
from __future__ import annotations

import codecs
import os
import re
import tokenize
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Iterator, Optional, Sequence

from nnlint.config import ConfigError, Settings, is_excluded

#: A file that mentions none of these cannot contain code any rule looks at.
DL_MARKERS = (b"torch", b"tensorflow", b"keras", b"jax")
_DL_RE = re.compile(b"|".join(DL_MARKERS))


@dataclass(frozen=True)
class SourceFile:
    """A file to lint: ``display`` is the path as the user gave it (relative stays relative)."""

    display: str
    absolute: str


@dataclass(frozen=True)
class DecodedSource:
    text: str
    encoding: str
    bom: bool


class DecodeFailure(Exception):
    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


def may_contain_dl_code(data: bytes) -> bool:
    return _DL_RE.search(data) is not None


def decode_source(data: bytes) -> DecodedSource:
    """Decode like Python does: BOM, then a PEP 263 coding cookie, then UTF-8."""
    try:
        encoding, _ = tokenize.detect_encoding(BytesIO(data).readline)
    except SyntaxError as error:
        raise DecodeFailure(f"cannot determine the file's encoding: {error.msg}", 1, 1) from None
    bom = data.startswith(codecs.BOM_UTF8)
    if bom:
        data = data[len(codecs.BOM_UTF8):]
        encoding = "utf-8"
    codec = "utf-8" if encoding == "utf-8-sig" else encoding
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        line_start = data.rfind(b"\n", 0, error.start) + 1
        column = len(data[line_start:error.start].decode(codec, errors="replace")) + 1
        raise DecodeFailure(
            f"invalid {codec.upper()} byte 0x{data[error.start]:02x} (file is not valid {codec})",
            line,
            column,
        ) from None
    except LookupError:
        raise DecodeFailure(f"unknown encoding {encoding!r} in the coding declaration", 1, 1) from None
    return DecodedSource(text=text, encoding=codec, bom=bom)


def encode_source(text: str, original: DecodedSource) -> bytes:
    data = text.encode(original.encoding)
    return codecs.BOM_UTF8 + data if original.bom else data


def discover(paths: Sequence[str], settings: Settings) -> list[SourceFile]:
    """Every ``.py``/``.pyi`` file below ``paths``, each once, in a deterministic order.

    A path given explicitly is linted even if it matches ``exclude`` (as ruff does
    without ``--force-exclude``); directories are walked without following symlink loops.
    """
    seen: set[str] = set()
    out: list[SourceFile] = []
    for given in paths:
        if not os.path.lexists(given):
            raise ConfigError(f"{given}: no such file or directory")
        if os.path.isdir(given):
            for path in _walk(given, settings):
                _add(path, seen, out)
        elif os.path.isfile(given):
            _add(given, seen, out)
        else:
            raise ConfigError(f"{given}: not a regular file or directory")
    return out


def _add(path: str, seen: set[str], out: list[SourceFile]) -> None:
    absolute = os.path.realpath(path)
    if absolute in seen:
        return
    seen.add(absolute)
    out.append(SourceFile(display=_display(path), absolute=absolute))


def _display(path: str) -> str:
    normalised = os.path.normpath(path)
    return normalised


def _walk(root: str, settings: Settings) -> Iterator[str]:
    visited: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            stat = os.stat(directory)
        except OSError:
            continue
        key = (stat.st_dev, stat.st_ino)
        if key in visited:  # a symlink loop, or the same tree reached twice
            continue
        visited.add(key)
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subdirs: list[str] = []
        for entry in entries:
            path = os.path.join(directory, entry.name)
            try:
                is_dir = entry.is_dir()
                is_file = entry.is_file()
            except OSError:
                continue
            if is_excluded(Path(path), settings):
                continue
            if is_dir:
                subdirs.append(path)
            elif is_file and entry.name.endswith((".py", ".pyi")):
                yield path
        stack.extend(reversed(subdirs))


def read_bytes(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def write_atomically(path: str, data: bytes) -> None:
    """Replace ``path``'s content in one step, keeping its permissions."""
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    mode = os.stat(path).st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=".nnlint-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
