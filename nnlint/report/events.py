"""Reading a monitored run's event log (``events.jsonl``) back, for ``nnlint report``.

The log is written by :class:`nnlint.integrations.events.EventLog`, one JSON object a line,
each with ``"event"`` naming its kind. Schema version 1:

- ``{"event": "start", "schema": 1, "nnlint": "0.1.0", "time": 1712000000.0, "mode": "warn",
  "check_every": 25}``: the first line.
- ``{"event": "check", "step": 24, "layers": ["fc1", ...], "steps": [ROW, ...]}``: one per
  check of the monitor (every ``check_every`` steps); ``layers`` (weight layers in forward
  order) only when they changed since the previous check. A ROW is one training step:
  ``{"step": 3, "loss": 0.71, "stepped": true, "grad_norm": {"fc1": 0.12, ...}}`` plus, when
  measured that step, ``"weight_norm"``, ``"update_norm"``, ``"update_ratio"`` (per layer),
  ``"act_rms"``, ``"saturated"`` (per site), ``"unapplied_grad_norm"``, ``"clipped": true``,
  ``"skipped": true``, ``"nonfinite_grads": ["fc1.weight"]``. Each check may also carry
  ``"dead": {"relu1": {"dead": 30, "total": 32, "fraction": 0.94}}`` when a ReLU activity
  window closed.
- ``{"event": "finding", "code": "NR301", "name": ..., "severity": "error", "message": ...,
  "module": "fc1", "step": 19}``: each finding, when the monitor reports it.
- ``{"event": "fix", "code": "NR301", "action": "skip-step", "module": null, "step": 19,
  "detail": ...}``: each remedy applied (fix mode).
- ``{"event": "end", "time": ..., "steps": 100, "findings": 1, "fixes": 0}``: the last line of
  a run that ended (a run that crashed hard, or is still going, has none).

A non-finite number is written as the string ``"nan"``, ``"inf"`` or ``"-inf"`` (JSON has no
such numbers); readers turn them back into floats. Unknown keys and kinds are ignored, so
later versions may add to this.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, TextIO

SCHEMA_VERSION = 1
NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class EventLogError(ValueError):
    """The file is not an nnlint event log."""


def number(value: Any) -> Optional[float]:
    """A logged number back as a float (``"nan"``/``"inf"`` included); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return NONFINITE.get(value)
    return None


def encode(value: float) -> Any:
    return value if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))


@dataclass
class Run:
    """What a log holds, for a summary and a plot."""

    path: str
    start: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)  # the "steps" of every check, in order
    layers: list[str] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    fixes: list[dict[str, Any]] = field(default_factory=list)
    dead: dict[str, dict[str, Any]] = field(default_factory=dict)  # the last closed window per site
    end: Optional[dict[str, Any]] = None
    bad_lines: int = 0

    @property
    def steps(self) -> int:
        if self.end is not None and isinstance(self.end.get("steps"), int):
            return int(self.end["steps"])
        return (max(int(r["step"]) for r in self.rows) + 1) if self.rows else 0

    def grad_series(self) -> dict[str, list[tuple[int, float]]]:
        """Per layer: (step, gradient norm) over the run, in the layers' forward order."""
        series: dict[str, list[tuple[int, float]]] = {name: [] for name in self.layers}
        for row in self.rows:
            for layer, value in (row.get("grad_norm") or {}).items():
                v = number(value)
                if v is not None:
                    series.setdefault(str(layer), []).append((int(row["step"]), v))
        return {name: points for name, points in series.items() if points}


def read_events(path: str | Path) -> Run:
    """Read a log; a truncated or garbled line (a run killed while writing) is counted and
    skipped. Raises :class:`EventLogError` when the file holds no nnlint event at all."""
    path = Path(path)
    run = Run(str(path))
    try:
        handle = path.open("r", encoding="utf-8", errors="replace")
    except OSError as error:
        raise EventLogError(f"{path}: cannot read: {error.strerror or error}") from None
    events = 0
    with handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                run.bad_lines += 1
                continue
            if not isinstance(event, dict) or not isinstance(event.get("event"), str):
                run.bad_lines += 1
                continue
            events += 1
            _add(run, event)
    if events == 0:
        raise EventLogError(f"{path}: not an nnlint event log (no event found)")
    return run


def _add(run: Run, event: dict[str, Any]) -> None:
    kind = event["event"]
    if kind == "start":
        run.start = event
    elif kind == "check":
        layers = event.get("layers")
        if isinstance(layers, list):
            for name in layers:
                if str(name) not in run.layers:
                    run.layers.append(str(name))
        for row in event.get("steps") or []:
            if isinstance(row, dict) and isinstance(row.get("step"), int):
                run.rows.append(row)
        dead = event.get("dead")
        if isinstance(dead, dict):
            run.dead.update({str(k): v for k, v in dead.items() if isinstance(v, dict)})
    elif kind == "finding":
        run.findings.append(event)
    elif kind == "fix":
        run.fixes.append(event)
    elif kind == "end":
        run.end = event


def write_summary(run: Run, stream: TextIO) -> None:
    """A plain-text summary: status, steps, the loss, findings (first per code and module,
    with counts), fixes, and the layers whose gradients were smallest and largest."""
    start = run.start
    status = "finished" if run.end is not None else "did not finish (no end event: crashed, killed or still running)"
    mode = f", mode {start['mode']}" if start.get("mode") else ""
    stream.write(f"{run.path}: run {status}; {run.steps} step(s){mode}.\n")
    if start.get("schema") not in (None, SCHEMA_VERSION):
        stream.write(f"note: schema version {start.get('schema')}, this nnlint reads version {SCHEMA_VERSION}\n")
    if run.bad_lines:
        stream.write(f"note: {run.bad_lines} unreadable line(s) skipped\n")
    losses = [(int(r["step"]), number(r.get("loss"))) for r in run.rows if number(r.get("loss")) is not None]
    if losses:
        finite = [v for _, v in losses if v is not None and math.isfinite(v)]
        bad = [s for s, v in losses if v is not None and not math.isfinite(v)]
        if finite:
            stream.write(f"loss: first {finite[0]:.4g}, last {finite[-1]:.4g}, lowest {min(finite):.4g}\n")
        if bad:
            stream.write(f"non-finite loss at {len(bad)} step(s), first at step {bad[0]}\n")
    groups: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for finding in run.findings:
        groups.setdefault((str(finding.get("code")), finding.get("module")), []).append(finding)
    if not groups:
        stream.write("no problems found\n")
    else:
        errors = sum(1 for f in run.findings if f.get("severity") == "error")
        stream.write(f"{len(run.findings)} finding(s) ({errors} error(s)):\n")
        ordered = sorted(groups.values(), key=lambda found: (found[0].get("severity") != "error",
                                                               found[0].get("step") or 0))
        for found in ordered:
            first = found[0]
            module = first.get("module")
            where = f" in {module!r}" if module else ""
            count = f" ({len(found)} times)" if len(found) > 1 else ""
            stream.write(f"  {first.get('code')} {first.get('severity')}{where} at step {first.get('step')}"
                         f"{count}: {first.get('message')}\n")
    if run.fixes:
        actions: dict[str, int] = {}
        for fix in run.fixes:
            actions[str(fix.get("action"))] = actions.get(str(fix.get("action")), 0) + 1
        stream.write("fixes applied: " + ", ".join(f"{a} x{n}" for a, n in sorted(actions.items())) + "\n")
    series = run.grad_series()
    medians = {}
    for layer, points in series.items():
        values = sorted(v for _, v in points if math.isfinite(v))
        if values:
            medians[layer] = values[len(values) // 2]
    if len(medians) >= 2:
        low = min(medians, key=medians.__getitem__)
        high = max(medians, key=medians.__getitem__)
        stream.write(f"median gradient norm: smallest {medians[low]:.3g} ({low}), largest {medians[high]:.3g} ({high})\n")


def summary_json(run: Run) -> dict[str, Any]:
    return {
        "version": 1,
        "path": run.path,
        "finished": run.end is not None,
        "steps": run.steps,
        "findings": run.findings,
        "fixes": run.fixes,
        "bad_lines": run.bad_lines,
    }
