"""Lint-time arithmetic is bounded: what a file asks to compute never hangs, aborts or overflows the run.

Constant folding (``LR = 1e-3 * 10``) evaluates the expressions a file contains. A file may ask
for ``10 ** 10 ** 8`` (minutes of CPU), ``2 ** 20000`` (an integer too wide to print), or a
1000-term ``+`` chain (deeper than Python's recursion limit); such a value is unknown, and the
other files' findings are still reported.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import libcst as cst
import pytest

import nnlint
from nnlint.facts.names import MAX_INT_BITS, literal

ADAM = "import torch\nopt = torch.optim.Adam(model.parameters(), lr=LR)\n"
SOFTMAX_INTO_CROSS_ENTROPY = """import torch
import torch.nn as nn

model = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))
loss = nn.CrossEntropyLoss()(model(x), y)
"""
#: a correct training loop: no rule reports anything in it
CLEAN_LOOP = """import torch
import torch.nn as nn

model = nn.Linear(4, 4)
opt = torch.optim.SGD(model.parameters(), lr=0.1)


def train(loader):
    for x, y in loader:
        opt.zero_grad()
{body}        loss.backward()
        opt.step()
"""


def value(expression: str) -> object:
    return literal(cst.parse_expression(expression), None)


def lint(tmp_path: Path, files: dict[str, str], monkeypatch: pytest.MonkeyPatch, seconds: float = 10.0):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    result = nnlint.lint_paths(["."], use_cache=False, jobs=1)
    elapsed = time.perf_counter() - start
    assert elapsed < seconds, f"linting took {elapsed:.1f}s"
    return result


def codes(result) -> set[tuple[str, str]]:
    return {(Path(f.path).name, f.code) for f in result.findings}


# -- the folding itself --------------------------------------------------------------------

@pytest.mark.parametrize(
    "expression, expected",
    [
        ("2 ** 10", 1024),
        ("1e-3 * 10", 0.01),
        ("10 ** -3", 0.001),
        ("-(2 ** 3) + 1", -7),
        ("1 / 4", 0.25),
        ("(1, 2 ** 4)", (1, 16)),
        ("'a' 'b' 'c'", "abc"),
        (" + ".join(["1"] * 20), 20),
        ("2 ** 1023", 2**1023),
    ],
)
def test_small_arithmetic_is_still_folded(expression: str, expected: object) -> None:
    assert value(expression) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "2 ** 20000",  # wider than any float: int->str of it raises in reports and summaries
        "10 ** 10 ** 8",  # minutes of CPU
        "2 ** 1024",
        "(2 ** 1000) * (2 ** 1000)",
        "1 - 2 ** 2000",
        "9" * 5000,  # int() of more than 4300 digits raises ValueError
        "0x" + "f" * 300,
        "(-8) ** 0.5",  # complex
        "1e308 * 10",  # overflows to inf
        "1e308 * 10 - 1e308 * 10",  # nan
        "1 / 0",
        "2 ** 2000 / 3",
        " + ".join(["1"] * 1000),  # deeper than the recursion limit
        "-" * 1000 + "1",
    ],
    ids=lambda text: text[:24],
)
def test_unbounded_arithmetic_is_unknown(expression: str) -> None:
    tree = cst.parse_expression(expression)
    start = time.perf_counter()
    assert literal(tree, None) is None
    assert time.perf_counter() - start < 1.0


def test_thousands_of_implicitly_concatenated_strings_are_read_without_recursion() -> None:
    expression = " ".join(f"'{i % 10}'" for i in range(2000))
    assert value(expression) == "0123456789" * 200


def test_wide_integers_are_capped_at_max_int_bits() -> None:
    assert value(f"2 ** {MAX_INT_BITS - 1}") == 2 ** (MAX_INT_BITS - 1)
    assert value(f"2 ** {MAX_INT_BITS}") is None


# -- through lint_paths ----------------------------------------------------------------------

def test_folded_learning_rates_still_reach_the_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = lint(tmp_path, {
        "high.py": "LR = 2 ** -2 * 0.4\n" + ADAM,  # 0.1
        "low.py": "LR = 10 ** -3\n" + ADAM,
        "config.py": "import torch\nBIG = 2 ** 20000\nLR = 2.0 ** -3\n",
        "imported.py": "from config import LR\n" + ADAM,
    }, monkeypatch)
    assert not result.errors and not result.warnings, result.errors + result.warnings
    assert codes(result) == {("high.py", "NN312"), ("imported.py", "NN312")}


@pytest.mark.parametrize(
    "constant",
    [
        "2 ** 20000",
        "(2 ** 1000) * (2 ** 1000) * (2 ** 1000)",
        "9" * 5000,
        " + ".join(["1"] * 1000),
        " * ".join(["(2 ** 60)"] * 1000),
        "-" * 1000 + "1",
        "1 << 10 ** 8",
        "'a' * 10 ** 9",
        "(1,) * 10 ** 9",
        "(-8) ** 0.5",
    ],
    ids=lambda text: text[:24],
)
def test_a_constant_no_rule_can_use_does_not_stop_the_run(
    constant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = lint(tmp_path, {
        "config.py": f"import torch\nX = {constant}\n",
        "user.py": "from config import X\n" + ADAM.replace("LR", "X"),
        "model.py": SOFTMAX_INTO_CROSS_ENTROPY,
    }, monkeypatch)
    # a 1000-term chain is deeper than any real expression: that file is skipped with a warning
    assert not result.errors and all(w.startswith("config.py: skipped: too deeply nested") for w in result.warnings), \
        result.errors + result.warnings
    assert ("model.py", "NN201") in codes(result)
    assert ("user.py", "NN312") not in codes(result)


def test_a_power_tower_takes_no_time_from_the_command_line(tmp_path: Path) -> None:
    """``10 ** 10 ** 8`` used to run for minutes; in a child process so that a regression fails, not hangs."""
    (tmp_path / "config.py").write_text("import torch\nX = 10 ** 10 ** 8\nY = 10 ** -10 ** 8\n")
    (tmp_path / "user.py").write_text("from config import X, Y\n" + ADAM.replace("LR", "X * Y"))
    (tmp_path / "model.py").write_text(SOFTMAX_INTO_CROSS_ENTROPY)
    start = time.perf_counter()
    try:
        completed = subprocess.run(
            [sys.executable, "-c", "import sys; from nnlint.cli import main; sys.exit(main())",
             "--format", "json", "--no-cache", "--jobs", "1", "."],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("nnlint did not finish within 120s")
    elapsed = time.perf_counter() - start
    assert completed.returncode == 1, completed.stderr
    assert completed.stderr == ""
    findings = json.loads(completed.stdout)["findings"]
    assert {(f["path"], f["code"]) for f in findings} == {("model.py", "NN201")}
    assert elapsed < 30, f"took {elapsed:.1f}s"


# -- deep but valid code: no RecursionError in the facts --------------------------------------

DEEP_FILES = {
    "module_elif_chain": "import torch\nif a:\n    LR = 0\n"
    + "".join(f"elif c{i}:\n    LR = {i}\n" for i in range(1000)),
    "loop_call_chain": CLEAN_LOOP.format(body="        loss = f" + "()" * 1000 + "\n"),
    "loop_elif_chain": CLEAN_LOOP.format(
        body="        if a:\n            loss = model(x)\n"
        + "".join(f"        elif c{i}:\n            loss = model(x)\n" for i in range(1000))
    ),
    "nested_module_classes": "import torch.nn as nn\n" + "".join(
        f"class M{i}(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        f"        self.inner = M{i + 1}()\n    def forward(self, x):\n        return self.inner(x)\n"
        for i in range(300)
    ) + "class M300(nn.Module):\n    def forward(self, x):\n        return x\nmodel = M0()\n",
    "add_chain": "import torch\nX = " + " + ".join(["a"] * 1000) + "\n",
}


@pytest.mark.parametrize("name", sorted(DEEP_FILES))
def test_deep_valid_code_is_checked_without_errors(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = lint(tmp_path, {"deep.py": DEEP_FILES[name], "model.py": SOFTMAX_INTO_CROSS_ENTROPY}, monkeypatch,
                  seconds=5.0)
    # nested past anything real (checker.MAX_NESTING), a file is skipped with a warning; the rest is checked
    assert not result.errors, result.errors
    assert all(w.startswith("deep.py: skipped: too deeply nested to analyse") for w in result.warnings), result.warnings
    assert codes(result) == {("model.py", "NN201")}
