"""Reporters in isolation: every format, static and runtime findings, odd paths and text."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from nnlint.catalogue import load_catalogue
from nnlint.findings import Edit, Finding, Fix
from nnlint.report import FORMATS, UnknownFormat, render, write_report, write_statistics
from nnlint.report.github import annotation, escape_data, escape_property
from nnlint.report.sarif import path_to_uri, sarif_document
from nnlint.report.text import summary_lines

SARIF_SCHEMA = Path(__file__).resolve().parents[2] / "shared/data/sarif-schema-2.1.0.json"
CATALOGUE = load_catalogue()


def static(
    code: str = "NN001",
    message: str = "syntax error: '(' was never closed",
    path: str = "pkg/model.py",
    line: int = 2,
    column: int = 5,
    end_line: int = 2,
    end_column: int = 9,
    severity: str = "error",
    fix: Fix | None = None,
) -> Finding:
    return Finding(
        code=code,
        name="parse-error" if code == "NN001" else "test-rule",
        severity=severity,  # type: ignore[arg-type]
        message=message,
        path=path,
        line=line,
        column=column,
        end_line=end_line,
        end_column=end_column,
        fix=fix,
    )


RUNTIME = Finding(
    code="NR101",
    name="loss-is-nan",
    severity="error",
    message="loss became NaN",
    module="encoder.fc1",
    step=12,
    extra=(("value", float("nan")),),
)
SAFE_FIX = Fix("Use nn.Identity", (Edit(2, 5, 2, 9, "nn.Identity"),), "safe")
UNSAFE_FIX = Fix("Drop the softmax", (Edit(3, 1, 3, 5, ""),), "unsafe")


def output(findings, fmt: str, **kwargs) -> str:
    stream = io.StringIO()
    write_report(findings, fmt, stream, **kwargs)
    return stream.getvalue()


# -- concise / full ---------------------------------------------------------------

def test_concise_is_one_line_per_finding_and_a_summary() -> None:
    text = output([static(), static(line=7, column=1, message="second\nline")], "concise", color=False)
    assert text.splitlines() == [
        "pkg/model.py:2:5: NN001 syntax error: '(' was never closed",
        "pkg/model.py:7:1: NN001 second line",
        "Found 2 errors.",
    ]


def test_full_shows_the_line_and_underlines_the_range() -> None:
    source = "import torch\nx = (1,\n"
    text = output([static(end_column=8)], "full", sources={"pkg/model.py": source}, color=False)
    lines = text.splitlines()
    assert lines[0] == "pkg/model.py:2:5: NN001 syntax error: '(' was never closed"
    assert "2 | x = (1," in lines
    caret = next(line for line in lines if "^" in line)
    assert caret == "  |     ^^^ NN001"
    assert lines[-1] == "Found 1 error."


def test_full_caret_for_zero_width_range_and_tabs_and_wide_characters() -> None:
    source = "import torch\n\tname = '模型'; y = (\n"
    finding = static(line=2, column=15, end_line=2, end_column=16)  # the "y" after a tab and two wide chars
    text = output([finding], "full", sources={"pkg/model.py": source}, color=False)
    shown = next(line for line in text.splitlines() if line.startswith("2 |"))
    caret = next(line for line in text.splitlines() if "^" in line)
    assert "\t" not in shown
    # each of the two CJK characters is two terminal cells wide
    assert shown.index("y") + 2 == caret.index("^") and caret.endswith("^ NN001")
    zero = output([static(end_column=5)], "full", sources={"pkg/model.py": "a\nx = (1,\n"}, color=False)
    assert any(line.endswith("^ NN001") for line in zero.splitlines())


def test_full_multiline_range_and_crlf_source() -> None:
    source = "import torch\r\nhead = f(\r\n    1,\r\n)\r\n"
    finding = static(line=2, column=8, end_line=4, end_column=2)
    text = output([finding], "full", sources={"pkg/model.py": source}, color=False)
    assert "\r" not in text
    assert "2 | head = f(" in text and "4 | )" in text
    assert text.count("NN001") == 2  # header and the label under the last line


def test_full_long_range_is_abbreviated() -> None:
    source = "\n".join(f"line{i}" for i in range(1, 30)) + "\n"
    text = output([static(line=2, column=1, end_line=20, end_column=3)], "full", sources={"pkg/model.py": source}, color=False)
    assert " 2 | line2" in text and "20 | line20" in text and "line10" not in text


def test_full_without_source_or_out_of_range_line_still_reports() -> None:
    text = output([static(line=99)], "full", sources={"pkg/model.py": "x = 1\n"}, color=False)
    assert text.startswith("pkg/model.py:99:5: NN001") and "|" not in text


def test_full_marks_fixable_and_shows_help() -> None:
    text = output([static(fix=SAFE_FIX)], "full", color=False)
    assert "NN001 [*] syntax error" in text and "= help: Use nn.Identity" in text
    assert "Found 1 error (1 fixable with --fix)." in text


def test_summary_lines() -> None:
    assert summary_lines([], 0, False) == ["All checks passed!"]
    assert summary_lines([], 2, False) == ["Found 2 errors (2 fixed, 0 remaining)."]
    safe, unsafe = static(fix=SAFE_FIX), static(fix=UNSAFE_FIX)
    assert summary_lines([safe, static(), unsafe], 0, False) == [
        "Found 3 errors (1 fixable with --fix).",
        "1 hidden fix can be enabled with --unsafe-fixes.",
    ]
    assert summary_lines([safe, unsafe], 0, True) == ["Found 2 errors (2 fixable with --fix)."]
    assert summary_lines([unsafe], 1, False)[0] == "Found 2 errors (1 fixed, 1 remaining)."


def test_summary_counts_by_severity() -> None:
    errors = [static(), static(line=3)]
    warnings = [static(severity="warning", line=n) for n in range(4, 7)]
    info = static(severity="info", line=9)
    assert summary_lines(errors + warnings, 0, False) == ["Found 2 errors and 3 warnings."]
    assert summary_lines(warnings[:1], 0, False) == ["Found 1 warning."]
    assert summary_lines([*errors, warnings[0], info], 0, False) == ["Found 2 errors, 1 warning and 1 info finding."]
    assert summary_lines([static(severity="warning", fix=SAFE_FIX)], 0, False) == [
        "Found 1 warning (1 fixable with --fix)."]
    # the fixed findings are counted by their own severity
    assert summary_lines(warnings[1:], warnings[:1], False) == ["Found 3 warnings (1 fixed, 2 remaining)."]
    assert summary_lines([], [info, info], False) == ["Found 2 info findings (2 fixed, 0 remaining)."]
    assert summary_lines(errors, warnings, False) == ["Found 2 errors and 3 warnings (3 fixed, 2 remaining)."]
    text = output(errors + warnings, "concise", color=False)
    assert text.splitlines()[-1] == "Found 2 errors and 3 warnings."


def test_no_summary_when_asked() -> None:
    stream = io.StringIO()
    render([], "concise", stream, summary=False)
    assert stream.getvalue() == ""


def test_color_is_ansi_only_when_enabled(monkeypatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert "\x1b[" in output([static()], "concise", color=True)
    assert "\x1b[" not in output([static()], "concise", color=False)
    assert "\x1b[" not in output([static()], "concise")  # StringIO is not a terminal
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert "\x1b[" in output([static()], "concise")
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in output([static()], "concise")


def test_control_characters_in_source_are_not_echoed() -> None:
    source = "import torch\nx = '\x1b[31m' + (\n"
    text = output([static(column=17, end_column=18)], "full", sources={"pkg/model.py": source}, color=False)
    assert "\x1b" not in text


# -- runtime findings ---------------------------------------------------------------

def test_runtime_findings_in_text_formats() -> None:
    concise = output([RUNTIME], "concise", color=False)
    assert concise.splitlines()[0] == "runtime[step 12, encoder.fc1]: NR101 loss became NaN"
    full = output([RUNTIME], "full", color=False)
    assert full.startswith("runtime[step 12, encoder.fc1]: NR101 loss became NaN") and "|" not in full
    bare = Finding(code="NR102", name="x", severity="warning", message="m")
    assert output([bare], "concise", color=False).startswith("runtime: NR102 m")


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_accepts_static_and_runtime_findings(fmt: str) -> None:
    text = output([static(fix=SAFE_FIX), RUNTIME], fmt, catalogue=CATALOGUE, color=False)
    assert "NR101" in text and "NN001" in text


def test_unknown_format() -> None:
    with pytest.raises(UnknownFormat, match="choose from"):
        output([], "xml")


# -- json ----------------------------------------------------------------------------

def test_json_document_shape() -> None:
    data = json.loads(output([static(fix=SAFE_FIX), RUNTIME], "json"))
    assert set(data) == {"version", "findings"} and data["version"] == 1
    first, runtime = data["findings"]
    for key in ("code", "name", "severity", "message", "path", "line", "column", "end_line", "end_column", "fix"):
        assert key in first
    assert first["path"] == "pkg/model.py" and (first["line"], first["column"]) == (2, 5)
    assert first["fix"]["edits"][0]["content"] == "nn.Identity"
    assert first["fix"]["applicability"] == "safe"
    assert runtime["path"] == "" and runtime["line"] == 0 and runtime["fix"] is None
    assert runtime["module"] == "encoder.fc1" and runtime["step"] == 12
    assert Finding.from_json(first) == static(fix=SAFE_FIX)


def test_json_empty() -> None:
    assert json.loads(output([], "json")) == {"version": 1, "findings": []}


# -- github --------------------------------------------------------------------------

def test_github_annotation_levels_and_properties() -> None:
    assert annotation(static()) == (
        "::error file=pkg/model.py,line=2,col=5,endLine=2,endColumn=9,title=NN001::"
        "syntax error: '(' was never closed"
    )
    assert annotation(static(severity="warning")).startswith("::warning ")
    assert annotation(static(severity="info")).startswith("::notice ")


def test_github_escaping() -> None:
    assert escape_data("100%\r\nnext: a,b") == "100%25%0D%0Anext: a,b"
    assert escape_property("C:\\a,b%\n") == "C%3A\\a%2Cb%25%0A"
    line = annotation(static(path="we,ird:dir/50%.py", message="a\nb: 5%, c"))
    assert line.startswith("::error file=we%2Cird%3Adir/50%25.py,line=2,")
    assert line.endswith("::a%0Ab: 5%25, c")
    assert "\n" not in line


def test_github_runtime_finding_has_no_file() -> None:
    line = annotation(RUNTIME)
    assert line == "::error title=NR101::loss became NaN (step 12, module encoder.fc1)"


# -- sarif ---------------------------------------------------------------------------

SARIF_LEVELS = {"none", "note", "warning", "error"}


def _check_region(region: dict) -> None:
    assert set(region) <= {"startLine", "startColumn", "endLine", "endColumn"}, region
    assert all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in region.values()), region
    assert "startLine" in region, region
    if "endLine" in region:
        assert region["endLine"] >= region["startLine"], region
        if region["endLine"] == region["startLine"] and "endColumn" in region:
            assert region["endColumn"] >= region.get("startColumn", 1), region


def _check_physical_location(physical: dict) -> None:
    artifact = physical["artifactLocation"]
    assert isinstance(artifact["uri"], str) and artifact["uri"], physical
    assert " " not in artifact["uri"] and "\\" not in artifact["uri"], artifact  # a URI reference
    if "region" in physical:
        _check_region(physical["region"])


def _check_sarif_structure(document: dict) -> None:
    """What SARIF 2.1.0 viewers rely on, checked without the official schema (which a plain checkout lacks)."""
    assert document["version"] == "2.1.0"
    assert isinstance(document["$schema"], str) and document["$schema"].startswith("https://")
    assert "sarif" in document["$schema"] and "2.1.0" in document["$schema"]
    assert isinstance(document["runs"], list) and len(document["runs"]) == 1
    run = document["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "nnlint" and isinstance(driver.get("version", ""), str)
    rules = driver["rules"]
    ids = [rule["id"] for rule in rules]
    assert len(set(ids)) == len(ids), "rule ids must be unique"
    for rule in rules:
        assert isinstance(rule["id"], str) and rule["id"], rule
        assert isinstance(rule["shortDescription"]["text"], str) and rule["shortDescription"]["text"], rule
        if rule["id"] in CATALOGUE.by_code:  # documented rules carry their documentation
            assert isinstance(rule["help"]["markdown"], str) and rule["help"]["markdown"], rule["id"]
            assert isinstance(rule["help"]["text"], str), rule["id"]
        level = rule.get("defaultConfiguration", {}).get("level", "warning")
        assert level in SARIF_LEVELS, rule
    assert isinstance(run["results"], list)
    for result in run["results"]:
        assert isinstance(result["ruleId"], str) and result["ruleId"] in ids, result
        if "ruleIndex" in result:
            assert ids[result["ruleIndex"]] == result["ruleId"], result
        assert result["level"] in SARIF_LEVELS, result
        assert isinstance(result["message"]["text"], str) and result["message"]["text"], result
        locations = result.get("locations", [])
        assert isinstance(locations, list)
        for location in locations:
            assert "physicalLocation" in location or "logicalLocations" in location, location
            if "physicalLocation" in location:
                _check_physical_location(location["physicalLocation"])
            for logical in location.get("logicalLocations", []):
                assert isinstance(logical["fullyQualifiedName"], str), logical
        for related in result.get("relatedLocations", []):
            _check_physical_location(related["physicalLocation"])
            if "message" in related:
                assert isinstance(related["message"]["text"], str), related
        for fix in result.get("fixes", []):
            for change in fix["artifactChanges"]:
                assert isinstance(change["artifactLocation"]["uri"], str), change
                for replacement in change["replacements"]:
                    _check_region(replacement["deletedRegion"])
                    assert isinstance(replacement.get("insertedContent", {}).get("text", ""), str), replacement
    for base in run.get("originalUriBaseIds", {}).values():
        assert base["uri"].endswith("/"), base


def _official_schema_missing() -> str | None:
    """Why the official schema cannot be used here (``None``: it can)."""
    if not SARIF_SCHEMA.is_file():
        return f"the official SARIF 2.1.0 schema is not at {SARIF_SCHEMA} (only some checkouts have ../shared/data)"
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        return "jsonschema is not installed (pip install -e '.[test]')"
    return None


def _validate(document: dict) -> None:
    """The structure always; the official schema too where it and jsonschema are available."""
    _check_sarif_structure(document)
    if _official_schema_missing() is None:
        import jsonschema

        schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
        jsonschema.validate(document, schema, cls=jsonschema.Draft7Validator)


def test_sarif_validates_and_describes_rules_from_the_catalogue() -> None:
    findings = [static(fix=SAFE_FIX), static(code="NN001", line=3, column=1, end_column=1, severity="error"), RUNTIME]
    text = output(findings, "sarif", catalogue=CATALOGUE)
    document = json.loads(text)
    _validate(document)
    assert document["version"] == "2.1.0"
    run = document["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules][: len(CATALOGUE.rules)] == [i.code for i in CATALOGUE.rules]
    nn001 = rules[[r["id"] for r in rules].index("NN001")]
    info = CATALOGUE.by_code["NN001"]
    assert nn001["help"]["markdown"] == info.doc and nn001["help"]["text"] == info.doc
    assert nn001["shortDescription"]["text"] == info.summary
    assert nn001["defaultConfiguration"]["level"] == "error"
    result = run["results"][0]
    assert rules[result["ruleIndex"]]["id"] == result["ruleId"] == "NN001"
    assert result["level"] == "error" and result["message"]["text"] == findings[0].message
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "pkg/model.py"
    assert location["region"] == {"startLine": 2, "startColumn": 5, "endLine": 2, "endColumn": 9}
    assert result["fixes"][0]["artifactChanges"][0]["replacements"][0]["insertedContent"]["text"] == "nn.Identity"
    runtime = run["results"][2]
    assert rules[runtime["ruleIndex"]]["id"] == "NR101"
    assert runtime["properties"]["step"] == 12
    assert runtime["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "encoder.fc1"


def test_sarif_levels_and_unknown_rule_get_a_descriptor() -> None:
    findings = [static(code="NN899", severity="info"), static(code="NN898", severity="warning")]
    document = sarif_document(findings, CATALOGUE)
    _validate(document)
    run = document["runs"][0]
    ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert [r["level"] for r in run["results"]] == ["note", "warning"]
    assert [ids[r["ruleIndex"]] for r in run["results"]] == ["NN899", "NN898"]


@pytest.mark.parametrize(
    "path, uri",
    [
        ("src/model.py", "src/model.py"),
        ("my dir/50% #1?.py", "my%20dir/50%25%20%231%3F.py"),
        ("c:model.py", "c%3Amodel.py"),
        ("модель.py", "%D0%BC%D0%BE%D0%B4%D0%B5%D0%BB%D1%8C.py"),
        ("../up/m.py", "../up/m.py"),
    ],
)
def test_sarif_relative_uris_are_percent_encoded(path: str, uri: str) -> None:
    assert path_to_uri(path) == (uri, "%SRCROOT%")
    document = sarif_document([static(path=path)], CATALOGUE)
    _validate(document)
    location = document["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location == {"uri": uri, "uriBaseId": "%SRCROOT%"}
    assert document["runs"][0]["originalUriBaseIds"]["%SRCROOT%"]["uri"].endswith("/")


def test_sarif_absolute_path_is_a_file_uri(tmp_path: Path) -> None:
    path = str(tmp_path / "a b.py")
    uri, base = path_to_uri(path)
    assert base is None and uri.startswith("file:///") and uri.endswith("/a%20b.py")
    document = sarif_document([static(path=path)], CATALOGUE)
    _validate(document)
    assert "originalUriBaseIds" not in document["runs"][0]


def test_sarif_without_findings_validates() -> None:
    document = json.loads(output([], "sarif", catalogue=CATALOGUE))
    _validate(document)
    assert document["runs"][0]["results"] == []


def test_sarif_loads_the_catalogue_when_not_given() -> None:
    document = json.loads(output([static()], "sarif"))
    _validate(document)
    assert "NN001" in [r["id"] for r in document["runs"][0]["tool"]["driver"]["rules"]]


def test_sarif_of_the_bundled_examples_is_well_formed(monkeypatch: pytest.MonkeyPatch) -> None:
    import nnlint

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    result = nnlint.lint_paths(["examples"], use_cache=False, jobs=1)
    assert result.findings and not result.errors
    document = json.loads(output(result.findings, "sarif", catalogue=CATALOGUE))
    _validate(document)
    results = document["runs"][0]["results"]
    assert len(results) == len(result.findings)
    assert {r["ruleId"] for r in results} == {f.code for f in result.findings}
    for finding, sarif in zip(result.findings, results):
        region = sarif["locations"][0]["physicalLocation"]["region"]
        assert (region["startLine"], region["startColumn"]) == (finding.line, finding.column)
        assert sarif["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == finding.path.replace(os.sep, "/")


def _mutated(document: dict, change) -> dict:
    copy = json.loads(json.dumps(document))
    change(copy)
    return copy


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(version="2.0.0"),
        lambda d: d.pop("$schema"),
        lambda d: d["runs"][0]["tool"]["driver"].pop("name"),
        lambda d: d["runs"][0]["tool"]["driver"]["rules"][0].pop("shortDescription"),
        lambda d: d["runs"][0]["tool"]["driver"]["rules"][0]["help"].pop("markdown"),
        lambda d: d["runs"][0]["results"][0].update(level="fatal"),
        lambda d: d["runs"][0]["results"][0].update(ruleIndex=1),
        lambda d: d["runs"][0]["results"][0]["message"].pop("text"),
        lambda d: d["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"].pop("uri"),
        lambda d: d["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"].update(startLine=0),
        lambda d: d["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"].update(endLine=1),
        lambda d: d["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"].update(endColumn=2),
        lambda d: d["runs"][0]["results"][0].update(relatedLocations=[{"physicalLocation": {"artifactLocation": {}}}]),
    ],
)
def test_the_sarif_structure_check_rejects_broken_documents(change) -> None:
    document = sarif_document([static(fix=SAFE_FIX)], CATALOGUE)
    _check_sarif_structure(document)
    with pytest.raises((AssertionError, KeyError, IndexError)):
        _check_sarif_structure(_mutated(document, change))


def test_sarif_matches_the_official_schema(tmp_path: Path) -> None:
    """Documents like the ones the tests above check, against the official schema (where a checkout has it)."""
    missing = _official_schema_missing()
    if missing is not None:
        pytest.skip(f"{missing}; the SARIF structure is still checked by the other SARIF tests")
    documents = [
        sarif_document([static(fix=SAFE_FIX), static(line=3, column=1, end_column=1), RUNTIME], CATALOGUE),
        sarif_document([static(code="NN899", severity="info"), static(code="NN898", severity="warning")], CATALOGUE),
        sarif_document([static(path="my dir/50% #1?.py"), static(path=str(tmp_path / "a b.py"))], CATALOGUE),
        sarif_document([], CATALOGUE),
    ]
    import jsonschema

    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    for document in documents:
        jsonschema.validate(document, schema, cls=jsonschema.Draft7Validator)


# -- statistics ---------------------------------------------------------------------

def test_statistics_table_and_json() -> None:
    findings = [static(), static(line=3), static(code="NN899", fix=SAFE_FIX)]
    stream = io.StringIO()
    write_statistics(findings, "concise", stream)
    assert stream.getvalue().splitlines() == ["2\tNN001\t    parse-error", "1\tNN899\t[*] test-rule"]
    stream = io.StringIO()
    write_statistics(findings, "json", stream)
    assert json.loads(stream.getvalue()) == [
        {"code": "NN001", "name": "parse-error", "count": 2, "fixable": False},
        {"code": "NN899", "name": "test-rule", "count": 1, "fixable": True},
    ]


def test_reporters_do_not_import_heavy_modules() -> None:
    import subprocess
    import sys

    code = (
        "import io, sys\n"
        "from nnlint.report import write_report\n"
        "from nnlint.findings import Finding\n"
        "f = Finding('NN001', 'parse-error', 'error', 'm', 'a.py', 1, 1, 1, 2)\n"
        "for fmt in ('full', 'concise', 'json', 'github', 'sarif'):\n"
        "    write_report([f], fmt, io.StringIO())\n"
        "print(sorted(m for m in ('libcst', 'rich', 'torch', 'nnlint.engine') if m in sys.modules))\n"
    )
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=repo)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
