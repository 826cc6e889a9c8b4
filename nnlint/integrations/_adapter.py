"""What the framework callbacks share: one monitor per run, started when training starts
and closed (every hook removed) when it ends, also when it fails."""
from __future__ import annotations

import sys
from typing import Any, Optional, TextIO

from nnlint.findings import Finding


class MonitorAdapter:
    """Owns the monitor of one training run for a framework callback."""

    def __init__(self, mode: str, print_report: bool, log_dir: Optional[str], monitor_kwargs: dict[str, Any]):
        from nnlint.runtime.monitor import MODES

        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.print_report = print_report
        self.log_dir = log_dir
        self.monitor_kwargs = monitor_kwargs
        self.monitor: Any = None
        self.event_log: Any = None
        self._loss_sum: Any = None
        self._loss_count = 0
        self._loss_step = -1
        self._running = False

    # -- what users read ------------------------------------------------------

    @property
    def findings(self) -> list[Finding]:
        return self.monitor.findings if self.monitor is not None else []

    @property
    def fixes(self) -> list[Any]:
        return self.monitor.fixes if self.monitor is not None else []

    def report(self, format: str = "table", stream: Optional[TextIO] = None) -> None:
        if self.monitor is None:
            (stream or sys.stdout).write("nnlint monitor: training has not started.\n")
            return
        self.monitor.report(format=format, stream=stream)

    # -- driven by the callback ---------------------------------------------------

    def start(self, model: Any, optimizer: Any, state: Optional[dict[str, Any]] = None) -> None:
        """``state``: a :meth:`Monitor.state_dict` from a checkpoint (a resumed run)."""
        from nnlint.runtime.monitor import monitor

        self.finish(raise_errors=False)  # a previous run that never ended (fit called again)
        mon = monitor(model, optimizer, self.mode, log_dir=self.log_dir, **self.monitor_kwargs)
        if state:
            mon.load_state_dict(state)
        self._loss_sum, self._loss_count, self._loss_step = None, 0, -1
        mon.start()  # the monitor opens its event log, and closes it if starting fails
        self.event_log = mon.event_log
        self.monitor = mon
        self._running = True

    def observe_loss(self, loss: Any) -> None:
        """The loss of one batch (a tensor: no host sync). The batches of one optimizer step
        (gradient accumulation) are averaged into that step's loss: each call writes the
        running mean, so the step keeps the mean of all of them."""
        mon = self.monitor
        if mon is None or loss is None:
            return
        if mon.step != self._loss_step:
            self._loss_sum, self._loss_count, self._loss_step = None, 0, mon.step
        if hasattr(loss, "detach"):
            loss = loss.detach()
            self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
        else:
            self._loss_sum = float(loss) + (self._loss_sum if self._loss_sum is not None else 0.0)
        self._loss_count += 1
        mon.observe_loss(self._loss_sum / self._loss_count if self._loss_count > 1 else self._loss_sum)

    def finish(self, raise_errors: bool, print_report: bool = False) -> None:
        """Detach (always); then the final check, which raises a pending TrainingError when
        ``raise_errors``; then the report, when asked for."""
        mon = self.monitor
        if mon is None or not self._running:
            return
        self._running = False
        try:
            mon.close(raise_errors=raise_errors)  # closes the event log too
        finally:
            if print_report and self.print_report:
                mon.report()


class AdapterAttributes:
    """What a callback shows its users, read from its :class:`MonitorAdapter` (``self._adapter``)."""

    _adapter: MonitorAdapter

    @property
    def monitor(self) -> Any:
        """The :class:`nnlint.Monitor` of the current (or last) run; None before it."""
        return self._adapter.monitor

    @property
    def findings(self) -> list[Finding]:
        return self._adapter.findings

    @property
    def fixes(self) -> list[Any]:
        return self._adapter.fixes

    def report(self, format: str = "table", stream: Optional[TextIO] = None) -> None:
        self._adapter.report(format, stream)
