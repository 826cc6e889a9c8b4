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
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence, Tuple, Union

from nnlint import __version__
from nnlint.cache import CacheEntry, ResultCache, content_hash
from nnlint.catalogue import Catalogue, load_catalogue
from nnlint.checker import CheckPlan, FileChecker, PhaseOne, PhaseTwo
from nnlint.collector import collector_paused
from nnlint.config import (
    ConfigError,
    Settings,
    enabled_codes,
    find_config,
    load_settings,
    rule_options,
    settings_fingerprint,
)
from nnlint.facts.index import ProjectIndex
from nnlint.files import SourceFile, decode_source, discover, encode_source, may_contain_dl_code, read_bytes, write_atomically
from nnlint.findings import Finding

#: Below this many files to parse, worker start-up costs more than it saves.
PARALLEL_THRESHOLD = 6
MAX_FIX_ROUNDS = 10


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
        return list(checker.check(file, index, first.findings).findings)


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
) -> LintResult:
    """Lint files and directories. Raises :class:`ConfigError` for bad paths or settings."""
    paths = list(paths) or ["."]
    catalogue = catalogue or load_catalogue()
    if settings is None:
        settings = discover_settings(paths, None, catalogue)
    settings = settings.with_overrides(
        select=_tuple(select), ignore=_tuple(ignore), extend_select=_tuple(extend_select)
    )
    plan = _plan(settings, catalogue)
    files = discover(paths, settings)
    return _Run(plan, catalogue, settings, jobs, use_cache, fix, unsafe_fixes).run(files)


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
    ) -> None:
        self.plan = plan
        self.catalogue = catalogue
        self.settings = settings
        self.jobs = max(1, jobs if jobs is not None else (os.cpu_count() or 1))
        self.fix = fix
        self.unsafe_fixes = unsafe_fixes
        self.cache: Optional[ResultCache] = None
        if use_cache and not fix:
            self.cache = self._open_cache()

    def _open_cache(self) -> ResultCache:
        root = self.settings.root or Path.cwd()
        directory = Path(self.settings.cache_dir) if self.settings.cache_dir else root / ".nnlint_cache"
        if not directory.is_absolute():
            directory = root / directory
        key = hashlib.sha256(
            f"{__version__}\0{settings_fingerprint(self.settings, self.plan.codes, self.catalogue)}\0"
            f"{self.plan.settings.per_file_ignores!r}".encode()
        ).hexdigest()
        cache = ResultCache(directory / __version__, key)
        cache.load()
        return cache

    def run(self, files: list[SourceFile]) -> LintResult:
        with collector_paused():
            return self._run(files)

    def _run(self, files: list[SourceFile]) -> LintResult:
        candidates: list[tuple[int, SourceFile, bytes, str]] = []
        errors: list[str] = []
        for order, source in enumerate(files):
            data = read_bytes(source.absolute)
            if data is None:
                errors.append(f"{source.display}: cannot read file")
                continue
            if may_contain_dl_code(data):
                candidates.append((order, source, data, content_hash(data)))

        phase_one: dict[int, PhaseOne] = {}
        to_parse: list[int] = []
        for position, (_, source, _, digest) in enumerate(candidates):
            entry = self.cache.get(source.absolute, digest) if self.cache else None
            if entry is not None:
                phase_one[position] = PhaseOne(entry.summary, entry.early)
            else:
                to_parse.append(position)

        use_pool = self.jobs > 1 and len(to_parse) >= PARALLEL_THRESHOLD
        pool = None
        checker: Optional[FileChecker] = None
        assignment: list[list[int]] = []
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
            else:
                checker = FileChecker(self.plan, self.catalogue)
                for position in to_parse:
                    _, source, data, _ = candidates[position]
                    phase_one[position] = checker.summarize(source, data)

            summaries = [p.summary for p in phase_one.values() if p.summary is not None]
            index = ProjectIndex(summaries)

            results: dict[int, PhaseTwo] = {}
            pending: list[int] = []
            dependencies: dict[int, str] = {}
            for position, (_, source, _, digest) in enumerate(candidates):
                first = phase_one[position]
                errors.extend(first.errors)
                dependencies[position] = (
                    index.dependencies_fingerprint(first.summary) if first.summary else ""
                )
                entry = self.cache.get(source.absolute, digest) if self.cache else None
                if entry is not None and entry.findings is not None and entry.dependencies == dependencies[position]:
                    # The cache is keyed by real path; report the path as spelled in this run.
                    results[position] = PhaseTwo(
                        tuple(dataclasses.replace(f, path=source.display) for f in entry.findings)
                    )
                else:
                    pending.append(position)

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
            else:
                checker = checker or FileChecker(self.plan, self.catalogue)
                for position in pending:
                    results[position] = checker.check(candidates[position][1], index, phase_one[position].findings)
        finally:
            if pool is not None:
                pool.close()

        fixed = 0
        if self.fix:
            fixed = self._apply_fixes(candidates, results, index)

        findings: list[Finding] = []
        sources: list[tuple[str, str]] = []
        warnings: dict[str, None] = {}
        for position, (order, source, data, digest) in enumerate(candidates):
            result = results[position]
            errors.extend(result.errors)
            warnings.update(dict.fromkeys(phase_one[position].warnings + result.warnings))
            findings.extend(result.findings)
            if self.cache is not None and not result.errors and not result.warnings:
                first = phase_one[position]
                self.cache.put(
                    source.absolute,
                    CacheEntry(digest, first.summary, first.findings, dependencies[position], result.findings),
                )
            if result.findings:
                sources.append((source.display, _text(source, data)))
        if self.cache is not None:
            self.cache.save()
        order_of = {source.display: order for order, source, _, _ in candidates}
        findings.sort(key=lambda f: (order_of.get(f.path, 0),) + f.sort_key)
        return LintResult(
            findings=tuple(findings),
            files_seen=len(files),
            files_checked=len(candidates),
            fixed=fixed,
            errors=tuple(errors),
            warnings=tuple(warnings),
            sources=tuple(sources),
        )

    def _apply_fixes(
        self,
        candidates: list[tuple[int, SourceFile, bytes, str]],
        results: dict[int, PhaseTwo],
        index: ProjectIndex,
    ) -> int:
        from nnlint.fixes import fixed_text

        checker = FileChecker(self.plan, self.catalogue)
        total = 0
        for position, (order, source, data, digest) in enumerate(candidates):
            result = results[position]
            if not any(f.fix for f in result.findings):
                continue
            try:
                decoded = decode_source(data)
            except Exception:
                continue
            text = decoded.text
            changed = False
            for _ in range(MAX_FIX_ROUNDS):
                outcome = fixed_text(text, result.findings, self.unsafe_fixes)
                if outcome is None:
                    break
                text, count = outcome
                total += count
                changed = True
                new_data = encode_source(text, decoded)
                first = checker.summarize(source, new_data)
                result = checker.check(source, index, first.findings)
            if changed:
                new_data = encode_source(text, decoded)
                write_atomically(source.absolute, new_data)
                candidates[position] = (order, source, new_data, content_hash(new_data))
                results[position] = result
        return total


def _text(source: SourceFile, data: bytes) -> str:
    try:
        return decode_source(data).text
    except Exception:
        return data.decode("utf-8", errors="replace")
