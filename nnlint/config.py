"""Settings: ``[tool.nnlint]`` in ``pyproject.toml``, overridden by command-line flags.

Keys (ruff's spelling): ``select``, ``ignore``, ``extend-select``, ``exclude``,
``extend-exclude``, ``per-file-ignores``, ``output-format``, ``cache-dir``,
``respect-gitignore``, and one table per rule for its options, named by code or rule name::

    [tool.nnlint]
    select = ["NN", "NN902"]
    ignore = ["NN101"]
    per-file-ignores = { "tests/*" = ["NN3"] }

    [tool.nnlint.NN102]           # or [tool.nnlint.saturating-activation-stack]
    max-depth = 4

    [tool.nnlint.monitor]         # runtime monitor settings (see nnlint.runtime)
    check-every = 1

A bad key, an unknown code or a bad option is a :class:`ConfigError` (exit 2) that
names the file, the key and a close match.
"""
from __future__ import annotations

import difflib
import fnmatch
import math
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping, Optional, Sequence, Tuple

from nnlint.catalogue import Catalogue, RuleInfo

OUTPUT_FORMATS = ("full", "concise", "json", "sarif", "github")
TOP_LEVEL_KEYS = (
    "select",
    "ignore",
    "extend-select",
    "exclude",
    "extend-exclude",
    "per-file-ignores",
    "output-format",
    "cache-dir",
    "respect-gitignore",
    "monitor",
)
DEFAULT_EXCLUDES = (
    ".git",
    ".hg",
    ".svn",
    ".tox",
    ".nox",
    ".venv",
    "venv",
    ".mypy_cache",
    ".pytest_cache",
    ".nnlint_cache",
    "__pycache__",
    ".ipynb_checkpoints",
    "build",
    "dist",
    "site-packages",
    "node_modules",
    "*.egg-info",
)


class ConfigError(ValueError):
    """A configuration or usage problem: exit code 2, one clear message.

    A ``ValueError``: ``nnlint.monitor(options=...)`` raises it for a bad option, as any
    Python API rejects a bad argument.
    """


@dataclass(frozen=True)
class Settings:
    select: Tuple[str, ...] = ()
    ignore: Tuple[str, ...] = ()
    extend_select: Tuple[str, ...] = ()
    exclude: Tuple[str, ...] = ()
    extend_exclude: Tuple[str, ...] = ()
    per_file_ignores: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()
    output_format: Optional[str] = None
    cache_dir: Optional[str] = None
    #: skip what ``.gitignore`` files (and ``.git/info/exclude``) ignore when walking folders
    respect_gitignore: bool = True
    #: rule code -> option name -> value (only what the user set; defaults come from the rule)
    rule_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    monitor: Mapping[str, Any] = field(default_factory=dict)
    #: directory of the pyproject.toml the settings came from (patterns are relative to it)
    root: Optional[Path] = None
    config_path: Optional[Path] = None

    def with_overrides(self, **changes: Any) -> "Settings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# -- selection ----------------------------------------------------------------

def _expand(selector: str, catalogue: Catalogue, source: str) -> set[str]:
    selector = selector.strip().upper()
    codes = [info.code for info in catalogue.static_rules]
    if not selector:
        # "" would otherwise be a prefix of every code and silently select everything.
        raise ConfigError(f"{source}: empty rule selector")
    if selector == "ALL":
        return set(codes)
    matched = {code for code in codes if code.startswith(selector)}
    if not matched:
        raise ConfigError(f"{source}: unknown rule selector {selector!r}{suggest(selector, codes)}")
    return matched


def _expand_opt_in_aware(selector: str, catalogue: Catalogue, source: str) -> set[str]:
    """Expand a selector; off-by-default (NN9xx) rules need ``ALL`` or a selector starting ``NN9``."""
    matched = _expand(selector, catalogue, source)
    wanted = selector.strip().upper()
    if wanted == "ALL":
        return matched
    # "NN" or "NN9"-style broad prefixes keep opinionated rules opt-in; "NN9", "NN90", "NN902" name them,
    # and so does any exact code (an off-by-default rule outside NN9 is still enabled by its own code).
    names_opt_in = (len(wanted) >= 3 and wanted[2] == "9") or wanted in catalogue.by_code
    return {code for code in matched if catalogue.by_code[code].default or names_opt_in}


def enabled_codes(settings: Settings, catalogue: Catalogue) -> frozenset[str]:
    """The static rule codes to run, ruff-style: select (or defaults) + extend-select - ignore."""
    source = str(settings.config_path or "settings")
    if settings.select:
        enabled: set[str] = set()
        for selector in settings.select:
            enabled |= _expand_opt_in_aware(selector, catalogue, source)
    else:
        enabled = {info.code for info in catalogue.static_rules if info.default}
    for selector in settings.extend_select:
        enabled |= _expand_opt_in_aware(selector, catalogue, source)
    for selector in settings.ignore:
        enabled -= _expand(selector, catalogue, source)
    return frozenset(enabled)


def ignored_for_path(settings: Settings, path: str, catalogue: Catalogue) -> frozenset[str]:
    """Codes that ``per-file-ignores`` switches off for ``path``."""
    if not settings.per_file_ignores:
        return frozenset()
    candidates = _match_forms(path, settings.root)
    ignored: set[str] = set()
    for pattern, selectors in settings.per_file_ignores:
        if any(_glob_match(form, pattern) for form in candidates):
            for selector in selectors:
                ignored |= _expand(selector, catalogue, "per-file-ignores")
    return frozenset(ignored)


def is_excluded(path: Path, settings: Settings) -> bool:
    """Does a file or directory match ``exclude``/``extend-exclude`` (or the defaults)?"""
    patterns = (settings.exclude or DEFAULT_EXCLUDES) + settings.extend_exclude
    name = path.name
    forms = _match_forms(str(path), settings.root)
    for pattern in patterns:
        if "/" not in pattern.rstrip("/"):
            if fnmatch.fnmatchcase(name, pattern.rstrip("/")):
                return True
        elif any(_glob_match(form, pattern.rstrip("/")) for form in forms):
            return True
    return False


def _match_forms(path: str, root: Optional[Path]) -> list[str]:
    posix = Path(path).as_posix()
    forms = [posix]
    absolute = Path(os.path.abspath(path))
    for base in filter(None, (root, Path.cwd())):
        try:
            forms.append(absolute.relative_to(os.path.abspath(base)).as_posix())
        except ValueError:
            pass
    forms.append(absolute.name)
    return forms


def _glob_match(path: str, pattern: str) -> bool:
    if not pattern.strip("/"):  # "" or "/": loading rejects them; settings built in code match nothing
        return False
    if fnmatch.fnmatchcase(path, pattern):
        return True
    # "dir/" or "dir" style patterns match everything below that directory.
    return PurePosixPath(path).match(pattern) or path.startswith(pattern.rstrip("/") + "/")


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'select'?)`` for the closest of ``choices``, or "" when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- loading ------------------------------------------------------------------

def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None


def find_config(start: Path) -> Optional[Path]:
    """The nearest ``pyproject.toml`` with a ``[tool.nnlint]`` table above ``start``."""
    start = Path(os.path.abspath(start))
    directory = start if start.is_dir() else start.parent
    for candidate_dir in (directory, *directory.parents):
        candidate = candidate_dir / "pyproject.toml"
        try:
            found = candidate.is_file()
        except OSError:  # a directory that cannot be searched: linting it reports that
            continue
        if found:
            try:
                data = _load_toml(candidate)
            except ConfigError:
                return candidate  # let load_settings report the broken file
            tool = data.get("tool")
            if isinstance(tool, dict) and "nnlint" in tool:
                return candidate
    return None


def _string_list(value: Any, path: Path, key: str) -> Tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: [tool.nnlint] {key} must be a list of strings")
    return tuple(value)


def _pattern_list(value: Any, path: Path, key: str) -> Tuple[str, ...]:
    """File patterns: strings that can name a path (not empty, no NUL)."""
    patterns = _string_list(value, path, key)
    for pattern in patterns:
        if not pattern.strip("/") or "\0" in pattern:
            raise ConfigError(f"{path}: [tool.nnlint] {key}: {pattern!r} is not a file pattern")
    return patterns


def load_settings(config_path: Optional[Path], catalogue: Catalogue) -> Settings:
    """Read and validate ``[tool.nnlint]``; no file means default settings."""
    if config_path is None:
        return Settings()
    tool = _load_toml(config_path).get("tool", {})
    if not isinstance(tool, dict):
        raise ConfigError(f"{config_path}: [tool] must be a table")
    data = tool.get("nnlint", {})
    if not isinstance(data, dict):
        raise ConfigError(f"{config_path}: [tool.nnlint] must be a table")
    by_name = {info.name: info for info in catalogue.rules}
    settings: dict[str, Any] = {}
    monitor_tables: dict[str, Any] = {}
    rule_options: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        info = catalogue.get(key) if isinstance(key, str) else None
        info = info or by_name.get(key)
        if info is not None:
            if not isinstance(value, dict):
                raise ConfigError(f"{config_path}: [tool.nnlint.{key}] must be a table of options")
            rule_options[info.code] = validate_options(info, value, str(config_path))
            continue
        if key not in TOP_LEVEL_KEYS:
            choices = list(TOP_LEVEL_KEYS) + [i.code for i in catalogue.rules] + list(by_name)
            raise ConfigError(f"{config_path}: unknown key {key!r} in [tool.nnlint]{suggest(key, choices)}")
        attr = key.replace("-", "_")
        if key in ("select", "ignore", "extend-select"):
            settings[attr] = _string_list(value, config_path, key)
        elif key in ("exclude", "extend-exclude"):
            settings[attr] = _pattern_list(value, config_path, key)
        elif key == "per-file-ignores":
            if not isinstance(value, dict):
                raise ConfigError(f"{config_path}: [tool.nnlint] per-file-ignores must be a table")
            _pattern_list(list(value), config_path, "per-file-ignores")
            settings[attr] = tuple(
                (pattern, _string_list(codes, config_path, f"per-file-ignores.{pattern}"))
                for pattern, codes in value.items()
            )
        elif key == "output-format":
            if value not in OUTPUT_FORMATS:
                raise ConfigError(
                    f"{config_path}: [tool.nnlint] output-format must be one of "
                    f"{', '.join(OUTPUT_FORMATS)}{suggest(str(value), OUTPUT_FORMATS)}"
                )
            settings[attr] = value
        elif key == "cache-dir":
            if not isinstance(value, str):
                raise ConfigError(f"{config_path}: [tool.nnlint] cache-dir must be a string")
            settings[attr] = _project_cache_dir(value, config_path)
        elif key == "respect-gitignore":
            if not isinstance(value, bool):
                raise ConfigError(f"{config_path}: [tool.nnlint] respect-gitignore must be true or false")
            settings[attr] = value
        elif key == "monitor":
            if not isinstance(value, dict):
                raise ConfigError(f"{config_path}: [tool.nnlint.monitor] must be a table")
            # [tool.nnlint.monitor.NR101] is a detector's option table, like [tool.nnlint.NR101]
            # (which it overrides); the monitor checks the other keys, which it alone knows.
            settings[attr] = {k: v for k, v in value.items() if not isinstance(v, dict)}
            monitor_tables = {k: v for k, v in value.items() if isinstance(v, dict)}
    for key, table in monitor_tables.items():
        info = runtime_rule(key, catalogue.runtime_rules, f"{config_path}: [tool.nnlint.monitor]")
        rule_options.setdefault(info.code, {}).update(validate_options(info, table, str(config_path)))
    result = Settings(
        **settings,
        rule_options=rule_options,
        root=config_path.parent,
        config_path=config_path,
    )
    # Validate every code named anywhere now, so a typo is an error (naming the key) before linting starts.
    for key in ("select", "ignore", "extend-select"):
        for selector in getattr(result, key.replace("-", "_")):
            _expand(selector, catalogue, f"{config_path}: [tool.nnlint] {key}")
    for pattern, selectors in result.per_file_ignores:
        for selector in selectors:
            _expand(selector, catalogue, f"{config_path}: [tool.nnlint] per-file-ignores {pattern!r}")
    enabled_codes(result, catalogue)
    return result


def _project_cache_dir(value: str, config_path: Path) -> str:
    """``cache-dir`` from a project's file: a directory strictly inside the project.

    A repository's configuration is not trusted: it must not make nnlint write (the cache,
    a ``.gitignore`` of ``*``) outside the project or over the project root itself.
    ``--cache-dir`` on the command line may point anywhere.
    """
    normal = os.path.normpath(value) if value and "\0" not in value else ""
    parts = PurePosixPath(normal.replace("\\", "/")).parts
    if (
        not normal
        or os.path.isabs(value)
        or os.path.splitdrive(value)[0]
        or value.startswith(("/", "\\", "~"))
        or normal == "."
        or ".." in parts
    ):
        raise ConfigError(
            f"{config_path}: [tool.nnlint] cache-dir must be a relative path to a directory inside the "
            f"project (below {config_path.parent}), got {value!r}; use --cache-dir for one elsewhere"
        )
    return value


def validate_options(info: RuleInfo, values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The options a user set for one rule or detector, checked: ``ConfigError`` otherwise.

    The one check for every option of every code, from ``[tool.nnlint.<code>]``,
    ``[tool.nnlint.monitor.<NRxxx>]`` and ``nnlint.monitor(options=...)`` alike; ``source``
    (a file, or the call) starts the message. Options are spelled in kebab-case
    (``max-depth``); the snake_case spelling (``max_depth``, natural in Python keyword
    style) is accepted and returned in kebab-case. Each value must have its default's type
    (an int for a float, never a bool for a number) and stay within the rule's
    ``option_ranges``.
    """
    code = info.code
    out: dict[str, Any] = {}
    for given, value in values.items():
        option = _option_name(given, info)
        if option not in info.options:
            raise ConfigError(
                f"{source}: unknown option {given!r} for {code} ({info.name})"
                f"{suggest(str(given).replace('_', '-'), info.options)}"
                + ("" if info.options else f"; {code} has no options")
            )
        if option in out:
            raise ConfigError(f"{source}: option {option!r} of {code} is given twice ({given!r})")
        default = info.options[option]
        # bool is an int subclass: `max-depth = true` must not pass as an int (nor 1 as a bool).
        wrong_bool = isinstance(value, bool) != isinstance(default, bool)
        if default is not None and (wrong_bool or (not isinstance(value, type(default)) and not (
            isinstance(default, float) and isinstance(value, int)
        ))):
            raise ConfigError(
                f"{source}: option {option!r} of {code} must be {type(default).__name__}, got {value!r}"
            )
        problem = _out_of_range(value, info.option_ranges.get(option, {}))
        if problem:
            raise ConfigError(f"{source}: option {option!r} of {code} must be {problem}, got {value!r}")
        out[option] = value
    return out


def _option_name(given: Any, info: RuleInfo) -> Any:
    """``max_depth`` -> ``max-depth`` where that is one of the rule's options."""
    if isinstance(given, str) and given not in info.options and given.replace("_", "-") in info.options:
        return given.replace("_", "-")
    return given


def runtime_rule(key: Any, infos: Iterable[RuleInfo], source: str) -> RuleInfo:
    """The detector a monitor option table is for, named by code (``NR101``, any case) or
    name (``exploding-gradients``), as ``[tool.nnlint.<key>]`` names a rule."""
    infos = list(infos)
    for info in infos:
        if (isinstance(key, str) and key.upper() == info.code) or key == info.name:
            return info
    choices = [info.code for info in infos] + [info.name for info in infos]
    word = str(key).upper() if str(key)[:2].upper() in ("NR", "NN") else str(key)
    raise ConfigError(f"{source}: unknown detector {key!r}{suggest(word, choices)}")


def option_values(info: RuleInfo, user: Mapping[str, Any]) -> dict[str, Any]:
    """What a rule or detector runs with: its class defaults, overridden by the user's
    values (already checked by :func:`validate_options`)."""
    options = dict(info.options)
    options.update(user)
    return options


def _out_of_range(value: Any, bounds: Mapping[str, Any]) -> str:
    """What ``value`` should be if it breaks ``bounds`` (a rule's ``option_ranges`` entry), else "".

    Every number must be finite (TOML has ``nan`` and ``inf``); ``bounds`` may add
    ``minimum``/``maximum`` (inclusive) and ``above``/``below`` (exclusive).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ""
    if not math.isfinite(value):
        return "a finite number"
    checks = (
        ("minimum", ">=", lambda limit: value >= limit),
        ("maximum", "<=", lambda limit: value <= limit),
        ("above", ">", lambda limit: value > limit),
        ("below", "<", lambda limit: value < limit),
    )
    for name, sign, holds in checks:
        limit = bounds.get(name)
        if limit is not None and not holds(limit):
            return f"{sign} {limit}"
    return ""


def rule_options(code: str, settings: Settings, catalogue: Catalogue) -> dict[str, Any]:
    """A rule's options: its defaults overridden by the user's settings."""
    return option_values(catalogue.by_code[code], settings.rule_options.get(code, {}))


def parse_selector_list(text: Optional[str]) -> Optional[Tuple[str, ...]]:
    """``--select NN1,NN201`` -> ``("NN1", "NN201")``."""
    if text is None:
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())


def settings_fingerprint(settings: Settings, codes: Sequence[str], catalogue: Catalogue) -> str:
    """What the result of linting one file depends on, besides its content and the index."""
    import hashlib
    import json

    options = {code: rule_options(code, settings, catalogue) for code in sorted(codes)}
    payload = json.dumps([sorted(codes), options, catalogue.fingerprint], sort_keys=True, default=repr)
    return hashlib.sha256(payload.encode()).hexdigest()
