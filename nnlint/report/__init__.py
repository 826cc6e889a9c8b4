"""Reporters: render findings (static or runtime) as text, JSON, SARIF or GitHub annotations.

Both halves of nnlint use these: the CLI for static findings and the runtime monitor's
``mon.report(format=...)``. Runtime findings have no source position (``path`` is empty,
``line`` is 0); every reporter shows their ``module`` and ``step`` instead.

Only the standard library is imported here, so rendering costs nothing at start-up.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Mapping, Optional, Sequence, TextIO, Union

from nnlint.findings import Finding

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.catalogue import Catalogue

FORMATS = ("full", "concise", "json", "sarif", "github")


class UnknownFormat(ValueError):
    """Raised for a format name that is not one of :data:`FORMATS`."""


def use_color(stream: TextIO, color: Optional[bool]) -> bool:
    """Colour when asked, else when the stream is a terminal (``NO_COLOR``/``FORCE_COLOR`` respected)."""
    if color is not None:
        return color
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed or odd stream
        return False


def write_report(
    findings: Sequence[Finding],
    fmt: str,
    stream: TextIO,
    *,
    catalogue: Optional["Catalogue"] = None,
    sources: Optional[Mapping[str, str]] = None,
    color: Optional[bool] = None,
    fixed: Union[int, Sequence[Finding]] = 0,
) -> None:
    """Write ``findings`` to ``stream`` in format ``fmt`` (one of :data:`FORMATS`).

    ``sources`` maps a finding's path to the file's text so ``full`` can show the
    offending lines; ``catalogue`` supplies rule documentation for SARIF (loaded on
    demand when omitted); ``fixed`` is how many findings ``--fix`` already repaired (or
    which: then the summary counts them by severity too).
    """
    render(findings, fmt, stream, catalogue=catalogue, sources=sources, color=color, fixed=fixed)


def render(
    findings: Sequence[Finding],
    fmt: str,
    stream: TextIO,
    *,
    catalogue: Optional["Catalogue"] = None,
    sources: Optional[Mapping[str, str]] = None,
    color: Optional[bool] = None,
    fixed: Union[int, Sequence[Finding]] = 0,
    summary: bool = True,
    unsafe_fixes: bool = False,
) -> None:
    """:func:`write_report` with the CLI's extra switches (summary line, unsafe fixes)."""
    fmt = (fmt or "").lower()
    if fmt in ("full", "concise"):
        from nnlint.report import text

        text.write_text(
            findings,
            stream,
            full=fmt == "full",
            sources=sources or {},
            color=use_color(stream, color),
            fixed=fixed,
            summary=summary,
            unsafe_fixes=unsafe_fixes,
        )
    elif fmt == "json":
        from nnlint.report import jsonfmt

        jsonfmt.write_json(findings, stream)
    elif fmt == "sarif":
        from nnlint.report import sarif

        sarif.write_sarif(findings, stream, catalogue=catalogue)
    elif fmt == "github":
        from nnlint.report import github

        github.write_github(findings, stream)
    else:
        raise UnknownFormat(f"unknown output format {fmt!r} (choose from {', '.join(FORMATS)})")


def write_statistics(
    findings: Sequence[Finding], fmt: str, stream: TextIO, *, unsafe_fixes: bool = False
) -> None:
    """Counts per code (``--statistics``): a JSON list for ``json``, a table otherwise."""
    from nnlint.report import text

    text.write_statistics(findings, stream, as_json=fmt == "json", unsafe_fixes=unsafe_fixes)


__all__ = ["FORMATS", "UnknownFormat", "render", "use_color", "write_report", "write_statistics"]
