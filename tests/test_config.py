"""``[tool.nnlint]``: loading, validation (errors name the file, the key and a close match),
rule selection by prefix, per-file-ignores, excludes and per-rule options.

A private catalogue (metadata only: the catalogue never imports rule files) gives the
tests a stable set of codes, independent of which real rules exist.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nnlint.catalogue import Catalogue, load_catalogue
from nnlint.config import (
    DEFAULT_EXCLUDES,
    ConfigError,
    Settings,
    enabled_codes,
    find_config,
    ignored_for_path,
    is_excluded,
    load_settings,
    parse_selector_list,
    rule_options,
    settings_fingerprint,
)

REPO = Path(__file__).resolve().parents[1]

RULE_TEMPLATE = '''"""
## What it does
Test rule {code}.
"""
from nnlint.rule import Rule


class R{code}(Rule):
    code = "{code}"
    name = "{name}"
    severity = "warning"
    default = {default}
    fixable = False
    options = {options}
'''

RULES = [
    ("NN001", "parse-error", True, {}),
    ("NN101", "sigmoid-stack", True, {"max-depth": 3, "ratio": 0.5, "strict": False, "names": ["a"]}),
    ("NN102", "saturating-activation-stack", True, {}),
    ("NN105", "quiet-rule", False, {}),
    ("NN201", "output-activation-applied-by-loss", True, {"anything": None}),
    ("NN202", "sigmoid-before-bce", True, {}),
    ("NN301", "missing-zero-grad", True, {}),
    ("NN901", "opinion-one", False, {}),
    ("NN902", "opinion-two", False, {}),
    ("NR101", "loss-is-nan", True, {"patience": 2}),
]


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    directory = tmp_path_factory.mktemp("catalogue")
    for code, name, default, options in RULES:
        filename = f"{code.lower()}_{name.replace('-', '_')}.py"
        (directory / filename).write_text(
            RULE_TEMPLATE.format(code=code, name=name, default=default, options=repr(options))
        )
    return load_catalogue(directory)


def write_config(directory: Path, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "pyproject.toml"
    path.write_text(textwrap.dedent(body))
    return path


def load(tmp_path: Path, body: str, catalogue: Catalogue) -> Settings:
    return load_settings(write_config(tmp_path, body), catalogue)


def error_of(tmp_path: Path, body: str, catalogue: Catalogue) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, body, catalogue)
    message = str(info.value)
    assert str(tmp_path / "pyproject.toml") in message, "the error must name the file"
    assert "\n" not in message
    return message


# -- finding the file -----------------------------------------------------------------

def test_nearest_pyproject_with_a_nnlint_table(tmp_path: Path) -> None:
    write_config(tmp_path, "[tool.nnlint]\nselect = ['NN1']\n")
    write_config(tmp_path / "sub", "[project]\nname = 'x'\n")  # no [tool.nnlint]: keep looking
    deep = tmp_path / "sub" / "pkg" / "deeper"
    deep.mkdir(parents=True)
    assert find_config(deep) == tmp_path / "pyproject.toml"
    assert find_config(deep / "model.py") == tmp_path / "pyproject.toml"
    write_config(tmp_path / "sub" / "pkg", "[tool.nnlint]\n")
    assert find_config(deep) == tmp_path / "sub" / "pkg" / "pyproject.toml"


def test_no_config_means_defaults(tmp_path: Path, catalogue: Catalogue) -> None:
    settings = load_settings(None, catalogue)
    assert settings == Settings()
    assert enabled_codes(settings, catalogue) == {"NN001", "NN101", "NN102", "NN201", "NN202", "NN301"}


def test_broken_toml_is_reported_with_the_file(tmp_path: Path, catalogue: Catalogue) -> None:
    path = write_config(tmp_path, "[tool.nnlint\nselect = \n")
    assert find_config(tmp_path) == path  # found, so that loading reports it
    message = error_of(tmp_path, "[tool.nnlint\nselect = \n", catalogue)
    assert "invalid TOML" in message


def test_tool_that_is_not_a_table(tmp_path: Path, catalogue: Catalogue) -> None:
    write_config(tmp_path, "tool = 3\n")
    assert find_config(tmp_path) is None
    assert "[tool] must be a table" in error_of(tmp_path, "tool = 3\n", catalogue)
    assert "must be a table" in error_of(tmp_path, "[tool]\nnnlint = 3\n", catalogue)


# -- validation errors ---------------------------------------------------------------

@pytest.mark.parametrize(
    "body, expected",
    [
        ("[tool.nnlint]\nselct = ['NN1']\n", ["'selct'", "did you mean 'select'"]),
        ("[tool.nnlint]\nper-file-ignore = {}\n", ["'per-file-ignore'", "did you mean 'per-file-ignores'"]),
        ("[tool.nnlint]\nselect = ['NN2O1']\n", ["select", "'NN2O1'", "did you mean 'NN201'"]),
        ("[tool.nnlint]\nignore = ['NN3O1']\n", ["ignore", "'NN3O1'", "did you mean 'NN301'"]),
        ("[tool.nnlint]\nextend-select = ['NN9O2']\n", ["extend-select", "did you mean 'NN902'"]),
        ("[tool.nnlint]\nselect = ['']\n", ["select", "empty rule selector"]),
        ("[tool.nnlint]\nselect = [1]\n", ["select must be a list of strings"]),
        ("[tool.nnlint]\nexclude = 'build'\nignore = {a = 1}\n", ["ignore must be a list of strings"]),
        ("[tool.nnlint]\nper-file-ignores = {'tests/*' = ['NN2O2']}\n", ["per-file-ignores", "'tests/*'", "did you mean 'NN202'"]),
        ("[tool.nnlint]\nper-file-ignores = ['x']\n", ["per-file-ignores must be a table"]),
        ("[tool.nnlint]\noutput-format = 'jsn'\n", ["output-format", "did you mean 'json'"]),
        ("[tool.nnlint]\ncache-dir = 3\n", ["cache-dir must be a string"]),
        ("[tool.nnlint]\nmonitor = 3\n", ["monitor", "must be a table"]),
        ("[tool.nnlint.NN101]\nmax-dept = 4\n", ["'max-dept'", "NN101", "did you mean 'max-depth'"]),
        ("[tool.nnlint.NN102]\ndepth = 4\n", ["'depth'", "NN102 has no options"]),
        ("[tool.nnlint.NN101]\nmax-depth = 'four'\n", ["'max-depth'", "must be int"]),
        ("[tool.nnlint.NN101]\nmax-depth = true\n", ["'max-depth'", "must be int"]),
        ("[tool.nnlint.NN101]\nstrict = 1\n", ["'strict'", "must be bool"]),
        ("[tool.nnlint.NN101]\nratio = 'half'\n", ["'ratio'", "must be float"]),
        ("[tool.nnlint]\nNN101 = 4\n", ["NN101", "must be a table of options"]),
        ("[tool.nnlint.NN1O1]\nmax-depth = 4\n", ["'NN1O1'", "did you mean 'NN101'"]),
        ("[tool.nnlint.sigmoid-stak]\nmax-depth = 4\n", ["'sigmoid-stak'", "did you mean 'sigmoid-stack'"]),
    ],
)
def test_bad_settings_name_file_key_and_close_match(
    tmp_path: Path, catalogue: Catalogue, body: str, expected: list[str]
) -> None:
    message = error_of(tmp_path, body, catalogue)
    for part in expected:
        assert part in message, message


# -- accepted settings --------------------------------------------------------------

def test_every_key_is_read(tmp_path: Path, catalogue: Catalogue) -> None:
    settings = load(
        tmp_path,
        """
        [tool.nnlint]
        select = ["NN1", "NN2"]
        ignore = "NN102"
        extend-select = ["NN301"]
        exclude = ["generated"]
        extend-exclude = ["legacy/"]
        per-file-ignores = { "tests/*" = ["NN2"], "scripts/run.py" = ["NN101"] }
        output-format = "json"
        cache-dir = ".cache/nnlint"

        [tool.nnlint.NN101]
        max-depth = 5
        ratio = 1

        [tool.nnlint.output-activation-applied-by-loss]
        anything = [1, 2]

        [tool.nnlint.monitor]
        check-every = 10
        """,
        catalogue,
    )
    assert settings.select == ("NN1", "NN2")
    assert settings.ignore == ("NN102",)
    assert settings.extend_select == ("NN301",)
    assert settings.exclude == ("generated",) and settings.extend_exclude == ("legacy/",)
    assert settings.per_file_ignores == (("tests/*", ("NN2",)), ("scripts/run.py", ("NN101",)))
    assert settings.output_format == "json" and settings.cache_dir == ".cache/nnlint"
    assert settings.monitor == {"check-every": 10}
    assert settings.root == tmp_path and settings.config_path == tmp_path / "pyproject.toml"
    assert enabled_codes(settings, catalogue) == {"NN101", "NN201", "NN202", "NN301"}
    assert rule_options("NN101", settings, catalogue) == {"max-depth": 5, "ratio": 1, "strict": False, "names": ["a"]}
    assert rule_options("NN201", settings, catalogue) == {"anything": [1, 2]}
    assert rule_options("NN102", settings, catalogue) == {}


def test_runtime_rule_options_are_validated_too(tmp_path: Path, catalogue: Catalogue) -> None:
    settings = load(tmp_path, "[tool.nnlint.NR101]\npatience = 5\n", catalogue)
    assert settings.rule_options == {"NR101": {"patience": 5}}
    assert "must be int" in error_of(tmp_path, "[tool.nnlint.NR101]\npatience = 'x'\n", catalogue)


def test_detector_options_are_checked_for_range_and_accept_the_snake_case_spelling(tmp_path: Path) -> None:
    real = load_catalogue()
    assert load(tmp_path, "[tool.nnlint.NR201]\nmax_dead_fraction = 0.7\n", real).rule_options == {
        "NR201": {"max-dead-fraction": 0.7}
    }
    assert "must be >= 1, got 0" in error_of(tmp_path, "[tool.nnlint.NR201]\nwindow = 0\n", real)
    assert "must be < 1, got 1.5" in error_of(tmp_path, "[tool.nnlint.NR401]\nlr-factor = 1.5\n", real)
    assert "must be <= 1" in error_of(tmp_path, "[tool.nnlint.dead-relu]\nmax-dead-fraction = 2\n", real)
    assert "must be a finite number" in error_of(tmp_path, "[tool.nnlint.NR101]\nclip-factor = inf\n", real)
    assert "must be bool" in error_of(tmp_path, "[tool.nnlint.NR201]\nswap-to-leaky = 1\n", real)
    assert "did you mean 'clip-factor'" in error_of(tmp_path, "[tool.nnlint.NR101]\nclip_factr = 2.0\n", real)
    twice = error_of(tmp_path, "[tool.nnlint.NR101]\nclip-factor = 2.0\nclip_factor = 3.0\n", real)
    assert "'clip-factor' of NR101 is given twice" in twice


def test_monitor_detector_tables_are_option_tables_too(tmp_path: Path) -> None:
    real = load_catalogue()
    settings = load(tmp_path, """\
        [tool.nnlint.NR101]
        warmup-steps = 3
        patience = 4

        [tool.nnlint.monitor]
        check-every = 5

        [tool.nnlint.monitor.NR101]   # overrides [tool.nnlint.NR101]
        warmup_steps = 5
        """, real)
    assert settings.monitor == {"check-every": 5}
    assert settings.rule_options == {"NR101": {"warmup-steps": 5, "patience": 4}}
    assert "must be int" in error_of(tmp_path, "[tool.nnlint.monitor.NR101]\npatience = 'x'\n", real)
    assert "must be >= 1" in error_of(tmp_path, "[tool.nnlint.monitor.dead-relu]\nwindow = -3\n", real)
    unknown = error_of(tmp_path, "[tool.nnlint.monitor.NR1O1]\npatience = 4\n", real)
    assert "unknown detector 'NR1O1'" in unknown and "did you mean 'NR101'" in unknown
    assert "unknown detector 'NN102'" in error_of(tmp_path, "[tool.nnlint.monitor.NN102]\nmax-depth = 4\n", real)


def test_every_option_is_spelled_in_kebab_case_with_ranges_for_its_own_options() -> None:
    import re

    for info in load_catalogue().rules:
        for option in info.options:
            assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", option), f"{info.code}: option {option!r}"
        assert set(info.option_ranges) <= set(info.options), info.code


def test_lowercase_code_table(tmp_path: Path, catalogue: Catalogue) -> None:
    settings = load(tmp_path, "[tool.nnlint.nn101]\nmax-depth = 2\n", catalogue)
    assert settings.rule_options == {"NN101": {"max-depth": 2}}


# -- selection ---------------------------------------------------------------------

@pytest.mark.parametrize(
    "select, extend, ignore, expected",
    [
        ((), (), (), {"NN001", "NN101", "NN102", "NN201", "NN202", "NN301"}),
        (("NN",), (), (), {"NN001", "NN101", "NN102", "NN201", "NN202", "NN301"}),
        (("NN2",), (), (), {"NN201", "NN202"}),
        (("nn20",), (), (), {"NN201", "NN202"}),
        (("NN201",), (), (), {"NN201"}),
        (("ALL",), (), (), {"NN001", "NN101", "NN102", "NN105", "NN201", "NN202", "NN301", "NN901", "NN902"}),
        (("all",), (), ("NN9",), {"NN001", "NN101", "NN102", "NN105", "NN201", "NN202", "NN301"}),
        (("NN9",), (), (), {"NN901", "NN902"}),
        (("NN1",), (), (), {"NN101", "NN102"}),  # NN105 is off by default: a prefix does not enable it
        (("NN105",), (), (), {"NN105"}),  # ... but its exact code does
        ((), ("NN902",), (), {"NN001", "NN101", "NN102", "NN201", "NN202", "NN301", "NN902"}),
        ((), ("NN",), (), {"NN001", "NN101", "NN102", "NN201", "NN202", "NN301"}),
        (("NN2",), ("NN301",), ("NN202",), {"NN201", "NN301"}),
        (("NN201",), (), ("NN2",), set()),
    ],
)
def test_prefix_selection(catalogue: Catalogue, select, extend, ignore, expected) -> None:
    settings = Settings(select=select, extend_select=extend, ignore=ignore)
    assert enabled_codes(settings, catalogue) == expected


def test_runtime_codes_are_not_static_selectors(catalogue: Catalogue) -> None:
    with pytest.raises(ConfigError, match="unknown rule selector 'NR101'"):
        enabled_codes(Settings(select=("NR101",)), catalogue)
    assert enabled_codes(Settings(select=("ALL",)), catalogue).isdisjoint({"NR101"})


def test_cli_overrides_replace_config(catalogue: Catalogue, tmp_path: Path) -> None:
    settings = load(tmp_path, "[tool.nnlint]\nselect = ['NN1']\nignore = ['NN101']\n", catalogue)
    overridden = settings.with_overrides(select=("NN2",), ignore=None, extend_select=None)
    assert overridden.ignore == ("NN101",) and overridden.select == ("NN2",)
    assert enabled_codes(overridden, catalogue) == {"NN201", "NN202"}


def test_parse_selector_list() -> None:
    assert parse_selector_list(None) is None
    assert parse_selector_list("NN1, NN201,,") == ("NN1", "NN201")


def test_fingerprint_depends_on_codes_and_options(catalogue: Catalogue) -> None:
    base = settings_fingerprint(Settings(), ["NN101"], catalogue)
    assert base == settings_fingerprint(Settings(), ["NN101"], catalogue)
    assert base != settings_fingerprint(Settings(), ["NN101", "NN201"], catalogue)
    changed = Settings(rule_options={"NN101": {"max-depth": 9}})
    assert base != settings_fingerprint(changed, ["NN101"], catalogue)


# -- per-file-ignores and excludes --------------------------------------------------

def test_per_file_ignores_match_relative_to_the_config(tmp_path: Path, catalogue: Catalogue, monkeypatch) -> None:
    settings = load(
        tmp_path,
        """
        [tool.nnlint]
        per-file-ignores = { "tests/*" = ["NN2"], "scripts/run.py" = ["NN101"], "*_gen.py" = ["NN1"] }
        """,
        catalogue,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # matching must not depend on the working directory
    assert ignored_for_path(settings, str(tmp_path / "tests" / "test_m.py"), catalogue) == {"NN201", "NN202"}
    assert ignored_for_path(settings, str(tmp_path / "scripts" / "run.py"), catalogue) == {"NN101"}
    assert ignored_for_path(settings, str(tmp_path / "src" / "model_gen.py"), catalogue) == {"NN101", "NN102", "NN105"}
    assert ignored_for_path(settings, str(tmp_path / "src" / "model.py"), catalogue) == frozenset()
    monkeypatch.chdir(tmp_path)
    assert ignored_for_path(settings, os.path.join("tests", "test_m.py"), catalogue) == {"NN201", "NN202"}


def test_default_excludes_and_exclude_replacing_them(tmp_path: Path) -> None:
    defaults = Settings(root=tmp_path)
    for name in (".git", ".venv", "venv", "build", "site-packages", "__pycache__", "nnlint.egg-info"):
        assert is_excluded(tmp_path / name, defaults), name
    assert not is_excluded(tmp_path / "src", defaults)
    custom = Settings(root=tmp_path, exclude=("generated", "legacy/old"))
    assert is_excluded(tmp_path / "generated", custom)
    assert is_excluded(tmp_path / "legacy" / "old", custom)
    assert is_excluded(tmp_path / "legacy" / "old" / "m.py", custom)
    assert not is_excluded(tmp_path / "legacy" / "new", custom)
    assert not is_excluded(tmp_path / "build", custom), "exclude replaces the defaults"
    extended = Settings(root=tmp_path, extend_exclude=("generated",))
    assert is_excluded(tmp_path / "build", extended) and is_excluded(tmp_path / "generated", extended)
    assert set(DEFAULT_EXCLUDES) >= {".git", "build", "site-packages"}


def test_real_catalogue_loads_every_rule_option_default() -> None:
    """Every real rule's option defaults must pass the config's own type check."""
    real = load_catalogue()
    for info in real.rules:
        assert isinstance(info.options, dict), info.code
        if info.options:
            # Writing the defaults back as user settings must be accepted unchanged.
            from nnlint.config import validate_options

            assert validate_options(info, info.options, "pyproject.toml") == dict(info.options)


# -- end to end through the command line ---------------------------------------------

def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "nnlint", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


def test_bad_config_is_exit_2_with_one_line(tmp_path: Path) -> None:
    write_config(tmp_path, "[tool.nnlint]\nselct = ['NN0']\n")
    (tmp_path / "m.py").write_text("import torch\n")
    done = run_cli(["m.py"], tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"nnlint: error: {tmp_path / 'pyproject.toml'}: unknown key 'selct' in [tool.nnlint] (did you mean 'select'?)"
    ]


def test_explicit_config_flag(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("import torch\nx = (\n")
    other = write_config(tmp_path / "conf", "[tool.nnlint]\nignore = ['NN001']\n")
    assert run_cli(["m.py"], tmp_path).returncode == 1
    assert run_cli(["--config", str(other), "m.py"], tmp_path).returncode == 0
    missing = run_cli(["--config", "nope.toml", "m.py"], tmp_path)
    assert missing.returncode == 2 and "nope.toml: configuration file not found" in missing.stderr


def test_output_format_from_config_and_flag_override(tmp_path: Path) -> None:
    write_config(tmp_path, "[tool.nnlint]\noutput-format = 'github'\n")
    (tmp_path / "m.py").write_text("import torch\nx = (\n")
    assert run_cli(["m.py"], tmp_path).stdout.startswith("::error file=m.py,line=2")
    assert run_cli(["--format", "concise", "m.py"], tmp_path).stdout.startswith("m.py:2:5: NN001")
