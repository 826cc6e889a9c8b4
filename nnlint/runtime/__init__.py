"""The runtime half of nnlint: ``with nnlint.monitor(model, optimizer): ...``.

Importing this package imports torch (lazily, on first use of :func:`monitor`). The
detectors live in ``rules/nr*.py``; see :mod:`nnlint.runtime.monitor` for the design.
"""
from __future__ import annotations

from nnlint.runtime.detector import (
    DeadUnits,
    Detector,
    DetectorContext,
    LayerInfo,
    SiteInfo,
    StepStats,
    Window,
)
from nnlint.runtime.monitor import AppliedFix, LoggingSink, Monitor, TrainingError, monitor

__all__ = [
    "AppliedFix",
    "DeadUnits",
    "Detector",
    "DetectorContext",
    "LayerInfo",
    "LoggingSink",
    "Monitor",
    "SiteInfo",
    "StepStats",
    "TrainingError",
    "Window",
    "monitor",
]
