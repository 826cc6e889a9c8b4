"""``nnlint server``: a Language Server (LSP over standard input/output) for editors.

* Diagnostics are published when a document is opened, changed or saved. The editor's
  text is linted as the file it names (unsaved buffers included), exactly as
  ``nnlint --stdin-filename PATH -`` does: the configuration found from that path, its
  per-file-ignores, the project around it and the result cache all apply.
* Code actions: each finding's fix (an unsafe one says so in its title and is never the
  preferred action), "ignore this finding" (``# nnlint: ignore[CODE]`` on its line,
  merged into a directive already there) and, when asked for, ``source.fixAll.nnlint``
  (every safe fix, as ``nnlint --fix`` applies them).
* Hover over a finding shows its message and the rule's documentation (``nnlint explain``).

Linting runs on one worker thread, so requests are answered while a file is linted; a
lint whose text was edited again before it started is skipped (only the newest text of
a document is linted). An edit is answered first with the edited file's own findings: the
project files that import it are read for context but not checked again (with many
importers that would take seconds). Once the editor has been quiet for
:data:`FOLLOW_UP_DELAY`, background lints publish what changed: the edited file's full
answer (what a loss in an importer reports in it) and, after a save, the other open
documents (they read the project as saved), importers first. A newer edit stops a
background lint at its next file; it is redone later, and nothing computed before the
newer edit is published. Needs pygls and lsprotocol (the ``server`` extra); ``import
nnlint`` and plain linting never import them.
"""
from __future__ import annotations

import asyncio
import io
import os
import re
import tokenize
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace.position_codec import PositionCodec

from nnlint import __version__
from nnlint.catalogue import Catalogue, load_catalogue
from nnlint.config import ConfigError
from nnlint.findings import Finding

SOURCE = "nnlint"
FIX_ALL_KIND = "source.fixAll.nnlint"
#: line breaks as the parser counts them (finding positions use these lines)
_LINE_BREAK = re.compile(r"\r\n?|\n")
#: files the server lints (a notebook's text is its JSON: cells are not LSP documents here)
_SUFFIXES = (".py", ".pyi")
#: seconds without edits before the background lints start (each edit restarts the wait)
FOLLOW_UP_DELAY = 0.3
_SEVERITY = {
    "error": types.DiagnosticSeverity.Error,
    "warning": types.DiagnosticSeverity.Warning,
    "info": types.DiagnosticSeverity.Information,
}


@dataclass(frozen=True)
class Snapshot:
    """A document's text at one version and what linting that text found."""

    uri: str
    version: Optional[int]
    text: str
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class LintOutcome:
    findings: tuple[Finding, ...]
    #: problems worth telling the user about (configuration errors, a rule that failed)
    problems: tuple[str, ...] = ()


# -- linting -------------------------------------------------------------------

class _Superseded(Exception):
    """A background lint stopped: the editor sent something newer, its answer would be stale."""


def lint_text(
    path: str,
    text: str,
    catalogue: Catalogue,
    fix: bool = False,
    *,
    dependants: bool = True,
    progress: Optional[Callable[[str, int, int], None]] = None,
) -> tuple[LintOutcome, Optional[str]]:
    """Lint ``text`` as the file ``path`` (the project around it read as usual); with ``fix``,
    also the text with every safe fix applied (``None`` when nothing changed).

    Without ``dependants``, the project files importing ``path`` whose cached results are out of
    date are not checked again (what a loss there reports in this file is then missing): the quick
    answer while the file is edited. ``progress`` is told of each file checked and may raise to
    stop the lint."""
    from nnlint.engine import discover_settings, lint_paths
    from nnlint.files import display_path

    name = _as_given(path)
    try:
        settings = discover_settings([name], None, catalogue)
        result = lint_paths([name], settings, jobs=1, catalogue=catalogue, stdin=_encode(text), fix=fix,
                            check_dependants=dependants, progress=progress)
    except ConfigError as error:
        return LintOutcome((), (str(error),)), None
    shown = display_path(name)
    findings = tuple(f for f in result.findings if f.path == shown and f.cell is None)
    fixed = None
    if fix and result.changes:
        from nnlint.files import decode_source

        fixed = decode_source(result.changes[0].after).text
    return LintOutcome(findings, tuple(result.errors)), fixed


def _module_name(uri: str) -> str:
    """The name an import of the document's module ends with (``pkg/model.py`` -> ``model``)."""
    path = document_path(uri) or to_fs_path(uri) or ""
    stem = os.path.splitext(os.path.basename(path))[0]
    return os.path.basename(os.path.dirname(path)) if stem == "__init__" else stem


def _imports(text: str, name: str) -> bool:
    """Whether an import statement of ``text`` names ``name`` (what the engine looks for, too)."""
    return bool(name) and re.search(rf"(?m)^[ \t]*(?:from|import)\b[^\n]*\b{re.escape(name)}\b", text) is not None


def _as_given(path: str) -> str:
    """``path`` relative to the working directory when inside it, as a user would type it
    (per-file-ignores are matched against paths as given)."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return path
    return path if relative.startswith("..") else relative


def _encode(text: str) -> bytes:
    """The editor's text as the file's bytes: in the encoding its coding cookie names, else UTF-8."""
    data = text.encode("utf-8", errors="surrogatepass")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data if encoding in ("utf-8", "utf-8-sig") else text.encode(encoding)
    except (SyntaxError, LookupError, UnicodeError):
        return data


def document_path(uri: str) -> Optional[str]:
    """The file a document is (``None`` for a document the server does not lint)."""
    path = to_fs_path(uri) if uri.startswith("file:") else None
    if path is None or not path.endswith(_SUFFIXES):
        return None
    return os.path.abspath(path)


# -- positions -------------------------------------------------------------------

class Lines:
    """Converts nnlint's 1-based (line, code-point column) positions to LSP positions and back."""

    def __init__(self, text: str, codec: PositionCodec) -> None:
        self.lines = _LINE_BREAK.split(text)
        self.codec = codec

    def position(self, line: int, column: int) -> types.Position:
        if line < 1:
            return types.Position(line=0, character=0)
        if line > len(self.lines):
            last = len(self.lines) - 1
            return types.Position(line=last, character=self.codec.client_num_units(self.lines[last]))
        text = self.lines[line - 1]
        index = max(column - 1, 0)
        if index > len(text) and line < len(self.lines):
            return types.Position(line=line, character=0)  # past the line's end: into its line break
        return types.Position(line=line - 1, character=self.codec.client_num_units(text[:index]))

    def range(self, line: int, column: int, end_line: int, end_column: int) -> types.Range:
        start = self.position(line, column)
        if end_line < 1:
            return types.Range(start=start, end=start)
        end = self.position(end_line, end_column)
        return types.Range(start=start, end=max(start, end, key=lambda p: (p.line, p.character)))


def finding_range(finding: Finding, lines: Lines) -> types.Range:
    return lines.range(finding.line, finding.column, finding.end_line, finding.end_column)


def _touches(a: types.Range, b: types.Range) -> bool:
    return (a.start.line, a.start.character) <= (b.end.line, b.end.character) \
        and (b.start.line, b.start.character) <= (a.end.line, a.end.character)


def _contains(area: types.Range, at: types.Position) -> bool:
    return (area.start.line, area.start.character) <= (at.line, at.character) <= (area.end.line, area.end.character)


# -- what the server sends -------------------------------------------------------

def diagnostic(finding: Finding, lines: Lines, uri: str, codec: PositionCodec) -> types.Diagnostic:
    related = [
        types.DiagnosticRelatedInformation(
            location=types.Location(uri=_uri_of(place.path), range=_other_lines(place.path, uri, lines, codec).range(
                place.line, place.column, place.end_line, place.end_column)),
            message=place.message,
        )
        for place in finding.related if place.cell is None
    ]
    return types.Diagnostic(
        range=finding_range(finding, lines),
        message=finding.message,
        severity=_SEVERITY.get(finding.severity, types.DiagnosticSeverity.Warning),
        code=finding.code,
        source=SOURCE,
        related_information=related or None,
    )


def _uri_of(path: str) -> str:
    return from_fs_path(os.path.abspath(path)) or path


def _other_lines(path: str, uri: str, lines: Lines, codec: PositionCodec) -> Lines:
    """The lines of a related place's file: this document's own, else the file as saved."""
    if _uri_of(path) == uri:
        return lines
    from nnlint.files import ReadProblem, decode_source, read_source

    data = read_source(os.path.abspath(path))
    try:
        text = decode_source(data).text if not isinstance(data, ReadProblem) else ""
    except Exception:
        text = ""
    return Lines(text, codec)


def fix_action(finding: Finding, snapshot: Snapshot, lines: Lines, diag: types.Diagnostic) -> Optional[types.CodeAction]:
    fix = finding.fix
    if fix is None or not fix.edits:
        return None
    safe = fix.applicability == "safe"
    edits = [types.TextEdit(range=lines.range(e.line, e.column, e.end_line, e.end_column), new_text=e.content)
             for e in fix.edits]
    return types.CodeAction(
        title=f"nnlint ({finding.code}): {fix.message}" + ("" if safe else " (unsafe fix: review the change)"),
        kind=types.CodeActionKind.QuickFix,
        diagnostics=[diag],
        edit=types.WorkspaceEdit(changes={snapshot.uri: edits}),
        is_preferred=safe,
    )


def ignore_action(finding: Finding, snapshot: Snapshot, lines: Lines, diag: types.Diagnostic) -> Optional[types.CodeAction]:
    where = ignore_edit(snapshot.text, finding)
    if where is None:
        return None
    (line, column), (end_line, end_column), content = where
    edit = types.TextEdit(range=lines.range(line, column, end_line, end_column), new_text=content)
    return types.CodeAction(
        title=f"nnlint ({finding.code}): Ignore {finding.code} on this line",
        kind=types.CodeActionKind.QuickFix,
        diagnostics=[diag],
        edit=types.WorkspaceEdit(changes={snapshot.uri: [edit]}),
    )


def ignore_edit(text: str, finding: Finding) -> Optional[tuple[tuple[int, int], tuple[int, int], str]]:
    """The edit that adds ``# nnlint: ignore[CODE]`` for ``finding`` where ``--add-ignore`` puts it
    (merged into a directive already on the line): 1-based start, end (exclusive) and new text."""
    from nnlint.add_ignore import with_ignores

    new, count, _ = with_ignores(text, [finding])
    if not count or new == text:
        return None
    start = 0
    limit = min(len(text), len(new))
    while start < limit and text[start] == new[start]:
        start += 1
    end = 0
    while end < limit - start and text[len(text) - 1 - end] == new[len(new) - 1 - end]:
        end += 1
    return _line_column(text, start), _line_column(text, len(text) - end), new[start:len(new) - end]


def _line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a string index, lines broken as the parser breaks them."""
    line, start = 1, 0
    for match in _LINE_BREAK.finditer(text, 0, offset):
        if match.end() > offset:
            break
        line, start = line + 1, match.end()
    return line, offset - start + 1


def hover_markdown(findings: Sequence[Finding], catalogue: Catalogue) -> str:
    from nnlint.cli import _explain_markdown

    parts = []
    for finding in findings:
        info = catalogue.get(finding.code)
        doc = _explain_markdown(info) if info is not None else ""
        parts.append(f"**{finding.code}** {finding.message}\n\n{doc}".rstrip())
    return "\n\n---\n\n".join(parts)


# -- the server --------------------------------------------------------------------

class NnlintLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("nnlint", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.catalogue = load_catalogue()
        #: the last linted (and published) state of each open document
        self.snapshots: dict[str, Snapshot] = {}
        #: one lint at a time, off the event loop: requests are answered meanwhile
        self.linter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nnlint-lint")
        self._told: set[str] = set()
        #: counts what the editor sent that background lints give way to
        self.generation = 0
        #: when (event loop time) the background lints may start
        self._due = 0.0
        #: documents whose full answer is still to be published, in the order to lint them
        self.stale: dict[str, None] = {}
        self._follow_up: Optional["asyncio.Future[None]"] = None

    def current(self, uri: str) -> Optional[Snapshot]:
        """The snapshot of ``uri`` if it is of the text the editor has now (else positions are stale)."""
        snapshot = self.snapshots.get(uri)
        document = self.workspace.text_documents.get(uri)
        if snapshot is None or document is None or document.source != snapshot.text:
            return None
        return snapshot

    def lines(self, snapshot: Snapshot) -> Lines:
        return Lines(snapshot.text, self.workspace.position_codec)

    def news(self) -> None:
        """The editor sent something to answer first: background lints stop at their next file and
        wait until it has been quiet for :data:`FOLLOW_UP_DELAY`."""
        self.generation += 1
        self._due = asyncio.get_running_loop().time() + FOLLOW_UP_DELAY

    async def lint(self, uri: str, *, dependants: bool = True, background: bool = False) -> Optional[bool]:
        """Lint the document's current text and publish what it finds. Without ``dependants`` the
        files importing it are not checked again (the quick answer to an edit); a ``background``
        lint stops when the editor sends something newer and then publishes nothing, else only what
        changed. ``True`` when done, ``False`` when superseded, ``None`` when it cannot be linted."""
        document = self.workspace.text_documents.get(uri)
        path = document_path(uri)
        if document is None or path is None:
            return None
        version, text, generation = document.version, document.source, self.generation
        loop = asyncio.get_running_loop()

        def newer() -> bool:
            latest = self.workspace.text_documents.get(uri)
            return latest is None or latest.version != version or (background and self.generation != generation)

        def stop_if_newer(phase: str, done: int, total: int) -> None:
            if newer():
                raise _Superseded()

        def work() -> Optional[LintOutcome]:
            if newer():
                return None  # edited again (or closed) before its turn: the newer lint counts
            return lint_text(path, text, self.catalogue, dependants=dependants,
                             progress=stop_if_newer if background else None)[0]

        try:
            outcome = await loop.run_in_executor(self.linter, work)
        except _Superseded:
            return False
        except Exception as error:  # a bug in a rule must not take the editor's linter down
            self.window_log_message(types.LogMessageParams(
                type=types.MessageType.Error, message=f"nnlint: internal error: {type(error).__name__}: {error}"))
            return None
        if outcome is None or newer():
            return False
        for problem in outcome.problems:
            self.tell(problem)
        before = self.snapshots.get(uri)
        snapshot = Snapshot(uri, version, text, outcome.findings)
        self.snapshots[uri] = snapshot
        if not background or before is None or before.version != version or before.findings != snapshot.findings:
            self.publish(snapshot)
        return True

    async def edited(self, uri: str, others: bool = False) -> None:
        """Answer an edit of ``uri``: its own findings now, without checking the files that import
        it again; then, in the background, its full answer (what a loss in an importer reports in
        it) and, with ``others``, every other open document again (the saved file is what they
        read), those that import it first."""
        self.news()
        await self.lint(uri, dependants=False)
        self.stale[uri] = None
        if others:
            name = _module_name(uri)
            rest = [u for u in self.workspace.text_documents if u != uri]
            for other in sorted(rest, key=lambda u: not _imports(self.workspace.text_documents[u].source, name)):
                self.stale[other] = None
        if self._follow_up is None or self._follow_up.done():
            self._follow_up = asyncio.ensure_future(self._follow_ups())

    async def _follow_ups(self) -> None:
        """Lint the stale documents in the background, one at a time, once the editor is quiet."""
        loop = asyncio.get_running_loop()
        while self.stale:
            wait = self._due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            uri = next(iter(self.stale))
            done = await self.lint(uri, background=True)
            if done is not False or uri not in self.workspace.text_documents:
                self.stale.pop(uri, None)  # done, closed or failed (a failure is logged once, not retried)

    def publish(self, snapshot: Snapshot) -> None:
        lines, codec = self.lines(snapshot), self.workspace.position_codec
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=snapshot.uri,
            version=snapshot.version,
            diagnostics=[diagnostic(f, lines, snapshot.uri, codec) for f in snapshot.findings],
        ))

    async def fix_all(self, snapshot: Snapshot) -> Optional[str]:
        """The snapshot's text with every safe fix applied (as ``nnlint --fix``), ``None`` if none applies."""
        path = document_path(snapshot.uri)
        if path is None:
            return None
        loop = asyncio.get_running_loop()
        _, fixed = await loop.run_in_executor(self.linter, lambda: lint_text(path, snapshot.text, self.catalogue, True))
        return fixed

    def tell(self, problem: str) -> None:
        """A configuration error once as a message, every time in the log."""
        self.window_log_message(types.LogMessageParams(type=types.MessageType.Error, message=f"nnlint: {problem}"))
        if problem not in self._told:
            self._told.add(problem)
            self.window_show_message(types.ShowMessageParams(type=types.MessageType.Error,
                                                             message=f"nnlint: {problem}"))


def build_server() -> NnlintLanguageServer:
    server = NnlintLanguageServer()

    @server.feature(types.INITIALIZE)
    def initialize(ls: NnlintLanguageServer, params: types.InitializeParams) -> None:
        # Run as `nnlint` does from the project's folder: the cache and relative paths live there.
        root = ls.workspace.root_path
        if root and os.path.isdir(root):
            os.chdir(root)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(ls: NnlintLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        await ls.edited(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: NnlintLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        # The other open documents read the project as saved: an unsaved edit does not change them.
        await ls.edited(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    async def did_save(ls: NnlintLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
        # What a saved file defines reaches the open files that import it: lint them all again
        # (the saved one first); a saved pyproject.toml changes every file's settings.
        await ls.edited(params.text_document.uri, others=True)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: NnlintLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.stale.pop(uri, None)
        if ls.snapshots.pop(uri, None) is not None:
            ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix, FIX_ALL_KIND]),
    )
    async def code_action(ls: NnlintLanguageServer, params: types.CodeActionParams) -> Optional[list[types.CodeAction]]:
        snapshot = ls.current(params.text_document.uri)
        if snapshot is None:
            return None
        only = params.context.only

        def wanted(kind: str) -> bool:
            return only is None or any(kind == k or kind.startswith(f"{k}.") for k in only)

        lines, codec = ls.lines(snapshot), ls.workspace.position_codec
        actions: list[types.CodeAction] = []
        if wanted(types.CodeActionKind.QuickFix):
            seen: set[str] = set()
            for finding in snapshot.findings:
                if not _touches(finding_range(finding, lines), params.range):
                    continue
                diag = diagnostic(finding, lines, snapshot.uri, codec)
                for action in (fix_action(finding, snapshot, lines, diag), ignore_action(finding, snapshot, lines, diag)):
                    if action is not None and action.title not in seen:
                        seen.add(action.title)
                        actions.append(action)
        if only is not None and wanted(FIX_ALL_KIND) and any(f.fix is not None for f in snapshot.findings):
            fixed = await ls.fix_all(snapshot)
            if fixed is not None:
                whole = lines.range(1, 1, len(lines.lines), len(lines.lines[-1]) + 1)
                actions.append(types.CodeAction(
                    title="nnlint: Fix all safely fixable findings",
                    kind=FIX_ALL_KIND,
                    edit=types.WorkspaceEdit(changes={snapshot.uri: [types.TextEdit(range=whole, new_text=fixed)]}),
                ))
        return actions

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: NnlintLanguageServer, params: types.HoverParams) -> Optional[types.Hover]:
        snapshot = ls.current(params.text_document.uri)
        if snapshot is None:
            return None
        lines = ls.lines(snapshot)
        under = [f for f in snapshot.findings if _contains(finding_range(f, lines), params.position)]
        if not under:
            return None
        return types.Hover(
            contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=hover_markdown(under, ls.catalogue)),
            range=finding_range(under[0], lines),
        )

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: NnlintLanguageServer, params: Any) -> None:
        ls.generation += 1  # a background lint in progress stops at its next file
        ls.stale.clear()
        if ls._follow_up is not None:
            ls._follow_up.cancel()
        ls.linter.shutdown(wait=False, cancel_futures=True)

    return server


def serve() -> int:
    """Run the server on standard input/output until the editor says ``exit``."""
    build_server().start_io()
    return 0
