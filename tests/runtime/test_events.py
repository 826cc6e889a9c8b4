"""The event log: events.jsonl, TensorBoard scalars read back with tensorboard's own
reader, the gradient-flow plot and ``nnlint report``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import nnlint
from nnlint.integrations.events import EventLog
from nnlint.report.events import SCHEMA_VERSION, read_events

from helpers import mlp, regression_batch, train  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _strict(line: str) -> dict:
    """JSON as the schema promises it: no NaN/Infinity tokens."""
    def refuse(token: str) -> None:
        raise AssertionError(f"non-JSON token {token} in {line!r}")

    return json.loads(line, parse_constant=refuse)


def _nan_at(step: int):
    calls = {"n": 0}

    def batch():
        x, y = regression_batch()
        if calls["n"] == step:
            x[0, 0] = float("nan")
        calls["n"] += 1
        return x, y

    return batch


def _run(log_dir: Path, steps: int = 30, batch=regression_batch, tensorboard=None) -> tuple[nn.Module, object]:
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    mon = nnlint.monitor(model, optimizer, check_every=5, use_config=False)
    EventLog(log_dir, tensorboard=tensorboard).attach(mon)
    with mon:
        train(model, optimizer, steps, batch, mon)
    return model, mon


def test_events_jsonl_has_one_object_per_check_finding_and_fix(tmp_path: Path) -> None:
    _, mon = _run(tmp_path, batch=_nan_at(12), tensorboard=False)
    events = [_strict(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and events[0]["schema"] == SCHEMA_VERSION and kinds[-1] == "end"
    checks = [e for e in events if e["event"] == "check"]
    assert [row["step"] for e in checks for row in e["steps"]] == list(range(30))
    assert checks[0]["layers"] == ["0", "2", "4", "6"]
    assert set(checks[0]["steps"][0]["grad_norm"]) == {"0", "2", "4", "6"}
    assert checks[0]["steps"][0]["loss"] > 0 and "update_ratio" in checks[0]["steps"][0]
    assert checks[2]["steps"][2]["loss"] == "nan"  # step 12, written as the schema says
    findings = [e for e in events if e["event"] == "finding"]
    assert [(f["code"], f["module"], f["step"]) for f in findings] == \
        [(f.code, f.module, f.step) for f in mon.findings]
    assert findings[0]["code"] == "NR301" and findings[0]["step"] == 12
    assert events[-1]["steps"] == 30 and events[-1]["findings"] == len(mon.findings)
    assert not any(p.name.startswith("events.out.tfevents") for p in tmp_path.iterdir())


def test_fix_events(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    mon = nnlint.monitor(model, optimizer, "fix", check_every=5, use_config=False)
    EventLog(tmp_path, tensorboard=False).attach(mon)
    with mon:
        train(model, optimizer, 20, _nan_at(7), mon)
    fixes = [e for e in map(_strict, (tmp_path / "events.jsonl").read_text().splitlines()) if e["event"] == "fix"]
    assert [(f["action"], f["step"]) for f in fixes] == [(f.action, f.step) for f in mon.fixes]
    assert ("skip-step", 7) in [(f["action"], f["step"]) for f in fixes]


def test_warn_mode_with_a_log_is_bit_identical(tmp_path: Path) -> None:
    def weights(log_dir: Path | None) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = mlp()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        if log_dir is None:
            train(model, optimizer, 30)
        else:
            mon = nnlint.monitor(model, optimizer, check_every=5, use_config=False)
            EventLog(log_dir).attach(mon)
            with mon:
                train(model, optimizer, 30, mon=mon)
        return [p.detach().clone() for p in model.parameters()]

    for a, b in zip(weights(None), weights(tmp_path)):
        assert torch.equal(a, b)
    assert (tmp_path / "events.jsonl").exists()


def test_tensorboard_scalars_read_back(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, mon = _run(tmp_path, batch=_nan_at(12), tensorboard=True)
    accumulator = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    assert {"loss", "grad_norm/0", "grad_norm/6", "update_ratio/0"} <= set(tags["scalars"])
    loss = accumulator.Scalars("loss")
    assert [e.step for e in loss] == list(range(30)) and loss[0].value > 0
    assert [e.step for e in accumulator.Scalars("grad_norm/0")] == list(range(30))
    text = accumulator.Tensors("findings/text_summary")
    assert b"NR301" in text[0].tensor_proto.string_val[0]


def test_dead_fraction_scalar(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    torch.manual_seed(0)
    model = mlp()
    nn.init.constant_(model[2].bias, -100.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    mon = nnlint.monitor(model, optimizer, check_every=5, options={"NR201": {"window": 10}}, use_config=False)
    EventLog(tmp_path).attach(mon)
    with mon:
        train(model, optimizer, 20, mon=mon)
    accumulator = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    accumulator.Reload()
    assert accumulator.Scalars("dead_fraction/3")[-1].value == 1.0


def test_plot_and_report_command(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    _run(tmp_path, batch=_nan_at(12), tensorboard=False)
    out = tmp_path / "grads.png"
    done = subprocess.run([sys.executable, "-m", "nnlint", "report", str(tmp_path / "events.jsonl"), "--plot", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 1, done.stderr
    assert "run finished; 30 step(s)" in done.stdout and "NR301 error in '0' at step 12" in done.stdout
    assert "non-finite loss at" in done.stdout
    image = imread(out)
    assert image.shape[:2] == (650, 1000)
    assert image[..., :3].std() > 0.05  # something was drawn


def test_report_of_a_crashed_run_and_of_a_bad_file(tmp_path: Path) -> None:
    from nnlint.integrations.commands import report

    _run(tmp_path, tensorboard=False)
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    crashed = tmp_path / "crashed.jsonl"
    crashed.write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])  # killed while writing
    run = read_events(crashed)
    assert run.end is None and run.bad_lines == 1 and run.rows
    assert report([str(crashed)]) == 0
    (tmp_path / "notes.txt").write_text("hello\n[1, 2]\n")
    assert report([str(tmp_path / "notes.txt")]) == 2
    assert report([str(tmp_path / "missing.jsonl")]) == 2


def test_mon_log_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    mon = nnlint.monitor(model, optimizer, check_every=5, use_config=False)
    log = EventLog(tmp_path, tensorboard=False).attach(mon)
    with mon:
        train(model, optimizer, 10, mon=mon)
        mid = log.plot(tmp_path / "mid.png")  # while training: what was logged so far
    assert mid.stat().st_size > 1000 and log.plot(tmp_path / "end.svg").read_text().startswith("<?xml")


def test_monitor_log_dir_writes_the_log_as_an_observer(tmp_path: Path) -> None:
    """``log_dir=`` opens the log at start and closes it with the monitor; the monitor's
    detectors and sink are left as they were."""
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    found: list = []
    mon = nnlint.monitor(model, optimizer, check_every=5, use_config=False, sink=found.append,
                         log_dir=tmp_path / "exp")
    codes = [d.code for d in mon.detectors]
    assert not (tmp_path / "exp").exists()  # nothing written before the run starts
    with mon:
        train(model, optimizer, 20, _nan_at(7), mon)
    assert [d.code for d in mon.detectors] == codes and mon.sink == found.append
    assert found == mon.findings and mon.event_log is not None and mon.event_log._file is None
    events = [_strict(line) for line in (tmp_path / "exp" / "events.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "start" and events[-1]["event"] == "end" and events[-1]["steps"] == 20
    assert [(e["code"], e["step"]) for e in events if e["event"] == "finding"] == \
        [(f.code, f.step) for f in mon.findings] and mon.findings[0].step == 7


def test_observer_hook_sees_checks_findings_and_close_and_cannot_stop_training() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.steps: list[int] = []
            self.findings: list[str] = []
            self.closed = 0

        def on_check(self, mon, window) -> None:
            self.steps += [s.step for s in window.steps]

        def on_finding(self, mon, finding) -> None:
            self.findings.append(finding.code)

        def on_close(self, mon) -> None:
            self.closed += 1

    class Broken:
        def on_check(self, mon, window) -> None:
            raise OSError("disk full")

    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    recorder = Recorder()
    mon = nnlint.monitor(model, optimizer, check_every=5, use_config=False, sink=lambda f: None)
    mon.add_observer(Broken())
    mon.add_observer(recorder)
    with mon:
        train(model, optimizer, 12, _nan_at(3), mon)
    assert recorder.steps == list(range(12)) and recorder.closed == 1
    assert recorder.findings == [f.code for f in mon.findings] and "NR301" in recorder.findings


@pytest.mark.parametrize("with_log", [False, True], ids=["memory", "log_dir"])
def test_mon_plot(tmp_path: Path, with_log: bool) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    mon = nnlint.monitor(model, optimizer, check_every=5, use_config=False, sink=lambda f: None,
                         log_dir=tmp_path / "exp" if with_log else None)
    with mon:
        train(model, optimizer, 30, _nan_at(12), mon)
    out = mon.plot(tmp_path / "grads.png")
    image = imread(out)
    assert image.shape[:2] == (650, 1000) and image[..., :3].std() > 0.05
    assert (tmp_path / "exp" / "events.jsonl").exists() == with_log
