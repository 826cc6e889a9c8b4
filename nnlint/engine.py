"""The static checker's driver: files in, sorted findings out.

1. Discover ``.py`` files; skip those that cannot contain DL code before parsing.
2. Phase one: parse each file once and summarise what it exports (cached by content).
3. Build the project index from all summaries.
4. Phase two: run the enabled rules on each file with the index (cached by content,
   settings and the summaries of the modules it imports).
5. Optionally apply fixes, re-checking fixed files until nothing more applies.

Files are checked in parallel with ``jobs`` worker processes; the output does not
depend on the number of jobs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, Tuple, Union

from nnlint import __version__
from nnlint.cache import CacheEntry, ResultCache, cache_directory, code_fingerprint, content_hash, load_key
from nnlint.catalogue import Catalogue, load_catalogue
from nnlint.checker import CheckPlan, FileChecker, PhaseOne, PhaseTwo
from nnlint.collector import collector_paused
from nnlint.config import (
    ConfigError,
    Settings,
    enabled_codes,
    find_config,
    ignored_for_path,
    load_settings,
    rule_options,
    settings_fingerprint,
)
from nnlint.facts.index import ProjectIndex, module_identity
from nnlint.files import (
    MAX_FILE_BYTES,
    Discovery,
    ReadProblem,
    SourceFile,
    decode_source,
    display_path,
    encode_source,
    find_sources,
    inside,
    may_contain_dl_code,
    read_notebook,
    read_source,
    write_atomically,
)
from nnlint.findings import Edit, Finding, Fix, Related, source_key
from nnlint.notebook import MAX_NOTEBOOK_BYTES, Notebook, NotebookError, is_notebook, load_notebook

_LINE_BREAK = re.compile(r"\r\n?|\n")
#: Below this many files to parse, worker start-up costs more than it saves.
PARALLEL_THRESHOLD = 6
MAX_FIX_ROUNDS = 10
#: imported modules that mention no framework are read (for their constants) up to this size
_MAX_PLAIN_MODULE = 32_000
#: how many levels of imports of the linted files are summarised for the index
_IMPORT_DEPTH = 4
#: a project larger than this is not searched for the modules the linted files import
_MAX_PROJECT_FILES = 20000
#: at most this many other files are summarised for the linted ones (a library's ``__init__``
#: can import hundreds of modules; the run must stay quick on one changed file)
_MAX_CONTEXT_FILES = 200


@dataclass(frozen=True)
class FileChange:
    """What ``--fix`` changed in one file (written, or only shown with ``--diff``)."""

    path: str
    #: the file's bytes before and after (a notebook's JSON)
    before: bytes
    after: bytes
    #: the findings whose fixes were applied, in the positions they had when fixed
    fixed: Tuple[Finding, ...]


@dataclass(frozen=True)
class LintResult:
    findings: Tuple[Finding, ...]
    files_seen: int
    files_checked: int
    fixed: int = 0
    #: internal problems (a rule crashed, a file vanished); the CLI reports them and exits 2
    errors: Tuple[str, ...] = ()
    #: files deliberately not checked (e.g. over the size limit); reported, exit status unchanged
    warnings: Tuple[str, ...] = ()
    #: decoded text of files with findings, for reporters that show source lines
    sources: Tuple[Tuple[str, str], ...] = ()
    #: with ``fix``: each file the fixes changed, in the order of the files
    changes: Tuple[FileChange, ...] = ()


def discover_settings(
    paths: Sequence[str], config: Optional[str] = None, catalogue: Optional[Catalogue] = None
) -> Settings:
    """Settings from ``--config`` or the nearest ``pyproject.toml`` with ``[tool.nnlint]``."""
    catalogue = catalogue or load_catalogue()
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise ConfigError(f"{config}: configuration file not found")
        return load_settings(path, catalogue)
    first = paths[0] if paths else "."
    return load_settings(find_config(Path(first)), catalogue)


def _tuple(value: Union[None, str, Iterable[str]]) -> Optional[Tuple[str, ...]]:
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value)


def _plan(settings: Settings, catalogue: Catalogue) -> CheckPlan:
    codes = tuple(sorted(enabled_codes(settings, catalogue)))
    return CheckPlan(
        codes=codes,
        options={code: rule_options(code, settings, catalogue) for code in codes},
        settings=settings,
        catalogue_dir=str(catalogue.directory),
    )


def lint_source(
    source: Union[str, bytes],
    path: str = "<string>",
    *,
    select: Union[None, str, Iterable[str]] = None,
    ignore: Union[None, str, Iterable[str]] = None,
    settings: Optional[Settings] = None,
) -> list[Finding]:
    """Lint one source text (nothing is read from or written to disk)."""
    catalogue = load_catalogue()
    settings = (settings or Settings()).with_overrides(select=_tuple(select), ignore=_tuple(ignore))
    data = source.encode("utf-8") if isinstance(source, str) else source
    if not may_contain_dl_code(data):
        return []
    checker = FileChecker(_plan(settings, catalogue), catalogue)
    file = SourceFile(display=path, absolute=os.path.abspath(path) if path != "<string>" else path)
    with collector_paused():
        first = checker.summarize(file, data)
        index = ProjectIndex([first.summary] if first.summary else [])
        if first.summary is None and not first.findings:
            return []
        result = checker.check(file, index, first.findings)
        return list(_with_unused(checker, file, data, first, result, index).findings)


def lint_paths(
    paths: Sequence[str] = (".",),
    settings: Optional[Settings] = None,
    *,
    select: Union[None, str, Iterable[str]] = None,
    ignore: Union[None, str, Iterable[str]] = None,
    extend_select: Union[None, str, Iterable[str]] = None,
    jobs: Optional[int] = None,
    use_cache: bool = True,
    fix: bool = False,
    unsafe_fixes: bool = False,
    catalogue: Optional[Catalogue] = None,
    write_fixes: bool = True,
    stdin: Optional[bytes] = None,
    per_file_config: bool = False,
    progress: Optional[Callable[[str, int, int], None]] = None,
    check_dependants: bool = True,
) -> LintResult:
    """Lint files and directories. Raises :class:`ConfigError` for bad paths or settings.

    With ``per_file_config`` (always when no ``settings`` are given), each file is linted with the
    nearest configuration above it, what the caller changed in ``settings`` applied to each (as
    without ``--config``); else ``settings`` apply to every file.

    With ``fix``, the fixed files are written unless ``write_fixes`` is false; either way
    :attr:`LintResult.changes` says what changed. ``stdin`` is the content of the one path
    given (an editor's unsaved buffer: the file need not exist, and is never written); the
    project around that path is read as for a file on disk.

    Without ``check_dependants``, the project files that import the linted ones are still read
    for context (the index), but only their cached results count: those whose cached results are
    out of date are not checked again, so findings they would report in the linted files are
    missing (an editor's answer for the file being typed in; a full run follows later)."""
    paths = list(paths) or ["."]
    catalogue = catalogue or load_catalogue()
    if settings is None:
        settings = discover_settings(paths, None, catalogue)
        per_file_config = True
    found: Optional[Discovery] = None
    if per_file_config and stdin is None:
        grouped, found = _per_config(paths, settings, catalogue)
        if grouped is not None:
            results = []
            for group_settings, files, discovery in grouped:
                group_settings = group_settings.with_overrides(
                    select=_tuple(select), ignore=_tuple(ignore), extend_select=_tuple(extend_select))
                run = _Run(_plan(group_settings, catalogue), catalogue, group_settings, jobs, use_cache, fix,
                           unsafe_fixes, write_fixes)
                run.progress, run.check_dependants = progress, check_dependants
                results.append(run.run(files, roots=discovery.roots, warnings=discovery.warnings,
                                       errors=discovery.errors))
            return _merged(results)
    settings = settings.with_overrides(
        select=_tuple(select), ignore=_tuple(ignore), extend_select=_tuple(extend_select)
    )
    plan = _plan(settings, catalogue)
    if stdin is not None:
        if len(paths) != 1 or "\0" in paths[0]:
            raise ConfigError("text from standard input is linted as one file: give one name for it")
        given = SourceFile(display=display_path(paths[0]), absolute=os.path.realpath(paths[0]))
        run = _Run(plan, catalogue, settings, jobs, use_cache, fix, unsafe_fixes, write=False)
        run.progress, run.check_dependants = progress, check_dependants
        run.given[given.absolute] = stdin
        return run.run([given], roots=(given.absolute,))
    found = found or find_sources(paths, settings)
    run = _Run(plan, catalogue, settings, jobs, use_cache, fix, unsafe_fixes, write_fixes)
    run.progress, run.check_dependants = progress, check_dependants
    return run.run(list(found.files), roots=found.roots, warnings=found.warnings, errors=found.errors)


def _per_config(paths: Sequence[str], settings: Settings, catalogue: Catalogue
                ) -> tuple[Optional[list[tuple[Settings, list[SourceFile], Discovery]]], Optional[Discovery]]:
    """The files below ``paths`` grouped by the configuration that applies to each (a folder is
    walked with its own configuration's excludes), each group with the walk it came from; ``None``
    when ``settings`` cover them all, with what was found when ``paths`` were walked with
    ``settings`` (not to walk them twice)."""
    from nnlint.resolve import ConfigResolver

    resolver = ConfigResolver(settings, catalogue)
    by_path: dict[Optional[Path], list[str]] = {}
    for path in paths:
        by_path.setdefault(resolver.config_of(path) if os.path.exists(path) else settings.config_path,
                           []).append(path)
    groups: dict[tuple[Optional[Path], int], list[SourceFile]] = {}
    walks: list[Discovery] = []
    seen: set[str] = set()
    for config, group in by_path.items():
        walks.append(find_sources(group, resolver.settings(config)))
        given = {os.path.realpath(path) for path in group}
        for source in walks[-1].files:
            if source.absolute in seen:
                continue  # each file once, as one walk gives it
            seen.add(source.absolute)
            own = config if source.absolute in given else resolver.config_of(source.absolute)
            groups.setdefault((own, len(walks) - 1), []).append(source)
    if {config for config, _ in groups} <= {settings.config_path} and len(walks) == 1:
        return None, walks[0]
    # nothing found (or only errors): the walks' reports still count
    return [(resolver.settings(config), files, walks[walk]) for (config, walk), files in groups.items()] or \
        [(resolver.settings(config), [], walk) for config, walk in zip(by_path, walks)], None


def _merged(results: Sequence[LintResult]) -> LintResult:
    """One result of runs over disjoint groups of files, in the order they ran."""
    return LintResult(
        findings=tuple(f for result in results for f in result.findings),
        files_seen=sum(result.files_seen for result in results),
        files_checked=sum(result.files_checked for result in results),
        fixed=sum(result.fixed for result in results),
        errors=tuple(dict.fromkeys(e for result in results for e in result.errors)),
        warnings=tuple(dict.fromkeys(w for result in results for w in result.warnings)),
        sources=tuple(source for result in results for source in result.sources),
        changes=tuple(change for result in results for change in result.changes),
    )


class _Run:
    def __init__(
        self,
        plan: CheckPlan,
        catalogue: Catalogue,
        settings: Settings,
        jobs: Optional[int],
        use_cache: bool,
        fix: bool,
        unsafe_fixes: bool,
        write: bool = True,
    ) -> None:
        self.plan = plan
        self.catalogue = catalogue
        self.settings = settings
        self.jobs = max(1, jobs if jobs is not None else (os.cpu_count() or 1))
        self.fix = fix
        self.unsafe_fixes = unsafe_fixes
        self.cache: Optional[ResultCache] = None
        #: real paths that --fix may write below (set per run)
        self.roots: Tuple[str, ...] = ()
        #: a cached summary's path as spelled when it was cached -> as spelled in this run
        self._renamed: dict[str, str] = {}
        #: the paths of this run's files, as spelled in this run
        self._displays: set[str] = set()
        #: the notebooks of this run by path as spelled: their findings are placed in cells
        self._notebooks: dict[str, Notebook] = {}
        #: with ``fix``: write the fixed files (else only report the changes)
        self.write = write
        self._changes: list[FileChange] = []
        #: real path -> the content to lint instead of the file's (text from standard input)
        self.given: dict[str, bytes] = {}
        #: told ``(phase, done, total)`` as files are parsed and checked (a progress bar)
        self.progress: Optional[Callable[[str, int, int], None]] = None
        #: check the files that import the linted ones again when their cached results are out of date
        self.check_dependants = True
        if use_cache and not fix:
            self.cache = self._open_cache()

    def _open_cache(self) -> Optional[ResultCache]:
        """The result cache, or ``None`` when its directory or this user's key cannot be used."""
        directory = cache_directory(self.settings)
        if directory is None:
            return None
        secret = load_key()
        if secret is None:
            return None
        # Everything a result depends on besides a file's content, identity and imports:
        # nnlint's version and code, the rules, their options, and per-file-ignores (matched
        # against paths relative to the configuration and the working directory).
        code = code_fingerprint(dict.fromkeys((Path(__file__).parent, Path(self.catalogue.directory))))
        per_file = self.settings.per_file_ignores
        where = f"{self.settings.root}\0{os.getcwd()}" if per_file else ""
        key = hashlib.sha256(
            f"{__version__}\0{code}\0{settings_fingerprint(self.settings, self.plan.codes, self.catalogue)}\0"
            f"{per_file!r}\0{where}".encode()
        ).hexdigest()
        cache = ResultCache(directory, key, secret)
        cache.load()
        return cache

    def _identity(self, source: SourceFile, packages: dict[str, str]) -> str:
        """What decides a file's results besides its content: the module it is (``pkg/__init__.py``
        appearing makes ``pkg/m.py`` module ``pkg.m``) and, for per-file-ignores, its path as given.

        ``packages`` memoises each directory's package name (``module_identity`` of its
        ``__init__.py``), so a directory's ``__init__.py`` chain is looked up once per run.
        """
        directory, name = os.path.split(source.absolute)
        package = packages.get(directory)
        if package is None:
            package = packages[directory] = module_identity(Path(directory, "__init__.py"))[0]
        shown = source.display if self.settings.per_file_ignores else ""
        return f"{package}\0{name}\0{shown}"

    def run(
        self,
        files: list[SourceFile],
        roots: Optional[Sequence[str]] = None,
        warnings: Sequence[str] = (),
        errors: Sequence[str] = (),
    ) -> LintResult:
        """Lint ``files``; ``--fix`` writes only below ``roots`` (by default, the files' own paths)."""
        with collector_paused():
            return self._run(files, tuple(roots) if roots is not None else None, warnings, errors)

    def _run(
        self,
        files: list[SourceFile],
        roots: Optional[Tuple[str, ...]] = None,
        found_warnings: Sequence[str] = (),
        found_errors: Sequence[str] = (),
    ) -> LintResult:
        self.roots = roots if roots is not None else tuple(source.absolute for source in files)
        candidates: list[tuple[int, SourceFile, bytes, str]] = []
        errors: list[str] = list(found_errors)
        skipped: dict[str, None] = dict.fromkeys(found_warnings)
        invalid: list[Finding] = []
        invalid_order: dict[str, int] = {}
        for order, source in enumerate(files):
            # the size limit is checked before reading: a huge file is never read whole
            data = self._read(source, invalid)
            if data is None:
                invalid_order[source.display] = order
                continue
            if isinstance(data, ReadProblem):
                if data.skipped:
                    skipped[f"{source.display}: {data.message}"] = None
                else:
                    errors.append(f"{source.display}: {data.message}")
                continue
            if may_contain_dl_code(data):
                candidates.append((order, source, data, content_hash(data)))

        phase_one: dict[int, PhaseOne] = {}
        to_parse: list[int] = []
        identities: dict[int, str] = {}
        packages: dict[str, str] = {}
        for position, (_, source, _, digest) in enumerate(candidates):
            cached = None
            if self.cache is not None:
                identities[position] = self._identity(source, packages)
                # a given text is parsed here (the checker would read the file when it comes from the cache)
                if source.absolute not in self.given:
                    cached = self._cached_phase_one(source, digest, identities[position])
            if cached is not None:
                phase_one[position] = cached
            else:
                to_parse.append(position)

        # a worker would read a given text's file from disk
        use_pool = self.jobs > 1 and len(to_parse) >= PARALLEL_THRESHOLD and not self.given
        pool = None
        checker: Optional[FileChecker] = None
        assignment: list[list[int]] = []
        tell = self.progress or (lambda phase, done, total: None)
        tell("Parsing", 0, len(to_parse))
        try:
            if use_pool:
                from nnlint.workers import WorkerPool, balance

                workers = min(self.jobs, len(to_parse))
                pool = WorkerPool(self.plan, workers, self.catalogue)
                groups = balance([len(candidates[p][2]) for p in to_parse], workers)
                assignment = [[to_parse[i] for i in group] for group in groups]
                replies = pool.summarize([[candidates[p][1] for p in group] for group in assignment])
                for group, reply in zip(assignment, replies):
                    phase_one.update(zip(group, reply))
                tell("Parsing", len(to_parse), len(to_parse))
            else:
                checker = FileChecker(self.plan, self.catalogue)
                for done, position in enumerate(to_parse, 1):
                    _, source, data, _ = candidates[position]
                    phase_one[position] = checker.summarize(source, data)
                    tell("Parsing", done, len(to_parse))

            # pre-commit passes only the changed files: the project modules they import are
            # summarised too (from the cache when unchanged), so the answer for a file is the one
            # ``nnlint .`` gives. They are indexed, never reported.
            context, importers = self._add_imported_modules(candidates, phase_one, identities, packages)
            self._displays = {source.display for _, source, _, _ in candidates}
            summaries = [p.summary for p in phase_one.values() if p.summary is not None]
            index = ProjectIndex(summaries)

            results: dict[int, PhaseTwo] = {}
            pending: list[int] = []
            dependencies: dict[int, str] = {}
            for position, (_, source, _, digest) in enumerate(candidates):
                if position in context and position not in importers:
                    continue
                first = phase_one[position]
                if position not in context:
                    errors.extend(first.errors)
                dependencies[position] = (
                    index.dependencies_fingerprint(first.summary) if first.summary else ""
                )
                entry = self.cache.get(source.absolute, digest, identities[position]) if self.cache else None
                if entry is not None and entry.findings is not None and entry.dependencies == dependencies[position]:
                    # The cache is keyed by real path; report the path as spelled in this run.
                    results[position] = PhaseTwo(tuple(self._relabel(f, source.display) for f in entry.findings))
                elif position not in context or self.check_dependants:
                    pending.append(position)

            tell("Checking", 0, len(pending))
            if pool is not None:
                # Files parsed by a worker are checked by the same worker; the rest are spread out.
                owner = {p: w for w, group in enumerate(assignment) for p in group}
                per_worker: list[list[int]] = [[] for _ in range(pool.size)]
                spare = 0
                for position in pending:
                    if position in owner:
                        per_worker[owner[position]].append(position)
                    else:
                        per_worker[spare % pool.size].append(position)
                        spare += 1
                replies2 = pool.check(
                    index,
                    [[(candidates[p][1], phase_one[p].findings) for p in group] for group in per_worker],
                )
                for group, reply2 in zip(per_worker, replies2):
                    results.update(zip(group, reply2))
                tell("Checking", len(pending), len(pending))
            else:
                checker = checker or FileChecker(self.plan, self.catalogue)
                for done, position in enumerate(pending, 1):
                    results[position] = checker.check(candidates[position][1], index, phase_one[position].findings)
                    tell("Checking", done, len(pending))
            checker = checker or FileChecker(self.plan, self.catalogue)
            for position in pending:  # NN002 (cached with the file's other findings)
                _, source, data, _ = candidates[position]
                results[position] = _with_unused(checker, source, data, phase_one[position], results[position], index)
        finally:
            if pool is not None:
                pool.close()

        fixed = 0
        if self.fix:
            fixed = self._apply_fixes(candidates, results, index, errors, context)

        findings: list[Finding] = list(invalid)
        warnings: dict[str, None] = skipped
        given = {source.display for position, (_, source, _, _) in enumerate(candidates) if position not in context}
        for position, (order, source, data, digest) in enumerate(candidates):
            if position in importers and position in results:
                # a file that imports a given one: only what it finds in the given files counts
                result = results[position]
                findings.extend(f for f in result.findings if f.path in given)
                if self.cache is not None and not result.errors and not result.warnings:
                    first = phase_one[position]
                    self.cache.put(source.absolute, CacheEntry(
                        digest, first.summary, first.findings, dependencies[position], result.findings,
                        identities[position]))
                continue
            if position in context:
                first = phase_one[position]
                if self.cache is not None and not first.errors and not first.warnings \
                        and self.cache.get(source.absolute, digest, identities[position]) is None:
                    self.cache.put(source.absolute, CacheEntry(digest, first.summary, first.findings,
                                                               None, None, identities[position]))
                continue
            result = results[position]
            errors.extend(result.errors)
            warnings.update(dict.fromkeys(phase_one[position].warnings + result.warnings))
            findings.extend(result.findings)
            if self.cache is not None and not result.errors and not result.warnings:
                first = phase_one[position]
                self.cache.put(
                    source.absolute,
                    CacheEntry(digest, first.summary, first.findings, dependencies[position], result.findings,
                               identities[position]),
                )
        if self.cache is not None:
            self.cache.save()
        # one activation can be reported from several losses and files: each place once
        findings = list({(f.path, f.line, f.column, f.code, f.message): f for f in findings}.values())
        if self._notebooks:
            findings = [self._in_cells(f) for f in findings]
        with_findings = {source_key(f.path, f.cell) for f in findings}
        sources = [(source.display, _text(source, data)) for _, source, data, _ in candidates
                   if source.display in with_findings and source.display not in self._notebooks]
        for notebook_path, notebook in self._notebooks.items():
            sources.extend((source_key(notebook_path, cell.number), cell.source) for cell in notebook.cells
                           if source_key(notebook_path, cell.number) in with_findings)
        order_of = {source.display: order for order, source, _, _ in candidates}
        order_of.update(invalid_order)
        findings.sort(key=lambda f: (order_of.get(f.path, 0),) + f.sort_key)
        return LintResult(
            findings=tuple(findings),
            files_seen=len(files),
            files_checked=len(candidates) - len(context),
            fixed=fixed,
            errors=tuple(errors),
            warnings=tuple(warnings),
            sources=tuple(sources),
            changes=tuple(self._changes),
        )

    def _read(self, source: SourceFile, invalid: list[Finding]) -> "bytes | ReadProblem | None":
        """The Python source of a file to lint; ``None`` for a notebook that is not valid (then
        an NN001 finding is added to ``invalid``, as for a file that does not parse)."""
        given = self.given.get(source.absolute)
        if not is_notebook(source.display):
            if given is not None and len(given) > MAX_FILE_BYTES:
                return ReadProblem(f"skipped: {len(given) / 1e6:.1f} MB is over the "
                                   f"{MAX_FILE_BYTES / 1e6:.0f} MB limit for one file", skipped=True)
            return given if given is not None else read_source(source.absolute)
        if given is not None and len(given) > MAX_NOTEBOOK_BYTES:
            loaded: "Notebook | ReadProblem | NotebookError" = ReadProblem(
                f"skipped: {len(given) / 1e6:.1f} MB is over the {MAX_NOTEBOOK_BYTES / 1e6:.0f} MB limit for a notebook",
                skipped=True)
        elif given is not None:
            try:
                loaded = load_notebook(given)
            except NotebookError as error:
                loaded = error
        else:
            loaded = read_notebook(source.absolute)
        if isinstance(loaded, ReadProblem):
            return loaded
        if isinstance(loaded, NotebookError):
            info = self.catalogue.by_code.get("NN001")
            if info is not None and info.code in self.plan.codes \
                    and info.code not in ignored_for_path(self.settings, source.display, self.catalogue):
                invalid.append(Finding(info.code, info.name, info.severity, loaded.message,  # type: ignore[arg-type]
                                       source.display, loaded.line, loaded.column, loaded.line, loaded.column))
            return None
        data = loaded.python.encode("utf-8")
        if len(data) > MAX_FILE_BYTES:
            return ReadProblem(f"skipped: {len(data) / 1e6:.1f} MB of code is over the "
                               f"{MAX_FILE_BYTES / 1e6:.0f} MB limit for one file", skipped=True)
        self._notebooks[source.display] = loaded
        return data

    def _in_cells(self, finding: Finding) -> Finding:
        """A finding in a notebook (and the places it names), placed in cells: ``cell``, line in the cell."""
        related = tuple(self._related_in_cells(place) for place in finding.related)
        notebook = self._notebooks.get(finding.path)
        placed = _place(notebook, finding.line, finding.column, finding.end_line, finding.end_column) \
            if notebook is not None else None
        if placed is None:
            return finding if related == finding.related else dataclasses.replace(finding, related=related)
        assert notebook is not None
        cell, line, column, end_line, end_column = placed
        fix = finding.fix
        if fix is not None:
            edits = []
            for edit in fix.edits:
                where = _place(notebook, edit.line, edit.column, edit.end_line, edit.end_column)
                edits.append(edit if where is None else Edit(where[1], where[2], where[3], where[4], edit.content,
                                                             where[0]))
            fix = Fix(fix.message, tuple(edits), fix.applicability)
        return dataclasses.replace(finding, line=line, column=column, end_line=end_line, end_column=end_column,
                                   cell=cell, fix=fix, related=related)

    def _related_in_cells(self, place: Related) -> Related:
        notebook = self._notebooks.get(place.path)
        placed = _place(notebook, place.line, place.column, place.end_line, place.end_column) \
            if notebook is not None else None
        if placed is None:
            return place
        cell, line, column, end_line, end_column = placed
        return dataclasses.replace(place, line=line, column=column, end_line=end_line, end_column=end_column,
                                   cell=cell)

    def _add_imported_modules(
        self,
        candidates: list[tuple[int, SourceFile, bytes, str]],
        phase_one: dict[int, PhaseOne],
        identities: dict[int, str],
        packages: dict[str, str],
    ) -> tuple[set[int], set[int]]:
        """Summarise the project files that import the linted ones and the modules all of these
        import (transitively, a few levels), appending them to ``candidates``; returns their
        positions, and those of the importers (checked too: a loss there may report an activation
        in a linted file)."""
        modules = self._project_modules()
        if not modules:
            return set(), set()
        present = {source.absolute for _, source, _, _ in candidates}
        added: set[int] = set()
        importers: set[int] = set()
        checkers: list[FileChecker] = []

        def first_phase(source: SourceFile, data: bytes, digest: str, identity: str) -> PhaseOne:
            cached = self._cached_phase_one(source, digest, identity)
            if cached is not None:
                return cached
            if not checkers:
                checkers.append(FileChecker(self.plan, self.catalogue))
            return checkers[0].summarize(source, data)

        def full() -> bool:
            return len(added) >= _MAX_CONTEXT_FILES

        def add(source: SourceFile, data: bytes, digest: str, identity: str, first: PhaseOne) -> int:
            position = len(candidates)
            candidates.append((position, source, data, digest))
            identities[position] = identity
            phase_one[position] = first
            present.add(source.absolute)
            added.add(position)
            return position

        # The files that import the given ones: what they pass to the given files' functions counts
        # there (``train(model, criterion)`` called from ``main.py``), and a loss in any of them may
        # report an activation of a given file; and, a few levels up, the files importing a model
        # made of them (``train.py`` trains a ``Transformer`` of ``transformer.py`` whose decoder is given).
        frontier = list(range(len(candidates)))
        # the other files of the project (read anyway) and their content hashes: indexed from the
        # cache below when unchanged
        others: list[tuple[SourceFile, str]] = []
        remember = self.cache is not None
        framework_files: list[tuple[SourceFile, bytes]] = []
        for sources in modules.values():
            for source in sources:
                if source.absolute in present:
                    continue
                data = read_source(source.absolute)
                if isinstance(data, ReadProblem):
                    continue
                if may_contain_dl_code(data):
                    framework_files.append((source, data))
                elif remember and len(data) <= _MAX_PLAIN_MODULE:  # a configuration module a run summarised
                    others.append((source, content_hash(data)))
        imported = list(range(len(candidates)))
        for _ in range(_IMPORT_DEPTH):
            given = {phase_one[p].summary.module for p in imported  # type: ignore[union-attr]
                     if phase_one[p].summary is not None and phase_one[p].summary.module}  # type: ignore[union-attr]
            raw_words = sorted({os.fsencode(module.rsplit(".", 1)[-1]) for module in given})
            if not raw_words:
                break
            words = [re.escape(word) for word in raw_words]
            # an import statement naming one of them (cheap to look for; only those files are parsed)
            importing = re.compile(rb"(?m)^[ \t]*(?:from|import)\b[^\n]*\b(?:" + b"|".join(words) + rb")\b")
            imported, rest = [], []
            for source, data in framework_files:
                if full() or not any(word in data for word in raw_words) or not importing.search(data):
                    rest.append((source, data))
                    continue
                digest, identity = content_hash(data), self._identity(source, packages)
                position = add(source, data, digest, identity, first_phase(source, data, digest, identity))
                summary = phase_one[position].summary
                targets = {*summary.bindings.values(), *summary.star_imports} if summary is not None else set()
                if any(t == m or t.startswith(m + ".") for t in targets for m in given):
                    frontier.append(position)
                    if summary is not None and summary.models:  # a model holding a given file's model
                        imported.append(position)
            framework_files = rest
            if not imported:
                break
        if remember:
            others.extend((source, content_hash(data)) for source, data in framework_files)
        # The project modules all of these import, a few levels deep (the models they define).
        for _ in range(_IMPORT_DEPTH):
            wanted: dict[str, SourceFile] = {}
            for position in frontier:
                summary = phase_one[position].summary
                for target in sorted({*summary.bindings.values(), *summary.star_imports}) if summary is not None else ():
                    for source in _module_files(modules, target):
                        if source.absolute not in present:
                            wanted.setdefault(source.absolute, source)
            frontier = []
            for source in wanted.values():
                if full():
                    break
                present.add(source.absolute)
                data = read_source(source.absolute)
                # a small module without framework code is read for its constants (``import CONFIG``)
                if isinstance(data, ReadProblem) or (not may_contain_dl_code(data) and len(data) > _MAX_PLAIN_MODULE):
                    continue
                digest, identity = content_hash(data), self._identity(source, packages)
                frontier.append(add(source, data, digest, identity, first_phase(source, data, digest, identity)))
            if not frontier:
                break
        # All of them are checked too: a loss in any of them may report an activation in a linted
        # file (``main.py`` passes ``model.Classifier()`` to ``train.fit``, whose loss it feeds).
        importers.update(added)
        # The rest of the project, where the cache knows it unchanged, is indexed and never checked:
        # the index is then the one ``nnlint .`` builds, so the checked files' dependency
        # fingerprints (which include who calls their functions) match the cached whole-tree results.
        indexed: set[int] = set()
        for source, digest in others:
            if source.absolute in present:
                continue
            identity = self._identity(source, packages)
            cached = self._cached_phase_one(source, digest, identity)
            if cached is not None:  # never checked, so its bytes are not kept
                indexed.add(add(source, b"", digest, identity, cached))
        added -= indexed
        return added | indexed, importers

    def _cached_phase_one(self, source: SourceFile, digest: str, identity: str) -> Optional[PhaseOne]:
        """Phase one of a file from the cache, its paths spelled as in this run (the cache is keyed by
        real path); ``None`` on a miss."""
        entry = self.cache.get(source.absolute, digest, identity) if self.cache is not None else None
        if entry is None:
            return None
        summary = entry.summary
        if summary is not None and summary.path != source.display:
            self._renamed[summary.path] = source.display
            summary = dataclasses.replace(summary, path=source.display)
        early = tuple(f if f.path == source.display else dataclasses.replace(f, path=source.display)
                      for f in entry.early)
        return PhaseOne(summary, early)

    def _relabel(self, finding: Finding, display: str) -> Finding:
        """A cached finding with the paths spelled as in this run (the cache is keyed by real path)."""
        path = self._renamed.get(finding.path, finding.path)
        if path not in self._displays:
            path = display  # this file, spelled differently when it was cached
        related = tuple(dataclasses.replace(r, path=self._renamed.get(r.path, r.path)) for r in finding.related)
        if path == finding.path and related == finding.related:
            return finding
        return dataclasses.replace(finding, path=path, related=related)

    def _project_modules(self) -> dict[str, list[SourceFile]]:
        """Dotted module name -> the project's files of that name (``{}`` outside a project).

        The project is the folder of the configuration, else the git work tree around the
        first path, else the one folder given; a file is named by its packages (``__init__.py`` up
        the tree) and by its path from the project folder or its ``src/`` (namespace packages, src
        layout)."""
        root = self.settings.root or _git_root(self.roots[0] if self.roots else os.getcwd())
        if root is None and len(self.roots) == 1 and os.path.isdir(self.roots[0]):
            root = self.roots[0]  # no configuration or repository: the folder given is the project
        if root is None:
            return {}
        root = Path(root).resolve()
        try:
            # spelled relative to the working directory when inside it, like the paths users give
            relative = os.path.relpath(root)
            found = find_sources([relative if not relative.startswith("..") else str(root)], self.settings)
        except (ConfigError, OSError):
            return {}
        if len(found.files) > _MAX_PROJECT_FILES:
            return {}
        modules: dict[str, list[SourceFile]] = {}
        packages: dict[str, str] = {}  # folder -> its dotted package ("" when not a package)
        bases = [str(root) + os.sep, str(root / "src") + os.sep]
        for source in found.files:
            folder, name = os.path.split(source.absolute)
            if is_notebook(name):
                continue  # a notebook cannot be imported
            stem = name.rsplit(".", 1)[0]
            package = _package_of(folder, packages)
            names = {package if stem == "__init__" else (f"{package}.{stem}" if package else stem)}
            for base in bases:  # by path too: namespace packages, src layout
                if source.absolute.startswith(base):
                    parts = source.absolute[len(base):].rsplit(".", 1)[0].split(os.sep)
                    if parts[-1] == "__init__":
                        parts.pop()
                    if parts and all(part.isidentifier() for part in parts):
                        names.add(".".join(parts))
            for module in names:
                if module:
                    modules.setdefault(module, []).append(source)
        return modules

    def _apply_fixes(
        self,
        candidates: list[tuple[int, SourceFile, bytes, str]],
        results: dict[int, PhaseTwo],
        index: ProjectIndex,
        errors: list[str],
        context: set[int],
    ) -> int:
        """Fix each given file in turn (never a file only read for context); a file that cannot be
        fixed is reported and the others still are. Writes the files unless told not to."""
        checker = FileChecker(self.plan, self.catalogue)
        total = 0
        for position, (order, source, data, _) in enumerate(candidates):
            result = results.get(position)
            if position in context or result is None or not any(f.fix for f in result.findings):
                continue
            try:
                notebook = self._notebooks.get(source.display)
                fixed = self._fix_notebook(checker, source, notebook, result, index) if notebook is not None \
                    else self._fix_file(checker, source, data, result, index)
                if fixed is not None and self.write:
                    self._write(source, fixed.after)
            except Exception as error:
                detail = str(error).splitlines()[0] if str(error) else type(error).__name__
                errors.append(f"{source.display}: not fixed: {detail}")
                continue
            if fixed is not None:
                if notebook is not None:
                    self._notebooks[source.display] = fixed.notebook  # type: ignore[assignment]
                candidates[position] = (order, source, fixed.data, content_hash(fixed.data))
                results[position] = fixed.result
                self._changes.append(FileChange(source.display, fixed.before, fixed.after, fixed.fixed))
                total += len(fixed.fixed)
        return total

    def _write(self, source: SourceFile, data: bytes) -> None:
        # The file was found below the paths given, but the tree may have changed since:
        # never write through a link or outside those paths.
        if not inside(source.absolute, self.roots) or os.path.realpath(source.absolute) != source.absolute:
            raise OSError("the file is no longer inside the linted paths")
        write_atomically(source.absolute, data)

    def _fix_file(
        self, checker: FileChecker, source: SourceFile, data: bytes, result: PhaseTwo, index: ProjectIndex
    ) -> Optional["_Fixed"]:
        """The file with its fixes applied and its results, or ``None`` if nothing applied."""
        from nnlint.fixes import fix_round

        try:
            decoded = decode_source(data)
        except Exception:
            return None
        text = decoded.text
        fixed: list[Finding] = []
        for _ in range(MAX_FIX_ROUNDS):
            outcome = fix_round(text, [f for f in result.findings if f.path == source.display], self.unsafe_fixes)
            if outcome is None:
                break
            text, applied = outcome
            fixed.extend(applied)
            new_data = encode_source(text, decoded)
            first = checker.summarize(source, new_data)
            result = _with_unused(checker, source, new_data, first, checker.check(source, index, first.findings), index)
        if not fixed:
            return None
        new_data = encode_source(text, decoded)
        return _Fixed(new_data, result, tuple(fixed), data, new_data)

    def _fix_notebook(
        self, checker: FileChecker, source: SourceFile, notebook: Notebook, result: PhaseTwo, index: ProjectIndex
    ) -> Optional["_Fixed"]:
        """:meth:`_fix_file` for a notebook: fixes are applied to the cells as written (magics
        kept) and only the changed cells' ``source`` is rewritten in the file."""
        from nnlint.fixes import fixable_findings, parses
        from nnlint.notebook import fix_cells, load_notebook, with_sources

        before = notebook.text.encode("utf-8")
        fixed: list[Finding] = []
        raw = before
        for _ in range(MAX_FIX_ROUNDS):
            own = [f for f in result.findings if f.path == source.display]
            outcome = fix_cells(notebook, fixable_findings(own, self.unsafe_fixes))
            if outcome is None:
                break
            cells, applied = outcome
            new_raw = with_sources(notebook, cells)
            new = load_notebook(new_raw)
            if new.python == notebook.python or not parses(new.python):
                break
            notebook, raw = new, new_raw
            fixed.extend(applied)
            python = notebook.python.encode("utf-8")
            first = checker.summarize(source, python)
            result = _with_unused(checker, source, python, first, checker.check(source, index, first.findings), index)
        if not fixed:
            return None
        return _Fixed(notebook.python.encode("utf-8"), result, tuple(fixed), before, raw, notebook)


@dataclass(frozen=True)
class _Fixed:
    """One file after ``--fix``: the Python source and results now, the file's bytes before and after."""

    data: bytes
    result: PhaseTwo
    fixed: Tuple[Finding, ...]
    before: bytes
    after: bytes
    notebook: Optional[Notebook] = None


def _place(notebook: Notebook, line: int, column: int, end_line: int, end_column: int
           ) -> Optional[tuple[int, int, int, int, int]]:
    """(cell, line, column, end line, end column) of a range in a notebook's joined code; a range
    that runs into the next cell ends with its first cell."""
    start = notebook.locate(line, column)
    if start is None:
        return None
    cell, line_in, column_in = start
    end = notebook.locate(end_line, end_column) if end_line >= 1 else None
    if end is not None and end[0] is cell and (end[1], end[2]) >= (line_in, column_in):
        end_in = end[1], end[2]
    elif end is not None and end[0] is not cell and end_line > line:  # it runs into a later cell
        last = _LINE_BREAK.split(cell.source)[cell.lines - 1]
        end_in = cell.lines, len(last) + 1
    else:
        end_in = line_in, column_in
    return cell.number, line_in, column_in, end_in[0], end_in[1]


def _with_unused(checker: FileChecker, source: SourceFile, data: bytes, first: PhaseOne, result: PhaseTwo,
                 index: ProjectIndex) -> PhaseTwo:
    """``result`` with NN002 for the suppression comments of the file that silenced nothing."""
    from nnlint.unused import CODE, unused_suppressions

    if CODE not in checker.plan.codes or (b"nnlint:" not in data.lower() and b"noqa" not in data.lower()):
        return result
    try:
        text = decode_source(data).text
    except Exception:  # not readable as Python: NN001 says so
        return result
    try:
        checkers: dict[tuple[str, ...], FileChecker] = {}

        def checker_for(codes: tuple[str, ...]) -> FileChecker:
            if codes not in checkers:
                checkers[codes] = FileChecker(dataclasses.replace(checker.plan, codes=codes), checker.catalogue)
            return checkers[codes]

        found = unused_suppressions(checker_for, checker.plan, checker.catalogue, source, text, first.summary, index)
    except Exception as error:  # a bug here must not cost the file's other findings
        from nnlint.checker import _internal_error

        return dataclasses.replace(result, errors=result.errors + (_internal_error(f"running {CODE}", source.display,
                                                                                   error),))
    if not found:
        return result
    return dataclasses.replace(result, findings=tuple(sorted((*result.findings, *found), key=lambda f: f.sort_key)))


def _module_files(modules: dict[str, list[SourceFile]], target: str) -> list[SourceFile]:
    """The files of the longest module prefix of ``target`` (``model.Net`` -> ``model.py``)."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        found = modules.get(".".join(parts[:end]))
        if found:
            return found
    return []


def _package_of(folder: str, memo: dict[str, str]) -> str:
    """The dotted package a folder is (``__init__.py`` up the tree, as the import system sees it)."""
    found = memo.get(folder)
    if found is None:
        parent, name = os.path.split(folder)
        if parent != folder and os.path.isfile(os.path.join(folder, "__init__.py")):
            above = _package_of(parent, memo)
            found = f"{above}.{name}" if above else name
        else:
            found = ""
        memo[folder] = found
    return found


def _git_root(start: str) -> Optional[Path]:
    """The git work tree around ``start``, if any."""
    try:
        path = Path(start).resolve()
        for directory in (path, *path.parents):
            if os.path.lexists(directory / ".git"):
                return directory
    except (OSError, RuntimeError):  # an unreadable folder or a link loop: no project to search
        return None
    return None


def _text(source: SourceFile, data: bytes) -> str:
    try:
        return decode_source(data).text
    except Exception:
        return data.decode("utf-8", errors="replace")
