"""The monitor keeps its own cost inside a budget, and sampling never invents findings."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import nnlint  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from helpers import hook_count, mlp, regression_batch, train  # noqa: E402


def _small_mlp() -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(16, 128), nn.ReLU()]
    for _ in range(7):
        layers += [nn.Linear(128, 128), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(128, 1))


def _run(budget: float, steps: int = 120):
    torch.manual_seed(0)
    model = _small_mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nnlint.monitor(model, optimizer, use_config=False, sink=lambda f: None, overhead_budget=budget) as mon:
        train(model, optimizer, steps, mon=mon)
    return model, optimizer, mon


def test_module_output_statistics_are_spread_out_on_a_small_model() -> None:
    # On a small CPU model the statistics of 17 module outputs cost far more than 1% of a step:
    # after calibration the monitor takes them every k-th step only.
    model, optimizer, mon = _run(budget=0.01)
    assert mon._collector.activation_every >= 2
    assert hook_count(model, optimizer) == 0
    _, _, fixed = _run(budget=0.0)
    assert fixed._collector.activation_every == 1  # 0 keeps every step


def test_the_budget_is_a_setting_and_is_validated() -> None:
    with pytest.raises(ValueError, match="overhead_budget"):
        nnlint.monitor(mlp(), None, use_config=False, overhead_budget=-1)


def test_sampled_module_outputs_never_make_a_healthy_layer_look_dead() -> None:
    torch.manual_seed(0)
    model = mlp(width=64, depth=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    # module outputs looked at on 1 step in 50: most windows see a few steps, some none
    with nnlint.monitor(model, optimizer, use_config=False, sink=lambda f: None, activation_every=50,
                        overhead_budget=0, options={"NR201": {"window": 30}}) as mon:
        train(model, optimizer, 300, regression_batch, mon)
    assert [f for f in mon.findings if f.code == "NR201"] == []


def test_the_collector_is_built_from_what_the_selected_detectors_ask() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    mon = nnlint.monitor(model, optimizer, mode="fix", use_config=False, sink=lambda f: None,
                         options={"NR201": {"window": 7}, "NR101": {"clip_factor": 3.0}})
    with mon:
        train(model, optimizer, 2, mon=mon)
    collector = mon._collector
    assert collector.relu_window == 7 and collector.clip_factor == 3.0 and collector.fix_clip and collector.fix_skip
    assert collector.activation_warmup == 5 + 3  # NR203 judges the first 5 steps

    only = nnlint.monitor(model, optimizer, mode="fix", use_config=False, sink=lambda f: None, select=["NR201"])
    with only:
        train(model, optimizer, 2, mon=only)
    assert not only._collector.fix_clip and not only._collector.fix_skip
    assert only._collector.activation_warmup == 0


def test_a_detector_gets_only_the_remedies_it_declares() -> None:
    from nnlint.runtime.detector import RemedyRequest

    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with nnlint.monitor(model, optimizer, mode="fix", use_config=False, sink=lambda f: None) as mon:
        train(model, optimizer, 2, mon=mon)
        assert not mon._apply(RemedyRequest("NR201", "halve-lr", None, 1))  # NR201 offers no such remedy
        assert mon._apply(RemedyRequest("NR401", "halve-lr", None, 1))
    assert optimizer.param_groups[0]["lr"] == 0.005


def test_an_unknown_detector_option_names_a_close_match() -> None:
    with pytest.raises(ValueError, match="did you mean 'clip-factor'"):
        nnlint.monitor(mlp(), None, use_config=False, options={"NR101": {"clip-factr": 2.0}})
    mon = nnlint.monitor(mlp(), None, use_config=False, options={"NR101": {"clip-factor": 2.0}})
    assert mon.detector("NR101").option["clip-factor"] == 2.0


def _device_ops_per_step(mon, model, optimizer, steps: int) -> list[tuple[bool, bool, bool, int]]:
    """(module outputs taken, gradient norms taken, weight sample, statistic ops run) per step."""
    from torch.utils._python_dispatch import TorchDispatchMode

    watched = ("norm", "stack", "index_copy", "amax", "logical_or")

    class Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            if any(word in str(func) for word in watched):
                self.ops += 1
            return func(*args, **(kwargs or {}))

    collector = mon._collector
    rows = []
    for _ in range(steps):
        x, y = regression_batch()
        with Count() as count:
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            mon.observe_loss(loss)
        sampled = collector.step % collector.sample_every == 0
        rows.append((collector._act_step, collector._grad_step, sampled, count.ops))
        if not (collector._act_step or collector._grad_step):
            assert not collector._leaf_handles  # no per-module hooks on such a step
    return rows


def test_a_step_that_takes_no_statistics_runs_no_statistic_work() -> None:
    # Counts device ops, not time: with a budget no cost fits in, the monitor spreads module
    # outputs and gradient norms as far as it may, and a step that takes neither computes
    # nothing but its loss copy (no norm, no stack, no row written).
    from nnlint.runtime.stats import MAX_GRAD_EVERY, MIN_WINDOW_LOOKS

    torch.manual_seed(0)
    model = _small_mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nnlint.monitor(model, optimizer, use_config=False, sink=lambda f: None, overhead_budget=1e-9) as mon:
        train(model, optimizer, 120, mon=mon)
        collector = mon._collector
        assert collector.grad_every == MAX_GRAD_EVERY and collector.activation_every >= 4
        # never so thin that NR201 cannot judge an activity window
        assert collector.activation_every * MIN_WINDOW_LOOKS <= collector.relu_window
        rows = _device_ops_per_step(mon, model, optimizer, 60)
    # a step's row is written when the next one begins: a quiet step after a quiet step
    idle = [not (act or grad or sampled) for act, grad, sampled, _ in rows]
    quiet = [rows[i][3] for i in range(1, len(rows)) if idle[i] and idle[i - 1]]
    assert len(quiet) >= 20
    assert quiet == [0] * len(quiet)
    assert all(ops > 0 for act, grad, sampled, ops in rows if grad)  # the count sees the work
    assert hook_count(model, optimizer) == 0


def test_fix_mode_keeps_gradient_norms_on_every_step() -> None:
    # Its remedies (skip a non-finite step, clip a spike) read every step's norms.
    torch.manual_seed(0)
    model = _small_mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nnlint.monitor(model, optimizer, mode="fix", use_config=False, sink=lambda f: None,
                        overhead_budget=1e-9) as mon:
        train(model, optimizer, 120, mon=mon)
        assert mon._collector.grad_every == 1 and mon._collector.activation_every >= 2


def test_unit_activity_steps_take_no_module_norms() -> None:
    # Counts work, not time: with a budget no cost fits in, module norms are spread to every
    # MAX_NORM_EVERY-th step while NR201 still gets its activity masks every
    # activation_every steps (<= its window / 10), from hooks on the ReLU modules only.
    from torch.utils._python_dispatch import TorchDispatchMode

    from nnlint.runtime.stats import MAX_NORM_EVERY, MIN_WINDOW_LOOKS

    class Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.norms = 0
            self.amax = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            name = str(func)
            self.norms += "vector_norm" in name
            self.amax += "amax" in name
            return func(*args, **(kwargs or {}))

    torch.manual_seed(0)
    model = _small_mlp()
    relus = [m for m in model if isinstance(m, nn.ReLU)]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nnlint.monitor(model, optimizer, use_config=False, sink=lambda f: None, overhead_budget=1e-9) as mon:
        train(model, optimizer, 150, mon=mon)
        collector = mon._collector
        assert collector.norm_every == MAX_NORM_EVERY
        assert collector.activation_every * MIN_WINDOW_LOOKS <= collector.relu_window
        assert collector.norm_every % collector.activation_every == 0
        steps = {"norm": 0, "activity": 0}
        for _ in range(2 * MAX_NORM_EVERY):
            x, y = regression_batch()
            optimizer.zero_grad()
            with Count() as count:
                out = model(x)  # the forward: module-output statistics only
            loss = nn.functional.mse_loss(out, y)
            loss.backward()
            optimizer.step()
            mon.observe_loss(loss)
            if collector._act_step and collector._norm_step:
                steps["norm"] += 1
                assert count.norms >= len(model)  # every module's output
            elif collector._act_step:
                steps["activity"] += 1
                assert count.norms == 0 and count.amax == len(relus)  # one mask update per ReLU
                hooked = sum(len(m._forward_hooks) > 0 for m in model)
                assert hooked == len(relus)  # the Linear layers keep their fast call path
            else:
                assert count.norms == 0 and count.amax == 0
        masks = [s.mask_steps for s in collector.sites if s.mask is not None]
    assert steps["norm"] == 2
    assert steps["activity"] == 2 * MAX_NORM_EVERY // collector.activation_every - 2
    assert len(masks) == len(relus) and min(masks) > 0
    assert hook_count(model, optimizer) == 0
