"""``--format github``: GitHub Actions workflow commands that annotate the pull request.

``::error file=a.py,line=3,col=5,endLine=3,endColumn=9,title=NN201::message``
(``warning`` for warnings, ``notice`` for info). Values are escaped as the Actions
runner expects: in the message ``%``, ``\\r`` and ``\\n``; in properties also ``:`` and ``,``.
"""
from __future__ import annotations

from typing import Sequence, TextIO

from nnlint.findings import Finding

_COMMANDS = {"error": "error", "warning": "warning", "info": "notice"}


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(finding: Finding) -> str:
    command = _COMMANDS.get(finding.severity, "warning")
    properties: list[tuple[str, str]] = []
    message = finding.message
    if finding.path and finding.cell is not None:
        # a line of the notebook's JSON would be the wrong place: the cell goes into the message
        properties.append(("file", finding.path))
        message = f"cell {finding.cell}:{finding.line}:{max(finding.column, 1)}: {message}"
    elif finding.path:
        properties.append(("file", finding.path))
        if finding.line > 0:
            properties.append(("line", str(finding.line)))
            if finding.column > 0:
                properties.append(("col", str(finding.column)))
            if finding.end_line >= finding.line:
                properties.append(("endLine", str(finding.end_line)))
                if finding.end_column > 0:
                    properties.append(("endColumn", str(finding.end_column)))
    else:
        where = [f"step {finding.step}"] if finding.step is not None else []
        where += [f"module {finding.module}"] if finding.module else []
        if where:
            message = f"{message} ({', '.join(where)})"
    properties.append(("title", finding.code))
    props = ",".join(f"{key}={escape_property(value)}" for key, value in properties)
    return f"::{command} {props}::{escape_data(message)}"


def write_github(findings: Sequence[Finding], stream: TextIO) -> None:
    for finding in findings:
        stream.write(annotation(finding) + "\n")
