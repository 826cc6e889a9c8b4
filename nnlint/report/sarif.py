"""``--format sarif``: SARIF 2.1.0, for GitHub code scanning and other SARIF viewers.

Rule descriptors come from the catalogue (documentation as ``help``); columns are
counted in Unicode code points, as nnlint counts them (``columnKind``). Relative paths
stay relative URIs, resolved against ``%SRCROOT%`` (the working directory).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence, TextIO
from urllib.parse import quote

from nnlint import __version__
from nnlint.findings import Finding, Fix, Related

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.catalogue import Catalogue, RuleInfo

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
SRCROOT = "%SRCROOT%"
_LEVELS = {"error": "error", "warning": "warning", "info": "note"}


def path_to_uri(path: str) -> tuple[str, Optional[str]]:
    """(uri, uriBaseId): relative paths become relative URI references, absolute ones file URIs."""
    if os.path.isabs(path):
        return Path(path).as_uri(), None
    posix = path.replace(os.sep, "/") if os.sep != "/" else path
    # quote() leaves only unreserved characters and "/" alone, so ":" in the first
    # segment cannot be mistaken for a URI scheme and "#", "?", "%" stay literal.
    return quote(posix, safe="/"), SRCROOT


def _rule_descriptor(info: "RuleInfo") -> dict[str, Any]:
    level = _LEVELS.get(info.severity, "warning")
    return {
        "id": info.code,
        "name": info.name,
        "shortDescription": {"text": info.summary or info.name},
        "help": {"text": info.doc or info.summary, "markdown": info.doc or info.summary},
        "defaultConfiguration": {"enabled": info.default, "level": level},
        "properties": {
            "kind": info.kind,
            "fixable": info.fixable,
            "tags": [info.kind],
        },
    }


def _fallback_descriptor(finding: Finding) -> dict[str, Any]:
    """A rule the catalogue does not know (e.g. from a private test catalogue)."""
    return {
        "id": finding.code,
        "name": finding.name,
        "shortDescription": {"text": finding.name or finding.code},
        "defaultConfiguration": {"level": _LEVELS.get(finding.severity, "warning")},
    }


def _region(line: int, column: int, end_line: int, end_column: int) -> Optional[dict[str, int]]:
    if line <= 0:
        return None
    region = {"startLine": line}
    if column > 0:
        region["startColumn"] = column
    if end_line >= line:
        region["endLine"] = end_line
        if end_column > 0 and (end_line > line or end_column >= max(column, 1)):
            region["endColumn"] = end_column
    return region


def _artifact(path: str) -> dict[str, str]:
    uri, base = path_to_uri(path)
    location = {"uri": uri}
    if base:
        location["uriBaseId"] = base
    return location


def _fix(fix: Fix, path: str) -> dict[str, Any]:
    replacements = []
    for edit in fix.edits:
        deleted = _region(edit.line, edit.column, edit.end_line, edit.end_column) or {"startLine": 1}
        replacements.append({"deletedRegion": deleted, "insertedContent": {"text": edit.content}})
    return {
        "description": {"text": f"{fix.message} ({fix.applicability} fix)"},
        "artifactChanges": [{"artifactLocation": _artifact(path), "replacements": replacements}],
    }


def _in_cell(cell: int, line: int, column: int) -> str:
    return f"cell {cell}:{line}:{max(column, 1)}"


def _cell_location(path: str, cell: int) -> dict[str, Any]:
    """A place in a notebook: SARIF regions count the lines of the file (the notebook's JSON),
    so the cell is a logical location and the line in the cell goes into the message."""
    return {
        "physicalLocation": {"artifactLocation": _artifact(path)},
        "logicalLocations": [{"name": f"cell {cell}", "fullyQualifiedName": f"{path}:cell {cell}",
                              "kind": "notebookCell"}],
    }


def _related(place: Related, number: int) -> dict[str, Any]:
    if place.cell is not None:
        text = f"{_in_cell(place.cell, place.line, place.column)}: {place.message}"
        return {"id": number, **_cell_location(place.path, place.cell), "message": {"text": text}}
    physical: dict[str, Any] = {"artifactLocation": _artifact(place.path)}
    region = _region(place.line, place.column, place.end_line, place.end_column)
    if region:
        physical["region"] = region
    return {"id": number, "physicalLocation": physical, "message": {"text": place.message}}


def _result(finding: Finding, index: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.code,
        "ruleIndex": index,
        "level": _LEVELS.get(finding.severity, "warning"),
        "message": {"text": finding.message},
    }
    if finding.path and finding.cell is not None:
        result["message"] = {"text": f"{_in_cell(finding.cell, finding.line, finding.column)}: {finding.message}"}
        result["locations"] = [_cell_location(finding.path, finding.cell)]
        if finding.related:
            result["relatedLocations"] = [_related(place, number) for number, place in enumerate(finding.related)]
    elif finding.path:
        physical: dict[str, Any] = {"artifactLocation": _artifact(finding.path)}
        region = _region(finding.line, finding.column, finding.end_line, finding.end_column)
        if region:
            physical["region"] = region
        result["locations"] = [{"physicalLocation": physical}]
        if finding.related:
            result["relatedLocations"] = [_related(place, number) for number, place in enumerate(finding.related)]
        if finding.fix is not None and finding.fix.edits:
            result["fixes"] = [_fix(finding.fix, finding.path)]
    elif finding.module:
        result["locations"] = [
            {"logicalLocations": [{"fullyQualifiedName": finding.module, "kind": "module"}]}
        ]
    properties: dict[str, Any] = {"name": finding.name}
    if finding.cell is not None:
        properties.update(cell=finding.cell, line=finding.line, column=finding.column,
                          endLine=finding.end_line, endColumn=finding.end_column)
    if finding.step is not None:
        properties["step"] = finding.step
    if finding.extra:
        properties["extra"] = dict(finding.extra)
    result["properties"] = properties
    return result


def sarif_document(findings: Sequence[Finding], catalogue: Optional["Catalogue"] = None) -> dict[str, Any]:
    if catalogue is None:
        from nnlint.catalogue import load_catalogue

        catalogue = load_catalogue()
    rules = [_rule_descriptor(info) for info in catalogue.rules]
    index_of = {info.code: i for i, info in enumerate(catalogue.rules)}
    for finding in findings:
        if finding.code not in index_of:
            index_of[finding.code] = len(rules)
            rules.append(_fallback_descriptor(finding))
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "nnlint",
                "version": __version__,
                "semanticVersion": __version__,
                "rules": rules,
            }
        },
        "columnKind": "unicodeCodePoints",
        "results": [_result(f, index_of[f.code]) for f in findings],
    }
    if any(f.path and not os.path.isabs(f.path) for f in findings):
        run["originalUriBaseIds"] = {SRCROOT: {"uri": Path.cwd().as_uri().rstrip("/") + "/"}}
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def write_sarif(findings: Sequence[Finding], stream: TextIO, *, catalogue: Optional["Catalogue"] = None) -> None:
    stream.write(json.dumps(sarif_document(findings, catalogue), indent=2, default=str) + "\n")
