"""bench/static_throughput.py runs end to end (quick mode: no TorchFix, no ruff, one start-up run)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "static_throughput.py"

MODEL = '''\
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


loss = nn.CrossEntropyLoss()(torch.softmax(Net()(torch.randn(3, 4)), dim=1), torch.tensor([0, 1, 0]))
'''


def test_quick_mode_on_a_tiny_tree(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "__init__.py").write_text("")
    (tree / "pkg" / "model.py").write_text(MODEL)
    (tree / "pkg" / "plain.py").write_text("def add(a, b):\n    return a + b\n")
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tree), "--quick", "--jobs", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    for label in ("nnlint cold", "nnlint warm", "torchfix", "start-up", "nnlint small.py", "nnlint notdl.py"):
        assert label in done.stdout, done.stdout
    assert "skipped (--no-torchfix)" in done.stdout
    result = json.loads(out.read_text())
    assert result["files"] == 3
    assert result["lines"] == MODEL.count("\n") + 2
    timings = {t["tool"]: t for t in result["throughput"]}
    for tool in ("nnlint cold", "nnlint warm"):
        assert timings[tool]["seconds"] > 0
        assert timings[tool]["returncode"] == 0  # --exit-zero: findings do not fail the run
        assert timings[tool]["note"] != "0 findings"  # the model file feeds softmax to the loss (NN201)
    assert timings["torchfix"]["seconds"] is None
    assert set(result["startup"]) >= {"python -c pass", "nnlint notdl.py"}
    assert all(seconds > 0 for seconds in result["startup"].values())


def test_adapter_overhead_runs(tmp_path: Path) -> None:
    """bench/adapter_overhead.py prints one row per loop: timings, or why a framework was skipped."""
    import pytest

    pytest.importorskip("torch")
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "adapter_overhead.py"), "--steps", "4", "--rounds", "1"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    rows = {line.split("  ")[0].strip(): line for line in done.stdout.splitlines()
            if line.startswith(("hand-written", "lightning", "transformers"))}
    assert set(rows) == {"hand-written + monitor", "lightning + NNLintCallback", "transformers + callback"}
    for row in rows.values():
        fields = row.split()
        assert "skipped:" in row or (len(fields) >= 4 and float(fields[-1]) > 0), row
