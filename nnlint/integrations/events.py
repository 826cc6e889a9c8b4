"""An event log for a monitored run: ``events.jsonl`` and, when ``tensorboard`` is
installed, TensorBoard scalars and the findings as text.

    with nnlint.monitor(model, optimizer, log_dir="runs/exp") as mon:
        ...train...
    mon.plot("grads.png")      # or: nnlint report runs/exp/events.jsonl --plot grads.png

(``EventLog("runs/exp").attach(mon)`` before the ``with`` does the same.) The log is an
observer of the monitor (:meth:`nnlint.runtime.Monitor.add_observer`).

The schema of ``events.jsonl`` is documented (and versioned) in :mod:`nnlint.report.events`.
Everything is written at the monitor's checks (every ``check_every`` steps) from the
statistics it already read back: the log adds no device work and no host sync, and the
file is flushed at every check so a crashed run leaves a readable log. The log closes
itself when the monitor does.

TensorBoard tags: ``loss``, ``grad_norm/<layer>``, ``update_ratio/<layer>`` (sampled
steps), ``dead_fraction/<relu site>`` (when an activity window closes),
``saturated_fraction/<sigmoid or tanh site>``, and the text ``findings``.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Optional

from nnlint.findings import Finding
from nnlint.report.events import SCHEMA_VERSION, encode
from nnlint.runtime.detector import Window

EVENTS_FILE = "events.jsonl"


def _clean(value: Any) -> Any:
    """JSON without NaN/Infinity tokens (see the schema)."""
    if isinstance(value, float):
        return encode(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _row(stats: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"step": stats.step, "loss": stats.loss, "stepped": stats.stepped,
                           "grad_norm": dict(stats.grad_norm)}
    for key in ("weight_norm", "update_norm", "act_rms", "saturated", "unapplied_grad_norm"):
        value = getattr(stats, key, None)
        if value:
            row[key] = dict(value)
    if stats.update_norm and stats.weight_norm:
        row["update_ratio"] = {layer: u / stats.weight_norm[layer] for layer, u in stats.update_norm.items()
                               if stats.weight_norm.get(layer) and math.isfinite(stats.weight_norm[layer])}
    for key in ("clipped", "skipped"):
        if getattr(stats, key, False):
            row[key] = True
    if getattr(stats, "nonfinite_grads", None):
        row["nonfinite_grads"] = list(stats.nonfinite_grads)
    return row


class EventLog:
    """Writes ``log_dir/events.jsonl`` (and TensorBoard files) for the monitor it is attached
    to. ``tensorboard``: None writes them when the package is installed, True requires it,
    False never writes them."""

    def __init__(self, log_dir: str | Path, *, tensorboard: Optional[bool] = None) -> None:
        self.log_dir = Path(log_dir)
        self.path = self.log_dir / EVENTS_FILE
        self.tensorboard = tensorboard
        self.monitor: Any = None
        self._file: Any = None
        self._writer: Any = None
        self._layers: list[str] = []
        self._fixes_seen = 0
        self._findings = 0

    def attach(self, mon: Any) -> "EventLog":
        """Start logging ``mon`` (before its ``with``/``start``); returns self."""
        if self.monitor is not None:
            raise RuntimeError("this event log is already attached to a monitor")
        self.monitor = mon
        mon.add_observer(self)  # called after the detectors: it sees the fixes they asked for
        self._open()
        self._write({"event": "start", "schema": SCHEMA_VERSION, "nnlint": _version(), "time": time.time(),
                     "mode": mon.mode, "check_every": mon.check_every})
        return self

    def _open(self) -> None:
        if self._file is not None:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        if self.tensorboard is not False and self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                if self.tensorboard:
                    raise RuntimeError("TensorBoard logging needs tensorboard: pip install 'nnlint[tensorboard]'") \
                        from None
            else:
                self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def _write(self, event: dict[str, Any]) -> None:
        self._open()
        self._file.write(json.dumps(_clean(event), separators=(",", ":"), default=str) + "\n")

    # -- from the monitor -------------------------------------------------------------

    def on_check(self, mon: Any, window: Window) -> None:
        rows = [_row(stats) for stats in window.steps]
        event: dict[str, Any] = {"event": "check", "step": rows[-1]["step"] if rows else self.monitor.step,
                                 "steps": rows}
        layers = [layer.name for layer in window.layers]
        if layers != self._layers:
            event["layers"] = self._layers = layers
        dead = {d.site: {"dead": d.dead, "total": d.total, "fraction": d.dead / d.total if d.total else 0.0}
                for d in (window.dead_units or []) if d.closed}
        if dead:
            event["dead"] = dead
        self._write(event)
        self._new_fixes()
        if self._writer is not None:
            self._scalars(rows, dead)
        self._file.flush()

    def on_finding(self, mon: Any, finding: Finding) -> None:
        self._findings += 1
        self._write({"event": "finding", "code": finding.code, "name": finding.name, "severity": finding.severity,
                     "message": finding.message, "module": finding.module, "step": finding.step})
        if self._writer is not None:
            where = f" `{finding.module}`" if finding.module else ""
            self._writer.add_text("findings", f"**{finding.code}** ({finding.severity}){where}: {finding.message}",
                                  global_step=finding.step if finding.step is not None else 0)

    def _new_fixes(self) -> None:
        fixes = self.monitor.fixes
        for fix in fixes[self._fixes_seen:]:
            self._write({"event": "fix", "code": fix.code, "action": fix.action, "module": fix.module,
                         "step": fix.step, "detail": fix.detail})
        self._fixes_seen = len(fixes)

    def _scalars(self, rows: list[dict[str, Any]], dead: dict[str, dict[str, Any]]) -> None:
        writer = self._writer
        for row in rows:
            step = row["step"]
            if row["loss"] is not None:
                writer.add_scalar("loss", row["loss"], step)
            for layer, value in row["grad_norm"].items():
                writer.add_scalar(f"grad_norm/{layer or 'model'}", value, step)
            for layer, value in row.get("update_ratio", {}).items():
                writer.add_scalar(f"update_ratio/{layer or 'model'}", value, step)
            for site, value in row.get("saturated", {}).items():
                writer.add_scalar(f"saturated_fraction/{site}", value, step)
        last = rows[-1]["step"] if rows else self.monitor.step
        for site, value in dead.items():
            writer.add_scalar(f"dead_fraction/{site}", value["fraction"], last)

    def on_close(self, mon: Any) -> None:
        self.close()

    # -- end ---------------------------------------------------------------------------

    def close(self) -> None:
        """Write the end event and close the files (the monitor's close does this)."""
        if self._file is None:
            return
        if self.monitor is not None:
            self._new_fixes()
            self._write({"event": "end", "time": time.time(), "steps": self.monitor.step + 1,
                         "findings": self._findings, "fixes": self._fixes_seen})
        file, self._file = self._file, None
        file.close()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    def plot(self, out: str | Path) -> Path:
        """The gradient-flow picture of what was logged so far (see :mod:`nnlint.report.plot`)."""
        from nnlint.report.events import read_events
        from nnlint.report.plot import plot_run

        if self._file is not None:
            self._file.flush()
        return plot_run(read_events(self.path), out)


def _version() -> str:
    from nnlint import __version__

    return __version__
