"""The ``nnlint`` command.

    nnlint [check] [PATH ...] [options]     lint (default: the current directory)
    nnlint explain CODE                     a rule's documentation
    nnlint rules [--format json]            every rule: code, name, default, fixable
    nnlint clean [PATH]                     remove the project's result cache
    nnlint server                           the language server for editors (LSP on stdio)
    nnlint report EVENTS [--plot OUT]       summarise a monitored run's event log
    nnlint run [--mode M] script.py [ARGS]  run a training script with the runtime monitor

Exit status: 0 no findings, 1 findings, 2 usage, configuration or internal error.

Start-up time matters (pre-commit runs this on every commit): nothing heavy is
imported before it is needed. The engine (and with it libcst) loads only to lint;
``rich`` only to render ``explain`` on a terminal.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Optional, Sequence, TextIO

from nnlint import __version__
from nnlint.config import OUTPUT_FORMATS, ConfigError, parse_selector_list

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.catalogue import Catalogue, RuleInfo
    from nnlint.config import Settings
    from nnlint.engine import LintResult
    from nnlint.findings import Finding

SUBCOMMANDS = ("check", "explain", "rules", "clean", "server", "report", "run")
EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors say ``nnlint: error:`` and exit 2 like every other error."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"nnlint: error: {message}\n")


def _check_parser(prog: str) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="Lint neural-network code (PyTorch, Keras, TensorFlow).",
        epilog="Other commands: 'nnlint explain CODE' shows a rule's documentation; "
        "'nnlint rules' lists every rule; 'nnlint clean' removes the result cache; "
        "'nnlint server' runs the language server for editors; "
        "'nnlint run script.py' trains with the runtime monitor; 'nnlint report EVENTS' summarises its log. "
        "Exit status: 0 clean, 1 findings, 2 error.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files or directories (default: .)")
    parser.add_argument(
        "--format",
        "--output-format",
        dest="format",
        choices=OUTPUT_FORMATS,
        help="output format (default: 'output-format' from the configuration, else full on a terminal, concise otherwise)",
    )
    parser.add_argument("-o", "--output-file", metavar="FILE", help="write the report to FILE instead of standard output")
    parser.add_argument(
        "--stdin-filename",
        metavar="NAME",
        help="with '-' as the path: lint standard input as the file NAME (its configuration and "
        "per-file-ignores apply; with --fix the fixed text goes to standard output)",
    )
    parser.add_argument("--select", metavar="CODES", help="comma-separated codes or prefixes to enable (replaces the default set)")
    parser.add_argument("--extend-select", metavar="CODES", help="comma-separated codes or prefixes to enable in addition")
    parser.add_argument("--ignore", metavar="CODES", help="comma-separated codes or prefixes to disable")
    parser.add_argument("--config", metavar="PATH", help="pyproject.toml to read instead of the nearest one")
    parser.add_argument("--fix", action="store_true", help="apply safe fixes in place")
    parser.add_argument("--unsafe-fixes", action="store_true", help="with --fix or --diff, apply unsafe fixes too")
    parser.add_argument(
        "--diff", action="store_true",
        help="print a unified diff of what --fix would change and write nothing (exit 1 if there is any)",
    )
    parser.add_argument("--show-fixes", action="store_true", help="list what the fixes changed, per file and code")
    parser.add_argument(
        "--add-ignore", action="store_true",
        help="add a '# nnlint: ignore[CODE]' comment for each finding (merged into one already there)",
    )
    parser.add_argument("--baseline", metavar="FILE", help="report only findings not recorded in FILE (see --write-baseline)")
    parser.add_argument("--write-baseline", metavar="FILE", help="record today's findings in FILE and exit 0")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the result cache")
    parser.add_argument("--cache-dir", metavar="DIR", help="result cache directory (default: 'cache-dir' from the configuration, else .nnlint_cache)")
    parser.add_argument("--respect-gitignore", action=argparse.BooleanOptionalAction, default=None,
                        help="skip what .gitignore files ignore when walking folders (default: 'respect-gitignore' "
                             "from the configuration, else on)")
    parser.add_argument("-j", "--jobs", type=_positive_int, metavar="N", help="worker processes (default: CPU count)")
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 even when there are findings")
    parser.add_argument("--statistics", action="store_true", help="print the number of findings per code instead of the findings")
    parser.add_argument("-q", "--quiet", action="store_true", help="print findings only, no summary")
    parser.add_argument("-v", "--verbose", action="store_true", help="say what was checked; tracebacks for internal errors")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto", help="coloured output (default: auto)")
    parser.add_argument("--version", action="version", version=f"nnlint {__version__}")
    return parser


def _explain_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nnlint explain", description="Show a rule's documentation.")
    parser.add_argument("code", metavar="CODE", help="a rule code (NN201, NR101) or name")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    return parser


def _rules_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nnlint rules", description="List every rule (static NN and runtime NR).")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    return parser


def _clean_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nnlint clean",
        description="Remove the result cache of the project PATH belongs to (only a directory nnlint created).",
    )
    parser.add_argument("path", nargs="?", default=".", metavar="PATH", help="a file or directory of the project (default: .)")
    parser.add_argument("--config", metavar="PATH", help="pyproject.toml to read instead of the nearest one")
    parser.add_argument("--cache-dir", metavar="DIR", help="the cache directory to remove instead of the configured one")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in args or "--verbose" in args
    _tolerate_unencodable_output()
    try:
        return _dispatch(args)
    except ConfigError as error:
        print(f"nnlint: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # `nnlint ... | head`: the reader left; stop quietly and keep Python from
        # complaining while flushing stdout at exit.
        _silence_stdout()
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("nnlint: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # the promise: one line, no traceback (unless --verbose)
        if verbose:
            import traceback

            traceback.print_exc()
        detail = str(error).splitlines()[0] if str(error) else ""
        print(f"nnlint: internal error: {type(error).__name__}: {detail}".rstrip(), file=sys.stderr)
        return EXIT_ERROR


def _dispatch(args: list[str]) -> int:
    if args and args[0] == "explain":
        return _explain(_explain_parser().parse_args(args[1:]))
    if args and args[0] == "rules":
        return _rules(_rules_parser().parse_args(args[1:]))
    if args and args[0] == "clean":
        return _clean(_clean_parser().parse_args(args[1:]))
    if args and args[0] == "server":
        return _server(_server_parser().parse_args(args[1:]))
    if args and args[0] in ("report", "run"):
        from nnlint.integrations.commands import main as run_commands

        return run_commands(args[0], args[1:])
    if args and args[0] == "check":
        return _check(_check_parser("nnlint check").parse_args(args[1:]))
    return _check(_check_parser("nnlint").parse_args(args))


# -- check ---------------------------------------------------------------------

def _validate_selectors(flag: str, selectors: Optional[tuple[str, ...]], catalogue: "Catalogue") -> None:
    """An unknown code on the command line is an error that names the flag and a close match."""
    if not selectors:
        return
    static_codes = [info.code for info in catalogue.static_rules]
    for selector in selectors:
        wanted = selector.upper()
        if wanted == "ALL" or any(code.startswith(wanted) for code in static_codes):
            continue
        if catalogue.get(wanted) is not None:
            raise ConfigError(f"{flag}: {wanted} is a runtime rule; configure it for nnlint.monitor(), not the linter")
        raise ConfigError(f"{flag}: unknown rule selector {selector!r}{_did_you_mean(wanted, static_codes)}")


@dataclass(frozen=True)
class _Outcome:
    findings: tuple["Finding", ...]
    files_seen: int
    files_checked: int
    fixed: int = 0
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    sources: tuple[tuple[str, str], ...] = ()
    #: with --fix: what changed in each file (``nnlint.engine.FileChange``)
    changes: tuple[Any, ...] = ()

    @property
    def fixed_findings(self) -> "tuple[Finding, ...] | int":
        """The findings the fixes repaired (the summary counts them by severity), else how many."""
        found = tuple(f for change in self.changes for f in change.fixed)
        return found if len(found) == self.fixed else self.fixed


def _discover_settings(paths: Sequence[str], config: Optional[str], catalogue: "Catalogue") -> "Settings":
    """``--config``, else the nearest ``pyproject.toml`` with ``[tool.nnlint]`` above the first path.

    The same lookup as :func:`nnlint.engine.discover_settings`, without importing the engine.
    """
    from pathlib import Path

    from nnlint.config import find_config, load_settings

    if config is not None:
        if not os.path.isfile(config):
            raise ConfigError(f"{config}: configuration file not found")
        return load_settings(Path(config), catalogue)
    return load_settings(find_config(Path(paths[0])), catalogue)


def _without_dl_code(paths: Sequence[str], settings: "Settings") -> Optional[_Outcome]:
    """The result for explicitly named files none of which can contain DL code, else ``None``.

    pre-commit passes the changed files by name; when none of them mentions a DL
    framework there is nothing to parse, so the engine (and libcst) is not even imported.
    """
    if not all(os.path.isfile(path) for path in paths):
        return None
    from nnlint.files import discover, may_contain_dl_code, read_bytes

    files = discover(paths, settings)
    for file in files:
        data = read_bytes(file.absolute)
        if data is None or may_contain_dl_code(data):
            return None  # let the engine check (or report) it
    return _Outcome(findings=(), files_seen=len(files), files_checked=0)


def _lint(
    args: argparse.Namespace,
    paths: list[str],
    settings: "Settings",
    catalogue: "Catalogue",
    stdin: Optional[bytes] = None,
) -> _Outcome:
    select = parse_selector_list(args.select)
    ignore = parse_selector_list(args.ignore)
    extend_select = parse_selector_list(args.extend_select)
    for flag, selectors in (("--select", select), ("--ignore", ignore), ("--extend-select", extend_select)):
        _validate_selectors(flag, selectors, catalogue)
    shortcut = _without_dl_code(paths, settings) if stdin is None else None
    if shortcut is not None:
        return shortcut
    from nnlint.engine import lint_paths
    from nnlint.progress import progress_bar

    bar = progress_bar(sys.stderr, os.environ) if stdin is None else None
    try:
        result = lint_paths(
            paths,
            settings,
            select=select,
            ignore=ignore,
            extend_select=extend_select,
            jobs=args.jobs,
            use_cache=not args.no_cache,
            fix=args.fix or args.diff,
            unsafe_fixes=args.unsafe_fixes,
            catalogue=catalogue,
            write_fixes=not args.diff,
            stdin=stdin,
            per_file_config=args.config is None,
            progress=bar,
        )
    finally:
        if bar is not None:
            bar.close()
    return _Outcome(
        findings=tuple(result.findings),
        files_seen=result.files_seen,
        files_checked=result.files_checked,
        fixed=result.fixed,
        errors=tuple(result.errors),
        warnings=tuple(result.warnings),
        sources=tuple(getattr(result, "sources", ())),
        changes=tuple(result.changes),
    )


def _check(args: argparse.Namespace) -> int:
    from nnlint.catalogue import load_catalogue

    paths = _unique(args.paths) or ["."]
    stdin_name = _stdin_name(args)
    catalogue = load_catalogue()
    settings = _discover_settings(["." if stdin_name in (None, "-") else stdin_name], args.config, catalogue) \
        if stdin_name is not None else _discover_settings(paths, args.config, catalogue)
    if args.cache_dir is not None:
        settings = settings.with_overrides(cache_dir=_cache_dir_flag(args.cache_dir))
    settings = settings.with_overrides(respect_gitignore=args.respect_gitignore)
    stdin = _read_stdin() if stdin_name is not None else None
    baseline = _load_baseline(args)
    result = _lint(args, [stdin_name] if stdin_name is not None else paths, settings, catalogue, stdin)
    if args.write_baseline is not None:
        return _write_baseline(args, result)
    if baseline is not None:
        result = dataclasses.replace(result, findings=tuple(baseline.new_findings(result.findings, dict(result.sources))))
    if args.add_ignore:
        return _add_ignore(args, result)
    if args.diff:
        return _show_diff(args, result)
    if stdin is not None and args.fix:
        # an editor's "fix" round trip: the fixed text on standard output, the report on standard error
        _write_bytes(sys.stdout, result.changes[0].after if result.changes else stdin)
        report = _report_stream(args.output_file, sys.stderr)
    else:
        report = _report_stream(args.output_file, sys.stdout)
    try:
        _report(args, settings, catalogue, result, report)
        if args.show_fixes and result.changes:
            report.write(_fixes_list("Fixed", result.changes))
    finally:
        if report not in (sys.stdout, sys.stderr):
            report.close()
    if _print_problems(result):
        return EXIT_ERROR
    if result.findings and not args.exit_zero:
        return EXIT_FINDINGS
    return EXIT_OK


def _load_baseline(args: argparse.Namespace) -> Any:
    """``--baseline FILE`` read and checked (before linting: a bad file is an error at once)."""
    if args.write_baseline is not None and (args.fix or args.diff or args.baseline is not None):
        raise ConfigError("--write-baseline records findings as they are: not with --fix, --diff or --baseline")
    if args.add_ignore and (args.fix or args.diff or args.write_baseline is not None or args.stdin_filename is not None
                            or "-" in args.paths):
        raise ConfigError("--add-ignore edits the files linted: not with --fix, --diff, --write-baseline or '-'")
    if args.baseline is None:
        return None
    from nnlint.baseline import load_baseline

    return load_baseline(args.baseline)


def _write_baseline(args: argparse.Namespace, result: _Outcome) -> int:
    from nnlint.baseline import write_baseline

    for warning in result.warnings:
        print(f"nnlint: warning: {warning}", file=sys.stderr)
    for error in result.errors:
        print(f"nnlint: error: {error}", file=sys.stderr)
    if result.errors:  # a baseline without the files that failed would hide their findings later
        print(f"nnlint: error: {args.write_baseline} not written", file=sys.stderr)
        return EXIT_ERROR
    entries = write_baseline(args.write_baseline, result.findings, dict(result.sources))
    if not args.quiet:
        count = len(result.findings)
        print(f"Recorded {count} finding{'s' if count != 1 else ''} ({entries} entr{'ies' if entries != 1 else 'y'}) "
              f"in {args.write_baseline}", file=sys.stderr)
    return EXIT_OK


def _add_ignore(args: argparse.Namespace, result: _Outcome) -> int:
    """``--add-ignore``: the comments written; exits 0 when every finding got one (as ``ruff --add-noqa``)."""
    from nnlint.add_ignore import add_ignores

    added = add_ignores(result.findings, dict(result.sources))
    if not args.quiet:
        count, files = added.comments, len(added.files)
        print(f"Added {count} ignore comment{'s' if count != 1 else ''} to {files} file{'s' if files != 1 else ''}.",
              file=sys.stderr)
    if added.skipped:
        print(f"nnlint: warning: {added.skipped} finding(s) start on the line a multi-line string ends on: "
              "no comment can silence them", file=sys.stderr)
    for warning in result.warnings:
        print(f"nnlint: warning: {warning}", file=sys.stderr)
    for error in (*result.errors, *added.errors):
        print(f"nnlint: error: {error}", file=sys.stderr)
    return EXIT_ERROR if result.errors or added.errors else EXIT_OK


def _show_diff(args: argparse.Namespace, result: _Outcome) -> int:
    """``--diff``: what the fixes would change, as a unified diff; the findings are not listed."""
    from nnlint.report.text import count_by_severity

    out = _report_stream(args.output_file, sys.stdout)
    try:
        for change in result.changes:
            out.write(_file_diff(change.path, change.before, change.after))
        out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    fixed = [f.severity for change in result.changes for f in change.fixed]
    if not args.quiet:
        if args.show_fixes and result.changes:
            sys.stderr.write(_fixes_list("Would fix", result.changes))
        else:
            print(f"Would fix {count_by_severity(fixed)}." if fixed else "No fixes would be applied.",
                  file=sys.stderr)
    if _print_problems(result):
        return EXIT_ERROR
    return EXIT_FINDINGS if result.changes else EXIT_OK


def _file_diff(path: str, before: bytes, after: bytes) -> str:
    """A unified diff of one file; a notebook's, cell by cell (``--- nb.ipynb:cell 5``)."""
    from nnlint.notebook import NotebookError, is_notebook, load_notebook

    if is_notebook(path):
        try:
            old, new = load_notebook(before), load_notebook(after)
        except NotebookError:
            pass
        else:
            cells = {cell.number: cell.source for cell in old.cells}
            return "".join(
                _unified(cells.get(cell.number, ""), cell.source, f"{path}:cell {cell.number}")
                for cell in new.cells if cells.get(cell.number) != cell.source
            )
    return _unified(_decoded(before), _decoded(after), path)


def _decoded(data: bytes) -> str:
    from nnlint.files import decode_source

    try:
        return decode_source(data).text
    except Exception:
        return data.decode("utf-8", errors="replace")


def _unified(before: str, after: str, name: str) -> str:
    lines = []
    for line in difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True), name, name):
        lines.append(line if line.endswith(("\n", "\r")) else line + "\n\\ No newline at end of file\n")
    return "".join(lines)


def _fixes_list(verb: str, changes: Sequence[Any]) -> str:
    """``--show-fixes``: ``Fixed 3 findings:`` then, per file, how many of each code."""
    from collections import Counter

    total = sum(len(change.fixed) for change in changes)
    out = [f"{verb} {total} finding{'s' if total != 1 else ''}:\n"]
    for change in changes:
        out.append(f"- {change.path}:\n")
        counts = Counter((f.code, f.name) for f in change.fixed)
        for (code, name), count in sorted(counts.items()):
            out.append(f"    {count} \u00d7 {code} ({name})\n")
    return "".join(out)


def _report(
    args: argparse.Namespace, settings: "Settings", catalogue: "Catalogue", result: _Outcome, out: TextIO
) -> None:
    from nnlint.report import render, write_statistics

    fmt = args.format or settings.output_format or ("full" if _isatty(out) else "concise")
    color = {"always": True, "never": False}.get(args.color)
    if color is None and args.output_file is not None:
        color = False  # a report file gets escape codes only when asked (FORCE_COLOR is for terminals)
    if args.verbose:
        where = settings.config_path or "none (defaults)"
        print(
            f"nnlint: configuration: {where}; {result.files_seen} Python file(s) found, "
            f"{result.files_checked} checked",
            file=sys.stderr,
        )
    if args.statistics:
        write_statistics(result.findings, fmt, out, unsafe_fixes=args.unsafe_fixes)
    else:
        render(
            result.findings,
            fmt,
            out,
            catalogue=catalogue,
            sources=dict(result.sources),
            color=color,
            fixed=result.fixed_findings,
            summary=not args.quiet,
            unsafe_fixes=args.unsafe_fixes,
        )
    out.flush()


def _stdin_name(args: argparse.Namespace) -> Optional[str]:
    """The name standard input is linted as (``-`` when not given), or ``None`` when paths are linted."""
    if "-" not in args.paths:
        if args.stdin_filename is not None and not args.paths:
            return str(args.stdin_filename)  # as ruff: --stdin-filename alone reads standard input
        if args.stdin_filename is not None:
            raise ConfigError("--stdin-filename: only with '-' as the path (text from standard input)")
        return None
    if len(args.paths) > 1:
        raise ConfigError("'-' (standard input) cannot be linted together with other paths")
    name = args.stdin_filename if args.stdin_filename is not None else "-"
    if not name or "\0" in name:
        raise ConfigError(f"--stdin-filename: not a file name: {name!r}")
    return str(name)


def _read_stdin() -> bytes:
    stream = sys.stdin
    if stream is None:
        raise ConfigError("'-': there is no standard input to read")
    buffer = getattr(stream, "buffer", None)
    data = buffer.read() if buffer is not None else stream.read()
    return data if isinstance(data, bytes) else data.encode("utf-8")


def _write_bytes(stream: TextIO, data: bytes) -> None:
    """Bytes as they are (a file's own encoding and line breaks) on a text stream."""
    stream.flush()
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        buffer.write(data)
        buffer.flush()
    else:
        stream.write(data.decode("utf-8", errors="replace"))
        stream.flush()


def _report_stream(path: Optional[str], default: TextIO) -> TextIO:
    """``-o FILE`` (created with its folders), else ``default``."""
    if path is None:
        return default
    if not path or "\0" in path:
        raise ConfigError(f"--output-file: not a file name: {path!r}")
    try:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        return open(path, "w", encoding="utf-8", newline="")
    except OSError as error:
        raise ConfigError(f"--output-file: {path}: cannot write: {error.strerror or error}") from None


def _unique(paths: Sequence[str]) -> list[str]:
    """The same path twice (spelled alike) is linted once; the engine also dedupes by real path."""
    seen: set[str] = set()
    out: list[str] = []
    for path in paths:
        key = os.path.normpath(path)
        if key not in seen:
            seen.add(key)
            out.append(path)
    return out


def _print_problems(result: "LintResult") -> bool:
    """Print the run's warnings and errors on standard error; were there errors?"""
    for warning in result.warnings:
        print(f"nnlint: warning: {warning}", file=sys.stderr)
    for error in result.errors:
        print(f"nnlint: error: {error}", file=sys.stderr)
    return bool(result.errors)


def _cache_dir_flag(value: str) -> str:
    """``--cache-dir`` is the user's own choice: any directory, made absolute (which marks it as trusted)."""
    if not value or "\0" in value:
        raise ConfigError(f"--cache-dir: not a directory name: {value!r}")
    return os.path.abspath(os.path.expanduser(value))


# -- clean -----------------------------------------------------------------------

def _clean(args: argparse.Namespace) -> int:
    import shutil

    from nnlint.cache import cache_directory, is_nnlint_cache
    from nnlint.catalogue import load_catalogue

    settings = _discover_settings([args.path], args.config, load_catalogue())
    if args.cache_dir is not None:
        settings = settings.with_overrides(cache_dir=_cache_dir_flag(args.cache_dir))
    directory = cache_directory(settings)
    if directory is None:
        raise ConfigError("the configured cache directory is outside the project; nothing removed")
    if not os.path.lexists(directory):
        print(f"No cache to remove at {directory}")
        return EXIT_OK
    if os.path.islink(directory) or not directory.is_dir() or not is_nnlint_cache(directory):
        raise ConfigError(f"{directory}: not removed: not a cache directory created by nnlint (no CACHEDIR.TAG)")
    try:
        shutil.rmtree(directory)
    except OSError as error:
        raise ConfigError(f"{directory}: cannot remove: {error.strerror or error}") from None
    print(f"Removed {directory}")
    return EXIT_OK


# -- server --------------------------------------------------------------------

def _server_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nnlint server",
        description="Run the language server (LSP) on standard input/output; editors start it.",
    )
    parser.add_argument("--stdio", action="store_true", help="use standard input/output (the default and only transport)")
    return parser


def _server(args: argparse.Namespace) -> int:
    try:
        from nnlint.server import serve
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".")[0]
        if missing not in ("pygls", "lsprotocol", "cattrs", "attrs"):
            raise
        raise ConfigError(
            f"'nnlint server' needs pygls and lsprotocol ({missing} is not installed): "
            "pip install 'nnlint[server]'"
        ) from None
    return serve()


# -- explain / rules -----------------------------------------------------------

def _find_rule(word: str, catalogue: "Catalogue") -> "RuleInfo":
    info = catalogue.get(word.strip())
    if info is None:
        info = next((i for i in catalogue.rules if i.name == word.strip().lower()), None)
    if info is None:
        choices = [i.code for i in catalogue.rules] + [i.name for i in catalogue.rules]
        guess = word.strip().upper() if word.strip()[:2].upper() in ("NN", "NR") else word.strip().lower()
        raise ConfigError(f"unknown rule {word!r}{_did_you_mean(guess, choices)}; 'nnlint rules' lists them")
    return info


def _explain(args: argparse.Namespace) -> int:
    from nnlint.catalogue import load_catalogue

    info = _find_rule(args.code, load_catalogue())
    if args.format == "json":
        import json

        print(json.dumps(_rule_json(info, with_doc=True), indent=2, default=str))
        return EXIT_OK
    text = _explain_markdown(info)
    if _isatty(sys.stdout) and not os.environ.get("NO_COLOR"):
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(text))
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


def _explain_markdown(info: "RuleInfo") -> str:
    facts = [
        f"Severity: {info.severity}",
        f"on by default: {'yes' if info.default else 'no'}",
        f"fixable: {'yes' if info.fixable else 'no'}",
        f"{info.kind} rule",
    ]
    lines = [f"# {info.code}: {info.name}", "", " · ".join(facts)]
    if info.options:
        lines.append("")
        lines.append(
            "Options (defaults): "
            + ", ".join(f"`{name} = {value!r}`" for name, value in info.options.items())
        )
    lines += ["", info.doc.strip()]
    return "\n".join(lines) + "\n"


def _rule_json(info: "RuleInfo", with_doc: bool = False) -> dict[str, object]:
    data: dict[str, object] = {
        "code": info.code,
        "name": info.name,
        "kind": info.kind,
        "severity": info.severity,
        "default": info.default,
        "fixable": info.fixable,
        "summary": info.summary,
        "options": dict(info.options),
    }
    if with_doc:
        data["doc"] = info.doc
    return data


def _rules(args: argparse.Namespace) -> int:
    from nnlint.catalogue import load_catalogue

    catalogue = load_catalogue()
    if args.format == "json":
        import json

        print(json.dumps([_rule_json(info) for info in catalogue.rules], indent=2, default=str))
        return EXIT_OK
    rows = [("Code", "Name", "Kind", "Default", "Fix", "Severity", "Summary")]
    for info in catalogue.rules:
        rows.append(
            (
                info.code,
                info.name,
                info.kind,
                "on" if info.default else "off",
                "yes" if info.fixable else "no",
                info.severity,
                info.summary,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    out: TextIO = sys.stdout
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        out.write("  ".join(cells + [row[-1]]).rstrip() + "\n")
    return EXIT_OK


# -- helpers -------------------------------------------------------------------

def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _tolerate_unencodable_output() -> None:
    """On an ASCII-only terminal, escape characters it cannot show rather than crash."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        encoding = (getattr(stream, "encoding", "") or "").lower().replace("-", "")
        if reconfigure is not None and encoding != "utf8":
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
