"""Mixed precision, multi-input modules, conv channels, resumed ReLU windows, finer control."""
from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import nnlint  # noqa: E402
from nnlint.runtime import TrainingError  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from helpers import mlp, regression_batch, standard_normal_relu_net, train  # noqa: E402


def _amp_run(model, optimizer, steps, init_scale, backoff=0.5, mon=None):
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale, backoff_factor=backoff)
    for _ in range(steps):
        x, y = regression_batch()
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.float16):
            loss = nn.functional.mse_loss(model(x).float(), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if mon is not None:
            mon.observe_loss(loss)
    return scaler


def test_grad_scaler_calibration_is_counted_not_reported_and_warn_is_bit_identical() -> None:
    results = []
    for monitored in (False, True):
        torch.manual_seed(0)
        model = mlp(64, 3)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        torch.manual_seed(1)
        if monitored:
            with nnlint.monitor(model, optimizer, check_every=10, use_config=False) as mon:
                scaler = _amp_run(model, optimizer, 40, 2.0**24, mon=mon)
        else:
            scaler = _amp_run(model, optimizer, 40, 2.0**24)
        results.append(model)
    assert scaler.get_scale() < 2.0**24  # the scaler did skip some steps
    for a, b in zip(results[0].parameters(), results[1].parameters()):
        assert torch.equal(a, b)
    assert mon.findings == []
    skipped = [e for e in mon.nonfinite_events if e.get("note") == "optimizer step skipped"]
    assert skipped and all(e["kind"] == "gradient" and e["first_step"] == 0 for e in skipped)


def test_grad_scaler_that_never_finds_a_scale_is_reported() -> None:
    torch.manual_seed(0)
    model = mlp(64, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with nnlint.monitor(model, optimizer, check_every=10, use_config=False) as mon:
        _amp_run(model, optimizer, 30, 2.0**60, backoff=0.99, mon=mon)  # barely lowers the scale
    found = [f for f in mon.findings if f.code == "NR301"]
    assert len(found) == 1 and found[0].step == 19 and "GradScaler" in found[0].message
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_non_finite_second_input_is_blamed_on_the_code_before_the_module() -> None:
    class Ratio(nn.Module):  # two inputs, no parameters
        def forward(self, a, b):
            return a * b

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(16, 8)
            self.ratio = Ratio()
            self.head = nn.Linear(8, 1)

        def forward(self, x):
            h = self.fc(x)
            gate = torch.log(-h.abs() - 1.0)  # NaN, made in this forward, not in a module
            return self.head(self.ratio(h, gate))

    torch.manual_seed(0)
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    with nnlint.monitor(model, optimizer, check_every=4, use_config=False) as mon:
        train(model, optimizer, 4, mon=mon)
    found = [f for f in mon.findings if f.code == "NR301"]
    assert found and found[0].module == "" and found[0].step == 0
    assert "'fc'" in found[0].message and "'ratio'" in found[0].message


def test_no_backward_hooks_so_inplace_relu_works() -> None:
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(inplace=True), nn.Linear(32, 32), nn.ReLU(inplace=True),
                          nn.Linear(32, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def backward_hooks() -> int:
        return sum(len(m._backward_hooks) + len(m._backward_pre_hooks) for m in model.modules())

    with nnlint.monitor(model, optimizer, check_every=5, use_config=False) as mon:
        assert backward_hooks() == 0
        train(model, optimizer, 10, mon=mon)
    assert mon.findings == []


def test_a_conv_unit_is_a_channel() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3, padding=1)
    with torch.no_grad():
        conv.bias[:6] = -100.0  # six of eight channels never fire
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with nnlint.monitor(model, optimizer, check_every=5, options={"NR201": {"window": 10}},
                        use_config=False) as mon:
        train(model, optimizer, 10, lambda: (torch.randn(4, 3, 8, 8), torch.randn(4, 1)), mon)
    dead = [f for f in mon.findings if f.code == "NR201"]
    assert len(dead) == 1 and dict(dead[0].extra) == {"dead": 6, "units": 8}


def test_resumed_run_keeps_the_relu_activity_window() -> None:
    torch.manual_seed(0)
    model = mlp(32, 1)
    with torch.no_grad():
        model[0].bias.copy_(torch.linspace(-1.0, 1.0, 32))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    options = {"NR201": {"window": 100}}
    with nnlint.monitor(model, optimizer, check_every=5, options=options, use_config=False) as first:
        train(model, optimizer, 10, mon=first)
    saved = first.state_dict()
    before = saved["collector"]["relu_masks"]["1"].clone()
    zeros = lambda: (torch.zeros(8, 16), torch.zeros(8, 1))  # only units with a positive bias fire
    alive_on_zeros = model[0].bias > 0
    assert before.sum() > alive_on_zeros.sum()
    second = nnlint.monitor(model, optimizer, check_every=5, options=options, use_config=False)
    second.load_state_dict(saved)
    with second:
        train(model, optimizer, 2, zeros, mon=second)
        mask = second._collector.sites[1].mask
        assert torch.equal(mask, before | alive_on_zeros)
        assert second._collector.relu_window_start == first._collector.relu_window_start


def test_stop_on_raises_in_warn_mode() -> None:
    torch.manual_seed(0)
    hidden = nn.Linear(16, 64)
    nn.init.constant_(hidden.bias, -10.0)
    model = nn.Sequential(hidden, nn.ReLU(), nn.Linear(64, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(TrainingError) as info:
        with nnlint.monitor(model, optimizer, check_every=5, stop_on=["NR201"],
                            options={"NR201": {"window": 10}}, use_config=False) as mon:
            train(model, optimizer, 30, mon=mon)
    assert info.value.finding.code == "NR201" and info.value.finding.severity == "warning"
    assert mon.step < 29  # it stopped the loop


def test_fix_only_selected_codes() -> None:
    torch.manual_seed(0)
    hidden = nn.Linear(16, 64)
    nn.init.constant_(hidden.bias, -10.0)
    model = nn.Sequential(hidden, nn.ReLU(), nn.Linear(64, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with nnlint.monitor(model, optimizer, mode="fix", fix=["NR301"], check_every=5,
                        options={"NR201": {"window": 10}}, use_config=False) as mon:
        train(model, optimizer, 20, mon=mon)
    assert any(f.code == "NR201" for f in mon.findings) and mon.fixes == []


def test_host_side_remedies_are_dated_when_applied() -> None:
    torch.manual_seed(0)
    model = standard_normal_relu_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    with nnlint.monitor(model, optimizer, mode="fix", check_every=5, use_config=False) as mon:
        train(model, optimizer, 10, lambda: regression_batch(32, 64), mon)
    finding = next(f for f in mon.findings if f.code == "NR203")
    reinit = [f for f in mon.fixes if f.action == "kaiming-reinit"]
    assert finding.step == 0  # the first forward pass, with the initial weights, is judged
    assert reinit and all(f.step == 4 for f in reinit)  # applied at the check after step 4


def test_bf16_autocast_warn_mode_is_bit_identical() -> None:
    models = []
    for monitored in (False, True):
        torch.manual_seed(0)
        model = mlp(32, 2)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        torch.manual_seed(1)
        mon = nnlint.monitor(model, optimizer, check_every=3, sample_every=2, use_config=False)
        if monitored:
            mon.start()
        for _ in range(12):
            x, y = regression_batch()
            optimizer.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = nn.functional.mse_loss(model(x).float(), y)
            loss.backward()
            optimizer.step()
            mon.observe_loss(loss)
        mon.close()
        models.append(model)
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(a, b)


def test_json_report_counts_every_non_finite_event_and_fix() -> None:
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    calls = {"n": 0}

    def batch():
        calls["n"] += 1
        x, y = regression_batch()
        if calls["n"] in (3, 9):
            x[0, 0] = math.nan
        return x, y

    with nnlint.monitor(model, optimizer, mode="fix", check_every=5, use_config=False) as mon:
        train(model, optimizer, 12, batch, mon)
    out = io.StringIO()
    mon.report(format="json", stream=out)
    runtime = json.loads(out.getvalue())["runtime"]
    assert runtime["steps"] == 12
    assert [f["step"] for f in runtime["fixes"] if f["action"] == "skip-step"] == [2, 8]
    kinds = {e["kind"] for e in runtime["nonfinite_events"]}
    assert {"input", "loss", "gradient"} <= kinds
    loss_event = next(e for e in runtime["nonfinite_events"] if e["kind"] == "loss")
    assert loss_event["count"] == 2 and loss_event["first_step"] == 2 and loss_event["last_step"] == 8


def test_fault_suite_smoke() -> None:
    bench = Path(__file__).resolve().parents[2] / "bench"
    sys.path.insert(0, str(bench))
    try:
        import fault_suite
    finally:
        sys.path.remove(str(bench))
    cases = {case.name: case for case in fault_suite.CASES}
    mon, finite, _, _ = fault_suite.run(cases["log-negative"], "warn", 30)
    assert [f.code for f in mon.findings][:1] == ["NR301"] and mon.findings[0].step == 0
    mon, finite, _, _ = fault_suite.run(cases["healthy-amp-scaler"], "warn", 30)
    assert mon.findings == [] and finite


def test_without_an_optimizer_the_backward_gradients_are_watched() -> None:
    torch.manual_seed(0)
    model = mlp()
    calls = {"n": 0}
    with nnlint.monitor(model, None, check_every=5, use_config=False) as mon:
        for _ in range(10):
            calls["n"] += 1
            x, y = regression_batch()
            model.zero_grad()
            loss = nn.functional.mse_loss(model(x), y) * (math.inf if calls["n"] == 4 else 1.0)
            loss.backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.01 * torch.nan_to_num(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
            mon.observe_loss(loss)
    found = [f for f in mon.findings if f.code == "NR301"]
    assert len(found) == 1 and found[0].step == 3
    assert any(e["kind"] == "gradient" and not e.get("note") for e in mon.nonfinite_events)


def test_a_broken_static_rule_file_does_not_stop_the_monitor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    import nnlint.catalogue as catalogue

    source = catalogue.rules_directory()
    for path in source.glob("nr*.py"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "nn999_being_edited.py").write_text("class Broken(:\n")  # another author mid-edit
    monkeypatch.setattr(catalogue, "rules_directory", lambda: tmp_path)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with nnlint.monitor(model, optimizer, check_every=5, use_config=False) as mon:
        train(model, optimizer, 5, mon=mon)
    assert len(mon.detectors) == 9


@pytest.mark.parametrize("mode", ["warn", "fix"])
def test_no_host_sync_between_reads(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a GPU, .item()/.tolist()/bool()/.cpu() wait for the device: nnlint's hooks never
    call them between two read-backs (the CPU stands in for the device here)."""
    calls: list[str] = []
    # nnlint's code is the package and the rule files, wherever the checkout lives (its folder may
    # itself be called nnlint, and the tests that call these methods live in it too)
    import os

    from nnlint.catalogue import rules_directory

    own = tuple(os.path.realpath(d) + os.sep for d in (Path(nnlint.__file__).parent, rules_directory()))

    def spy(name):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if os.path.realpath(caller).startswith(own):
                calls.append(f"{name} from {caller}")
            return original(self, *args, **kwargs)

        return wrapper

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.Sigmoid(), nn.Linear(32, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    with nnlint.monitor(model, optimizer, mode=mode, check_every=1000, sample_every=3, use_config=False) as mon:
        train(model, optimizer, 2, mon=mon)  # sites and buffers are set up
        for name in ("item", "tolist", "__bool__", "cpu", "numpy", "__float__", "__int__"):
            monkeypatch.setattr(torch.Tensor, name, spy(name))
        train(model, optimizer, 20, mon=mon)
        monkeypatch.undo()
    assert calls == []
    assert mon.step == 21


def test_a_minus_inf_mask_module_is_not_a_finding() -> None:
    class Mask(nn.Module):
        def forward(self, scores):
            keep = torch.ones_like(scores, dtype=torch.bool).triu()
            return scores.masked_fill(~keep, float("-inf"))

    model = nn.Sequential(nn.Linear(16, 16), Mask(), nn.Softmax(dim=-1), nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with nnlint.monitor(model, optimizer, check_every=5, use_config=False) as mon:
        train(model, optimizer, 10, lambda: (torch.randn(16, 16), torch.randn(16, 1)), mon)
    assert mon.findings == []
    assert [e["note"] for e in mon.nonfinite_events] == ["contained: later outputs finite"]


def test_activation_every_names_the_module_at_the_next_checked_step() -> None:
    class Blowup(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.scale, self.out = nn.Linear(16, 8), nn.Linear(8, 8), nn.Linear(8, 1)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            if self.calls == 10:  # step 9: not a checked step with activation_every=4
                with torch.no_grad():
                    self.scale.weight.fill_(float("inf"))
            return self.out(self.scale(self.fc(x)))

    torch.manual_seed(0)
    model = Blowup()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    # fix=["NR301"]: skipped steps keep the other weights finite, so "scale" stays the origin.
    with nnlint.monitor(model, optimizer, check_every=20, activation_every=4, fix=["NR301"],
                        use_config=False) as mon:
        train(model, optimizer, 16, mon=mon)
    found = [f for f in mon.findings if f.code == "NR301"]
    assert [f.step for f in found] == [9, 12]
    assert "not checked" in found[0].message
    assert found[1].module == "scale" and "since step 9" in found[1].message


def test_activation_every_keeps_warn_mode_bit_identical_and_finds_dead_units() -> None:
    torch.manual_seed(0)
    hidden = nn.Linear(16, 64)
    nn.init.constant_(hidden.bias, -10.0)
    model = nn.Sequential(hidden, nn.ReLU(), nn.Linear(64, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with nnlint.monitor(model, optimizer, check_every=10, activation_every=5,
                        options={"NR201": {"window": 20}}, use_config=False) as mon:
        train(model, optimizer, 20, mon=mon)
    assert [f.code for f in mon.findings] == ["NR201"]


def test_an_evaluation_forward_after_each_step_keeps_the_step_statistics() -> None:
    """Validation between training steps (``model.eval()``/``no_grad`` forwards) must not drop the
    statistics of the step before it: a NaN at step 30 is still reported, at step 30."""
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with nnlint.monitor(model, optimizer, mode="warn", check_every=5) as mon:
        for step in range(40):
            x, y = regression_batch()
            if step == 30:
                x = x.clone()
                x[0, 0] = float("nan")
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
            model.eval()
            with torch.no_grad():
                model(regression_batch()[0])
            model.train()
    nonfinite = [f for f in mon.findings if f.code == "NR301"]
    assert nonfinite and nonfinite[0].step == 30
