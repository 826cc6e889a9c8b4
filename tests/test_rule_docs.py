"""The catalogue keeps itself honest: code, file name, name and doc agree, and every
static rule's doc examples are run as tests.

In an ``## Example`` block each line ending in ``# NN201`` must produce exactly that
finding on that line (and nothing else of that code); a ``## Use instead`` block must
produce none.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import nnlint
from nnlint.catalogue import (
    DOC_SECTIONS,
    ENTRY_POINTS,
    OPTIONAL_SECTIONS,
    RuleInfo,
    RuleLoadError,
    code_blocks,
    load_catalogue,
    load_rule_class,
    read_rule_file,
)

CATALOGUE = load_catalogue()
SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
SEED_NAME = re.compile(r"\b(\d{3}_[0-9a-f]{16}\.txt)\b")
MARKER = re.compile(r"#\s*((?:N[NR]\d{3}\s*,?\s*)+)$")
ENGINE_RULES = {"NN001", "NN002"}  # reported by the engine itself, not derived from a seed document

STATIC = [info for info in CATALOGUE.rules if info.kind == "static"]


def _id(info: RuleInfo) -> str:
    return info.code


def expected_markers(block: str) -> set[tuple[int, str]]:
    expected: set[tuple[int, str]] = set()
    for number, line in enumerate(block.splitlines(), start=1):
        match = MARKER.search(line)
        if match:
            for code in re.findall(r"N[NR]\d{3}", match.group(1)):
                expected.add((number, code))
    return expected


def test_catalogue_is_not_empty() -> None:
    assert len(STATIC) >= 9
    assert [i.code for i in CATALOGUE.rules] == sorted(i.code for i in CATALOGUE.rules)


def test_codes_and_names_are_unique() -> None:
    codes = [i.code for i in CATALOGUE.rules]
    names = [i.name for i in CATALOGUE.rules]
    assert len(codes) == len(set(codes))
    assert len(names) == len(set(names))


def test_every_rule_file_holds_a_rule() -> None:
    files = sorted(p.name for p in CATALOGUE.directory.glob("*.py") if not p.name.startswith("_"))
    assert files == sorted(i.path.name for i in CATALOGUE.rules)


@pytest.mark.parametrize("info", CATALOGUE.rules, ids=_id)
def test_metadata_is_consistent(info: RuleInfo) -> None:
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", info.name), info.name
    assert info.path.name == f"{info.code.lower()}_{info.name.replace('-', '_')}.py"
    assert info.severity in ("error", "warning", "info")
    # Opinionated rules (category 9) are off by default; every other rule is on.
    assert info.default == (info.code[2] != "9"), "NNx9x rules must be off by default, others on"
    assert info.summary and len(info.summary) < 200


@pytest.mark.parametrize("info", CATALOGUE.rules, ids=_id)
def test_each_kind_defines_its_own_entry_point(info: RuleInfo) -> None:
    """A static rule is run as ``check(ctx)``, a runtime detector as ``inspect(window, ctx)``."""
    cls = load_rule_class(info)
    expected = "check" if info.kind == "static" else "inspect"
    assert ENTRY_POINTS[info.kind] == expected
    assert expected in vars(cls), f"{info.code}: {info.class_name} must define {expected}()"
    assert not hasattr(cls, "inspect" if expected == "check" else "check"), info.code


_DETECTOR = '''"""Doc."""
from nnlint.runtime.detector import Detector


class {cls}(Detector):
    code = "{code}"
    name = "{name}"
{body}
'''
_RULE = '''"""Doc."""
from nnlint.rule import Rule


class {cls}(Rule):
    code = "{code}"
    name = "{name}"
{body}
'''


@pytest.mark.parametrize(
    ("template", "code", "body", "message"),
    [
        (_DETECTOR, "NR981", "    def check(self, window, ctx):\n        pass", "defines check(); its entry point is inspect()"),
        (_DETECTOR, "NR982", "    def inspect_window(self, window, ctx):\n        pass", "does not define inspect()"),
        (_RULE, "NN983", "    def inspect(self, window, ctx):\n        pass", "defines inspect(); its entry point is check()"),
        (_RULE, "NN984", "    pass", "does not define check()"),
        (_RULE, "NR985", "    def inspect(self, window, ctx):\n        pass", "must subclass nnlint.runtime.detector.Detector"),
    ],
)
def test_a_rule_file_with_the_wrong_entry_point_is_refused_at_load(
    tmp_path: Path, template: str, code: str, body: str, message: str
) -> None:
    name = f"wrong-entry-{code.lower()}"
    path = tmp_path / f"{code.lower()}_{name.replace('-', '_')}.py"
    path.write_text(template.format(cls="Wrong", code=code, name=name, body=body))
    info = read_rule_file(path)
    assert info is not None
    try:
        with pytest.raises(RuleLoadError, match=re.escape(message)):
            load_rule_class(info)
    finally:
        sys.modules.pop(info.module_name, None)


@pytest.mark.parametrize("info", CATALOGUE.rules, ids=_id)
def test_doc_has_the_sections_in_order(info: RuleInfo) -> None:
    sections = info.sections()
    headings = list(sections)
    for required in DOC_SECTIONS:
        assert required in sections, f"{info.code}: missing '## {required}'"
        assert sections[required].strip(), f"{info.code}: empty '## {required}'"
    known = set(DOC_SECTIONS) | set(OPTIONAL_SECTIONS)
    assert set(headings) <= known, f"{info.code}: unexpected sections {set(headings) - known}"
    order = [h for h in (*DOC_SECTIONS[:4], "Options", "Fix safety", "Source") if h in sections]
    assert headings == order, f"{info.code}: sections out of order: {headings}"
    if info.fixable:
        assert "Fix safety" in sections, f"{info.code} is fixable but has no '## Fix safety'"
    for option in info.options:
        assert "Options" in sections and f"`{option}`" in sections["Options"], (
            f"{info.code}: option {option!r} is not documented under '## Options'"
        )


@pytest.mark.parametrize("info", [i for i in CATALOGUE.rules if i.code not in ENGINE_RULES], ids=_id)
def test_doc_cites_its_source_documents(info: RuleInfo) -> None:
    cited = SEED_NAME.findall(info.sections()["Source"])
    assert cited, f"{info.code}: the Source section must name the seed document(s) by file name"
    if SEEDS.is_dir():
        for name in cited:
            assert (SEEDS / name).is_file(), f"{info.code} cites {name}, which does not exist"


@pytest.mark.parametrize("info", STATIC, ids=_id)
def test_example_produces_exactly_the_marked_findings(info: RuleInfo) -> None:
    blocks = code_blocks(info.sections()["Example"])
    assert blocks, f"{info.code}: the Example section has no ```python block"
    total = 0
    for block in blocks:
        expected = expected_markers(block)
        assert all(code == info.code for _, code in expected), f"{info.code}: foreign marker in its example"
        findings = nnlint.lint_source(block, path="example.py", select=[info.code])
        got = {(f.line, f.code) for f in findings}
        assert got == expected, f"{info.code} example: expected {sorted(expected)}, got {findings}"
        total += len(expected)
    assert total >= 1, f"{info.code}: the Example marks no line with '# {info.code}'"


@pytest.mark.parametrize("info", STATIC, ids=_id)
def test_use_instead_is_clean(info: RuleInfo) -> None:
    blocks = code_blocks(info.sections()["Use instead"])
    assert blocks, f"{info.code}: the Use instead section has no ```python block"
    for block in blocks:
        assert not expected_markers(block), f"{info.code}: markers in 'Use instead'"
        findings = nnlint.lint_source(block, path="use_instead.py", select=[info.code])
        assert findings == [], f"{info.code} 'Use instead' is not clean: {findings}"


@pytest.mark.parametrize("info", [i for i in STATIC if i.fixable], ids=_id)
def test_fixable_examples_offer_a_fix_that_parses(info: RuleInfo) -> None:
    from nnlint.fixes import fixed_text

    offered = 0
    for block in code_blocks(info.sections()["Example"]):
        findings = nnlint.lint_source(block, path="example.py", select=[info.code])
        offered += sum(1 for f in findings if f.fix is not None)
        outcome = fixed_text(block, findings, unsafe=True)
        if outcome is not None:
            fixed, _ = outcome
            remaining = nnlint.lint_source(fixed, path="example.py", select=[info.code])
            assert len(remaining) < len(findings), f"{info.code}: applying the fix did not remove the finding"
    assert offered >= 1, f"{info.code} is marked fixable but its example offers no fix"
