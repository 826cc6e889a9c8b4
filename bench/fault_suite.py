"""Seeded-fault suite for the runtime detectors: python bench/fault_suite.py [--steps N]

Each case trains a small model on the CPU with one injected fault (or none: the healthy
controls) under ``nnlint.monitor`` in warn mode, then again in fix mode. It prints, per
case, which detectors fired and when (steps to detect = first finding's step), the
false alarms (codes neither expected nor allowed as a true consequence of the fault; any
finding on a healthy control), the non-finite events counted, and
in fix mode whether training recovered (weights and optimizer state finite and final loss
below the warn-mode run's, or below the first loss) or was stopped with
``nnlint.TrainingError`` (a run no fix can rescue), whether every expected finding was
located (a module, or the loss) and every fix has a finding; classification cases also
print the accuracy in fix mode, in warn mode and with a sane configuration. Default
thresholds were chosen on it.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import nnlint  # noqa: E402
from nnlint.runtime.monitor import DEFAULT_CHECK_EVERY  # noqa: E402


@dataclass(frozen=True)
class Case:
    name: str
    expected: frozenset[str]  # codes that should fire; empty for a healthy control
    build: Callable[[], tuple[nn.Module, torch.optim.Optimizer, Callable, Callable]]
    steps: int = 200
    # Codes that may also fire because they are true consequences of the fault (a NaN
    # after an explosion; early layers that do not move because their gradient vanished).
    # Anything else is a false alarm; on a healthy control everything is.
    allowed: frozenset[str] = frozenset()
    amp: bool = False  # fp16 autocast with a GradScaler
    closure: bool = False  # optimizer.step(closure) (LBFGS)
    # Classification cases: accuracy of a trained model on fresh data, and the same case
    # with a sane configuration, which fix mode's rescue is compared with.
    accuracy: Optional[Callable[[nn.Module], float]] = None
    sane: Optional[Callable[[], tuple[nn.Module, torch.optim.Optimizer, Callable, Callable]]] = None


def _regression(width_in: int = 16, scale: float = 1.0):
    def batch():
        x = torch.randn(32, width_in) * scale
        return x, x[:, :1] * 0.5 + x[:, 1:2].sin() * scale
    return batch


def _mse(out, y):
    return nn.functional.mse_loss(out.float(), y.float())


def _mlp(width=64, depth=3, act=nn.ReLU, inputs=16, init: Optional[Callable] = None):
    layers: list[nn.Module] = []
    size = inputs
    for _ in range(depth):
        linear = nn.Linear(size, width)
        if init is not None:
            init(linear)
        layers += [linear, act()]
        size = width
    layers.append(nn.Linear(size, 1))
    return nn.Sequential(*layers)


def healthy_mlp():
    model = _mlp()
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), _regression(), _mse


def healthy_cnn():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))

    def batch():
        x = torch.randn(16, 3, 8, 8)
        return x, (x.mean(dim=(1, 2, 3)) > 0).long() + 2 * (x[:, 0].mean(dim=(1, 2)) > 0).long()
    return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), batch, nn.functional.cross_entropy


class _Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 32)
        layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(32, 50)

    def forward(self, tokens):
        return self.head(self.encoder(self.embed(tokens)))


def healthy_transformer():
    model = _Encoder()

    def batch():
        tokens = torch.randint(0, 50, (8, 12))
        return tokens, tokens.roll(1, dims=1)

    def loss(logits, target):
        return nn.functional.cross_entropy(logits.reshape(-1, 50), target.reshape(-1))
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3), batch, loss


def healthy_converged():
    model = _mlp(64, 2)
    fixed = _regression()()
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), (lambda: fixed), _mse


def deep_sigmoid():
    model = _mlp(32, 10, nn.Sigmoid)
    return model, torch.optim.SGD(model.parameters(), lr=0.1), _regression(), _mse


def saturated_sigmoid():
    model = _mlp(128, 3, nn.Sigmoid, inputs=16, init=lambda m: nn.init.normal_(m.weight, std=1.0))
    return model, torch.optim.SGD(model.parameters(), lr=0.01), _regression(), _mse


def bad_init():
    model = _mlp(64, 8, init=lambda m: nn.init.normal_(m.weight, std=1.0))
    return model, torch.optim.SGD(model.parameters(), lr=1e-6), _regression(), _mse


def dying_relu():
    model = _mlp(64, 3, init=lambda m: nn.init.constant_(m.bias, -10.0))
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), _regression(), _mse


class _LogNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(16, 32), nn.Linear(32, 32), nn.Linear(32, 1)

    def forward(self, x):
        return self.fc3(torch.log(self.fc2(torch.relu(self.fc1(x)))))  # log of a negative


def log_negative():
    model = _LogNet()
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), _regression(), _mse


def lr_too_high():
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))

    def batch():
        x = torch.randn(64, 8) * 3
        return x, x.sum(dim=1, keepdim=True)
    return model, torch.optim.SGD(model.parameters(), lr=0.05), batch, _mse


def lr_too_low():
    model = _mlp(64, 3)
    return model, torch.optim.SGD(model.parameters(), lr=1e-7), _regression(), _mse


def healthy_amp():
    # fp16 autocast with a GradScaler starting at 2**24: its first 8 steps overflow
    # and are skipped by the scaler (calibration), which is normal.
    model = _mlp(64, 3)
    return model, torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9), _regression(), _mse


def fp16_overflow():
    model = _mlp(64, 3).half()
    state = {"calls": 0}

    def batch():
        state["calls"] += 1
        x, y = _regression()()
        if state["calls"] % 10 == 0:
            x = x * 3e4  # an outlier batch: fp16 activations overflow to inf
        return x.half(), y.half()
    return model, torch.optim.SGD(model.parameters(), lr=1e-2), batch, _mse


def _sign_task():
    def batch():
        x = torch.randn(64, 16)
        return x, (x[:, 0] + x[:, 1] > 0).long()
    return batch


def _sign_accuracy(model: nn.Module) -> float:
    generator = torch.Generator().manual_seed(123)
    x = torch.randn(2000, 16, generator=generator)
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == (x[:, 0] + x[:, 1] > 0).long()).float().mean())


def _relu_classifier():
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))


def lr_10_classifier():
    model = _relu_classifier()
    return model, torch.optim.SGD(model.parameters(), lr=10.0), _sign_task(), nn.functional.cross_entropy


def sane_classifier():
    model = _relu_classifier()
    return model, torch.optim.SGD(model.parameters(), lr=0.05), _sign_task(), nn.functional.cross_entropy


def handwritten_loss():
    # binary cross-entropy written by hand on a raw (unsquashed) output: log of a negative
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))

    def loss(p, y):
        return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()

    def batch():
        x = torch.randn(64, 16)
        return x, (x[:, :1] > 0).float()
    return model, torch.optim.SGD(model.parameters(), lr=0.05), batch, loss


def dead_layer():
    # the second hidden layer's units are all negative from step 0: nothing below it learns
    model = _mlp(64, 3)
    nn.init.constant_(model[2].bias, -20.0)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), _regression(), _mse


class _FunctionalNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(16, 64), nn.Linear(64, 64), nn.Linear(64, 1)
        nn.init.constant_(self.fc2.bias, -20.0)

    def forward(self, x):
        return self.fc3(nn.functional.relu(self.fc2(torch.relu(self.fc1(x)))))


def functional_dead_layer():
    model = _FunctionalNet()
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), _regression(), _mse


def deep_sigmoid_normal_init():
    model = _mlp(128, 8, nn.Sigmoid, init=lambda m: nn.init.normal_(m.weight, std=1.0))
    return model, torch.optim.SGD(model.parameters(), lr=0.01), _regression(), _mse


class _Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 32, batch_first=True)
        self.head = nn.Linear(32, 1)

    def forward(self, x):
        return self.head(self.lstm(x)[0][:, -1])


def healthy_lstm():
    model = _Recurrent()

    def batch():
        x = torch.randn(16, 12, 8)
        return x, x[:, :, :2].sum(dim=(1, 2)).unsqueeze(1) * 0.2
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), batch, _mse


class _Bag(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 16, sparse=True)

    def forward(self, tokens):
        return self.embed(tokens).mean(dim=(1, 2)).unsqueeze(1)


def sparse_embedding_nan():
    model = _Bag()
    state = {"calls": 0}

    def batch():
        state["calls"] += 1
        tokens = torch.randint(0, 100, (16, 6))
        y = torch.randn(16, 1)
        if state["calls"] % 15 == 0:
            y[0, 0] = float("nan")  # a bad label: NaN loss, NaN sparse gradient
        return tokens, y
    return model, torch.optim.SparseAdam(model.parameters(), lr=1e-2), batch, _mse


def lbfgs_nan():
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    state = {"calls": 0}

    def batch():
        state["calls"] += 1
        x = torch.randn(64, 8)
        y = x.sum(dim=1, keepdim=True)
        if state["calls"] % 12 == 0:
            y[0, 0] = float("inf")
        return x, y
    return model, torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=5), batch, _mse


CASES = [
    Case("healthy-mlp", frozenset(), healthy_mlp),
    Case("healthy-cnn-bn", frozenset(), healthy_cnn),
    Case("healthy-transformer", frozenset(), healthy_transformer),
    Case("healthy-converged", frozenset(), healthy_converged, 600),
    Case("healthy-amp-scaler", frozenset(), healthy_amp, amp=True),
    # SGD 0.1 moves the last layer by ~0.1-0.45 of its norm per step (NR103 is right).
    Case("deep-sigmoid", frozenset({"NR102"}), deep_sigmoid, allowed=frozenset({"NR103"})),
    Case("saturated-sigmoid", frozenset({"NR202"}), saturated_sigmoid),
    # The first step's loss is 2e10 and its update overflows: NaN from step 1 on.
    Case("bad-init", frozenset({"NR203"}), bad_init, allowed=frozenset({"NR101", "NR301"})),
    Case("dying-relu", frozenset({"NR201"}), dying_relu),
    Case("log-negative", frozenset({"NR301"}), log_negative),
    Case("lr-too-high", frozenset({"NR401", "NR101"}), lr_too_high, allowed=frozenset({"NR103", "NR301"})),
    Case("lr-too-low", frozenset({"NR402", "NR103"}), lr_too_low, 450),
    Case("fp16-overflow", frozenset({"NR301"}), fp16_overflow),
    Case("healthy-lstm", frozenset(), healthy_lstm),
    # SGD lr=10 on a ReLU classifier: fix mode restores the last good weights and backs off.
    Case("lr-10-relu-mlp", frozenset({"NR401"}), lr_10_classifier, 320,
         allowed=frozenset({"NR101", "NR103", "NR201", "NR301"}), accuracy=_sign_accuracy, sane=sane_classifier),
    # log of a negative prediction in a hand-written loss: the loss made the NaN, not the model.
    Case("handwritten-loss-nan", frozenset({"NR301"}), handwritten_loss, 320),
    Case("dead-layer", frozenset({"NR201"}), dead_layer, allowed=frozenset({"NR402"})),
    Case("functional-dead-layer", frozenset({"NR201"}), functional_dead_layer, allowed=frozenset({"NR402"})),
    Case("8-sigmoid-normal-init", frozenset({"NR202"}), deep_sigmoid_normal_init,
         allowed=frozenset({"NR102", "NR203", "NR402"})),
    Case("sparse-embedding-nan", frozenset({"NR301"}), sparse_embedding_nan),
    Case("lbfgs-nan", frozenset({"NR301"}), lbfgs_nan, 60, closure=True),
]


@dataclass
class Outcome:
    mon: object
    finite: bool  # weights and optimizer state
    first: float
    final: float
    accuracy: Optional[float]
    stopped: str  # "" or the TrainingError's code and step


def _finite_state(optimizer: torch.optim.Optimizer) -> bool:
    for state in optimizer.state.values():
        for value in state.values():
            for tensor in value if isinstance(value, list) else [value]:
                if isinstance(tensor, torch.Tensor) and (tensor.is_floating_point() or tensor.is_sparse):
                    dense = tensor.to_dense() if tensor.is_sparse else tensor
                    if dense.is_floating_point() and not bool(torch.isfinite(dense).all()):
                        return False
    return True


def run(case: Case, mode: str, steps: int, seed: int = 0):
    """(monitor, weights finite, first loss, final loss) of one run."""
    outcome = run_case(case, mode, steps, seed)
    return outcome.mon, outcome.finite, outcome.first, outcome.final


def run_case(case: Case, mode: Optional[str], steps: int, seed: int = 0,
             build: Optional[Callable] = None) -> Outcome:
    """One run; ``mode=None`` runs with no detector (the sane configuration's baseline)."""
    torch.manual_seed(seed)
    model, optimizer, batch, loss_fn = (build or case.build)()
    losses: list[torch.Tensor] = []
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**24) if case.amp else None
    stopped = ""
    mon = nnlint.monitor(model, optimizer, mode=mode or "warn", use_config=False, sink=lambda finding: None,
                         select=[] if mode is None else None)
    try:
        with mon:
            for _ in range(steps):
                x, y = batch()
                if case.closure:
                    def closure(x=x, y=y):
                        optimizer.zero_grad()
                        value = loss_fn(model(x), y)
                        value.backward()
                        return value
                    loss = optimizer.step(closure)
                else:
                    optimizer.zero_grad()
                    with torch.autocast("cpu", dtype=torch.float16, enabled=case.amp):
                        loss = loss_fn(model(x), y)
                    if scaler is not None:
                        scaler.scale(loss).backward()
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        loss.backward()
                        optimizer.step()
                mon.observe_loss(loss)
                losses.append(loss.detach())
    except nnlint.TrainingError as error:
        stopped = f"{error.finding.code}@{error.finding.step}"
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters()) and _finite_state(optimizer)
    values = [float(v) for v in losses]
    tail = [v for v in values[-20:] if math.isfinite(v)]
    final = sum(tail) / len(tail) if tail else math.inf
    accuracy = case.accuracy(model) if case.accuracy is not None else None
    return Outcome(mon, finite, values[0] if values else math.nan, final, accuracy, stopped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=0, help="override every case's step count")
    parser.add_argument("--only", default="", help="comma-separated case names")
    args = parser.parse_args()
    torch.set_num_threads(1)
    wanted = {n for n in args.only.split(",") if n}
    per_code: dict[str, dict[str, int]] = {}
    start = time.time()
    print(f"{'case':22} {'expected':24} {'fired (first step)':46} {'false alarms':22} {'nf ev':>5} fix mode")
    for case in CASES:
        if wanted and case.name not in wanted:
            continue
        steps = args.steps or case.steps
        outcome = run_case(case, "warn", steps)
        mon, final = outcome.mon, outcome.final
        first_step: dict[str, int] = {}
        for finding in mon.findings:
            first_step.setdefault(finding.code, finding.step or 0)
        fired = ", ".join(f"{c}@{s}" for c, s in sorted(first_step.items())) or "-"
        first = outcome.first
        false = sorted(set(first_step) - case.expected - case.allowed)
        for code in case.expected:
            stats = per_code.setdefault(code, {"cases": 0, "detected": 0, "false": 0, "latency": 0})
            stats["cases"] += 1
            if code in first_step:
                stats["detected"] += 1
                stats["latency"] += first_step[code]
        for code in false:
            per_code.setdefault(code, {"cases": 0, "detected": 0, "false": 0, "latency": 0})["false"] += 1
        fixed = run_case(case, "fix", steps)
        fix_mon, fix_final, fix_first = fixed.mon, fixed.final, fixed.first
        located = all(f.module is not None or f.code in ("NR401", "NR402") or "loss function" in f.message
                      for f in mon.findings if f.code in case.expected)
        recovered = fixed.finite and math.isfinite(fix_final) and (
            fix_final < final or not math.isfinite(final) or fix_final < fix_first or not case.expected)
        actions = sorted({f.action for f in fix_mon.fixes})
        unexplained = sorted({f.code for f in fix_mon.fixes} - {f.code for f in fix_mon.findings})
        if fixed.stopped:
            verdict = f"stopped {fixed.stopped}" + (" (weights finite)" if fixed.finite else " (NaN in weights!)")
        else:
            verdict = "recovered" if recovered else "NOT recovered"
        fix_text = f"{verdict} ({', '.join(actions) or 'no fix'}; loss {fix_first:.3g}->{fix_final:.3g}, " \
                   f"warn {final:.3g}{'' if located else '; NOT located'}" \
                   f"{'; fixes without finding ' + ','.join(unexplained) if unexplained else ''})"
        if case.accuracy is not None:
            sane = run_case(case, None, steps, build=case.sane) if case.sane is not None else None
            fix_text += (f" accuracy fix {fixed.accuracy:.3f} warn {outcome.accuracy:.3f}"
                         f"{f' sane {sane.accuracy:.3f}' if sane is not None else ''}")
        events = sum(e["count"] for e in mon.nonfinite_events)
        print(f"{case.name:22} {','.join(sorted(case.expected)) or '(healthy)':24} {fired:46} "
              f"{','.join(false) or '-':22} {events:>5} {fix_text}")
    print()
    print(f"{'detector':9} {'detected':>9} {'false alarms':>13} {'mean steps to detect':>21}")
    for code in sorted(per_code):
        s = per_code[code]
        latency = f"{s['latency'] / s['detected']:.1f}" if s["detected"] else "-"
        print(f"{code:9} {s['detected']:>4}/{s['cases']:<4} {s['false']:>13} {latency:>21}")
    print(f"\n{time.time() - start:.1f}s (check_every={DEFAULT_CHECK_EVERY}: "
          f"a finding is read back up to that many steps after the step it names)")


if __name__ == "__main__":
    main()
