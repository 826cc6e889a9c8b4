"""The shared vocabulary of both halves of nnlint: findings, fixes and edits.

Everything here is a frozen dataclass of plain values so that findings can cross
process boundaries (parallel linting), be cached as JSON and be rendered by any
reporter, whether they come from the static checker or the runtime monitor.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Optional, Tuple

Severity = Literal["error", "warning", "info"]
SEVERITIES: Tuple[Severity, ...] = ("error", "warning", "info")
Applicability = Literal["safe", "unsafe"]


def source_key(path: str, cell: Optional[int] = None) -> str:
    """Where a reporter's ``sources`` keep the text a position is in: a file's, or a notebook cell's."""
    return path if cell is None else f"{path}:cell {cell}"


@dataclass(frozen=True)
class Edit:
    """Replace the text between two 1-based (line, column) positions; end is exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int
    content: str
    #: in a notebook: the cell (1-based, all cells counted) the positions are in
    cell: Optional[int] = None

    def to_json(self) -> dict[str, Any]:
        return _without_cell(asdict(self))


@dataclass(frozen=True)
class Fix:
    """A set of non-overlapping edits that together repair one finding."""

    message: str
    edits: Tuple[Edit, ...]
    applicability: Applicability = "safe"

    def to_json(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "applicability": self.applicability,
            "edits": [edit.to_json() for edit in self.edits],
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> "Fix":
        return Fix(
            message=data["message"],
            applicability=data.get("applicability", "safe"),
            edits=tuple(Edit(**edit) for edit in data["edits"]),
        )


@dataclass(frozen=True)
class Related:
    """Another place a finding involves: the loss an output activation feeds, the activation a loss receives."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    message: str
    #: in a notebook: the cell (1-based, all cells counted) that ``line`` is in
    cell: Optional[int] = None


@dataclass(frozen=True)
class Finding:
    """One problem at one place. Positions are 1-based; ``end_column`` is exclusive.

    Runtime findings have no source position: ``path`` is empty, ``line`` is 0,
    and ``module``/``step`` say where and when in the training run it happened.
    """

    code: str
    name: str
    severity: Severity
    message: str
    path: str = ""
    line: int = 0
    column: int = 0
    end_line: int = 0
    end_column: int = 0
    fix: Optional[Fix] = None
    module: Optional[str] = None
    step: Optional[int] = None
    extra: Tuple[Tuple[str, Any], ...] = field(default_factory=tuple)
    #: other places involved (shown by ``full``, SARIF ``relatedLocations``, JSON ``related``)
    related: Tuple[Related, ...] = ()
    #: in a notebook: the cell (1-based, all cells counted) that ``line`` (counted in the cell) is in
    cell: Optional[int] = None

    @property
    def sort_key(self) -> tuple[str, int, int, int, str, str]:
        return (self.path, self.cell or 0, self.line, self.column, self.code, self.message)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "code": self.code,
            "name": self.name,
            "severity": self.severity,
            "message": self.message,
            "path": self.path,
            **({"cell": self.cell} if self.cell is not None else {}),
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "fix": self.fix.to_json() if self.fix else None,
        }
        if self.module is not None or self.step is not None:
            data["module"] = self.module
            data["step"] = self.step
        if self.extra:
            data["extra"] = dict(self.extra)
        if self.related:
            data["related"] = [_without_cell(asdict(place)) for place in self.related]
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> "Finding":
        return Finding(
            code=data["code"],
            name=data["name"],
            severity=data["severity"],
            message=data["message"],
            path=data["path"],
            line=data["line"],
            column=data["column"],
            end_line=data["end_line"],
            end_column=data["end_column"],
            fix=Fix.from_json(data["fix"]) if data.get("fix") else None,
            module=data.get("module"),
            step=data.get("step"),
            extra=tuple(sorted(data.get("extra", {}).items())),
            related=tuple(Related(**place) for place in data.get("related", ())),
            cell=data.get("cell"),
        )


def _without_cell(data: dict[str, Any]) -> dict[str, Any]:
    """A position's JSON: ``cell`` only in a notebook (other files' JSON stays as it was), after ``path``."""
    cell = data.pop("cell", None)
    if cell is None:
        return data
    if "path" not in data:
        return {**data, "cell": cell}
    return {key: value for name, item in data.items()
            for key, value in (((name, item), ("cell", cell)) if name == "path" else ((name, item),))}
