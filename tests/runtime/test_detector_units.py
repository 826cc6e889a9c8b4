"""Detectors on synthetic windows: no model, no torch ops, so every edge case is cheap."""
from __future__ import annotations

import math
import random
from typing import Any, Optional

import pytest

pytest.importorskip("torch")

from nnlint.runtime.detector import DetectorContext, LayerInfo, SiteInfo, StepStats, Window  # noqa: E402
from nnlint._rules.nr101_exploding_gradients import ExplodingGradients  # noqa: E402
from nnlint._rules.nr103_update_ratio_out_of_band import UpdateRatioOutOfBand  # noqa: E402
from nnlint._rules.nr301_non_finite_value import NonFiniteValue  # noqa: E402

LAYERS = [LayerInfo(name, "Linear", (32, 32), order) for order, name in enumerate(["0", "2", "4"])]
SITES = [SiteInfo(name, name, "matmul", 0, order) for order, name in enumerate(["0", "2", "4"])]


class Recorder:
    def __init__(self, code: str, fix: bool = False) -> None:
        self.found: list[tuple[str, Optional[str], int]] = []
        self.remedies: list[Any] = []
        self.ctx = DetectorContext(code, self._report, self._remedy, fix)

    def _report(self, code, message, module, step, severity, extra) -> None:
        self.found.append((message, module, step))

    def _remedy(self, request) -> bool:
        self.remedies.append(request)
        return True


def _window(steps: list[StepStats]) -> Window:
    return Window(steps=steps, layers=LAYERS, sites=SITES)


def _feed(detector, rows: list[StepStats], recorder: Recorder, every: int = 25) -> None:
    for start in range(0, len(rows), every):
        detector.inspect(_window(rows[start:start + every]), recorder.ctx)


def test_nr101_noise_dominated_gradient_is_not_an_explosion() -> None:
    # A plateaued or converged run: the gradient is batch noise around a constant level,
    # so a lucky small norm followed by three doublings happens. Not an explosion.
    rng = random.Random(0)
    rows = []
    for step in range(400):
        norm = abs(rng.gauss(0.0, 1.0)) + 1e-3
        rows.append(StepStats(step, stepped=True, grad_norm={"0": norm * 0.5, "2": norm * 0.5, "4": norm}))
    recorder = Recorder("NR101")
    _feed(ExplodingGradients(), rows, recorder)
    assert recorder.found == []


def test_nr101_growth_without_bound_is_reported_early() -> None:
    norms = [40.0, 45.0, 42.0, 97.0, 190.0, 400.0, 4000.0, 2e7, 5e18]
    rows = [StepStats(s, stepped=True, grad_norm={"0": n, "2": n, "4": n}) for s, n in enumerate(norms)]
    recorder = Recorder("NR101")
    _feed(ExplodingGradients(), rows, recorder)
    assert len(recorder.found) == 1 and recorder.found[0][2] <= 8


def _ratio_rows(ratios: dict[str, float], steps: int, loss: float = 1.0, every: int = 10) -> list[StepStats]:
    rows = []
    for step in range(steps):
        stats = StepStats(step, loss=loss, stepped=True)
        if step % every == 0:
            stats.weight_norm = {k: 1.0 for k in ratios}
            stats.update_norm = dict(ratios)
        rows.append(stats)
    return rows


def test_nr103_low_only_when_every_layer_is_starved() -> None:
    # Early layers starved while the last one moves: vanishing gradients, not the rate.
    recorder = Recorder("NR103")
    _feed(UpdateRatioOutOfBand(), _ratio_rows({"0": 1e-11, "2": 1e-9, "4": 1e-2}, 200), recorder)
    assert recorder.found == []
    # Every layer starved while the loss stays put: the learning rate is too low.
    recorder = Recorder("NR103")
    _feed(UpdateRatioOutOfBand(), _ratio_rows({"0": 1e-9, "2": 1e-8, "4": 1e-8}, 200), recorder)
    assert {module for _, module, _ in recorder.found} == {"0", "2", "4"}
    assert all("too low" in message for message, _, _ in recorder.found)


def test_nr103_ignores_layers_that_do_not_move_at_all() -> None:
    recorder = Recorder("NR103")
    _feed(UpdateRatioOutOfBand(), _ratio_rows({"0": 0.0, "2": 0.0, "4": 0.0}, 200), recorder)
    assert recorder.found == []  # dead (NR201) or frozen with lr 0, not a rate


def test_nr103_a_ratio_hovering_at_the_limit_is_one_finding() -> None:
    rows = []
    for step in range(600):
        stats = StepStats(step, loss=1.0, stepped=True)
        if step % 10 == 0:
            ratio = 0.12 if (step // 10) % 2 else 0.09  # alternates around max_ratio 0.1
            stats.weight_norm, stats.update_norm = {"4": 1.0}, {"4": ratio}
        rows.append(stats)
    recorder = Recorder("NR103")
    _feed(UpdateRatioOutOfBand(), rows, recorder)
    assert len(recorder.found) <= 1


def test_nr103_loss_noise_does_not_repeat_the_low_verdict() -> None:
    rng = random.Random(1)
    rows = _ratio_rows({"0": 1e-9, "2": 1e-9, "4": 1e-9}, 500)
    for stats in rows:
        stats.loss = 1.0 + rng.uniform(-0.6, 0.6)  # single losses cross half the first one
    recorder = Recorder("NR103")
    _feed(UpdateRatioOutOfBand(), rows, recorder)
    assert len(recorder.found) == 3  # one per layer, once


def test_nr301_grad_scaler_calibration_skips_are_counted_not_reported() -> None:
    rows = []
    for step in range(40):
        if step < 8:  # the scaler skipped step(): the optimizer hooks never ran
            rows.append(StepStats(step, loss=1.0, stepped=False,
                                  unapplied_grad_norm={"0": math.inf, "2": 3.0, "4": math.nan}))
        else:
            rows.append(StepStats(step, loss=1.0, stepped=True, grad_norm={"0": 1.0, "2": 1.0, "4": 1.0}))
    detector, recorder = NonFiniteValue(), Recorder("NR301")
    _feed(detector, rows, recorder)
    assert recorder.found == []
    events = {(e["kind"], e["module"]): e for e in detector.state["events"]}
    assert events[("gradient", "0")]["count"] == 8 and events[("gradient", "0")]["first_step"] == 0
    assert events[("gradient", "4")]["note"] == "optimizer step skipped"
    assert ("gradient", "2") not in events


def test_nr301_persistent_skipping_is_reported_once() -> None:
    rows = [StepStats(step, loss=1.0, stepped=False, unapplied_grad_norm={"0": math.inf})
            for step in range(60)]
    recorder = Recorder("NR301")
    _feed(NonFiniteValue(), rows, recorder)
    assert len(recorder.found) == 1 and recorder.found[0][2] == 19 and recorder.found[0][1] == "0"


def test_nr301_accumulation_micro_steps_are_not_skips() -> None:
    rows = []
    for step in range(80):
        stepped = step % 4 == 3
        stats = StepStats(step, loss=1.0, stepped=stepped)
        if stepped:
            stats.grad_norm = {"0": 1.0}
        else:
            stats.unapplied_grad_norm = {"0": 0.5}
        rows.append(stats)
    detector, recorder = NonFiniteValue(), Recorder("NR301")
    _feed(detector, rows, recorder)
    assert recorder.found == [] and detector.state["events"] == []


def test_nr301_names_the_module_whose_output_went_bad_first() -> None:
    stats = StepStats(3, loss=math.nan, stepped=True, grad_norm={"0": math.nan})
    stats.act_rms = {"0": 1.0, "2": math.inf, "4": math.nan}
    stats.input_finite = {"0": True, "2": True, "4": False}
    recorder = Recorder("NR301")
    NonFiniteValue().inspect(_window([stats]), recorder.ctx)
    assert len(recorder.found) == 1
    message, module, step = recorder.found[0]
    assert module == "2" and step == 3 and "Inf" in message


def test_nr301_an_infinity_the_model_turns_finite_again_is_counted_not_reported() -> None:
    stats = StepStats(2, loss=0.5, stepped=True, grad_norm={"0": 1.0, "2": 1.0, "4": 1.0})
    stats.act_rms = {"0": 1.0, "2": math.inf, "4": 0.7}  # "2" is a -inf mask, "4" a softmax
    stats.input_finite = {"0": True, "2": True, "4": False}
    detector, recorder = NonFiniteValue(), Recorder("NR301")
    detector.inspect(_window([stats]), recorder.ctx)
    assert recorder.found == []
    assert detector.state["events"][0]["note"].startswith("contained")
    # A NaN, or an infinity that reaches the loss, is reported.
    for act, loss in (({"0": 1.0, "2": math.nan, "4": 0.7}, 0.5), ({"0": 1.0, "2": math.inf, "4": 0.7}, math.inf)):
        bad = StepStats(2, loss=loss, stepped=True, grad_norm={"0": 1.0})
        bad.act_rms, bad.input_finite = act, {"0": True, "2": True, "4": False}
        recorder = Recorder("NR301")
        NonFiniteValue().inspect(_window([bad]), recorder.ctx)
        assert len(recorder.found) == 1 and recorder.found[0][1] == "2"


def test_nr201_a_window_with_a_non_finite_loss_is_not_a_dead_layer() -> None:
    # NaN activations look dead to the activity masks (NaN > 0 is false). When module norms
    # were not read on any step of the window (spread by the budget), the non-finite loss
    # or gradient of a step still tells that the window is NR301's.
    from nnlint.runtime.detector import DeadUnits
    from nnlint._rules.nr201_dead_relu import DeadRelu

    relu = [SiteInfo("1", "1", "relu", 0, 1, feeder="0")]
    dead = [DeadUnits("1", 32, 32, tuple(range(32)), 20, closed=True)]
    for bad in (StepStats(19, loss=math.nan, stepped=True),
                StepStats(19, loss=1.0, stepped=True, nonfinite_grads=["0.weight"])):
        steps = [StepStats(s, loss=1.0, stepped=True) for s in range(19)] + [bad]
        recorder = Recorder("NR201")
        DeadRelu().inspect(Window(steps=steps, layers=LAYERS, sites=relu, dead_units=dead), recorder.ctx)
        assert recorder.found == []
    healthy = [StepStats(s, loss=1.0, stepped=True) for s in range(20)]
    recorder = Recorder("NR201")
    DeadRelu().inspect(Window(steps=healthy, layers=LAYERS, sites=relu, dead_units=dead), recorder.ctx)
    assert len(recorder.found) == 1  # the same window, all finite: a dead layer
