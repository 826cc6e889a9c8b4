'''
## What it does
Reports a NaN or an infinity in the loss, a module's output, a gradient or a weight.
It names where it came from: the first module, in forward order, whose output is
non-finite while its input was finite (or the code between two modules in a parent's
`forward` when a module's *input* was already non-finite), with the step it happened at.
It tells the three passes apart: the forward pass (which module's output), the loss
(every module output finite, the loss not: the loss function made it) and the backward
pass (outputs and loss finite, a gradient not: which layer's, and which parameter, the
backward reached first).
Every non-finite event is also counted per tensor kind (loss, activation, gradient,
weight, input) and module in `mon.nonfinite_events`. An infinity that the rest of the
step turns finite again (a `-inf` mask before a softmax: the last output, the loss, the
gradients and the weights all finite, and no NaN anywhere) is counted there with the
note `contained` but not reported.

## Why is this bad?
One NaN poisons every weight it touches through the next optimizer step, and from then
on every output is NaN: the run is lost, and the module that produced the first NaN is
no longer visible. Inf counts too (fp16 overflow, `exp` of a large logit, division by
zero). Normalisation layers and clipping can hide the cause for a while; report the
origin, not the symptom.

## Example
```python
import torch
from torch import nn
import nnlint


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 1)

    def forward(self, x):
        return self.fc2(torch.log(self.fc1(x)))  # log of a negative number is NaN


torch.manual_seed(0)
model = Net()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
with nnlint.monitor(model, optimizer, check_every=5) as mon:
    for _ in range(10):
        x, y = torch.randn(16, 4), torch.randn(16, 1)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        mon.observe_loss(loss)
```

## Use instead
```python
import torch
from torch import nn
import nnlint


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 1)

    def forward(self, x):
        return self.fc2(nn.functional.softplus(self.fc1(x)))  # positive, smooth


torch.manual_seed(0)
model = Net()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
with nnlint.monitor(model, optimizer, check_every=5) as mon:
    for _ in range(10):
        x, y = torch.randn(16, 4), torch.randn(16, 1)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        mon.observe_loss(loss)
```

## Options
- `max-skipped-steps` (default 20): consecutive iterations whose gradients overflowed
  and whose optimizer step did not run (a GradScaler skipping) before reporting.
  GradScaler halves its scale at each skip, so 20 skips take the default 65536 below
  0.1: calibration takes a handful.
- `skip-budget` (default 10): in fix mode, non-finite steps in a row before the run is
  stopped with `nnlint.TrainingError` (its finding says where the NaN starts); 0 never
  stops. Skipping rescues a run whose NaN is rare; one that is non-finite at every step
  cannot train, and skipping would only hide it.

## Fix safety
In fix mode a step whose gradients are not all finite is skipped on the device, without
a host sync: the non-finite gradients are zeroed before the optimizer runs (so its
momentum/Adam state stays finite) and the weights are restored from a snapshot taken
before the step, selected by an on-device flag (the pattern of `GradScaler`'s
`found_inf`). Adam's moments still decay by one step. The snapshot costs one copy of the
parameters per step, and only in fix mode. A step whose update makes a weight non-finite
is undone the same way; a sparse gradient (`nn.Embedding(sparse=True)` with `SparseAdam`)
is zeroed through its values; with a closure optimizer (`LBFGS`) every evaluation of the
closure is checked, a non-finite one is zeroed before the optimizer sees it and the step
is undone, so no NaN reaches the weights or the optimizer's state. When the loss is
observed before `optimizer.step()`, a step with a non-finite loss is skipped too. After
`skip-budget` non-finite steps in a row the run is stopped with `nnlint.TrainingError`.
With a `GradScaler`, the scaler already skips `step()` on overflowing gradients; those iterations are counted in
`mon.nonfinite_events` (kind `gradient`, note `optimizer step skipped`) but its first
calibration skips are normal and are not reported: only `max-skipped-steps` skips in a
row are (the gradients overflow whatever the scale). Skipping does not cure a NaN made in every forward pass (the
finding names the module to fix); it keeps the weights finite meanwhile.

## Source
`003_1540c0685162747f.txt` (exploding gradients make the update overflow to NaN) and
`001_05b9fd847e40edfb.txt` (removing batch normalisation exposed a network that output
NaN after one or two iterations; the normalisation had hidden the real cause, a bad
initialisation), `000_15ef46e869a43bad.txt` (unstable gradients).
'''
from __future__ import annotations

import math
from typing import Any, Optional

from nnlint.runtime.detector import Detector, DetectorContext, SiteInfo, StepStats, Window


def _what(value: float) -> str:
    return "NaN" if math.isnan(value) else "Inf"


def _parent(name: str) -> str:
    return name.rpartition(".")[0]


def _common_parent(a: str, b: str) -> str:
    parts_a, parts_b = a.split(".") if a else [], b.split(".") if b else []
    common = []
    for x, y in zip(parts_a[:-1], parts_b[:-1]):
        if x != y:
            break
        common.append(x)
    return ".".join(common)


class NonFiniteValue(Detector):
    code = "NR301"
    name = "non-finite-value"
    severity = "error"
    default = True
    fixable = True
    remedies = ("stop-training", "skip-step")
    options = {"max-skipped-steps": 20, "skip-budget": 10}
    option_ranges = {"max-skipped-steps": {"minimum": 1}, "skip-budget": {"minimum": 0}}

    def collector_settings(self, fixing: bool) -> dict[str, Any]:
        # skipping runs on the device, every step, around the optimizer's step
        return {"fix_skip": fixing}

    def initial_state(self) -> dict[str, Any]:
        return {"events": [], "in_episode": False, "skip_run": 0, "skip_reported": False, "skipped_run": 0,
                "stopped": False}

    def _event(self, kind: str, module: Optional[str], step: int, note: str = "") -> None:
        for event in self.state["events"]:
            if event["kind"] == kind and event["module"] == module and event.get("note", "") == note:
                if event["last_step"] != step:
                    event["count"] += 1
                    event["last_step"] = step
                return
        self.state["events"].append(
            {"kind": kind, "module": module, "first_step": step, "last_step": step, "count": 1, "note": note}
        )

    def _skipped_overflow(self, stats: StepStats, ctx: DetectorContext) -> None:
        """Gradients that overflowed in an iteration whose optimizer step never ran.

        That is what a GradScaler does with an fp16 overflow: it skips ``step()`` and
        lowers the scale. Its first calibration skips are normal: they are counted as
        events but reported only when the skipping goes on for ``max_skipped_steps``
        iterations in a row (the scale cannot get low enough: the gradients themselves
        overflow).
        """
        bad = [name for name, value in stats.unapplied_grad_norm.items() if not math.isfinite(value)]
        if stats.stepped:
            if not any(not math.isfinite(v) for v in stats.grad_norm.values()):
                self.state["skip_run"], self.state["skip_reported"] = 0, False
            return
        if not bad:
            return  # a gradient-accumulation micro-step with finite gradients
        for name in bad:
            self._event("gradient", name, stats.step, note="optimizer step skipped")
        self.state["skip_run"] += 1
        if self.state["skip_run"] >= int(self.option["max-skipped-steps"]) and not self.state["skip_reported"]:
            self.state["skip_reported"] = True
            ctx.report(
                f"non-finite gradients in {len(bad)} layer(s) (first {bad[0]!r}) and no optimizer step for "
                f"{self.state['skip_run']} iterations in a row: a GradScaler keeps skipping, so the "
                f"gradients overflow whatever the scale",
                module=bad[0],
                step=stats.step,
            )

    def origin(self, stats: StepStats, sites: list[SiteInfo]) -> Optional[tuple[str, Optional[str], str]]:
        """(kind, module, description) of the first non-finite activation of a step."""
        if not stats.act_rms:  # a step whose module outputs were not looked at
            return None
        previous: Optional[SiteInfo] = None
        for site in sites:
            rms = stats.act_rms.get(site.name)
            if rms is None:
                continue
            if not math.isfinite(rms):
                label = repr(site.module) if site.module else "the model"
                if stats.input_finite.get(site.name, True):
                    return ("activation", site.module,
                            f"the output of {label} is {_what(rms)} while its input was finite")
                if previous is None:
                    return ("input", site.module, f"the input batch reaching {label} is already non-finite")
                parent = _common_parent(previous.module, site.module)
                owner = repr(parent) if parent else "the model"
                return ("activation", parent,
                        f"code in the forward of {owner} between {previous.module!r} and "
                        f"{site.module!r} made a {_what(rms)} (the input of {label} is non-finite)")
            previous = site
        return None

    @staticmethod
    def _contained(stats: StepStats, sites: list[SiteInfo]) -> bool:
        """Only infinities (no NaN) in activations, and the last output, the loss and
        every gradient and weight of the step finite."""
        values = [stats.act_rms[s.name] for s in sites if s.name in stats.act_rms]
        if not values or not math.isfinite(values[-1]) or any(math.isnan(v) for v in values):
            return False
        if stats.loss is not None and not math.isfinite(stats.loss):
            return False
        numbers = [*stats.grad_norm.values(), *stats.unapplied_grad_norm.values(), *stats.weight_norm.values()]
        return all(math.isfinite(v) for v in numbers)

    def inspect(self, window: Window, ctx: DetectorContext) -> None:
        sites = sorted(window.sites, key=lambda s: s.order)
        forward_order = {layer.name: layer.order for layer in window.layers}
        for stats in window.steps:
            self._skipped_overflow(stats, ctx)
            kinds: list[str] = []
            origin = self.origin(stats, sites)
            if origin is not None and self._contained(stats, sites):
                # An infinity that later modules turn finite again (a -inf mask before a
                # softmax, a clamp): counted, never hidden, but not a finding.
                self._event(origin[0], origin[1], stats.step, note="contained: later outputs finite")
                origin = None
            if origin is not None:
                self._event(origin[0], origin[1], stats.step)
                kinds.append("module outputs")
            loss_bad = stats.loss is not None and not math.isfinite(stats.loss)
            if loss_bad:
                self._event("loss", None, stats.step)
                kinds.append("loss")
            # The backward reaches the layers nearest the output first: the first non-finite
            # gradient it made is the one latest in forward order.
            bad_grads = sorted((name for name, value in stats.grad_norm.items() if not math.isfinite(value)),
                               key=lambda name: -forward_order.get(name, -1))
            for name in bad_grads:
                self._event("gradient", name, stats.step)
            if bad_grads:
                kinds.append(f"gradients of {len(bad_grads)} layer(s)")
                if stats.stepped and not stats.skipped:
                    for name in bad_grads:  # the update just applied them to the weights
                        self._event("weight", name, stats.step)
            bad_weights = [name for name, value in stats.weight_norm.items() if not math.isfinite(value)]
            for name in bad_weights:
                self._event("weight", name, stats.step)
            if bad_weights:
                kinds.append(f"weights of {len(bad_weights)} layer(s)")
            self._count_skips(stats, bool(kinds), ctx)
            if not kinds:
                self.state["in_episode"] = False
                continue
            unchecked = not stats.act_rms and bool(sites)  # activation_every > 1 skipped this step
            if self.state["in_episode"]:
                if origin is not None and not self.state.get("episode_named", True):
                    # The episode began on an unchecked step: name the module at the first
                    # checked one.
                    self.state["episode_named"] = True
                    where = self._forward_message(origin, stats.step)
                    self.state["episode_where"] = where
                    ctx.report(f"{where} (non-finite since step {self.state.get('episode_start')})",
                               module=origin[1], step=stats.step)
                continue
            self.state["in_episode"] = True
            self.state["episode_start"] = stats.step
            self.state["episode_named"] = origin is not None or not unchecked
            module, message = self._describe(stats, origin, loss_bad, bad_grads, bad_weights, unchecked)
            self.state["episode_where"] = message
            message += f" Non-finite this step: {', '.join(kinds)}."
            if stats.skipped:
                message += " Fix mode skipped the update (weights and optimizer state kept)."
            ctx.report(message, module=module, step=stats.step)

    def _count_skips(self, stats: StepStats, bad: bool, ctx: DetectorContext) -> None:
        """Fix mode skips a step with non-finite gradients; when every step is non-finite,
        skipping only hides a run that cannot train: after ``skip_budget`` steps in a row,
        stop it."""
        if not stats.stepped or not ctx.fix_enabled:
            return
        if not bad:
            self.state["skipped_run"], self.state["skipped_in_run"] = 0, 0
            return
        self.state["skipped_run"] = self.state.get("skipped_run", 0) + 1
        self.state["skipped_in_run"] = self.state.get("skipped_in_run", 0) + int(stats.skipped)
        budget = int(self.option["skip-budget"])
        if budget <= 0 or self.state["skipped_run"] < budget or self.state.get("stopped"):
            return
        self.state["stopped"] = True
        where = self.state.get("episode_where") or "non-finite values"
        run, skipped = self.state["skipped_run"], self.state["skipped_in_run"]
        ctx.report(
            f"stopping the run at step {stats.step}: {run} steps in a row were non-finite ({skipped} of them "
            f"skipped by fix mode; skip_budget {budget}), so training cannot make progress. Where the NaN "
            f"starts: {where}",
            module=None,
            step=stats.step,
        )
        if not ctx.remedy("stop-training", module=None, step=stats.step):
            self.state["stopped"] = False

    @staticmethod
    def _forward_message(origin: tuple[str, Optional[str], str], step: int) -> str:
        kind, module, description = origin
        if kind == "input":
            return (f"NaN/Inf in the data at step {step}: {description}. Likely cause: the data pipeline "
                    f"(a missing value, a division by a zero standard deviation when normalising). Fix: check "
                    f"the batch with torch.isfinite(x).all() where it is made, and clean or drop bad samples.")
        return (f"NaN/Inf made in the forward pass at step {step}: {description}. Likely cause: an operation "
                f"outside its domain there (log/sqrt of a value <= 0, a division by zero, exp of a large "
                f"value, an fp16 overflow), or weights that diverged first. Fix: keep the argument in range "
                f"(softplus/clamp_min(eps) before log or sqrt, an eps in denominators, log_softmax instead of "
                f"log(softmax)), or lower the learning rate if weights grew.")

    def _describe(
        self,
        stats: StepStats,
        origin: Optional[tuple[str, Optional[str], str]],
        loss_bad: bool,
        bad_grads: list[str],
        bad_weights: list[str],
        unchecked: bool,
    ) -> tuple[Optional[str], str]:
        """(module, message) naming the pass that made the first non-finite value."""
        step = stats.step
        if origin is not None:
            return origin[1], self._forward_message(origin, step)
        params = [p for p in stats.nonfinite_grads if p.rpartition(".")[0] in bad_grads[:1]] or \
            stats.nonfinite_grads[:1]
        param = f" (parameter {params[0]!r})" if params else ""
        if unchecked:
            if loss_bad or bad_grads:
                return None, (f"non-finite {'loss' if loss_bad else 'gradient'} at step {step}; module outputs "
                              f"were not checked on this step (activation_every > 1): the module that made it "
                              f"is named at the next checked step.")
        if loss_bad:
            return None, (f"NaN/Inf in the loss at step {step}: the model output was finite, the loss function "
                          f"made the NaN. Likely cause: a hand-written loss taking log of a prediction <= 0 "
                          f"(or >= 1 in log(1 - p)), a division by zero or sqrt of a negative. Fix: compute it "
                          f"from logits with a stable built-in (F.binary_cross_entropy_with_logits, "
                          f"F.cross_entropy, log_softmax), or clamp the argument (p.clamp(eps, 1 - eps)).")
        if bad_grads:
            loss_known = stats.loss is not None
            if loss_known:
                return bad_grads[0], (
                    f"NaN/Inf made in the backward pass at step {step}: the module outputs and the loss were "
                    f"finite, the gradient of {bad_grads[0]!r}{param} is not (the first non-finite gradient "
                    f"the backward reached; {len(bad_grads)} layer(s) in all). Likely cause: a derivative that "
                    f"is infinite at a finite input (sqrt or a norm at 0, pow with a fractional exponent at 0, "
                    f"asin/acos at +-1) or a gradient overflow (fp16 without a GradScaler). Fix: add an eps "
                    f"(sqrt(x + 1e-8)), use torch.amp.GradScaler with fp16.")
            return bad_grads[0], (
                f"non-finite gradient at step {step} in {bad_grads[0]!r}{param} while every module output was "
                f"finite: the loss or the backward made it (call mon.observe_loss(loss) to tell them apart). "
                f"Look for log/sqrt/division in the loss and for sqrt/norm at 0.")
        module = bad_weights[0] if bad_weights else None
        return module, (f"non-finite weights in {module!r} at step {step} while the gradients were finite: the "
                        f"optimizer's update made them (a learning rate far too high, or an optimizer state "
                        f"that divides by zero, e.g. eps=0). Fix: lower the learning rate; keep eps > 0.")
