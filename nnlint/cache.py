"""A result cache keyed by file content, module identity, settings and nnlint's own code.

One file per (version, settings) in ``.nnlint_cache/`` (git-ignored by a ``.gitignore``
inside it, safe to delete, removed by ``nnlint clean``). A file's phase-one summary is
reused when its content and module identity are unchanged; its findings are reused
when, in addition, the summaries of the project modules it imports are unchanged.

The cache lives in the project, and a project may come from anyone, so its content is
never trusted:

- it is plain JSON, decoded field by field with strict type checks: nothing in it can
  run code, and anything of the wrong shape is a miss;
- each file carries an HMAC-SHA256 under a per-user secret key kept outside the project
  (:func:`key_directory`), so a cache this user did not write on this machine (committed
  to a repository, copied, truncated, bit-flipped) is a miss, never an error;
- without a usable key nnlint runs without a cache.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional, Tuple, Type, TypeVar

from nnlint import __version__
from nnlint.facts.index import CallRecord, LossParameter, ModelSummary, ModuleSummary, Passed, Site
from nnlint.files import replace_file
from nnlint.findings import SEVERITIES, Edit, Finding, Fix, Related

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.config import Settings

DEFAULT_CACHE_DIR = ".nnlint_cache"
#: Overrides where the per-user key lives (tests, or a CI runner's private directory).
KEY_DIR_ENV = "NNLINT_KEY_DIR"
KEY_BYTES = 32
CACHEDIR_TAG = "CACHEDIR.TAG"
_TAG_SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55"
_TAG_TEXT = f"{_TAG_SIGNATURE}\n# This file is a cache directory tag created by nnlint.\n"
_FORMAT = b"nnlint-cache 7"
#: a larger file is not read (it would be a huge or hostile one, never worth the time)
MAX_CACHE_BYTES = 256 * 1024 * 1024
#: deeper nesting than constants ever have is not decoded
_MAX_NESTING = 32
#: ints are stored in decimal, and Python refuses to parse more than 4300 digits
_MAX_INT_BITS = 4096


@dataclass(frozen=True)
class CacheEntry:
    content_hash: str
    summary: Optional[ModuleSummary]
    early: Tuple[Finding, ...]
    dependencies: Optional[str] = None
    findings: Optional[Tuple[Finding, ...]] = None
    #: what besides its content decides a file's results: the package its folder is, its
    #: file name and (with per-file-ignores) its path as given; see ``_Run._identity``
    identity: str = ""


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


# -- where things live -----------------------------------------------------------

def cache_directory(settings: "Settings") -> Optional[Path]:
    """The cache directory for ``settings``, or ``None`` when it may not be used.

    An absolute ``cache_dir`` comes from the command line (trusted) and is used as is. A
    relative one comes from the project's configuration and must stay inside the project
    root once symbolic links are resolved (a committed ``.nnlint_cache`` link to elsewhere
    is not followed), and must not be the root itself.
    """
    root = Path(os.path.abspath(settings.root or os.getcwd()))
    if settings.cache_dir and os.path.isabs(settings.cache_dir):
        return Path(settings.cache_dir)
    directory = Path(os.path.normpath(root / (settings.cache_dir or DEFAULT_CACHE_DIR)))
    real_root = os.path.realpath(root)
    real = os.path.realpath(directory)
    try:
        inside = real != real_root and os.path.commonpath([real, real_root]) == real_root
    except ValueError:  # another drive
        inside = False
    return directory if inside else None


def key_directory() -> Path:
    """Where the per-user key lives: ``$NNLINT_KEY_DIR``, else ``$XDG_CACHE_HOME/nnlint``, else ``~/.cache/nnlint``."""
    override = os.environ.get(KEY_DIR_ENV)
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "nnlint"
    return Path.home() / ".cache" / "nnlint"


def load_key(directory: Optional[Path] = None) -> Optional[bytes]:
    """This user's secret cache key, created on first use; ``None`` if it cannot be read or made safely."""
    try:
        directory = directory or key_directory()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / "key"
        key = _read_key(path)
        if key is None:
            _create_key(directory, path)
            key = _read_key(path)
        return key
    except (OSError, RuntimeError, ValueError):  # RuntimeError: no home directory
        return None


def _read_key(path: Path) -> Optional[bytes]:
    """The key, ``None`` if there is none yet; ``ValueError`` if the file cannot be trusted."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size != KEY_BYTES:
            raise ValueError("not a key file")
        if hasattr(os, "geteuid") and (info.st_uid != os.geteuid() or info.st_mode & 0o077):
            raise ValueError("key file readable or writable by others")
        key = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(key) != KEY_BYTES:
        raise ValueError("short key file")
    return key


def _create_key(directory: Path, path: Path) -> None:
    # Written to a private temporary file, then linked into place: another nnlint starting at the
    # same moment either sees no key or the whole key, and the first one to link wins.
    fd, tmp = tempfile.mkstemp(prefix=".key-", dir=directory)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(os.urandom(KEY_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except (AttributeError, NotImplementedError, PermissionError):
            os.replace(tmp, path)  # a file system without hard links
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def code_fingerprint(directories: Iterable[Path]) -> str:
    """Hash of every ``.py`` file below ``directories`` (nnlint's own code and its rules).

    An editable install whose code changed must not serve results the old code computed.
    Hashing the contents of ~80 small files costs a few milliseconds once per run.
    """
    digest = hashlib.sha256()
    for directory in directories:
        for folder, subfolders, names in os.walk(directory):
            subfolders[:] = sorted(name for name in subfolders if name != "__pycache__")
            for name in sorted(names):
                if not name.endswith(".py"):
                    continue
                path = os.path.join(folder, name)
                try:
                    with open(path, "rb") as handle:
                        data = handle.read()
                except OSError:
                    data = b"\0unreadable"
                digest.update(f"{os.path.relpath(path, directory)}\0{len(data)}\0".encode())
                digest.update(data)
    return digest.hexdigest()


def is_nnlint_cache(directory: Path) -> bool:
    """Did nnlint create ``directory`` (it holds nnlint's ``CACHEDIR.TAG``)?"""
    tag = directory / CACHEDIR_TAG
    try:
        if tag.is_symlink() or not tag.is_file():
            return False
        with open(tag, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return head.startswith(_TAG_SIGNATURE.encode()) and b"nnlint" in head


# -- the cache -------------------------------------------------------------------

class ResultCache:
    """Entries of one (version, settings) key, authenticated with this user's ``secret``."""

    def __init__(self, directory: Path, key: str, secret: bytes) -> None:
        self.directory = directory
        self.key = key
        self.path = directory / __version__ / f"{key[:32]}.json"
        self._secret = secret
        #: path -> the entry as stored (plain JSON data); decoded when asked for
        self._stored: dict[str, Any] = {}
        self._decoded: dict[str, Optional[CacheEntry]] = {}
        self._dirty = False

    # -- reading --------------------------------------------------------------
    def load(self) -> None:
        self._stored = {}
        self._decoded = {}
        data = _read_regular_file(self.path, MAX_CACHE_BYTES)
        if data is None:
            return
        header, _, rest = data.partition(b"\n")
        mac, _, payload = rest.partition(b"\n")
        if header != _FORMAT or not hmac.compare_digest(mac, self._mac(payload).encode()):
            return  # not written by this user here, or damaged: a miss
        try:
            document = json.loads(payload)
        except (ValueError, RecursionError):
            return
        if isinstance(document, dict) and document.get("key") == self.key:
            entries = document.get("entries")
            if isinstance(entries, dict):
                self._stored = entries

    def get(self, path: str, digest: str, identity: str = "") -> Optional[CacheEntry]:
        if path in self._decoded:
            entry = self._decoded[path]
        else:
            stored = self._stored.get(path)
            if type(stored) is not dict or stored.get("h") != digest or stored.get("i") != identity:
                return None  # not worth decoding
            entry = self._decoded[path] = _decode_entry(stored)
        if entry is None or entry.content_hash != digest or entry.identity != identity:
            return None
        return entry

    # -- writing --------------------------------------------------------------
    def put(self, path: str, entry: CacheEntry) -> None:
        if path not in self._decoded:
            self.get(path, entry.content_hash, entry.identity)
        if self._decoded.get(path) == entry:
            return
        try:
            stored = _encode_entry(entry)
        except (TypeError, ValueError, OverflowError, RecursionError):
            stored = None  # something plain JSON cannot hold exactly: not cached
        self._decoded[path] = entry if stored is not None else None
        if stored is None:
            if self._stored.pop(path, None) is not None:
                self._dirty = True
            return
        self._stored[path] = stored
        self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        try:
            payload = json.dumps({"key": self.key, "entries": self._stored}, separators=(",", ":")).encode()
        except (TypeError, ValueError, OverflowError, RecursionError):
            return
        data = _FORMAT + b"\n" + self._mac(payload).encode() + b"\n" + payload
        try:
            if not _claim(self.directory):
                return
            self.path.parent.mkdir(exist_ok=True)
            replace_file(str(self.path), data)  # readers see the old file or the new one, never half of one
            self._dirty = False
        except OSError:
            pass  # a read-only tree still lints; it just isn't cached

    def _mac(self, payload: bytes) -> str:
        # the key in the message binds a file to its name: one settings' file cannot pose as another's
        message = _FORMAT + b"\0" + self.key.encode() + b"\0" + payload
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()


def _read_regular_file(path: Path, limit: int) -> Optional[bytes]:
    """The bytes of a regular file up to ``limit``; ``None`` for anything else (a link, FIFO, device, huge file)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read(limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def _claim(directory: Path) -> bool:
    """Make the cache directory and tag it; ``False`` if it is someone else's.

    nnlint writes only into a directory it created (or found empty): never a ``.gitignore``
    of ``*`` into a folder that holds other files (``cache-dir = "src"``), and ``nnlint
    clean`` removes only a directory with its tag.
    """
    try:
        directory.mkdir(parents=True)
    except FileExistsError:
        if not is_nnlint_cache(directory) and (not directory.is_dir() or any(os.scandir(directory))):
            return False
    _create_once(directory / ".gitignore", "# Created by nnlint: the cache is safe to delete.\n*\n")
    _create_once(directory / CACHEDIR_TAG, _TAG_TEXT)
    return True


def _create_once(path: Path, text: str) -> None:
    """Write a small marker file unless something (a file, a link) is already there."""
    try:
        with open(path, "x", encoding="utf-8") as handle:  # O_EXCL: never follows a planted link
            handle.write(text)
    except FileExistsError:
        pass


# -- encoding: explicit, plain JSON data -------------------------------------------

class _Invalid(Exception):
    """A stored value of the wrong shape."""


_T = TypeVar("_T")
_FIELDS: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in fields(cls))
    for cls in (CacheEntry, ModuleSummary, ModelSummary, Finding, Related, Site, Passed, CallRecord, LossParameter)
}


def _make(cls: Type[_T], *values: Any) -> _T:
    """A frozen dataclass from already checked values, built the way unpickling builds one.

    The generated ``__init__`` sets each field through ``object.__setattr__``, which costs
    about three times as much; a warm run builds thousands of these. All fields are given:
    a class that gained one makes every stored entry a miss, never a half-built object.
    """
    names = _FIELDS[cls]
    if len(values) != len(names):
        raise _Invalid(cls.__name__)
    made = object.__new__(cls)
    made.__dict__.update(zip(names, values))
    return made


def _encode_entry(entry: CacheEntry) -> dict[str, Any]:
    return {
        "h": _check_str(entry.content_hash),
        "i": _check_str(entry.identity),
        "s": None if entry.summary is None else _encode_summary(entry.summary),
        "e": [_encode_finding(f) for f in entry.early],
        "d": None if entry.dependencies is None else _check_str(entry.dependencies),
        "f": None if entry.findings is None else [_encode_finding(f) for f in entry.findings],
    }


def _decode_entry(data: Any) -> Optional[CacheEntry]:
    if not isinstance(data, dict):
        return None
    try:
        summary, dependencies, findings = data["s"], data["d"], data["f"]
        return _make(
            CacheEntry,
            _str(data["h"]),
            None if summary is None else _decode_summary(summary),
            tuple(_decode_finding(f) for f in _list(data["e"])),
            None if dependencies is None else _str(dependencies),
            None if findings is None else tuple(_decode_finding(f) for f in _list(findings)),
            _str(data["i"]),
        )
    except (_Invalid, KeyError):
        return None


def _encode_summary(summary: ModuleSummary) -> list[Any]:
    return [
        _check_str(summary.module),
        _check_str(summary.path),
        _check_bool(summary.is_package),
        {_check_str(name): _encode_model(model) for name, model in summary.models.items()},
        {_check_str(name): _encode_constant(value, 0) for name, value in summary.constants.items()},
        {_check_str(name): _check_str(target) for name, target in summary.bindings.items()},
        [_encode_call(call) for call in summary.calls],
        {_check_str(name): [_encode_loss_parameter(p) for p in parameters]
         for name, parameters in summary.loss_functions.items()},
        {_check_str(name): [_check_int(position) for position in positions]
         for name, positions in summary.runners.items()},
        [_check_str(module) for module in summary.star_imports],
        [_check_str(name) for name in summary.defines],
    ]


def _encode_loss_parameter(parameter: LossParameter) -> list[Any]:
    if parameter.index is not None and type(parameter.index) is not int:
        raise TypeError("not an index")
    return [parameter.index, _check_str(parameter.name), _check_str(parameter.kind), _check_str(parameter.expects),
            _check_str(parameter.framework)]


def _decode_loss_parameter(data: Any) -> LossParameter:
    index, name, kind, expects, framework = _list(data, 5)
    if (index is not None and type(index) is not int) or any(
            type(text) is not str for text in (name, kind, expects, framework)):
        raise _Invalid("loss parameter")
    return _make(LossParameter, index, name, kind, expects, framework)


def _encode_passed(passed: Optional[Passed]) -> Any:
    return None if passed is None else [_check_str(passed.qualname), _check_bool(passed.called)]


def _encode_call(call: CallRecord) -> list[Any]:
    return [_check_str(call.target), [_encode_passed(p) for p in call.positional],
            [[_check_str(name), _encode_passed(p)] for name, p in call.keywords],
            [[_check_str(key), _check_str(mode)] for key, mode in call.modes]]


def _decode_passed(data: Any) -> Optional[Passed]:
    if data is None:
        return None
    qualname, called = _list(data, 2)
    if type(qualname) is not str or type(called) is not bool:
        raise _Invalid("passed")
    return _make(Passed, qualname, called)


def _decode_call(data: Any) -> CallRecord:
    target, positional, keywords, modes = _list(data, 4)
    if type(target) is not str:
        raise _Invalid("call")
    named: list[tuple[str, Optional[Passed]]] = []
    for item in _list(keywords):
        name, passed = _list(item, 2)
        if type(name) is not str:
            raise _Invalid("call")
        named.append((name, _decode_passed(passed)))
    switched: list[tuple[str, str]] = []
    for item in _list(modes):
        key, mode = _list(item, 2)
        if type(key) is not str or mode not in ("train", "eval"):
            raise _Invalid("call")
        switched.append((key, mode))
    return _make(CallRecord, target, tuple(_decode_passed(p) for p in _list(positional)), tuple(named),
                 tuple(switched))


_SUMMARY_TYPES = (str, str, bool, dict, dict, dict, list, dict, dict, list, list)


def _decode_summary(data: Any) -> ModuleSummary:
    if type(data) is not list or tuple(map(type, data)) != _SUMMARY_TYPES:
        raise _Invalid("summary")
    module, path, is_package, models, constants, bindings, calls, loss_functions, runners, stars, defines = data
    # JSON object keys are always strings; only the values need checking.
    if any(type(target) is not str for target in bindings.values()):
        raise _Invalid("bindings")
    return _make(
        ModuleSummary,
        module,
        path,
        is_package,
        {name: _decode_model(model) for name, model in models.items()},
        {name: _decode_constant(value, 0) for name, value in constants.items()},
        bindings,
        tuple(_decode_call(call) for call in calls),
        {name: tuple(_decode_loss_parameter(p) for p in _list(parameters))
         for name, parameters in loss_functions.items()},
        {name: tuple(_int(position) for position in _list(positions)) for name, positions in runners.items()},
        tuple(_str(module) for module in stars),
        tuple(_str(name) for name in defines),
    )


def _encode_model(model: ModelSummary) -> list[Any]:
    if not isinstance(model, ModelSummary):
        raise TypeError("not a model summary")
    return [
        _check_str(model.name),
        _check_str(model.qualname),
        _check_str(model.framework),
        [_check_str(layer) for layer in model.layers],
        _check_optional_str(model.output_activation),
        None if model.output_units is None else _check_int(model.output_units),
        _check_bool(model.has_dropout),
        _check_bool(model.has_batchnorm),
        [_check_optional_str(element) for element in model.output_elements],
        None if model.output_site is None else _encode_site(model.output_site),
        [None if site is None else _encode_site(site) for site in model.element_sites],
        _check_bool(model.returns_output),
        None if model.applies_argument is None else _check_int(model.applies_argument),
        [[_check_str(attribute), _check_str(qualname)] for attribute, qualname in model.submodules],
        _check_optional_str(model.output_model),
        [_check_str(part) for part in model.parts],
        [_check_str(key) for key in model.element_keys],
    ]


def _encode_site(site: Site) -> list[Any]:
    return [_check_str(site.path), _check_int(site.line), _check_int(site.column), _check_int(site.end_line),
            _check_int(site.end_column), [_check_str(code) for code in site.silenced]]


def _decode_site(data: Any) -> Site:
    path, line, column, end_line, end_column, silenced = _list(data, 6)
    if type(path) is not str or any(type(code) is not str for code in _list(silenced)):
        raise _Invalid("site")
    return _make(Site, path, _int(line), _int(column), _int(end_line), _int(end_column), tuple(silenced))


_MODEL_HEAD = (str, str, str, list)
_MODEL_TAIL = (bool, bool, list)


def _decode_model(data: Any) -> ModelSummary:
    if type(data) is not list or len(data) != 17 or tuple(map(type, data[:4])) != _MODEL_HEAD \
            or tuple(map(type, data[6:9])) != _MODEL_TAIL or type(data[10]) is not list or type(data[11]) is not bool:
        raise _Invalid("model")
    (name, qualname, framework, layers, activation, units, dropout, batchnorm, elements, site, sites, returns,
     applies, submodules, output_model, parts, keys) = data
    if any(type(text) is not str for text in (*layers, *_list(parts), *_list(keys))):
        raise _Invalid("layers")
    held = tuple((_str(attribute), _str(held_class)) for attribute, held_class in
                 (_list(pair, 2) for pair in _list(submodules)))
    return _make(
        ModelSummary,
        name,
        qualname,
        framework,
        tuple(layers),
        _optional_str(activation),
        None if units is None else _int(units),
        dropout,
        batchnorm,
        tuple(_optional_str(element) for element in elements),
        None if site is None else _decode_site(site),
        tuple(None if element is None else _decode_site(element) for element in sites),
        returns,
        None if applies is None else _int(applies),
        held,
        _optional_str(output_model),
        tuple(parts),
        tuple(keys),
    )


def _encode_constant(value: Any, depth: int) -> Any:
    # Constants are scalars or tuples of them; a tuple is stored as a JSON list.
    if type(value) is int and value.bit_length() > _MAX_INT_BITS:
        raise ValueError("integer too large to store")  # JSON could not read it back
    if type(value) in (str, int, float, bool):
        return value
    if type(value) is tuple and depth < _MAX_NESTING:
        return [_encode_constant(item, depth + 1) for item in value]
    raise TypeError(f"not a constant: {type(value).__name__}")


def _decode_constant(value: Any, depth: int) -> Any:
    if type(value) in (str, int, float, bool):
        return value
    if type(value) is list and depth < _MAX_NESTING:
        return tuple(_decode_constant(item, depth + 1) for item in value)
    raise _Invalid("constant")


def _encode_finding(finding: Finding) -> list[Any]:
    if not isinstance(finding, Finding) or finding.severity not in SEVERITIES:
        raise TypeError("not a finding")
    if finding.cell is not None or any(r.cell is not None for r in finding.related):
        raise TypeError("a notebook's findings are cached in the positions of its joined code")
    fix = finding.fix
    return [
        _check_str(finding.code),
        _check_str(finding.name),
        finding.severity,
        _check_str(finding.message),
        _check_str(finding.path),
        _check_int(finding.line),
        _check_int(finding.column),
        _check_int(finding.end_line),
        _check_int(finding.end_column),
        None if fix is None else _encode_fix(fix),
        _check_optional_str(finding.module),
        None if finding.step is None else _check_int(finding.step),
        [[_check_str(name), _check_scalar(value)] for name, value in finding.extra],
        [[_check_str(r.path), _check_int(r.line), _check_int(r.column), _check_int(r.end_line),
          _check_int(r.end_column), _check_str(r.message)] for r in finding.related],
    ]


_FINDING_HEAD = (str, str, str, str, str, int, int, int, int)
#: no fix, module, step or extra: what most static findings look like
_FINDING_PLAIN = _FINDING_HEAD + (type(None), type(None), type(None), list, list)


def _decode_finding(data: Any) -> Finding:
    if type(data) is not list or len(data) != 14:
        raise _Invalid("finding")
    kinds = tuple(map(type, data))
    code, name, severity, message, path, line, column, end_line, end_column, fix, module, step, extra, related \
        = data
    if severity not in SEVERITIES:
        raise _Invalid("severity")
    if kinds == _FINDING_PLAIN and not extra and not related:
        return _make(Finding, code, name, severity, message, path, line, column, end_line, end_column,
                     None, None, None, (), (), None)
    if kinds[:9] != _FINDING_HEAD:
        raise _Invalid("finding")
    return _make(
        Finding, code, name, severity, message, path, line, column, end_line, end_column,
        None if fix is None else _decode_fix(fix),
        _optional_str(module),
        None if step is None else _int(step),
        tuple(_decode_extra(item) for item in _list(extra)),
        tuple(_decode_related(item) for item in _list(related)),
        None,
    )


def _decode_related(data: Any) -> Related:
    path, line, column, end_line, end_column, message = _list(data, 6)
    if not (type(path) is str and type(message) is str):
        raise _Invalid("related")
    return _make(Related, path, _int(line), _int(column), _int(end_line), _int(end_column), message, None)


def _encode_fix(fix: Fix) -> list[Any]:
    if not isinstance(fix, Fix) or fix.applicability not in ("safe", "unsafe") \
            or any(e.cell is not None for e in fix.edits):
        raise TypeError("not a fix")
    return [
        _check_str(fix.message),
        fix.applicability,
        [
            [_check_int(e.line), _check_int(e.column), _check_int(e.end_line), _check_int(e.end_column),
             _check_str(e.content)]
            for e in fix.edits
        ],
    ]


def _decode_fix(data: Any) -> Fix:
    message, applicability, edits = _list(data, 3)
    if applicability not in ("safe", "unsafe"):
        raise _Invalid("applicability")
    decoded: list[Edit] = []
    for edit in _list(edits):
        line, column, end_line, end_column, content = _list(edit, 5)
        decoded.append(Edit(_int(line), _int(column), _int(end_line), _int(end_column), _str(content)))
    return Fix(message=_str(message), edits=tuple(decoded), applicability=applicability)


def _decode_extra(data: Any) -> tuple[str, Any]:
    name, value = _list(data, 2)
    if value is not None and type(value) not in (str, int, float, bool):
        raise _Invalid("extra")
    return _str(name), value


# Checks: ``type(x) is T`` rather than isinstance, so a bool never passes as an int (nor a subclass as anything).

def _str(value: Any) -> str:
    if type(value) is not str:
        raise _Invalid("str")
    return value


def _optional_str(value: Any) -> Optional[str]:
    return None if value is None else _str(value)


def _int(value: Any) -> int:
    if type(value) is not int:
        raise _Invalid("int")
    return value


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise _Invalid("bool")
    return value


def _list(value: Any, length: Optional[int] = None) -> list[Any]:
    if type(value) is not list or (length is not None and len(value) != length):
        raise _Invalid("list")
    return value


def _dict(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise _Invalid("dict")
    return value


def _check_str(value: Any) -> str:
    if type(value) is not str:
        raise TypeError("not a str")
    return value


def _check_optional_str(value: Any) -> Optional[str]:
    return None if value is None else _check_str(value)


def _check_int(value: Any) -> int:
    if type(value) is not int:
        raise TypeError("not an int")
    return value


def _check_bool(value: Any) -> bool:
    if type(value) is not bool:
        raise TypeError("not a bool")
    return value


def _check_scalar(value: Any) -> Any:
    if value is not None and type(value) not in (str, int, float, bool):
        raise TypeError("not a scalar")
    return value
