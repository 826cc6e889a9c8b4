"""``nnlint.monitor``: watch a PyTorch training run from the outside.

    with nnlint.monitor(model, optimizer, mode="warn") as mon:
        for x, y in loader:
            ...
            optimizer.step()
            mon.observe_loss(loss)

The monitor attaches through forward hooks, ``register_post_accumulate_grad_hook`` and
the optimizer's step hooks (never full backward hooks), keeps its statistics on the
device (:mod:`nnlint.runtime.stats`) and runs the detectors of ``rules/nr*.py`` on the
host every ``check_every`` steps. Detection is therefore up to ``check_every - 1`` steps
late, but every finding carries the exact step it happened at.
"""
from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Protocol, Sequence, TextIO

from nnlint.findings import Finding
from nnlint.runtime.detector import Detector, DetectorContext, RemedyRequest, Window

MODES = ("warn", "fix", "raise")
DEFAULT_CHECK_EVERY = 25
DEFAULT_SAMPLE_EVERY = 10
# With the default check interval the first read comes early: a layer whose units are all
# dead from the start, or a run diverging from its first steps, is caught within ~10 steps.
FIRST_CHECK = 10
SETTING_KEYS = ("mode", "check-every", "sample-every", "activation-every", "overhead-budget", "fix", "stop-on",
                "select", "ignore", "log-level")
DEFAULT_OVERHEAD_BUDGET = 0.05
HISTORY_ROWS = 1024  # per-layer gradient norms kept in memory for mon.plot() (thinned beyond)

logger = logging.getLogger("nnlint.runtime")


class TrainingError(RuntimeError):
    """Raised in ``mode="raise"`` (or for a ``stop_on`` code); ``.finding`` says what and where."""

    def __init__(self, finding: Finding) -> None:
        where = f" in {finding.module!r}" if finding.module else ""
        super().__init__(f"{finding.code} at step {finding.step}{where}: {finding.message}")
        self.finding = finding


@dataclass(frozen=True)
class AppliedFix:
    """A remedy the monitor applied."""

    code: str
    action: str
    module: Optional[str]
    step: int
    detail: str = ""


class LoggingSink:
    """Log the first finding per (code, module); count the repeats."""

    def __init__(self, log: logging.Logger = logger) -> None:
        self.log = log
        self.counts: dict[tuple[str, Optional[str]], int] = {}
        self.enabled = True  # off on the ranks other than 0 of a distributed run (same findings)

    def __call__(self, finding: Finding) -> None:
        if not self.enabled:
            return
        key = (finding.code, finding.module)
        seen = self.counts.get(key, 0)
        self.counts[key] = seen + 1
        if seen == 0:
            level = logging.ERROR if finding.severity == "error" else logging.WARNING
            where = f" [{finding.module or '<model>'}]" if finding.module is not None else ""
            self.log.log(level, "%s%s step %s: %s", finding.code, where, finding.step, finding.message)
        elif seen in (1, 10, 100, 1000):
            self.log.info("%s%s seen %d times", finding.code, f" [{finding.module}]", seen + 1)

    def flush(self) -> None:
        """At the end of the run: one line per (code, module) that repeated, with its count."""
        for (code, module), count in self.counts.items():
            if count > 1:
                self.log.info("%s [%s]: %d occurrences in total", code, module or "<model>", count)


class Observer(Protocol):
    """What :meth:`Monitor.add_observer` takes. Every method is optional; each runs on the
    host, at a check (every ``check_every`` steps), from what the monitor already read back."""

    def on_check(self, monitor: "Monitor", window: Window) -> None:
        """After the detectors ran on ``window`` (and any fix they asked for was applied)."""

    def on_finding(self, monitor: "Monitor", finding: Finding) -> None:
        """Each finding, when it is reported."""

    def on_close(self, monitor: "Monitor") -> None:
        """Once, when the monitor closes (after the final check; also after an error)."""


class _History:
    """Per-layer gradient norms and the loss at every step, for :meth:`Monitor.plot` without
    an event log. Bounded: beyond 2 x HISTORY_ROWS rows every other one is dropped."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.layers: list[str] = []
        self.stride = 1

    def on_check(self, monitor: "Monitor", window: Window) -> None:
        for layer in window.layers:
            if layer.name not in self.layers:
                self.layers.append(layer.name)
        for stats in window.steps:
            if stats.step % self.stride == 0:
                self.rows.append({"step": stats.step, "loss": stats.loss, "grad_norm": dict(stats.grad_norm)})
        if len(self.rows) > 2 * HISTORY_ROWS:
            self.stride *= 2
            self.rows = [row for row in self.rows if row["step"] % self.stride == 0]


def _load_settings() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``[tool.nnlint.monitor]`` and the detector options the file sets, by code: its
    ``[tool.nnlint.NRxxx]`` and ``[tool.nnlint.monitor.NRxxx]`` tables, which
    :func:`nnlint.config.load_settings` checks as it checks every rule's options."""
    from nnlint.catalogue import load_catalogue
    from nnlint.config import ConfigError, find_config, load_settings, suggest

    path = find_config(Path.cwd())
    if path is None:
        return {}, {}
    settings = load_settings(path, load_catalogue())
    monitor = dict(settings.monitor)
    for key in monitor:
        if key not in SETTING_KEYS:
            raise ConfigError(f"{path}: unknown key {key!r} in [tool.nnlint.monitor]{suggest(key, SETTING_KEYS)}")
    options = {code: dict(values) for code, values in settings.rule_options.items() if code.startswith("NR")}
    return monitor, options


def _runtime_rules() -> list[Any]:
    """The NR rules' metadata, read from their files only: a static rule being edited
    (or broken) must not stop a training run from being monitored."""
    from nnlint.catalogue import read_rule_file, rules_directory

    infos = []
    for path in sorted(rules_directory().glob("nr*.py")):
        info = read_rule_file(path)
        if info is not None and info.kind == "runtime":
            infos.append(info)
    return sorted(infos, key=lambda info: info.code)


def _codes(value: Any) -> Optional[tuple[str, ...]]:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    return tuple(str(v).upper() for v in value)


def _selected(code: str, selectors: Optional[Sequence[str]]) -> bool:
    return selectors is None or any(code.startswith(s) for s in selectors)


class Monitor:
    """The runtime monitor. Use :func:`monitor` to build one; enter it with ``with``."""

    def __init__(
        self,
        model: Any,
        optimizer: Any = None,
        mode: Optional[str] = None,
        *,
        fix: Optional[Iterable[str]] = None,
        stop_on: Optional[Iterable[str]] = None,
        check_every: Optional[int] = None,
        sample_every: Optional[int] = None,
        activation_every: Optional[int] = None,
        overhead_budget: Optional[float] = None,
        select: Optional[Iterable[str]] = None,
        ignore: Optional[Iterable[str]] = None,
        options: Optional[Mapping[str, Mapping[str, Any]]] = None,
        sink: Optional[Callable[[Finding], None]] = None,
        use_config: bool = True,
        log_dir: Optional[str | Path] = None,
        distributed: Optional[bool] = None,
    ) -> None:
        file_settings, file_options = _load_settings() if use_config else ({}, {})
        mode = mode if mode is not None else file_settings.get("mode", "warn")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.model = model
        self.optimizer = optimizer
        self.check_every = int(check_every or file_settings.get("check-every", DEFAULT_CHECK_EVERY))
        # An explicit check_every is a promise about how often the host reads: keep it.
        explicit = bool(check_every or file_settings.get("check-every"))
        self.first_check = self.check_every if explicit else min(FIRST_CHECK, self.check_every)
        self.sample_every = int(sample_every or file_settings.get("sample-every", DEFAULT_SAMPLE_EVERY))
        self.activation_every = int(activation_every or file_settings.get("activation-every", 1))
        if self.check_every < 1 or self.sample_every < 1 or self.activation_every < 1:
            raise ValueError("check_every, sample_every and activation_every must be >= 1")
        budget = overhead_budget if overhead_budget is not None else file_settings.get(
            "overhead-budget", DEFAULT_OVERHEAD_BUDGET)
        if not isinstance(budget, (int, float)) or budget < 0:
            raise ValueError(f"overhead_budget must be a fraction >= 0 (0: never adapt), got {budget!r}")
        self.overhead_budget = float(budget)
        selectors = _codes(select if select is not None else file_settings.get("select"))
        ignored = _codes(ignore if ignore is not None else file_settings.get("ignore")) or ()
        fix_codes = _codes(fix if fix is not None else file_settings.get("fix"))
        self.stop_on = set(_codes(stop_on if stop_on is not None else file_settings.get("stop-on")) or ())

        self.detectors: list[Detector] = self._load_detectors(selectors, ignored, file_options, options or {})
        fixable = {d.code for d in self.detectors if d.fixable}
        if mode == "fix":
            self.fix_codes = fixable if fix_codes is None else {c for c in fixable if _selected(c, fix_codes)}
        else:
            self.fix_codes = {c for c in fixable if fix_codes is not None and _selected(c, fix_codes)}

        self.sink: Callable[[Finding], None] = sink if sink is not None else LoggingSink()
        self._findings: list[Finding] = []
        self._fixes: list[AppliedFix] = []
        self._pending_error: Optional[TrainingError] = None
        self._stop_requests: list[Finding] = []
        self._rolled_back = False  # a rollback was applied during the current check
        self._snapshot: Any = None  # last good weights and optimizer state (fix mode, rollback)
        self._snapshot_loss: Optional[float] = None  # the loss level when it was taken
        self._collector: Any = None
        self._entered = False
        self._state_to_load: Optional[dict[str, Any]] = None
        self._history = _History()
        self._observers: list[Any] = [self._history]
        # log_dir comes from the caller only (never from a config file: it writes files).
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.event_log: Any = None  # the EventLog writing log_dir, from start() on
        # None: follow torch.distributed when a process group is initialised (see
        # nnlint.runtime.distributed); False: every rank on its own.
        self.distributed = distributed
        self.rank, self.world_size = 0, 1

    # -- setup ------------------------------------------------------------------

    @staticmethod
    def _load_detectors(
        selectors: Optional[Sequence[str]],
        ignored: Sequence[str],
        file_options: Mapping[str, Mapping[str, Any]],
        options: Mapping[Any, Any],
    ) -> list[Detector]:
        """The selected detectors, loaded and given their options as the engine gives static
        rules theirs: ``options`` (``monitor(options=...)``, by code or name) is checked by
        the configuration's :func:`~nnlint.config.validate_options` (a ``ConfigError``, which
        is a ``ValueError``) and overrides the file's (``file_options``, checked when read)."""
        from nnlint.catalogue import load_rule_class
        from nnlint.config import ConfigError, option_values, runtime_rule, validate_options

        infos = _runtime_rules()
        values: dict[str, dict[str, Any]] = {code: dict(v) for code, v in file_options.items()}
        source = "nnlint.monitor(options=...)"
        for key, given in options.items():
            info = runtime_rule(key, infos, source)
            if not isinstance(given, Mapping):
                raise ConfigError(f"{source}: the options of {info.code} must be a dict, got {given!r}")
            values.setdefault(info.code, {}).update(validate_options(info, given, source))
        detectors: list[Detector] = []
        for info in infos:
            if not (_selected(info.code, selectors) if selectors is not None else info.default):
                continue
            if any(info.code.startswith(s) for s in ignored):
                continue
            detectors.append(load_rule_class(info)(option_values(info, values.get(info.code, {}))))
        return detectors

    def detector(self, code: str) -> Optional[Detector]:
        for detector in self.detectors:
            if detector.code == code:
                return detector
        return None

    def __enter__(self) -> "Monitor":
        self.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(raise_errors=exc_type is None)

    def start(self) -> None:
        """Attach the hooks (``with`` does this)."""
        if self._entered:
            raise RuntimeError("this monitor is already attached")
        from nnlint.runtime.stats import Collector, compiled_original, has_own_forward

        # torch.compile(model): the modules, names and parameters are the original's
        self.model, compiled = compiled_original(self.model)
        if not has_own_forward(self.model):
            names = [name for name, _ in self.model.named_children()]
            raise ValueError(
                f"nnlint.monitor: {type(self.model).__name__} has no forward of its own, so a step of it never "
                f"runs and nothing would be watched. Monitor each model that training calls, with its own "
                f"optimizer (submodules: {', '.join(names) or 'none'}), e.g. "
                f"`with nnlint.monitor(models['G'], opt_g) as mon_g, nnlint.monitor(models['D'], opt_d) as mon_d:`")

        from nnlint.runtime.distributed import rank_and_size

        self.rank, self.world_size = rank_and_size() if self.distributed is not False else (0, 1)
        if self.distributed and self.world_size == 1 and not torch_distributed_ready():
            raise ValueError("nnlint.monitor(distributed=True): no torch.distributed process group is initialised")
        if self.rank != 0 and isinstance(self.sink, LoggingSink):
            self.sink.enabled = False
        # The collector is built from what the selected detectors ask of it.
        settings: dict[str, Any] = {}
        for detector in self.detectors:
            for key, value in detector.collector_settings(detector.code in self.fix_codes).items():
                old = settings.get(key)
                if isinstance(value, bool) or isinstance(old, bool):
                    settings[key] = bool(old) or bool(value)
                elif old is not None and isinstance(value, (int, float)):
                    settings[key] = max(old, value)
                else:
                    settings[key] = value
        self._collector = Collector(
            self.model,
            self.optimizer,
            check_every=self.check_every,
            sample_every=self.sample_every,
            activation_every=self.activation_every,
            overhead_budget=self.overhead_budget,
            world_size=self.world_size,
            compiled=compiled,
            **settings,
        )
        self._collector.after_commit = self._check_due
        self._collector.first_check = self.first_check
        if any("rollback" in d.remedies for d in self.detectors if d.code in self.fix_codes):
            from nnlint.runtime.remedies import Snapshot

            self._snapshot = Snapshot(self.model, self.optimizer)
            self._snapshot.take(step=0)
        if self._state_to_load is not None:
            self._collector.load_state_dict(self._state_to_load)
            self._state_to_load = None
        if self.log_dir is not None and self.event_log is None and self.rank == 0:  # one log per run
            from nnlint.integrations.events import EventLog

            self.event_log = EventLog(self.log_dir).attach(self)
        try:
            self._collector.attach()
        except BaseException:
            self._notify("on_close")
            raise
        self._entered = True

    def close(self, raise_errors: bool = True) -> None:
        """Detach every hook (always), then read and check what is left."""
        collector = self._collector
        if collector is None:
            return
        if not raise_errors:
            # Leaving on an error: the other ranks may not be closing, so the last read
            # is this rank's own (a collective here could wait forever).
            collector.world_size = 1
        try:
            collector.commit()
        finally:
            collector.detach()
            self._entered = False
        try:
            self._check(final=True)
        except TrainingError:
            if raise_errors:
                raise
        finally:
            try:
                flush = getattr(self.sink, "flush", None)
                if callable(flush):
                    flush()
            finally:
                self._notify("on_close")

    # -- public API -----------------------------------------------------------------

    def observe_loss(self, loss: Any) -> None:
        """Record this step's loss (a tensor: no host sync). Enables NR401/NR402."""
        if self._entered:
            self._collector.observe_loss(loss)

    def check(self) -> None:
        """Read back and run the detectors now (one host sync)."""
        self._check(final=False)

    def add_observer(self, observer: Observer) -> None:
        """Call ``observer`` at every check, finding and close (see :class:`Observer`): an
        event log, a status line, a dashboard. It sees what the detectors saw, adds no device
        work, and cannot change a decision; an error it raises is logged, never raised."""
        if observer not in self._observers:
            self._observers.append(observer)

    def remove_observer(self, observer: Observer) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

    def plot(self, out: str | Path) -> Path:
        """Draw the gradient flow so far (per-layer gradient norm over steps, findings marked;
        see :mod:`nnlint.report.plot`) to ``out`` (.png, .svg, .pdf). Uses the event log
        when there is one (``log_dir``), else the history kept in memory. Needs matplotlib."""
        if self.event_log is not None:
            return self.event_log.plot(out)
        from nnlint.report.events import Run
        from nnlint.report.plot import plot_run

        history = self._history
        run = Run(path=type(self.model).__name__, rows=list(history.rows), layers=list(history.layers),
                  findings=[{"code": f.code, "severity": f.severity, "module": f.module, "step": f.step}
                            for f in self._findings])
        return plot_run(run, out)

    @property
    def findings(self) -> list[Finding]:
        return list(self._findings)

    @property
    def fixes(self) -> list[AppliedFix]:
        return list(self._fixes)

    @property
    def step(self) -> int:
        return self._collector.step if self._collector is not None else -1

    @property
    def nonfinite_events(self) -> list[dict[str, Any]]:
        """Every non-finite event seen: step, module, kind (loss/activation/gradient/weight/input)."""
        return [event for detector in self.detectors for event in detector.state.get("events", [])]

    def report(self, format: str = "table", stream: Optional[TextIO] = None) -> None:
        """Print the findings: a rich summary table, or any static-side format (json, ...).
        In a distributed run only rank 0 prints (every rank has the same findings)."""
        if self.rank != 0:
            return
        stream = stream if stream is not None else sys.stdout
        if format == "table":
            from nnlint.runtime.summary import write_table

            write_table(self, stream)
            return
        from nnlint.report import write_report

        if format == "json":
            # The static side's document, plus what only a run has: the remedies applied
            # and every non-finite event (a NaN is never hidden, even one that a fix skipped).
            import io
            import json

            buffer = io.StringIO()
            write_report(self._findings, format, buffer)
            document = json.loads(buffer.getvalue())
            document["runtime"] = {
                "steps": self.step + 1,
                "fixes": [vars(fix).copy() for fix in self._fixes],
                "nonfinite_events": self.nonfinite_events,
            }
            stream.write(json.dumps(document, indent=2, default=str) + "\n")
            return
        write_report(self._findings, format, stream)

    def state_dict(self) -> dict[str, Any]:
        """Windows and running levels of every detector, so a resumed run continues them."""
        if self._collector is not None and self._entered:
            self._check(final=False)
        return {
            "version": 1,
            "detectors": {d.code: d.state_dict() for d in self.detectors},
            "collector": self._collector.state_dict() if self._collector is not None else self._state_to_load,
            "findings": [f.to_json() for f in self._findings],
            "fixes": [vars(f).copy() for f in self._fixes],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for detector in self.detectors:
            if detector.code in state.get("detectors", {}):
                detector.load_state_dict(state["detectors"][detector.code])
        self._findings = [Finding.from_json(f) for f in state.get("findings", [])]
        self._fixes = [AppliedFix(**f) for f in state.get("fixes", [])]
        collector_state = state.get("collector")
        if collector_state is not None:
            if self._collector is not None:
                self._collector.load_state_dict(dict(collector_state))
            else:
                self._state_to_load = dict(collector_state)

    # -- checking -----------------------------------------------------------------

    def _check_due(self) -> None:
        self._check(final=False)

    def _check(self, final: bool) -> None:
        collector = self._collector
        if collector is None:
            return
        close_relu = collector.relu_window_due()
        readback = collector.read(close_relu_window=close_relu)
        if not readback.rows and not readback.dead_units:
            return
        window = Window(
            steps=readback.rows,
            layers=collector.layer_infos(),
            sites=collector.site_infos(),
            dead_units=readback.dead_units,
        )
        fixes_before, findings_before = len(self._fixes), len(self._findings)
        owner = {action: d.code for d in reversed(self.detectors) if d.code in self.fix_codes for action in d.remedies}
        for stats in readback.rows:  # the device-side remedies, applied at their step
            if stats.clipped:
                self._fixes.append(AppliedFix(owner.get("clip-grad-norm", ""), "clip-grad-norm", None, stats.step,
                                              "gradient norm clipped to the run's running level"))
            if stats.skipped:
                self._fixes.append(AppliedFix(owner.get("skip-step", ""), "skip-step", None, stats.step,
                                              "non-finite step: update skipped, weights and optimizer state kept"))
        self._rolled_back = False
        for detector in self.detectors:
            ctx = DetectorContext(detector.code, self._report, self._apply, detector.code in self.fix_codes,
                                  self._learning_rates)
            detector.inspect(window, ctx)
        self._explain_fixes(fixes_before)
        self._notify("on_check", window)
        if self._snapshot is not None and not self._rolled_back:
            self._refresh_snapshot(readback.rows, self._findings[findings_before:], readback.nonfinite_steps)
        stops, self._stop_requests = self._stop_requests, []
        if stops and not self._rolled_back and self._pending_error is None:
            # A rollback in the same check supersedes a stop: the run gets another chance.
            self._pending_error = TrainingError(stops[0])
        if self._pending_error is not None:
            error, self._pending_error = self._pending_error, None
            raise error

    def _refresh_snapshot(self, rows: Sequence[Any], new: Sequence[Finding], nonfinite_steps: int) -> None:
        """Keep the state of this check as the last good one when its steps were healthy (no
        error finding, nothing non-finite, clipped or skipped) and the loss is no higher than
        at the snapshot kept so far: after a back-off, the run must fall again first."""
        losses = sorted(s.loss for s in rows if s.loss is not None and math.isfinite(s.loss))
        if self._snapshot_loss is None and losses and self._snapshot.step == 0:
            first = next(s.loss for s in rows if s.loss is not None and math.isfinite(s.loss))
            self._snapshot_loss = first  # the snapshot taken at the start holds step 0's weights
        if nonfinite_steps or any(f.severity == "error" for f in new) or any(s.skipped or s.clipped for s in rows):
            return
        level = losses[len(losses) // 2] if losses else None
        if level is not None and self._snapshot_loss is not None and \
                level > self._snapshot_loss + 0.1 * abs(self._snapshot_loss):
            return
        self._snapshot.take(step=self.step)
        if level is not None:
            self._snapshot_loss = level

    def _learning_rates(self) -> list[float]:
        from nnlint.runtime.remedies import learning_rates

        return learning_rates(self.optimizer)

    def _explain_fixes(self, since: int) -> None:
        """Every fix applied has a finding that explains it: a remedy whose detector
        reported nothing of that code gets one, naming what was done."""
        explained = {f.code for f in self._findings}
        for fix in self._fixes[since:]:
            if fix.code in explained:
                continue
            explained.add(fix.code)
            where = f" in {fix.module!r}" if fix.module else ""
            self._report(fix.code, f"fix mode applied {fix.action}{where} at step {fix.step}"
                         f"{': ' + fix.detail if fix.detail else ''}", fix.module, fix.step, None, {})

    def _report(
        self, code: str, message: str, module: Optional[str], step: int, severity: Optional[str], extra: dict
    ) -> None:
        detector = self.detector(code)
        pointer = f"nnlint explain {code}"
        if pointer not in message:
            message = f"{message.rstrip()} [{pointer}]"
        finding = Finding(
            code=code,
            name=detector.name if detector is not None else "",
            severity=severity or (detector.severity if detector is not None else "warning"),  # type: ignore[arg-type]
            message=message,
            module=module,
            step=step,
            extra=tuple(sorted(extra.items())),
        )
        self._findings.append(finding)
        self.sink(finding)
        self._notify("on_finding", finding)
        if self._pending_error is None and (
            code in self.stop_on or (self.mode == "raise" and finding.severity == "error")
        ):
            self._pending_error = TrainingError(finding)

    def _apply(self, request: RemedyRequest) -> bool:
        from nnlint.runtime.remedies import REMEDIES, Target

        detector = self.detector(request.code)
        remedy = REMEDIES.get(request.action)
        if detector is None or remedy is None or request.action not in detector.remedies:
            return False
        # A host-side remedy is applied now, at the check, which may be up to
        # check_every steps after the finding it answers: record when it took effect.
        applied_at = max(self.step, request.step)
        target = Target(self.model, self.optimizer, self._collector, self._snapshot, self._stop, FIRST_CHECK)
        if self.world_size > 1:
            # A re-initialisation draws the same numbers on every rank: replicas stay equal.
            from nnlint.runtime.distributed import same_random_numbers

            seed = (applied_at * 1000003 + sum(map(ord, f"{request.code}{request.module}"))) % (2 ** 63)
            with same_random_numbers(self.model, seed):
                applied = remedy(target, request.code, request.module, dict(request.params))
        else:
            applied = remedy(target, request.code, request.module, dict(request.params))
        if applied is None:
            return False
        self._rolled_back = self._rolled_back or target.rolled_back
        for action, module, detail in applied:
            self._fixes.append(AppliedFix(request.code, action, module, applied_at, detail))
        return True

    def _notify(self, event: str, *args: Any) -> None:
        for observer in list(self._observers):
            method = getattr(observer, event, None)
            if method is None:
                continue
            try:
                method(self, *args)
            except Exception:  # an observer (a full disk under the event log) never stops training
                logger.warning("nnlint.monitor: observer %s failed in %s", type(observer).__name__, event,
                               exc_info=True)

    def _stop(self, code: str) -> bool:
        """Stop the run after this check; the finding the detector reported last explains it."""
        for finding in reversed(self._findings):
            if finding.code == code:
                self._stop_requests.append(finding)
                return True
        return False


def torch_distributed_ready() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def monitor(
    model: Any,
    optimizer: Any = None,
    mode: Optional[str] = None,
    **kwargs: Any,
) -> Monitor:
    """Build a :class:`Monitor` for ``model`` (and ``optimizer``); use it as a context manager.

    ``mode``: ``"warn"`` (default) reports only; ``"fix"`` applies every remedy;
    ``"raise"`` raises :class:`TrainingError` at the first error. Keywords: ``fix=[codes]``,
    ``stop_on=[codes]``, ``check_every`` (steps between reads, default 25),
    ``sample_every`` (steps between weight/update-norm samples, default 10),
    ``activation_every`` (steps between module-output statistics, default 1: every step;
    a larger value trades NR201/NR202/NR301 attribution latency for speed),
    ``overhead_budget`` (default 0.05: after 50 steps the monitor times its own host work
    per step (hooks, loss, rows, reads and checks) and what module-output statistics and
    per-parameter gradient norms cost, and takes the statistics every k-th step,
    k >= activation_every (k <= NR201's window / 10 while ReLU-like units are watched: the
    steps between only record unit activity, from hooks on the activation modules, and
    module norms, which NR203 and NR301's forward attribution read, may be spread to every
    64th step), and the gradient norms every j-th step, j <= 8 (1 in fix mode),
    so that the total stays within this fraction of a step where spreading can achieve it; a
    step that takes neither only records its loss; 0 never adapts), ``select``,
    ``ignore``, ``options={"NR101": {...}}``, ``sink=callable``, ``use_config``,
    ``log_dir`` (write an event log there: ``events.jsonl`` and, with tensorboard
    installed, TensorBoard scalars; see :mod:`nnlint.integrations.events`),
    ``distributed`` (None: under an initialised ``torch.distributed`` process group the
    statistics are reduced over ranks at each check, findings and fixes are the same on
    every rank and rank 0 reports; False: every rank on its own).
    Unset values come from ``[tool.nnlint.monitor]``.
    """
    return Monitor(model, optimizer, mode, **kwargs)
