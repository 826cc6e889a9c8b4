"""Checking one file: decode, parse once, summarise (phase 1), run the rules (phase 2).

A :class:`FileChecker` lives in one process (the main one, or a worker) and keeps
each parsed module between the phases so no file is parsed twice.
"""
from __future__ import annotations

import os
import re
import sys
import tokenize
from dataclasses import dataclass, field, replace
from io import StringIO
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple

from nnlint.catalogue import Catalogue, RuleInfo, load_catalogue, load_rule_class
from nnlint.config import Settings, ignored_for_path
from nnlint.facts.index import ModuleSummary, ProjectIndex, module_identity
from nnlint.files import (
    MAX_FILE_BYTES,
    DecodedSource,
    DecodeFailure,
    ReadProblem,
    SourceFile,
    decode_source,
    read_bytes,
    read_source,
)
from nnlint.findings import Finding
from nnlint.legacy import Python3Reading, as_python3
from nnlint.suppression import parse_suppressions

PARSE_ERROR_CODE = "NN001"
#: Larger files are generated code in practice; parsing one would cost about a minute.
MAX_PARSE_BYTES = MAX_FILE_BYTES
#: libcst's parser stops at this many implicitly concatenated strings in a row (CPython has no limit).
CST_MAX_CONCATENATED_STRINGS = 3000
#: libcst nests each string of such a run one level deeper: from about this many, walking
#: the tree recursively can hit Python's recursion limit
STRING_RUN_TOO_DEEP = 100


_LINE_BREAK = re.compile(r"\r\n?|\n")
#: token types of Python 3.12+ f-strings (-1: never matches on older versions)
FSTRING_START = getattr(tokenize, "FSTRING_START", -1)
FSTRING_END = getattr(tokenize, "FSTRING_END", -1)


class Skipped(str):
    """A file deliberately not checked: a warning for the user, not an error."""


@dataclass(frozen=True)
class CheckPlan:
    """Everything a worker needs to check files the way the main process would."""

    codes: Tuple[str, ...]
    options: Mapping[str, Mapping[str, Any]]
    settings: Settings
    catalogue_dir: str


@dataclass(frozen=True)
class PhaseOne:
    summary: Optional[ModuleSummary]
    #: findings known before the rules run (NN001) and internal errors
    findings: Tuple[Finding, ...] = ()
    errors: Tuple[str, ...] = ()
    warnings: Tuple[str, ...] = ()


@dataclass(frozen=True)
class PhaseTwo:
    findings: Tuple[Finding, ...]
    errors: Tuple[str, ...] = ()
    warnings: Tuple[str, ...] = ()


@dataclass
class _Parsed:
    decoded: DecodedSource
    module: Any  # libcst.Module
    module_name: str
    is_package: bool
    #: phase one's FileFacts; phase two reuses what does not depend on the project index
    facts: Any = None
    #: how a Python 2 file was read (``decoded.text`` is then the rewritten text, see
    #: :mod:`nnlint.legacy`): its findings get no fixes and columns of the original
    legacy: Optional[Python3Reading] = None


@dataclass
class FileChecker:
    plan: CheckPlan
    #: the engine's catalogue when it has one (reading every rule file again costs start-up time)
    catalogue: Optional[Catalogue] = None
    _parsed: dict[str, _Parsed] = field(default_factory=dict, init=False)
    _rules: Optional[list[tuple[RuleInfo, Any]]] = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.catalogue is None or str(self.catalogue.directory) != self.plan.catalogue_dir:
            self.catalogue = load_catalogue(Path(self.plan.catalogue_dir))

    # -- phase one ----------------------------------------------------------
    def summarize(self, source: SourceFile, data: Optional[bytes] = None) -> PhaseOne:
        parsed_or_error = self._load(source, data)
        if isinstance(parsed_or_error, Skipped):
            return PhaseOne(None, warnings=(str(parsed_or_error),))
        if isinstance(parsed_or_error, str):
            return PhaseOne(None, errors=(parsed_or_error,))
        if isinstance(parsed_or_error, Finding):
            return PhaseOne(None, (parsed_or_error,))
        self._parsed[source.absolute] = parsed_or_error
        from nnlint.facts import FileFacts
        from nnlint.facts.index import RecordingIndex

        # the questions phase one asks the (still empty) project index are recorded, so that
        # phase two can keep these facts when the full index answers them alike
        facts = FileFacts(
            source.display, parsed_or_error.module, parsed_or_error.module_name, parsed_or_error.is_package,
            RecordingIndex(), text=parsed_or_error.decoded.text,
        )
        parsed_or_error.facts = facts
        try:
            summary = facts.summary()
        except Exception as error:  # a fact extractor bug must not stop the run
            parsed_or_error.facts = None  # half-computed facts: phase two starts afresh
            return PhaseOne(
                ModuleSummary(parsed_or_error.module_name, source.display, parsed_or_error.is_package),
                errors=(_internal_error("summarising", source.display, error),),
            )
        return PhaseOne(summary)

    def _load(self, source: SourceFile, data: Optional[bytes] = None) -> "_Parsed | Finding | str":
        """The parsed file, an NN001 finding, or an error message if it cannot be read."""
        if data is None:
            read = read_source(source.absolute, MAX_PARSE_BYTES)
            if isinstance(read, ReadProblem):
                message = f"{source.display}: {read.message}"
                return Skipped(message) if read.skipped else message
            data = read
        if len(data) > MAX_PARSE_BYTES:
            return Skipped(
                f"{source.display}: skipped: {len(data) / 1e6:.1f} MB is over the "
                f"{MAX_PARSE_BYTES / 1e6:.0f} MB limit for one file (generated code?)"
            )
        try:
            decoded = decode_source(data)
        except DecodeFailure as failure:
            return self._parse_error(source, failure.message, failure.line, failure.column)
        return self._parse(source, decoded)

    def _parse(self, source: SourceFile, decoded: DecodedSource) -> "_Parsed | Finding | Skipped":
        import libcst as cst

        module_name, is_package = module_identity(Path(source.absolute))
        # CPython's own parser first: it is ~15x faster, gives clearer messages, and rejects
        # pathological nesting that would crash the native CST parser (a segfault, not an exception).
        python_error = _python_syntax_error(decoded.text)
        legacy = None
        if python_error is not None:
            reading = as_python3(decoded.text)
            if reading is None:
                message, line, column = python_error
                return self._parse_error(source, message, line, column)
            decoded, legacy = replace(decoded, text=reading.text), reading
        if _pathological_nesting(decoded.text) is not None:
            # valid, but the CST parser and every walk over it would take minutes or overflow
            return Skipped(f"{source.display}: skipped: too deeply nested to analyse (expressions or elif "
                           f"chains over {MAX_NESTING} levels deep)")
        try:
            module = parse_cst(decoded.text)
        except cst.ParserSyntaxError as error:
            return self._syntax_error(source, decoded.text, error)
        except RecursionError:
            return self._parse_error(source, "too deeply nested to parse", 1, 1)
        except Exception as error:  # libcst raises a few other types on odd input
            return self._parse_error(source, f"cannot parse: {error}".splitlines()[0], 1, 1)
        return _Parsed(decoded, module, module_name, is_package, legacy=legacy)

    def _syntax_error(self, source: SourceFile, text: str, error: Any) -> "Finding | Skipped":
        """The CST parser failed on code CPython accepts (syntax newer than libcst knows, or a parser limit)."""
        count, line = _longest_string_run(text)
        if count > CST_MAX_CONCATENATED_STRINGS:
            # valid code that the parser cannot hold: not the file's fault, so not a finding
            return Skipped(
                f"{source.display}: skipped: too deeply nested to analyse ({count} implicitly concatenated "
                f"strings from line {line}; the CST parser takes at most {CST_MAX_CONCATENATED_STRINGS})"
            )
        return self._parse_error(
            source,
            "syntax not supported by the CST parser (a newer Python version?)",
            error.raw_line,
            error.raw_column + 1,
        )

    def _parse_error(self, source: SourceFile, message: str, line: int, column: int) -> Finding:
        info = self.catalogue.by_code[PARSE_ERROR_CODE]
        line = max(line, 1)
        column = max(column, 1)
        return Finding(
            code=info.code,
            name=info.name,
            severity=info.severity,  # type: ignore[arg-type]
            message=message,
            path=source.display,
            line=line,
            column=column,
            end_line=line,
            end_column=column,
        )

    # -- phase two ----------------------------------------------------------
    def check(self, source: SourceFile, index: ProjectIndex, early: Tuple[Finding, ...] = ()) -> PhaseTwo:
        parsed = self._parsed.pop(source.absolute, None)
        if parsed is None and not early:
            # Phase one came from the cache: parse now.
            loaded = self._load(source)
            if isinstance(loaded, Finding):
                early = (loaded,)
            elif isinstance(loaded, Skipped):
                return PhaseTwo((), warnings=(str(loaded),))
            elif isinstance(loaded, str):
                return PhaseTwo((), (loaded,))
            else:
                parsed = loaded
        findings: list[Finding] = [f for f in early if f.code in self.plan.codes]
        errors: list[str] = []
        warnings: list[str] = []
        text = ""
        if parsed is not None:
            text = parsed.decoded.text
            from nnlint.rule import Context

            facts = self._facts(source, parsed, index)
            ctx = Context(source.display, text, facts)
            too_deep: list[str] = []
            for info, rule in self._loaded_rules():
                try:
                    ctx.run(rule, self.plan.options.get(info.code, {}))
                except Exception as error:
                    if _from_recursion(error):
                        too_deep.append(info.code)
                    else:
                        errors.append(_internal_error(f"running {info.code}", source.display, error))
            try:
                found = ctx.findings()
                if parsed.legacy is not None:
                    found = [_as_in_original(f, parsed.legacy, source.display) for f in found]
                findings.extend(found)
            except Exception as error:
                if _from_recursion(error):
                    too_deep.append("locating findings")
                else:
                    errors.append(_internal_error("locating findings", source.display, error))
            if too_deep:
                self._too_deep(source, text, too_deep, errors, warnings)
        elif early:
            data = read_bytes(source.absolute) or b""
            text = data.decode("utf-8", errors="replace")
        if findings:
            # a finding placed in another file (the activation a loss here receives) was checked
            # against that file's suppression comments when its site was recorded
            own = [f for f in findings if f.path == source.display]
            elsewhere = [f for f in findings if f.path != source.display]
            findings = parse_suppressions(text).filter(own) + elsewhere
            ignored_here = ignored_for_path(self.plan.settings, source.display, self.catalogue)
            findings = [f for f in findings if f.code not in (
                ignored_here if f.path == source.display
                else ignored_for_path(self.plan.settings, f.path, self.catalogue))]
        findings.sort(key=lambda f: f.sort_key)
        return PhaseTwo(tuple(_dedupe(findings)), tuple(errors), tuple(warnings))

    @staticmethod
    def _too_deep(source: SourceFile, text: str, what: list[str], errors: list[str], warnings: list[str]) -> None:
        """Rules that hit Python's recursion limit on this file: a warning when valid code is the cause.

        libcst nests implicitly concatenated strings one level per string, so a long table of
        them (generated code) is too deep to walk although nothing is wrong with it.
        """
        message = f"{source.display}: {', '.join(what)} skipped: too deeply nested to analyse"
        count, line = _longest_string_run(text)  # only on this rare path: tokenizing costs time
        if count >= STRING_RUN_TOO_DEEP:
            message = f"{message} ({count} implicitly concatenated strings from line {line})"
        # valid code nested past what can be walked (generated tables, long operator chains) is
        # skipped and said so, like an oversized file: not an error of nnlint's
        warnings.append(message)

    def source_of(self, source: SourceFile) -> Optional[DecodedSource]:
        parsed = self._parsed.get(source.absolute)
        return parsed.decoded if parsed else None

    def _facts(self, source: SourceFile, parsed: _Parsed, index: ProjectIndex) -> Any:
        if parsed.facts is not None and parsed.facts.path == source.display:
            return parsed.facts.with_project(index)
        from nnlint.facts import FileFacts

        return FileFacts(source.display, parsed.module, parsed.module_name, parsed.is_package, index,
                         text=parsed.decoded.text)

    def _loaded_rules(self) -> list[tuple[RuleInfo, Any]]:
        if self._rules is None:
            rules: list[tuple[RuleInfo, Any]] = []
            for code in sorted(self.plan.codes):
                info = self.catalogue.by_code.get(code)
                if info is None or info.kind != "static" or code == PARSE_ERROR_CODE:
                    continue
                rules.append((info, load_rule_class(info)()))
            self._rules = rules
        return self._rules


class ParserCrash(Exception):
    """libcst's native parser panicked (a Rust panic is not an ``Exception``)."""


def cst_text(text: str) -> str:
    """``text`` with one kind of line break throughout, as libcst's parser needs.

    CPython reads ``\\r\\n``, ``\\r`` and ``\\n`` alike, also mixed in one file; libcst rejects a
    mix (and panics on some). Each break is replaced by the file's first one, so every
    line and column stays where it was: positions libcst gives hold for the original text.
    """
    cr = text.count("\r")
    if not cr:
        return text
    crlf = text.count("\r\n")
    lf = text.count("\n")
    if (crlf == 0 and lf == 0) or (cr == crlf == lf):  # only \r, or only \r\n
        return text
    first = _LINE_BREAK.search(text)
    assert first is not None
    return _LINE_BREAK.sub(first.group(), text)


def parse_cst(text: str) -> Any:
    """``libcst.parse_module`` of ``text`` (see :func:`cst_text`); a parser panic becomes :class:`ParserCrash`."""
    import libcst as cst

    try:
        return cst.parse_module(cst_text(text))
    except Exception:
        raise
    except BaseException as error:
        if type(error).__name__ != "PanicException":  # KeyboardInterrupt, SystemExit
            raise
        raise ParserCrash(f"the CST parser failed: {str(error).splitlines()[0] if str(error) else ''}") from None


def _longest_string_run(text: str) -> tuple[int, int]:
    """(length, first line) of the longest run of implicitly concatenated string literals."""
    best, best_line, count, line, depth = 0, 0, 0, 0, 0
    try:
        for token in tokenize.generate_tokens(StringIO(text).readline):
            kind = token.type
            if depth:  # inside an f-string (Python 3.12+ tokenizes its parts)
                depth += (kind == FSTRING_START) - (kind == FSTRING_END)
                continue
            if kind in (tokenize.NL, tokenize.COMMENT):
                continue
            if kind == tokenize.STRING or kind == FSTRING_START:
                depth = 1 if kind == FSTRING_START else 0
                if not count:
                    line = token.start[0]
                count += 1
                if count > best:
                    best, best_line = count, line
            else:
                count = 0
    except (tokenize.TokenError, SyntaxError, RecursionError, ValueError):
        pass
    return best, best_line


#: deeper expression trees (1000-term ``+`` chains, 1000 chained calls, 2000-branch ``elif``
#: chains) are valid Python but take the CST parser and the facts seconds to minutes
MAX_NESTING = 250
_LONG_LINE = re.compile(r"[^\n]{2000,}")


def _pathological_nesting(text: str) -> Optional[int]:
    """The nesting depth of ``text``'s syntax tree when it is over :data:`MAX_NESTING`, else ``None``.

    Only files with a very long line or very many ``elif``s can be that deep in practice (operator
    and call chains are written on one line, branches as ``elif``); the others are not walked.
    """
    if _LONG_LINE.search(text) is None and text.count("elif") < MAX_NESTING:
        return None
    import ast

    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    deepest = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_NESTING:
            return deepest
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return None


def _python_syntax_error(text: str) -> Optional[tuple[str, int, int]]:
    """(message, line, column) if CPython cannot compile ``text``, else ``None``."""
    import ast

    try:
        ast.parse(text)
    except SyntaxError as error:
        return f"syntax error: {error.msg}", error.lineno or 1, error.offset or 1
    except (RecursionError, MemoryError):
        return "too deeply nested to parse", 1, 1
    except ValueError as error:  # e.g. NUL bytes
        return f"cannot parse: {error}", 1, 1
    return None


def _as_in_original(finding: Finding, reading: Python3Reading, path: str) -> Finding:
    """A finding on a Python 2 file read as Python 3: no fix (one computed on the rewritten text
    must not touch the original) and columns of the original lines."""
    if finding.path != path:
        return finding
    return replace(
        finding,
        fix=None,
        column=reading.original_column(finding.line, finding.column),
        end_column=reading.original_column(finding.end_line, finding.end_column),
    )


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[Any, ...]] = set()
    out: list[Finding] = []
    for finding in findings:
        key = (finding.code, finding.line, finding.column, finding.end_line, finding.end_column, finding.message)
        if key not in seen:
            seen.add(key)
            out.append(finding)
    return out


def _from_recursion(error: BaseException) -> bool:
    """Is ``error`` a RecursionError, or raised while one was handled (libcst turns some into KeyError)?"""
    seen: set[int] = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        if isinstance(current, RecursionError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _internal_error(what: str, path: str, error: BaseException) -> str:
    where = ""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        where = f" ({os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno})"
    try:  # str() of an error can fail itself: a KeyError's repr of a deeply nested CST node recurses
        text = str(error)
    except Exception:
        text = ""
    detail = text.splitlines()[0][:200] if text else ""
    return f"{path}: internal error while {what}: {type(error).__name__}: {detail}{where}".rstrip()


def python_can_fork() -> bool:
    return sys.platform != "win32" and hasattr(os, "fork")
