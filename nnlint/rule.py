"""The interface between the engine and a static rule.

A rule is a class in its own file in ``rules/``::

    class OutputActivationAppliedByLoss(Rule):
        code = "NN201"
        name = "output-activation-applied-by-loss"
        severity = "error"          # "error" | "warning" | "info"
        default = True              # on by default (NN9xx: False)
        fixable = False
        options = {}                # option name -> default (literal values only)

        def check(self, ctx: Context) -> None:
            for site in ctx.facts.losses.sites:
                ...
                ctx.report(site.node, "softmax output fed to cross_entropy")

Class attributes must be literals: the catalogue reads them without importing the file.
Option names are kebab-case; ``option_ranges`` (name -> ``minimum``/``maximum``/``above``/
``below``) bounds their values, checked with their types when the configuration loads.
A runtime detector (``rules/nr*.py``) subclasses :class:`nnlint.runtime.detector.Detector`
and is run as ``inspect(window, ctx)``: the catalogue refuses a class that defines the
other kind's entry point.
Rules ask :attr:`Context.facts` (``nnlint.facts``) what the code means; they do not walk
import statements or rebuild layer sequences themselves.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Mapping, Optional

from nnlint.facts.index import Site
from nnlint.findings import Edit, Finding, Fix, Related

if TYPE_CHECKING:  # pragma: no cover
    import libcst as cst
    from libcst.metadata import CodeRange

    from nnlint.facts import FileFacts
    from nnlint.positions import Positions


class Rule:
    code: ClassVar[str] = ""
    name: ClassVar[str] = ""
    severity: ClassVar[str] = "warning"
    default: ClassVar[bool] = True
    fixable: ClassVar[bool] = False
    options: ClassVar[Mapping[str, Any]] = {}

    def check(self, ctx: "Context") -> None:  # pragma: no cover - interface
        raise NotImplementedError


class _Report:
    __slots__ = ("rule", "node", "message", "fix_edits", "fix_message", "applicability", "end_node", "related")

    def __init__(
        self,
        rule: Rule,
        node: "cst.CSTNode",
        message: str,
        end_node: Optional["cst.CSTNode"],
        fix_edits: Optional[list[tuple["cst.CSTNode", str]]],
        fix_message: Optional[str],
        applicability: str,
        related: tuple[tuple[Any, str], ...] = (),
    ) -> None:
        self.related = related
        self.rule = rule
        self.node = node
        self.end_node = end_node
        self.message = message
        self.fix_edits = fix_edits
        self.fix_message = fix_message
        self.applicability = applicability


class Context:
    """What a rule sees of one file. Positions are computed only for reported nodes."""

    def __init__(self, path: str, source: str, facts: "FileFacts") -> None:
        self.path = path
        self.source = source
        self.facts = facts
        self.module = facts.module
        self._reports: list[_Report] = []
        self._rule: Optional[Rule] = None
        self._options: Mapping[str, Any] = {}
        self._positions: Optional["Positions"] = None

    # -- used by the engine -------------------------------------------------
    def run(self, rule: Rule, options: Mapping[str, Any]) -> None:
        self._rule, self._options = rule, options
        try:
            rule.check(self)
        finally:
            self._rule, self._options = None, {}

    def findings(self) -> list[Finding]:
        if not self._reports:
            return []
        out: list[Finding] = []
        for report in self._reports:
            if isinstance(report.node, Site):  # a place recorded by another file
                site = report.node
                out.append(Finding(
                    code=report.rule.code, name=report.rule.name, severity=report.rule.severity,  # type: ignore[arg-type]
                    message=report.message, path=site.path, line=site.line, column=site.column,
                    end_line=site.end_line, end_column=site.end_column,
                    related=tuple(self._related(place, text) for place, text in report.related),
                ))
                continue
            start = self.position(report.node)
            end = self.position(report.end_node) if report.end_node is not None else start
            fix: Optional[Fix] = None
            if report.fix_edits is not None:
                edits = tuple(
                    self._edit(node, replacement) for node, replacement in report.fix_edits
                )
                fix = Fix(
                    message=report.fix_message or "Apply the suggested fix",
                    edits=edits,
                    applicability=report.applicability,  # type: ignore[arg-type]
                )
            out.append(
                Finding(
                    code=report.rule.code,
                    name=report.rule.name,
                    severity=report.rule.severity,  # type: ignore[arg-type]
                    message=report.message,
                    path=self.path,
                    line=start.start.line,
                    column=start.start.column + 1,
                    end_line=end.end.line,
                    end_column=end.end.column + 1,
                    fix=fix,
                    related=tuple(self._related(place, text) for place, text in report.related),
                )
            )
        return out

    def _related(self, place: Any, message: str) -> Related:
        """A node of this file, or a :class:`~nnlint.facts.index.Site` another file recorded."""
        if isinstance(place, Site):
            return Related(place.path, place.line, place.column, place.end_line, place.end_column, message)
        where = self.position(place)
        return Related(self.path, where.start.line, where.start.column + 1, where.end.line,
                       where.end.column + 1, message)

    # -- used by rules ------------------------------------------------------
    @property
    def option(self) -> Mapping[str, Any]:
        """This rule's options (defaults merged with ``[tool.nnlint.<code>]``)."""
        return self._options

    def int_option(self, name: str, minimum: Optional[int] = None) -> int:
        """An integer option (a bool is not one) of at least ``minimum``, else the rule's default.

        ``[tool.nnlint]`` values are type-checked when the configuration loads; this also
        covers settings built in code and values out of range.
        """
        value = self._options.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and (minimum is None or value >= minimum):
            return value
        return self._default_option(name)

    def number_option(self, name: str, above: Optional[float] = None) -> float:
        """A numeric option (a bool is not one) greater than ``above``, else the rule's default."""
        value = self._options.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and (above is None or value > above):
            return float(value)
        return float(self._default_option(name))

    def _default_option(self, name: str) -> Any:
        assert self._rule is not None, "options are read while a rule runs"
        return self._rule.options[name]

    def report(
        self,
        node: "cst.CSTNode",
        message: str,
        *,
        end_node: Optional["cst.CSTNode"] = None,
        fix: Optional[Iterable[tuple["cst.CSTNode", str]]] = None,
        fix_message: Optional[str] = None,
        applicability: str = "safe",
        related: Iterable[tuple[Any, str]] = (),
    ) -> None:
        """Report ``message`` at ``node``.

        ``related`` lists other places involved, as ``(node or Site, message)`` pairs: a node of
        this file, or a :class:`~nnlint.facts.index.Site` recorded by another file.

        ``fix`` is a list of ``(node, replacement_source)`` pairs: each node's source text
        is replaced by the given text. The engine turns them into text edits and only
        applies them if the result still parses.
        """
        assert self._rule is not None, "report() called outside of check()"
        self._reports.append(
            _Report(
                self._rule,
                node,
                message,
                end_node,
                list(fix) if fix is not None else None,
                fix_message,
                applicability,
                tuple(related),
            )
        )

    def report_at(self, site: Site, message: str, *, related: Iterable[tuple[Any, str]] = ()) -> None:
        """Report ``message`` at a :class:`~nnlint.facts.index.Site` another file recorded (the
        activation of a model defined there); it has no fix, and that file's suppression comments
        were read when the site was recorded."""
        assert self._rule is not None, "report_at() called outside of check()"
        self._reports.append(_Report(self._rule, site, message, None, None, None, "safe", tuple(related)))

    def position(self, node: "cst.CSTNode") -> "CodeRange":
        return self.facts.positions[node]

    def code_for(self, node: "cst.CSTNode") -> str:
        return self.module.code_for_node(node)

    def _edit(self, node: "cst.CSTNode", replacement: str) -> Edit:
        rng = self.position(node)
        return Edit(
            line=rng.start.line,
            column=rng.start.column + 1,
            end_line=rng.end.line,
            end_column=rng.end.column + 1,
            content=replacement,
        )
