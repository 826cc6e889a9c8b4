"""Python 2 training scripts: checked line for line, never rewritten."""
from __future__ import annotations

import textwrap
from pathlib import Path

import nnlint
from nnlint.engine import discover_settings
from nnlint.legacy import as_python3

PY2_SCRIPT = textwrap.dedent('''
    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    class Net(nn.Module):
        def __init__(self):
            super(Net, self).__init__()
            self.fc1 = nn.Linear(784, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = F.dropout(F.relu(self.fc1(x)), 0.5)
            return self.fc2(x)


    def train(model, loader, optimizer):
        for i, (x, y) in enumerate(loader):
            try:
                loss = F.cross_entropy(model(x), y)
            except RuntimeError, error:
                raise ValueError, "bad batch %d" % i
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if i % 100 == 0: print "step", i, loss.data[0]
        print
    ''')


def _line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_python2_script_is_checked_where_its_lines_are() -> None:
    found = nnlint.lint_source(PY2_SCRIPT, path="train.py", select=["ALL"])
    assert [(f.code, f.line, f.column) for f in found] == [
        ("NN105", _line_of(PY2_SCRIPT, "F.dropout"), PY2_SCRIPT.splitlines()[
            _line_of(PY2_SCRIPT, "F.dropout") - 1].index("F.dropout") + 1),
    ]
    assert found[0].fix is None  # a fix computed on rewritten text must not be offered


def test_columns_are_those_of_the_original_when_tabs_and_spaces_mix() -> None:
    # Python 2 read a tab as up to 8 columns; Python 3 refuses the mix, so tabs are expanded to read it
    source = PY2_SCRIPT.replace("        x = F.dropout(", "\tx = F.dropout(")
    line = _line_of(source, "F.dropout")
    (finding,) = nnlint.lint_source(source, path="train.py", select=["NN105"])
    assert (finding.line, finding.column) == (line, source.splitlines()[line - 1].index("F.dropout") + 1)


def test_fix_leaves_a_python2_file_byte_identical(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nnlint]\n")
    script = tmp_path / "train.py"
    script.write_bytes(PY2_SCRIPT.encode())
    result = nnlint.lint_paths([str(script)], discover_settings([str(tmp_path)]), select=["ALL"],
                               use_cache=False, jobs=1, fix=True, unsafe_fixes=True)
    assert [f.code for f in result.findings] == ["NN105"]
    assert result.changes == ()
    assert script.read_bytes() == PY2_SCRIPT.encode()


def test_other_syntax_errors_stay_syntax_errors() -> None:
    broken = PY2_SCRIPT.replace("def train(model, loader, optimizer):", "def train(model, loader, optimizer:")
    (finding,) = nnlint.lint_source(broken, path="train.py", select=["ALL"])
    assert finding.code == "NN001"


def test_rewriting_keeps_every_line_and_touches_only_python2_statements() -> None:
    reading = as_python3(PY2_SCRIPT)
    assert reading is not None
    before, after = PY2_SCRIPT.splitlines(), reading.text.splitlines()
    assert len(before) == len(after)
    changed = {b.strip(): a.strip() for b, a in zip(before, after) if a != b}
    assert changed == {
        "except RuntimeError, error:": "except RuntimeError as error:",
        'raise ValueError, "bad batch %d" % i': 'raise ValueError( "bad batch %d" % i)',
        'if i % 100 == 0: print "step", i, loss.data[0]': 'if i % 100 == 0: print("step", i, loss.data[0])',
        "print": "print()",
    }


def test_valid_python3_and_print_used_as_a_name_are_left_alone() -> None:
    assert as_python3("print('x')\n") is None
    assert as_python3("print = log\nprint += 1\n") is None
    assert as_python3("x = `1`\nprint x\n") is None  # backquotes are not rewritten: still an error
