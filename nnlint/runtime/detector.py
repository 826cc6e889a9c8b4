"""The host side of the runtime monitor: what a detector sees and how it reports.

Detectors (``rules/nr*.py``) never touch the device. The monitor keeps every statistic
on the device and, every ``check_every`` steps, reads them back in one transfer and
hands the detectors plain Python numbers: one :class:`StepStats` per training step of
the window. This module imports no torch, so the catalogue and ``import nnlint`` stay light.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple


@dataclass(frozen=True)
class LayerInfo:
    """A module that owns trainable parameters directly (``recurse=False``)."""

    name: str
    kind: str  # the module's class name: "Linear", "Conv2d", "LayerNorm", ...
    weight_shape: Tuple[int, ...]  # shape of its ``weight`` (or first parameter); () if none
    order: int  # position in forward order (first call), registration order if never called

    @property
    def is_matmul(self) -> bool:
        """A layer that multiplies by a weight matrix (Linear, ConvNd, Embedding excluded)."""
        return len(self.weight_shape) >= 2 and self.kind != "Embedding" and "Norm" not in self.kind


@dataclass(frozen=True)
class SiteInfo:
    """One call site of a module in the forward pass. A module called k times is k sites."""

    name: str  # module name, with "#k" appended for its (k+1)-th call in one step (k > 0)
    module: str  # dotted module name ("" for the root)
    kind: str  # "relu" | "sigmoid" | "tanh" | "matmul" | "other"
    call: int
    order: int  # forward order of the first step the site was seen
    feeder: Optional[str] = None  # activation sites: the parametrised module that ran just before


@dataclass
class StepStats:
    """One training step, read back from the device. Missing statistics are absent keys."""

    step: int
    loss: Optional[float] = None
    stepped: bool = False  # the optimizer's step() ran in this iteration
    grad_norm: dict[str, float] = field(default_factory=dict)  # per layer
    weight_norm: dict[str, float] = field(default_factory=dict)  # per layer (sampled steps)
    update_norm: dict[str, float] = field(default_factory=dict)  # per layer (sampled steps)
    act_rms: dict[str, float] = field(default_factory=dict)  # per site: rms of the output
    input_finite: dict[str, bool] = field(default_factory=dict)  # per site
    saturated: dict[str, float] = field(default_factory=dict)  # per sigmoid/tanh site: fraction
    # per layer: gradients of an iteration whose optimizer step did not run (a GradScaler
    # skip or a gradient-accumulation micro-step), still scaled if a GradScaler scaled them
    unapplied_grad_norm: dict[str, float] = field(default_factory=dict)
    clipped: bool = False  # the monitor clipped this step's gradients (fix mode)
    skipped: bool = False  # the monitor skipped this step's update (fix mode)
    # parameters ("fc1.weight") whose gradient was non-finite, in the optimizer's order
    nonfinite_grads: list[str] = field(default_factory=list)

    @property
    def total_grad_norm(self) -> Optional[float]:
        if not self.grad_norm:
            return None
        return math.sqrt(sum(v * v for v in self.grad_norm.values()))


@dataclass(frozen=True)
class DeadUnits:
    """ReLU units never active during a whole activity window."""

    site: str
    dead: int
    total: int
    indices: Tuple[int, ...]
    steps: int  # steps of the window whose module outputs were looked at
    closed: bool = True  # False: a look at a window still open (a whole layer dead early)


@dataclass
class Window:
    """What the detectors see at one check: the steps since the previous check."""

    steps: list[StepStats]
    layers: Sequence[LayerInfo]  # in forward order
    sites: Sequence[SiteInfo]  # in forward order
    dead_units: Optional[list[DeadUnits]] = None  # set when a ReLU activity window closed

    def matmul_layers(self) -> list[LayerInfo]:
        return [layer for layer in self.layers if layer.is_matmul]


@dataclass(frozen=True)
class RemedyRequest:
    """A detector's request for the monitor to repair something (executed in fix mode)."""

    code: str
    action: str  # one of the requesting detector's ``remedies``
    module: Optional[str]
    step: int
    params: Tuple[Tuple[str, Any], ...] = ()


class DetectorContext:
    """Passed to :meth:`Detector.inspect`: report findings and request remedies."""

    def __init__(
        self,
        code: str,
        report: Callable[..., None],
        request: Callable[[RemedyRequest], bool],
        fix_enabled: bool,
        learning_rates: Optional[Callable[[], list[float]]] = None,
    ) -> None:
        self.code = code
        self._report = report
        self._request = request
        self.fix_enabled = fix_enabled
        self._learning_rates = learning_rates

    def learning_rates(self) -> list[float]:
        """The optimizer's current learning rate per param group (empty without one)."""
        return self._learning_rates() if self._learning_rates is not None else []

    def report(
        self,
        message: str,
        *,
        module: Optional[str],
        step: int,
        severity: Optional[str] = None,
        **extra: Any,
    ) -> None:
        self._report(self.code, message, module, step, severity, extra)

    def remedy(self, action: str, *, module: Optional[str], step: int, **params: Any) -> bool:
        """Ask for a remedy; returns whether it was applied (only in fix mode for this code)."""
        if not self.fix_enabled:
            return False
        return self._request(
            RemedyRequest(self.code, action, module, step, tuple(sorted(params.items())))
        )


class Detector:
    """Base of the runtime rules (``rules/nr*.py``), the runtime counterpart of
    :class:`nnlint.rule.Rule`. A detector declares, as literal class attributes the
    catalogue reads without importing it:

    - ``code`` (``NRxxx``), ``name``, ``severity``, ``default``, ``fixable``;
    - ``options``: option name in kebab-case (``"clip-factor"``, as static rules spell
      theirs) -> default, with optional ``option_ranges`` bounds. Users set them in
      ``[tool.nnlint.NRxxx]``, ``[tool.nnlint.monitor.NRxxx]`` or
      ``nnlint.monitor(options={"NRxxx": {...}})`` (``clip_factor`` is accepted as the
      same option), all checked by :func:`nnlint.config.validate_options`; the detector
      reads the merged values as ``self.option["clip-factor"]``;
    - ``remedies``: the repairs it may request through ``ctx.remedy`` in fix mode (see
      :mod:`nnlint.runtime.remedies`); a request for any other is refused.

    It says which statistics it needs with :meth:`collector_settings` and judges them in
    :meth:`inspect`, called with each window of read-back steps (a static rule's entry
    point is ``check(ctx)``; the catalogue refuses a detector that defines ``check``).
    ``self.state`` holds everything a detector remembers between windows, as plain
    Python values, so that :meth:`Monitor.state_dict` can save and restore it.
    """

    code: str = ""
    name: str = ""
    severity: str = "warning"
    default: bool = True
    fixable: bool = False
    options: Mapping[str, Any] = {}
    option_ranges: Mapping[str, Mapping[str, Any]] = {}
    remedies: Tuple[str, ...] = ()

    def __init__(self, options: Optional[Mapping[str, Any]] = None) -> None:
        """``options``: values checked by :func:`nnlint.config.validate_options` (the monitor
        passes them); the class defaults fill in the rest."""
        unknown = sorted(set(options or {}) - set(type(self).options))
        if unknown:
            raise ValueError(f"{self.code}: unknown option(s) {unknown}; its options are {sorted(type(self).options)}")
        merged = dict(type(self).options)
        merged.update(options or {})
        # a Mapping, read only by contract; a plain dict so that a detector still pickles
        self.option: Mapping[str, Any] = merged
        self.state: dict[str, Any] = self.initial_state()

    def initial_state(self) -> dict[str, Any]:
        return {}

    def collector_settings(self, fixing: bool) -> dict[str, Any]:
        """Keyword arguments for the statistics collector (:class:`nnlint.runtime.stats.Collector`)
        this detector needs; ``fixing``: its remedies are on. Settings of several detectors
        merge: flags by "or", numbers by the largest."""
        return {}

    def inspect(self, window: Window, ctx: DetectorContext) -> None:  # pragma: no cover - abstract
        """Judge the steps read back since the previous window; report through ``ctx``."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.state)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        fresh = self.initial_state()
        fresh.update(copy.deepcopy(dict(state)))
        self.state = fresh


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return math.nan
    mid = n // 2
    return ordered[mid] if n % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def finite(value: Optional[float]) -> bool:
    return value is not None and math.isfinite(value)
