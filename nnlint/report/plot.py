"""The gradient-flow picture of a monitored run: per-layer gradient norm over steps (log
scale), with every finding marked at its step. Needs matplotlib (``nnlint[plot]``); drawn
with the Agg backend, so it works without a display and never changes the caller's
pyplot state."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from nnlint.report.events import Run, number

SEVERITY_COLOURS = {"error": "#d62728", "warning": "#ff7f0e", "info": "#7f7f7f"}


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def plot_run(run: Run, out: str | Path, *, max_layers: int = 12) -> Path:
    """Write the picture to ``out`` (the format from its suffix: .png, .svg, .pdf)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotUnavailable("plotting needs matplotlib: pip install 'nnlint[plot]'") from None

    series = run.grad_series()
    if len(series) > max_layers:  # keep the first and last layers, and evenly spaced ones between
        names = list(series)
        keep = {names[round(i * (len(names) - 1) / (max_layers - 1))] for i in range(max_layers)}
        series = {name: points for name, points in series.items() if name in keep}
    losses = [(int(r["step"]), number(r.get("loss"))) for r in run.rows]
    losses = [(s, v) for s, v in losses if v is not None]

    figure = Figure(figsize=(10, 6.5 if losses else 5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]}) if losses else [figure.subplots()]
    grads = axes[0]
    for name, points in series.items():
        steps = [s for s, v in points if math.isfinite(v) and v > 0]
        values = [v for s, v in points if math.isfinite(v) and v > 0]
        if values:
            grads.plot(steps, values, label=name or "<model>", linewidth=1.2)
        bad = [s for s, v in points if not math.isfinite(v)]
        if bad:  # a NaN gradient has no place on a log axis: mark it along the top
            grads.plot(bad, [1.0] * len(bad), linestyle="none", marker="x", color="#d62728",
                       transform=grads.get_xaxis_transform())
    if series:
        grads.set_yscale("log")
        grads.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    grads.set_ylabel("gradient norm per layer")
    title = f"{Path(run.path).parent.name or run.path}: {run.steps} steps, {len(run.findings)} finding(s)"
    grads.set_title(title)
    _mark_findings(grads, run.findings)
    if losses:
        loss_axes = axes[1]
        finite = [(s, v) for s, v in losses if math.isfinite(v)]
        loss_axes.plot([s for s, _ in finite], [v for _, v in finite], color="#1f77b4", linewidth=1.0)
        for s, v in losses:
            if not math.isfinite(v):
                loss_axes.axvline(s, color="#d62728", linewidth=0.8, alpha=0.6)
        loss_axes.set_ylabel("loss")
        _mark_findings(loss_axes, run.findings, labels=False)
    axes[-1].set_xlabel("step")
    figure.tight_layout()
    out = Path(out)
    figure.savefig(out)
    return out


def _mark_findings(axes: Any, findings: list[dict[str, Any]], labels: bool = True) -> None:
    """One vertical line per (code, module) at its first step, coloured by severity."""
    seen: set[tuple[Any, Any]] = set()
    for finding in findings:
        key = (finding.get("code"), finding.get("module"))
        step = finding.get("step")
        if key in seen or not isinstance(step, int):
            continue
        seen.add(key)
        colour = SEVERITY_COLOURS.get(str(finding.get("severity")), "#7f7f7f")
        axes.axvline(step, color=colour, linestyle="--", linewidth=1.0, alpha=0.8)
        if labels:
            module = finding.get("module")
            text = f"{finding.get('code')}" + (f" {module}" if module else "")
            axes.annotate(text, xy=(step, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                          va="top", ha="right", fontsize="x-small", color=colour)
