"""The rich summary table printed by ``mon.report()``."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, TextIO

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.findings import Finding
    from nnlint.runtime.monitor import Monitor


SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}


def first_steps(mon: "Monitor", limit: int = 3) -> list[str]:
    """The few lines that open the report: what to do first. Errors before warnings, and
    within a severity the earliest step first: the first thing to go wrong is usually the
    cause of what follows."""
    if not mon.findings:
        return [f"nnlint monitor: nothing to do ({mon.step + 1} step(s) watched, no problem found)."]
    firsts: dict[tuple[str, Optional[str]], "Finding"] = {}
    for finding in mon.findings:
        firsts.setdefault((finding.code, finding.module), finding)
    ordered = sorted(firsts.values(),
                     key=lambda f: (SEVERITY_RANK.get(f.severity, 3), f.step or 0, f.code))
    lines = ["What to do first:"]
    for number, finding in enumerate(ordered[:limit], start=1):
        where = f" in {finding.module!r}" if finding.module else ""
        lines.append(f"  {number}. {finding.code}{where} at step {finding.step}: {finding.message}")
    if len(ordered) > limit:
        lines.append(f"  ... and {len(ordered) - limit} more below.")
    if mon.fixes:
        actions = sorted({fix.action for fix in mon.fixes})
        lines.append(f"Fix mode applied {len(mon.fixes)} fix(es) ({', '.join(actions)}): a rescued run still has "
                     f"its cause; fix it in the code.")
    return lines


def write_table(mon: "Monitor", stream: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream, highlight=False, soft_wrap=False, width=140)
    for line in first_steps(mon):
        console.print(line, markup=False)
    groups: dict[tuple[str, Optional[str]], list] = {}
    for finding in mon.findings:
        groups.setdefault((finding.code, finding.module), []).append(finding)
    table = Table(title=f"nnlint monitor: {len(mon.findings)} finding(s), {len(mon.fixes)} fix(es), "
                        f"{mon.step + 1} step(s)")
    for column in ("code", "severity", "module", "first step", "count", "message"):
        table.add_column(column)
    for (code, module), found in sorted(groups.items(), key=lambda kv: (kv[1][0].step or 0, kv[0][0])):
        first = found[0]
        table.add_row(code, first.severity, "<model>" if module == "" else (module or "-"),
                      str(first.step), str(len(found)), first.message)
    console.print(table)
    events = mon.nonfinite_events
    if events:
        nf = Table(title="non-finite events")
        for column in ("kind", "module", "first step", "last step", "steps"):
            nf.add_column(column)
        for event in events:
            kind = event["kind"] + (f" ({event['note']})" if event.get("note") else "")
            nf.add_row(kind, event["module"] or "-", str(event["first_step"]),
                       str(event["last_step"]), str(event["count"]))
        console.print(nf)
    if mon.fixes:
        fx = Table(title="fixes applied")
        for column in ("code", "action", "module", "first step", "count"):
            fx.add_column(column)
        fix_groups: dict[tuple[str, str, Optional[str]], list] = {}
        for fix in mon.fixes:
            fix_groups.setdefault((fix.code, fix.action, fix.module), []).append(fix)
        for (code, action, module), applied in fix_groups.items():
            fx.add_row(code, action, module or "-", str(applied[0].step), str(len(applied)))
        console.print(fx)
    if not mon.findings:
        console.print("no problems found")
