"""The ``full`` format shows each finding's fix as a small diff of the lines it changes."""
from __future__ import annotations

import io

import nnlint
from nnlint.findings import Edit, Finding, Fix
from nnlint.report import render

SOURCE = """\
import torch
import torch.nn.functional as F


def nll(logits, target):
    log_probs = torch.log(F.softmax(logits, dim=1))
    return F.nll_loss(log_probs, target)
"""


def full(findings: list[Finding], sources: dict[str, str], color: bool = False) -> str:
    stream = io.StringIO()
    render(findings, "full", stream, sources=sources, color=color)
    return stream.getvalue()


def test_full_shows_the_fix_as_a_diff_with_line_numbers() -> None:
    findings = nnlint.lint_source(SOURCE, path="m.py", select=["NN401"])
    text = full(findings, {"m.py": SOURCE})
    assert ("  = help: Replace log(softmax(...)) with log_softmax(...)\n"
            "    Safe fix\n"
            "    6 -     log_probs = torch.log(F.softmax(logits, dim=1))\n"
            "    6 +     log_probs = F.log_softmax(logits, dim=1)\n") in text


def test_full_diff_of_an_inserted_line_and_colours() -> None:
    source = "import torch\nfor x in loader:\n    loss.backward()\n    opt.step()\n"
    findings = nnlint.lint_source(source, path="m.py", select=["NN303"])
    text = full(findings, {"m.py": source})
    assert "    Unsafe fix\n    5 +     opt.zero_grad()\n" in text
    assert " - " not in text.split("Unsafe fix")[1].split("\n\n")[0]
    coloured = full(findings, {"m.py": source}, color=True)
    assert "\x1b[32m+     opt.zero_grad()\x1b[0m" in coloured


def finding(fix: Fix, cell: int | None = None) -> Finding:
    return Finding(code="NN999", name="test-rule", severity="warning", message="m", path="m.py",
                   line=1, column=1, end_line=1, end_column=2, fix=fix, cell=cell)


def test_full_diff_is_shortened_and_skipped_where_it_cannot_be_shown() -> None:
    source = "".join(f"x{n} = {n}\n" for n in range(30))
    many = Fix("Rewrite", (Edit(1, 1, 21, 1, "".join(f"y{n} = {n}\n" for n in range(20))),))
    text = full([finding(many)], {"m.py": source})
    assert text.count("\n    ") >= 12 and "... 28 more lines (see --diff)" in text
    elsewhere = Fix("Rewrite", (Edit(1, 1, 1, 3, "y0", cell=3),))
    assert "Safe fix" not in full([finding(elsewhere, cell=2)], {"m.py:cell 2": source})
    stale = Fix("Rewrite", (Edit(90, 1, 90, 3, "y0"),))  # the file changed since
    assert "Safe fix" not in full([finding(stale)], {"m.py": source})
    assert "Safe fix" not in full([finding(many)], {})
