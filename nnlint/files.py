"""Finding the files to lint, reading them, and deciding which can contain DL code.

Nothing here imports or executes the code being linted.
"""
from __future__ import annotations

import codecs
import os
import re
import stat
import tokenize
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

from nnlint import gitignore
from nnlint.config import ConfigError, Settings, is_excluded
from nnlint.notebook import MAX_NOTEBOOK_BYTES, Notebook, NotebookError, is_notebook, load_notebook

#: A file that mentions none of these cannot contain code any rule looks at: a framework, or
#: training code that only uses the project's own modules (a trainer class whose file imports
#: no framework still calls ``self.model.eval()`` and ``loss.backward()``).
DL_MARKERS = (b"torch", b"tensorflow", b"keras", b"jax", b".backward(", b"zero_grad", b".eval()", b"no_grad")
_DL_RE = re.compile(b"|".join(re.escape(marker) for marker in DL_MARKERS))
#: Larger files are generated code in practice; parsing one would cost about a minute.
MAX_FILE_BYTES = 2_000_000
_PYTHON_SUFFIXES = (".py", ".pyi", ".ipynb")
#: O_NONBLOCK: should a path have become a FIFO since it was checked, opening it does not wait for a writer
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


@dataclass(frozen=True)
class SourceFile:
    """A file to lint: ``display`` is the path as the user gave it (relative stays relative).

    ``absolute`` is the real path (no symbolic links); ``display`` is always printable
    (bytes of a file name that are not UTF-8 are shown as ``\\xff`` escapes).
    """

    display: str
    absolute: str


@dataclass(frozen=True)
class Discovery:
    """The files below the paths given, and what was left out on the way."""

    files: Tuple[SourceFile, ...]
    #: real paths of the paths given: nothing outside them is read or written
    roots: Tuple[str, ...]
    #: skipped on purpose (a link leaving the roots, not a regular file): reported, exit status unchanged
    warnings: Tuple[str, ...] = ()
    #: could not be read (an unreadable directory): reported, exit status 2
    errors: Tuple[str, ...] = ()


@dataclass(frozen=True)
class ReadProblem:
    """Why a file's bytes were not read: ``skipped`` on purpose (a warning), else an error."""

    message: str
    skipped: bool = False


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
        if not (error.msg or "").startswith("unknown encoding"):
            raise DecodeFailure(f"cannot determine the file's encoding: {error.msg}", 1, 1) from None
        encoding = "nnlint-unregistered"  # a codec registered at run time: read as UTF-8 below
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
        # a codec the project registers at run time (``# -*- coding: future_fstrings -*-``): such
        # files are written in UTF-8 with a preprocessor's syntax on top; read them as UTF-8
        try:
            return DecodedSource(text=data.decode("utf-8"), encoding="utf-8", bom=bom)
        except UnicodeDecodeError:
            raise DecodeFailure(f"unknown encoding {encoding!r} in the coding declaration", 1, 1) from None
    return DecodedSource(text=text, encoding=codec, bom=bom)


def encode_source(text: str, original: DecodedSource) -> bytes:
    data = text.encode(original.encoding)
    return codecs.BOM_UTF8 + data if original.bom else data


def discover(paths: Sequence[str], settings: Settings) -> list[SourceFile]:
    """Every ``.py``/``.pyi``/``.ipynb`` file below ``paths``, each once, in a deterministic order."""
    return list(find_sources(paths, settings).files)


def find_sources(paths: Sequence[str], settings: Settings) -> Discovery:
    """Every ``.py``/``.pyi``/``.ipynb`` file below ``paths``, each once, in a deterministic order.

    A path given explicitly is linted even if it matches ``exclude`` (as ruff does
    without ``--force-exclude``) and followed if it is a symbolic link. Below it, a link
    is followed only while it stays inside the paths given (the tree may come from a
    stranger: a link to ``/`` or to a file elsewhere is reported and skipped), loops are
    walked once, and anything that is not a regular file or a directory is skipped.
    """
    for given in paths:
        if "\0" in given:
            raise ConfigError(f"{display_path(given)}: a path cannot contain a NUL character")
    roots = tuple(dict.fromkeys(os.path.realpath(given) for given in paths))
    walk = _Walk(settings, roots)
    for given in paths:
        shown = display_path(given)
        try:
            mode = os.stat(given).st_mode
        except (FileNotFoundError, NotADirectoryError):
            raise ConfigError(f"{shown}: no such file or directory") from None
        except OSError as error:  # e.g. a directory above it that cannot be searched
            walk.errors.append(f"{shown}: cannot read: {_reason(error)}")
            continue
        if stat.S_ISDIR(mode):
            walk.directory(given)
        elif stat.S_ISREG(mode):
            walk.add(given)
        else:
            raise ConfigError(f"{shown}: not a regular file or directory")
    return Discovery(
        files=tuple(walk.files),
        roots=roots,
        warnings=tuple(dict.fromkeys(walk.warnings)),
        errors=tuple(dict.fromkeys(walk.errors)),
    )


def inside(path: str, roots: Sequence[str]) -> bool:
    """Is the real path ``path`` one of ``roots`` or below one?"""
    for root in roots:
        if path == root or path.startswith(root if root.endswith(os.sep) else root + os.sep):
            return True
    return False


def display_path(path: str) -> str:
    """``path`` normalised and printable in any output format (JSON, SARIF, a terminal).

    A file name that is not valid UTF-8 reaches Python with surrogate escapes, which no
    encoder accepts; its undecodable bytes are shown as ``\\xNN`` instead.
    """
    normalised = os.path.normpath(path)
    try:
        normalised.encode("utf-8")
    except UnicodeEncodeError:
        normalised = os.fsencode(normalised).decode("utf-8", errors="backslashreplace")
    return normalised.replace("\0", "\\x00")


class _Walk:
    """Collects files below the roots; one instance per discovery (no shared state)."""

    def __init__(self, settings: Settings, roots: Tuple[str, ...]) -> None:
        self.settings = settings
        self.roots = roots
        self.files: list[SourceFile] = []
        self.warnings: list[str] = []
        self.errors: list[str] = []
        self._seen_files: set[str] = set()
        self._seen_dirs: set[tuple[int, int]] = set()

    def add(self, path: str) -> None:
        absolute = os.path.realpath(path)
        if absolute in self._seen_files:
            return
        self._seen_files.add(absolute)
        self.files.append(SourceFile(display=display_path(path), absolute=absolute))

    def directory(self, root: str) -> None:
        # each folder with the .gitignore rules that apply to its entries
        stack: list[tuple[str, Optional[gitignore.Rules]]] = [
            (root, gitignore.rules_above(root) if self.settings.respect_gitignore else None)]
        while stack:
            directory, ignored = stack.pop()
            try:
                info = os.stat(directory)
            except OSError as error:
                self.errors.append(f"{display_path(directory)}: cannot read directory: {_reason(error)}")
                continue
            key = (info.st_dev, info.st_ino)
            if key in self._seen_dirs:  # a symlink loop, or the same tree reached twice
                continue
            self._seen_dirs.add(key)
            try:
                with os.scandir(directory) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as error:
                self.errors.append(f"{display_path(directory)}: cannot read directory: {_reason(error)}")
                continue
            subdirs: list[tuple[str, Optional[gitignore.Rules]]] = []
            for entry in entries:
                path = os.path.join(directory, entry.name)
                if is_excluded(Path(path), self.settings):
                    continue
                kind = self._kind(entry, path)
                if kind is not None and ignored is not None \
                        and ignored.ignores(os.path.abspath(path), is_directory=kind == "dir"):
                    continue
                if kind == "dir":
                    subdirs.append((path, ignored.extended(path) if ignored is not None else None))
                elif kind == "file":
                    self.add(path)
            stack.extend(reversed(subdirs))

    def _kind(self, entry: "os.DirEntry[str]", path: str) -> Optional[str]:
        """"dir", "file" (a Python file to lint) or ``None`` (nothing to do), reporting skipped entries."""
        try:
            link = entry.is_symlink()
            is_dir = entry.is_dir()  # these two follow a link; without one they cost no system call
            is_file = not is_dir and entry.is_file()
        except OSError:
            return None
        if not is_dir and not entry.name.endswith(_PYTHON_SUFFIXES):
            return None
        if link and not inside(os.path.realpath(path), self.roots):
            self.warnings.append(f"{display_path(path)}: skipped: a symbolic link that leaves the linted paths")
            return None
        if is_dir:
            return "dir"
        if is_file:
            return "file"
        if os.path.exists(path):  # a FIFO, socket or device; a dangling link has nothing to read
            self.warnings.append(f"{display_path(path)}: skipped: not a regular file")
        return None


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def _too_large(size: int, limit: int, what: str = "one file (generated code?)") -> str:
    return f"skipped: {size / 1e6:.1f} MB is over the {limit / 1e6:.0f} MB limit for {what}"


def read_source(path: str, limit: Optional[int] = MAX_FILE_BYTES) -> Union[bytes, ReadProblem]:
    """The Python source of a file (never more than ``limit`` bytes); what went wrong otherwise.

    For a notebook (``.ipynb``) that is its code cells joined (see :mod:`nnlint.notebook`),
    encoded as UTF-8; for any other file its bytes.
    """
    if not is_notebook(path):
        return read_raw(path, limit)
    loaded = read_notebook(path)
    if not isinstance(loaded, Notebook):
        return loaded if isinstance(loaded, ReadProblem) else ReadProblem(loaded.message)
    data = loaded.python.encode("utf-8")
    if limit is not None and len(data) > limit:
        return ReadProblem(_too_large(len(data), limit, "the code of one notebook"), skipped=True)
    return data


def read_notebook(path: str) -> Union[Notebook, ReadProblem, NotebookError]:
    """A notebook (outputs may make it larger than a source file may be), or why it is not one."""
    data = read_raw(path, MAX_NOTEBOOK_BYTES, "a notebook")
    if isinstance(data, ReadProblem):
        return data
    try:
        return load_notebook(data)
    except NotebookError as error:
        return error


def read_raw(
    path: str, limit: Optional[int] = MAX_FILE_BYTES, what: str = "one file (generated code?)"
) -> Union[bytes, ReadProblem]:
    """A regular file's bytes, never more than ``limit``; what went wrong otherwise.

    The size and the file type are checked before reading, so a huge file is not read
    and a FIFO or a device (which could block forever or never end) is never opened.
    """
    try:
        info = os.stat(path)
    except OSError as error:
        return ReadProblem(f"cannot read file: {_reason(error)}")
    if not stat.S_ISREG(info.st_mode):
        return ReadProblem("skipped: not a regular file", skipped=True)
    if limit is not None and info.st_size > limit:
        return ReadProblem(_too_large(info.st_size, limit, what), skipped=True)
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as error:
        return ReadProblem(f"cannot read file: {_reason(error)}")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return ReadProblem("skipped: not a regular file", skipped=True)
        cap = None if limit is None else limit + 1
        data = b""
        while cap is None or len(data) < cap:
            # ask for what the size says, then to be sure of the end (the file may have grown)
            ask = info.st_size + 1 - len(data) if len(data) <= info.st_size else 1 << 16
            chunk = os.read(fd, ask if cap is None else min(ask, cap - len(data)))
            if not chunk:
                break
            data += chunk
    except OSError as error:
        return ReadProblem(f"cannot read file: {_reason(error)}")
    finally:
        os.close(fd)
    if limit is not None and len(data) > limit:  # it grew after the check
        return ReadProblem(_too_large(len(data), limit, what), skipped=True)
    return data


def read_bytes(path: str, limit: Optional[int] = MAX_FILE_BYTES) -> Optional[bytes]:
    """A regular file's bytes (at most ``limit``), or ``None`` if it cannot or should not be read."""
    data = read_source(path, limit)
    return data if isinstance(data, bytes) else None


def write_atomically(path: str, data: bytes) -> None:
    """Replace ``path``'s content in one step, keeping its permissions."""
    info = os.lstat(path)
    if not stat.S_ISREG(info.st_mode):  # replacing a link would write where it points, or replace the link
        raise OSError(f"not a regular file: {display_path(path)}")
    replace_file(path, data, mode=info.st_mode & 0o7777, sync=True)


def replace_file(path: str, data: bytes, *, mode: Optional[int] = None, sync: bool = False) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path``: readers see
    the old content or the new, never half of it. ``mode`` (default: the temporary file's 0600)
    and ``sync`` (flush to disk before the rename) are the caller's to choose."""
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".nnlint-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
